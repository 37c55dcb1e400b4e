//! Test support: the project's Python venv (transformers, peft) and the tiny models it builds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the tests run: `TUNA_TEST_DEVICE` (`cpu`, the default, or `cuda`).
pub fn device() -> tch::Device {
    match std::env::var("TUNA_TEST_DEVICE").as_deref() {
        Ok("cuda") => {
            assert!(
                tch::Cuda::is_available(),
                "TUNA_TEST_DEVICE=cuda but libtorch sees no CUDA device"
            );
            tch::Device::Cuda(0)
        }
        Ok("cpu") | Err(_) => tch::Device::Cpu,
        Ok(other) => panic!("TUNA_TEST_DEVICE={other}: write cpu or cuda"),
    }
}

/// [`device`] as a finetune setting.
pub fn device_spec() -> tuna_steps::ml::DeviceSpec {
    tuna_steps::ml::DeviceSpec(match device() {
        tch::Device::Cuda(_) => "cuda".into(),
        _ => "cpu".into(),
    })
}

/// The workspace root (`TUNA_TEST_ROOT` where a prebuilt test binary runs elsewhere).
pub fn root() -> PathBuf {
    match std::env::var_os("TUNA_TEST_ROOT") {
        Some(r) => PathBuf::from(r),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf(),
    }
}

/// The venv's python, or a panic that says how to make the venv.
pub fn python() -> PathBuf {
    let py = std::env::var_os("TUNA_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    if !py.exists() {
        panic!(
            "the torch tests need a Python venv with transformers and peft at {} (or TUNA_TEST_PYTHON). \
             Create it from the workspace root:\n  python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 \
             transformers safetensors numpy peft",
            py.display()
        );
    }
    py
}

/// Runs a script of `tests/fixtures` with the venv's python, offline; panics with its output on
/// failure.
pub fn run_py(script: &str, args: &[&Path]) {
    let out = Command::new(python())
        .arg(root().join("steps/tests/fixtures").join(script))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("start python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The scripts that make the tiny models, run in this order into one folder.
const FIXTURE_SCRIPTS: [&str; 2] = ["make_tiny_opt.py", "make_tiny_llama.py"];

/// The folder of tiny models (OPT: `pre_ln`, `post_ln_proj`, `sharded`; Llama family:
/// `llama_tied`, `llama_untied`, `mistral`), built once per version of the scripts and kept under
/// the target directory (or `TUNA_TEST_FIXTURES`, made beforehand by the scripts, where no
/// Python is at hand).
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("TUNA_TEST_FIXTURES") {
            return PathBuf::from(dir);
        }
        let mut scripts = Vec::new();
        for s in FIXTURE_SCRIPTS {
            scripts.extend(std::fs::read(root().join("steps/tests/fixtures").join(s)).unwrap());
        }
        let stamp = fnv1a(&scripts);
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join(format!("tiny-models-{stamp:016x}"));
        if !dir.join("DONE").exists() {
            let tmp = base.join(format!(
                "tiny-models-{stamp:016x}.tmp{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&tmp);
            for s in FIXTURE_SCRIPTS {
                run_py(s, &[&tmp]);
            }
            std::fs::write(tmp.join("DONE"), "").unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&tmp, &dir).unwrap();
        }
        dir
    })
}

/// A copy of fixture `name` in a fresh temp dir (for tests that damage or extend it).
pub fn fixture_copy(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

/// FNV-1a: a stable fingerprint of the fixture script.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reads a safetensors file into a name → tensor map.
pub fn read_tensors(path: &Path) -> std::collections::HashMap<String, tch::Tensor> {
    tch::Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

/// Largest absolute difference of two tensors (as f64).
pub fn max_abs_diff(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    let cpu = |t: &tch::Tensor| t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Double);
    (cpu(a) - cpu(b)).abs().max().double_value(&[])
}

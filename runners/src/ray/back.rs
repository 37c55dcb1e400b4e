//! Bringing a finished attempt back from the shared folder into the local attempt folder: the
//! outputs the wrapper listed (each blob checked against its name), the metrics and the exit
//! record, from where the executor collects them as for any step. The shared folder is where
//! the step's own processes can write, so only regular files are read there (a link could name
//! a file of this machine) and the listing may only name plain relative paths and blake3 blobs.

use std::collections::BTreeMap;
use std::path::Path;

use super::exec::{EXIT, OUTPUTS};
use super::shared::Shared;
use crate::local::ExitRecord;
use crate::{KeptOutput, Outcome, RunnerError};

/// Copies the outputs the wrapper listed (each blob checked against its name), the metrics
/// and the exit record from the shared attempt folder `dir` into the local attempt folder.
/// The shared folder is where the step's own processes can write: only regular files are
/// read there (a link could name a file of this machine), and the listing may only name
/// plain relative paths and blake3 blobs.
pub(crate) fn bring_back(
    shared: &Shared,
    dir: &Path,
    local: &Path,
) -> Result<Outcome, RunnerError> {
    let listed: BTreeMap<String, KeptOutput> = match read_regular(&dir.join(OUTPUTS))? {
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| RunnerError::Protocol(format!("{}: {e}", dir.join(OUTPUTS).display())))?,
        None => BTreeMap::new(),
    };
    check_listing(&listed, &dir.join(OUTPUTS).display().to_string())?;
    let work = local.join("work");
    for (out, kept) in &listed {
        lay_out(&work, out, kept, &mut |hex, dest, x| {
            shared.place(hex, dest, x)
        })?;
    }
    if let Some(metrics) = read_regular(&dir.join("metrics.json"))? {
        std::fs::write(local.join("metrics.json"), metrics)?;
    }
    copy_exit(dir, local);
    Ok(ExitRecord::read(local)
        .ok()
        .flatten()
        .map_or(Outcome::Exited { code: 0 }, |r| r.outcome))
}

/// Makes the output `out` of a (checked) listing in `work`: its folders, and each file by
/// `place(hex, dest, executable)`.
pub(crate) fn lay_out(
    work: &Path,
    out: &str,
    kept: &KeptOutput,
    place: &mut dyn FnMut(&str, &Path, bool) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let base = work.join(out.trim_end_matches('/'));
    if kept.dir {
        std::fs::create_dir_all(&base)?;
    }
    for d in &kept.empty_dirs {
        std::fs::create_dir_all(base.join(d))?;
    }
    for f in &kept.files {
        let dest = if f.path.is_empty() {
            base.clone()
        } else {
            base.join(&f.path)
        };
        place(&f.hex, &dest, f.executable)?;
    }
    Ok(())
}

/// Refuses a listing of outputs (from `whence`, where the step's processes could write) that
/// names anything but plain relative paths and blake3 blobs.
pub(crate) fn check_listing(
    listed: &BTreeMap<String, KeptOutput>,
    whence: &str,
) -> Result<(), RunnerError> {
    for (out, kept) in listed {
        let names = std::iter::once(out.as_str())
            .chain(kept.files.iter().map(|f| f.path.as_str()))
            .chain(kept.empty_dirs.iter().map(String::as_str));
        let bad_path = names.clone().find(|p| !plain_relative(p));
        let bad_hex = kept.files.iter().find(|f| !is_blake3(&f.hex));
        if bad_path.is_some() || bad_hex.is_some() {
            return Err(RunnerError::Protocol(format!(
                "{whence}: output `{out}` lists a path or blob that is not allowed ({})",
                bad_path.unwrap_or_else(|| bad_hex.map_or("", |f| f.hex.as_str()))
            )));
        }
    }
    Ok(())
}

/// The content of `path` if it is a regular file (not a link); `None` if there is none.
fn read_regular(path: &Path) -> Result<Option<Vec<u8>>, RunnerError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(Some(std::fs::read(path)?)),
        Ok(_) => Err(RunnerError::Protocol(format!(
            "{} is not a regular file; it is not read",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A relative path of plain names (no `..`, `.`, empty or absolute parts); empty is the
/// output itself.
fn plain_relative(p: &str) -> bool {
    p.is_empty()
        || p.trim_end_matches('/')
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn is_blake3(hex: &str) -> bool {
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The wrapper's exit record, beside the local attempt's logs (where `tuna` reads it).
pub(crate) fn copy_exit(dir: &Path, local: &Path) {
    if !local.join(EXIT).exists()
        && let Ok(Some(bytes)) = read_regular(&dir.join(EXIT))
    {
        let _ = std::fs::write(local.join(EXIT), bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_outputs_cannot_name_paths_outside_the_work_folder() {
        assert!(plain_relative(""));
        assert!(plain_relative("model.txt"));
        assert!(plain_relative("ckpt/"));
        assert!(plain_relative("a/b/c.bin"));
        for bad in ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", ".."] {
            assert!(!plain_relative(bad), "{bad}");
        }
        assert!(is_blake3(&"a".repeat(64)));
        assert!(!is_blake3("../../x"));
        assert!(!is_blake3(&"A".repeat(64)));
    }

    fn setup() -> (
        tempfile::TempDir,
        Shared,
        std::path::PathBuf,
        std::path::PathBuf,
    ) {
        let t = tempfile::tempdir().unwrap();
        let shared = Shared::new(t.path().join("shared"));
        let dir = t.path().join("shared/runs/r/s/1");
        let local = t.path().join("local/r/s/1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(local.join("work")).unwrap();
        (t, shared, dir, local)
    }

    #[test]
    fn listed_outputs_come_back_checked() {
        let (t, shared, dir, local) = setup();
        let src = t.path().join("m.txt");
        std::fs::write(&src, "model").unwrap();
        let hex = shared.put(&src).unwrap();
        let listing = format!(
            r#"{{"model.txt": {{"dir": false, "files": [{{"path": "", "hex": "{hex}", "size": 5, "executable": false}}]}}}}"#
        );
        std::fs::write(dir.join(OUTPUTS), listing).unwrap();
        std::fs::write(dir.join("metrics.json"), r#"{"loss": 1}"#).unwrap();
        bring_back(&shared, &dir, &local).unwrap();
        assert_eq!(
            std::fs::read_to_string(local.join("work/model.txt")).unwrap(),
            "model"
        );
        assert!(
            std::fs::read_to_string(local.join("metrics.json"))
                .unwrap()
                .contains("loss")
        );
    }

    #[test]
    fn a_hostile_listing_or_linked_metrics_are_refused() {
        let (t, shared, dir, local) = setup();
        let src = t.path().join("m.txt");
        std::fs::write(&src, "x").unwrap();
        let hex = shared.put(&src).unwrap();
        let listing = format!(
            r#"{{"model.txt": {{"dir": true, "files": [{{"path": "../../../../escaped", "hex": "{hex}", "size": 1, "executable": false}}]}}}}"#
        );
        std::fs::write(dir.join(OUTPUTS), listing).unwrap();
        let err = bring_back(&shared, &dir, &local).unwrap_err();
        assert!(err.to_string().contains("not allowed"), "{err}");
        assert!(!t.path().join("escaped").exists());
        // Metrics that are a link to a file of this machine are not read.
        std::fs::remove_file(dir.join(OUTPUTS)).unwrap();
        let secret = t.path().join("secret");
        std::fs::write(&secret, "s3cret").unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("metrics.json")).unwrap();
        let err = bring_back(&shared, &dir, &local).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(!local.join("metrics.json").exists());
    }
}

//! With the `torch` feature: lets this crate's test and example binaries find libtorch at run
//! time (rpath to the libtorch that torch-sys linked), and on a CUDA machine keeps
//! `libtorch_cuda` linked so that `tch::Cuda::is_available()` sees the GPU (the linker's
//! `--as-needed` would drop it). `TUNA_TORCH_CUDA=1`/`0` forces the CUDA link on or off;
//! by default it is on when an NVIDIA driver is present.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TUNA_TORCH_CUDA");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    let driver = std::path::Path::new("/proc/driver/nvidia/version").exists();
    let cuda = match std::env::var("TUNA_TORCH_CUDA").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => driver,
    };
    if cuda && std::path::Path::new(&dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

//! Finding the programs built-in steps hand work to: `tuna-ml` (the libtorch half of tuna)
//! and HELM's `helm-run`.

use std::path::PathBuf;

/// `$TUNA_ML`, else `tuna-ml` beside the running program, else on `PATH`.
pub fn tuna_ml() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TUNA_ML") {
        return Some(PathBuf::from(p));
    }
    let beside = std::env::current_exe().ok()?.with_file_name("tuna-ml");
    if beside.exists() {
        return Some(beside);
    }
    on_path("tuna-ml")
}

/// `name` in a folder of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

//! The remote wrapper script (`wrap.sh`) and the name it is uploaded under: versioned by its
//! content, so hosts shared by different tuna builds each run the wrapper they uploaded.

/// The wrapper's text.
pub(crate) const SCRIPT: &str = include_str!("wrap.sh");

/// `tuna-wrap-<first 12 hex digits of its blake3>.sh`.
pub(crate) fn file_name() -> String {
    let hex = blake3::hash(SCRIPT.as_bytes()).to_hex();
    format!("tuna-wrap-{}.sh", &hex[..12])
}

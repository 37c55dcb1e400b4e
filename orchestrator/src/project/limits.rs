//! [`Limits`]: how big a submitted project may be (`tuna serve --max-file-size`,
//! `--max-submission-size`, `--max-files`), and sizes written for people.

/// The daemon's limits on a submission's project files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest single file, in bytes.
    pub max_file: u64,
    /// The most bytes of all files of one submission together.
    pub max_total: u64,
    /// The most files in one submission.
    pub max_files: usize,
}

/// 8 GiB: a dataset of a few GiB fits.
pub const DEFAULT_MAX_FILE: u64 = 8 << 30;
/// 32 GiB.
pub const DEFAULT_MAX_TOTAL: u64 = 32 << 30;
pub const DEFAULT_MAX_FILES: usize = 100_000;
/// The largest workflow file (its text travels in the JSON body, unlike project files).
pub const MAX_WORKFLOW: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_file: DEFAULT_MAX_FILE,
            max_total: DEFAULT_MAX_TOTAL,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// `1.5 GiB`, `200 MiB`, `12 KiB`, `10 B`: the largest 1024-based unit under which the
/// number is at least 1.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if (value - value.round()).abs() < 0.05 {
        format!("{} {}", value.round(), UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(1024), "1 KiB");
        assert_eq!(human_size(200 << 20), "200 MiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
        assert_eq!(human_size(8 << 30), "8 GiB");
    }
}

//! A step that failed because its disk filled up: said in those words with the path (the
//! script's own exit code or a truncated `exit.json` hide it), and its partial outputs
//! removed so that the store, the next steps and `tuna gc` have room again.

use std::path::Path;

use crate::store::free_bytes;

/// Below this many free bytes a filesystem counts as full.
const FULL_BELOW: u64 = 1 << 20;

/// If the filesystem of `attempt_dir` is full now: removes the attempt's work folder (its
/// partial outputs; nothing it links to) and returns the message for the step.
pub(crate) fn full_disk_failure(attempt_dir: &Path) -> Option<String> {
    // A step without a folder of its own may have none: its run's folder tells as well.
    let free = attempt_dir.ancestors().find_map(free_bytes)?;
    if free >= FULL_BELOW {
        return None;
    }
    let work = attempt_dir.join("work");
    if !work.exists() {
        return Some(format!(
            "no space left on device: the filesystem of {} had {free} bytes free when the step ended",
            attempt_dir.display()
        ));
    }
    let size = folder_size(&work);
    let cleared = std::fs::remove_dir_all(&work).is_ok();
    let _ = std::fs::create_dir_all(&work);
    let what = if cleared {
        format!(
            "its partial outputs ({} in {}) were removed",
            crate::project::human_size(size),
            work.display()
        )
    } else {
        format!(
            "its partial outputs in {} could not be removed",
            work.display()
        )
    };
    Some(format!(
        "no space left on device: the filesystem of {} had {free} bytes free when the step ended; {what}",
        attempt_dir.display()
    ))
}

/// Bytes of the regular files under `dir` (links not followed).
fn folder_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

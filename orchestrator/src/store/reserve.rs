//! The space reserve: a file of [`RESERVE`] bytes beside the store (`db.reserve` in the home),
//! given up when the disk is full, so that opening the store — for `tuna runs`, `tuna status`,
//! `tuna gc` and the record of the step that filled the disk — still works; made again once
//! the disk has room.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// What the reserve holds: room for sled to open and write the records of a few steps.
pub const RESERVE: u64 = 8 << 20;

/// The reserve is made again only while this much is free besides it.
const REMAKE_ABOVE: u64 = 3 * RESERVE;

/// The reserve of the store in `db`.
pub(crate) fn path(db: &Path) -> PathBuf {
    db.with_extension("reserve")
}

/// Whether `e` says the disk is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull
}

/// Gives the reserve up; whether there was one.
pub(crate) fn release(db: &Path) -> bool {
    fs::remove_file(path(db)).is_ok()
}

/// Makes the reserve if it is missing and the disk has room for it (blocks really allocated,
/// so that giving it up frees them). Failing to make it is not an error: it is tried again
/// at the next open.
pub(crate) fn ensure(db: &Path) {
    let reserve = path(db);
    if reserve.exists() || free_bytes(db).is_none_or(|free| free < REMAKE_ABOVE) {
        return;
    }
    let tmp = reserve.with_extension("reserve.tmp");
    let made = File::create(&tmp).and_then(|f| {
        // SAFETY: a valid descriptor and an in-range length.
        let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, RESERVE as libc::off_t) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        f.sync_all()
    });
    match made {
        Ok(()) => {
            let _ = fs::rename(&tmp, &reserve);
        }
        Err(_) => {
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// The bytes an unprivileged writer can still use on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

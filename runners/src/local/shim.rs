//! The shim's entry point: claim the attempt, tell the launcher, then supervise the script.
//!
//! The shim must start fast and survive its launcher: it blocks its signals first, leaves the
//! launcher's session, reads the launch spec from standard input, claims the attempt exclusively, says `claimed` or `taken` on stdout and
//! never writes there again (the launcher may be dead by then).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::layout;
use super::proc_id::ProcId;
use super::signals::Signals;
use super::spec::LaunchSpec;
use super::supervisor;

/// The `tuna-shim ATTEMPT_DIR` program. Returns the process exit code.
///
/// `tuna-shim --b3sum FILE...` prints the blake3 of each file instead, one hex digest a line:
/// the ssh runner uploads the shim to name big outputs on hosts that have no `b3sum`.
pub fn shim_main() -> i32 {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: tuna-shim ATTEMPT_DIR | tuna-shim --b3sum FILE...");
        return 2;
    };
    if dir.as_os_str() == "--b3sum" {
        return b3sum(std::env::args_os().skip(2).map(PathBuf::from));
    }
    let mut announced = false;
    match run(&dir, &mut announced) {
        Ok(()) => 0,
        Err(e) => {
            let message = format!("tuna-shim: {}: {e}", dir.display());
            if !announced {
                announce(&format!("error {message}"));
            }
            log(&dir, &message);
            1
        }
    }
}

fn run(dir: &Path, announced: &mut bool) -> io::Result<()> {
    let signals = Signals::block()?;
    // Leave the launcher's session and process group, so that a Ctrl-C or a kill of the
    // launcher's group does not reach the job. Fails harmlessly if we already lead a group.
    // SAFETY: setsid has no preconditions.
    unsafe { libc::setsid() };
    // Before the claim: a launcher that died mid-write leaves the attempt unclaimed.
    let spec = LaunchSpec::read_from(io::stdin().lock())?;
    let me = ProcId::current()?;
    let claim = serde_json::to_string(&me).map_err(io::Error::other)?;
    if layout::create_exclusive(dir, layout::CLAIM, claim.as_bytes())? {
        announce(&format!("claimed {claim}"));
        *announced = true;
        supervisor::supervise(dir, &spec, &signals).write(dir)
    } else {
        let owner = layout::read_settled(dir, layout::CLAIM)?.unwrap_or_default();
        announce(&format!("taken {}", String::from_utf8_lossy(&owner).trim()));
        *announced = true;
        Ok(())
    }
}

/// Prints `HEX  FILE` for each file (the first word is all the runner reads).
fn b3sum(files: impl Iterator<Item = PathBuf>) -> i32 {
    let mut out = io::stdout().lock();
    for file in files {
        let mut hasher = blake3::Hasher::new();
        match File::open(&file).and_then(|f| hasher.update_reader(f).map(|_| ())) {
            Ok(()) => {
                let _ = writeln!(out, "{}  {}", hasher.finalize().to_hex(), file.display());
            }
            Err(e) => {
                eprintln!("tuna-shim: {}: {e}", file.display());
                return 1;
            }
        }
    }
    if out.flush().is_err() { 1 } else { 0 }
}

/// Appends `message` to the attempt's shim.log (created only now: most shims never need it).
fn log(dir: &Path, message: &str) {
    if let Ok(mut file) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(layout::SHIM_LOG))
    {
        let _ = writeln!(file, "{message}");
    }
}

/// Writes the one line the launcher waits for, then points stdout at /dev/null.
fn announce(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    drop(out);
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1 with a valid, open fd.
        unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
    }
}

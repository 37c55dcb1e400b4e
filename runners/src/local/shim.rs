//! The `tuna-shim` program: `tuna-shim --supervisor DIR` starts the home's supervisor (see
//! [`super::daemon`]); `tuna-shim --b3sum FILE...` prints the blake3 of each file, one hex
//! digest a line (the ssh runner uploads the shim to name big outputs on hosts that have no
//! `b3sum`).

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

/// The `tuna-shim` program. Returns the process exit code.
pub fn shim_main() -> i32 {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next()) {
        (Some(flag), Some(dir)) if flag == "--supervisor" && args.next().is_none() => {
            super::daemon::start(&PathBuf::from(dir))
        }
        (Some(flag), first) if flag == "--b3sum" => {
            b3sum(first.into_iter().chain(args).map(PathBuf::from))
        }
        _ => {
            eprintln!("usage: tuna-shim --supervisor DIR | tuna-shim --b3sum FILE...");
            2
        }
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

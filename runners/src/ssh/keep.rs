//! Settling a finished attempt's outputs: each declared output bigger than the runner's
//! `keep_remote_over` stays on the host, hashed there and hard-linked into the host's
//! content-addressed folder (`WORKDIR/cas/<blake3>`), and is listed in the local attempt
//! folder's `kept.json`; the others come back into the local attempt folder (`fetch.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use ssh2::Sftp;

use super::conn::{Conn, OpError};
use super::fetch;
use super::hash;
use super::host::Host;
use crate::shell::quote;
use crate::{KeptFile, KeptOutput, KeptOutputs};

/// Keeps the big outputs of the attempt in `dir` on the host and brings the rest (and the
/// metrics) back into `local`. Safe to repeat.
pub(crate) fn settle(
    host: &Host,
    conn: &mut Conn,
    dir: &str,
    local: &Path,
    outputs: &[String],
) -> Result<(), OpError> {
    let workdir = &host.cfg.workdir;
    let mut kept = KeptOutputs {
        runner: host.cfg.name.clone(),
        outputs: BTreeMap::new(),
    };
    let mut back = Vec::new();
    for out in outputs {
        let rel = out.trim_end_matches('/');
        let big = match host.cfg.keep_remote_over {
            Some(limit) => list(conn, &format!("{dir}/work/{rel}"))?.filter(|l| l.size() > limit),
            None => None,
        };
        let command = match big {
            Some(_) => hash::command(host, conn)?,
            None => None,
        };
        match (big, command) {
            (Some(listing), Some(command)) => {
                let listing = keep(
                    conn,
                    &command,
                    workdir,
                    &format!("{dir}/work"),
                    rel,
                    listing,
                )?;
                kept.outputs.insert(out.clone(), listing);
            }
            _ => back.push(out.clone()),
        }
    }
    fetch::fetch_outputs(conn, workdir, dir, local, &back)?;
    let fatal = |e: std::io::Error| OpError::Fatal(format!("{}: {e}", local.display()));
    if kept.outputs.is_empty() {
        match std::fs::remove_file(local.join(KeptOutputs::FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fatal(e)),
            _ => {}
        }
    } else {
        kept.write(local).map_err(fatal)?;
    }
    Ok(())
}

/// Names the files of one output by their blake3 and links them into the host's store.
fn keep(
    conn: &mut Conn,
    command: &str,
    workdir: &str,
    work: &str,
    rel: &str,
    mut listing: KeptOutput,
) -> Result<KeptOutput, OpError> {
    let path_of = |f: &KeptFile| {
        if f.path.is_empty() {
            rel.to_owned()
        } else {
            format!("{rel}/{}", f.path)
        }
    };
    let paths: Vec<String> = listing.files.iter().map(path_of).collect();
    let hexes = hash::hash_files(conn, command, work, &paths)?;
    for (file, hex) in listing.files.iter_mut().zip(hexes) {
        file.hex = hex;
    }
    let links: Vec<String> = listing
        .files
        .iter()
        .map(|f| {
            let blob = quote(&format!("{workdir}/cas/{}", f.hex));
            let src = quote(&format!("{work}/{}", path_of(f)));
            let tmp = quote(&format!("{workdir}/cas/.keep-{}", f.hex));
            format!(
                "{{ [ -e {blob} ] || ln -fL {src} {blob} 2>/dev/null || \
                 {{ cp {src} {tmp}.$$ && mv -f {tmp}.$$ {blob}; }}; }} && chmod a-w {blob}"
            )
        })
        .collect();
    for chunk in links.chunks(100) {
        let out = conn.exec(&chunk.join(" && "))?;
        if out.code != 0 {
            return Err(OpError::Fatal(format!(
                "keeping outputs of {work} in {workdir}/cas: {}",
                out.stderr.trim()
            )));
        }
    }
    Ok(listing)
}

/// The files (with sizes, not yet hashes) of the output at `path`; `None` if it is missing.
fn list(conn: &mut Conn, path: &str) -> Result<Option<KeptOutput>, OpError> {
    let sftp = conn.sftp()?;
    let stat = match sftp.stat(Path::new(path)) {
        Ok(s) => s,
        Err(e) if e.code() == ssh2::ErrorCode::SFTP(2) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !stat.is_dir() {
        return Ok(Some(KeptOutput {
            dir: false,
            files: vec![KeptFile {
                path: String::new(),
                hex: String::new(),
                size: stat.size.unwrap_or(0),
                executable: stat.perm.unwrap_or(0) & 0o111 != 0,
            }],
            empty_dirs: Vec::new(),
        }));
    }
    let mut listing = KeptOutput {
        dir: true,
        ..KeptOutput::default()
    };
    walk(sftp, path, "", &mut listing)?;
    listing.files.sort_by(|a, b| a.path.cmp(&b.path));
    listing.empty_dirs.sort();
    Ok(Some(listing))
}

/// Lists a folder the way the orchestrator's store reads one (symlinks followed; a folder
/// with no entries at all is an empty folder).
fn walk(sftp: &Sftp, dir: &str, prefix: &str, listing: &mut KeptOutput) -> Result<(), OpError> {
    let entries: Vec<_> = sftp
        .readdir(Path::new(dir))?
        .into_iter()
        .filter_map(|(p, st)| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            (name != "." && name != "..").then_some((name, st))
        })
        .collect();
    if entries.is_empty() && !prefix.is_empty() {
        listing
            .empty_dirs
            .push(prefix.trim_end_matches('/').to_owned());
    }
    for (name, st) in entries {
        let full = format!("{dir}/{name}");
        let st = if st.file_type().is_symlink() {
            sftp.stat(Path::new(&full))?
        } else {
            st
        };
        let path = format!("{prefix}{name}");
        if st.is_dir() {
            walk(sftp, &full, &format!("{path}/"), listing)?;
        } else if st.is_file() {
            listing.files.push(KeptFile {
                path,
                hex: String::new(),
                size: st.size.unwrap_or(0),
                executable: st.perm.unwrap_or(0) & 0o111 != 0,
            });
        } else {
            return Err(OpError::Fatal(format!(
                "{full}: only files and folders can be outputs (not sockets, pipes or devices)"
            )));
        }
    }
    Ok(())
}

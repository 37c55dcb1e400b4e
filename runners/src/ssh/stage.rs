//! Staging: the files a job needs, placed into its remote attempt folder. Each file travels
//! once per host: it is kept in the runner's content-addressed folder (`WORKDIR/cas/<blake3>`)
//! and the attempt folder gets a symlink to it. Content the host's store holds already (an
//! output kept there, [`Stage::stored`]) is linked in place and never travels.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::conn::{Conn, OpError, temp_name};
use crate::Stage;
use crate::shell::quote;

/// One file to place: its digest and where it goes (relative to the attempt folder).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Blob {
    /// Where it is on this machine; `None` for a blob the host's store holds already.
    pub source: Option<PathBuf>,
    pub dest: String,
    pub digest: String,
    pub executable: bool,
}

/// What staging did, for the log and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct StageReport {
    pub files: usize,
    pub uploaded: usize,
    pub bytes_uploaded: u64,
}

/// Lists and hashes the files of `items` (folders walked, symlinks followed).
pub(crate) fn plan(items: &[Stage]) -> io::Result<(Vec<Blob>, Vec<String>)> {
    let mut blobs = Vec::new();
    let mut dirs = Vec::new();
    for item in items {
        let dest = item.dest.trim_end_matches('/');
        if let Some(stored) = &item.stored {
            if stored.dir {
                dirs.push(dest.to_owned());
                dirs.extend(stored.empty_dirs.iter().map(|d| format!("{dest}/{d}")));
            }
            blobs.extend(stored.files.iter().map(|f| Blob {
                source: None,
                dest: if f.path.is_empty() {
                    dest.to_owned()
                } else {
                    format!("{dest}/{}", f.path)
                },
                digest: f.hex.clone(),
                executable: f.executable,
            }));
            continue;
        }
        walk(
            &item.source,
            item.dest.trim_end_matches('/'),
            &mut blobs,
            &mut dirs,
        )?;
    }
    Ok((blobs, dirs))
}

fn walk(path: &Path, dest: &str, blobs: &mut Vec<Blob>, dirs: &mut Vec<String>) -> io::Result<()> {
    let meta = std::fs::metadata(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if meta.is_dir() {
        dirs.push(dest.to_owned());
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            walk(&entry.path(), &format!("{dest}/{name}"), blobs, dirs)?;
        }
    } else {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(File::open(path)?)?;
        blobs.push(Blob {
            source: Some(path.to_path_buf()),
            dest: dest.to_owned(),
            digest: hasher.finalize().to_hex().to_string(),
            executable: meta.permissions().mode() & 0o111 != 0,
        });
    }
    Ok(())
}

/// Uploads the blobs the host lacks into `workdir/cas`, then links every file into `dir`.
pub(crate) fn stage(
    conn: &mut Conn,
    workdir: &str,
    dir: &str,
    blobs: &[Blob],
    dirs: &[String],
) -> Result<StageReport, OpError> {
    let mut report = StageReport {
        files: blobs.len(),
        ..StageReport::default()
    };
    if blobs.is_empty() && dirs.is_empty() {
        return Ok(report);
    }
    let cas = format!("{workdir}/cas");
    let mut missing = Vec::new();
    let mut unique: Vec<&Blob> = blobs.iter().collect();
    unique.sort_by(|a, b| a.digest.cmp(&b.digest));
    unique.dedup_by(|a, b| a.digest == b.digest);
    for chunk in unique.chunks(400) {
        let names: Vec<&str> = chunk.iter().map(|b| b.digest.as_str()).collect();
        let out = conn.exec(&format!(
            "cd {} && for h in {}; do [ -e \"$h\" ] || echo \"$h\"; done",
            quote(&cas),
            names.join(" ")
        ))?;
        if out.code != 0 {
            return Err(OpError::Fatal(format!(
                "listing {cas} on the host: {}",
                out.stderr.trim()
            )));
        }
        let lacking: Vec<&str> = out.stdout.lines().collect();
        missing.extend(
            chunk
                .iter()
                .filter(|b| lacking.contains(&b.digest.as_str()))
                .map(|b| (*b).clone()),
        );
    }
    if let Some(blob) = missing.iter().find(|b| b.source.is_none()) {
        return Err(OpError::Fatal(format!(
            "blob {} for {} is no longer in {cas} on the host",
            blob.digest, blob.dest
        )));
    }
    for blob in &missing {
        report.bytes_uploaded += upload(conn, &cas, blob)?;
        report.uploaded += 1;
    }
    let mut commands: Vec<String> = dirs
        .iter()
        .map(|d| format!("mkdir -p {}", quote(&format!("{dir}/{d}"))))
        .collect();
    for blob in blobs {
        let dest = format!("{dir}/{}", blob.dest);
        let parent = dest.rsplit_once('/').map_or(dir, |(p, _)| p).to_owned();
        commands.push(format!(
            "mkdir -p {} && ln -sfn {} {}",
            quote(&parent),
            quote(&format!("{cas}/{}", blob.digest)),
            quote(&dest)
        ));
    }
    for chunk in commands.chunks(200) {
        let out = conn.exec(&chunk.join(" && "))?;
        if out.code != 0 {
            return Err(OpError::Fatal(format!(
                "placing inputs in {dir}: {}",
                out.stderr.trim()
            )));
        }
    }
    Ok(report)
}

/// Streams one file into `cas/<digest>` (written under a temp name, then moved in place).
fn upload(conn: &mut Conn, cas: &str, blob: &Blob) -> Result<u64, OpError> {
    let source = blob
        .source
        .as_deref()
        .expect("only local blobs are uploaded");
    let mut local =
        File::open(source).map_err(|e| OpError::Fatal(format!("{}: {e}", source.display())))?;
    put_blob(conn, cas, &blob.digest, blob.executable, &mut local)?.map_err(|got| {
        OpError::Fatal(format!(
            "{} changed while it was uploaded (blake3 {got}, expected {})",
            source.display(),
            blob.digest
        ))
    })
}

/// Streams `source` into `cas/<hex>`: a temp name first, hashed on the way; moved under its
/// name only when the content hashes to `hex` (else `Ok(Err(the hash it had))`).
pub(crate) fn put_blob(
    conn: &mut Conn,
    cas: &str,
    hex: &str,
    executable: bool,
    source: &mut dyn Read,
) -> Result<Result<u64, String>, OpError> {
    let tmp = temp_name(&format!("{cas}/.up-{hex}"));
    let (total, hash) = conn.write_temp(&tmp, source, 0o600)?;
    let got = hash.to_hex();
    if got.as_str() != hex {
        let _ = conn.exec(&format!("rm -f {}", quote(&tmp)));
        return Ok(Err(got.to_string()));
    }
    let mode = if executable { 0o555 } else { 0o444 };
    let out = conn.exec(&format!(
        "chmod {mode:o} {t} && mv -f {t} {}",
        quote(&format!("{cas}/{hex}")),
        t = quote(&tmp)
    ))?;
    if out.code != 0 {
        return Err(OpError::Fatal(format!(
            "storing blob {hex} on the host: {}",
            out.stderr.trim()
        )));
    }
    Ok(Ok(total))
}

//! [`Cas`]: the store on disk. Layout under its root:
//! `objects/<2 hex>/<62 hex>` for each blob (mode 0444), the same name plus `.x` for a copy
//! kept executable (mode 0555), and `tmp/` where everything is written before its rename.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::IoContext;
use super::ingest::{copy_hashing, hash_reader};
use super::tree::{TREE_FORMAT, Tree, TreeFile};
use super::{CasError, Digest};

/// A content-addressed store rooted at one folder.
#[derive(Debug)]
pub struct Cas {
    root: PathBuf,
    objects: PathBuf,
    tmp: PathBuf,
    /// Bring files in by hard link where possible (off only to test the copy path).
    pub(crate) link: bool,
}

impl Cas {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> io::Result<Cas> {
        let objects = root.join("objects");
        let tmp = root.join("tmp");
        fs::create_dir_all(&objects)?;
        fs::create_dir_all(&tmp)?;
        Ok(Cas {
            root: root.to_path_buf(),
            objects,
            tmp,
            link: true,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores the output at `path`, a file or folder inside `within` (the step's own folder),
    /// which stays in place. Only regular files and folders are stored, their bytes hashed as
    /// they go in. A symbolic link is followed only to a target inside `within`, and then its
    /// target's bytes are copied (never linked in, never made read-only); a link that leads
    /// elsewhere is refused. A file the step alone owns (one name, on the store's filesystem)
    /// is hard-linked in and becomes read-only; others are copied.
    pub fn put(&self, path: &Path, within: &Path) -> Result<Digest, CasError> {
        let within = fs::canonicalize(within).at(within)?;
        let real = confined(path, &within)?;
        let linked = fs::symlink_metadata(path)
            .at(path)?
            .file_type()
            .is_symlink();
        let meta = fs::metadata(&real).at(&real)?;
        if meta.is_file() {
            let copy = linked || meta.nlink() > 1;
            Ok(self
                .put_file(&real, meta.permissions().mode() & 0o111 != 0, copy)?
                .0)
        } else if meta.is_dir() {
            self.put_dir(&real, &within)
        } else {
            Err(CasError::Unsupported {
                path: path.to_path_buf(),
                reason: "only files and folders can be stored".into(),
            })
        }
    }

    /// Stores `bytes` as a blob.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, CasError> {
        let hash = blake3::hash(bytes);
        let object = self.object_path(hash.as_bytes(), false);
        if !self.object_is_regular(&object) {
            let tmp = self.temp_path();
            let mut file = File::create_new(&tmp).at(&tmp)?;
            io::Write::write_all(&mut file, bytes).at(&tmp)?;
            seal(&tmp, &file, false)?;
            rename_into(&tmp, &object)?;
        }
        Ok(Digest::blob(hash))
    }

    /// Stores what `reader` yields as the blob `expected` (streaming, hashed on the way):
    /// content that hashes to something else is refused and never stored. `from` names the
    /// source for the message. Returns the bytes read.
    pub fn put_reader(
        &self,
        expected: &Digest,
        executable: bool,
        reader: &mut dyn io::Read,
        from: &str,
    ) -> Result<u64, CasError> {
        let tmp = self.temp_path();
        let mut out = File::create_new(&tmp).at(&tmp)?;
        let result = copy_hashing(reader, &mut out)
            .at(&tmp)
            .and_then(|(hash, len)| {
                let got = Digest::blob(hash);
                if got != *expected {
                    return Err(CasError::WrongContent {
                        from: from.to_owned(),
                        expected: *expected,
                        got,
                    });
                }
                let object = self.object_path(hash.as_bytes(), executable);
                if !self.object_is_regular(&object) {
                    seal(&tmp, &out, executable)?;
                    rename_into(&tmp, &object)?;
                }
                Ok(len)
            });
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Stores what `reader` yields under the digest it hashes to (streaming, hashed on the
    /// way). `accept` sees that digest and the length before the blob gets its name; when it
    /// refuses, nothing is stored. The digest and the bytes read.
    pub fn put_stream<E: From<CasError>>(
        &self,
        reader: &mut dyn io::Read,
        accept: impl FnOnce(&Digest, u64) -> Result<(), E>,
    ) -> Result<(Digest, u64), E> {
        let tmp = self.temp_path();
        let mut out = File::create_new(&tmp).at(&tmp)?;
        let result = copy_hashing(reader, &mut out)
            .at(&tmp)
            .map_err(E::from)
            .and_then(|(hash, len)| {
                let got = Digest::blob(hash);
                accept(&got, len)?;
                let object = self.object_path(hash.as_bytes(), false);
                if !self.object_is_regular(&object) {
                    seal(&tmp, &out, false)?;
                    rename_into(&tmp, &object)?;
                }
                Ok((got, len))
            });
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Stores a tree manifest whose files may live elsewhere (an output kept on a runner's
    /// machine): the tree is then known here, and [`Cas::contains`] says whether its files are.
    pub fn put_tree(&self, tree: &Tree) -> Result<Digest, CasError> {
        let blob = self.put_bytes(&tree.to_bytes())?;
        Ok(Digest::tree(blake3::Hash::from_bytes(*blob.hash())))
    }

    /// Whether `digest` can be materialized: the blob, or the tree and all its files, are
    /// present. Looks at names only (and reads a tree's manifest).
    pub fn contains(&self, digest: &Digest) -> bool {
        if !digest.is_tree() {
            return self.find_object(digest.hash()).is_some();
        }
        match self.tree(digest) {
            Ok(tree) => tree
                .files
                .iter()
                .all(|f| self.find_object(f.digest.hash()).is_some()),
            Err(_) => false,
        }
    }

    /// The size in bytes of a blob, or of all files of a tree.
    pub fn size(&self, digest: &Digest) -> Result<u64, CasError> {
        if digest.is_tree() {
            return Ok(self.tree(digest)?.files.iter().map(|f| f.size).sum());
        }
        let (object, _) = self
            .find_object(digest.hash())
            .ok_or(CasError::Missing(*digest))?;
        Ok(fs::metadata(&object).at(&object)?.len())
    }

    /// The manifest of a stored tree.
    pub fn tree(&self, digest: &Digest) -> Result<Tree, CasError> {
        let (object, _) = self
            .find_object(digest.hash())
            .ok_or(CasError::Missing(*digest))?;
        let bytes = fs::read(&object).at(&object)?;
        Tree::from_bytes(*digest, &bytes)
    }

    /// Recreates the blob or tree `digest` at `dest` (replacing files there): by hard link
    /// where possible, by copy otherwise. Hard-linked files are read-only. Each file of a tree
    /// must have the size the tree records (a cheap check that catches a truncated blob).
    pub fn materialize(&self, digest: &Digest, dest: &Path) -> Result<(), CasError> {
        self.restore(digest, dest, false)
    }

    /// [`Cas::materialize`], hashing every blob before it is placed: content that no longer
    /// matches its name is refused (for `tuna pull`, and outputs leaving for another machine).
    pub fn materialize_verified(&self, digest: &Digest, dest: &Path) -> Result<(), CasError> {
        self.restore(digest, dest, true)
    }

    fn restore(&self, digest: &Digest, dest: &Path, verify: bool) -> Result<(), CasError> {
        if !digest.is_tree() {
            let (object, executable) = self
                .find_object(digest.hash())
                .ok_or(CasError::Missing(*digest))?;
            self.check_object(&object, digest, None, verify)?;
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).at(parent)?;
            }
            return place(&object, executable, dest);
        }
        let tree = self.tree(digest)?;
        fs::create_dir_all(dest).at(dest)?;
        for dir in &tree.empty_dirs {
            let path = dest.join(dir);
            fs::create_dir_all(&path).at(&path)?;
        }
        for file in &tree.files {
            let target = dest.join(&file.path);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).at(parent)?;
            }
            let hash = file.digest.hash();
            let wanted = self.object_path(hash, file.executable);
            if self.object_is_regular(&wanted) {
                self.check_object(&wanted, &file.digest, Some(file.size), verify)?;
                place(&wanted, file.executable, &target)?;
            } else {
                let (other, _) = self
                    .find_object(hash)
                    .ok_or(CasError::Missing(file.digest))?;
                self.check_object(&other, &file.digest, Some(file.size), verify)?;
                copy_with_mode(&other, file.executable, &target)?;
            }
        }
        Ok(())
    }

    /// Checks a stored object before it is handed out: its size when known, its content when
    /// `verify`.
    fn check_object(
        &self,
        object: &Path,
        digest: &Digest,
        size: Option<u64>,
        verify: bool,
    ) -> Result<(), CasError> {
        let damaged = |reason: String| {
            // The name no longer vouches for the content: drop it, so a cache lookup misses.
            let _ = fs::remove_file(object);
            CasError::Damaged {
                digest: *digest,
                path: object.to_path_buf(),
                reason,
            }
        };
        let len = fs::symlink_metadata(object).at(object)?.len();
        if let Some(want) = size.filter(|&want| want != len) {
            return Err(damaged(format!("it holds {len} bytes, not {want}")));
        }
        if verify {
            let hash = hash_reader(File::open(object).at(object)?).at(object)?;
            if hash.as_bytes() != digest.hash() {
                return Err(damaged(format!("its content hashes to {}", hash.to_hex())));
            }
        }
        Ok(())
    }

    /// Where the blob with `hash` lives (its executable copy if `executable`).
    pub(crate) fn object_path(&self, hash: &[u8; 32], executable: bool) -> PathBuf {
        let hex = blake3::Hash::from_bytes(*hash).to_hex();
        let suffix = if executable { ".x" } else { "" };
        self.objects
            .join(&hex[..2])
            .join(format!("{}{suffix}", &hex[2..]))
    }

    pub(crate) fn objects_dir(&self) -> &Path {
        &self.objects
    }

    pub(crate) fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// A stored copy of the blob `hash`, and whether it is the executable one. Only a regular
    /// file counts: anything else under an object's name (a symbolic link left by an older
    /// tuna) is not content the store vouches for.
    fn find_object(&self, hash: &[u8; 32]) -> Option<(PathBuf, bool)> {
        [false, true]
            .into_iter()
            .map(|x| (self.object_path(hash, x), x))
            .find(|(p, _)| self.object_is_regular(p))
    }

    fn object_is_regular(&self, object: &Path) -> bool {
        fs::symlink_metadata(object).is_ok_and(|m| m.file_type().is_file())
    }

    fn put_dir(&self, root: &Path, within: &Path) -> Result<Digest, CasError> {
        let (found, empty_dirs) = Tree::walk(root, within)?;
        let mut files = Vec::with_capacity(found.len());
        for f in found {
            let (digest, size) = self.put_file(&f.source, f.executable, f.copy)?;
            files.push(TreeFile {
                path: f.path,
                digest,
                executable: f.executable,
                size,
            });
        }
        self.put_tree(&Tree {
            format: TREE_FORMAT,
            files,
            empty_dirs,
        })
    }

    /// Stores one regular file; returns its digest and size. `copy`: the file is not the
    /// step's alone (reached through a link, or it has other names), so it is never linked in
    /// nor made read-only: hashed where it is, and copied only when the blob is new.
    fn put_file(
        &self,
        source: &Path,
        executable: bool,
        copy: bool,
    ) -> Result<(Digest, u64), CasError> {
        let tmp = self.temp_path();
        if copy {
            let file = File::open(source).at(source)?;
            let len = file.metadata().at(source)?.len();
            let hash = hash_reader(&file).at(source)?;
            if self.object_is_regular(&self.object_path(hash.as_bytes(), executable)) {
                return Ok((Digest::blob(hash), len));
            }
            return self.copy_in(source, &tmp, executable).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            });
        }
        if self.link && fs::hard_link(source, &tmp).is_ok() {
            self.link_in(source, &tmp, executable).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })
        } else {
            self.copy_in(source, &tmp, executable).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })
        }
    }

    /// `tmp` is a hard link to `source`: hash it in place, and if the blob is new, make the
    /// shared inode read-only and rename `tmp` into the objects.
    fn link_in(
        &self,
        source: &Path,
        tmp: &Path,
        executable: bool,
    ) -> Result<(Digest, u64), CasError> {
        let file = File::open(tmp).at(source)?;
        let before = file.metadata().at(source)?;
        let hash = hash_reader(&file).at(source)?;
        let object = self.object_path(hash.as_bytes(), executable);
        if self.object_is_regular(&object) {
            fs::remove_file(tmp).at(tmp)?;
        } else {
            seal(tmp, &file, executable)?;
            let after = file.metadata().at(source)?;
            let stamp = |m: &fs::Metadata| (m.len(), m.mtime(), m.mtime_nsec());
            if stamp(&after) != stamp(&before) {
                // Written to while we hashed it: the content may not match the name.
                fs::remove_file(tmp).at(tmp)?;
                return Err(CasError::Changed {
                    path: source.to_path_buf(),
                });
            }
            rename_into(tmp, &object)?;
        }
        Ok((Digest::blob(hash), before.len()))
    }

    /// Copies `source` to `tmp` while hashing it, then renames it into the objects.
    fn copy_in(
        &self,
        source: &Path,
        tmp: &Path,
        executable: bool,
    ) -> Result<(Digest, u64), CasError> {
        let input = File::open(source).at(source)?;
        let mut out = File::create_new(tmp).at(tmp)?;
        let (hash, len) = copy_hashing(&input, &mut out).at(source)?;
        let object = self.object_path(hash.as_bytes(), executable);
        if self.object_is_regular(&object) {
            fs::remove_file(tmp).at(tmp)?;
        } else {
            seal(tmp, &out, executable)?;
            rename_into(tmp, &object)?;
        }
        Ok((Digest::blob(hash), len))
    }

    fn temp_path(&self) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{}-{n}", std::process::id()))
    }
}

/// Makes the new blob at `tmp` read-only (0444, or 0555 if `executable`) and durable.
fn seal(tmp: &Path, file: &File, executable: bool) -> Result<(), CasError> {
    let mode = if executable { 0o555 } else { 0o444 };
    file.set_permissions(fs::Permissions::from_mode(mode))
        .at(tmp)?;
    file.sync_all().at(tmp)
}

/// Gives the sealed blob at `tmp` its name.
fn rename_into(tmp: &Path, object: &Path) -> Result<(), CasError> {
    let parent = object.parent().expect("objects have a parent");
    fs::create_dir_all(parent).at(parent)?;
    fs::rename(tmp, object).at(object)
}

/// Puts the object at `dest` by hard link, or by copy where linking fails.
fn place(object: &Path, executable: bool, dest: &Path) -> Result<(), CasError> {
    let tmp = sibling_temp(dest);
    if fs::hard_link(object, &tmp).is_ok() {
        return fs::rename(&tmp, dest).at(dest).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        });
    }
    copy_with_mode(object, executable, dest)
}

/// Copies the object to `dest` as a writable file (0644, or 0755 if `executable`).
fn copy_with_mode(object: &Path, executable: bool, dest: &Path) -> Result<(), CasError> {
    let tmp = sibling_temp(dest);
    let result = fs::copy(object, &tmp)
        .and_then(|_| {
            fs::set_permissions(
                &tmp,
                fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 }),
            )
        })
        .and_then(|()| fs::rename(&tmp, dest));
    result.at(dest).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// A temporary name next to `dest`, so that the final rename stays on one filesystem.
fn sibling_temp(dest: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.{}-{n}.tuna-tmp", std::process::id()))
}

/// Where the output at `path` really is, once every symbolic link on its way is resolved; it
/// must be inside `within` (canonical).
pub(crate) fn confined(path: &Path, within: &Path) -> Result<PathBuf, CasError> {
    let refuse = |reason: String| CasError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    match fs::canonicalize(path) {
        Ok(real) if real.starts_with(within) => Ok(real),
        Ok(real) => Err(refuse(format!(
            "it leads to {}, outside the step's folder; an output must be a file or folder \
             the step wrote (copy it in rather than linking to it)",
            real.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(refuse(
            "it is a symbolic link to something that does not exist".into(),
        )),
        Err(e) => Err(CasError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

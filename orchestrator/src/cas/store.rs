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

    /// Stores the file or folder at `path`, which stays in place. A file on the store's
    /// filesystem is hard-linked in and becomes read-only; others are copied.
    pub fn put(&self, path: &Path) -> Result<Digest, CasError> {
        let meta = fs::metadata(path).at(path)?;
        if meta.is_file() {
            Ok(self
                .put_file(path, meta.permissions().mode() & 0o111 != 0)?
                .0)
        } else if meta.is_dir() {
            self.put_dir(path)
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
        if !object.exists() {
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
                if !object.exists() {
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
                if !object.exists() {
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
    /// where possible, by copy otherwise. Hard-linked files are read-only.
    pub fn materialize(&self, digest: &Digest, dest: &Path) -> Result<(), CasError> {
        if !digest.is_tree() {
            let (object, executable) = self
                .find_object(digest.hash())
                .ok_or(CasError::Missing(*digest))?;
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
            if wanted.exists() {
                place(&wanted, file.executable, &target)?;
            } else {
                let (other, _) = self
                    .find_object(hash)
                    .ok_or(CasError::Missing(file.digest))?;
                copy_with_mode(&other, file.executable, &target)?;
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

    /// A stored copy of the blob `hash`, and whether it is the executable one.
    fn find_object(&self, hash: &[u8; 32]) -> Option<(PathBuf, bool)> {
        [false, true]
            .into_iter()
            .map(|x| (self.object_path(hash, x), x))
            .find(|(p, _)| p.exists())
    }

    fn put_dir(&self, root: &Path) -> Result<Digest, CasError> {
        let (found, empty_dirs) = Tree::walk(root)?;
        let mut files = Vec::with_capacity(found.len());
        for f in found {
            let (digest, size) = self.put_file(&f.source, f.executable)?;
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

    /// Stores one file; returns its digest and size.
    fn put_file(&self, source: &Path, executable: bool) -> Result<(Digest, u64), CasError> {
        let tmp = self.temp_path();
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
        if object.exists() {
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
        if object.exists() {
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

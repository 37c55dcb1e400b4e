//! What the store takes in besides plain files, and how it checks what it hands back: symbolic
//! links followed only inside the step's folder and then copied, files with other names never
//! made read-only, damaged blobs caught by size or by hash.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use tempfile::TempDir;

use super::{Cas, CasError};

/// A store under `tmp/cas`, a step folder `tmp/step` and a folder outside it, `tmp/outside`.
fn setup() -> (TempDir, Cas) {
    let tmp = TempDir::new().unwrap();
    let cas = Cas::open(&tmp.path().join("cas")).unwrap();
    fs::create_dir_all(tmp.path().join("step")).unwrap();
    fs::create_dir_all(tmp.path().join("outside/models")).unwrap();
    fs::write(tmp.path().join("outside/secret"), b"secret").unwrap();
    fs::write(tmp.path().join("outside/models/w.bin"), b"weights").unwrap();
    (tmp, cas)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn objects(cas: &Cas) -> Vec<fs::Metadata> {
    let mut out = Vec::new();
    for shard in fs::read_dir(cas.objects_dir()).unwrap() {
        for o in fs::read_dir(shard.unwrap().path()).unwrap() {
            out.push(o.unwrap().path().symlink_metadata().unwrap());
        }
    }
    out
}

#[test]
fn a_link_to_a_file_outside_the_step_is_refused_and_its_target_untouched() {
    let (tmp, cas) = setup();
    let step = tmp.path().join("step");
    symlink(tmp.path().join("outside/secret"), step.join("out.txt")).unwrap();
    let err = cas.put(&step.join("out.txt"), &step).unwrap_err();
    assert!(
        err.to_string().contains("outside the step's folder"),
        "{err}"
    );
    assert_eq!(mode(&tmp.path().join("outside/secret")), 0o644);
    assert!(objects(&cas).is_empty());
}

#[test]
fn a_link_inside_the_step_is_stored_as_a_copy_of_its_target() {
    let (tmp, cas) = setup();
    let step = tmp.path().join("step");
    fs::write(step.join("real.txt"), b"mine").unwrap();
    symlink("real.txt", step.join("out.txt")).unwrap();
    let d = cas.put(&step.join("out.txt"), &step).unwrap();
    assert_eq!(d, cas.put_bytes(b"mine").unwrap());
    // Copied: the target keeps its mode and its one name.
    assert_eq!(mode(&step.join("real.txt")), 0o644);
    assert!(objects(&cas).iter().all(|m| m.file_type().is_file()));
}

#[test]
fn a_folder_with_a_link_to_a_folder_outside_is_refused_without_touching_it() {
    let (tmp, cas) = setup();
    let step = tmp.path().join("step");
    fs::create_dir_all(step.join("adapter")).unwrap();
    fs::write(step.join("adapter/config.json"), b"{}").unwrap();
    symlink(tmp.path().join("outside/models"), step.join("adapter/base")).unwrap();
    let err = cas.put(&step.join("adapter"), &step).unwrap_err();
    assert!(matches!(err, CasError::Unsupported { .. }), "{err}");
    let w = tmp.path().join("outside/models/w.bin");
    assert_eq!(mode(&w), 0o644);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&w).unwrap().nlink(), 1, "never hard-linked");
}

#[test]
fn a_folder_with_links_inside_the_step_is_stored_by_content() {
    let (tmp, cas) = setup();
    let step = tmp.path().join("step");
    fs::create_dir_all(step.join("shared")).unwrap();
    fs::write(step.join("shared/vocab.txt"), b"a b c").unwrap();
    fs::create_dir_all(step.join("out")).unwrap();
    symlink("../shared", step.join("out/tok")).unwrap();
    symlink("../shared/vocab.txt", step.join("out/vocab.txt")).unwrap();
    let d = cas.put(&step.join("out"), &step).unwrap();
    let tree = cas.tree(&d).unwrap();
    let paths: Vec<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["tok/vocab.txt", "vocab.txt"]);
    assert_eq!(mode(&step.join("shared/vocab.txt")), 0o644);
    let back = tmp.path().join("back");
    cas.materialize(&d, &back).unwrap();
    assert!(!back.join("tok").symlink_metadata().unwrap().is_symlink());
    assert_eq!(fs::read(back.join("tok/vocab.txt")).unwrap(), b"a b c");
}

#[test]
fn a_link_loop_and_a_dangling_link_are_refused() {
    let (tmp, cas) = setup();
    let step = tmp.path().join("step");
    fs::create_dir_all(step.join("out/sub")).unwrap();
    symlink("..", step.join("out/sub/up")).unwrap();
    let err = cas.put(&step.join("out"), &step).unwrap_err();
    assert!(err.to_string().contains("back to a folder"), "{err}");
    symlink("nowhere", step.join("dangling")).unwrap();
    let err = cas.put(&step.join("dangling"), &step).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn a_file_with_another_name_is_copied_not_sealed() {
    let (tmp, cas) = setup();
    let step = tmp.path().join("step");
    let outside = tmp.path().join("outside/secret");
    fs::hard_link(&outside, step.join("out.txt")).unwrap();
    let d = cas.put(&step.join("out.txt"), &step).unwrap();
    assert_eq!(d, cas.put_bytes(b"secret").unwrap());
    assert_eq!(
        mode(&outside),
        0o644,
        "the other name's inode stays writable"
    );
    fs::write(&outside, b"edited").unwrap();
    let back = tmp.path().join("back.txt");
    cas.materialize_verified(&d, &back).unwrap();
    assert_eq!(fs::read(&back).unwrap(), b"secret");
}

#[test]
fn a_damaged_blob_is_caught_by_size_in_a_tree_and_by_hash_on_a_verified_read() {
    let (tmp, cas) = setup();
    let step = tmp.path().join("step");
    fs::create_dir_all(step.join("out")).unwrap();
    fs::write(step.join("out/a.txt"), b"0123456789").unwrap();
    let tree = cas.put(&step.join("out"), &step).unwrap();
    let blob = cas.tree(&tree).unwrap().files[0].digest;
    let object = cas.object_path(blob.hash(), false);
    // Truncated (as root the read-only mode does not stop a write).
    fs::set_permissions(&object, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&object, b"0123").unwrap();
    let err = cas.materialize(&tree, &tmp.path().join("t")).unwrap_err();
    assert!(err.to_string().contains("holds 4 bytes, not 10"), "{err}");
    assert!(
        !cas.contains(&tree),
        "a damaged blob is dropped, so the step runs again"
    );
    // Same size, other bytes: only hashing sees it.
    let d = cas.put_bytes(b"abcdefghij").unwrap();
    let object = cas.object_path(d.hash(), false);
    fs::set_permissions(&object, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&object, b"ABCDEFGHIJ").unwrap();
    cas.materialize(&d, &tmp.path().join("cheap")).unwrap();
    let err = cas
        .materialize_verified(&d, &tmp.path().join("pulled"))
        .unwrap_err();
    assert!(matches!(err, CasError::Damaged { .. }), "{err}");
    assert!(!cas.contains(&d));
}

#[test]
fn a_symlink_under_an_object_name_does_not_count_as_stored() {
    let (tmp, cas) = setup();
    let d = cas.put_bytes(b"secret").unwrap();
    let object = cas.object_path(d.hash(), false);
    fs::remove_file(&object).unwrap();
    symlink(tmp.path().join("outside/secret"), &object).unwrap();
    assert!(!cas.contains(&d));
    // Storing the content again replaces the link with a real blob.
    cas.put_bytes(b"secret").unwrap();
    assert!(object.symlink_metadata().unwrap().is_file());
    assert!(cas.contains(&d));
}

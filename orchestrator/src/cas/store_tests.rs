//! Round trips, deduplication, garbage collection and the big-file path of the store.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tempfile::TempDir;

use super::{Cas, CasError, Digest, DigestKind};

fn store(tmp: &TempDir) -> Cas {
    Cas::open(&tmp.path().join("cas")).unwrap()
}

fn write(path: &Path, content: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Number of blobs in the store.
fn object_count(cas: &Cas) -> usize {
    fs::read_dir(cas.objects_dir())
        .unwrap()
        .map(|shard| fs::read_dir(shard.unwrap().path()).unwrap().count())
        .sum()
}

/// A folder with nested files, an executable, an empty folder and a duplicate.
fn sample_folder(root: &Path) {
    write(&root.join("README"), b"read me\n", 0o644);
    write(&root.join("bin/run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&root.join("data/a/b/c.txt"), b"deep\n", 0o644);
    write(&root.join("data/copy-of-readme"), b"read me\n", 0o644);
    fs::create_dir_all(root.join("empty/inner")).unwrap();
}

#[test]
fn digests_print_and_parse() {
    let blob = Digest::blob(blake3::hash(b"x"));
    let tree = Digest::tree(blake3::hash(b"x"));
    assert_eq!(
        blob.to_string(),
        format!("b3:{}", blake3::hash(b"x").to_hex())
    );
    assert!(tree.to_string().starts_with("b3tree:"));
    assert_eq!(blob.to_string().parse::<Digest>().unwrap(), blob);
    assert_eq!(tree.to_string().parse::<Digest>().unwrap(), tree);
    assert_ne!(blob, tree);
    assert_eq!(serde_json::to_string(&tree).unwrap(), format!("\"{tree}\""));
    assert_eq!(
        serde_json::from_str::<Digest>(&format!("\"{blob}\"")).unwrap(),
        blob
    );
    for bad in [
        "",
        "b3:",
        "b3:xyz",
        "sha256:00",
        &format!("b3:{}", "A".repeat(64)),
        &format!("b3:{}", "0".repeat(63)),
    ] {
        assert!(bad.parse::<Digest>().is_err(), "{bad}");
    }
}

#[test]
fn a_file_round_trips_by_hard_link_and_stays_in_place() {
    let tmp = TempDir::new().unwrap();
    let cas = store(&tmp);
    let source = tmp.path().join("out/model.bin");
    write(&source, b"weights", 0o644);
    let digest = cas.put(&source, tmp.path()).unwrap();
    assert_eq!(digest, Digest::blob(blake3::hash(b"weights")));
    assert_eq!(digest.kind(), DigestKind::Blob);
    assert_eq!(fs::read(&source).unwrap(), b"weights");
    let object = cas.object_path(digest.hash(), false);
    assert_eq!(
        fs::metadata(&object).unwrap().ino(),
        fs::metadata(&source).unwrap().ino(),
        "not hard-linked"
    );
    assert_eq!(mode(&object), 0o444);
    assert!(cas.contains(&digest));
    assert_eq!(cas.size(&digest).unwrap(), 7);

    let dest = tmp.path().join("restored/model.bin");
    cas.materialize(&digest, &dest).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"weights");
    // Materializing again replaces the file.
    cas.materialize(&digest, &dest).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"weights");
}

#[test]
fn the_copy_path_stores_the_same_digest() {
    let tmp = TempDir::new().unwrap();
    let mut cas = store(&tmp);
    cas.link = false;
    let source = tmp.path().join("f");
    write(&source, b"copied", 0o755);
    let digest = cas.put(&source, tmp.path()).unwrap();
    assert_eq!(digest, Digest::blob(blake3::hash(b"copied")));
    let object = cas.object_path(digest.hash(), true);
    assert_ne!(
        fs::metadata(&object).unwrap().ino(),
        fs::metadata(&source).unwrap().ino()
    );
    assert_eq!(mode(&object), 0o555);
    assert_eq!(mode(&source), 0o755, "the source was touched");
    assert_eq!(fs::read(object).unwrap(), b"copied");
}

#[test]
fn identical_content_is_stored_once() {
    let tmp = TempDir::new().unwrap();
    let cas = store(&tmp);
    write(&tmp.path().join("a"), b"same", 0o644);
    write(&tmp.path().join("b"), b"same", 0o644);
    let a = cas.put(&tmp.path().join("a"), tmp.path()).unwrap();
    let b = cas.put(&tmp.path().join("b"), tmp.path()).unwrap();
    assert_eq!(a, b);
    assert_eq!(cas.put_bytes(b"same").unwrap(), a);
    assert_eq!(object_count(&cas), 1);
    // The second source was not linked in, so it was left as it was.
    assert_eq!(mode(&tmp.path().join("b")), 0o644);
    assert_eq!(
        fs::read_dir(cas.tmp_dir()).unwrap().count(),
        0,
        "temp files left behind"
    );
}

#[test]
fn a_nested_folder_round_trips_with_its_executable_bits() {
    let tmp = TempDir::new().unwrap();
    let cas = store(&tmp);
    let source = tmp.path().join("checkpoint");
    sample_folder(&source);
    let digest = cas.put(&source, tmp.path()).unwrap();
    assert!(digest.is_tree());
    assert!(cas.contains(&digest));
    assert_eq!(cas.size(&digest).unwrap(), 8 + 18 + 5 + 8);

    let tree = cas.tree(&digest).unwrap();
    let paths: Vec<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "README",
            "bin/run.sh",
            "data/a/b/c.txt",
            "data/copy-of-readme"
        ]
    );
    assert_eq!(tree.empty_dirs, ["empty/inner"]);
    assert!(tree.files[1].executable && !tree.files[0].executable);

    let dest = tmp.path().join("restored");
    cas.materialize(&digest, &dest).unwrap();
    assert_eq!(fs::read(dest.join("data/a/b/c.txt")).unwrap(), b"deep\n");
    assert_eq!(
        fs::read(dest.join("data/copy-of-readme")).unwrap(),
        b"read me\n"
    );
    assert!(mode(&dest.join("bin/run.sh")) & 0o111 != 0);
    assert_eq!(mode(&dest.join("README")) & 0o111, 0);
    assert!(dest.join("empty/inner").is_dir());
    // The same folder stored again (from its restored copy) has the same digest.
    assert_eq!(cas.put(&dest, tmp.path()).unwrap(), digest);
}

#[test]
fn the_same_content_executable_and_not_keeps_both_modes() {
    let tmp = TempDir::new().unwrap();
    let cas = store(&tmp);
    let source = tmp.path().join("src");
    write(&source.join("plain"), b"#!/bin/sh\n", 0o644);
    write(&source.join("tool"), b"#!/bin/sh\n", 0o755);
    let digest = cas.put(&source, tmp.path()).unwrap();
    let dest = tmp.path().join("dest");
    cas.materialize(&digest, &dest).unwrap();
    assert_eq!(mode(&dest.join("plain")) & 0o111, 0);
    assert_ne!(mode(&dest.join("tool")) & 0o111, 0);
}

#[test]
fn a_tree_missing_a_file_is_not_contained() {
    let tmp = TempDir::new().unwrap();
    let cas = store(&tmp);
    let source = tmp.path().join("src");
    sample_folder(&source);
    let digest = cas.put(&source, tmp.path()).unwrap();
    let member = cas.tree(&digest).unwrap().files[2].digest;
    fs::remove_file(cas.object_path(member.hash(), false)).unwrap();
    assert!(!cas.contains(&digest));
    assert!(
        matches!(cas.materialize(&digest, &tmp.path().join("d")), Err(CasError::Missing(d)) if d == member)
    );
}

#[test]
fn gc_keeps_what_is_live_and_drops_the_rest() {
    let tmp = TempDir::new().unwrap();
    let cas = store(&tmp);
    let folder = tmp.path().join("folder");
    sample_folder(&folder);
    let tree = cas.put(&folder, tmp.path()).unwrap();
    let live_blob = cas.put_bytes(b"live").unwrap();
    let dead_blob = cas.put_bytes(b"dead").unwrap();
    let dead_folder = tmp.path().join("dead-folder");
    write(&dead_folder.join("x"), b"only here", 0o644);
    let dead_tree = cas.put(&dead_folder, tmp.path()).unwrap();

    let before = object_count(&cas);
    let planned = cas.gc_dry_run([tree, live_blob]).unwrap();
    assert_eq!(object_count(&cas), before, "a dry run deletes nothing");
    assert!(cas.contains(&dead_blob) && cas.contains(&dead_tree));
    let stats = cas.gc([tree, live_blob]).unwrap();
    assert_eq!(stats, planned);
    assert_eq!(stats.removed, 3, "{stats:?}"); // dead blob, dead tree manifest, its one file
    assert_eq!(
        stats.bytes_freed,
        4 + 9 + cas_tree_len(&dead_tree, &cas, &dead_folder)
    );
    assert!(cas.contains(&tree));
    assert!(cas.contains(&live_blob));
    assert!(!cas.contains(&dead_blob));
    assert!(!cas.contains(&dead_tree));
    cas.materialize(&tree, &tmp.path().join("after-gc"))
        .unwrap();

    let stats = cas.gc([]).unwrap();
    assert_eq!(stats.kept, 0);
    assert_eq!(object_count(&cas), 0);
}

/// The manifest size of a tree that is no longer in the store, recomputed from its folder.
fn cas_tree_len(tree: &Digest, cas: &Cas, folder: &Path) -> u64 {
    let again = Cas::open(&cas.root().join("scratch")).unwrap();
    assert_eq!(again.put(folder, folder).unwrap(), *tree);
    again
        .size(&Digest::new(DigestKind::Blob, *tree.hash()))
        .unwrap()
}

#[test]
fn a_big_file_is_hashed_while_streaming() {
    let tmp = TempDir::new().unwrap();
    let cas = store(&tmp);
    let source = tmp.path().join("big.bin");
    let mut file = fs::File::create(&source).unwrap();
    let mut hasher = blake3::Hasher::new();
    let mut block = vec![0u8; 1 << 20];
    for i in 0..50u32 {
        for (j, byte) in block.iter_mut().enumerate() {
            *byte = (j as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(i)
                .to_le_bytes()[1];
        }
        file.write_all(&block).unwrap();
        hasher.update(&block);
    }
    drop(file);
    let expected = Digest::blob(hasher.finalize());

    assert_eq!(cas.put(&source, tmp.path()).unwrap(), expected);
    let mut copying = store(&tmp);
    copying.link = false;
    let copied = tmp.path().join("big-copy.bin");
    fs::copy(&source, &copied).unwrap();
    fs::remove_file(cas.object_path(expected.hash(), false)).unwrap();
    assert_eq!(copying.put(&copied, tmp.path()).unwrap(), expected);
    assert_eq!(cas.size(&expected).unwrap(), 50 << 20);

    let dest = tmp.path().join("restored.bin");
    cas.materialize(&expected, &dest).unwrap();
    let mut rehash = blake3::Hasher::new();
    let mut reader = fs::File::open(&dest).unwrap();
    loop {
        let n = reader.read(&mut block).unwrap();
        if n == 0 {
            break;
        }
        rehash.update(&block[..n]);
    }
    assert_eq!(Digest::blob(rehash.finalize()), expected);
}

#[test]
fn a_tree_with_an_escaping_path_is_refused() {
    let tmp = TempDir::new().unwrap();
    let cas = store(&tmp);
    let blob = cas.put_bytes(b"x").unwrap();
    let manifest = format!(
        r#"{{"format":1,"files":[{{"path":"../evil","digest":"{blob}","executable":false,"size":1}}],"empty_dirs":[]}}"#
    );
    let tree = Digest::new(
        DigestKind::Tree,
        *cas.put_bytes(manifest.as_bytes()).unwrap().hash(),
    );
    assert!(matches!(
        cas.materialize(&tree, &tmp.path().join("d")),
        Err(CasError::BadTree { .. })
    ));
    assert!(!tmp.path().join("evil").exists());
}

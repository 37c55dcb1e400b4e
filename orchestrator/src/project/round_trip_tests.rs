//! The project round trip without HTTP: collected and hashed here, blobs taken in, a snapshot
//! laid out whose inputs digest exactly as the originals (so cache keys match a local run's).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::*;
use crate::cas::Cas;

struct World {
    _dir: tempfile::TempDir,
    project: std::path::PathBuf,
    snaps: Snapshots,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let cas = Arc::new(Cas::open(&home.join("cas")).unwrap());
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    World {
        snaps: Snapshots::new(&home, cas),
        project,
        _dir: dir,
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const WF: &str = "name: p\nparams:\n  data: data/train.jsonl\nsteps:\n  a:\n    inputs: [corpus/, notes.txt]\n    run: cat notes.txt\n  b:\n    uses: model.init\n    with: { corpus: \"${{ params.data }}\" }\n";

fn collect_here(w: &World, params: &[(&str, &str)]) -> Result<Hashed, ProjectError> {
    let path = w.project.join("wf.yaml");
    std::fs::write(&path, WF).unwrap();
    let dag = crate::dag::load_file(&path).unwrap();
    let overrides: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let params = crate::engine::merged_params(dag.workflow(), &overrides).unwrap();
    collect(dag.workflow(), &params)?.hash()
}

fn upload_all(w: &World, h: &Hashed) {
    for (name, src) in &h.sources {
        let mut f = std::fs::File::open(src).unwrap();
        store_blob(w.snaps.cas(), &w.snaps.aliases, name, &mut f, u64::MAX).unwrap();
    }
}

fn standard_project(w: &World) {
    write(&w.project, "corpus/a.txt", "alpha\n");
    write(&w.project, "corpus/sub/b.sh", "echo b\n");
    std::fs::set_permissions(
        w.project.join("corpus/sub/b.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(w.project.join("corpus/empty")).unwrap();
    write(&w.project, "notes.txt", "notes\n");
    write(&w.project, "data/train.jsonl", "{\"prompt\": \"x\"}\n");
    write(&w.project, "unrelated.bin", "not read by the workflow");
}

#[test]
fn a_snapshot_lays_out_the_files_a_workflow_reads_with_equal_digests() {
    let w = world();
    standard_project(&w);
    let h = collect_here(&w, &[]).unwrap();
    let paths: Vec<&str> = h.manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "corpus/a.txt",
            "corpus/sub/b.sh",
            "data/train.jsonl",
            "notes.txt"
        ]
    );
    assert_eq!(h.manifest.dirs, ["corpus/empty"]);
    let limits = Limits::default();
    assert_eq!(w.snaps.missing(&h.manifest, &limits).unwrap().len(), 4);
    let refused = w.snaps.prepare("wf.yaml", WF, Some(&h.manifest), &limits);
    assert!(
        matches!(refused, Err(ProjectError::NotUploaded { .. })),
        "{refused:?}"
    );
    upload_all(&w, &h);
    assert!(w.snaps.missing(&h.manifest, &limits).unwrap().is_empty());
    let snap = w
        .snaps
        .prepare("wf.yaml", WF, Some(&h.manifest), &limits)
        .unwrap();
    assert_eq!(snap.files, 5, "the four files and the workflow");
    assert_eq!(
        std::fs::read_to_string(snap.dir.join("wf.yaml")).unwrap(),
        WF
    );
    assert!(!snap.dir.join("unrelated.bin").exists());
    assert!(snap.dir.join("corpus/empty").is_dir());
    for input in ["corpus", "notes.txt", "data/train.jsonl"] {
        assert_eq!(
            crate::cache::digest_path(&snap.dir.join(input)).unwrap(),
            crate::cache::digest_path(&w.project.join(input)).unwrap(),
            "{input} digests as it does in the project"
        );
    }
    // The same project again is the same snapshot, in the same folder.
    let again = w
        .snaps
        .prepare("wf.yaml", WF, Some(&h.manifest), &limits)
        .unwrap();
    assert_eq!(again, snap);
    // Laid out again from the store once the folder is gone.
    std::fs::remove_dir_all(&snap.dir).unwrap();
    assert_eq!(w.snaps.lay_out(&snap.digest).unwrap(), snap.dir);
    assert_eq!(
        std::fs::read_to_string(snap.dir.join("notes.txt")).unwrap(),
        "notes\n"
    );
}

#[test]
fn params_choose_which_files_travel() {
    let w = world();
    standard_project(&w);
    write(&w.project, "data/other.jsonl", "{}\n");
    let h = collect_here(&w, &[("data", "data/other.jsonl")]).unwrap();
    let paths: Vec<&str> = h.manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"data/other.jsonl"), "{paths:?}");
    assert!(!paths.contains(&"data/train.jsonl"), "{paths:?}");
    // An absolute path names a place on the daemon's machine: it does not travel.
    let h = collect_here(&w, &[("data", "/srv/data.jsonl")]).unwrap();
    assert!(h.manifest.files.iter().all(|f| !f.path.contains("srv")));
}

#[test]
fn files_that_leave_the_project_or_are_missing_are_refused_by_name() {
    let w = world();
    standard_project(&w);
    let outside = w.project.parent().unwrap().join("secret.txt");
    std::fs::write(&outside, "secret").unwrap();
    std::os::unix::fs::symlink(&outside, w.project.join("corpus/leak.txt")).unwrap();
    let e = collect_here(&w, &[]).unwrap_err().to_string();
    assert!(
        e.contains("corpus/leak.txt") && e.contains("outside the project"),
        "{e}"
    );
    std::fs::remove_file(w.project.join("corpus/leak.txt")).unwrap();
    // A link that stays inside is followed.
    std::os::unix::fs::symlink("../notes.txt", w.project.join("corpus/notes-link.txt")).unwrap();
    let h = collect_here(&w, &[]).unwrap();
    assert!(
        h.manifest
            .files
            .iter()
            .any(|f| f.path == "corpus/notes-link.txt")
    );
    let e = collect_here(&w, &[("data", "../secret.txt")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("../secret.txt") && e.contains("`..`"), "{e}");
    let e = collect_here(&w, &[("data", "data/nope.jsonl")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data/nope.jsonl") && e.contains("does not exist") && e.contains("with.corpus"),
        "{e}"
    );
}

#[test]
fn uploads_are_stored_only_under_the_name_they_hash_to() {
    let w = world();
    let cas = w.snaps.cas();
    let right = BlobName::B3(cas.put_bytes(b"probe").unwrap());
    let wrong_name: BlobName = format!("b3:{}", blake3::hash(b"other").to_hex())
        .parse()
        .unwrap();
    let e = store_blob(
        cas,
        &w.snaps.aliases,
        &wrong_name,
        &mut &b"content"[..],
        100,
    );
    assert!(matches!(e, Err(ProjectError::WrongContent { .. })), "{e:?}");
    let stored = crate::cas::Digest::new(
        crate::cas::DigestKind::Blob,
        *blake3::hash(b"content").as_bytes(),
    );
    assert!(!cas.contains(&stored), "refused content is not stored");
    let e = store_blob(cas, &w.snaps.aliases, &right, &mut &[7u8; 64][..], 10);
    assert!(
        matches!(e, Err(ProjectError::UploadTooLarge { limit: 10 })),
        "{e:?}"
    );
    // A sha256 name: stored under its blake3 digest, found again through the alias.
    let sha: [u8; 32] = Sha256::digest(b"content").into();
    let (d, n) = store_blob(
        cas,
        &w.snaps.aliases,
        &BlobName::Sha256(sha),
        &mut &b"content"[..],
        100,
    )
    .unwrap();
    assert_eq!((d, n), (stored, 7));
    assert_eq!(w.snaps.aliases.get(&sha), Some(stored));
    let bad_sha = [0u8; 32];
    let e = store_blob(
        cas,
        &w.snaps.aliases,
        &BlobName::Sha256(bad_sha),
        &mut &b"content"[..],
        100,
    );
    assert!(matches!(e, Err(ProjectError::WrongContent { .. })), "{e:?}");
    assert_eq!(w.snaps.aliases.get(&bad_sha), None);
    // A manifest naming files by sha256 lays out the same bytes.
    let m = Manifest {
        files: vec![ManifestFile {
            path: "data/x.txt".into(),
            digest: BlobName::Sha256(sha),
            size: 7,
            mode: 0o644,
        }],
        dirs: vec![],
    };
    let snap = w
        .snaps
        .prepare("wf.yaml", WF, Some(&m), &Limits::default())
        .unwrap();
    assert_eq!(
        std::fs::read(snap.dir.join("data/x.txt")).unwrap(),
        b"content"
    );
    // A size that does not match the stored blob is refused.
    let mut lying = m.clone();
    lying.files[0].size = 1;
    let e = w
        .snaps
        .prepare("wf.yaml", WF, Some(&lying), &Limits::default());
    assert!(matches!(e, Err(ProjectError::WrongSize { .. })), "{e:?}");
    // Aliases of blobs gc removed go too.
    cas.gc(Vec::new()).unwrap();
    assert_eq!(w.snaps.aliases.prune(cas, true).unwrap(), 1);
    assert_eq!(w.snaps.aliases.get(&sha), None);
}

#[test]
fn the_workflow_file_name_is_the_workflow() {
    let w = world();
    let d = w.snaps.cas().put_bytes(b"something else").unwrap();
    let m = Manifest {
        files: vec![ManifestFile {
            path: "wf.yaml".into(),
            digest: BlobName::B3(d),
            size: 14,
            mode: 0o644,
        }],
        dirs: vec![],
    };
    let e = w.snaps.prepare("wf.yaml", WF, Some(&m), &Limits::default());
    assert!(matches!(e, Err(ProjectError::BadPath { .. })), "{e:?}");
}

#[test]
fn gc_keeps_what_runs_and_schedules_use() {
    let w = world();
    let a = w
        .snaps
        .prepare("a.yaml", "name: a\n", None, &Limits::default())
        .unwrap();
    let b = w
        .snaps
        .prepare("b.yaml", "name: b\n", None, &Limits::default())
        .unwrap();
    let c = w
        .snaps
        .prepare("c.yaml", "name: c\n", None, &Limits::default())
        .unwrap();
    let home = w
        .snaps
        .dir_of(&a.digest)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::create_dir_all(home.join("submissions/.tmp-crashed")).unwrap();
    let run =
        crate::store::RunRecord::passed_for_test("r1", "a", a.dir.join("a.yaml"), "name: a\n");
    let sched = crate::store::ScheduleRecord {
        format: 1,
        name: "b".into(),
        file_name: "b.yaml".into(),
        workflow_text: "name: b\n".into(),
        params: BTreeMap::new(),
        cron: "0 0 * * *".into(),
        timezone: "UTC".into(),
        missed: crate::workflow::MissedPolicy::Skip,
        concurrency: crate::workflow::ConcurrencyPolicy::Forbid,
        cursor_ms: 0,
        created_at: 0,
        snapshot: Some(crate::store::SnapshotRef {
            digest: b.digest.to_string(),
            files: 1,
        }),
    };
    let plan = gc::plan(&home, [&run], &[sched]).unwrap();
    let mut live = vec![a.digest, b.digest];
    live.sort();
    assert_eq!(plan.live, live);
    let names: Vec<String> = plan
        .unreferenced
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [".tmp-crashed".to_string(), c.digest.hex()]);
}

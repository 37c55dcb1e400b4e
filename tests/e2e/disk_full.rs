//! A full disk: the step that filled it fails saying "no space left on device" with the path,
//! its partial outputs are removed, and while the disk stays full `tuna runs`, `tuna status`
//! and `tuna gc` still work (the store gives up its space reserve). The home lives on a small
//! tmpfs the test mounts (root only: CI runs as root).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use tuna_tests::{Project, Run};

/// A tmpfs of `mib` MiB, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> Option<SmallDisk> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("disk_full: not root, so no tmpfs can be mounted; skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs as root");
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left with one file.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = fs::File::create(&path).unwrap();
        let block = vec![7u8; 1 << 20];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }

    fn free(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(self.path()).unwrap();
        st.blocks_available() as u64 * st.fragment_size() as u64
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn tuna(p: &Project, disk: &SmallDisk, args: &[&str]) -> Run {
    let out = p
        .tuna()
        .env("TUNA_HOME", disk.path().join(".tuna"))
        .args(args)
        .output()
        .unwrap();
    Run::from(out)
}

#[test]
fn a_full_disk_is_named_cleaned_and_leaves_the_store_usable() {
    let Some(disk) = SmallDisk::mount(64) else {
        return;
    };
    let p = Project::new();
    p.file(
        "small.yaml",
        "name: small\nsteps:\n  a: { run: echo hi > a.txt, outputs: [a.txt] }\n",
    );
    tuna(&p, &disk, &["run", "small.yaml"]).ok();
    p.file(
        "fill.yaml",
        "name: fill\nsteps:\n  fill:\n    run: dd if=/dev/zero of=big.bin bs=1M count=200\n    outputs: [big.bin]\n",
    );
    let r = tuna(&p, &disk, &["run", "fill.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let id = r.run_id();
    let st = tuna(&p, &disk, &["status", &id, "--json"]).ok();
    let st: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    let msg = st["steps"][0]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("no space left on device"), "{msg}");
    assert!(msg.contains(&format!("runs/{id}/fill/1")), "{msg}");
    assert!(msg.contains("partial outputs"), "{msg}");
    assert!(disk.free() > 32 << 20, "the partial output was removed");

    // Full from outside tuna: reading the store and gc still work.
    let filler = disk.fill();
    assert!(disk.free() < 1 << 20);
    let runs = tuna(&p, &disk, &["runs"]).ok();
    assert!(runs.stdout.contains(&id), "{}", runs.stdout);
    // (Whether sled needs room to open depends on its log; when it does, the reserve is
    // given up and a warning says so.)
    let status = tuna(&p, &disk, &["status", &id]).ok();
    assert!(status.stdout.contains("no space left"), "{}", status.stdout);
    tuna(&p, &disk, &["gc"]).ok();
    // The reserve is there once there is room again (made again if it was given up).
    fs::remove_file(filler).unwrap();
    let again = tuna(&p, &disk, &["runs"]).ok();
    let listing: Vec<_> = fs::read_dir(disk.path().join(".tuna"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        disk.path().join(".tuna/db.reserve").exists(),
        "free {}: {listing:?} {}",
        disk.free(),
        again.stderr
    );
}

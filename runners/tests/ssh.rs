//! The ssh runner against real OpenSSH servers started by the tests on loopback addresses.

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;
use tuna_runners::ssh::{SshConfig, SshRunner};
use tuna_runners::{BlobError, CheckProblem, Job, KeptOutputs, Outcome, Runner, Stage};
use tuna_tests::sshd::{self, Sshd};

/// A server, a runner for it, and folders for the local and the remote side.
struct Rig {
    sshd: Sshd,
    local: TempDir,
    remote: TempDir,
}

impl Rig {
    fn new(host: &str) -> Option<Rig> {
        if !sshd::available() {
            eprintln!("skipped: no OpenSSH server (/usr/sbin/sshd) on this machine");
            return None;
        }
        Some(Rig {
            sshd: Sshd::start(host),
            local: TempDir::new().unwrap(),
            remote: TempDir::new().unwrap(),
        })
    }

    fn config(&self) -> SshConfig {
        let mut cfg = SshConfig::new("box", &self.sshd.host, self.sshd.port, &sshd::user());
        cfg.identity = Some(self.sshd.client_key());
        cfg.known_hosts = self.sshd.known_hosts();
        cfg.workdir = self.remote.path().to_string_lossy().into_owned();
        cfg.slots = 4;
        cfg.kill_grace = Duration::from_secs(2);
        cfg.lost_after = Duration::from_secs(3);
        cfg.poll_max = Duration::from_millis(100);
        cfg
    }

    fn runner(&self) -> SshRunner {
        SshRunner::new(self.config()).unwrap()
    }

    fn job(&self, step: &str, script: &str) -> Job {
        Job {
            run_id: "run-1".into(),
            step: step.into(),
            attempt: 1,
            script: script.into(),
            env: Default::default(),
            attempt_dir: self.local.path().join(step).join("1"),
            timeout: None,
            wait_for_capacity: None,
            resources: Default::default(),
            stage: Vec::new(),
            outputs: Vec::new(),
            secrets: Vec::new(),
            workdir: None,
        }
    }

    fn remote_file(&self, rel: &str) -> std::path::PathBuf {
        self.remote.path().join(rel)
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn runs_a_job_stages_inputs_streams_logs_and_fetches_outputs() {
    let Some(rig) = Rig::new("127.0.0.1") else {
        return;
    };
    let runner = rig.runner();
    let src = rig.local.path().join("src");
    std::fs::create_dir_all(src.join("dir/sub")).unwrap();
    std::fs::write(src.join("data.txt"), "b\na\nb\n").unwrap();
    std::fs::write(src.join("dir/sub/x"), "x").unwrap();
    let mut job = rig.job(
        "sort",
        "sort -u data.txt > clean.txt; mkdir -p out; cp dir/sub/x out/y\n\
         echo to-stdout; echo to-stderr >&2\n\
         echo '{\"loss\": 0.5}' > \"$TUNA_METRICS\"",
    );
    job.stage = vec![
        Stage::local(src.join("data.txt"), "work/data.txt".into()),
        Stage::local(src.join("dir"), "work/dir".into()),
    ];
    job.outputs = vec!["clean.txt".into(), "out/".into()];
    let (handle, report) = runner.launch_reporting(&job).await.unwrap();
    assert_eq!((report.files, report.uploaded), (2, 2));
    let outcome = runner.watch(&handle).await.unwrap();
    assert_eq!(outcome, Outcome::Exited { code: 0 });
    let dir = &job.attempt_dir;
    assert_eq!(read(&dir.join("work/clean.txt")), "a\nb\n");
    assert_eq!(read(&dir.join("work/out/y")), "x");
    assert_eq!(read(&dir.join("stdout.log")), "to-stdout\n");
    assert_eq!(read(&dir.join("stderr.log")), "to-stderr\n");
    assert!(read(&dir.join("metrics.json")).contains("0.5"));
    // The same inputs for another step travel no more: the host has their blobs.
    let mut again = rig.job("again", "cat data.txt dir/sub/x");
    again.stage = job.stage.clone();
    let (handle, report) = runner.launch_reporting(&again).await.unwrap();
    assert_eq!((report.files, report.uploaded), (2, 0));
    assert_eq!(
        runner.watch(&handle).await.unwrap(),
        Outcome::Exited { code: 0 }
    );
    assert_eq!(read(&again.attempt_dir.join("stdout.log")), "b\na\nb\nx");
    // An output made on this host is kept there: a step that needs it uploads nothing.
    let mut downstream = rig.job("downstream", "cat ../in/sort/clean.txt");
    downstream.stage = vec![Stage::local(
        dir.join("work/clean.txt"),
        "in/sort/clean.txt".into(),
    )];
    let (handle, report) = runner.launch_reporting(&downstream).await.unwrap();
    assert_eq!((report.files, report.uploaded), (1, 0));
    assert_eq!(
        runner.watch(&handle).await.unwrap(),
        Outcome::Exited { code: 0 }
    );
    assert_eq!(read(&downstream.attempt_dir.join("stdout.log")), "a\nb\n");
}

#[tokio::test]
async fn exit_codes_env_values_and_the_process_group() {
    let Some(rig) = Rig::new("127.0.0.1") else {
        return;
    };
    let runner = rig.runner();
    let failing = rig.job("fail", "exit 3");
    let h = runner.launch(&failing).await.unwrap();
    assert_eq!(runner.watch(&h).await.unwrap(), Outcome::Exited { code: 3 });

    let pwned = rig.remote_file("pwned");
    let evil = format!("'; touch {} #", pwned.display());
    let mut env = rig.job(
        "env",
        "printf '%s' \"$EVIL\"; echo; echo \"$CUDA_VISIBLE_DEVICES\"",
    );
    env.env.insert("EVIL".into(), evil.clone());
    env.resources.gpus = vec![tuna_runners::Gpu {
        kind: "a100".into(),
        index: 1,
    }];
    let h = runner.launch(&env).await.unwrap();
    assert_eq!(runner.watch(&h).await.unwrap(), Outcome::Exited { code: 0 });
    assert_eq!(
        read(&env.attempt_dir.join("stdout.log")),
        format!("{evil}\n1\n")
    );
    assert!(!pwned.exists(), "the env value ran as a command");
}

#[tokio::test]
async fn launching_an_attempt_twice_runs_it_once() {
    let Some(rig) = Rig::new("127.0.0.1") else {
        return;
    };
    let runner = rig.runner();
    let count = rig.remote_file("count");
    let job = rig.job(
        "once",
        &format!("echo ran >> {}; sleep 0.3", count.display()),
    );
    let (a, b) = tokio::join!(runner.launch(&job), runner.launch(&job));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both launches name the same supervisor");
    let again = runner.launch(&job).await.unwrap();
    assert_eq!(runner.watch(&a).await.unwrap(), Outcome::Exited { code: 0 });
    assert_eq!(
        runner.watch(&again).await.unwrap(),
        Outcome::Exited { code: 0 }
    );
    // Launched after it ended: still not run again.
    runner.launch(&job).await.unwrap();
    assert_eq!(read(&count), "ran\n");
}

#[tokio::test]
async fn timeout_kills_the_remote_process_group() {
    let Some(rig) = Rig::new("127.0.0.1") else {
        return;
    };
    let runner = rig.runner();
    let pidfile = rig.remote_file("bg.pid");
    let mut job = rig.job(
        "slow",
        &format!("sleep 300 & echo $! > {}; wait", pidfile.display()),
    );
    job.timeout = Some(Duration::from_millis(500));
    let h = runner.launch(&job).await.unwrap();
    assert_eq!(runner.watch(&h).await.unwrap(), Outcome::TimedOut);
    let pid: i32 = read(&pidfile).trim().parse().unwrap();
    assert!(
        !tuna_tests::alive(pid),
        "the job's background child survived"
    );
}

#[tokio::test]
async fn cancel_stops_the_job() {
    let Some(rig) = Rig::new("127.0.0.1") else {
        return;
    };
    let runner = rig.runner();
    let started = rig.remote_file("started");
    let job = rig.job(
        "cancel-me",
        &format!("touch {}; sleep 300", started.display()),
    );
    let h = runner.launch(&job).await.unwrap();
    tuna_tests::wait_until(Duration::from_secs(10), "the job to start", || {
        started.exists()
    });
    runner.cancel(&h).await.unwrap();
    assert_eq!(runner.watch(&h).await.unwrap(), Outcome::Cancelled);
}

#[tokio::test]
async fn a_new_runner_reattaches_and_collects_a_result_that_finished_meanwhile() {
    let Some(rig) = Rig::new("127.0.0.1") else {
        return;
    };
    let gate = rig.remote_file("go");
    let mut job = rig.job(
        "adopt",
        &format!(
            "echo before; while [ ! -e {} ]; do sleep 0.05; done; echo after; echo r > result",
            gate.display()
        ),
    );
    job.outputs = vec!["result".into()];
    let handle = {
        let first = rig.runner();
        first.launch(&job).await.unwrap()
        // The launching runner (and its connection) is gone here, like a killed tuna.
    };
    std::fs::write(&gate, "").unwrap();
    let done = rig.remote_file("runs/run-1/adopt/1/exit.json");
    tuna_tests::wait_until(Duration::from_secs(10), "the job to finish", || {
        done.exists()
    });
    let second = rig.runner();
    let relaunched = second.launch(&job).await.unwrap();
    assert_eq!(relaunched.data["supervisor"], handle.data["supervisor"]);
    assert_eq!(
        second.watch(&handle).await.unwrap(),
        Outcome::Exited { code: 0 }
    );
    assert_eq!(read(&job.attempt_dir.join("stdout.log")), "before\nafter\n");
    assert_eq!(read(&job.attempt_dir.join("work/result")), "r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_reopened_and_the_job_watched_to_its_end() {
    let Some(rig) = Rig::new("127.0.0.1") else {
        return;
    };
    let runner = rig.runner();
    let gate = rig.remote_file("go");
    let job = rig.job(
        "cut",
        &format!(
            "echo one; while [ ! -e {} ]; do sleep 0.05; done; echo two",
            gate.display()
        ),
    );
    let h = runner.launch(&job).await.unwrap();
    let watching = {
        let h = h.clone();
        let runner = std::sync::Arc::new(runner);
        let r = runner.clone();
        (tokio::spawn(async move { r.watch(&h).await }), runner)
    };
    let log = job.attempt_dir.join("stdout.log");
    tuna_tests::wait_until(Duration::from_secs(10), "the first line", || {
        read(&log) == "one\n"
    });
    assert!(rig.sshd.cut_connections() > 0, "no connection to cut");
    std::fs::write(&gate, "").unwrap();
    assert_eq!(
        watching.0.await.unwrap().unwrap(),
        Outcome::Exited { code: 0 }
    );
    assert_eq!(read(&log), "one\ntwo\n");
}

#[tokio::test]
async fn a_host_that_stops_answering_is_down_and_its_job_lost() {
    let Some(mut rig) = Rig::new("127.0.0.2") else {
        return;
    };
    let runner = rig.runner();
    let job = rig.job("lost", "sleep 300");
    let h = runner.launch(&job).await.unwrap();
    rig.sshd.stop();
    match runner.watch(&h).await.unwrap() {
        Outcome::Lost { reason } => assert!(reason.contains("stopped answering"), "{reason}"),
        other => panic!("expected Lost, got {other:?}"),
    }
    assert!(runner.is_down());
    let info = runner.check().await.unwrap();
    assert_eq!(
        info.problem,
        Some(CheckProblem::Unreachable),
        "{}",
        info.detail
    );
    // A server started again is found by the runner's own probes: the host is up again
    // without any job asking for it.
    rig.sshd.restart();
    tuna_tests::wait_until(Duration::from_secs(20), "the host to be up again", || {
        !runner.is_down()
    });
    // Clean up the detached job.
    runner.cancel(&h).await.unwrap();
    assert_eq!(runner.watch(&h).await.unwrap(), Outcome::Cancelled);
    assert!(!runner.is_down());
}

#[tokio::test]
async fn unknown_and_changed_host_keys_are_refused() {
    let Some(rig) = Rig::new("127.0.0.3") else {
        return;
    };
    let ok = rig.runner().check().await.unwrap();
    assert!(ok.reachable, "{}", ok.detail);
    assert_eq!(ok.problem, None);

    let mut cfg = rig.config();
    cfg.known_hosts = rig.local.path().join("empty_known_hosts");
    let info = SshRunner::new(cfg.clone()).unwrap().check().await.unwrap();
    assert_eq!(info.problem, Some(CheckProblem::HostKeyRefused));
    assert!(info.detail.contains("ssh-keyscan -p"), "{}", info.detail);
    assert!(info.detail.contains("is not in"), "{}", info.detail);
    let err = SshRunner::new(cfg.clone())
        .unwrap()
        .launch(&rig.job("k", "true"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ssh-keyscan"), "{err}");

    // A different key recorded for this host and port.
    let changed = rig.local.path().join("changed_known_hosts");
    let other = rig.local.path().join("other_key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let public = read(&other.with_extension("pub"));
    let mut parts = public.split_whitespace();
    std::fs::write(
        &changed,
        format!(
            "[{}]:{} {} {}\n",
            rig.sshd.host,
            rig.sshd.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        ),
    )
    .unwrap();
    cfg.known_hosts = changed.clone();
    cfg.accept_new = true;
    let info = SshRunner::new(cfg.clone()).unwrap().check().await.unwrap();
    assert_eq!(info.problem, Some(CheckProblem::HostKeyRefused));
    assert!(info.detail.contains("does NOT match"), "{}", info.detail);
    assert!(info.detail.contains("ssh-keygen -R"), "{}", info.detail);

    // accept_new adds an unknown key once, and trusts it from then on.
    cfg.known_hosts = rig.local.path().join("new_known_hosts");
    let info = SshRunner::new(cfg.clone()).unwrap().check().await.unwrap();
    assert!(info.reachable, "{}", info.detail);
    assert_eq!(
        read(&cfg.known_hosts).trim(),
        rig.sshd.known_hosts_line().trim()
    );
    cfg.accept_new = false;
    let info = SshRunner::new(cfg).unwrap().check().await.unwrap();
    assert!(info.reachable, "{}", info.detail);
}

#[tokio::test]
async fn a_key_the_host_does_not_know_fails_authentication() {
    let Some(rig) = Rig::new("127.0.0.1") else {
        return;
    };
    let stranger = rig.local.path().join("stranger");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(status.success());
    let mut cfg = rig.config();
    cfg.identity = Some(stranger);
    let info = SshRunner::new(cfg).unwrap().check().await.unwrap();
    assert_eq!(
        info.problem,
        Some(CheckProblem::AuthFailed),
        "{}",
        info.detail
    );
    assert!(!info.reachable);
}

#[tokio::test]
async fn check_reports_the_gpus_nvidia_smi_finds() {
    let Some(mut rig) = Rig::new("127.0.0.1") else {
        return;
    };
    let none = rig.runner().check().await.unwrap();
    assert!(none.reachable, "{}", none.detail);
    assert!(none.gpus_found.is_empty());
    let bin = rig.local.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("nvidia-smi");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'NVIDIA A100-SXM4-40GB, 40960 MiB'\necho 'NVIDIA A100-SXM4-40GB, 40960 MiB'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    rig.sshd.restart_with_path(&bin);
    let info = rig.runner().check().await.unwrap();
    assert!(info.reachable, "{}", info.detail);
    assert_eq!(info.gpus_found.len(), 2, "{}", info.detail);
    assert_eq!(info.gpus_found[0].name, "NVIDIA A100-SXM4-40GB");
    assert_eq!(info.gpus_found[0].memory_mib, Some(40960));
}

/// The blake3 of a file here, as the runner names blobs.
fn b3(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap())
        .to_hex()
        .to_string()
}

#[tokio::test]
async fn big_outputs_stay_on_the_host_and_are_reused_in_place() {
    let Some(rig) = Rig::new("127.0.0.1") else {
        return;
    };
    let mut cfg = rig.config();
    cfg.keep_remote_over = Some(1024);
    cfg.hasher = Some(env!("CARGO_BIN_EXE_tuna-shim-test").into());
    let runner = SshRunner::new(cfg).unwrap();
    let mut job = rig.job(
        "make",
        "mkdir -p big/sub big/empty; printf '%4096s' | tr ' ' w > big/sub/w.bin\n\
         printf '#!/bin/sh\\necho hi\\n' > big/run.sh; chmod +x big/run.sh\n\
         printf '%2048s' | tr ' ' o > one.bin; echo small > small.txt",
    );
    job.outputs = vec!["big/".into(), "one.bin".into(), "small.txt".into()];
    let h = runner.launch(&job).await.unwrap();
    assert_eq!(runner.watch(&h).await.unwrap(), Outcome::Exited { code: 0 });
    let work = job.attempt_dir.join("work");
    // The small output came back; the big ones did not, and are listed as kept.
    assert_eq!(read(&work.join("small.txt")), "small\n");
    assert!(!work.join("big").exists() && !work.join("one.bin").exists());
    let kept = KeptOutputs::read(&job.attempt_dir).unwrap().unwrap();
    assert_eq!(kept.runner, "box");
    assert_eq!(kept.outputs.keys().collect::<Vec<_>>(), ["big/", "one.bin"]);
    let remote_work = rig.remote_file("runs/run-1/make/1/work");
    let big = &kept.outputs["big/"];
    assert!(big.dir);
    assert_eq!(big.empty_dirs, ["empty"]);
    let paths: Vec<&str> = big.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["run.sh", "sub/w.bin"]);
    assert!(big.files[0].executable && !big.files[1].executable);
    assert_eq!(big.files[1].size, 4096);
    // Each file is named by its blake3 and is in the host's store under that name.
    for f in &big.files {
        let made = remote_work.join("big").join(&f.path);
        assert_eq!(f.hex, b3(&made));
        assert_eq!(b3(&rig.remote_file(&format!("cas/{}", f.hex))), f.hex);
    }
    let one = &kept.outputs["one.bin"];
    assert!(!one.dir && one.files[0].path.is_empty());
    assert_eq!(one.files[0].hex, b3(&remote_work.join("one.bin")));

    // A step on the same host gets them linked from the store: nothing travels.
    let mut next = rig.job(
        "use",
        "wc -c < ../in/make/big/sub/w.bin; ../in/make/big/run.sh; wc -c < ../in/make/one.bin\n\
         test -d ../in/make/big/empty",
    );
    let mut stage = Stage::local("/nonexistent".into(), "in/make/big".into());
    stage.stored = Some(big.clone());
    let mut single = Stage::local("/nonexistent".into(), "in/make/one.bin".into());
    single.stored = Some(one.clone());
    next.stage = vec![stage, single];
    let (h, report) = runner.launch_reporting(&next).await.unwrap();
    assert_eq!((report.files, report.uploaded), (3, 0));
    assert_eq!(runner.watch(&h).await.unwrap(), Outcome::Exited { code: 0 });
    assert_eq!(
        read(&next.attempt_dir.join("stdout.log")),
        "4096\nhi\n2048\n"
    );

    // The store answers which blobs it has, and streams them out.
    let store = runner.blob_store().unwrap();
    let absent = "0".repeat(64);
    let hexes = vec![one.files[0].hex.clone(), absent.clone()];
    assert_eq!(
        store.missing(&hexes, Duration::from_secs(5)).unwrap(),
        [absent]
    );
    let mut session = store.session().unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut session.open(&one.files[0].hex).unwrap(), &mut bytes).unwrap();
    assert_eq!(bytes.len(), 2048);
    assert!(matches!(
        session.open(&"1".repeat(64)),
        Err(BlobError::Missing { .. })
    ));
}

#[tokio::test]
async fn blobs_stream_from_one_host_into_another_checked_by_digest() {
    let (Some(a), Some(b)) = (Rig::new("127.0.0.1"), Rig::new("127.0.0.2")) else {
        return;
    };
    let content = "model weights ".repeat(10_000);
    std::fs::create_dir_all(a.remote_file("cas")).unwrap();
    let hex = blake3::hash(content.as_bytes()).to_hex().to_string();
    std::fs::write(a.remote_file(&format!("cas/{hex}")), &content).unwrap();
    let (ra, rb) = (a.runner(), b.runner());
    let (sa, sb) = (ra.blob_store().unwrap(), rb.blob_store().unwrap());
    let mut from = sa.session().unwrap();
    let mut to = sb.session().unwrap();
    assert!(!to.has(&hex).unwrap());
    let moved = to.put(&hex, false, &mut from.open(&hex).unwrap()).unwrap();
    assert_eq!(moved, content.len() as u64);
    assert_eq!(
        std::fs::read_to_string(b.remote_file(&format!("cas/{hex}"))).unwrap(),
        content
    );
    // Already there: nothing moves.
    assert_eq!(to.put(&hex, false, &mut &b"ignored"[..]).unwrap(), 0);
    // Content that does not match its name never lands under it.
    let wrong = "2".repeat(64);
    match to.put(&wrong, false, &mut &b"not it"[..]) {
        Err(BlobError::Corrupt { hex, .. }) => assert_eq!(hex, wrong),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!b.remote_file(&format!("cas/{wrong}")).exists());
    assert!(!to.has(&wrong).unwrap());
}

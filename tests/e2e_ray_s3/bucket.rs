//! A Ray runner whose artifacts travel through a bucket: inputs go up by digest, outputs come
//! back or stay in the bucket past `keep_remote_over`, cache hits check the bucket, `tuna pull`
//! and `tuna gc` reach it, and a bad bucket or key is named before anything runs.

use std::time::Duration;

use serde_json::Value;
use tuna_runners::{AttemptFolders, BlobStore};
use tuna_tests::Project;

use super::{b3, cluster, empty, in_local_store, moto, project, tuna};

const WAIT: Duration = Duration::from_secs(10);

const FILES: &str = r#"
name: ray-s3-files
steps:
  prep:
    outputs: [raw.txt]
    run: printf 'b\na\nb\n' > raw.txt
  train:
    runs-on: ray
    env: { GREETING: hello-bucket }
    inputs: [data.txt]
    outputs: [model.txt, ckpt/, where.txt]
    run: |
      sort -u ${{ steps.prep.outputs.raw.txt }} > model.txt && cat data.txt >> model.txt
      mkdir -p ckpt/empty && echo w > ckpt/weights.bin
      pwd > where.txt
      echo '{"loss": 0.25}' > "$TUNA_METRICS"
      echo "trained on ray: $GREETING"
  report:
    run: |
      wc -l < ${{ steps.train.outputs.model.txt }} > lines.txt
      ls ${{ steps.train.outputs.ckpt }} > ckpt.txt
    outputs: [lines.txt, ckpt.txt]
"#;

#[test]
fn a_middle_step_passes_files_both_ways_through_the_bucket() {
    let (place, p) = project("files", FILES, "");
    p.file("data.txt", "from-the-project\n");
    let c = cluster();
    let r = tuna(&p, &["run", "wf.yaml"]).ok();
    let id = r.run_id();
    let status = p.status(&id);
    let train = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "train")
        .unwrap();
    assert_eq!(train["runner"], "ray", "{status}");
    let jobs = c.jobs_of(&id, "train");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].1, "SUCCEEDED");
    // Outputs came back through the bucket, and the local step downstream used them.
    let work = p.home().join(format!("runs/{id}/train/1/work"));
    let model = "a\nb\nfrom-the-project\n";
    assert_eq!(
        std::fs::read_to_string(work.join("model.txt")).unwrap(),
        model
    );
    assert!(work.join("ckpt/empty").is_dir());
    let report = p.home().join(format!("runs/{id}/report/1/work"));
    assert_eq!(p_read(&report.join("lines.txt")).trim(), "3");
    assert_eq!(p_read(&report.join("ckpt.txt")), "empty\nweights.bin\n");
    // The blobs are in the bucket by digest: the input that went up, the outputs that came back.
    let store = place.store();
    let want = [b3(b"from-the-project\n"), b3(model.as_bytes()), b3(b"w\n")];
    let lacking = store.missing(&want, WAIT).unwrap();
    assert!(lacking.is_empty(), "not in the bucket: {lacking:?}");
    let exit = store
        .get_object(&format!("runs/{id}/train/1/exit.json"))
        .unwrap()
        .expect("the exit record is in the bucket");
    assert!(
        String::from_utf8_lossy(&exit).contains("exited"),
        "{exit:?}"
    );
    // The node worked in a folder of its own under `workdir`, and removed it.
    let node = place.node_dir.path().join(format!("{id}/train/1"));
    assert_eq!(
        p_read(&work.join("where.txt")).trim(),
        node.join("work").display().to_string()
    );
    assert!(!node.exists(), "{} is left on the node", node.display());
    assert!(
        empty(place.node_dir.path()),
        "the run's folders are left on the node"
    );
    // No credential went into the job's environment, which Ray shows to anyone.
    let (_, body) = c.get(&format!("/api/jobs/{}", jobs[0].0));
    let sent: Value = serde_json::from_str(&body).unwrap();
    let vars = sent["runtime_env"]["env_vars"].as_object().unwrap();
    assert!(vars.contains_key("GREETING"), "{body}");
    assert!(
        !body.contains(&moto().secret_key),
        "the secret was sent: {body}"
    );
    assert!(!vars.keys().any(|k| k.starts_with("AWS_")), "{body}");
    assert!(!body.contains(&c.token), "{body}");
    // Metrics and logs came back.
    let metrics = p_read(&p.home().join(format!("runs/{id}/train/1/metrics.json")));
    assert!(metrics.contains("0.25"), "{metrics}");
    let logs = tuna(&p, &["logs", &id, "train"]).ok();
    assert!(
        logs.stdout.contains("trained on ray: hello-bucket"),
        "{}",
        logs.stdout
    );
    // Run again: all cache hits, no new job, nothing uploaded.
    let again = tuna(&p, &["run", "wf.yaml"]).ok();
    let statuses = p.step_statuses(&again.run_id());
    assert!(statuses.iter().all(|(_, s)| s == "cached"), "{statuses:?}");
    assert!(c.jobs_of(&again.run_id(), "train").is_empty());
}

fn p_read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const BIG: usize = 8192;

fn big() -> Vec<u8> {
    vec![b'w'; BIG]
}

const KEEP: &str = r#"
name: ray-s3-keep
steps:
  train:
    runs-on: ray
    run: |
      head -c 8192 /dev/zero | tr '\0' w > big.bin
      echo small > note.txt
    outputs: [big.bin, note.txt]
"#;

/// After KEEP's step: one here and one on Ray that read the big output.
const USE: &str = r#"
  use:
    run: wc -c < ${{ steps.train.outputs.big.bin }} > size.txt
    outputs: [size.txt]
  use-there:
    runs-on: ray
    run: wc -c < ${{ steps.train.outputs.big.bin }} > size.txt
    outputs: [size.txt]
"#;

const KEEP_OVER: &str = "    keep_remote_over: 1KiB\n";

#[test]
fn a_big_output_stays_in_the_bucket_until_a_local_step_or_pull_needs_it() {
    let (place, p) = project("keep", KEEP, KEEP_OVER);
    let id = tuna(&p, &["run", "wf.yaml"]).ok().run_id();
    let hex = b3(&big());
    let store = place.store();
    // The big output stayed in the bucket, recorded by location; the small one came back.
    assert!(
        store
            .missing(std::slice::from_ref(&hex), WAIT)
            .unwrap()
            .is_empty()
    );
    assert!(!in_local_store(&p, &hex), "the big output came here");
    let attempt = p.home().join(format!("runs/{id}/train/1"));
    let kept = p_read(&attempt.join("kept.json"));
    assert!(
        kept.contains("\"runner\": \"ray\"") && kept.contains(&hex),
        "{kept}"
    );
    assert!(!attempt.join("work/big.bin").exists());
    assert_eq!(p_read(&attempt.join("work/note.txt")), "small\n");
    // `tuna pull` fetches it, checked by digest.
    let pulled = tuna(&p, &["pull", &id, "train", "--to", "pulled"]).ok();
    assert!(pulled.stdout.contains("ray"), "{}", pulled.stdout);
    assert_eq!(std::fs::read(p.path("pulled/big.bin")).unwrap(), big());
    assert_eq!(p.read("pulled/note.txt"), "small\n");
    // A later local step needs it: the cache hit checks the bucket, the blob comes here.
    p.file("wf.yaml", &format!("{}{}", KEEP.trim_end(), USE));
    let id2 = tuna(&p, &["run", "wf.yaml"]).ok().run_id();
    assert_eq!(p.step_status(&id2, "train"), "cached");
    assert_eq!(p.step_status(&id2, "use"), "passed");
    let size = p_read(&p.home().join(format!("runs/{id2}/use/1/work/size.txt")));
    assert_eq!(size.trim(), BIG.to_string());
    assert!(in_local_store(&p, &hex));
    // On Ray it is read from the bucket where it is.
    assert_eq!(p.step_status(&id2, "use-there"), "passed");
    let there = p_read(
        &p.home()
            .join(format!("runs/{id2}/use-there/1/work/size.txt")),
    );
    assert_eq!(there.trim(), BIG.to_string());
}

#[test]
fn a_cache_hit_whose_kept_blob_left_the_bucket_reruns_the_producer() {
    let (place, p) = project("gone", KEEP, KEEP_OVER);
    let c = cluster();
    let id = tuna(&p, &["run", "wf.yaml"]).ok().run_id();
    let hex = b3(&big());
    let store = place.store();
    let again = tuna(&p, &["run", "wf.yaml"]).ok().run_id();
    assert_eq!(p.step_status(&again, "train"), "cached");
    // The blob goes from the bucket behind tuna's back.
    let removed = store.remove(std::slice::from_ref(&hex), WAIT).unwrap();
    assert_eq!(removed.blobs, 1);
    let third = tuna(&p, &["run", "wf.yaml"]).ok().run_id();
    assert_eq!(p.step_status(&third, "train"), "passed");
    assert_eq!(c.jobs_of(&third, "train").len(), 1);
    let status = p.status(&third);
    let train = &status["steps"].as_array().unwrap()[0];
    assert_eq!(train["name"], "train");
    assert!(
        train["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "output big.bin missing on runner ray"),
        "{status}"
    );
    assert_eq!(train["kept_on"]["big.bin"], "ray", "{status}");
    assert!(
        store
            .missing(std::slice::from_ref(&hex), WAIT)
            .unwrap()
            .is_empty()
    );
    assert_ne!(id, third);
}

#[test]
fn gc_removes_unreferenced_blobs_from_the_bucket_and_keeps_referenced_ones() {
    let (place, p) = project("gc", KEEP, KEEP_OVER);
    let store = place.store();
    // A blob no record names.
    let stray = b"left over from an old run\n".to_vec();
    let stray_hex = b3(&stray);
    let mut session = store.session().unwrap();
    session
        .put(&stray_hex, false, &mut stray.as_slice())
        .unwrap();
    drop(session);
    let id = tuna(&p, &["run", "wf.yaml"]).ok().run_id();
    let hex = b3(&big());
    let both = [hex.clone(), stray_hex.clone()];
    assert!(store.missing(&both, WAIT).unwrap().is_empty());
    let attempts = store.attempts(WAIT).unwrap();
    assert!(
        attempts.iter().any(|a| a.rel() == format!("{id}/train/1")),
        "{attempts:?}"
    );
    let gc = tuna(&p, &["gc", "--keep", "1", "--json"]).ok();
    let report: Value = serde_json::from_str(&gc.stdout).unwrap();
    assert!(gc.stdout.contains("ray"), "{report}");
    assert_eq!(
        store.missing(&both, WAIT).unwrap(),
        vec![stray_hex.clone()],
        "{report}"
    );
    // The kept run's attempt records stay; pulling its output still works.
    assert!(!store.attempts(WAIT).unwrap().is_empty());
    tuna(&p, &["pull", &id, "train", "--to", "pulled"]).ok();
    assert_eq!(std::fs::read(p.path("pulled/big.bin")).unwrap(), big());
    // Once its run is gone, the kept blob and the attempt's records go too.
    tuna(&p, &["gc", "--keep", "0"]).ok();
    assert_eq!(
        store.missing(std::slice::from_ref(&hex), WAIT).unwrap(),
        vec![hex]
    );
    assert!(store.attempts(WAIT).unwrap().is_empty());
}

const TWO: &str = r#"
name: ray-s3-bad
steps:
  prep:
    run: touch "$TUNA_PROJECT_MARK"
  train:
    runs-on: ray
    needs: [prep]
    run: echo never
"#;

/// Runs `tuna ARGS…` in `p` with `vars` added to (or replacing) its environment.
fn tuna_with(p: &Project, args: &[&str], vars: &[(&str, &str)]) -> tuna_tests::Run {
    let mut c = super::command(p, args);
    for (k, v) in vars {
        c.env(k, v);
    }
    tuna_tests::Run::from(c.output().expect("run tuna"))
}

#[test]
fn a_missing_bucket_or_a_wrong_key_is_named_at_check_and_at_run_start() {
    let (place, p) = project("bad", &TWO.replace("$TUNA_PROJECT_MARK", "/dev/null"), "");
    let mark = p.path("ran");
    p.file(
        "wf.yaml",
        &TWO.replace("$TUNA_PROJECT_MARK", &mark.display().to_string()),
    );
    // The good bucket passes the check.
    let good = tuna(&p, &["runners", "check"]);
    assert_eq!(good.code, 0, "{}\n{}", good.stdout, good.stderr);
    assert!(
        good.stdout.contains("credentials may read and write"),
        "{}",
        good.stdout
    );
    // A bucket that does not exist.
    super::inventory(&p, &place, "s3://no-such-bucket-tuna/x", "");
    let check = tuna(&p, &["runners", "check"]);
    assert_ne!(check.code, 0, "{}", check.stdout);
    assert!(
        check
            .stdout
            .contains("runner `ray`: bucket `no-such-bucket-tuna` does not exist"),
        "{}",
        check.stdout
    );
    let run = tuna(&p, &["run", "wf.yaml"]);
    // A store that is not there is tuna's surroundings, not the workflow (README's exit codes).
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("runner `ray`: bucket `no-such-bucket-tuna` does not exist")
            && run.stderr.contains("create it, or fix artifacts.url"),
        "{}",
        run.stderr
    );
    assert!(!mark.exists(), "a step ran");
    assert!(empty(&p.home().join("runs")), "a run was recorded");
    // A wrong secret for the right bucket.
    super::inventory(&p, &place, &place.url, "");
    let wrong = [("AWS_SECRET_ACCESS_KEY", "not-the-secret")];
    let check = tuna_with(&p, &["runners", "check"], &wrong);
    assert_ne!(check.code, 0, "{}", check.stdout);
    assert!(
        check.stdout.contains("runner `ray`: no access to")
            && check
                .stdout
                .contains("check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("auth failed"), "{}", check.stdout);
    assert!(!check.stdout.contains("not-the-secret"), "{}", check.stdout);
    let run = tuna_with(&p, &["run", "wf.yaml"], &wrong);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("runner `ray`: no access to"),
        "{}",
        run.stderr
    );
    assert!(!mark.exists(), "a step ran");
    assert!(empty(&p.home().join("runs")), "a run was recorded");
}

#[test]
fn a_daemon_refuses_a_submitted_run_whose_ray_runner_has_no_bucket() {
    let (place, p) = project(
        "daemon",
        "name: d\nsteps:\n  t:\n    runs-on: ray\n    run: echo hi\n",
        "",
    );
    super::inventory(&p, &place, "s3://no-such-bucket-tuna/d", "");
    let runners = p.path("runners.yaml");
    let mut env: Vec<(String, String)> = moto().env_vars();
    env.push(("TUNA_RUNNERS".into(), runners.display().to_string()));
    env.push(("TUNA_TEST_RAY_TOKEN".into(), cluster().token.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let d = super::daemon_harness::Serve::start(&p, &env);
    let r = d.tuna(&p, &["submit", "wf.yaml"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("runner `ray`: bucket `no-such-bucket-tuna` does not exist"),
        "{}",
        r.stderr
    );
    d.kill();
}

//! The bucket mode when things go wrong: tuna killed while its Ray job runs re-attaches on
//! `tuna resume` and settles the outputs through the bucket; a step that fails on the node
//! fails with its code and leaves the bucket's blobs as they were.

use std::time::Duration;

use tuna_runners::BlobStore;
use tuna_tests::wait_until;

use super::{b3, cluster, command, project, tuna};

#[test]
fn tuna_killed_mid_job_resumes_and_the_outputs_come_back_through_the_bucket() {
    let c = cluster();
    let (place, p) = project("adopt", "", "");
    let gate = p.path("gate");
    p.file(
        "wf.yaml",
        &tuna_tests::ray::gated_workflow("adopt-bucket", &p.path("count"), &gate),
    );
    let (mut child, id) = tuna_tests::spawn_for_id(command(&p, &["run", "wf.yaml"]));
    wait_until(Duration::from_secs(60), "the Ray step to start", || {
        p.read("count") == "ran\n" && p.step_status(&id, "train") == "running"
    });
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    std::fs::write(&gate, "").unwrap();
    let resumed = tuna(&p, &["resume", &id]).ok();
    assert_eq!(resumed.run_id(), id);
    assert_eq!(p.read("count"), "ran\n", "the command ran again");
    let jobs = c.jobs_of(&id, "train");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(p.step_status(&id, "eval"), "passed");
    let logs = tuna(&p, &["logs", &id, "eval"]).ok();
    assert_eq!(logs.stdout.trim(), "result");
    let store = place.store();
    let hex = b3(b"result\n");
    let wait = Duration::from_secs(10);
    assert!(
        store
            .missing(std::slice::from_ref(&hex), wait)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_step_failing_on_the_node_fails_with_its_code_and_the_bucket_keeps_its_blobs() {
    let (place, p) = project(
        "fail",
        r#"
name: fail-bucket
steps:
  train:
    runs-on: ray
    inputs: [data.txt]
    run: |
      cat data.txt
      echo "about to fail" >&2
      exit 3
    outputs: [model.txt]
"#,
        "",
    );
    p.file("data.txt", "the input\n");
    let run = tuna(&p, &["run", "wf.yaml"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let id = run.run_id();
    let status = p.status(&id);
    let train = &status["steps"].as_array().unwrap()[0];
    assert_eq!(train["status"], "failed", "{status}");
    let logs = tuna(&p, &["logs", &id, "train"]).ok();
    assert!(logs.stdout.contains("the input"), "{}", logs.stdout);
    // The input that went up is still there; no outputs list was written for a failed step.
    let store = place.store();
    let wait = Duration::from_secs(10);
    assert!(
        store
            .missing(&[b3(b"the input\n")], wait)
            .unwrap()
            .is_empty()
    );
    let outputs = store
        .get_object(&format!("runs/{id}/train/1/outputs.json"))
        .unwrap();
    assert_eq!(outputs, None);
    let exit = store
        .get_object(&format!("runs/{id}/train/1/exit.json"))
        .unwrap()
        .expect("the exit record");
    assert!(
        String::from_utf8_lossy(&exit).contains("\"code\":3"),
        "{exit:?}"
    );
}

//! Placement on a local runner that declares GPUs: whole GPUs per step, `CUDA_VISIBLE_DEVICES`,
//! waiting for a busy GPU, and a request no runner can meet refused before anything runs.

use tuna_tests::Project;

const RUNNERS: &str = "runners:\n  box:\n    type: local\n    slots: 4\n    gpus: [{ type: a100, count: 1, memory: 40GiB }]\n";

fn gpu_step(name: &str) -> String {
    format!(
        r#"  {name}:
    runs-on: {{ gpu: a100, memory: 40GiB }}
    run: |
      echo "$CUDA_VISIBLE_DEVICES" > "$TUNA_PROJECT_DIR/{name}.gpu"
      mkdir "$TUNA_PROJECT_DIR/gpu-lock"
      sleep 0.3
      rmdir "$TUNA_PROJECT_DIR/gpu-lock"
"#
    )
}

#[test]
fn one_gpu_is_shared_in_turn() {
    let p = Project::new();
    let wf = format!(
        "name: gpus\nsteps:\n{}{}  cpu:\n    run: echo \"[$CUDA_VISIBLE_DEVICES]\" > \"$TUNA_PROJECT_DIR/cpu.gpu\"\n",
        gpu_step("one"),
        gpu_step("two")
    );
    p.file("wf.yaml", &wf).file("runners.yaml", RUNNERS);
    // `mkdir gpu-lock` fails if both GPU steps ever run at once.
    let r = p.run(&["--runners", "runners.yaml", "run", "wf.yaml"]).ok();
    assert_eq!(p.read("one.gpu").trim(), "0");
    assert_eq!(p.read("two.gpu").trim(), "0");
    assert_eq!(p.read("cpu.gpu").trim(), "[]");
    assert!(
        r.stderr.contains("waiting"),
        "one GPU step waited for the other: {}",
        r.stderr
    );
}

#[test]
fn a_request_no_runner_meets_is_refused_before_anything_runs() {
    let p = Project::new();
    p.file("runners.yaml", RUNNERS).file(
        "wf.yaml",
        "name: big\nsteps:\n  ok:\n    run: touch \"$TUNA_PROJECT_DIR/ran\"\n  huge:\n    runs-on: { gpu: h100 }\n    run: echo\n",
    );
    let r = p.run(&["--runners", "runners.yaml", "run", "wf.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("step `huge`: no runner matches"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("box (1 × a100)"), "{}", r.stderr);
    assert!(!p.path("ran").exists());
}

#[test]
fn runs_on_falls_back_to_the_next_alternative() {
    let p = Project::new();
    p.file("runners.yaml", RUNNERS).file(
        "wf.yaml",
        "name: fb\nsteps:\n  s:\n    runs-on: [{ gpu: t4 }, box]\n    run: echo \"[$CUDA_VISIBLE_DEVICES]\" > \"$TUNA_PROJECT_DIR/s.gpu\"\n",
    );
    p.run(&["--runners", "runners.yaml", "run", "wf.yaml"]).ok();
    assert_eq!(p.read("s.gpu").trim(), "[]");
}

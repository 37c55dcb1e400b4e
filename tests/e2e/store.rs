//! The store over time: listing runs, `gc`, and a cache hit needing its artifacts.

use tuna_tests::Project;

const WF: &str = "name: store\nsteps:\n  make:\n    run: head -c 4096 /dev/urandom > blob.bin; echo ran >> \"$TUNA_PROJECT_DIR/ran\"\n    outputs: [blob.bin]\n  use:\n    run: test -s ${{ steps.make.outputs.blob.bin }}\n";

#[test]
fn runs_lists_and_gc_keeps_what_is_referenced() {
    let p = Project::new();
    p.file("wf.yaml", WF);
    p.run(&["run", "wf.yaml"]).ok();
    p.run(&["run", "wf.yaml", "--no-cache"]).ok();
    let third = p.run(&["run", "wf.yaml"]).ok();
    assert_eq!(p.read("ran").lines().count(), 2, "the third run is cached");
    let runs = p.run(&["runs"]).ok();
    assert_eq!(
        runs.stdout.lines().count(),
        4,
        "header + 3 runs: {}",
        runs.stdout
    );
    let gc = p.run(&["gc", "--keep", "1"]).ok();
    assert!(gc.stdout.contains("removed 2 runs"), "{}", gc.stdout);
    let runs = p.run(&["runs", "--json"]).ok();
    let list: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], third.run_id().as_str());
    // the kept run's cached outputs survive gc: the next run is still a cache hit, and the
    // downstream step reads the restored file
    p.run(&["run", "wf.yaml", "-j", "1"]).ok();
    assert_eq!(p.read("ran").lines().count(), 2);
}

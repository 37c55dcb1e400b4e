//! The sealed DAG: order, neighbours, closures, rendering.

use std::fmt::Write;
use std::path::Path;

use tuna::dag::{Dag, GraphFormat, load_str};

fn diamond() -> Dag {
    let text = "
name: diamond
steps:
  d: { needs: [b, c], run: 'true' }
  c: { needs: [a], run: 'true' }
  b: { needs: [a], run: 'true' }
  a: { run: 'true' }
  e: { run: 'true' }
";
    load_str(Path::new("diamond.yaml"), text).unwrap()
}

#[test]
fn topological_order_breaks_ties_by_file_order() {
    let dag = diamond();
    assert_eq!(dag.topo_order(), ["a", "c", "b", "d", "e"]);
    assert_eq!(dag.len(), 5);
}

#[test]
fn neighbours_and_closures() {
    let dag = diamond();
    assert_eq!(dag.needs("d"), ["b", "c"]);
    assert_eq!(dag.dependents("a"), ["c", "b"]);
    assert_eq!(dag.downstream_closure("a"), ["c", "b", "d"]);
    assert!(dag.downstream_closure("e").is_empty());
    assert!(dag.dependents("nope").is_empty());
    assert_eq!(
        dag.layers(),
        vec![vec!["a", "e"], vec!["c", "b"], vec!["d"]]
    );
}

#[test]
fn renders_ascii_dot_and_mermaid() {
    let dag = diamond();
    insta::assert_snapshot!("diamond_ascii", dag.render(GraphFormat::Ascii));
    insta::assert_snapshot!("diamond_dot", dag.render(GraphFormat::Dot));
    insta::assert_snapshot!("diamond_mermaid", dag.render(GraphFormat::Mermaid));
    assert_eq!("dot".parse::<GraphFormat>(), Ok(GraphFormat::Dot));
    assert!("png".parse::<GraphFormat>().is_err());
}

#[test]
fn a_workflow_built_in_code_is_checked_when_sealed() {
    let mut w = diamond().into_workflow();
    w.steps.get_mut("a").unwrap().needs.push("d".into());
    let err = w.clone().seal().unwrap_err();
    assert_eq!(
        err.diagnostics()[0].message,
        "steps depend on each other in a cycle: d → b → a → d"
    );
    w.steps.get_mut("a").unwrap().needs = vec!["zzz".into()];
    assert_eq!(
        w.seal().unwrap_err().diagnostics()[0].code,
        "tuna::workflow::unknown_need"
    );
}

#[test]
fn a_long_layered_workflow_loads() {
    // 10 layers × 100 steps, step (l, i) needs (l-1, i) and (l-1, (i+1) mod 100).
    let mut text = String::from("name: layered\nsteps:\n");
    for l in 0..10 {
        for i in 0..100 {
            let _ = write!(text, "  s{l}-{i}:\n    run: touch s{l}-{i}\n");
            if l > 0 {
                let _ = writeln!(
                    text,
                    "    needs: [s{}-{i}, s{}-{}]",
                    l - 1,
                    l - 1,
                    (i + 1) % 100
                );
            }
        }
    }
    let dag = load_str(Path::new("layered.yaml"), &text).unwrap();
    assert_eq!(dag.len(), 1000);
    assert_eq!(dag.layers().len(), 10);
    assert_eq!(dag.downstream_closure("s8-0"), ["s9-0", "s9-99"]);
}

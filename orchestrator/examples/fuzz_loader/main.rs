//! Fuzzes the workflow loader and validator on stable Rust: mutated corpus files
//! (`tests/corpus`, `workflows/`), inputs that loaded cleanly kept and mutated further, and
//! generated workflows; each loaded (`load_str`), its diagnostics rendered (`render_plain`,
//! `to_json`), and for a valid one every `run:` script rendered with hostile values, the DAG
//! drawn and a schedule's next fire times computed.
//!
//! `cargo run --release --example fuzz_loader -- --seconds 60 [--iterations N] [--seed X]`
//! prints executions/s, the slowest input and peak memory; exits 1 if an input panicked or took
//! over a second (saved under `target/fuzz-findings/fuzz_loader`).

#[path = "../fuzz_common/mod.rs"]
mod fuzz_common;

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use fuzz_common::{Options, Rng, drive, mutate};
use tuna::dag::GraphFormat;
use tuna::dag::load_str;
use tuna::workflow::Action;

const VALUES: &[&str] = &["$(touch /tmp/x)", "'\"`\\\n;!*", "", "a b", "\u{0}"];

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["tests/corpus/valid", "tests/corpus/invalid", "workflows"] {
        for e in std::fs::read_dir(root.join(dir))
            .expect("corpus folder")
            .flatten()
        {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect()
}

/// Loads one input and uses everything a loaded workflow offers; returns the outcome.
fn exercise(input: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(input);
    let dag = match load_str(Path::new("fuzz.yaml"), &text) {
        Ok(dag) => dag,
        Err(e) => {
            let plain = e.render_plain();
            let json = e.to_json();
            assert!(!plain.is_empty() && json.as_array().is_some_and(|a| !a.is_empty()));
            return ("invalid".into(), false);
        }
    };
    let wf = dag.workflow();
    for (i, step) in wf.steps.values().enumerate() {
        if let Action::Run(t) = &step.action {
            let v = VALUES[i % VALUES.len()];
            let _ = t.render_script(|_| v.to_string());
        }
    }
    let _ = dag.render(GraphFormat::Ascii);
    if let Some(s) = &wf.schedule
        && let (Ok(spec), Ok(tz)) = (s.spec(), s.timezone.parse::<chrono_tz::Tz>())
    {
        let from = Utc.with_ymd_and_hms(2024, 3, 9, 0, 0, 0).unwrap();
        let _ = tuna::daemon::upcoming(&spec, tz, from, 3);
    }
    ("valid".into(), true)
}

fn main() {
    let opts = Options::from_args("fuzz_loader");
    let seeds = corpus();
    let others: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    // Inputs that loaded cleanly, mutated further (bounded).
    let valid: RefCell<Vec<Vec<u8>>> = RefCell::new(Vec::new());
    let ok = drive(
        "fuzz_loader",
        &opts,
        |rng: &mut Rng| {
            let pool = valid.borrow();
            match rng.below(10) {
                0 | 1 => mutate::generate(rng),
                2..=4 if !pool.is_empty() => {
                    let base = rng.pick(&pool).clone();
                    mutate::mutate(rng, &base, &others)
                }
                _ => {
                    let base = rng.pick(&others).to_vec();
                    mutate::mutate(rng, &base, &others)
                }
            }
        },
        |input| {
            let (outcome, loaded) = exercise(input);
            if loaded && input.len() < 64 * 1024 {
                let mut pool = valid.borrow_mut();
                if pool.len() < 2000 {
                    pool.push(input.to_vec());
                } else {
                    let i = input.len() % pool.len();
                    pool[i] = input.to_vec();
                }
            }
            outcome
        },
    );
    std::process::exit(if ok { 0 } else { 1 });
}

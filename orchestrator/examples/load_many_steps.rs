//! Loads a generated workflow of N steps (default 100,000; `cargo run --release --example
//! load_many_steps -- N`) and prints how long loading + sealing took, in wall and CPU time.
//! Each step needs one step of the layer before it and reads an output of another through a
//! reference (an implied need). `PHASES=1` also times the two YAML parsers alone.

use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let width = 100;
    let mut text = String::from("name: many\nparams:\n  lr: 1e-4\nsteps:\n");
    for i in 0..n {
        let _ = writeln!(text, "  s{i}:\n    outputs: [out.txt]");
        if i < width {
            let _ = writeln!(text, "    run: echo ${{{{ params.lr }}}} > out.txt");
        } else {
            let (a, b) = (i - width, i - width + 1);
            let _ = writeln!(text, "    needs: [s{b}]");
            let _ = writeln!(
                text,
                "    run: cat ${{{{ steps.s{a}.outputs.out.txt }}}} > out.txt"
            );
        }
    }
    if std::env::var_os("PHASES").is_some() {
        phases(&text);
    }
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let dag = tuna::dag::load_str(Path::new("many.yaml"), &text)
        .unwrap_or_else(|e| panic!("{}", e.render_plain()));
    let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let mib = text.len() >> 20;
    println!(
        "{} steps ({mib} MiB of YAML): loaded and sealed in {wall:.3} s ({cpu:.3} s CPU)",
        dag.len()
    );
}

fn phases(text: &str) {
    use serde::Deserialize;
    let t = cpu_seconds();
    serde::de::IgnoredAny::deserialize(serde_yaml::Deserializer::from_str(text)).unwrap();
    println!("serde_yaml syntax pass: {:.3} s CPU", cpu_seconds() - t);
    let t = cpu_seconds();
    let n = saphyr_parser::Parser::new_from_str(text).count();
    println!("saphyr-parser, {n} events: {:.3} s CPU", cpu_seconds() - t);
}

/// CPU time of this thread: wall time misleads on a busy machine.
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

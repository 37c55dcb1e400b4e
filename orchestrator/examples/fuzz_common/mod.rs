//! What the two fuzz drivers (`fuzz_loader`, `fuzz_api`) share: a seeded RNG, the options
//! (`--iterations N --seconds S --seed X --findings DIR`), and the loop that runs one input at
//! a time under `catch_unwind`, timing each, keeping the slowest, saving every input that
//! panicked, took over a second of CPU time (`--slow-ms`, for unoptimized builds; wall time is counted too) or raised the peak
//! memory by over 256 MiB (`--mem-mb`), and printing the
//! summary (executions/s, slowest input, peak memory). Exits 1 when anything was found.

#![allow(dead_code)]

pub mod mutate;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// xorshift64*: small, fast, reproducible from `--seed`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A size skewed towards small values, up to `max`.
    pub fn size(&mut self, max: usize) -> usize {
        let bits = self.below(usize::BITS as usize - max.leading_zeros() as usize + 1);
        self.below((1usize << bits).min(max) + 1)
    }
}

pub struct Options {
    pub iterations: u64,
    pub seconds: f64,
    pub seed: u64,
    pub findings: PathBuf,
    /// An input slower than this is a finding.
    pub slow: Duration,
    /// An input that raises the process's peak memory by more than this is a finding.
    pub mem: u64,
}

impl Options {
    pub fn from_args(name: &str) -> Options {
        let mut o = Options {
            iterations: u64::MAX,
            seconds: 60.0,
            seed: 1,
            findings: PathBuf::from(format!("target/fuzz-findings/{name}")),
            slow: Duration::from_secs(1),
            mem: 256 << 20,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let v = args.get(i + 1).cloned().unwrap_or_default();
            match args[i].as_str() {
                "--iterations" => o.iterations = v.parse().expect("--iterations N"),
                "--seconds" => o.seconds = v.parse().expect("--seconds S"),
                "--seed" => o.seed = v.parse().expect("--seed X"),
                "--findings" => o.findings = PathBuf::from(v),
                "--slow-ms" => o.slow = Duration::from_millis(v.parse().expect("--slow-ms MS")),
                "--mem-mb" => o.mem = v.parse::<u64>().expect("--mem-mb MB") << 20,
                other => panic!(
                    "unknown argument {other}; use --iterations N --seconds S --seed X \
                     --findings DIR --slow-ms MS --mem-mb MB"
                ),
            }
            i += 2;
        }
        o
    }
}

/// Peak and current resident memory of this process, in bytes (`VmHWM`, `VmRSS`).
pub fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The counts a run ends with.
#[derive(Default)]
pub struct Stats {
    pub execs: u64,
    pub panics: u64,
    /// Inputs whose CPU time (the process's) passed the bar: what the input costs, whatever
    /// else the machine is doing.
    pub slow: u64,
    /// Inputs whose wall time passed the bar (inflated when the machine is busy).
    pub slow_wall: u64,
    /// The most CPU time one input took.
    pub slowest_cpu: Duration,
    pub slowest: Duration,
    pub slowest_len: usize,
    /// Inputs that raised the peak memory by more than the bar.
    pub hungry: u64,
    /// Outcome name → count (e.g. `valid`, `invalid`, `201`, `422`).
    pub outcomes: std::collections::BTreeMap<String, u64>,
}

/// Runs `one` on inputs from `next` until the options' iteration count or time is reached.
/// `one` returns the outcome's name. Prints the summary; returns whether nothing was found.
pub fn drive(
    name: &str,
    opts: &Options,
    mut next: impl FnMut(&mut Rng) -> Vec<u8>,
    mut one: impl FnMut(&[u8]) -> String,
) -> bool {
    let mut rng = Rng::new(opts.seed);
    let mut stats = Stats::default();
    let quiet_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    let limit = Duration::from_secs_f64(opts.seconds);
    let (_, rss_start) = memory();
    let (mut peak_before, _) = memory();
    while stats.execs < opts.iterations && start.elapsed() < limit {
        let input = next(&mut rng);
        let t = Instant::now();
        let c = cpu_time();
        let outcome = catch_unwind(AssertUnwindSafe(|| one(&input)));
        let cpu = cpu_time().saturating_sub(c);
        let dt = t.elapsed();
        stats.slowest_cpu = stats.slowest_cpu.max(cpu);
        if dt > opts.slow {
            stats.slow_wall += 1;
        }
        let (peak_now, _) = memory();
        if peak_now.saturating_sub(peak_before) > opts.mem {
            stats.hungry += 1;
            let grew = format!("peak memory +{} MiB", (peak_now - peak_before) >> 20);
            save(opts, "memory", &input, &grew);
        }
        peak_before = peak_now;
        stats.execs += 1;
        if dt > stats.slowest {
            stats.slowest = dt;
            stats.slowest_len = input.len();
        }
        match outcome {
            Ok(o) => *stats.outcomes.entry(o).or_default() += 1,
            Err(e) => {
                stats.panics += 1;
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                save(opts, "panic", &input, &msg);
            }
        }
        if cpu > opts.slow {
            stats.slow += 1;
            save(opts, "slow", &input, &format!("{cpu:?} CPU, {dt:?} wall"));
        }
    }
    std::panic::set_hook(quiet_hook);
    let secs = start.elapsed().as_secs_f64();
    let (peak, rss_end) = memory();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{name}: {} executions in {secs:.1} s ({:.0}/s), seed {}",
        stats.execs,
        stats.execs as f64 / secs,
        opts.seed
    );
    let outcomes: Vec<String> = stats
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("  outcomes: {}", outcomes.join(", "));
    println!(
        "  panics: {}; inputs over {:?} of CPU: {} (of wall time: {}); most CPU for one input: {:.1} ms; slowest input (wall): {:.1} ms ({} bytes)",
        stats.panics,
        opts.slow,
        stats.slow,
        stats.slow_wall,
        stats.slowest_cpu.as_secs_f64() * 1000.0,
        stats.slowest.as_secs_f64() * 1000.0,
        stats.slowest_len
    );
    println!(
        "  memory: peak {:.1} MiB (resident {:.1} MiB at the start, {:.1} MiB at the end); inputs raising the peak by over {} MiB: {}",
        mib(peak),
        mib(rss_start),
        mib(rss_end),
        opts.mem >> 20,
        stats.hungry
    );
    let found = stats.panics + stats.slow + stats.hungry;
    if found > 0 {
        println!("  findings saved in {}", opts.findings.display());
    }
    found == 0
}

/// CPU time this process has used, all threads (`CLOCK_PROCESS_CPUTIME_ID`): the API driver
/// runs the router on a runtime's worker threads.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn save(opts: &Options, kind: &str, input: &[u8], note: &str) {
    let _ = std::fs::create_dir_all(&opts.findings);
    let hash = blake3::hash(input).to_hex();
    let base = opts.findings.join(format!("{kind}-{}", &hash[..16]));
    let _ = std::fs::write(base.with_extension("input"), input);
    let _ = std::fs::write(base.with_extension("txt"), note);
}

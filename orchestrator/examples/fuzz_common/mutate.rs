//! Structure-aware mutations of YAML workflow text, and a generator of fresh workflows: byte
//! edits and dictionary tokens (YAML, `${{ … }}`, shell quoting, odd numbers and unicode), line
//! splices from other files, deep nesting, anchors and aliases, long lines, tabs, many steps.

use super::Rng;

const YAML: &[&str] = &[
    ": ",
    "- ",
    "? ",
    "---\n",
    "...\n",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "!!str ",
    "!!int ",
    "!!binary ",
    "!!map ",
    "!tag ",
    "%YAML 1.2\n",
    "|\n",
    ">-\n",
    "|+\n",
    "<<: *a\n",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "\"",
    "'",
    "#",
    "\n",
    "\n  ",
    "\n    ",
    "~",
    "null",
    "true",
    "no",
    "\\",
    "\\u0000",
    "\\x",
];
const TUNA: &[&str] = &[
    "${{ params.lr }}",
    "${{ params.x }}",
    "${{ steps.a.outputs.x }}",
    "${{ run.id }}",
    "${{ run.scheduled_time }}",
    "${{",
    "}}",
    "${{ }}",
    "needs: [a]\n",
    "run: echo hi\n",
    "uses: finetune\n",
    "uses: data.prepare\n",
    "with: {input: x}\n",
    "outputs: [x]\n",
    "inputs: [x]\n",
    "schedule: {cron: \"*/5 * * * *\", timezone: Europe/Berlin}\n",
    "leaderboard: {step: a, model: m, metrics: [acc]}\n",
    "retry: {attempts: 3, backoff: 1s}\n",
    "timeout: 1h\n",
    "gate: [\"a < b\"]\n",
    "env: {A: \"1\"}\n",
    "runs-on: {gpu: a100}\n",
    "budget: {max_cost: 1}\n",
    "defaults: {timeout: 1s}\n",
    "params: {x: 1}\n",
];
const SHELL: &[&str] = &[
    "\"",
    "'",
    "$(",
    ")",
    "`",
    "<<EOF\n",
    "<<'EOF'\n",
    "<<-EOF\n",
    "\nEOF\n",
    "$((",
    "))",
    "${",
    "}",
    "eval ",
    "let ",
    "trap ",
    "case x in a) ",
    ";; esac",
    "[[ ",
    " -eq ",
    " ]]",
    "# ",
    "\\",
    "$",
    "$'",
    "<(",
    "|",
    "&&",
    ";",
];
const NUMBERS: &[&str] = &[
    "1e999999",
    "99999999999999999999999999999",
    "-0",
    ".inf",
    "-.inf",
    ".nan",
    "0x1F",
    "0o17",
    "1_000",
    "1e-400",
    "18446744073709551616",
    "-9223372036854775809",
    "4294967296",
    "0.1e",
];
const UNICODE: &[&str] = &[
    "\u{FEFF}",
    "\u{200B}",
    "\u{202E}",
    "\u{0301}",
    "\u{1F600}",
    "\u{85}",
    "\u{2028}",
    "\u{FFFD}",
    "\u{10FFFF}",
    "\r",
    "\r\n",
    "\t",
    "\u{0}",
    "é",
    "ß",
    "İ",
    "\u{7F}",
    "\u{1B}[31m",
];
const CRON: &[&str] = &[
    "*", "*/7", "0", "59", "1-5", "5-1", "mon-fri", "jan", "7", "*/0", "1,2,,3", "L", "?",
    "@daily", "@reboot", "60", "32", "13", "0-59/61",
];

/// Mutates `text` with 1–4 random edits; `others` are lines to splice from.
pub fn mutate(rng: &mut Rng, text: &[u8], others: &[&[u8]]) -> Vec<u8> {
    let mut out = text.to_vec();
    for _ in 0..1 + rng.below(4) {
        edit(rng, &mut out, others);
        out.truncate(MAX_INPUT);
    }
    out
}

/// The largest input made: a little over the loader's 1 MiB limit, so both sides of it are
/// tried.
const MAX_INPUT: usize = 1_200_000;

fn at(rng: &mut Rng, buf: &[u8]) -> usize {
    rng.below(buf.len() + 1)
}

/// A position at the start of a line.
fn line_start(rng: &mut Rng, buf: &[u8]) -> usize {
    let p = at(rng, buf);
    buf[..p]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

fn insert(buf: &mut Vec<u8>, pos: usize, s: &[u8]) {
    buf.splice(pos..pos, s.iter().copied());
}

fn edit(rng: &mut Rng, buf: &mut Vec<u8>, others: &[&[u8]]) {
    match rng.below(16) {
        0 => {
            if !buf.is_empty() {
                let p = rng.below(buf.len());
                buf[p] = *rng.pick(b":-[]{}'\"\n\t &*!|>#%@`$\\0,?");
            }
        }
        1 => {
            let p = at(rng, buf);
            let n = rng.size(64).min(buf.len() - p);
            buf.drain(p..p + n);
        }
        2 => {
            let t = rng.pick(YAML).as_bytes();
            let p = at(rng, buf);
            insert(buf, p, t);
        }
        3 => {
            let t = rng.pick(TUNA).as_bytes();
            let p = at(rng, buf);
            insert(buf, p, t);
        }
        4 => {
            // Shell syntax inside a `run:` line, where the quoting lexer looks.
            let t = rng.pick(SHELL).as_bytes();
            let p = match find(buf, b"run:") {
                Some(r) if !rng.one_in(3) => (r + 5 + rng.below(40)).min(buf.len()),
                _ => at(rng, buf),
            };
            insert(buf, p, t);
        }
        5 => {
            let t = rng.pick(NUMBERS).as_bytes();
            let p = at(rng, buf);
            insert(buf, p, t);
        }
        6 => {
            let t = rng.pick(UNICODE).as_bytes();
            let p = at(rng, buf);
            insert(buf, p, t);
        }
        7 => {
            // A line from another file.
            let other = rng.pick(others);
            let lines: Vec<&[u8]> = other.split(|&b| b == b'\n').collect();
            let line = rng.pick(&lines);
            let p = line_start(rng, buf);
            let mut l = line.to_vec();
            l.push(b'\n');
            insert(buf, p, &l);
        }
        8 => {
            // A line repeated many times (many keys, many steps, many duplicates).
            let p = line_start(rng, buf);
            let end = buf[p..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(buf.len(), |i| p + i + 1);
            let line = buf[p..end].to_vec();
            // Bounded by the input size, not only by the count: a long line repeated 4000
            // times would cost the fuzzer itself gigabytes.
            let n = rng.size(4000).min(MAX_INPUT / line.len().max(1));
            let rep = line.repeat(n);
            insert(buf, end, &rep);
        }
        9 => {
            // Deep nesting, flow or block.
            let k = rng.size(300);
            let p = at(rng, buf);
            let s = match rng.below(3) {
                0 => format!("{}{}", "[".repeat(k), "]".repeat(k)),
                1 => format!("{}x{}", "{a: ".repeat(k), "}".repeat(k)),
                _ => (0..k)
                    .map(|d| format!("\n{}k{d}:", " ".repeat(2 * d + 2)))
                    .collect(),
            };
            insert(buf, p, s.as_bytes());
        }
        10 => {
            // An anchor and many aliases to it.
            let p = at(rng, buf);
            insert(buf, p, b"&z ");
            let n = rng.size(20_000);
            let copies = format!("[{}]", "*z, ".repeat(n));
            let q = at(rng, buf);
            insert(buf, q, copies.as_bytes());
        }
        11 => {
            // A long line.
            let n = rng.size(200_000);
            let c = *rng.pick(b"xk ${[\"'");
            let p = at(rng, buf);
            insert(buf, p, &vec![c; n]);
        }
        12 => {
            // Tabs for indentation.
            let p = line_start(rng, buf);
            let n = buf[p..].iter().take_while(|&&b| b == b' ').count();
            buf.splice(p..p + n, std::iter::repeat_n(b'\t', n.div_ceil(2)));
        }
        13 => {
            // Indentation shifted.
            let p = line_start(rng, buf);
            if rng.one_in(2) {
                insert(buf, p, b"  ");
            } else if buf.get(p) == Some(&b' ') {
                buf.remove(p);
            }
        }
        14 => {
            // A cron field swapped.
            if let Some(r) = find(buf, b"cron:") {
                let p = (r + 6 + rng.below(12)).min(buf.len());
                let t = rng.pick(CRON).as_bytes();
                insert(buf, p, t);
            } else {
                let line = format!("schedule: {{cron: \"{} * * * *\"}}\n", rng.pick(CRON));
                insert(buf, 0, line.as_bytes());
            }
        }
        _ => {
            let p = at(rng, buf);
            buf.truncate(p);
        }
    }
}

fn find(buf: &[u8], needle: &[u8]) -> Option<usize> {
    buf.windows(needle.len()).position(|w| w == needle)
}

/// A fresh workflow: params, maybe a schedule, 1–N steps with `run:` scripts full of
/// references and shell syntax, `needs`, outputs, or `uses:` kinds.
pub fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut y = String::from("name: gen\n");
    let params = ["lr", "x", "base-model", "y_1"];
    y.push_str("params:\n");
    for p in params.iter().take(1 + rng.below(params.len())) {
        let v = *rng.pick(&["1e-4", "\"\"", "'$(id)'", "\"a\\nb\"", "7", "[1]"]);
        y.push_str(&format!("  {p}: {v}\n"));
    }
    if rng.one_in(3) {
        let f: Vec<&str> = (0..5).map(|_| *rng.pick(CRON)).collect();
        let tz = *rng.pick(&[
            "UTC",
            "Europe/Berlin",
            "Asia/Kathmandu",
            "Nope/Zone",
            "Australia/Lord_Howe",
        ]);
        y.push_str(&format!(
            "schedule: {{cron: \"{}\", timezone: {tz}}}\n",
            f.join(" ")
        ));
    }
    y.push_str("steps:\n");
    let n = 1 + rng.size(60);
    for i in 0..n {
        y.push_str(&format!("  s{i}:\n"));
        if i > 0 && rng.one_in(2) {
            y.push_str(&format!("    needs: [s{}]\n", rng.below(i)));
        }
        if rng.one_in(5) {
            let kind = *rng.pick(&[
                "finetune",
                "data.prepare",
                "model.init",
                "helm.eval",
                "nope",
            ]);
            y.push_str(&format!(
                "    uses: {kind}\n    with: {{input: \"${{{{ params.x }}}}\", max_steps: {}}}\n",
                rng.pick(NUMBERS)
            ));
            continue;
        }
        let mut script = String::new();
        for _ in 0..1 + rng.below(6) {
            script.push_str(rng.pick::<&str>(SHELL));
            script.push_str(if rng.one_in(2) { " echo " } else { "" });
            let r = match rng.below(4) {
                0 => format!("${{{{ params.{} }}}}", rng.pick(&params)),
                1 if i > 0 => format!("${{{{ steps.s{}.outputs.o }}}}", rng.below(i)),
                2 => "${{ run.id }}".to_string(),
                _ => String::new(),
            };
            script.push_str(&r);
        }
        y.push_str("    run: |\n");
        for line in script.split('\n') {
            y.push_str(&format!("      {line}\n"));
        }
        y.push_str("    outputs: [o]\n");
    }
    y.into_bytes()
}

//! `uses: data.prepare` — turns a JSONL file of prompt/completion examples into the training
//! set a fine-tuning step reads: fields renamed to `prompt`/`completion`, exact and
//! near-duplicates dropped (MinHash), examples over a token budget dropped (a Hugging Face
//! `tokenizer.json`), an optional validation split, and statistics.

mod minhash;
mod settings;

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;

use crate::context::StepContext;
use crate::error::StepError;
use crate::kind::{Metrics, StepKind, WithProblem};
use minhash::NearDuplicates;
pub(crate) use settings::PrepareSettings;

/// The `data.prepare` kind.
pub(crate) struct DataPrepare;

impl StepKind for DataPrepare {
    fn name(&self) -> &'static str {
        "data.prepare"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "prompt/completion JSONL: dedup (exact + MinHash), token budget, validation split, stats"
    }

    fn check_with(&self, with: &serde_json::Value) -> Vec<WithProblem> {
        WithProblem::of(PrepareSettings::from_value(with))
    }

    fn default_outputs(&self, with: &serde_json::Value) -> Vec<String> {
        let mut out = vec!["train.jsonl".to_string(), "stats.json".to_string()];
        if with
            .get("val_fraction")
            .and_then(|v| v.as_f64())
            .is_some_and(|f| f > 0.0)
        {
            out.push("val.jsonl".into());
        }
        out
    }

    fn path_keys(&self) -> &'static [&'static str] {
        &["input", "tokenizer"]
    }

    fn execute(&self, ctx: &StepContext) -> Result<Metrics, StepError> {
        let s = PrepareSettings::from_value(&ctx.with)?;
        prepare(ctx, &s)
    }
}

/// One kept example.
struct Example {
    prompt: String,
    completion: String,
    tokens: Option<usize>,
}

fn prepare(ctx: &StepContext, s: &PrepareSettings) -> Result<Metrics, StepError> {
    let input = ctx.resolve(Path::new(&s.input));
    // Read line by line: only the kept examples are held.
    let file = std::fs::File::open(&input)
        .map_err(|e| StepError::Input(format!("with.input {}: {e}", input.display())))?;
    let tokenizer = match &s.tokenizer {
        Some(p) => Some(load_tokenizer(&ctx.resolve(Path::new(p)))?),
        None => None,
    };
    let mut seen = HashSet::new();
    let mut near = s.near_threshold().map(NearDuplicates::new);
    let (mut read, mut exact, mut near_dropped, mut too_long) = (0u64, 0u64, 0u64, 0u64);
    let mut kept = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line =
            line.map_err(|e| StepError::Input(format!("{}:{}: {e}", input.display(), i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        read += 1;
        let at = |m: String| StepError::Input(format!("{}:{}: {m}", input.display(), i + 1));
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| at(format!("not a JSON object: {e}")))?;
        let field = |name: &str| -> Result<String, StepError> {
            v.get(name)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| at(format!("has no string field `{name}`")))
        };
        let (prompt, completion) = (field(&s.prompt_field)?, field(&s.completion_field)?);
        if s.dedup
            && !seen.insert(blake3::hash(
                format!("{prompt}\u{0}{completion}").as_bytes(),
            ))
        {
            exact += 1;
            continue;
        }
        let tokens = match &tokenizer {
            Some(t) => Some(count_tokens(t, &prompt, &completion).map_err(at)?),
            None => None,
        };
        if let (Some(max), Some(n)) = (s.max_tokens, tokens)
            && n > max
        {
            too_long += 1;
            continue;
        }
        if let Some(nd) = near.as_mut()
            && !nd.admit(&format!("{prompt}\n{completion}"))
        {
            near_dropped += 1;
            continue;
        }
        kept.push(Example {
            prompt,
            completion,
            tokens,
        });
    }
    if kept.is_empty() {
        return Err(StepError::Input(format!(
            "{}: no examples left ({read} read, {exact} exact duplicates, {near_dropped} near duplicates, {too_long} over max_tokens)",
            input.display()
        )));
    }
    let val = validation_set(kept.len(), s.val_fraction, s.seed);
    let (mut train_out, mut val_out) = (Vec::new(), Vec::new());
    for (i, e) in kept.iter().enumerate() {
        let line = serde_json::json!({"prompt": e.prompt, "completion": e.completion});
        let dst = if val.contains(&i) {
            &mut val_out
        } else {
            &mut train_out
        };
        writeln!(dst, "{line}").expect("writing to memory");
    }
    write(ctx, "train.jsonl", &train_out)?;
    if s.val_fraction > 0.0 {
        write(ctx, "val.jsonl", &val_out)?;
    }
    let mut m = Metrics::new();
    let mut put = |k: &str, v: serde_json::Value| {
        m.insert(k.to_string(), v);
    };
    put("examples_read", read.into());
    put("examples", (kept.len() - val.len()).into());
    put("val_examples", val.len().into());
    put("dropped_duplicates", exact.into());
    put("dropped_near_duplicates", near_dropped.into());
    put("dropped_too_long", too_long.into());
    let mut lens: Vec<usize> = kept.iter().filter_map(|e| e.tokens).collect();
    if !lens.is_empty() {
        lens.sort_unstable();
        let total: usize = lens.iter().sum();
        let pct = |p: f64| lens[((lens.len() - 1) as f64 * p).round() as usize];
        put("tokens_total", total.into());
        put("tokens_mean", (total as f64 / lens.len() as f64).into());
        put("tokens_p50", pct(0.5).into());
        put("tokens_p95", pct(0.95).into());
        put("tokens_max", lens[lens.len() - 1].into());
    }
    let stats = serde_json::to_string_pretty(&m).expect("stats serialize");
    write(ctx, "stats.json", stats.as_bytes())?;
    Ok(m)
}

fn load_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer, StepError> {
    let file = if path.is_dir() {
        path.join("tokenizer.json")
    } else {
        path.to_path_buf()
    };
    tokenizers::Tokenizer::from_file(&file)
        .map_err(|e| StepError::Input(format!("with.tokenizer {}: {e}", file.display())))
}

/// Tokens of the example as a fine-tuning step sees it (prompt + completion, no specials).
fn count_tokens(
    t: &tokenizers::Tokenizer,
    prompt: &str,
    completion: &str,
) -> Result<usize, String> {
    let n = |s: &str| {
        t.encode(s, false)
            .map(|e| e.get_ids().len())
            .map_err(|e| format!("tokenizing: {e}"))
    };
    Ok(n(prompt)? + n(completion)?)
}

/// Indices (of `n` kept examples) that go to the validation split: a seeded shuffle's first
/// `round(n × fraction)`, at least one example left for training.
fn validation_set(n: usize, fraction: f64, seed: u64) -> HashSet<usize> {
    let take = ((n as f64 * fraction).round() as usize).min(n.saturating_sub(1));
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| minhash::mix(seed ^ minhash::mix(i as u64)));
    order.into_iter().take(take).collect()
}

fn write(ctx: &StepContext, name: &str, bytes: &[u8]) -> Result<(), StepError> {
    let path = ctx.work.join(name);
    std::fs::write(&path, bytes)
        .map_err(|e| StepError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &Path, with: serde_json::Value) -> StepContext {
        StepContext {
            kind: "data.prepare".into(),
            with,
            work: dir.to_path_buf(),
            state: dir.join(".state"),
            metrics: dir.join("metrics.json"),
            progress: None,
        }
    }

    #[test]
    fn a_malformed_line_is_named_by_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("d.jsonl"),
            "{\"prompt\": \"a\", \"completion\": \"b\"}\n\n{\"prompt\": \"c\"}\n",
        )
        .unwrap();
        let c = ctx(dir.path(), serde_json::json!({"input": "d.jsonl"}));
        let err = DataPrepare.execute(&c).unwrap_err().to_string();
        assert!(
            err.ends_with("d.jsonl:3: has no string field `completion`"),
            "{err}"
        );
        std::fs::write(dir.path().join("d.jsonl"), "not json\n").unwrap();
        let err = DataPrepare.execute(&c).unwrap_err().to_string();
        assert!(err.contains("d.jsonl:1: not a JSON object"), "{err}");
    }

    #[test]
    fn renamed_fields_dedup_and_a_seeded_split() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..20 {
            text.push_str(&format!(
                "{{\"q\": \"question {i}\", \"a\": \"answer {i}\"}}\n"
            ));
        }
        text.push_str("{\"q\": \"question 0\", \"a\": \"answer 0\"}\n");
        std::fs::write(dir.path().join("d.jsonl"), text).unwrap();
        let with = serde_json::json!({"input": "d.jsonl", "prompt_field": "q",
            "completion_field": "a", "val_fraction": 0.25, "seed": 7});
        let m = DataPrepare.execute(&ctx(dir.path(), with.clone())).unwrap();
        assert_eq!(m["examples_read"], 21);
        assert_eq!(m["dropped_duplicates"], 1);
        assert_eq!(m["val_examples"], 5);
        assert_eq!(m["examples"], 15);
        let train = std::fs::read_to_string(dir.path().join("train.jsonl")).unwrap();
        let first: serde_json::Value = serde_json::from_str(train.lines().next().unwrap()).unwrap();
        assert!(first["prompt"].as_str().unwrap().starts_with("question"));
        // The same seed gives the same split.
        let val = std::fs::read_to_string(dir.path().join("val.jsonl")).unwrap();
        DataPrepare.execute(&ctx(dir.path(), with)).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("val.jsonl")).unwrap(),
            val
        );
    }
}

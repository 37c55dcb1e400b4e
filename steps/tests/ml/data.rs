//! Tiny training sets.

use std::path::{Path, PathBuf};

/// Eight question/answer pairs a tiny model can learn by heart.
pub fn memorise_jsonl(dir: &Path) -> PathBuf {
    let pairs = [
        ("question: what colour is the sky? answer:", " blue"),
        ("question: what is two plus two? answer:", " four"),
        ("the quick brown fox jumps over the", " lazy dog"),
        ("a tiny model learns a tiny data set", " by heart"),
        ("tuna fine-tunes language models with", " low-rank adapters"),
        ("question: what colour is the fox? answer:", " brown"),
        ("question: what is the dog? answer:", " lazy"),
        ("tuna fine-tunes", " language models"),
    ];
    let path = dir.join("train.jsonl");
    let lines: Vec<String> = pairs
        .iter()
        .map(|(p, c)| serde_json::json!({"prompt": p, "completion": c}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

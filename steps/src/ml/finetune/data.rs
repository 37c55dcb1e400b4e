//! Training data: JSONL lines `{"prompt": ..., "completion": ...}`, tokenized once. The loss is
//! taken on completion tokens only.

use std::path::Path;

use crate::ml::error::{MlError, MlResult};
use crate::ml::tokenizer::TextTokenizer;

/// One tokenized example.
#[derive(Debug, Clone)]
pub(crate) struct Example {
    /// Prompt then completion ids.
    pub(crate) ids: Vec<i64>,
    /// How many leading ids belong to the prompt (no loss there).
    pub(crate) prompt_len: usize,
}

/// A tokenized data set.
#[derive(Debug)]
pub(crate) struct Dataset {
    pub(crate) examples: Vec<Example>,
    /// Examples dropped because the prompt alone filled `max_seq_len`.
    pub(crate) skipped: usize,
}

impl Dataset {
    /// Total tokens (prompt and completion) of all kept examples.
    pub(crate) fn tokens(&self) -> u64 {
        self.examples.iter().map(|e| e.ids.len() as u64).sum()
    }
}

/// Reads and tokenizes `path`.
pub(crate) fn load_jsonl(
    path: &Path,
    tok: &TextTokenizer,
    max_seq_len: usize,
    eos: Option<i64>,
) -> MlResult<Dataset> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| MlError::io(format!("reading {}", path.display()), e))?;
    let data_err = |line: usize, message: String| MlError::Data {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut examples = Vec::new();
    let mut skipped = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| data_err(n, format!("not a JSON object: {e}")))?;
        let obj = v.as_object().ok_or_else(|| {
            data_err(
                n,
                "expected a JSON object {\"prompt\", \"completion\"}".into(),
            )
        })?;
        let field = |k: &str| -> MlResult<&str> {
            match obj.get(k) {
                Some(serde_json::Value::String(s)) => Ok(s),
                Some(other) => Err(data_err(
                    n,
                    format!("`{k}` must be a string, found {other}"),
                )),
                None => Err(data_err(
                    n,
                    format!("missing `{k}` (each line needs \"prompt\" and \"completion\")"),
                )),
            }
        };
        let (prompt, completion) = (field("prompt")?, field("completion")?);
        let mut ids = tok.encode(prompt, true)?;
        let prompt_len = ids.len();
        let mut comp = tok.encode(completion, false)?;
        if let Some(e) = eos {
            comp.push(e);
        }
        if comp.is_empty() {
            return Err(data_err(
                n,
                "`completion` is empty: nothing to learn".into(),
            ));
        }
        if prompt_len >= max_seq_len {
            skipped += 1;
            continue;
        }
        ids.extend(comp);
        ids.truncate(max_seq_len);
        examples.push(Example { ids, prompt_len });
    }
    if examples.is_empty() {
        let why = if skipped > 0 {
            format!("all {skipped} prompts are longer than max_seq_len {max_seq_len}")
        } else {
            "no lines".into()
        };
        return Err(MlError::Data {
            path: path.to_path_buf(),
            line: 0,
            message: format!("no usable examples ({why})"),
        });
    }
    Ok(Dataset { examples, skipped })
}

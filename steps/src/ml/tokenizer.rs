//! A model folder's `tokenizer.json` (Hugging Face tokenizers format).

use std::path::{Path, PathBuf};

use crate::ml::error::{MlError, MlResult};

/// Text ↔ token ids.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl TextTokenizer {
    /// Reads `dir/tokenizer.json`.
    pub fn from_model_dir(dir: &Path) -> MlResult<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(MlError::Tokenizer {
                path,
                message: "missing: the model folder needs a tokenizer.json (save it with the \
                          model's fast tokenizer, e.g. tokenizer.save_pretrained(dir))"
                    .into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| MlError::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(TextTokenizer { inner, path })
    }

    /// Token ids of `text`; `special` adds the model's special tokens (OPT's leading `</s>`, Llama's `<s>`).
    pub fn encode(&self, text: &str, special: bool) -> MlResult<Vec<i64>> {
        let enc = self
            .inner
            .encode(text, special)
            .map_err(|e| MlError::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[i64]) -> MlResult<String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.inner
            .decode(&ids, true)
            .map_err(|e| MlError::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    /// Text of one token, special tokens included (for per-token listings).
    pub fn decode_token(&self, id: i64) -> MlResult<String> {
        self.inner
            .decode(&[id as u32], false)
            .map_err(|e| MlError::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    /// Size of the vocabulary including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

//! Typed access to a model's `config.json`, with errors that name the key and the file.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{MlError, MlResult};

/// A parsed `config.json`.
pub(crate) struct ConfigJson {
    path: PathBuf,
    map: Map<String, Value>,
}

impl ConfigJson {
    /// Reads `dir/config.json`.
    pub(crate) fn read(dir: &Path) -> MlResult<Self> {
        let path = dir.join("config.json");
        if !dir.is_dir() {
            return Err(MlError::ModelFolder {
                dir: dir.to_path_buf(),
                message: "not a directory".into(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| MlError::ModelFolder {
            dir: dir.to_path_buf(),
            message: format!("cannot read config.json: {e}"),
        })?;
        Self::parse(path, &text)
    }

    pub(crate) fn parse(path: PathBuf, text: &str) -> MlResult<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| MlError::Config {
            path: path.clone(),
            message: format!("not valid JSON: {e}"),
        })?;
        match value {
            Value::Object(map) => Ok(ConfigJson { path, map }),
            _ => Err(MlError::Config {
                path,
                message: "expected a JSON object".into(),
            }),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, key: &str, message: impl std::fmt::Display) -> MlError {
        MlError::Config {
            path: self.path.clone(),
            message: format!("`{key}` {message}"),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A required positive integer.
    pub(crate) fn usize(&self, key: &str) -> MlResult<i64> {
        self.usize_opt(key)?
            .ok_or_else(|| self.err(key, "is missing (a positive integer is required)"))
    }

    /// An optional positive integer.
    pub(crate) fn usize_opt(&self, key: &str) -> MlResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(self.err(key, format!("must be a positive integer, found {v}"))),
            },
        }
    }

    /// An optional integer token id (a list takes its first element, as some configs do).
    pub(crate) fn token_id(&self, key: &str) -> MlResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) if !a.is_empty() => match a[0].as_i64() {
                Some(n) if n >= 0 => Ok(Some(n)),
                _ => Err(self.err(
                    key,
                    format!("must hold non-negative integers, found {}", a[0]),
                )),
            },
            Some(v) => match v.as_i64() {
                Some(n) if n >= 0 => Ok(Some(n)),
                _ => Err(self.err(key, format!("must be a non-negative integer, found {v}"))),
            },
        }
    }

    /// An optional boolean with a default.
    pub(crate) fn bool_or(&self, key: &str, default: bool) -> MlResult<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.err(key, format!("must be true or false, found {v}"))),
        }
    }

    /// An optional number in [0, 1) with a default (dropout rates).
    pub(crate) fn prob_or(&self, key: &str, default: f64) -> MlResult<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.as_f64() {
                Some(p) if (0.0..1.0).contains(&p) => Ok(p),
                _ => Err(self.err(key, format!("must be a number in [0, 1), found {v}"))),
            },
        }
    }

    /// An optional positive number with a default (`rms_norm_eps`, `rope_theta`).
    pub(crate) fn positive_f64_or(&self, key: &str, default: f64) -> MlResult<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.as_f64() {
                Some(x) if x > 0.0 && x.is_finite() => Ok(x),
                _ => Err(self.err(key, format!("must be a positive number, found {v}"))),
            },
        }
    }

    /// Whether `key` is written at all (`null` included): some defaults apply only to a key
    /// that is absent, not to one set to `null`.
    pub(crate) fn has_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// An optional JSON object.
    pub(crate) fn object_opt(&self, key: &str) -> MlResult<Option<&Map<String, Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_object()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("must be an object, found {v}"))),
        }
    }

    /// A [`MlError::Config`] about `key` (for checks made by an architecture's config).
    pub(crate) fn key_error(&self, key: &str, message: impl std::fmt::Display) -> MlError {
        self.err(key, message)
    }

    /// An optional string.
    pub(crate) fn str_opt(&self, key: &str) -> MlResult<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("must be a string, found {v}"))),
        }
    }

    /// The architecture name: `model_type`, else derived from `architectures[0]`.
    pub(crate) fn model_type(&self) -> MlResult<String> {
        if let Some(t) = self.str_opt("model_type")? {
            return Ok(t.to_string());
        }
        match self
            .get("architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|v| v.as_str())
        {
            Some(arch) => Ok(arch.trim_end_matches("ForCausalLM").to_ascii_lowercase()),
            None => Err(self.err(
                "model_type",
                "is missing (and no `architectures` list names the model class)",
            )),
        }
    }
}

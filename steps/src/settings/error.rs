//! The error of a setting that is missing, mistyped or out of range, named by its key.

/// A `with:` setting a kind cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting `{key}`: {message}")]
pub struct SettingError {
    /// Dotted key path (`lora.r`); `with` for the mapping itself.
    pub key: String,
    pub message: String,
}

impl SettingError {
    /// A serde error of a whole `with:` mapping, at the key it names when it names one
    /// (`unknown field `x``) so that the diagnostic points there.
    pub fn from_serde(e: impl std::fmt::Display) -> Self {
        let message = e.to_string();
        let key = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .unwrap_or("")
            .to_string();
        SettingError { key, message }
    }
}

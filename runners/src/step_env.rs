//! [`StepEnv`]: the environment a step's process starts from, before tuna adds its own
//! variables (`TUNA_*` of the job) and the step's `env:`. tuna's control variables and
//! secrets (`TUNA_SERVE_TOKENS`, `TUNA_SSH_PASSPHRASE`, …) never reach a step; under the
//! daemon a step gets only a documented allowlist, plus what `tuna serve --pass-env` names.

use std::collections::BTreeMap;

/// Refuses a job env holding a name that is not a shell variable name (runners that write
/// the env into a shell or hand it to a cluster check it first).
pub(crate) fn check_names(
    env: &BTreeMap<String, String>,
    step: &str,
) -> Result<(), crate::RunnerError> {
    for k in env.keys() {
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(crate::RunnerError::Config(format!(
                "env `{k}` of step `{step}` is not a valid variable name"
            )));
        }
    }
    Ok(())
}

/// Variables a daemon's steps get when the daemon has them: what programs need to find
/// themselves, their libraries, the user's locale and time zone, and the GPU toolchain.
pub const ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "TERM",
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "NVIDIA_*",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
];

/// tuna's own variables that are settings for the steps (where `tuna-ml` and `helm-run` are);
/// every other `TUNA_*` of tuna's environment is tuna's and stays out of steps.
pub const STEP_SETTINGS: &[&str] = &["TUNA_ML", "TUNA_HELM_RUN"];

/// Where a step's environment comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEnv {
    /// tuna's own environment (a `tuna run` from the user's shell), less tuna's `TUNA_*`
    /// variables other than [`STEP_SETTINGS`].
    Inherit,
    /// Only [`ALLOWED`], [`STEP_SETTINGS`] and the names in `pass` (`NAME`, or `PREFIX*`), as
    /// far as tuna's environment has them: `tuna serve`.
    Clean { pass: Vec<String> },
}

impl StepEnv {
    /// The variables a step starts with, taken from `vars` (tuna's environment).
    pub fn base_from(
        &self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> BTreeMap<String, String> {
        vars.into_iter()
            .filter(|(name, _)| self.admits(name))
            .collect()
    }

    /// [`StepEnv::base_from`] this process's environment (names and values that are UTF-8).
    pub fn base(&self) -> BTreeMap<String, String> {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        self.base_from(vars)
    }

    /// Whether the variable `name` of tuna's environment reaches steps.
    pub fn admits(&self, name: &str) -> bool {
        if STEP_SETTINGS.contains(&name) {
            return true;
        }
        if name.starts_with("TUNA_") {
            return false;
        }
        match self {
            StepEnv::Inherit => true,
            StepEnv::Clean { pass } => ALLOWED
                .iter()
                .copied()
                .chain(pass.iter().map(String::as_str))
                .any(|pattern| matches(pattern, name)),
        }
    }
}

/// `NAME` matches itself; `PREFIX*` every name that starts with PREFIX.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::StepEnv;

    fn vars() -> Vec<(String, String)> {
        [
            ("PATH", "/usr/bin"),
            ("LC_ALL", "C.UTF-8"),
            ("TUNA_SERVE_TOKENS", "secret-token"),
            ("TUNA_SSH_PASSPHRASE", "pass"),
            ("TUNA_HOME", "/srv/tuna"),
            ("TUNA_ML", "/opt/tuna-ml"),
            ("AWS_SECRET_ACCESS_KEY", "aws"),
            ("WANDB_API_KEY", "wb"),
            ("MY_SETTING", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn a_run_from_the_shell_keeps_the_users_variables_but_not_tunas() {
        let env = StepEnv::Inherit.base_from(vars());
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "AWS_SECRET_ACCESS_KEY",
                "LC_ALL",
                "MY_SETTING",
                "PATH",
                "TUNA_ML",
                "WANDB_API_KEY"
            ]
        );
    }

    #[test]
    fn the_daemon_passes_only_the_allowlist_and_what_it_is_told() {
        let clean = StepEnv::Clean { pass: vec![] }.base_from(vars());
        let names: Vec<&str> = clean.keys().map(String::as_str).collect();
        assert_eq!(names, ["LC_ALL", "PATH", "TUNA_ML"]);
        let told = StepEnv::Clean {
            pass: vec![
                "WANDB_*".into(),
                "MY_SETTING".into(),
                "TUNA_SERVE_TOKENS".into(),
            ],
        }
        .base_from(vars());
        assert!(told.contains_key("WANDB_API_KEY") && told.contains_key("MY_SETTING"));
        assert!(
            !told.contains_key("TUNA_SERVE_TOKENS"),
            "tuna's own secrets never pass"
        );
        assert!(!told.contains_key("AWS_SECRET_ACCESS_KEY"));
    }
}

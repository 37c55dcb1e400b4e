//! Reading a step's secrets (the workflow's `secrets:` section) when it is launched: from the
//! environment of the process that drives the run, or from a file. Values live in memory only,
//! for the job's environment: never in a record, the cache key or a message. Under `tuna
//! serve` only variables the daemon passes to steps (`--pass-env`) can be secrets, and files
//! cannot: a submitted workflow must not read the daemon's own secrets or files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tuna_runners::StepEnv;

use crate::workflow::{SecretSource, Step, Workflow};

/// The largest secret file read.
const MAX_FILE: u64 = 64 << 10;

/// The values of the secrets `step` lists, by name.
pub(crate) fn read(
    wf: &Workflow,
    step: &Step,
    policy: &StepEnv,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for name in &step.secrets {
        let source = wf
            .secrets
            .get(name)
            .ok_or_else(|| format!("secret `{name}` is not declared in `secrets:`"))?;
        let value = read_one(name, source, policy)?;
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn read_one(name: &str, source: &SecretSource, policy: &StepEnv) -> Result<String, String> {
    let daemon = matches!(policy, StepEnv::Clean { .. });
    match source {
        SecretSource::Env(var) => {
            if var.starts_with("TUNA_") || (daemon && !policy.admits(var)) {
                return Err(format!(
                    "secret `{name}` reads the variable `{var}`, which this daemon does not pass to steps (start `tuna serve` with `--pass-env {var}`)"
                ));
            }
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v),
                _ => Err(format!(
                    "secret `{name}`: the environment variable `{var}` is not set (or empty) where this run is driven"
                )),
            }
        }
        SecretSource::File(path) => {
            if daemon {
                return Err(format!(
                    "secret `{name}` reads a file, which `tuna serve` does not allow: pass it in the daemon's environment (`--pass-env`) and use `env:`"
                ));
            }
            let path = expand_home(path);
            let shown = path.display();
            let meta =
                std::fs::metadata(&path).map_err(|e| format!("secret `{name}`: {shown}: {e}"))?;
            if !meta.is_file() || meta.len() > MAX_FILE {
                return Err(format!(
                    "secret `{name}`: {shown} must be a file of at most {} KiB",
                    MAX_FILE >> 10
                ));
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("secret `{name}`: {shown}: {e}"))?;
            let value = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            if value.is_empty() {
                return Err(format!("secret `{name}`: {shown} is empty"));
            }
            Ok(value.to_string())
        }
    }
}

fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(rest),
        None => PathBuf::from(path),
    }
}

//! Turning one inventory entry into a runner: the local runner with its shim, or an ssh runner
//! with the host, login and folder from runners.yaml.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tuna_runners::Runner;
use tuna_runners::local::{LocalConfig, LocalRunner};
use tuna_runners::ssh::{SshConfig, SshRunner};

use super::inventory::RunnerSpec;

/// Builds the runner `name` of the inventory. `gpus` are its GPU slots, already numbered.
pub(crate) fn build(
    name: &str,
    spec: &RunnerSpec,
    slots: u32,
    gpus: Vec<tuna_runners::Gpu>,
    shim: &Path,
    base_env: &BTreeMap<String, String>,
) -> Result<Arc<dyn Runner>, String> {
    match spec.kind.as_str() {
        "ssh" => {
            let host = spec.host.clone().unwrap_or_default();
            let user = spec
                .user
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "root".to_string());
            let mut cfg = SshConfig::new(name, &host, spec.port.unwrap_or(22), &user);
            cfg.identity = spec.identity.clone();
            // A passphrase comes from the environment only, never from a file tuna stores.
            cfg.passphrase = std::env::var("TUNA_SSH_PASSPHRASE")
                .ok()
                .filter(|p| !p.is_empty());
            cfg.known_hosts = spec
                .known_hosts
                .clone()
                .unwrap_or_else(|| PathBuf::from("~/.ssh/known_hosts"));
            cfg.accept_new = spec.accept_new;
            cfg.workdir = spec.workdir.clone().unwrap_or_default();
            cfg.slots = slots;
            cfg.gpus = gpus;
            if let Some(l) = &spec.lost_after {
                cfg.lost_after = crate::workflow::parse_duration(l)?;
            }
            if let Some(k) = &spec.keep_remote_over {
                cfg.keep_remote_over = Some(crate::workflow::parse_size(k)?);
            }
            cfg.tuna.clone_from(&spec.tuna);
            // The shim hashes big outputs on hosts without `b3sum` (see `SshConfig::hasher`).
            cfg.hasher = Some(shim.to_path_buf());
            if let Some(ms) = std::env::var("TUNA_SSH_POLL_MS")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                cfg.poll_max = Duration::from_millis(ms);
            }
            let runner = SshRunner::new(cfg).map_err(|e| e.to_string())?;
            Ok(Arc::new(runner))
        }
        _ => Ok(Arc::new(LocalRunner::new(LocalConfig {
            name: name.to_string(),
            slots,
            gpus,
            shim: shim.to_path_buf(),
            base_env: base_env.clone(),
            ..LocalConfig::default()
        }))),
    }
}

//! Turning one inventory entry into a runner: the local runner with the home's supervisor, an ssh runner
//! with the host, login and folder from runners.yaml, or a Ray runner with the cluster's
//! address, its token (read from the variable `token_env` names) and where its artifacts
//! travel (the shared folder, or a bucket with credentials from the environment).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tuna_runners::Runner;
use tuna_runners::local::{LocalConfig, LocalRunner};
use tuna_runners::objstore::ObjectStoreConfig;
use tuna_runners::ray::{DEFAULT_NODE_DIR, RayArtifacts, RayConfig, RayRunner};
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
    supervisor: Option<&Path>,
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
        "ray" => Ok(Arc::new(ray(name, spec, slots, gpus)?)),
        _ => Ok(Arc::new(LocalRunner::new(LocalConfig {
            name: name.to_string(),
            slots,
            gpus,
            shim: shim.to_path_buf(),
            base_env: base_env.clone(),
            supervisor_dir: supervisor.map(Path::to_path_buf),
            ..LocalConfig::default()
        }))),
    }
}

/// A Ray runner from its (validated) inventory entry.
fn ray(
    name: &str,
    spec: &RunnerSpec,
    slots: u32,
    gpus: Vec<tuna_runners::Gpu>,
) -> Result<RayRunner, String> {
    let artifacts = spec.artifacts.as_ref().ok_or_else(|| {
        format!("runner `{name}` (type ray) needs `artifacts: {{ shared: /path }}`")
    })?;
    let shared = artifacts.shared.clone().unwrap_or_default();
    let mut cfg = RayConfig::new(name, spec.address.as_deref().unwrap_or_default(), shared);
    if let Some(url) = &artifacts.url {
        cfg.artifacts = RayArtifacts::Bucket {
            store: ObjectStoreConfig {
                url: url.clone(),
                endpoint: artifacts.endpoint.clone(),
                region: artifacts.region.clone(),
            },
            node_dir: spec
                .workdir
                .clone()
                .unwrap_or_else(|| DEFAULT_NODE_DIR.to_owned()),
            keep_remote_over: spec
                .keep_remote_over
                .as_deref()
                .map(crate::workflow::parse_size)
                .transpose()?,
        };
    }
    cfg.slots = slots;
    cfg.gpus = gpus;
    if let Some(l) = &spec.lost_after {
        cfg.lost_after = crate::workflow::parse_duration(l)?;
    }
    cfg.gpu_resources = spec
        .gpu_resources
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    // The token comes from the environment only, never from a file tuna stores.
    cfg.token_env.clone_from(&spec.token_env);
    cfg.token = spec
        .token_env
        .as_deref()
        .and_then(|v| std::env::var(v).ok())
        .filter(|t| !t.is_empty());
    cfg.tuna = match &spec.tuna {
        Some(t) => t.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("runner `{name}`: this tuna's own path: {e}"))?
            .to_string_lossy()
            .into_owned(),
    };
    if let Some(ms) = std::env::var("TUNA_RAY_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.poll_max = Duration::from_millis(ms);
    }
    RayRunner::new(cfg).map_err(|e| e.to_string())
}

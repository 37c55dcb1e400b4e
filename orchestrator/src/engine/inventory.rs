//! The runner inventory (runners.yaml): which runners exist, their slots, GPUs and price.
//!
//! Found at `--runners FILE`, else `$TUNA_RUNNERS`, else `~/.config/tuna/runners.yaml`; without
//! one there is a single `local` runner with as many slots as cores and no GPUs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub runners: BTreeMap<String, RunnerSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerSpec {
    #[serde(rename = "type")]
    pub kind: String,
    /// Concurrent steps; default: cores for local.
    pub slots: Option<u32>,
    #[serde(default)]
    pub gpus: Vec<GpuSpec>,
    pub price_per_hour: Option<f64>,
    /// `ssh`: the host's name or address.
    pub host: Option<String>,
    /// `ssh`: default 22.
    pub port: Option<u16>,
    /// `ssh`: default the current user.
    pub user: Option<String>,
    /// `ssh`: a private key file; without one the ssh agent is asked.
    pub identity: Option<PathBuf>,
    /// `ssh`: default `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// `ssh`: add an unknown host key on first contact (a changed key is still refused).
    #[serde(default)]
    pub accept_new: bool,
    /// `ssh`: the runner's folder on the host (absolute). `ray` with `artifacts.url`: the
    /// folder on each node under which attempts work (default `/tmp/tuna-ray`).
    pub workdir: Option<String>,
    /// `ssh`: how long the host may not answer before its steps count as lost (default 2m).
    pub lost_after: Option<String>,
    /// `ssh`: outputs bigger than this (e.g. `64MiB`, the default) stay on the host. `ray`
    /// with `artifacts.url`: outputs bigger than this stay in the bucket (default: none).
    pub keep_remote_over: Option<String>,
    /// `ssh`: the `tuna` program on the host, for built-in (`uses:`) steps (default: `tuna` on
    /// the host's `PATH`). `ray`: the `tuna` program on the nodes, which wraps every step
    /// (default: this tuna's own path, right for a cluster on this machine).
    pub tuna: Option<String>,
    /// `ray`: the dashboard's URL (`http://HOST:8265`), where the Jobs REST API is.
    pub address: Option<String>,
    /// `ray`: the environment variable holding the token sent as `Authorization: Bearer`.
    pub token_env: Option<String>,
    /// `ray`: GPU type → the Ray resource that asks for it (default
    /// `accelerator_type:<TYPE>`, the label Ray gives GPU nodes).
    #[serde(default)]
    pub gpu_resources: BTreeMap<String, String>,
    /// `ray`: steps at once (what `slots` is for the others).
    pub max_parallel: Option<u32>,
    /// `ray`: where artifacts travel: `{ shared: /path }`, a folder every node mounts at the
    /// same path as this machine, or `{ url: s3://bucket/prefix, endpoint, region }`, object
    /// storage both reach (credentials from the usual AWS environment variables).
    pub artifacts: Option<RayArtifacts>,
}

/// The `artifacts:` block of a Ray runner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RayArtifacts {
    /// A folder every node mounts (absolute).
    pub shared: Option<PathBuf>,
    /// Object storage: `s3://BUCKET/PREFIX`.
    pub url: Option<String>,
    /// With `url`: the server's base URL (S3-compatible servers); default AWS's.
    pub endpoint: Option<String>,
    /// With `url`: the region requests are signed for.
    pub region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "one")]
    pub count: u32,
    /// e.g. `40GiB`.
    pub memory: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("runner inventory {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("runner inventory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RunnerSpec {
    /// The ssh-only keys this spec sets.
    fn ssh_keys(&self) -> Vec<&'static str> {
        [
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("user", self.user.is_some()),
            ("identity", self.identity.is_some()),
            ("known_hosts", self.known_hosts.is_some()),
            ("accept_new", self.accept_new),
            ("workdir", self.workdir.is_some()),
            ("lost_after", self.lost_after.is_some()),
            ("keep_remote_over", self.keep_remote_over.is_some()),
            ("tuna", self.tuna.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// How many steps the runner runs at once: `slots` (`max_parallel` for Ray; 1 without
    /// one), else as many as this machine has cores.
    pub fn slot_count(&self) -> u32 {
        match (self.slots.or(self.max_parallel), self.kind.as_str()) {
            (Some(n), _) => n,
            (None, "ray") => 1,
            (None, _) => super::engine::cores() as u32,
        }
    }

    /// The ray-only keys this spec sets.
    fn ray_keys(&self) -> Vec<&'static str> {
        [
            ("address", self.address.is_some()),
            ("token_env", self.token_env.is_some()),
            ("gpu_resources", !self.gpu_resources.is_empty()),
            ("max_parallel", self.max_parallel.is_some()),
            ("artifacts", self.artifacts.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// `lost_after`, where set, is a duration (ssh and ray runners).
    fn check_lost_after(&self, name: &str) -> Result<(), String> {
        match &self.lost_after {
            Some(l) if crate::workflow::parse_duration(l).is_err() => Err(format!(
                "runner `{name}`: lost_after `{l}` is not a duration (e.g. 30s, 2m)"
            )),
            _ => Ok(()),
        }
    }

    /// Checks a `type: ray` entry; the message names the field.
    fn check_ray(&self, name: &str) -> Result<(), String> {
        let bucket = self.artifacts.as_ref().is_some_and(|a| a.url.is_some());
        let ray_too = ["tuna", "workdir", "keep_remote_over", "lost_after"];
        if let Some(key) = self.ssh_keys().into_iter().find(|k| !ray_too.contains(k)) {
            return Err(format!(
                "runner `{name}`: `{key}` belongs to `type: ssh` runners"
            ));
        }
        if !bucket
            && let Some(key) = ["workdir", "keep_remote_over"]
                .into_iter()
                .find(|k| self.ssh_keys().contains(k))
        {
            return Err(format!(
                "runner `{name}`: `{key}` applies to a Ray runner whose artifacts are in object \
                 storage (`artifacts: {{ url: s3://… }}`); with a shared folder every output \
                 comes back"
            ));
        }
        if let Some(w) = &self.workdir
            && !w.starts_with('/')
        {
            return Err(format!(
                "runner `{name}`: workdir `{w}` must be an absolute path (the folder on each \
                 node under which attempts work)"
            ));
        }
        self.check_lost_after(name)?;
        if self.slots.is_some() {
            return Err(format!(
                "runner `{name}`: a Ray runner says how many steps it runs at once with \
                 `max_parallel`, not `slots`"
            ));
        }
        if self.max_parallel == Some(0) {
            return Err(format!("runner `{name}`: max_parallel must be at least 1"));
        }
        match self.address.as_deref() {
            None | Some("") => {
                return Err(format!(
                    "runner `{name}` (type ray) needs `address`, the Ray dashboard's URL \
                     (http://HOST:8265)"
                ));
            }
            Some(a) if !(a.starts_with("http://") || a.starts_with("https://")) => {
                return Err(format!(
                    "runner `{name}`: address `{a}` must be the dashboard's http:// or https:// URL"
                ));
            }
            Some(_) => {}
        }
        if let Some(v) = &self.token_env
            && (v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(format!(
                "runner `{name}`: token_env `{v}` must name an environment variable"
            ));
        }
        match &self.artifacts {
            Some(RayArtifacts {
                url: Some(u),
                shared: Some(_),
                ..
            }) => Err(format!(
                "runner `{name}`: artifacts has both `shared` and `url` `{u}`: set one, a folder \
                 every node mounts or object storage"
            )),
            Some(RayArtifacts { url: Some(_), .. }) => Ok(()),
            Some(RayArtifacts {
                endpoint: Some(_), ..
            })
            | Some(RayArtifacts {
                region: Some(_), ..
            }) => Err(format!(
                "runner `{name}`: artifacts.endpoint and artifacts.region go with artifacts.url \
                 (object storage), not with a shared folder"
            )),
            Some(RayArtifacts {
                shared: Some(p), ..
            }) if p.is_absolute() => Ok(()),
            Some(RayArtifacts {
                shared: Some(p), ..
            }) => Err(format!(
                "runner `{name}`: artifacts.shared `{}` must be an absolute path",
                p.display()
            )),
            _ => Err(format!(
                "runner `{name}` (type ray) needs `artifacts: {{ shared: /path }}`, a folder \
                 every node of the cluster mounts at the same path, or `artifacts: {{ url: \
                 s3://BUCKET/PREFIX }}`, object storage this machine and the nodes reach"
            )),
        }
    }
}

impl Inventory {
    /// One local runner with `cores` slots.
    pub fn default_local() -> Inventory {
        let mut runners = BTreeMap::new();
        runners.insert(
            "local".to_string(),
            RunnerSpec {
                kind: "local".into(),
                slots: None,
                gpus: vec![],
                price_per_hour: None,
                host: None,
                port: None,
                user: None,
                identity: None,
                known_hosts: None,
                accept_new: false,
                workdir: None,
                lost_after: None,
                keep_remote_over: None,
                tuna: None,
                address: None,
                token_env: None,
                gpu_resources: BTreeMap::new(),
                max_parallel: None,
                artifacts: None,
            },
        );
        Inventory { runners }
    }

    /// Loads the inventory from `explicit`, `$TUNA_RUNNERS` or the user's config, or the default.
    pub fn discover(explicit: Option<&Path>) -> Result<Inventory, InventoryError> {
        let path = explicit
            .map(Path::to_path_buf)
            .or_else(|| {
                std::env::var_os("TUNA_RUNNERS")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| {
                let p = PathBuf::from(std::env::var_os("HOME")?).join(".config/tuna/runners.yaml");
                p.exists().then_some(p)
            });
        match path {
            Some(p) => Inventory::load(&p),
            None => Ok(Inventory::default_local()),
        }
    }

    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let inv: Inventory = serde_yaml::from_str(&text).map_err(|e| InventoryError::Invalid {
            path: path.to_path_buf(),
            message: match e.location() {
                Some(l) => format!("{}:{}: {e}", l.line(), l.column()),
                None => e.to_string(),
            },
        })?;
        for (name, spec) in &inv.runners {
            let invalid = |message: String| InventoryError::Invalid {
                path: path.to_path_buf(),
                message,
            };
            match spec.kind.as_str() {
                "local" | "ssh" if !spec.ray_keys().is_empty() => {
                    return Err(invalid(format!(
                        "runner `{name}`: `{}` belongs to `type: ray` runners",
                        spec.ray_keys()[0]
                    )));
                }
                "ray" => spec.check_ray(name).map_err(invalid)?,
                "local" => {
                    if let Some(key) = spec.ssh_keys().first() {
                        return Err(invalid(format!(
                            "runner `{name}`: `{key}` belongs to `type: ssh` runners"
                        )));
                    }
                }
                "ssh" => {
                    if spec.host.as_deref().is_none_or(str::is_empty) {
                        return Err(invalid(format!("runner `{name}` (type ssh) needs `host`")));
                    }
                    match &spec.workdir {
                        Some(w) if w.starts_with('/') => {}
                        Some(w) => {
                            return Err(invalid(format!(
                                "runner `{name}`: workdir `{w}` must be an absolute path on the host"
                            )));
                        }
                        None => {
                            return Err(invalid(format!(
                                "runner `{name}` (type ssh) needs `workdir`, an absolute path on the host"
                            )));
                        }
                    }
                    if let Some(k) = &spec.keep_remote_over
                        && let Err(e) = crate::workflow::parse_size(k)
                    {
                        return Err(invalid(format!("runner `{name}`: keep_remote_over: {e}")));
                    }
                    spec.check_lost_after(name).map_err(invalid)?;
                }
                other => {
                    return Err(invalid(format!(
                        "runner `{name}` has type `{other}`; this build of tuna runs `local`, `ssh` and `ray` runners"
                    )));
                }
            }
            if spec
                .price_per_hour
                .is_some_and(|p| !(p >= 0.0 && p.is_finite()))
            {
                return Err(invalid(format!(
                    "runner `{name}`: price_per_hour must be a number ≥ 0"
                )));
            }
            if spec.slots == Some(0) {
                return Err(InventoryError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("runner `{name}`: slots must be at least 1"),
                });
            }
        }
        Ok(inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Inventory, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runners.yaml");
        std::fs::write(&path, text).unwrap();
        Inventory::load(&path).map_err(|e| e.to_string())
    }

    const GOOD: &str = "runners:\n  c:\n    type: ray\n    address: http://h:8265\n    \
                        max_parallel: 3\n    artifacts: { shared: /mnt/s }\n";

    #[test]
    fn a_ray_runner_loads_with_max_parallel_as_its_slots() {
        let inv = load(GOOD).unwrap();
        assert_eq!(inv.runners["c"].slot_count(), 3);
        let one = load(&GOOD.replace("    max_parallel: 3\n", "")).unwrap();
        assert_eq!(one.runners["c"].slot_count(), 1);
    }

    #[test]
    fn a_ray_runner_with_a_bucket_loads_with_its_node_folder_and_size_limit() {
        let text = GOOD.replace(
            "{ shared: /mnt/s }",
            "{ url: \"s3://tuna-art/x\", endpoint: \"http://127.0.0.1:9000\", region: us-east-1 }\n    \
             workdir: /scratch/tuna\n    keep_remote_over: 1MiB",
        );
        let inv = load(&text).unwrap();
        let a = inv.runners["c"].artifacts.as_ref().unwrap();
        assert_eq!(a.url.as_deref(), Some("s3://tuna-art/x"));
        assert_eq!(a.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(inv.runners["c"].workdir.as_deref(), Some("/scratch/tuna"));
    }

    #[test]
    fn bad_ray_entries_name_the_runner_and_the_field() {
        let cases = [
            (
                GOOD.replace("    address: http://h:8265\n", ""),
                "runner `c` (type ray) needs `address`",
            ),
            (
                GOOD.replace("http://h:8265", "h:8265"),
                "runner `c`: address `h:8265` must be",
            ),
            (
                GOOD.replace("    artifacts: { shared: /mnt/s }\n", ""),
                "runner `c` (type ray) needs `artifacts: { shared: /path }`",
            ),
            (
                GOOD.replace("/mnt/s", "rel/s"),
                "runner `c`: artifacts.shared `rel/s` must be an absolute path",
            ),
            (
                GOOD.replace("{ shared: /mnt/s }", "{ shared: /mnt/s, url: \"s3://b\" }"),
                "runner `c`: artifacts has both `shared` and `url` `s3://b`: set one",
            ),
            (
                GOOD.replace(
                    "{ shared: /mnt/s }",
                    "{ shared: /mnt/s, region: eu-west-1 }",
                ),
                "runner `c`: artifacts.endpoint and artifacts.region go with artifacts.url",
            ),
            (
                GOOD.replace("max_parallel: 3", "keep_remote_over: 1MiB"),
                "runner `c`: `keep_remote_over` applies to a Ray runner whose artifacts are in \
                 object storage",
            ),
            (
                GOOD.replace("{ shared: /mnt/s }", "{ url: \"s3://b-1/p\" }")
                    .replace("max_parallel: 3", "workdir: tmp/x"),
                "runner `c`: workdir `tmp/x` must be an absolute path",
            ),
            (
                GOOD.replace("max_parallel: 3", "slots: 3"),
                "runner `c`: a Ray runner says how many steps it runs at once with `max_parallel`",
            ),
            (
                GOOD.replace("max_parallel: 3", "max_parallel: 0"),
                "runner `c`: max_parallel must be at least 1",
            ),
            (
                GOOD.replace("max_parallel: 3", "lost_after: soon"),
                "runner `c`: lost_after `soon` is not a duration",
            ),
            (
                GOOD.replace("max_parallel: 3", "host: x"),
                "runner `c`: `host` belongs to `type: ssh` runners",
            ),
            (
                GOOD.replace("max_parallel: 3", "token_env: \"A B\""),
                "runner `c`: token_env `A B` must name an environment variable",
            ),
            (
                "runners:\n  l:\n    type: local\n    address: http://h\n".to_owned(),
                "runner `l`: `address` belongs to `type: ray` runners",
            ),
        ];
        for (text, want) in cases {
            let err = load(&text).unwrap_err();
            assert!(err.contains(want), "{text}\n→ {err}\nwanted: {want}");
        }
    }
}

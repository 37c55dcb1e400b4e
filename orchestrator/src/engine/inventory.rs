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
            if spec.kind != "local" {
                return Err(InventoryError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "runner `{name}` has type `{}`; this build of tuna runs `local` runners only",
                        spec.kind
                    ),
                });
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

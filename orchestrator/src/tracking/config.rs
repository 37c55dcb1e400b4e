//! Where a run is exported: MLflow's own conventions first (`MLFLOW_TRACKING_URI`,
//! `MLFLOW_EXPERIMENT_NAME`, `MLFLOW_TRACKING_TOKEN` or `MLFLOW_TRACKING_USERNAME`/`_PASSWORD`
//! from tuna's environment), then the workflow's `tracking:` block; the experiment defaults to
//! the workflow's name. Credentials come only from the environment and are never printed.

use std::fmt;
use std::path::Path;

use crate::store::RunRecord;

/// How requests authenticate.
#[derive(Clone, PartialEq)]
pub enum Auth {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Bearer(_) => "Bearer(***)",
            Auth::Basic { .. } => "Basic(***)",
        })
    }
}

/// A resolved tracking target.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The server's base URI, without a trailing `/`.
    pub uri: String,
    pub experiment: String,
    pub auth: Auth,
    /// Outputs up to this many bytes are uploaded as artifacts (`tracking.max_artifact_size`).
    pub max_artifact: u64,
    /// Registered model names by `finetune` step (`tracking.register_as`).
    pub register_as: std::collections::BTreeMap<String, String>,
}

/// Outputs up to this size are uploaded unless the workflow says otherwise.
pub const DEFAULT_MAX_ARTIFACT: u64 = 16 << 20;

impl Config {
    /// The target of `run`, or `None` when neither the environment nor the workflow names a
    /// server. `env` reads one variable (the process environment in `tuna run`).
    pub fn resolve(
        run: &RunRecord,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Config>, String> {
        let set = |k: &str| env(k).filter(|v| !v.is_empty());
        let block = crate::dag::load_str(Path::new(&run.workflow_path), &run.workflow_text)
            .ok()
            .and_then(|d| d.workflow().tracking.clone())
            .unwrap_or_default();
        let Some(uri) = set("MLFLOW_TRACKING_URI").or(block.mlflow) else {
            return Ok(None);
        };
        let rest = uri
            .strip_prefix("http://")
            .or_else(|| uri.strip_prefix("https://"))
            .ok_or("the tracking URI must start with http:// or https://")?;
        if rest
            .split(['/', '?', '#'])
            .next()
            .unwrap_or("")
            .contains('@')
        {
            return Err("the tracking URI holds credentials; set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) instead".into());
        }
        let experiment = set("MLFLOW_EXPERIMENT_NAME")
            .or(block.experiment)
            .unwrap_or_else(|| run.workflow.clone());
        let auth = match (
            set("MLFLOW_TRACKING_TOKEN"),
            set("MLFLOW_TRACKING_USERNAME"),
            set("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(t), _, _) => Auth::Bearer(t),
            (None, Some(user), Some(password)) => Auth::Basic { user, password },
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(
                    "set both MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD".into(),
                );
            }
            (None, None, None) => Auth::None,
        };
        Ok(Some(Config {
            uri: uri.trim_end_matches('/').to_string(),
            experiment,
            auth,
            max_artifact: block.max_artifact_size.unwrap_or(DEFAULT_MAX_ARTIFACT),
            register_as: block.register_as,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(text: &str) -> RunRecord {
        RunRecord::passed_for_test("r1", "wf", "/p/wf.yaml".into(), text)
    }

    fn with_env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const WF: &str = "name: wf\ntracking:\n  mlflow: http://127.0.0.1:9/\n  experiment: exp\nsteps:\n  a: { run: echo a }\n";

    #[test]
    fn the_environment_wins_over_the_block() {
        let e = with_env(&[
            ("MLFLOW_TRACKING_URI", "http://127.0.0.1:5005"),
            ("MLFLOW_EXPERIMENT_NAME", "other"),
            ("MLFLOW_TRACKING_TOKEN", "t0k"),
        ]);
        let c = Config::resolve(&run(WF), &e).unwrap().unwrap();
        assert_eq!(c.uri, "http://127.0.0.1:5005");
        assert_eq!(c.experiment, "other");
        assert_eq!(c.auth, Auth::Bearer("t0k".into()));
        assert!(!format!("{c:?}").contains("t0k"), "no token in Debug");
    }

    #[test]
    fn the_block_and_the_workflow_name_are_defaults() {
        let c = Config::resolve(&run(WF), &with_env(&[])).unwrap().unwrap();
        assert_eq!(
            (c.uri.as_str(), c.experiment.as_str()),
            ("http://127.0.0.1:9", "exp")
        );
        let plain = "name: wf\nsteps:\n  a: { run: echo a }\n";
        assert_eq!(Config::resolve(&run(plain), &with_env(&[])).unwrap(), None);
        let e = with_env(&[
            ("MLFLOW_TRACKING_URI", "https://h"),
            ("MLFLOW_TRACKING_USERNAME", "u"),
            ("MLFLOW_TRACKING_PASSWORD", "pw"),
        ]);
        let c = Config::resolve(&run(plain), &e).unwrap().unwrap();
        assert_eq!(c.experiment, "wf");
        assert!(matches!(c.auth, Auth::Basic { .. }));
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn credentials_in_the_uri_and_half_basic_auth_are_refused() {
        let e = with_env(&[("MLFLOW_TRACKING_URI", "http://u:secret@h:1")]);
        let err = Config::resolve(&run(WF), &e).unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        let e = with_env(&[("MLFLOW_TRACKING_USERNAME", "u")]);
        assert!(Config::resolve(&run(WF), &e).is_err());
        let e = with_env(&[("MLFLOW_TRACKING_URI", "file:///tmp/x")]);
        assert!(Config::resolve(&run(WF), &e).is_err());
    }
}

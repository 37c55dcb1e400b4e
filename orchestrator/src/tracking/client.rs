//! A small blocking client of MLflow's REST API (`/api/2.0/mlflow/…`): experiments, runs,
//! batched logging within the server's limits, search by tag. Errors never carry the URL's
//! query nor the credentials.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::config::{Auth, Config};

/// Per `runs/log-batch` call (MLflow's limits): items of all three kinds together, params, tags.
pub const MAX_ITEMS: usize = 1000;
pub const MAX_PARAMS: usize = 100;
pub const MAX_TAGS: usize = 100;
/// Longest param value MLflow keeps.
pub const MAX_PARAM_VALUE: usize = 6000;

#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("cannot reach the tracking server: {0}")]
    Transport(String),
    #[error("the tracking server answered {status} to {endpoint}: {message}")]
    Server {
        status: u16,
        endpoint: String,
        code: String,
        message: String,
    },
}

/// One metric point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub key: String,
    pub value: f64,
    pub timestamp: u64,
    pub step: u64,
}

pub struct Client {
    http: reqwest::blocking::Client,
    /// The server's URI.
    uri: String,
    base: String,
    auth: Auth,
}

impl Client {
    pub fn new(cfg: &Config) -> Result<Client, MlflowError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| MlflowError::Transport(e.without_url().to_string()))?;
        Ok(Client {
            http,
            uri: cfg.uri.clone(),
            base: format!("{}/api/2.0/mlflow", cfg.uri),
            auth: cfg.auth.clone(),
        })
    }

    fn call(&self, get: bool, endpoint: &str, body: &Value) -> Result<Value, MlflowError> {
        let url = format!("{}/{endpoint}", self.base);
        let req = if get {
            let pairs: Vec<(String, String)> = body
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
                .collect();
            self.http.get(&url).query(&pairs)
        } else {
            self.http.post(&url).json(body)
        };
        self.send(req, endpoint)
    }

    /// Sends a request with the credentials; the answer's JSON, or the error.
    fn send(
        &self,
        req: reqwest::blocking::RequestBuilder,
        endpoint: &str,
    ) -> Result<Value, MlflowError> {
        let req = match &self.auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
        };
        let resp = req
            .send()
            .map_err(|e| MlflowError::Transport(e.without_url().to_string()))?;
        let status = resp.status();
        let text = resp
            .text()
            .map_err(|e| MlflowError::Transport(e.without_url().to_string()))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let mut message = v["message"]
            .as_str()
            .map_or_else(|| text.chars().take(200).collect(), str::to_string);
        message.truncate(300);
        Err(MlflowError::Server {
            status: status.as_u16(),
            endpoint: endpoint.to_string(),
            code: v["error_code"].as_str().unwrap_or("").to_string(),
            message,
        })
    }

    /// The experiment's id, created when it does not exist (or was deleted: then restored).
    pub fn experiment_id(&self, name: &str) -> Result<String, MlflowError> {
        match self.call(
            true,
            "experiments/get-by-name",
            &json!({ "experiment_name": name }),
        ) {
            Ok(v) => {
                let e = &v["experiment"];
                let id = e["experiment_id"].as_str().unwrap_or_default().to_string();
                if e["lifecycle_stage"] == "deleted" {
                    self.call(
                        false,
                        "experiments/restore",
                        &json!({ "experiment_id": id }),
                    )?;
                }
                Ok(id)
            }
            Err(MlflowError::Server { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => {
                let v = self.call(false, "experiments/create", &json!({ "name": name }))?;
                Ok(v["experiment_id"].as_str().unwrap_or_default().to_string())
            }
            Err(e) => Err(e),
        }
    }

    /// Runs of the experiment matching `filter` (MLflow's search syntax), oldest first, every
    /// page of the answer.
    pub fn search(&self, experiment: &str, filter: &str) -> Result<Vec<Value>, MlflowError> {
        let mut runs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({
                "experiment_ids": [experiment],
                "filter": filter,
                "max_results": 1000,
                "order_by": ["attributes.start_time ASC"],
            });
            if let Some(t) = &token {
                body["page_token"] = json!(t);
            }
            let v = self.call(false, "runs/search", &body)?;
            runs.extend(v["runs"].as_array().cloned().unwrap_or_default());
            match v["next_page_token"].as_str().filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(runs),
            }
        }
    }

    /// Creates a run; returns its id.
    pub fn create_run(
        &self,
        experiment: &str,
        name: &str,
        start_time: u64,
        tags: &[(String, String)],
    ) -> Result<String, MlflowError> {
        let tags = key_values(tags);
        let v = self.call(
            false,
            "runs/create",
            &json!({
                "experiment_id": experiment,
                "run_name": name,
                "start_time": start_time,
                "tags": tags,
            }),
        )?;
        Ok(v["run"]["info"]["run_id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Logs everything in calls of at most 100 params, 100 tags and 1000 items in all; the tags
    /// go once the metrics and params are sent (a marker tag among them is sent last).
    pub fn log_batch(
        &self,
        run: &str,
        metrics: &[Point],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<(), MlflowError> {
        let (mut m, mut p, mut t) = (metrics, params, tags);
        while !(m.is_empty() && p.is_empty() && t.is_empty()) {
            let (p_now, p_rest) = p.split_at(p.len().min(MAX_PARAMS));
            let t_room = if p_rest.is_empty() { MAX_TAGS } else { 0 };
            let (t_try, _) = t.split_at(t.len().min(t_room));
            let room = MAX_ITEMS - p_now.len() - t_try.len();
            let (m_now, m_rest) = m.split_at(m.len().min(room));
            let (t_now, t_rest) = if m_rest.is_empty() {
                t.split_at(t_try.len())
            } else {
                t.split_at(0)
            };
            let points: Vec<Value> = m_now
                .iter()
                .map(|x| {
                    json!({ "key": x.key, "value": x.value, "timestamp": x.timestamp, "step": x.step })
                })
                .collect();
            self.call(
                false,
                "runs/log-batch",
                &json!({ "run_id": run, "metrics": points, "params": key_values(p_now), "tags": key_values(t_now) }),
            )?;
            (m, p, t) = (m_rest, p_rest, t_rest);
        }
        Ok(())
    }

    /// A run's artifact root (`artifact_uri`, e.g. `mlflow-artifacts:/1/RUN/artifacts`).
    pub fn artifact_uri(&self, run: &str) -> Result<String, MlflowError> {
        let v = self.call(true, "runs/get", &json!({ "run_id": run }))?;
        Ok(v["run"]["info"]["artifact_uri"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Uploads `file` as artifact `path` (`/`-separated) under `root`, a run's artifact root
    /// served by the server's artifact proxy (`mlflow-artifacts:/…`), with a PUT to
    /// `/api/2.0/mlflow-artifacts/artifacts/…`; a second upload replaces the first.
    pub fn upload(&self, root: &str, path: &str, file: &Path) -> Result<(), MlflowError> {
        let rest = root
            .strip_prefix("mlflow-artifacts:")
            .map(|r| r.trim_start_matches('/'))
            .ok_or_else(|| MlflowError::Transport(format!("artifact root `{root}` is not served by the tracking server (start it with --serve-artifacts)")))?;
        let mut url = reqwest::Url::parse(&self.uri)
            .map_err(|e| MlflowError::Transport(format!("tracking URI: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| MlflowError::Transport("tracking URI has no path".into()))?
            .pop_if_empty()
            .extend(["api", "2.0", "mlflow-artifacts", "artifacts"])
            .extend(rest.split('/').filter(|s| !s.is_empty()))
            .extend(path.split('/'));
        let body = std::fs::File::open(file)
            .map_err(|e| MlflowError::Transport(format!("{}: {e}", file.display())))?;
        self.send(self.http.put(url).body(body), "mlflow-artifacts/artifacts")
            .map(drop)
    }

    /// Registers `source` (of run `run`) as a new version of registered model `name` (made
    /// when missing), with `tags`, unless a version of `name` from `run` already has the tag
    /// `key` = `value`: the version's number, and whether it was made now.
    pub fn register(
        &self,
        name: &str,
        source: &str,
        run: &str,
        tags: &[(String, String)],
        (key, value): (&str, &str),
    ) -> Result<(String, bool), MlflowError> {
        let filter = format!("name = {} and run_id = {}", literal(name), literal(run));
        let found = self.call(
            true,
            "model-versions/search",
            &json!({ "filter": filter, "max_results": 1000 }),
        )?;
        let same = found["model_versions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| {
                tag(v, key) == Some(value)
                    || v["tags"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|t| t["key"] == key && t["value"] == value)
            });
        if let Some(v) = same {
            return Ok((v["version"].as_str().unwrap_or_default().to_string(), false));
        }
        match self.call(false, "registered-models/create", &json!({ "name": name })) {
            Ok(_) => {}
            Err(MlflowError::Server { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => {}
            Err(e) => return Err(e),
        }
        let tags = key_values(tags);
        let v = self.call(
            false,
            "model-versions/create",
            &json!({ "name": name, "source": source, "run_id": run, "tags": tags }),
        )?;
        Ok((
            v["model_version"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            true,
        ))
    }

    /// Sets a run's status (`RUNNING`, `FINISHED`, `FAILED`, `KILLED`) and end time.
    pub fn update(
        &self,
        run: &str,
        status: &str,
        end_time: Option<u64>,
    ) -> Result<(), MlflowError> {
        let mut body = json!({ "run_id": run, "status": status });
        if let Some(t) = end_time {
            body["end_time"] = json!(t);
        }
        self.call(false, "runs/update", &body).map(drop)
    }
}

/// Pairs as MLflow's `[{"key": …, "value": …}]`.
fn key_values(pairs: &[(String, String)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect()
}

/// A run's tag value from a `runs/search` or `runs/get` answer.
pub fn tag<'a>(run: &'a Value, key: &str) -> Option<&'a str> {
    run["data"]["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str())
}

/// A string as a quoted literal of MLflow's filter syntax.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

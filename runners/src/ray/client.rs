//! The Ray Jobs REST API (the dashboard's `/api/jobs/…`) and the cluster views `check` needs,
//! over reqwest. Every failure becomes one [`RayError`] whose message names the runner and
//! says what to do (address unreachable, token refused, not a Ray dashboard).

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::RayConfig;

/// Why a request to the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum RayError {
    #[error("runner `{runner}`: the Ray dashboard at {address} is unreachable: {reason}")]
    Unreachable {
        runner: String,
        address: String,
        reason: String,
    },
    #[error(
        "runner `{runner}`: the Ray cluster at {address} refused the token{from} (HTTP {status})"
    )]
    Auth {
        runner: String,
        address: String,
        status: u16,
        from: String,
    },
    #[error("runner `{runner}`: {what}: HTTP {status} from {address}: {body}")]
    Http {
        runner: String,
        address: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error("runner `{runner}`: {what}: not an answer of a Ray dashboard ({reason})")]
    Bad {
        runner: String,
        what: String,
        reason: String,
    },
}

impl RayError {
    /// Whether the cluster could not be reached at all (another runner may take the step).
    pub fn unreachable(&self) -> bool {
        matches!(self, RayError::Unreachable { .. })
    }
}

/// What `POST /api/jobs/` takes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Submission {
    pub entrypoint: String,
    pub submission_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_gpus: Option<f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub entrypoint_resources: BTreeMap<String, f64>,
    pub runtime_env: RuntimeEnv,
    pub metadata: BTreeMap<String, String>,
}

/// The part of Ray's `runtime_env` tuna sets.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuntimeEnv {
    pub env_vars: BTreeMap<String, String>,
}

/// What `GET /api/jobs/{id}` says about a job (the fields tuna reads).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct JobInfo {
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
    /// Unix milliseconds.
    #[serde(default)]
    pub start_time: Option<u64>,
    #[serde(default)]
    pub driver_exit_code: Option<i32>,
}

/// One node of the cluster.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NodeInfo {
    #[serde(default)]
    pub node_ip: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub resources_total: BTreeMap<String, f64>,
}

/// A client of one cluster's dashboard.
#[derive(Debug, Clone)]
pub struct RayClient {
    http: reqwest::Client,
    runner: String,
    address: String,
    token: Option<String>,
    token_env: Option<String>,
}

impl RayClient {
    pub fn new(cfg: &RayConfig) -> Result<RayClient, String> {
        // No idle connections kept: the client outlives the runtime of a run's start check,
        // and a pooled connection would belong to that runtime.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("runner `{}`: an HTTP client: {e}", cfg.name))?;
        Ok(RayClient {
            http,
            runner: cfg.name.clone(),
            address: cfg.address.clone(),
            token: cfg.token.clone(),
            token_env: cfg.token_env.clone(),
        })
    }

    /// One request; the status and body of any answer but a refused token.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<(StatusCode, String), RayError> {
        let mut req = self.http.request(method, format!("{}{path}", self.address));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| RayError::Unreachable {
            runner: self.runner.clone(),
            address: self.address.clone(),
            reason: error_chain(&e),
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RayError::Auth {
                runner: self.runner.clone(),
                address: self.address.clone(),
                status: status.as_u16(),
                from: match &self.token_env {
                    Some(v) if self.token.is_some() => format!(" from ${v}"),
                    Some(v) => format!(" (${v} is not set)"),
                    None => " (no token_env is set)".to_owned(),
                },
            });
        }
        let text = resp.text().await.map_err(|e| RayError::Unreachable {
            runner: self.runner.clone(),
            address: self.address.clone(),
            reason: format!("{what}: {}", error_chain(&e)),
        })?;
        Ok((status, text))
    }

    fn http_error(&self, what: &str, status: StatusCode, body: &str) -> RayError {
        RayError::Http {
            runner: self.runner.clone(),
            address: self.address.clone(),
            what: what.to_owned(),
            status: status.as_u16(),
            body: last_line(body),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, what: &str, text: &str) -> Result<T, RayError> {
        serde_json::from_str(text).map_err(|e| RayError::Bad {
            runner: self.runner.clone(),
            what: what.to_owned(),
            reason: format!("{e}: {}", text.chars().take(200).collect::<String>()),
        })
    }

    async fn get_ok(&self, path: &str, what: &str) -> Result<String, RayError> {
        let (status, text) = self.send(Method::GET, path, None, what).await?;
        if !status.is_success() {
            return Err(self.http_error(what, status, &text));
        }
        Ok(text)
    }

    /// Ray's version (`GET /api/version`).
    pub async fn version(&self) -> Result<String, RayError> {
        let what = "asking for Ray's version";
        let text = self.get_ok("/api/version", what).await?;
        let v: Value = self.parse(what, &text)?;
        v["ray_version"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| RayError::Bad {
                runner: self.runner.clone(),
                what: what.to_owned(),
                reason: format!("no ray_version in {text}"),
            })
    }

    /// The cluster's nodes and what each offers.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, RayError> {
        let what = "listing the cluster's nodes";
        let text = self.get_ok("/api/v0/nodes?limit=1000", what).await?;
        let v: Value = self.parse(what, &text)?;
        let list = v["data"]["result"]["result"].clone();
        self.parse(what, &list.to_string())
    }

    /// Resources in use across the cluster (`GET /api/cluster_status`, as the head's monitor
    /// last reported them: a few seconds behind).
    pub async fn used(&self) -> Result<BTreeMap<String, f64>, RayError> {
        let what = "asking for the cluster's status";
        let text = self.get_ok("/api/cluster_status", what).await?;
        let v: Value = self.parse(what, &text)?;
        let mut used = BTreeMap::new();
        if let Some(usage) = v["data"]["clusterStatus"]["loadMetricsReport"]["usage"].as_object() {
            for (k, pair) in usage {
                if let Some(u) = pair.get(0).and_then(Value::as_f64) {
                    // This report spells labels in camel case (`acceleratorType:A100`).
                    let k = k.replace("acceleratorType:", "accelerator_type:");
                    used.insert(k, u);
                }
            }
        }
        Ok(used)
    }

    /// The job `id`, or `None` if the cluster has no such job.
    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>, RayError> {
        let what = format!("asking for job {id}");
        let (status, text) = self
            .send(Method::GET, &format!("/api/jobs/{id}"), None, &what)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.http_error(&what, status, &text));
        }
        self.parse(&what, &text).map(Some)
    }

    /// Submits a job. `Ok(false)`: a job with this submission id exists already.
    pub async fn submit(&self, sub: &Submission) -> Result<bool, RayError> {
        let what = format!("submitting job {}", sub.submission_id);
        let body = serde_json::to_value(sub).map_err(|e| RayError::Bad {
            runner: self.runner.clone(),
            what: what.clone(),
            reason: e.to_string(),
        })?;
        let (status, text) = self
            .send(Method::POST, "/api/jobs/", Some(&body), &what)
            .await?;
        if status.is_success() {
            return Ok(true);
        }
        if text.contains("already exists") {
            return Ok(false);
        }
        Err(self.http_error(&what, status, &text))
    }

    /// The job's whole driver log so far.
    pub async fn logs(&self, id: &str) -> Result<String, RayError> {
        let what = format!("reading the logs of job {id}");
        let text = self.get_ok(&format!("/api/jobs/{id}/logs"), &what).await?;
        let v: Value = self.parse(&what, &text)?;
        Ok(v["logs"].as_str().unwrap_or_default().to_owned())
    }

    /// Asks the cluster to stop the job (its driver's processes get SIGTERM, then SIGKILL).
    pub async fn stop(&self, id: &str) -> Result<(), RayError> {
        let what = format!("stopping job {id}");
        let (status, text) = self
            .send(Method::POST, &format!("/api/jobs/{id}/stop"), None, &what)
            .await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(self.http_error(&what, status, &text))
    }
}

/// The error and its causes on one line (reqwest's top message alone hides the reason).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The last non-empty line of an error body (Ray answers some errors with a Python traceback).
fn last_line(body: &str) -> String {
    body.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && *l != ".")
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

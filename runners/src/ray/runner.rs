//! [`RayRunner`]: each attempt is one Ray Job, submitted through the Jobs REST API under a
//! submission id derived from `(run, step, attempt)`, so launching an attempt again (after a
//! crash of tuna) finds the job and watches it instead of submitting it twice.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::client::{RayClient, RayError, RuntimeEnv, Submission};
use super::config::RayConfig;
use super::exec::{SPEC, write_atomic};
use super::handle::{RayHandle, submission_id};
use super::shared::{JobSpec, Shared, SpecFile};
use super::{check, watch};
use crate::shell::quote;
use crate::{Handle, Job, Outcome, Runner, RunnerError, RunnerInfo};

/// Runs jobs on one Ray cluster.
#[derive(Debug)]
pub struct RayRunner {
    pub(crate) cfg: RayConfig,
    pub(crate) client: RayClient,
    pub(crate) shared: Shared,
    /// Until when the runner takes no new steps (a job of it waited past its
    /// `wait_for_capacity`, or the cluster did not answer): placement skips it meanwhile, so a
    /// step's next attempt goes to its next `runs-on` alternative.
    skip_until: Mutex<Option<Instant>>,
}

/// How long a Ray runner counts as full after a job gave up waiting for resources on it.
pub(crate) const FULL_FOR: Duration = Duration::from_secs(30);
/// How long a Ray runner whose cluster did not answer takes no new steps.
pub(crate) const UNREACHABLE_FOR: Duration = Duration::from_secs(10);

impl RayRunner {
    pub fn new(cfg: RayConfig) -> Result<RayRunner, RunnerError> {
        if !cfg.shared.is_absolute() {
            return Err(RunnerError::Other(format!(
                "runner `{}`: artifacts.shared `{}` must be an absolute path",
                cfg.name,
                cfg.shared.display()
            )));
        }
        let client = RayClient::new(&cfg).map_err(RunnerError::Other)?;
        Ok(RayRunner {
            shared: Shared::new(cfg.shared.clone()),
            client,
            cfg,
            skip_until: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &RayConfig {
        &self.cfg
    }

    /// The runner takes no new steps for `how_long`.
    pub(crate) fn skip_for(&self, how_long: Duration) {
        *self.skip_until.lock().expect("skip_until") = Some(Instant::now() + how_long);
    }

    /// A failed request of a launch: a cluster that does not answer takes no new steps for
    /// [`UNREACHABLE_FOR`].
    fn failed(&self, e: RayError) -> RunnerError {
        if e.unreachable() {
            self.skip_for(UNREACHABLE_FOR);
        }
        ray_error(e)
    }

    /// The Ray resources a job asks for: `entrypoint_num_gpus` and one small unit of each GPU
    /// type's resource (which only nodes with that type have).
    fn gpu_request(&self, job: &Job) -> (Option<f64>, BTreeMap<String, f64>) {
        if job.resources.gpus.is_empty() {
            return (None, BTreeMap::new());
        }
        let resources = job
            .resources
            .gpus
            .iter()
            .map(|g| (self.cfg.resource_for(&g.kind), 0.001))
            .collect();
        (Some(job.resources.gpus.len() as f64), resources)
    }

    /// Refuses a job asking for a GPU type no node of the cluster offers, naming the runner.
    pub async fn offers_gpu_types(&self, kinds: &[String]) -> Result<(), RunnerError> {
        if kinds.is_empty() {
            return Ok(());
        }
        let nodes = self.client.nodes().await.map_err(|e| self.failed(e))?;
        let offered = check::total(&nodes);
        for kind in kinds {
            let resource = self.cfg.resource_for(kind);
            if !offered.contains_key(&resource) {
                return Err(RunnerError::Other(format!(
                    "runner `{}`: the Ray cluster at {} has no GPU of type `{kind}` (no node \
                     offers the resource `{resource}`; it offers: {})",
                    self.cfg.name,
                    self.cfg.address,
                    offered
                        .keys()
                        .filter(|k| !k.starts_with("node:"))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The job's environment on the node: the job's own env with the paths that name the
    /// shared attempt folder, and `TUNA_EXE` naming the nodes' `tuna`.
    fn env_vars(&self, job: &Job, dir: &str) -> Result<BTreeMap<String, String>, RunnerError> {
        let mut env = job.env.clone();
        env.insert("TUNA_EXE".into(), self.cfg.tuna.clone());
        env.insert("TUNA_ATTEMPT_DIR".into(), dir.to_owned());
        env.insert("TUNA_OUTPUTS".into(), format!("{dir}/work"));
        env.insert("TUNA_METRICS".into(), format!("{dir}/metrics.json"));
        // Written on the node and not brought back: progress shows for local steps only.
        env.insert("TUNA_PROGRESS".into(), format!("{dir}/progress.json"));
        crate::step_env::check_names(&env, &job.step)?;
        Ok(env)
    }
}

/// Puts the job's inputs into the shared blobs and writes its spec into the attempt folder.
fn stage(shared: &Shared, job: &Job, dir: &std::path::Path) -> Result<(), RunnerError> {
    let (blobs, dirs) = crate::ssh::plan_stage(&job.stage)
        .map_err(|e| RunnerError::Other(format!("staging the inputs of `{}`: {e}", job.step)))?;
    let mut files = Vec::new();
    for b in blobs {
        if let Some(src) = &b.source {
            shared.put_known(src, &b.digest).map_err(|e| {
                RunnerError::Other(format!("staging `{}` of `{}`: {e}", b.dest, job.step))
            })?;
        }
        files.push(SpecFile {
            dest: b.dest,
            hex: b.digest,
            executable: b.executable,
        });
    }
    let spec = JobSpec {
        script: job.script.clone(),
        files,
        dirs,
        outputs: job.outputs.clone(),
    };
    std::fs::create_dir_all(dir)?;
    let bytes = serde_json::to_vec_pretty(&spec).map_err(|e| RunnerError::Other(e.to_string()))?;
    write_atomic(&dir.join(SPEC), &bytes)?;
    Ok(())
}

pub(crate) fn ray_error(e: RayError) -> RunnerError {
    if e.unreachable() {
        RunnerError::Unavailable(e.to_string())
    } else {
        RunnerError::Other(e.to_string())
    }
}

fn ray_handle(handle: &Handle) -> Result<RayHandle, RunnerError> {
    serde_json::from_value(handle.data.clone()).map_err(|e| {
        RunnerError::Other(format!(
            "not a handle of a Ray runner ({e}): {}",
            handle.data
        ))
    })
}

#[async_trait]
impl Runner for RayRunner {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn check(&self) -> Result<RunnerInfo, RunnerError> {
        Ok(check::check(self).await)
    }

    async fn check_gpu_types(&self, kinds: &[String]) -> Result<(), RunnerError> {
        self.offers_gpu_types(kinds).await
    }

    async fn launch(&self, job: &Job) -> Result<Handle, RunnerError> {
        if !job.secrets.is_empty() {
            // A job's runtime_env is shown to whoever reaches the dashboard (job details):
            // no place for a secret.
            return Err(RunnerError::Other(format!(
                "step `{}` has secrets ({}), which a Ray runner does not pass yet (Ray shows a job's environment in its job details); run it on a local or ssh runner",
                job.step,
                job.secrets.join(", ")
            )));
        }
        std::fs::create_dir_all(job.attempt_dir.join("work"))?;
        let id = submission_id(&job.run_id, &job.step, job.attempt);
        let dir: PathBuf = self.shared.attempt_dir(&job.run_id, &job.step, job.attempt);
        let dir_s = dir.to_string_lossy().into_owned();
        let data = RayHandle {
            submission_id: id.clone(),
            dir: dir_s.clone(),
            timeout_s: job.timeout.map(|t| t.as_secs_f64()),
            wait_for_capacity_s: job.wait_for_capacity.map(|t| t.as_secs_f64()),
        };
        let handle = Handle {
            runner: self.cfg.name.clone(),
            attempt_dir: job.attempt_dir.clone(),
            data: serde_json::to_value(&data).map_err(|e| RunnerError::Other(e.to_string()))?,
        };
        // Launched before (tuna crashed after submitting): watch that job.
        if self
            .client
            .job(&id)
            .await
            .map_err(|e| self.failed(e))?
            .is_some()
        {
            return Ok(handle);
        }
        let kinds: Vec<String> = job.resources.gpus.iter().map(|g| g.kind.clone()).collect();
        self.offers_gpu_types(&kinds).await?;
        let env_vars = self.env_vars(job, &dir_s)?;
        let (shared, staged, dir2) = (self.shared.clone(), job.clone(), dir.clone());
        tokio::task::spawn_blocking(move || stage(&shared, &staged, &dir2))
            .await
            .map_err(|e| RunnerError::Other(format!("a blocking task failed: {e}")))??;
        let (num_gpus, resources) = self.gpu_request(job);
        let sub = Submission {
            entrypoint: format!(
                "{} ray-exec {} {}",
                quote(&self.cfg.tuna),
                quote(&self.shared.root.to_string_lossy()),
                quote(&dir_s)
            ),
            submission_id: id,
            entrypoint_num_gpus: num_gpus,
            entrypoint_resources: resources,
            runtime_env: RuntimeEnv { env_vars },
            metadata: BTreeMap::from([
                ("tuna_run".to_owned(), job.run_id.clone()),
                ("tuna_step".to_owned(), job.step.clone()),
                ("tuna_attempt".to_owned(), job.attempt.to_string()),
            ]),
        };
        // `false`: another launch of this attempt submitted it first; watch that one.
        self.client.submit(&sub).await.map_err(|e| self.failed(e))?;
        Ok(handle)
    }

    async fn watch(&self, handle: &Handle) -> Result<Outcome, RunnerError> {
        let data = ray_handle(handle)?;
        watch::watch(self, &data, &handle.attempt_dir).await
    }

    async fn cancel(&self, handle: &Handle) -> Result<(), RunnerError> {
        let data = ray_handle(handle)?;
        self.client
            .stop(&data.submission_id)
            .await
            .map_err(|e| RunnerError::Other(e.to_string()))
    }

    /// Full or unreachable counts as down for placement for a while: a step's next attempt
    /// goes elsewhere; after that the cluster is tried again.
    fn is_down(&self) -> bool {
        self.skip_until
            .lock()
            .expect("skip_until")
            .is_some_and(|t| Instant::now() < t)
    }

    fn remote_attempt_dir(&self, run: &str, step: &str, attempt: u32) -> Option<String> {
        Some(
            self.shared
                .attempt_dir(run, step, attempt)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_steps_ask_for_whole_gpus_and_a_sliver_of_their_type() {
        let mut cfg = RayConfig::new("ray", "http://127.0.0.1:1", PathBuf::from("/shared"));
        cfg.gpu_resources
            .insert("h100".into(), "accelerator_type:H100-80GB".into());
        let runner = RayRunner::new(cfg).unwrap();
        let gpu = |kind: &str, index| crate::Gpu {
            kind: kind.into(),
            index,
        };
        let mut job = Job {
            run_id: "r".into(),
            step: "s".into(),
            attempt: 1,
            script: "true".into(),
            env: BTreeMap::new(),
            attempt_dir: PathBuf::from("/tmp/x"),
            timeout: None,
            wait_for_capacity: None,
            secrets: Vec::new(),
            resources: crate::Resources {
                slots: 1,
                gpus: vec![gpu("a100", 0), gpu("a100", 1)],
            },
            stage: Vec::new(),
            outputs: Vec::new(),
        };
        let (n, res) = runner.gpu_request(&job);
        assert_eq!(n, Some(2.0));
        assert_eq!(
            res,
            BTreeMap::from([("accelerator_type:A100".to_owned(), 0.001)])
        );
        job.resources.gpus = vec![gpu("h100", 0)];
        let (_, res) = runner.gpu_request(&job);
        assert_eq!(
            res,
            BTreeMap::from([("accelerator_type:H100-80GB".to_owned(), 0.001)])
        );
        job.resources.gpus.clear();
        assert_eq!(runner.gpu_request(&job), (None, BTreeMap::new()));
    }

    #[test]
    fn the_job_env_is_the_jobs_own_with_paths_on_the_shared_folder() {
        let mut cfg = RayConfig::new("ray", "http://127.0.0.1:1", PathBuf::from("/shared"));
        cfg.token = Some("secret-token".into());
        let runner = RayRunner::new(cfg).unwrap();
        let mut job = Job {
            run_id: "r".into(),
            step: "s".into(),
            attempt: 1,
            script: "true".into(),
            env: BTreeMap::from([
                ("TUNA_OUTPUTS".to_owned(), "/local/work".to_owned()),
                (
                    "TUNA_PROGRESS".to_owned(),
                    "/local/progress.json".to_owned(),
                ),
            ]),
            attempt_dir: PathBuf::from("/local"),
            timeout: None,
            wait_for_capacity: None,
            secrets: Vec::new(),
            resources: crate::Resources::default(),
            stage: Vec::new(),
            outputs: Vec::new(),
        };
        let env = runner.env_vars(&job, "/shared/runs/r/s/1").unwrap();
        assert_eq!(env["TUNA_OUTPUTS"], "/shared/runs/r/s/1/work");
        // Written on the node, never into a local path that may not exist there.
        assert_eq!(env["TUNA_PROGRESS"], "/shared/runs/r/s/1/progress.json");
        assert!(env.values().all(|v| !v.contains("secret-token")));
        job.env.insert("BAD NAME".into(), "x".into());
        assert!(runner.env_vars(&job, "/d").is_err());
    }
}

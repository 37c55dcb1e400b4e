//! [`RayRunner`]: each attempt is one Ray Job, submitted through the Jobs REST API under a
//! submission id derived from `(run, step, attempt)`, so launching an attempt again (after a
//! crash of tuna) finds the job and watches it instead of submitting it twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::bucket::Bucket;
use super::client::{RayClient, RayError, RuntimeEnv, Submission};
use super::config::{RayArtifacts, RayConfig};
use super::exec::{SECRETS, SPEC, write_atomic};
use super::handle::{RayHandle, submission_id};
use super::shared::{JobSpec, Shared, SpecFile};
use super::{check, watch};
use crate::objstore::ObjectBlobs;
use crate::shell::quote;
use crate::{Handle, Job, Outcome, Runner, RunnerError, RunnerInfo};

/// Where a runner's artifacts are, opened.
#[derive(Debug)]
pub(crate) enum Store {
    Shared(Shared),
    Bucket(Arc<ObjectBlobs>),
}

/// Runs jobs on one Ray cluster.
#[derive(Debug)]
pub struct RayRunner {
    pub(crate) cfg: RayConfig,
    pub(crate) client: RayClient,
    pub(crate) store: Store,
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
        let store = match &cfg.artifacts {
            RayArtifacts::Shared(root) if !root.is_absolute() => {
                return Err(RunnerError::Config(format!(
                    "runner `{}`: artifacts.shared `{}` must be an absolute path",
                    cfg.name,
                    root.display()
                )));
            }
            RayArtifacts::Shared(root) => Store::Shared(Shared::new(root.clone())),
            RayArtifacts::Bucket { node_dir, .. } if !node_dir.starts_with('/') => {
                return Err(RunnerError::Config(format!(
                    "runner `{}`: workdir `{node_dir}` must be an absolute path",
                    cfg.name
                )));
            }
            RayArtifacts::Bucket { store, .. } => Store::Bucket(Arc::new(
                ObjectBlobs::new(&cfg.name, store)
                    .map_err(|e| RunnerError::Config(e.to_string()))?,
            )),
        };
        let client = RayClient::new(&cfg).map_err(RunnerError::Config)?;
        Ok(RayRunner {
            store,
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
        ray_error(&self.cfg.name, e)
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
                return Err(RunnerError::Refused(format!(
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
    /// attempt folder there, and `TUNA_EXE` naming the nodes' `tuna`. Never a credential:
    /// Ray shows a job's environment to whoever reaches its dashboard.
    fn env_vars(&self, job: &Job, dir: &str) -> Result<BTreeMap<String, String>, RunnerError> {
        let mut env = job.env.clone();
        // Secrets go in a file of their own (`write_secrets`), never in Ray's job details.
        env.retain(|k, _| !job.secrets.contains(k));
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

impl RayRunner {
    /// The attempt folder of `(run, step, attempt)` on the node: in the shared folder, or
    /// under the nodes' `workdir` for a bucket.
    fn attempt_dir(&self, run: &str, step: &str, attempt: u32) -> String {
        match (&self.store, &self.cfg.artifacts) {
            (Store::Shared(shared), _) => shared
                .attempt_dir(run, step, attempt)
                .to_string_lossy()
                .into_owned(),
            (_, RayArtifacts::Bucket { node_dir, .. }) => {
                format!("{}/{run}/{step}/{attempt}", node_dir.trim_end_matches('/'))
            }
            (_, RayArtifacts::Shared(root)) => root.to_string_lossy().into_owned(),
        }
    }

    /// What a handle of `(run, step, attempt)` holds, without the step's time limits.
    fn handle_data(&self, run: &str, step: &str, attempt: u32) -> Result<RayHandle, RunnerError> {
        let records = match &self.store {
            Store::Bucket(_) => Some(
                Bucket::attempt_key(run, step, &attempt.to_string())
                    .map_err(RunnerError::Protocol)?,
            ),
            Store::Shared(_) => None,
        };
        Ok(RayHandle {
            submission_id: submission_id(run, step, attempt),
            dir: self.attempt_dir(run, step, attempt),
            records,
            timeout_s: None,
            wait_for_capacity_s: None,
        })
    }

    /// The attempt of `handle` in the bucket (a bucket runner's handle names it).
    pub(crate) fn bucket_of(&self, handle: &RayHandle) -> Option<Bucket> {
        match (&self.store, &handle.records) {
            (Store::Bucket(store), Some(records)) => {
                Some(Bucket::new(Arc::clone(store), records.clone()))
            }
            _ => None,
        }
    }

    /// Outputs bigger than this stay in the bucket.
    pub(crate) fn keep_over(&self) -> Option<u64> {
        match &self.cfg.artifacts {
            RayArtifacts::Bucket {
                keep_remote_over, ..
            } => *keep_remote_over,
            RayArtifacts::Shared(_) => None,
        }
    }

    /// `tuna ray-exec …` for an attempt whose folder on the node is `dir` (and whose records
    /// are at `records` in a bucket). The endpoint and region go as arguments; credentials
    /// never do (the node has its own in its environment).
    fn entrypoint(&self, dir: &str, records: Option<&str>) -> String {
        let tuna = quote(&self.cfg.tuna);
        let store = match &self.store {
            Store::Shared(shared) => {
                let root = shared.root.to_string_lossy();
                return format!("{tuna} ray-exec {} {}", quote(&root), quote(dir));
            }
            Store::Bucket(store) => store,
        };
        let mut e = format!(
            "{tuna} ray-exec {} {} --runner {}",
            quote(store.url()),
            quote(dir),
            quote(&self.cfg.name)
        );
        if let RayArtifacts::Bucket { store: cfg, .. } = &self.cfg.artifacts {
            if let Some(endpoint) = &cfg.endpoint {
                e.push_str(&format!(" --endpoint {}", quote(endpoint)));
            }
            if let Some(region) = &cfg.region {
                e.push_str(&format!(" --region {}", quote(region)));
            }
        }
        let attempt = records.unwrap_or_default().trim_start_matches("runs/");
        e.push_str(&format!(" --attempt {}", quote(attempt)));
        e
    }
}

/// Where a launch puts the job's inputs and spec.
enum Stage {
    /// The shared folder's blobs, and the spec into the attempt folder.
    Shared(Shared, PathBuf),
    /// The bucket's blobs the bucket lacks, and the spec as an object of the attempt.
    Bucket(Bucket),
}

impl Stage {
    /// Stages `job` for the runner called `runner`.
    fn stage(&self, job: &Job, runner: &str) -> Result<(), RunnerError> {
        match self {
            Stage::Shared(shared, dir) => stage_shared(shared, job, dir, runner),
            Stage::Bucket(bucket) => bucket.stage(job, runner).map(|_| ()),
        }
    }
}

/// Writes the values of the job's secrets into `dir/secrets.json`, readable by the user only
/// (created 0600 under another name, then renamed over any earlier one).
fn write_secrets(dir: &std::path::Path, job: &Job) -> Result<(), RunnerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let values: BTreeMap<&String, &String> = job
        .secrets
        .iter()
        .filter_map(|k| job.env.get(k).map(|v| (k, v)))
        .collect();
    let bytes = serde_json::to_vec(&values).map_err(|e| RunnerError::Protocol(e.to_string()))?;
    let tmp = dir.join(format!("{SECRETS}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(SECRETS))?;
    Ok(())
}

/// Puts the job's inputs into the shared blobs and writes its spec into the attempt folder.
fn stage_shared(
    shared: &Shared,
    job: &Job,
    dir: &std::path::Path,
    runner: &str,
) -> Result<(), RunnerError> {
    let (blobs, dirs) = crate::ssh::plan_stage(&job.stage)
        .map_err(|e| RunnerError::Protocol(format!("staging the inputs of `{}`: {e}", job.step)))?;
    let mut files = Vec::new();
    for b in blobs {
        if let Some(src) = &b.source {
            shared.put_known(src, &b.digest).map_err(|e| {
                RunnerError::remote(
                    runner,
                    format!("staging `{}` of `{}`: {e}", b.dest, job.step),
                )
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
    let bytes =
        serde_json::to_vec_pretty(&spec).map_err(|e| RunnerError::Protocol(e.to_string()))?;
    write_atomic(&dir.join(SPEC), &bytes)?;
    Ok(())
}

pub(crate) fn ray_error(runner: &str, e: RayError) -> RunnerError {
    if e.unreachable() {
        RunnerError::Unavailable(e.to_string())
    } else {
        RunnerError::remote(runner, e)
    }
}

fn ray_handle(handle: &Handle) -> Result<RayHandle, RunnerError> {
    serde_json::from_value(handle.data.clone()).map_err(|e| {
        RunnerError::Protocol(format!(
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
        if !job.secrets.is_empty() && matches!(self.store, Store::Bucket(_)) {
            // The values would have to travel through the bucket, which keeps what it is given.
            return Err(RunnerError::Refused(format!(
                "step `{}` has secrets ({}), which runner `{}` cannot pass: its artifacts are in a bucket, and the values would be written there; use `artifacts: {{ shared: … }}` for it, or run the step on a local or ssh runner",
                job.step,
                job.secrets.join(", "),
                self.cfg.name
            )));
        }
        std::fs::create_dir_all(job.attempt_dir.join("work"))?;
        let mut data = self.handle_data(&job.run_id, &job.step, job.attempt)?;
        data.timeout_s = job.timeout.map(|t| t.as_secs_f64());
        data.wait_for_capacity_s = job.wait_for_capacity.map(|t| t.as_secs_f64());
        let handle = Handle::new(&self.cfg.name, &job.attempt_dir, &data)?;
        // Launched before (tuna crashed after submitting): watch that job.
        if self
            .client
            .job(&data.submission_id)
            .await
            .map_err(|e| self.failed(e))?
            .is_some()
        {
            return Ok(handle);
        }
        let kinds: Vec<String> = job.resources.gpus.iter().map(|g| g.kind.clone()).collect();
        self.offers_gpu_types(&kinds).await?;
        let env_vars = self.env_vars(job, &data.dir)?;
        let staged = job.clone();
        let to = match (&self.store, self.bucket_of(&data)) {
            (_, Some(bucket)) => Stage::Bucket(bucket),
            (Store::Shared(shared), _) => Stage::Shared(shared.clone(), PathBuf::from(&data.dir)),
            (Store::Bucket(_), None) => unreachable!("a bucket runner's handle names its records"),
        };
        let name = self.cfg.name.clone();
        tokio::task::spawn_blocking(move || to.stage(&staged, &name))
            .await
            .map_err(|e| RunnerError::Spawn(format!("a blocking task failed: {e}")))??;
        if !job.secrets.is_empty() {
            // Never in runtime_env (Ray shows it in the job's details): a file only the user
            // reads, in the attempt folder, that the wrapper takes and removes before the
            // script starts.
            write_secrets(&PathBuf::from(&data.dir), job)?;
        }
        let (num_gpus, resources) = self.gpu_request(job);
        let sub = Submission {
            entrypoint: self.entrypoint(&data.dir, data.records.as_deref()),
            submission_id: data.submission_id,
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
        let outcome = watch::watch(self, &data, &handle.attempt_dir).await?;
        if let Store::Shared(_) = self.store {
            // A job that never started left its secrets there: they go with its end.
            let _ = std::fs::remove_file(PathBuf::from(&data.dir).join(SECRETS));
        }
        Ok(outcome)
    }

    async fn cancel(&self, handle: &Handle) -> Result<(), RunnerError> {
        let data = ray_handle(handle)?;
        self.client
            .stop(&data.submission_id)
            .await
            .map_err(|e| RunnerError::remote(&self.cfg.name, e))
    }

    /// The job of the attempt's submission id, while Ray has it pending or running.
    async fn launched(
        &self,
        run: &str,
        step: &str,
        attempt: u32,
        attempt_dir: &Path,
    ) -> Result<Option<Handle>, RunnerError> {
        let data = self.handle_data(run, step, attempt)?;
        let job = self
            .client
            .job(&data.submission_id)
            .await
            .map_err(|e| self.failed(e))?;
        match job {
            Some(j) if matches!(j.status.as_str(), "PENDING" | "RUNNING") => {
                Ok(Some(Handle::new(&self.cfg.name, attempt_dir, &data)?))
            }
            _ => Ok(None),
        }
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
        Some(self.attempt_dir(run, step, attempt))
    }

    async fn check_store(&self) -> Result<(), RunnerError> {
        match &self.store {
            Store::Bucket(store) => {
                let store = Arc::clone(store);
                tokio::task::spawn_blocking(move || store.check(check::STORE_TIMEOUT))
                    .await
                    .map_err(|e| RunnerError::Spawn(format!("a blocking task failed: {e}")))?
                    .map(|_| ())
                    .map_err(|e| RunnerError::remote(&self.cfg.name, e))
            }
            Store::Shared(_) => Ok(()),
        }
    }

    /// The blobs where the artifacts travel: a bucket (big outputs stay there; cache checks,
    /// moves, `tuna pull` and gc reach them here) or the shared folder (gc cleans it).
    fn blob_store(&self) -> Option<&dyn crate::BlobStore> {
        match &self.store {
            Store::Bucket(store) => Some(&**store),
            Store::Shared(shared) => Some(shared),
        }
    }

    fn attempt_folders(&self) -> Option<&dyn crate::AttemptFolders> {
        match &self.store {
            Store::Bucket(store) => Some(&**store),
            Store::Shared(shared) => Some(shared),
        }
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
            workdir: None,
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
    fn a_bucket_runner_names_the_nodes_own_folder_and_sends_no_credentials() {
        let mut cfg = RayConfig::new("ray1", "http://127.0.0.1:1", PathBuf::new());
        cfg.artifacts = RayArtifacts::Bucket {
            store: crate::objstore::ObjectStoreConfig {
                url: "s3://tuna-art/team".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: Some("eu-west-3".into()),
            },
            node_dir: "/scratch/tuna ray/".into(),
            keep_remote_over: Some(1 << 20),
        };
        cfg.tuna = "/opt/tuna/bin/tuna".into();
        let runner = RayRunner::new(cfg).unwrap();
        assert_eq!(
            runner.remote_attempt_dir("r1", "train", 2).as_deref(),
            Some("/scratch/tuna ray/r1/train/2")
        );
        let e = runner.entrypoint("/scratch/tuna ray/r1/train/2", Some("runs/r1/train/2"));
        assert_eq!(
            e,
            "/opt/tuna/bin/tuna ray-exec s3://tuna-art/team '/scratch/tuna ray/r1/train/2' \
             --runner ray1 --endpoint http://127.0.0.1:9000 --region eu-west-3 \
             --attempt r1/train/2"
        );
        assert!(runner.blob_store().is_some() && runner.attempt_folders().is_some());
        assert_eq!(runner.keep_over(), Some(1 << 20));
        // A relative node folder is refused, naming the runner.
        let mut bad = runner.cfg.clone();
        if let RayArtifacts::Bucket { node_dir, .. } = &mut bad.artifacts {
            *node_dir = "scratch".into();
        }
        let err = RayRunner::new(bad).unwrap_err().to_string();
        assert!(err.contains("runner `ray1`: workdir `scratch`"), "{err}");
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
            workdir: None,
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

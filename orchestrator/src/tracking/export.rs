//! What a tuna run becomes in MLflow: one parent run (tags `tuna.run_id`, `tuna.workflow`, the
//! user and the git source; the run's params) and one nested run per step that reached a final
//! state (tag `mlflow.parentRunId`; `with:` values as params; the step's metrics; cache key,
//! runner, attempt, status, GPU-hours and cost as tags; a cache hit tagged `tuna.cached=true`
//! with the run that made its outputs; the per-iteration histories of a `finetune.json` output).
//! Runs are found again by tag, so exporting again (after `tuna resume`) logs into the same
//! runs; a step's tag `tuna.logged` records which attempt was sent, so no point is sent twice.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use super::client::{Client, MAX_PARAM_VALUE, MlflowError, Point, literal, tag};
use super::config::Config;
use crate::engine::Cost;
use crate::store::{RunRecord, RunStatus, StepRecord, StepStatus, Store};
use crate::workflow::{Action, Ref, Workflow};

/// What an export did.
#[derive(Debug)]
pub struct Exported {
    /// The MLflow id of the run's parent run.
    pub parent: String,
    /// Steps sent this time (a step already sent for its current attempt is not counted).
    pub steps: usize,
}

type Pairs = Vec<(String, String)>;

fn pair(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// A tuna run's MLflow runs while this process sends to them: the parent (found by tag or
/// made) and the step runs under it with what was sent of each, so a step is sent once, when
/// it ends, without asking the server again.
pub struct Session {
    c: Client,
    exp: String,
    /// The MLflow id of the parent run.
    pub parent: String,
    /// Step name → (its MLflow run, its `tuna.logged` marker).
    children: HashMap<String, (String, Option<String>)>,
    dag: Option<crate::dag::Dag>,
    params: BTreeMap<String, String>,
    run: RunRecord,
    cfg: Config,
    /// Steps sent by this session.
    pub sent: usize,
}

impl Session {
    /// Finds (or makes) the parent of `run` and its step runs.
    pub fn open(run: &RunRecord, cfg: &Config) -> Result<Session, MlflowError> {
        let dag = crate::dag::load_str(Path::new(&run.workflow_path), &run.workflow_text).ok();
        let params = dag
            .as_ref()
            .and_then(|d| crate::engine::merged_params(d.workflow(), &run.params).ok())
            .unwrap_or_else(|| run.params.clone());
        let c = Client::new(cfg)?;
        let exp = c.experiment_id(&cfg.experiment)?;
        let parent = match find_parent(&c, &exp, &run.id)? {
            Some(id) => id,
            None => create_parent(&c, &exp, run, &params)?,
        };
        let children = c
            .search(
                &exp,
                &format!("tags.mlflow.parentRunId = {}", literal(&parent)),
            )?
            .into_iter()
            .filter_map(|r| {
                let step = tag(&r, "tuna.step")?.to_string();
                let id = r["info"]["run_id"].as_str()?.to_string();
                Some((step, (id, tag(&r, "tuna.logged").map(str::to_string))))
            })
            .collect();
        Ok(Session {
            c,
            exp,
            parent,
            children,
            dag,
            params,
            run: run.clone(),
            cfg: cfg.clone(),
            sent: 0,
        })
    }

    /// The run is being driven: its parent shows `RUNNING` (again, after a resume) until it
    /// ends; a crashed run stays so until it is resumed.
    pub fn started(&self) -> Result<(), MlflowError> {
        self.c.update(&self.parent, "RUNNING", None)
    }

    /// Sends one step that reached a final state, unless this attempt and state were sent.
    pub fn send_step(&mut self, store: &Store, rec: &StepRecord) -> Result<(), MlflowError> {
        if !rec.status.is_final() {
            return Ok(());
        }
        let marker = logged_marker(rec);
        let existing = self.children.get(&rec.step);
        if existing.and_then(|(_, m)| m.as_deref()) == Some(marker.as_str()) {
            return Ok(());
        }
        let wf = self.dag.as_ref().map(|d| d.workflow());
        let (params, cut) = limit_params(step_params(rec, &self.run, wf, &self.params).into_iter());
        let id = match existing {
            Some((id, _)) => id.clone(),
            None => {
                let id = create_child(&self.c, &self.exp, &self.parent, &self.run, rec, &cut)?;
                self.children.insert(rec.step.clone(), (id.clone(), None));
                id
            }
        };
        let mut tags = step_tags(rec);
        if rec.status == StepStatus::Cached
            && let Some(from) = rec
                .cache_key
                .as_deref()
                .and_then(|k| store.cache_entry(k).ok().flatten())
        {
            tags.push(pair("tuna.cached_from_run", &from.run));
            if let Some(m) = find_parent(&self.c, &self.exp, &from.run)? {
                tags.push(pair("tuna.cached_from_mlflow_run", m));
            }
        }
        self.c.update(&id, step_status(rec.status), rec.ended_at)?;
        let outputs = super::artifacts::send(&self.c, &id, rec, self.cfg.max_artifact)?;
        tags.extend(outputs.tags);
        if outputs.adapter_uploaded && self.uses(&rec.step) == Some("finetune") {
            let wf = self.dag.as_ref().map(|d| d.workflow());
            let base = step_params(rec, &self.run, wf, &self.params)
                .into_iter()
                .find(|(k, _)| k == "with.model")
                .map(|(_, v)| v);
            let (name, version) = super::artifacts::register(
                &self.c,
                &self.cfg,
                &self.run.workflow,
                &id,
                rec,
                base.as_deref(),
            )?;
            tags.push(pair("tuna.registered_model", name));
            tags.push(pair("tuna.registered_version", version));
        }
        // The marker goes last (log_batch sends tags in its last call): a send cut short is
        // sent again whole (uploads replace, a registered attempt is found by its tag), and
        // MLflow keeps one copy of a point sent twice.
        tags.push(pair("tuna.logged", &marker));
        // Params go with the rest (MLflow takes the same value again when a step is sent again).
        self.c.log_batch(&id, &step_metrics(rec), &params, &tags)?;
        self.children.insert(rec.step.clone(), (id, Some(marker)));
        self.sent += 1;
        Ok(())
    }

    /// The kind of a `uses:` step.
    fn uses(&self, step: &str) -> Option<&str> {
        match &self.dag.as_ref()?.workflow().steps.get(step)?.action {
            Action::Uses { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// Sends every final step not sent yet and the run's status, as the store has them now.
    pub fn finish(&mut self, store: &Store) -> Result<(), MlflowError> {
        if let Ok(Some(run)) = store.run(&self.run.id) {
            self.run = run;
        }
        let steps = store.steps(&self.run.id).unwrap_or_default();
        for rec in &steps {
            self.send_step(store, rec)?;
        }
        let run = &self.run;
        let cost = Cost::of_run(&steps, run.ended_at.unwrap_or_else(crate::store::now_ms));
        let tags = vec![
            pair("tuna.status", run.status.as_str()),
            pair("tuna.gpu_hours", format!("{:.6}", cost.gpu_hours)),
            pair("tuna.cost", format!("{:.6}", cost.cost)),
        ];
        // The run's leaderboard rows as metrics of the parent, at the run's end (the same
        // point each time it is sent: MLflow keeps one).
        let at = run.ended_at.unwrap_or(run.created_at);
        let rows: Vec<Point> = crate::engine::rows_for_run(run, &steps)
            .into_iter()
            .filter(|r| r.value.is_finite())
            .map(|r| Point {
                key: metric_key(&format!("leaderboard/{}/{}", r.model, r.metric)),
                value: r.value,
                timestamp: at,
                step: 0,
            })
            .collect();
        self.c.log_batch(&self.parent, &rows, &[], &tags)?;
        self.c
            .update(&self.parent, run_status(run.status), run.ended_at)
    }
}

/// Exports `run` (its records as they are now) to the server of `cfg`.
pub fn export(store: &Store, run: &RunRecord, cfg: &Config) -> Result<Exported, MlflowError> {
    let mut s = Session::open(run, cfg)?;
    s.finish(store)?;
    Ok(Exported {
        parent: s.parent,
        steps: s.sent,
    })
}

fn find_parent(c: &Client, exp: &str, run_id: &str) -> Result<Option<String>, MlflowError> {
    let found = c.search(exp, &format!("tags.`tuna.run_id` = {}", literal(run_id)))?;
    Ok(found
        .first()
        .and_then(|r| r["info"]["run_id"].as_str())
        .map(str::to_string))
}

fn create_parent(
    c: &Client,
    exp: &str,
    run: &RunRecord,
    params: &BTreeMap<String, String>,
) -> Result<String, MlflowError> {
    let mut tags = vec![
        pair("tuna.run_id", &run.id),
        pair("tuna.workflow", &run.workflow),
        pair("mlflow.source.name", run.workflow_path.display()),
    ];
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        tags.push(pair("mlflow.user", user));
    }
    let (commit, branch) = super::git::source(run.workflow_path.parent().unwrap_or(Path::new("")));
    if let Some(c) = commit {
        tags.push(pair("mlflow.source.git.commit", c));
    }
    if let Some(b) = branch {
        tags.push(pair("mlflow.source.git.branch", b));
    }
    if let Some(t) = &run.scheduled_time {
        tags.push(pair("tuna.scheduled_time", t));
    }
    let (params, truncated) = limit_params(params.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !truncated.is_empty() {
        tags.push(pair("tuna.truncated_params", truncated.join(",")));
    }
    let name = format!("{}-{}", run.workflow, run.id);
    let id = c.create_run(exp, &name, run.created_at, &tags)?;
    c.log_batch(&id, &[], &params, &[])?;
    Ok(id)
}

/// Makes the MLflow run of a step under `parent`; `cut`: its params cut to MLflow's limit.
fn create_child(
    c: &Client,
    exp: &str,
    parent: &str,
    run: &RunRecord,
    rec: &StepRecord,
    cut: &[String],
) -> Result<String, MlflowError> {
    let mut tags = vec![
        pair("mlflow.parentRunId", parent),
        pair("tuna.step", &rec.step),
        pair("tuna.in_run", &run.id),
        pair("tuna.workflow", &run.workflow),
    ];
    if !cut.is_empty() {
        tags.push(pair("tuna.truncated_params", cut.join(",")));
    }
    let start = rec.started_at.or(rec.ended_at).unwrap_or(run.created_at);
    c.create_run(exp, &rec.step, start, &tags)
}

/// Which send of a step this is: its attempt count, or `cached`.
fn logged_marker(rec: &StepRecord) -> String {
    match rec.status {
        StepStatus::Cached => "cached".to_string(),
        s => format!("{}:{}", rec.attempts.len(), s.as_str()),
    }
}

/// A `uses:` step's `with:` values (references to params, the run id and the scheduled time
/// filled in; upstream outputs as their reference) and its kind.
fn step_params(
    rec: &StepRecord,
    run: &RunRecord,
    wf: Option<&Workflow>,
    params: &BTreeMap<String, String>,
) -> Pairs {
    let Some(Action::Uses { kind, with }) =
        wf.and_then(|w| w.steps.get(&rec.step)).map(|s| &s.action)
    else {
        return Vec::new();
    };
    let mut resolve = |r: &Ref| match r {
        Ref::Param(p) => params.get(p).cloned().unwrap_or_default(),
        Ref::RunId => run.id.clone(),
        Ref::ScheduledTime => run.scheduled_time.clone().unwrap_or_default(),
        Ref::StepOutput { step, output } => format!("steps.{step}.outputs.{output}"),
    };
    let rendered = crate::workflow::render_with(with, &mut resolve);
    let mut out = vec![pair("uses", kind)];
    for (k, v) in rendered.as_object().into_iter().flatten() {
        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        out.push((format!("with.{k}"), v));
    }
    out
}

/// Params within MLflow's limits: values cut at 6000 characters (the keys cut are returned).
fn limit_params(params: impl Iterator<Item = (String, String)>) -> (Pairs, Vec<String>) {
    let mut truncated = Vec::new();
    let out = params
        .map(|(k, v)| {
            if v.chars().count() > MAX_PARAM_VALUE {
                truncated.push(k.clone());
                (k, v.chars().take(MAX_PARAM_VALUE).collect())
            } else {
                (k, v)
            }
        })
        .collect();
    (out, truncated)
}

fn step_tags(rec: &StepRecord) -> Pairs {
    let cost = Cost::of_step(rec, rec.ended_at.unwrap_or_else(crate::store::now_ms));
    let mut t = vec![
        pair("tuna.status", rec.status.as_str()),
        pair("tuna.attempt", rec.attempts.len()),
        pair("tuna.cached", rec.status == StepStatus::Cached),
        pair("tuna.gpu_hours", format!("{:.6}", cost.gpu_hours)),
        pair("tuna.cost", format!("{:.6}", cost.cost)),
    ];
    if let Some(a) = rec.attempts.last() {
        t.push(pair("tuna.runner", &a.runner));
    }
    // Every attempt stays visible on the step's run: a failed one and the retry that passed.
    for a in &rec.attempts {
        t.push(pair(
            &format!("tuna.attempt.{}.outcome", a.n),
            a.outcome
                .as_ref()
                .map_or("running".to_string(), outcome_text),
        ));
        t.push(pair(&format!("tuna.attempt.{}.runner", a.n), &a.runner));
    }
    if let Some(k) = &rec.cache_key {
        t.push(pair("tuna.cache_key", k));
    }
    if let Some(m) = &rec.message {
        t.push(pair(
            "tuna.message",
            m.chars().take(4000).collect::<String>(),
        ));
    }
    t
}

/// How an attempt ended, in a few words.
fn outcome_text(o: &tuna_runners::Outcome) -> String {
    use tuna_runners::Outcome as O;
    match o {
        O::Exited { code } => format!("exited {code}"),
        O::Signaled { signal } => format!("killed by signal {signal}"),
        O::TimedOut => "timed out".into(),
        O::Cancelled => "cancelled".into(),
        O::NoCapacity { .. } => "no capacity".into(),
        O::Lost { .. } => "runner lost".into(),
    }
}

/// The step's metrics at its attempt number (0 for a cache hit), then the per-iteration lists
/// of a passed step's `finetune.json` output (see [`histories`]). A metric that also has a
/// history with its own iteration numbers (`eval_loss` and `eval_losses` + `eval_steps`) is
/// logged at the history's last iteration, so it ends the curve instead of standing apart.
fn step_metrics(rec: &StepRecord) -> Vec<Point> {
    let ts = rec.ended_at.unwrap_or_else(crate::store::now_ms);
    let attempt = match rec.status {
        StepStatus::Cached => 0,
        _ => rec.attempts.len() as u64,
    };
    let file = rec
        .outputs_dir
        .as_deref()
        .filter(|_| rec.status == StepStatus::Passed && rec.outputs.contains_key("finetune.json"))
        .map(|d| d.join("finetune.json"));
    let doc = file
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    let histories = histories(&doc);
    let mut points: Vec<Point> = rec
        .metrics
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| {
            let last = histories
                .iter()
                .find(|h| h.stepped && h.key == *k)
                .and_then(|h| h.points.last());
            Point {
                key: metric_key(k),
                value: *v,
                timestamp: ts,
                step: last.map_or(attempt, |p| p.0),
            }
        })
        .collect();
    for h in histories {
        if !h.stepped && rec.metrics.contains_key(&h.key) {
            continue;
        }
        points.extend(h.points.into_iter().map(|(step, value)| Point {
            key: metric_key(&h.key),
            value,
            timestamp: ts,
            step,
        }));
    }
    points
}

/// One per-iteration list of a `finetune.json`.
#[derive(Debug, PartialEq)]
struct History {
    /// The metric's name (`losses` → `loss`, `lrs` → `lr`, `eval_losses` → `eval_loss`).
    key: String,
    /// `(iteration, value)`, finite values only.
    points: Vec<(u64, f64)>,
    /// Whether the iterations come from a `<name>_steps` list (else the list's index).
    stepped: bool,
}

/// The lists of numbers in a `finetune.json`. A list `X` with a companion list of iteration
/// numbers of the same length — `<prefix>_steps` where `X` is `<prefix>_<rest>`
/// (`eval_losses` + `eval_steps`), or `X_steps` — is indexed by those numbers, and the companion
/// is not a history of its own; any other list is indexed by position.
fn histories(doc: &Value) -> Vec<History> {
    let Some(obj) = doc.as_object() else {
        return Vec::new();
    };
    let steps_of = |k: &str| -> Option<(String, Vec<u64>)> {
        let prefix = k.rsplit_once('_').map_or(k, |(a, _)| a);
        let len = obj[k].as_array()?.len();
        [format!("{prefix}_steps"), format!("{k}_steps")]
            .into_iter()
            .filter(|s| s != k)
            .find_map(|s| {
                let list: Option<Vec<u64>> =
                    obj.get(&s)?.as_array()?.iter().map(Value::as_u64).collect();
                list.filter(|l| l.len() == len).map(|l| (s, l))
            })
    };
    let index: BTreeMap<&str, (String, Vec<u64>)> = obj
        .iter()
        .filter(|(_, v)| v.is_array())
        .filter_map(|(k, _)| Some((k.as_str(), steps_of(k)?)))
        .collect();
    let companions: Vec<&str> = index.values().map(|(s, _)| s.as_str()).collect();
    let mut out = Vec::new();
    for (k, v) in obj {
        let Some(list) = v.as_array() else { continue };
        if companions.contains(&k.as_str()) && !index.contains_key(k.as_str()) {
            continue;
        }
        let key = match k.as_str() {
            "losses" => "loss",
            "lrs" => "lr",
            "eval_losses" => "eval_loss",
            other => other,
        };
        let steps = index.get(k.as_str()).map(|(_, s)| s);
        let points = list
            .iter()
            .enumerate()
            .filter_map(|(i, x)| {
                let value = x.as_f64().filter(|x| x.is_finite())?;
                Some((steps.map_or(i as u64, |s| s[i]), value))
            })
            .collect();
        out.push(History {
            key: key.to_string(),
            points,
            stepped: steps.is_some(),
        });
    }
    out
}

/// A metric name as MLflow accepts it: letters, digits, `_ - . /` and spaces, at most 250
/// characters; anything else becomes `_`.
pub(super) fn metric_key(name: &str) -> String {
    name.chars()
        .take(250)
        .map(|c| {
            if c.is_alphanumeric() || "_-./ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn step_status(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Passed | StepStatus::Cached => "FINISHED",
        StepStatus::Failed | StepStatus::TimedOut => "FAILED",
        _ => "KILLED",
    }
}

fn run_status(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Passed => "FINISHED",
        RunStatus::Failed => "FAILED",
        RunStatus::Cancelled | RunStatus::Interrupted => "KILLED",
        RunStatus::Running => "RUNNING",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_params_are_cut_and_named() {
        let long = "x".repeat(MAX_PARAM_VALUE + 5);
        let (p, cut) = limit_params(vec![pair("a", "1"), pair("b", &long)].into_iter());
        assert_eq!(p[0].1, "1");
        assert_eq!(p[1].1.len(), MAX_PARAM_VALUE);
        assert_eq!(cut, vec!["b".to_string()]);
    }

    #[test]
    fn a_uses_step_sends_its_kind_and_rendered_with_values() {
        let text = "name: wf\nparams:\n  data: d.jsonl\nsteps:\n  prep:\n    uses: data.prepare\n    with:\n      input: ${{ params.data }}\n      tokenizer: tok/\n      max_tokens: 64\n  plain:\n    run: echo hi\n";
        let dag = crate::dag::load_str(Path::new("/p/wf.yaml"), text).expect("loads");
        let run = RunRecord::passed_for_test("r1", "wf", "/p/wf.yaml".into(), text);
        let params = BTreeMap::from([("data".to_string(), "other.jsonl".to_string())]);
        let got = step_params(
            &StepRecord::new("r1", "prep"),
            &run,
            Some(dag.workflow()),
            &params,
        );
        assert!(got.contains(&pair("uses", "data.prepare")), "{got:?}");
        assert!(got.contains(&pair("with.input", "other.jsonl")), "{got:?}");
        assert!(got.contains(&pair("with.max_tokens", "64")), "{got:?}");
        let plain = step_params(
            &StepRecord::new("r1", "plain"),
            &run,
            Some(dag.workflow()),
            &params,
        );
        assert!(plain.is_empty());
    }

    #[test]
    fn metric_names_are_made_acceptable_to_mlflow() {
        assert_eq!(metric_key("eval/loss v2"), "eval/loss v2");
        assert_eq!(metric_key("acc@k:5"), "acc_k_5");
        assert_eq!(metric_key(&"m".repeat(300)).len(), 250);
    }

    #[test]
    fn eval_losses_are_logged_as_eval_loss_at_their_iterations() {
        let doc = serde_json::json!({
            "losses": [3.0, 2.0, 1.0, 0.5],
            "eval_losses": [2.5, 1.25],
            "eval_steps": [2, 4],
            "eval_loss": 1.25,
            "lrs": [0.1, 0.1, 0.05, 0.01],
            "odd": [1.0, 2.0],
            "odd_steps": [7],
        });
        let hs = histories(&doc);
        let get = |k: &str| {
            hs.iter()
                .find(|h| h.key == k)
                .unwrap_or_else(|| panic!("{k}: {hs:?}"))
        };
        assert_eq!(get("eval_loss").points, [(2, 2.5), (4, 1.25)]);
        assert!(get("eval_loss").stepped);
        assert_eq!(get("loss").points, [(0, 3.0), (1, 2.0), (2, 1.0), (3, 0.5)]);
        assert!(!get("loss").stepped);
        assert_eq!(get("lr").points.len(), 4);
        assert!(
            !hs.iter().any(|h| h.key == "eval_steps"),
            "the index is no history: {hs:?}"
        );
        // A companion of another length is no index: both stay histories by position.
        assert_eq!(get("odd").points, [(0, 1.0), (1, 2.0)]);
        assert_eq!(get("odd_steps").points, [(0, 7.0)]);

        // Through a step: the final eval_loss ends the curve at its last iteration.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("finetune.json"), doc.to_string()).unwrap();
        let mut rec = StepRecord::new("r", "ft");
        rec.status = StepStatus::Passed;
        rec.outputs_dir = Some(dir.path().to_path_buf());
        rec.outputs.insert(
            "finetune.json".into(),
            crate::cas::Digest::new(crate::cas::DigestKind::Blob, [0; 32]),
        );
        rec.metrics.insert("eval_loss".into(), 1.25);
        rec.metrics.insert("loss".into(), 0.5);
        let pts = step_metrics(&rec);
        let of = |k: &str| -> Vec<(u64, f64)> {
            pts.iter()
                .filter(|p| p.key == k)
                .map(|p| (p.step, p.value))
                .collect()
        };
        assert_eq!(of("eval_loss"), [(4, 1.25), (2, 2.5), (4, 1.25)]);
        assert_eq!(
            of("loss"),
            [(0, 0.5)],
            "a position-indexed list under a metric's name is left out"
        );
        assert!(of("eval_steps").is_empty());
    }

    #[test]
    fn a_step_is_sent_once_per_attempt_and_state() {
        let mut r = StepRecord::new("r", "s");
        r.status = StepStatus::Failed;
        assert_eq!(logged_marker(&r), "0:failed");
        r.status = StepStatus::Cached;
        assert_eq!(logged_marker(&r), "cached");
        assert_eq!(step_status(StepStatus::TimedOut), "FAILED");
        assert_eq!(step_status(StepStatus::Skipped), "KILLED");
    }
}

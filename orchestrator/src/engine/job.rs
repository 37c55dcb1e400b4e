//! Turning a step of a run into what a runner runs: its rendered script and env, and its
//! attempt folder with staged inputs (what enters its cache key is `cache::inputs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tuna_runners::{Job, Resources, Stage};

use super::attempt_files::{AttemptFiles, has_own_folder};
use crate::cache::with_paths;
use crate::workflow::{Action, Ref, Step, Workflow, param_env_name};

/// Defaults overlaid with `-p` overrides; an override of an undeclared param is an error.
pub fn merged_params(
    wf: &Workflow,
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut params: BTreeMap<String, String> = wf
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in overrides {
        if !params.contains_key(k) {
            let known: Vec<&str> = wf.params.keys().map(String::as_str).collect();
            return Err(format!(
                "param `{k}` is not declared in {} (declared: {})",
                wf.path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        params.insert(k.clone(), v.clone());
    }
    check_uses(wf, &params)?;
    Ok(params)
}

/// Checks every `uses:` step's `with` as this run renders it (the loader checked it with the
/// params' defaults): a bad `-p` value is refused before anything runs.
fn check_uses(wf: &Workflow, params: &BTreeMap<String, String>) -> Result<(), String> {
    let mut problems = Vec::new();
    for step in wf.steps.values() {
        let Action::Uses { kind, with } = &step.action else {
            continue;
        };
        let Some(k) = tuna_steps::find(kind) else {
            continue;
        };
        let rendered = crate::workflow::preview_with(with, &|p| params.get(p).cloned());
        for p in k.check_with(&rendered) {
            problems.push(format!("step `{}`: {}: {}", step.name, p.key(), p.message));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: with these params, step settings are invalid:\n  {}",
            wf.path.display(),
            problems.join("\n  ")
        ))
    }
}

/// Everything a job needs from its run.
pub struct JobContext<'a> {
    pub run_id: &'a str,
    pub scheduled_time: Option<&'a str>,
    pub params: &'a BTreeMap<String, String>,
    /// Where each finished upstream step's outputs are in this run.
    pub outputs_dir: &'a dyn Fn(&str) -> Option<PathBuf>,
    /// An upstream output `(step, output)` that the remote runner's own store holds.
    pub stored: &'a dyn Fn(&str, &str) -> Option<tuna_runners::KeptOutput>,
    /// The `tuna` executable (built-in kinds run through it).
    pub tuna_exe: &'a Path,
    /// The values of the secrets the step lists (read at launch, never stored).
    pub secrets: &'a BTreeMap<String, String>,
}

/// Builds the job for one attempt: stages inputs, renders the script (values shell-quoted) and
/// the env. The attempt folder is made here only when inputs are staged into it; otherwise the
/// runner's launch makes it, off the dispatcher's thread, when the step has a folder of its
/// own (see [`super::attempt_files`]; the run's shared folders are the dispatcher's to make).
/// `remote` is the attempt folder on the runner's machine when that is another one: inputs and
/// upstream outputs are then listed in `Job::stage` for the runner to carry there, and paths
/// in the script name that folder.
pub fn build_job(
    wf: &Workflow,
    step: &Step,
    ctx: &JobContext<'_>,
    attempt: u32,
    attempt_dir: &Path,
    resources: Resources,
    remote: Option<&str>,
) -> Result<Job, String> {
    let files = AttemptFiles::new(attempt_dir, remote.is_some() || has_own_folder(step));
    let work = files.work.clone();
    let stage = match remote {
        Some(_) => remote_stage(wf, step, ctx)?,
        None => {
            stage_local_inputs(wf, step, ctx, &work)?;
            Vec::new()
        }
    };
    let mut env = BTreeMap::new();
    let script = script(step, ctx, attempt_dir, remote, &mut env)?;
    for (k, t) in &step.env {
        env.insert(
            k.clone(),
            t.render(|r| resolve(ctx, remote, r), |s| s.to_string()),
        );
    }
    // Every param, for scripts that read values from the environment (the safe way in any
    // shell context); `-p` overrides included.
    for (k, v) in ctx.params {
        env.insert(param_env_name(k), v.clone());
    }
    for (name, value) in ctx.secrets {
        env.insert(name.clone(), value.clone());
    }
    tuna_env(wf, step, ctx, attempt, &files, &mut env);
    Ok(Job {
        secrets: ctx.secrets.keys().cloned().collect(),
        run_id: ctx.run_id.to_string(),
        step: step.name.clone(),
        attempt,
        script,
        env,
        attempt_dir: attempt_dir.to_path_buf(),
        timeout: step.timeout,
        wait_for_capacity: step.wait_for_capacity,
        resources,
        stage,
        outputs: step.outputs.clone(),
        workdir: (!files.own_folder).then_some(work),
    })
}

/// Links the step's inputs (and the relative paths its `with` names) into `work/`, for a job
/// on this machine.
fn stage_local_inputs(
    wf: &Workflow,
    step: &Step,
    ctx: &JobContext<'_>,
    work: &Path,
) -> Result<(), String> {
    let with_inputs: Vec<String> = with_paths(step, ctx.params)
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| Path::new(p).is_relative())
        .collect();
    for input in step.inputs.iter().chain(&with_inputs) {
        let rel = input.trim_end_matches('/');
        let (src, dst) = (wf.project_dir.join(rel), work.join(rel));
        if dst.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::os::unix::fs::symlink(&src, &dst)
            .map_err(|e| format!("staging input `{input}`: {e}"))?;
    }
    Ok(())
}

/// The value a `${{ }}` reference stands for in this job (paths on the runner's machine).
fn resolve(ctx: &JobContext<'_>, remote: Option<&str>, r: &Ref) -> String {
    match r {
        Ref::Param(p) => ctx.params.get(p).cloned().unwrap_or_default(),
        Ref::StepOutput { step, output } if remote.is_some() => format!(
            "{}/in/{step}/{}",
            remote.unwrap_or_default(),
            output.trim_end_matches('/')
        ),
        Ref::StepOutput { step, output } => (ctx.outputs_dir)(step)
            .map(|d| {
                d.join(output.trim_end_matches('/'))
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default(),
        Ref::RunId => ctx.run_id.to_string(),
        Ref::ScheduledTime => ctx.scheduled_time.unwrap_or_default().to_string(),
    }
}

/// The script the runner runs: the rendered `run:` (values shell-quoted), or for a built-in
/// kind `tuna exec-step`, told what to do by `env`.
fn script(
    step: &Step,
    ctx: &JobContext<'_>,
    attempt_dir: &Path,
    remote: Option<&str>,
    env: &mut BTreeMap<String, String>,
) -> Result<String, String> {
    match &step.action {
        Action::Run(t) => t
            .render_script(|r| resolve(ctx, remote, r))
            .map_err(|e| format!("step `{}`: {e}", step.name)),
        Action::Uses { kind, with } => {
            let rendered = crate::workflow::render_with(with, &mut |r| resolve(ctx, remote, r));
            env.insert("TUNA_STEP_KIND".into(), kind.clone());
            env.insert("TUNA_STEP_WITH".into(), rendered.to_string());
            let state = match remote {
                Some(dir) => format!("{dir}/../state"),
                None => attempt_dir
                    .parent()
                    .unwrap_or(attempt_dir)
                    .join("state")
                    .to_string_lossy()
                    .into_owned(),
            };
            if remote.is_none() {
                std::fs::create_dir_all(&state).map_err(|e| format!("{state}: {e}"))?;
            }
            env.insert("TUNA_STATE".into(), state);
            // `$TUNA_EXE`: this tuna here; on an ssh host, the runner's `tuna` setting.
            Ok("exec \"$TUNA_EXE\" exec-step".to_string())
        }
    }
}

/// The `TUNA_*` variables every step gets.
fn tuna_env(
    wf: &Workflow,
    step: &Step,
    ctx: &JobContext<'_>,
    attempt: u32,
    files: &AttemptFiles,
    env: &mut BTreeMap<String, String>,
) {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    env.insert("TUNA_RUN_ID".into(), ctx.run_id.to_string());
    env.insert("TUNA_STEP".into(), step.name.clone());
    env.insert("TUNA_ATTEMPT".into(), attempt.to_string());
    env.insert("TUNA_OUTPUTS".into(), path(&files.work));
    env.insert("TUNA_METRICS".into(), path(&files.metrics));
    // Read while the step runs (`tuna status`, the `tuna run` bars); only here, so a step on
    // another machine writes it there and shows no progress.
    env.insert("TUNA_PROGRESS".into(), path(&files.progress));
    env.insert("TUNA_PROJECT_DIR".into(), path(&wf.project_dir));
    env.insert("TUNA_EXE".into(), path(ctx.tuna_exe));
}

/// What a job on another machine needs carried there: its inputs into `work/`, and every
/// output of its upstream steps into `in/STEP/OUTPUT` (from the runner's own store when it
/// holds them).
fn remote_stage(wf: &Workflow, step: &Step, ctx: &JobContext<'_>) -> Result<Vec<Stage>, String> {
    let mut stage = Vec::new();
    let with_inputs: Vec<String> = with_paths(step, ctx.params)
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| Path::new(p).is_relative())
        .collect();
    for input in step.inputs.iter().chain(&with_inputs) {
        let rel = input.trim_end_matches('/');
        stage.push(Stage::local(
            wf.project_dir.join(rel),
            format!("work/{rel}"),
        ));
    }
    for need in &step.needs {
        let Some(up) = wf.steps.get(need) else {
            continue;
        };
        let dir = (ctx.outputs_dir)(need)
            .ok_or_else(|| format!("upstream step `{need}` has no outputs folder"))?;
        for out in &up.outputs {
            let rel = out.trim_end_matches('/');
            let mut item = Stage::local(dir.join(rel), format!("in/{need}/{rel}"));
            item.stored = (ctx.stored)(need, out);
            stage.push(item);
        }
    }
    Ok(stage)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::cache::key_inputs;

    fn defaults(wf: &crate::workflow::Workflow) -> BTreeMap<String, String> {
        wf.params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A param a script reads from `$TUNA_PARAM_<NAME>` enters its key like `${{ params.X }}`
    /// (a whole variable name only), and every param reaches the step's environment.
    #[test]
    fn params_named_through_the_environment_enter_the_key_and_the_env() {
        let dir = tempfile::tempdir().unwrap();
        let wf_text = "name: e\nparams:\n  base-model: m\n  lr: 1\n  lr_min: 0\nsteps:\n  a:\n    run: echo \"$TUNA_PARAM_BASE_MODEL\" \"${TUNA_PARAM_LR_MIN}\"\n";
        let dag = crate::dag::load_str(&dir.path().join("wf.yaml"), wf_text).unwrap();
        let wf = dag.workflow();
        let params = defaults(wf);
        let inputs = key_inputs(wf, &wf.steps["a"], &params, |_| None, "local").unwrap();
        let named: Vec<&str> = inputs.params.keys().map(String::as_str).collect();
        assert_eq!(named, ["base-model", "lr_min"]);
        let outputs_dir = |_: &str| None;
        let stored = |_: &str, _: &str| None;
        let ctx = super::JobContext {
            run_id: "r1",
            scheduled_time: None,
            params: &params,
            outputs_dir: &outputs_dir,
            stored: &stored,
            tuna_exe: std::path::Path::new("/bin/tuna"),
            secrets: &BTreeMap::new(),
        };
        let attempt = dir.path().join("attempt");
        let job = super::build_job(
            wf,
            &wf.steps["a"],
            &ctx,
            1,
            &attempt,
            Default::default(),
            None,
        )
        .unwrap();
        assert_eq!(job.env["TUNA_PARAM_BASE_MODEL"], "m");
        assert_eq!(job.env["TUNA_PARAM_LR"], "1");
        assert_eq!(job.env["TUNA_PARAM_LR_MIN"], "0");
    }
}

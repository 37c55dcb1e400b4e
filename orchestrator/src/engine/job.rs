//! Turning a step of a run into what a runner runs: its cache key inputs, its rendered script
//! and env, and its attempt folder with staged inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tuna_runners::{Job, Resources, Stage};

use crate::cache::{KEY_VERSION, KeyInputs, digest_path};
use crate::cas::Digest;
use crate::workflow::{Action, Ref, Step, Template, Workflow, param_env_name};

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

/// Every template of a step: the command (or `with` strings) and the env values.
fn templates(step: &Step) -> Vec<&Template> {
    let mut out: Vec<&Template> = step.env.values().collect();
    if let Action::Run(t) = &step.action {
        out.push(t);
    }
    out
}

/// Params named in `${{ params.X }}` anywhere in a `with:` value.
fn with_params(v: &serde_yaml::Value, out: &mut Vec<String>) {
    match v {
        serde_yaml::Value::String(s) => {
            // The loader already checked every template; one that fails to parse names nothing.
            if let Ok(t) = Template::parse(s) {
                out.extend(t.refs().filter_map(|r| match r {
                    Ref::Param(p) => Some(p.clone()),
                    _ => None,
                }));
            }
        }
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|i| with_params(i, out)),
        serde_yaml::Value::Mapping(m) => m.values().for_each(|i| with_params(i, out)),
        serde_yaml::Value::Tagged(t) => with_params(&t.value, out),
        _ => {}
    }
}

/// The files a `uses:` step's `with` names (the kind's path keys), with params filled in:
/// `(key, path)`, paths relative to the project unless absolute. Values that name an upstream
/// step's output are left out (the upstream's output digests already count).
pub(crate) fn with_paths(step: &Step, params: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let Action::Uses { kind, with } = &step.action else {
        return Vec::new();
    };
    let Some(k) = tuna_steps::find(kind) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in k.path_keys() {
        let Some(text) = with.get(*key).and_then(|v| v.as_str()) else {
            continue;
        };
        let Some(path) = crate::workflow::with_path(text, &|p| params.get(p).cloned()) else {
            continue;
        };
        out.push((key.to_string(), path.trim_end_matches('/').to_string()));
    }
    out
}

/// Whether `text` names the environment variable `var` (as a whole name: `$TUNA_PARAM_LR`,
/// `${TUNA_PARAM_LR}`, `os.environ["TUNA_PARAM_LR"]`, not `TUNA_PARAM_LR_MIN`).
fn names_env_var(text: &str, var: &str) -> bool {
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    text.match_indices(var).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| text.as_bytes()[j]);
        let after = text.as_bytes().get(i + var.len()).copied();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// Keys under which a key's `params` carry the run values a step references.
pub const RUN_ID: &str = "run.id";
pub const SCHEDULED_TIME: &str = "run.scheduled_time";

/// The inputs of a step's cache key. `upstream(step)` gives a finished upstream step's
/// outputs.
pub fn key_inputs<'a>(
    wf: &Workflow,
    step: &Step,
    params: &BTreeMap<String, String>,
    upstream: impl Fn(&str) -> Option<&'a BTreeMap<String, Digest>>,
    runner: &str,
) -> Result<KeyInputs, String> {
    let with_files = with_paths(step, params);
    let (kind, definition, mut names) = match &step.action {
        Action::Run(t) => ("run".to_string(), t.source.clone(), Vec::new()),
        Action::Uses { kind, with } => {
            let version = tuna_steps::find(kind).map_or(0, |k| k.version());
            let mut names = Vec::new();
            with_params(with, &mut names);
            let json = serde_json::to_string(with).map_err(|e| e.to_string())?;
            (format!("uses:{kind}@{version}"), json, names)
        }
    };
    for t in templates(step) {
        for r in t.refs() {
            match r {
                Ref::Param(p) => names.push(p.clone()),
                // A step that names its run's id or scheduled time depends on it: the value
                // enters the key like a param's (a time the step does not name never does).
                Ref::RunId => names.push(RUN_ID.to_string()),
                Ref::ScheduledTime => names.push(SCHEDULED_TIME.to_string()),
                Ref::StepOutput { .. } => {}
            }
        }
    }
    // A param the step's script or env names through its environment variable counts too.
    for t in templates(step) {
        for name in params.keys() {
            if names_env_var(&t.source, &param_env_name(name)) {
                names.push(name.clone());
            }
        }
    }
    let params = names
        .into_iter()
        .map(|n| {
            let v = params.get(&n).cloned().unwrap_or_default();
            (n, v)
        })
        .collect();
    let mut inputs = BTreeMap::new();
    for (key, rel) in with_files {
        // A path that exists here enters the key by content; an absolute one that does not
        // names a place on the runner's machine, and enters by its text (in `definition`).
        let path = wf.project_dir.join(&rel);
        if Path::new(&rel).is_absolute() && !path.exists() {
            continue;
        }
        let digest = digest_path(&path).map_err(|e| {
            format!(
                "`with.{key}` of step `{}` ({}): {e}",
                step.name,
                path.display()
            )
        })?;
        inputs.insert(format!("with.{key}={rel}"), digest);
    }
    for input in &step.inputs {
        let path = wf.project_dir.join(input.trim_end_matches('/'));
        let digest = digest_path(&path).map_err(|e| {
            format!(
                "input `{input}` of step `{}` ({}): {e}",
                step.name,
                path.display()
            )
        })?;
        inputs.insert(input.clone(), digest);
    }
    let mut up = BTreeMap::new();
    for need in &step.needs {
        let outs =
            upstream(need).ok_or_else(|| format!("upstream step `{need}` has not finished"))?;
        for (out, digest) in outs {
            up.insert(format!("{need}/{out}"), digest.to_string());
        }
    }
    Ok(KeyInputs {
        version: KEY_VERSION,
        kind,
        definition,
        params,
        env: step
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.source.clone()))
            .collect(),
        inputs,
        upstream: up,
        outputs: step.outputs.clone(),
        gate: step.gate.iter().map(|g| g.text.clone()).collect(),
        runner: runner.to_string(),
        secrets: step
            .secrets
            .iter()
            .filter_map(|name| {
                let source = match wf.secrets.get(name)? {
                    crate::workflow::SecretSource::Env(v) => format!("env:{v}"),
                    crate::workflow::SecretSource::File(f) => format!("file:{f}"),
                };
                Some((name.clone(), source))
            })
            .collect(),
    })
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

/// Builds the job for one attempt: makes the attempt folder, stages inputs, renders the
/// script (values shell-quoted) and the env. `remote` is the attempt folder on the runner's
/// machine when that is another one: inputs and upstream outputs are then listed in
/// `Job::stage` for the runner to carry there, and paths in the script name that folder.
pub fn build_job(
    wf: &Workflow,
    step: &Step,
    ctx: &JobContext<'_>,
    attempt: u32,
    attempt_dir: &Path,
    resources: Resources,
    remote: Option<&str>,
) -> Result<Job, String> {
    let work = attempt_dir.join("work");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let stage = match remote {
        Some(_) => remote_stage(wf, step, ctx)?,
        None => Vec::new(),
    };
    let with_inputs: Vec<String> = with_paths(step, ctx.params)
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| Path::new(p).is_relative())
        .collect();
    let local_inputs = step.inputs.iter().chain(&with_inputs);
    for input in local_inputs.filter(|_| remote.is_none()) {
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
    let resolve = |r: &Ref| -> String {
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
    };
    let mut env = BTreeMap::new();
    let script = match &step.action {
        Action::Run(t) => t
            .render_script(resolve)
            .map_err(|e| format!("step `{}`: {e}", step.name))?,
        Action::Uses { kind, with } => {
            // Built-in kinds run through `tuna exec-step` on the runner, told by env.
            let rendered = crate::workflow::render_with(with, &mut |r| resolve(r));
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
            "exec \"$TUNA_EXE\" exec-step".to_string()
        }
    };
    for (k, t) in &step.env {
        env.insert(k.clone(), t.render(resolve, |s| s.to_string()));
    }
    // Every param, for scripts that read values from the environment (the safe way in any
    // shell context); `-p` overrides included.
    for (k, v) in ctx.params {
        env.insert(param_env_name(k), v.clone());
    }
    for (name, value) in ctx.secrets {
        env.insert(name.clone(), value.clone());
    }
    env.insert("TUNA_RUN_ID".into(), ctx.run_id.to_string());
    env.insert("TUNA_STEP".into(), step.name.clone());
    env.insert("TUNA_ATTEMPT".into(), attempt.to_string());
    env.insert("TUNA_OUTPUTS".into(), work.to_string_lossy().into_owned());
    env.insert(
        "TUNA_METRICS".into(),
        attempt_dir
            .join("metrics.json")
            .to_string_lossy()
            .into_owned(),
    );
    env.insert(
        "TUNA_PROJECT_DIR".into(),
        wf.project_dir.to_string_lossy().into_owned(),
    );
    env.insert(
        "TUNA_EXE".into(),
        ctx.tuna_exe.to_string_lossy().into_owned(),
    );
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
    })
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

    use super::key_inputs;
    use crate::cas::Digest;

    const WF: &str = r#"
name: pinned
params:
  lr: 2e-4
  unused: x
steps:
  prep:
    run: echo prep > data.txt
    outputs: [data.txt]
  train:
    run: python train.py --lr ${{ params.lr }} --data ${{ steps.prep.outputs.data.txt }}
    inputs: [train.py]
    env: { HF_HUB_OFFLINE: "1" }
    outputs: [adapter/]
    gate: ["loss_last < loss_first"]
"#;

    fn defaults(wf: &crate::workflow::Workflow) -> BTreeMap<String, String> {
        wf.params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Pins what enters a cache key and how it is hashed: a change here invalidates every
    /// user's cache, so it must be deliberate (bump KEY_VERSION and accept the new snapshot).
    #[test]
    fn the_cache_key_contract() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.py"), "print('train')\n").unwrap();
        let dag = crate::dag::load_str(&dir.path().join("wf.yaml"), WF).unwrap();
        let wf = dag.workflow();
        let params = defaults(wf);
        let prep_out: BTreeMap<String, Digest> = [(
            "data.txt".to_string(),
            "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
                .parse()
                .unwrap(),
        )]
        .into();
        let inputs = key_inputs(
            wf,
            &wf.steps["train"],
            &params,
            |s| (s == "prep").then_some(&prep_out),
            "local",
        )
        .unwrap();
        insta::assert_json_snapshot!(inputs);
        insta::assert_snapshot!(inputs.key(), @"k1-8c3eff231bb395efec5ba4946e2422d9765471fc54007f38fd8ba22cede9873a");
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

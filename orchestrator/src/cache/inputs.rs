//! What enters a step's cache key: its definition (script or kind and `with:`), the params it
//! names (in templates, `with:` values or through `$TUNA_PARAM_<NAME>`), the digests of its
//! inputs and `with:` files, its upstream steps' outputs, env, outputs, gate, runner and the
//! sources of its secrets.

use std::collections::BTreeMap;
use std::path::Path;

use super::{KEY_VERSION, KeyInputs, digest_path};
use crate::cas::Digest;
use crate::workflow::{Action, Ref, Step, Template, Workflow, param_env_name};

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
pub fn with_paths(step: &Step, params: &BTreeMap<String, String>) -> Vec<(String, String)> {
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

    /// Pins what enters a cache key and how it is hashed: a change here invalidates every
    /// user's cache, so it must be deliberate (bump KEY_VERSION and accept the new snapshot).
    #[test]
    fn the_cache_key_contract() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.py"), "print('train')\n").unwrap();
        let dag = crate::dag::load_str(&dir.path().join("wf.yaml"), WF).unwrap();
        let wf = dag.workflow();
        let params: BTreeMap<String, String> = wf
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
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
}

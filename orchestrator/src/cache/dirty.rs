//! Why a step must run: the answer `tuna plan` prints for every miss.

use std::fmt;

use super::KeyInputs;

#[derive(Debug, Clone, PartialEq)]
pub enum DirtyReason {
    NeverRun,
    CacheDisabled,
    NoCacheFlag,
    /// A stored output of a matching key is gone from where it was kept: the local artifact
    /// store (`runner: None`) or a runner's store on its machine.
    OutputMissing {
        output: String,
        runner: Option<String>,
    },
    /// A stored output of a matching key is kept on a runner that did not answer, so it could
    /// not be checked.
    OutputUnreachable {
        output: String,
        runner: String,
        reason: String,
    },
    /// An upstream step runs in this run, so its outputs are not known yet.
    UpstreamRuns(String),
    KeyVersion,
    Kind {
        old: String,
        new: String,
    },
    Definition,
    Param {
        name: String,
        old: Option<String>,
        new: Option<String>,
    },
    Env(String),
    Input {
        path: String,
        change: Change,
    },
    Upstream {
        output: String,
        change: Change,
    },
    Outputs,
    Gate,
    Runner {
        old: String,
        new: String,
    },
    /// The key differs but none of the above explains it (should not happen).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Modified,
}

impl DirtyReason {
    /// Every difference between the last key's inputs and this one's.
    pub fn diff(old: &KeyInputs, new: &KeyInputs) -> Vec<DirtyReason> {
        let mut out = Vec::new();
        if old.version != new.version {
            out.push(DirtyReason::KeyVersion);
        }
        if old.kind != new.kind {
            out.push(DirtyReason::Kind {
                old: old.kind.clone(),
                new: new.kind.clone(),
            });
        }
        if old.definition != new.definition {
            out.push(DirtyReason::Definition);
        }
        for (name, change) in map_diff(&old.params, &new.params) {
            let _ = change;
            out.push(DirtyReason::Param {
                old: old.params.get(&name).cloned(),
                new: new.params.get(&name).cloned(),
                name,
            });
        }
        for (name, _) in map_diff(&old.env, &new.env) {
            out.push(DirtyReason::Env(name));
        }
        for (path, change) in map_diff(&old.inputs, &new.inputs) {
            out.push(DirtyReason::Input { path, change });
        }
        for (output, change) in map_diff(&old.upstream, &new.upstream) {
            out.push(DirtyReason::Upstream { output, change });
        }
        if old.outputs != new.outputs {
            out.push(DirtyReason::Outputs);
        }
        if old.gate != new.gate {
            out.push(DirtyReason::Gate);
        }
        if old.runner != new.runner {
            out.push(DirtyReason::Runner {
                old: old.runner.clone(),
                new: new.runner.clone(),
            });
        }
        if out.is_empty() {
            out.push(DirtyReason::Other);
        }
        out
    }
}

fn map_diff(
    old: &std::collections::BTreeMap<String, String>,
    new: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, Change)> {
    let mut out = Vec::new();
    for (k, v) in new {
        match old.get(k) {
            None => out.push((k.clone(), Change::Added)),
            Some(o) if o != v => out.push((k.clone(), Change::Modified)),
            Some(_) => {}
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.push((k.clone(), Change::Removed));
        }
    }
    out
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Modified => "changed",
        })
    }
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirtyReason::NeverRun => write!(f, "never run"),
            DirtyReason::CacheDisabled => write!(f, "cache: false"),
            DirtyReason::NoCacheFlag => write!(f, "--no-cache"),
            DirtyReason::OutputMissing {
                output,
                runner: None,
            } => write!(f, "output {output} missing from the local artifact store"),
            DirtyReason::OutputMissing {
                output,
                runner: Some(r),
            } => write!(f, "output {output} missing on runner {r}"),
            DirtyReason::OutputUnreachable {
                output,
                runner,
                reason,
            } => write!(
                f,
                "output {output} is kept on runner {runner}, which cannot be checked: {reason}"
            ),
            DirtyReason::UpstreamRuns(s) => write!(f, "upstream step `{s}` runs"),
            DirtyReason::KeyVersion => write!(f, "cache key version changed"),
            DirtyReason::Kind { old, new } => write!(f, "step kind changed: {old} → {new}"),
            DirtyReason::Definition => write!(f, "definition changed"),
            DirtyReason::Param { name, old, new } => write!(
                f,
                "param `{name}` changed: {} → {}",
                old.as_deref().unwrap_or("(unset)"),
                new.as_deref().unwrap_or("(unset)")
            ),
            DirtyReason::Env(name) => write!(f, "env `{name}` changed"),
            DirtyReason::Input { path, change } => write!(f, "input `{path}` {change}"),
            DirtyReason::Upstream { output, change } => {
                write!(f, "upstream output `{output}` {change}")
            }
            DirtyReason::Outputs => write!(f, "declared outputs changed"),
            DirtyReason::Gate => write!(f, "gate changed"),
            DirtyReason::Runner { old, new } => write!(f, "runner changed: {old} → {new}"),
            DirtyReason::Other => write!(f, "key changed"),
        }
    }
}

//! The JSON Schema (draft 2020-12) of the workflow file format, for `tuna schema` and editors.
//! Hand-written to match the loader; a test checks it names exactly the keys the loader accepts.

use serde_json::{Value, json};

const DURATION: &str = "^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$";
const SIZE: &str = "^[0-9]+(\\.[0-9]+)?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$";

fn strings_or_one(description: &str) -> Value {
    json!({
        "description": description,
        "oneOf": [
            { "type": "string" },
            { "type": "array", "items": { "type": "string" } }
        ]
    })
}

fn duration(description: &str) -> Value {
    json!({ "type": "string", "pattern": DURATION, "description": description })
}

fn retry() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Retries with exponential backoff.",
        "properties": {
            "attempts": { "type": "integer", "minimum": 1, "description": "Total tries (1 = no retry). Default 1." },
            "backoff": duration("Delay before the 2nd try; doubled for each later one. Default 0s."),
            "on": {
                "description": "What is retried. Default [failure].",
                "oneOf": [
                    { "$ref": "#/$defs/retryOn" },
                    { "type": "array", "items": { "$ref": "#/$defs/retryOn" } }
                ]
            }
        }
    })
}

fn env() -> Value {
    json!({
        "type": "object",
        "description": "Environment variables for the step's command (values may hold ${{ }} references).",
        "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "not": { "pattern": "^TUNA_" } },
        "additionalProperties": { "type": ["string", "number", "boolean", "null"] }
    })
}

fn step() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Exactly one of `run` and `uses`.",
        "oneOf": [ { "required": ["run"] }, { "required": ["uses"] } ],
        "properties": {
            "needs": strings_or_one("Steps this one waits for. `${{ steps.X.outputs.Y }}` also implies X."),
            "run": { "type": "string", "description": "A shell command (bash -euo pipefail -c), run in the step's work folder." },
            "uses": {
                "type": "string",
                "enum": tuna_steps::all().iter().map(|k| k.name()).collect::<Vec<_>>(),
                "description": "A built-in step kind (`tuna kinds`)."
            },
            "with": { "type": "object", "description": "Settings of the `uses` kind." },
            "inputs": strings_or_one("Files/folders (relative to the project folder) whose content enters the cache key."),
            "outputs": strings_or_one("Paths relative to the work folder ($TUNA_OUTPUTS) collected after the step; a trailing / marks a folder."),
            "env": { "$ref": "#/$defs/env" },
            "runs-on": { "$ref": "#/$defs/runsOn" },
            "retry": { "$ref": "#/$defs/retry" },
            "timeout": duration("Longest the step may run."),
            "cache": {
                "description": "Default true; false = always run.",
                "oneOf": [
                    { "type": "boolean" },
                    {
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "enabled": { "type": "boolean" },
                            "per-runner": { "type": "boolean", "description": "The runner's name (not just its class) enters the cache key." }
                        }
                    }
                ]
            },
            "gate": {
                "description": "Metric comparisons (`metric OP number|metric`, OP one of < <= > >= == !=); a failed gate fails the step.",
                "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ]
            },
            "wait_for_capacity": duration("How long the step may wait for a free matching runner slot."),
            "secrets": strings_or_one("Secrets (declared in the top-level `secrets:`) the step gets as environment variables of their names.")
        }
    })
}

fn schedule() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["cron"],
        "description": "When `tuna serve` starts runs of this workflow.",
        "properties": {
            "cron": { "type": "string", "description": "A standard 5-field crontab line (minute hour day-of-month month day-of-week; 0 and 7 = Sunday; the day fields are ORed when both are set) or @daily/@hourly/@weekly/@monthly/@yearly." },
            "timezone": { "type": "string", "default": "UTC", "description": "IANA time zone name." },
            "missed": { "enum": ["skip", "latest", "all"], "default": "latest", "description": "What to do with fire times missed while the daemon was down." },
            "concurrency": { "enum": ["forbid", "allow", "replace"], "default": "forbid", "description": "What a fire does while the previous run still goes." }
        }
    })
}

/// One `leaderboard:` entry (`$defs.leaderboardEntry`).
fn leaderboard_entry() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["step", "model", "metrics"],
        "description": "A step whose metrics are leaderboard rows for one model (one row per model, suite, metric and night).",
        "properties": {
            "step": { "type": "string", "description": "The step whose metrics are entries." },
            "model": { "type": "string", "description": "The model's name; may use `${{ params.NAME }}`." },
            "metrics": { "type": "array", "items": { "type": "string" }, "minItems": 1, "description": "Metric names (higher is better)." },
            "suite": { "type": "string", "description": "The evaluation suite (default: the workflow's name)." }
        }
    })
}

fn leaderboard() -> Value {
    json!({
        "description": "Which steps' metrics a run records on the leaderboard when it ends (`tuna run`, `tuna resume` and `tuna serve`): one entry, or a list with one entry per evaluated model (no two entries with the same step and model, nor the same metric of the same model and suite).",
        "oneOf": [
            { "$ref": "#/$defs/leaderboardEntry" },
            { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/leaderboardEntry" } }
        ]
    })
}

/// The schema as JSON.
pub fn json_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "tuna-workflow-v1",
        "title": "tuna workflow",
        "description": "A tuna workflow file: parameters, an optional schedule and budget, defaults, and steps joined by `needs`.",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "steps"],
        "properties": {
            "name": { "type": "string", "pattern": "^[a-z0-9-]+$", "maxLength": super::names::MAX_NAME_LEN, "description": "The workflow's name." },
            "description": { "type": "string" },
            "params": {
                "type": "object",
                "description": "Parameter defaults, overridden with `tuna run FILE -p NAME=VALUE`.",
                "propertyNames": { "pattern": "^[A-Za-z0-9_-]+$", "maxLength": super::names::MAX_NAME_LEN },
                "additionalProperties": { "type": ["string", "number", "boolean"] }
            },
            "schedule": schedule(),
            "leaderboard": leaderboard(),
            "tracking": {
                "type": "object",
                "additionalProperties": false,
                "description": "Export each run to an MLflow tracking server (MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME in the environment win; credentials only from the environment).",
                "properties": {
                    "mlflow": { "type": "string", "pattern": "^https?://[^/@]+", "description": "The tracking server's URI, without credentials." },
                    "experiment": { "type": "string", "minLength": 1, "maxLength": 500, "description": "The experiment's name (default: the workflow's name)." },
                    "max_artifact_size": { "type": "string", "description": "Outputs up to this size (e.g. `16MiB`, the default) are uploaded as artifacts; bigger ones are recorded as a tag with their digest and location." },
                    "register_as": { "type": "object", "additionalProperties": { "type": "string", "pattern": "^[A-Za-z0-9_.-][A-Za-z0-9_. -]{0,255}$" }, "description": "A `finetune` step's registered model name in MLflow's model registry, by step (default: WORKFLOW-STEP)." }
                }
            },
            "budget": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "max_gpu_hours": { "type": "number", "exclusiveMinimum": 0 },
                    "max_cost": { "type": "number", "exclusiveMinimum": 0, "description": "In the runners' price unit." }
                }
            },
            "secrets": {
                "type": "object",
                "description": "Where each secret's value is read when a run starts; values are never stored. A step gets the ones it lists in its own `secrets:`.",
                "propertyNames": { "pattern": "^[A-Z_][A-Z0-9_]*$" },
                "additionalProperties": { "$ref": "#/$defs/secretSource" }
            },
            "defaults": {
                "type": "object",
                "additionalProperties": false,
                "description": "Applied to every step that does not set its own (env: per variable).",
                "properties": {
                    "retry": { "$ref": "#/$defs/retry" },
                    "timeout": duration("Longest a step may run."),
                    "wait_for_capacity": duration("How long a step may wait for a free matching runner slot."),
                    "runs-on": { "$ref": "#/$defs/runsOn" },
                    "env": { "$ref": "#/$defs/env" }
                }
            },
            "steps": {
                "type": "object",
                "minProperties": 1,
                "description": "Steps by name, in file order.",
                "propertyNames": { "pattern": "^[A-Za-z0-9_-]+$", "maxLength": super::names::MAX_NAME_LEN },
                "additionalProperties": { "$ref": "#/$defs/step" }
            }
        },
        "$defs": {
            "retryOn": { "enum": ["failure", "capacity", "runner-lost"] },
            "retry": retry(),
            "env": env(),
            "step": step(),
            "leaderboardEntry": leaderboard_entry(),
            "secretSource": {
                "type": "object",
                "additionalProperties": false,
                "minProperties": 1,
                "maxProperties": 1,
                "properties": {
                    "env": { "type": "string", "description": "An environment variable of the tuna process that runs the workflow (under `tuna serve`, one that `--pass-env` names)." },
                    "file": { "type": "string", "description": "An absolute path (or ~/…) read when the run starts; not under `tuna serve`." }
                }
            },
            "selector": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "gpu": { "type": "string", "description": "GPU type, e.g. a100." },
                    "count": { "type": "integer", "minimum": 1, "description": "GPUs (default 1 when gpu is set)." },
                    "memory": { "type": "string", "pattern": SIZE, "description": "Minimum memory per GPU, e.g. 40GiB." }
                },
                "dependentRequired": { "count": ["gpu"], "memory": ["gpu"] }
            },
            "runsOnOne": { "oneOf": [ { "type": "string", "description": "A runner by name." }, { "$ref": "#/$defs/selector" } ] },
            "runsOn": {
                "description": "A runner name, a selector, or a list of either (tried in order).",
                "oneOf": [
                    { "$ref": "#/$defs/runsOnOne" },
                    { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/runsOnOne" } }
                ]
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::keys;
    use super::*;

    fn keys_of(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    }

    fn sorted(k: &[&str]) -> Vec<String> {
        let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn schema_names_exactly_the_keys_the_loader_accepts() {
        let s = json_schema();
        let d = &s["$defs"];
        assert_eq!(keys_of(&s), sorted(keys::TOP));
        assert_eq!(keys_of(&d["step"]), sorted(keys::STEP));
        assert_eq!(
            keys_of(&s["properties"]["defaults"]),
            sorted(keys::DEFAULTS)
        );
        assert_eq!(keys_of(&d["retry"]), sorted(keys::RETRY));
        assert_eq!(
            keys_of(&d["step"]["properties"]["cache"]["oneOf"][1]),
            sorted(keys::CACHE)
        );
        assert_eq!(
            keys_of(&s["properties"]["schedule"]),
            sorted(keys::SCHEDULE)
        );
        assert_eq!(keys_of(&s["properties"]["budget"]), sorted(keys::BUDGET));
        assert_eq!(
            keys_of(&s["properties"]["tracking"]),
            sorted(keys::TRACKING)
        );
        assert_eq!(keys_of(&d["leaderboardEntry"]), sorted(keys::LEADERBOARD));
        let lb = &s["properties"]["leaderboard"]["oneOf"];
        assert_eq!(lb[0]["$ref"], "#/$defs/leaderboardEntry", "one mapping");
        assert_eq!(
            lb[1]["items"]["$ref"], "#/$defs/leaderboardEntry",
            "or a list"
        );
        assert_eq!(lb[1]["minItems"], 1);
        assert_eq!(keys_of(&d["selector"]), sorted(keys::SELECTOR));
        assert_eq!(keys_of(&d["secretSource"]), sorted(keys::SECRET));
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    }
}

//! Readers for the small sections: `retry`, `cache`, `runs-on`, `schedule`, `budget`.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::cron::CronSpec;
use super::ctx::{Ctx, Fields};
use super::diag::Diag;
use super::keys;
use super::model::{
    Budget, CachePolicy, ConcurrencyPolicy, MissedPolicy, Retry, RetryOn, RunsOn, Schedule,
    Selector, Tracking,
};
use super::suggest::help_for;
use super::yaml::{Kind, Node};

pub(crate) fn retry(ctx: &mut Ctx, node: &Node) -> Option<Retry> {
    let f = ctx.map(node, "`retry`", Some(keys::RETRY))?;
    let mut r = Retry::default();
    let mut ok = true;
    if let Some(n) = f.get("attempts") {
        match ctx.count(n, "`retry.attempts`", 1) {
            Some(a) => r.attempts = a,
            None => ok = false,
        }
    }
    if let Some(n) = f.get("backoff") {
        match ctx.duration(n, "`retry.backoff`") {
            Some(d) => r.backoff = d,
            None => ok = false,
        }
    }
    if let Some(n) = f.get("on") {
        let options = [
            ("failure", RetryOn::Failure),
            ("capacity", RetryOn::Capacity),
            ("runner-lost", RetryOn::RunnerLost),
        ];
        let items = ctx.strings(n, "`retry.on`")?;
        let mut on = Vec::new();
        for (_, item) in items {
            match ctx.choice(item, "each entry of `retry.on`", &options) {
                Some(v) if !on.contains(&v) => on.push(v),
                Some(_) => {}
                None => ok = false,
            }
        }
        r.on = on;
    }
    ok.then_some(r)
}

pub(crate) fn cache(ctx: &mut Ctx, node: &Node) -> Option<CachePolicy> {
    if let Some(b) = node.as_scalar().and_then(|s| s.as_bool()) {
        return Some(CachePolicy {
            enabled: b,
            per_runner: false,
        });
    }
    if !matches!(node.kind, Kind::Map(_)) {
        ctx.wrong_type(node, "`cache`", "`true`, `false` or a mapping");
        return None;
    }
    let f = ctx.map(node, "`cache`", Some(keys::CACHE))?;
    let mut c = CachePolicy::default();
    if let Some(n) = f.get("enabled") {
        c.enabled = ctx.bool(n, "`cache.enabled`")?;
    }
    if let Some(n) = f.get("per-runner") {
        c.per_runner = ctx.bool(n, "`cache.per-runner`")?;
    }
    Some(c)
}

pub(crate) fn runs_on(ctx: &mut Ctx, node: &Node) -> Option<Vec<RunsOn>> {
    match &node.kind {
        Kind::Seq(items) if items.is_empty() => {
            let d = Diag::new("runs_on", "`runs-on` is an empty list")
                .label("no runner to choose from")
                .help("leave `runs-on` out to run anywhere");
            ctx.push(d, node.span);
            None
        }
        Kind::Seq(items) => {
            let all: Vec<Option<RunsOn>> =
                items.iter().map(|i| one_runs_on(ctx, i, true)).collect();
            all.into_iter().collect()
        }
        _ => one_runs_on(ctx, node, false).map(|r| vec![r]),
    }
}

fn one_runs_on(ctx: &mut Ctx, node: &Node, in_list: bool) -> Option<RunsOn> {
    match &node.kind {
        Kind::Map(_) => selector(ctx, node).map(RunsOn::Selector),
        Kind::Scalar(s) if !s.is_null() => Some(RunsOn::Runner(s.value.clone())),
        _ => {
            let what = if in_list {
                "each entry of `runs-on`"
            } else {
                "`runs-on`"
            };
            ctx.wrong_type(
                node,
                what,
                "a runner name or a selector like `{ gpu: a100 }`",
            );
            None
        }
    }
}

fn selector(ctx: &mut Ctx, node: &Node) -> Option<Selector> {
    let f = ctx.map(node, "a `runs-on` selector", Some(keys::SELECTOR))?;
    let gpu = match f.get("gpu") {
        Some(n) => Some(ctx.string(n, "`gpu`")?.to_ascii_lowercase()),
        None => None,
    };
    let count = match f.get("count") {
        Some(n) => Some(ctx.count(n, "`count`", 1)?),
        None => None,
    };
    let memory = match f.get("memory") {
        Some(n) => Some(ctx.size(n, "`memory`")?),
        None => None,
    };
    if gpu.is_none() {
        for key in ["count", "memory"] {
            if let Some(k) = f.key(key) {
                let d = Diag::new(
                    "runs_on",
                    format!("`{key}` describes GPUs, but this selector names no `gpu`"),
                )
                .label("needs `gpu`")
                .help("add the GPU type, e.g. `{ gpu: a100, count: 2 }`");
                ctx.push(d, k.span);
                return None;
            }
        }
    }
    let count = count.unwrap_or(if gpu.is_some() { 1 } else { 0 });
    Some(Selector { gpu, count, memory })
}

pub(crate) fn schedule(ctx: &mut Ctx, node: &Node) -> Option<Schedule> {
    let f = ctx.map(node, "`schedule`", Some(keys::SCHEDULE))?;
    let mut ok = true;
    let cron = match f.get("cron") {
        Some(n) => cron_line(ctx, n),
        None => {
            let d = Diag::new("missing_key", "`schedule` needs a `cron` line")
                .label("no `cron` here")
                .help("e.g. `cron: \"0 2 * * *\"` (every day at 02:00)");
            ctx.push(d, node.span);
            None
        }
    };
    let timezone = match f.get("timezone") {
        Some(n) => timezone(ctx, n),
        None => Some("UTC".to_string()),
    };
    let missed = match f.get("missed") {
        Some(n) => ctx.choice(
            n,
            "`schedule.missed`",
            &[
                ("skip", MissedPolicy::Skip),
                ("latest", MissedPolicy::Latest),
                ("all", MissedPolicy::All),
            ],
        ),
        None => Some(MissedPolicy::Latest),
    };
    let concurrency = match f.get("concurrency") {
        Some(n) => ctx.choice(
            n,
            "`schedule.concurrency`",
            &[
                ("forbid", ConcurrencyPolicy::Forbid),
                ("allow", ConcurrencyPolicy::Allow),
                ("replace", ConcurrencyPolicy::Replace),
            ],
        ),
        None => Some(ConcurrencyPolicy::Forbid),
    };
    ok &= timezone.is_some() && missed.is_some() && concurrency.is_some();
    let cron = cron?;
    ok.then(|| Schedule {
        cron,
        timezone: timezone.unwrap(),
        missed: missed.unwrap(),
        concurrency: concurrency.unwrap(),
    })
}

fn cron_line(ctx: &mut Ctx, node: &Node) -> Option<String> {
    let text = ctx.string(node, "`schedule.cron`")?;
    match CronSpec::parse(text) {
        Ok(_) => Some(text.to_string()),
        Err(e) => {
            let (start, _) = ctx.src.find_in(node.span, text);
            let found = ctx.src.text[start..].starts_with(text);
            let range = if found {
                (start + e.offset, e.len.max(1))
            } else {
                ctx.src.range(node.span)
            };
            let d = Diag::new("cron", format!("invalid cron line `{text}`: {}", e.message))
                .label("here")
                .help(e.help.unwrap_or_else(|| {
                    "fields: minute hour day-of-month month day-of-week".into()
                }));
            ctx.push_at(d, range);
            None
        }
    }
}

fn timezone(ctx: &mut Ctx, node: &Node) -> Option<String> {
    let name = ctx.string(node, "`schedule.timezone`")?;
    if chrono_tz::Tz::from_str(name).is_ok() {
        return Some(name.to_string());
    }
    let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
    let help = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
        .map(|t| format!("did you mean `{}`?", t.name()))
        .or_else(|| help_for(name, names))
        .unwrap_or_else(|| "use an IANA time zone name such as `UTC` or `Europe/Amsterdam`".into());
    let d = Diag::new("timezone", format!("unknown time zone `{name}`"))
        .label("not an IANA time zone")
        .help(help);
    ctx.push(d, node.span);
    None
}

pub(crate) fn budget(ctx: &mut Ctx, node: &Node) -> Option<Budget> {
    let f = ctx.map(node, "`budget`", Some(keys::BUDGET))?;
    let mut b = Budget::default();
    let mut ok = true;
    if let Some(n) = f.get("max_gpu_hours") {
        b.max_gpu_hours = ctx.positive(n, "`budget.max_gpu_hours`");
        ok &= b.max_gpu_hours.is_some();
    }
    if let Some(n) = f.get("max_cost") {
        b.max_cost = ctx.positive(n, "`budget.max_cost`");
        ok &= b.max_cost.is_some();
    }
    ok.then_some(b)
}

/// `tracking:`: `mlflow:` an `http(s)://` URI without credentials in it (those come from the
/// environment and never reach the store), `experiment:` a non-empty name,
/// `max_artifact_size:` a size, `register_as:` registered model names of `finetune` steps.
pub(crate) fn tracking(ctx: &mut Ctx, node: &Node, steps: &Fields) -> Option<Tracking> {
    let f = ctx.map(node, "`tracking`", Some(keys::TRACKING))?;
    let mut t = Tracking::default();
    let mut ok = true;
    if let Some(n) = f.get("mlflow") {
        let uri = ctx.string(n, "`tracking.mlflow`");
        ok &= uri.is_some();
        if let Some(uri) = uri {
            match tracking_uri_problem(uri) {
                None => t.mlflow = Some(uri.to_string()),
                Some((msg, help)) => {
                    let d = Diag::new("bad_tracking_uri", msg)
                        .label("this URI")
                        .help(help);
                    ctx.push(d, n.span);
                    ok = false;
                }
            }
        }
    }
    if let Some(n) = f.get("experiment") {
        match ctx.string(n, "`tracking.experiment`") {
            Some(e) if !e.trim().is_empty() && e.len() <= 500 => t.experiment = Some(e.to_string()),
            Some(_) => {
                let d = Diag::new(
                    "bad_experiment",
                    "`tracking.experiment` must be a non-empty name of at most 500 characters",
                )
                .label("this name");
                ctx.push(d, n.span);
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = f.get("max_artifact_size") {
        t.max_artifact_size = ctx.size(n, "`tracking.max_artifact_size`");
        ok &= t.max_artifact_size.is_some();
    }
    if let Some(n) = f.get("register_as") {
        match register_as(ctx, n, steps) {
            Some(r) => t.register_as = r,
            None => ok = false,
        }
    }
    ok.then_some(t)
}

/// `register_as:`: `STEP: NAME` for `finetune` steps of the workflow; a name is 1 to 256
/// letters, digits, `_ . -` and spaces (not first).
fn register_as(ctx: &mut Ctx, node: &Node, steps: &Fields) -> Option<BTreeMap<String, String>> {
    let f = ctx.map(node, "`tracking.register_as`", None)?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (step, key, value) in &f.entries {
        let uses = steps.get(step).and_then(|s| match &s.kind {
            Kind::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some("uses"))
                .and_then(|(_, v)| v.as_str()),
            _ => None,
        });
        let problem = match (steps.get(step), uses) {
            (None, _) => Some((
                "unknown_step",
                format!(
                    "`tracking.register_as` names `{step}`, which is not a step of this workflow"
                ),
            )),
            (Some(_), Some("finetune")) => None,
            (Some(_), _) => Some((
                "not_finetune",
                format!(
                    "`tracking.register_as` names `{step}`, which is not a `uses: finetune` step (only a finetune step's adapter is registered)"
                ),
            )),
        };
        if let Some((code, msg)) = problem {
            ctx.push(Diag::new(code, msg).label("this step"), key.span);
            ok = false;
            continue;
        }
        let Some(name) = ctx.string(value, "a registered model name") else {
            ok = false;
            continue;
        };
        let good = (1..=256).contains(&name.chars().count())
            && !name.starts_with(' ')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.- ".contains(c));
        if !good {
            let d = Diag::new(
                "bad_model_name",
                format!("registered model name `{name}` must be 1 to 256 letters, digits, `_`, `.`, `-` or spaces"),
            )
            .label("this name");
            ctx.push(d, value.span);
            ok = false;
            continue;
        }
        out.insert(step.to_string(), name.to_string());
    }
    ok.then_some(out)
}

/// Why `uri` is not a tracking server's address, with a hint; `None` when it is.
fn tracking_uri_problem(uri: &str) -> Option<(String, &'static str)> {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Some((
            format!("`tracking.mlflow` must be an http:// or https:// URI, found `{uri}`"),
            "e.g. `mlflow: http://127.0.0.1:5000`",
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Some((
            "`tracking.mlflow` must not hold credentials".to_string(),
            "set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD in the environment instead",
        ));
    }
    if authority.is_empty() {
        return Some((
            format!("`tracking.mlflow` has no host: `{uri}`"),
            "e.g. `mlflow: http://127.0.0.1:5000`",
        ));
    }
    None
}

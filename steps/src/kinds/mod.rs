//! The built-in step kinds, one module each, their registry, and running the one a step's
//! environment names.

pub(crate) mod finetune;
pub(crate) mod helm;
pub(crate) mod model_init;
pub(crate) mod model_server;
pub(crate) mod prepare;
pub(crate) mod serve;

use crate::context::StepContext;
use crate::error::StepError;
use crate::kind::StepKind;

static KINDS: &[&dyn StepKind] = &[
    &prepare::DataPrepare,
    &model_init::ModelInit,
    &finetune::Finetune,
    &serve::ModelServe,
    &helm::HelmEval,
];

/// Every built-in kind.
pub fn all() -> &'static [&'static dyn StepKind] {
    KINDS
}

/// The kind named `name`, if built in.
pub fn find(name: &str) -> Option<&'static dyn StepKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// Runs the kind named in the environment and writes its metrics: the body of
/// `tuna exec-step` and `tuna-ml exec-step`.
pub fn execute_from_env() -> Result<(), StepError> {
    let ctx = StepContext::from_env()?;
    let kind = find(&ctx.kind)
        .ok_or_else(|| StepError::Context(format!("unknown step kind `{}`", ctx.kind)))?;
    let problems = kind.check_with(&ctx.with);
    if let Some(p) = problems.first() {
        return Err(StepError::with(p.path.clone(), p.message.clone()));
    }
    let metrics = kind.execute(&ctx)?;
    ctx.write_metrics(&metrics)
}

//! Built-in step kinds from the command line: `tuna kinds` lists them, `tuna exec-step` runs
//! one inside a step (the command a `uses:` step's job runs), and `tuna serve-model` starts the
//! model server. Kinds and commands that need libtorch run in `tuna-ml` (built with the
//! `torch` feature of tuna-steps), which this program finds and hands over to.

use std::os::unix::process::CommandExt;
use std::process::Command;

use super::exit::{Fail, OK, RUN_FAILED};

/// `tuna kinds`.
pub fn list() -> Result<u8, Fail> {
    let ml = tuna_steps::tuna_ml().filter(|p| p.exists());
    for k in tuna_steps::all() {
        let note = match (k.needs_torch(), &ml) {
            (true, None) => "  [needs tuna-ml: not found]",
            _ => "",
        };
        println!("{:<14} {}{note}", k.name(), k.summary());
    }
    Ok(OK)
}

/// `tuna exec-step`: runs the built-in step described by the environment a runner set.
pub fn exec_step() -> Result<u8, Fail> {
    match tuna_steps::execute_from_env() {
        Ok(()) => Ok(OK),
        Err(tuna_steps::StepError::NeedsTorch(kind)) => {
            hand_over(&["exec-step".to_string()], &format!("step kind `{kind}`"))
        }
        Err(e) => Err(Fail {
            code: RUN_FAILED,
            message: format!("error: {e}"),
        }),
    }
}

/// `tuna serve-model FLAGS`: the model server lives in `tuna-ml`, which takes the same flags.
pub fn serve_model(args: &tuna_steps::settings::ServeModelArgs) -> Result<u8, Fail> {
    let mut all = vec!["serve-model".to_string()];
    all.extend(args.to_args());
    hand_over(&all, "the model server")
}

/// Replaces this process with `tuna-ml ARGS` (same pid: a runner watching it sees no change).
fn hand_over(args: &[String], what: &str) -> Result<u8, Fail> {
    let Some(ml) = tuna_steps::tuna_ml() else {
        return Err(Fail::env(format!(
            "error: {what} needs libtorch, which runs in the `tuna-ml` program; it is not beside \
             {} nor on PATH (build it: cargo build --release -p tuna-steps --features torch \
             --bins, or set TUNA_ML)",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "tuna".into())
        )));
    };
    let err = Command::new(&ml).args(args).exec();
    Err(Fail::env(format!(
        "error: starting {}: {err}",
        ml.display()
    )))
}

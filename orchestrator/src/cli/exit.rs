//! Exit codes, in one place. Documented in the README:
//! 0 success · 1 the run failed · 2 invalid input (workflow, params, usage) · 3 tuna could not
//! work (store, runners, I/O) · 130 the run was interrupted or cancelled.

pub const OK: u8 = 0;
pub const RUN_FAILED: u8 = 1;
pub const INVALID: u8 = 2;
pub const ENVIRONMENT: u8 = 3;
pub const INTERRUPTED: u8 = 130;

/// A command's failure: what to print and the exit code.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub message: String,
}

impl Fail {
    pub fn invalid(message: impl Into<String>) -> Fail {
        Fail {
            code: INVALID,
            message: message.into(),
        }
    }
    pub fn env(message: impl Into<String>) -> Fail {
        Fail {
            code: ENVIRONMENT,
            message: message.into(),
        }
    }
}

impl From<crate::engine::EngineError> for Fail {
    fn from(e: crate::engine::EngineError) -> Fail {
        if e.is_input() {
            Fail::invalid(format!("error: {e}"))
        } else {
            Fail::env(format!("error: {e}"))
        }
    }
}

impl From<crate::store::StoreError> for Fail {
    fn from(e: crate::store::StoreError) -> Fail {
        Fail::env(format!("error: {e}"))
    }
}

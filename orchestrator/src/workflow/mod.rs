//! Workflow files: loading YAML with spans, validating everything at once, and the validated
//! model the engine consumes.

mod model;
mod template;

pub use model::*;
pub use template::{Part, Ref, Template, shell_quote};

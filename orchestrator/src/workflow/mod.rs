//! Workflow files: loading YAML with spans, validating everything at once, and the validated
//! model the engine consumes.

mod cron;
mod ctx;
mod cycles;
mod diag;
mod gate;
mod interp;
mod keys;
mod leaderboard;
mod links;
mod load;
mod model;
pub mod names;
mod schema;
mod secrets;
mod sections;
mod shell_lex;
#[cfg(test)]
mod shell_tests;
mod snippet;
mod source;
mod step;
mod suggest;
mod template;
mod units;
mod with_value;
mod yaml;

pub use cron::{CronError, CronSet, CronSpec};
pub(crate) use cycles::find_cycles;
pub use diag::{Diag, LoadError, render_plain};
pub use load::{parse_file, parse_str};
pub use model::*;
pub use schema::json_schema;
pub(crate) use step::relative_path_escapes;
pub use template::{Part, Ref, Template, param_env_name};
pub use units::{parse_duration, parse_size};
pub use with_value::{preview_with, render_with, with_path};

//! Loading a workflow file into the sealed graph: `workflow::parse_*` validates the file (every
//! problem at once, with places), then `Workflow::seal` builds the [`Dag`].

use std::path::Path;

use super::graph::Dag;
use crate::workflow::{self, LoadError};

/// Reads, validates and seals the workflow file at `path`.
pub fn load_file(path: &Path) -> Result<Dag, LoadError> {
    workflow::parse_file(path)?.seal()
}

/// Validates and seals a workflow from `text`, as if read from `path` (made absolute; its
/// folder is the project folder).
pub fn load_str(path: &Path, text: &str) -> Result<Dag, LoadError> {
    workflow::parse_str(path, text)?.seal()
}

//! The sealed workflow graph: a [`Dag`] exists only for a workflow whose `needs` all name steps
//! and hold no cycle, so the engine never re-checks; loading a file gives one. Rendering for `tuna graph` lives here too.

mod graph;
mod layering;
mod load;
mod render;

pub use graph::Dag;
pub use layering::{depths, depths_by_name};
pub use load::{load_file, load_str};
pub use render::GraphFormat;

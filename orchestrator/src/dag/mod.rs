//! The sealed workflow graph: a [`Dag`] exists only for a workflow whose `needs` all name steps
//! and hold no cycle, so the engine never re-checks. Rendering for `tuna graph` lives here too.

mod cycles;
mod graph;
mod render;

pub(crate) use cycles::find_cycles;
pub use graph::Dag;
pub use render::GraphFormat;

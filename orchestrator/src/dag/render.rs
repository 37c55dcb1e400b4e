//! `tuna graph`: the DAG as text (layers with their needs), Graphviz dot, or Mermaid.

use std::fmt::Write;

use super::graph::Dag;

/// An output format for [`Dag::render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphFormat {
    /// Steps grouped by layer, each with what it needs.
    #[default]
    Ascii,
    /// Graphviz `digraph`.
    Dot,
    /// A Mermaid `flowchart`.
    Mermaid,
}

impl std::str::FromStr for GraphFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ascii" => Ok(GraphFormat::Ascii),
            "dot" => Ok(GraphFormat::Dot),
            "mermaid" => Ok(GraphFormat::Mermaid),
            _ => Err(format!(
                "unknown graph format `{s}`; use ascii, dot or mermaid"
            )),
        }
    }
}

impl Dag {
    /// The graph as text in `format`; steps appear in a deterministic order.
    pub fn render(&self, format: GraphFormat) -> String {
        match format {
            GraphFormat::Ascii => self.ascii(),
            GraphFormat::Dot => self.dot(),
            GraphFormat::Mermaid => self.mermaid(),
        }
    }

    fn ascii(&self) -> String {
        let w = self.workflow();
        let layers = self.layers();
        let mut out = String::new();
        let steps = if self.len() == 1 { "step" } else { "steps" };
        let _ = writeln!(
            out,
            "{} ({} {steps}, {} layers)",
            w.name,
            self.len(),
            layers.len()
        );
        for (k, layer) in layers.iter().enumerate() {
            let _ = writeln!(out, "\nlayer {k}");
            let width = layer.iter().map(|s| s.chars().count()).max().unwrap_or(0);
            for step in layer {
                let needs = self.needs(step);
                if needs.is_empty() {
                    let _ = writeln!(out, "  {step}");
                } else {
                    let _ = writeln!(out, "  {step:width$}  ← {}", needs.join(", "));
                }
            }
        }
        out
    }

    fn dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = format!(
            "digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n",
            q(&self.workflow().name)
        );
        for step in self.topo_order() {
            let _ = writeln!(out, "  {};", q(step));
        }
        for step in self.topo_order() {
            for need in self.needs(step) {
                let _ = writeln!(out, "  {} -> {};", q(need), q(step));
            }
        }
        out.push_str("}\n");
        out
    }

    fn mermaid(&self) -> String {
        let w = self.workflow();
        let id = |name: &str| format!("s{}", w.steps.get_index_of(name).unwrap_or(0));
        let mut out = String::from("flowchart LR\n");
        for step in self.topo_order() {
            let _ = writeln!(out, "  {}[\"{}\"]", id(step), step);
        }
        for step in self.topo_order() {
            for need in self.needs(step) {
                let _ = writeln!(out, "  {} --> {}", id(need), id(step));
            }
        }
        out
    }
}

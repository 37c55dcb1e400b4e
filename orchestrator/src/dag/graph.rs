//! [`Dag`]: a validated workflow with its graph. Built only by [`Workflow::seal`] (which the
//! loader calls), so holding one means every `needs` names a step and there is no cycle.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::workflow::{Diag, LoadError, Workflow, find_cycles};

/// The sealed graph of a workflow. Node `i` is the `i`-th step in file order; an edge goes from
/// a step to each step that needs it.
#[derive(Debug, Clone)]
pub struct Dag {
    workflow: Workflow,
    graph: DiGraph<(), (), u32>,
    order: Vec<String>,
    /// Position of each step (by file index) in `order`.
    rank: Vec<usize>,
}

impl Workflow {
    /// Checks the graph (every `needs` names another step, no cycle) and seals it. The loader
    /// reports these problems with places in the file; this is the check for workflows built in
    /// code.
    pub fn seal(self) -> Result<Dag, LoadError> {
        let mut needs: Vec<Vec<usize>> = Vec::with_capacity(self.steps.len());
        let mut diags = Vec::new();
        for step in self.steps.values() {
            let mut ns = Vec::with_capacity(step.needs.len());
            for need in &step.needs {
                match self.steps.get_index_of(need) {
                    Some(j) => ns.push(j),
                    None => diags.push(
                        Diag::new(
                            "unknown_need",
                            format!("step `{}` needs `{need}`, which is not a step", step.name),
                        )
                        .label("no such step"),
                    ),
                }
            }
            needs.push(ns);
        }
        for cycle in find_cycles(&needs) {
            let mut path: Vec<&str> = cycle.iter().map(|&i| self.steps[i].name.as_str()).collect();
            path.push(path[0]);
            diags.push(Diag::new(
                "cycle",
                format!(
                    "steps depend on each other in a cycle: {}",
                    path.join(" → ")
                ),
            ));
        }
        if self.steps.is_empty() {
            diags.push(Diag::new("no_steps", "the workflow has no steps"));
        }
        if !diags.is_empty() {
            return Err(LoadError::new(&self.path, "", diags));
        }
        Ok(Dag::build(self, &needs))
    }
}

impl Dag {
    fn build(workflow: Workflow, needs: &[Vec<usize>]) -> Dag {
        let n = needs.len();
        let mut graph = DiGraph::with_capacity(n, needs.iter().map(Vec::len).sum());
        for _ in 0..n {
            graph.add_node(());
        }
        for (i, ns) in needs.iter().enumerate() {
            for &j in ns {
                graph.update_edge(NodeIndex::new(j), NodeIndex::new(i), ());
            }
        }
        // Kahn's algorithm; among ready steps the earliest in the file goes first.
        let mut waiting: Vec<usize> = (0..n)
            .map(|i| {
                graph
                    .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
                    .count()
            })
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> =
            (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
        let mut order = Vec::with_capacity(n);
        let mut rank = vec![0; n];
        while let Some(Reverse(i)) = ready.pop() {
            rank[i] = order.len();
            order.push(workflow.steps[i].name.clone());
            for d in graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing) {
                waiting[d.index()] -= 1;
                if waiting[d.index()] == 0 {
                    ready.push(Reverse(d.index()));
                }
            }
        }
        debug_assert_eq!(order.len(), n, "sealed graphs have no cycle");
        Dag {
            workflow,
            graph,
            order,
            rank,
        }
    }

    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    pub fn into_workflow(self) -> Workflow {
        self.workflow
    }

    /// Every step, each after all it needs; ties go to the earlier step in the file.
    pub fn topo_order(&self) -> &[String] {
        &self.order
    }

    /// The steps `step` needs (explicit and implied by references); empty for an unknown step.
    pub fn needs(&self, step: &str) -> &[String] {
        self.workflow
            .steps
            .get(step)
            .map_or(&[], |s| s.needs.as_slice())
    }

    /// The steps that directly need `step`, in file order.
    pub fn dependents(&self, step: &str) -> Vec<&str> {
        let Some(i) = self.workflow.steps.get_index_of(step) else {
            return Vec::new();
        };
        let mut out: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(i), Direction::Outgoing)
            .map(|n| n.index())
            .collect();
        out.sort_unstable();
        out.into_iter().map(|j| self.name(j)).collect()
    }

    /// Every step that depends on `step`, directly or not (not `step` itself), in topological
    /// order.
    pub fn downstream_closure(&self, step: &str) -> Vec<&str> {
        let Some(i) = self.workflow.steps.get_index_of(step) else {
            return Vec::new();
        };
        let mut seen = vec![false; self.len()];
        let mut stack = vec![i];
        let mut found = Vec::new();
        while let Some(k) = stack.pop() {
            for n in self
                .graph
                .neighbors_directed(NodeIndex::new(k), Direction::Outgoing)
            {
                if !seen[n.index()] {
                    seen[n.index()] = true;
                    found.push(n.index());
                    stack.push(n.index());
                }
            }
        }
        found.sort_unstable_by_key(|&j| self.rank[j]);
        found.into_iter().map(|j| self.name(j)).collect()
    }

    /// The steps grouped by depth: layer 0 needs nothing, layer k needs something in layer k-1.
    /// Within a layer, file order.
    pub fn layers(&self) -> Vec<Vec<&str>> {
        let needs: Vec<Vec<usize>> = self
            .workflow
            .steps
            .values()
            .map(|s| s.needs.iter().map(|n| self.index(n)).collect())
            .collect();
        let depth = super::layering::depths(&needs);
        let mut layers: Vec<Vec<&str>> = vec![Vec::new(); depth.iter().max().map_or(0, |d| d + 1)];
        for (i, d) in depth.into_iter().enumerate() {
            layers[d].push(self.name(i));
        }
        layers
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.workflow.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workflow.steps.is_empty()
    }

    fn name(&self, i: usize) -> &str {
        &self.workflow.steps[i].name
    }

    fn index(&self, name: &str) -> usize {
        self.workflow.steps.get_index_of(name).unwrap_or(0)
    }
}

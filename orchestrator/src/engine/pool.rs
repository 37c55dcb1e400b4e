//! Placement: which runner (and which of its GPUs) a step gets, counting free slots.
//!
//! A runner has CPU slots (every step takes one) and GPU slots (a step asking for GPUs takes
//! whole ones of the requested type). `runs-on` alternatives are tried in order.

use std::sync::Arc;

use tuna_runners::{Gpu, Runner};

use crate::workflow::{RunsOn, Selector};

/// A runner in the pool: its name, its slots and GPUs, and what is taken of them.
pub struct PoolRunner {
    pub name: String,
    /// `local`, `ssh`, … (enters the cache key).
    pub class: String,
    pub runner: Arc<dyn Runner>,
    pub slots: u32,
    pub used: u32,
    pub gpus: Vec<PoolGpu>,
    /// What an hour of one GPU (or of the runner, without GPUs) costs.
    pub price_per_hour: f64,
}

impl PoolRunner {
    /// A runner with `slots` CPU slots, no GPUs and no price; `class` is its type (`local`,
    /// `ssh`, …), which enters the cache key.
    pub fn new(name: &str, class: &str, runner: Arc<dyn Runner>, slots: u32) -> PoolRunner {
        PoolRunner {
            name: name.to_string(),
            class: class.to_string(),
            runner,
            slots,
            used: 0,
            gpus: Vec::new(),
            price_per_hour: 0.0,
        }
    }
}

/// One GPU of a runner in the pool.
pub struct PoolGpu {
    pub kind: String,
    pub index: u32,
    pub memory: Option<u64>,
    pub busy: bool,
}

/// What a placed step holds until it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub runner: usize,
    pub gpus: Vec<Gpu>,
}

pub enum Placement {
    Placed(Assignment),
    /// Some runner could take it, none can now.
    Wait(String),
    /// No runner can ever take it.
    Never(String),
}

#[derive(Default)]
pub struct Pool {
    pub runners: Vec<PoolRunner>,
}

impl Pool {
    pub fn runner(&self, i: usize) -> &PoolRunner {
        &self.runners[i]
    }

    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.runners.iter().position(|r| r.name == name)
    }

    /// The runner identity that enters a step's cache key: the class of the runner it would
    /// run on (`local`, `ssh`, …), or that runner's name with `cache.per-runner`.
    pub fn cache_identity(&self, runs_on: &[RunsOn], per_runner: bool) -> String {
        let idx = match self.place_inner(runs_on, true) {
            Placement::Placed(a) => a.runner,
            _ => 0,
        };
        match self.runners.get(idx) {
            Some(r) if per_runner => r.name.clone(),
            Some(r) => r.class.clone(),
            None => "local".to_string(),
        }
    }

    /// Whether any alternative of `runs_on` could ever be placed; the message says why not.
    pub fn feasible(&self, runs_on: &[RunsOn]) -> Result<(), String> {
        match self.place_inner(runs_on, true) {
            Placement::Never(why) => Err(why),
            _ => Ok(()),
        }
    }

    /// The runners a step with `runs_on` may run on: each one named, each one with the GPUs a
    /// selector asks for, and where a selector asks for none, the one placement picks first.
    pub fn candidates(&self, runs_on: &[RunsOn]) -> Vec<usize> {
        let mut found = Vec::new();
        for alt in runs_on {
            match alt {
                RunsOn::Runner(name) => found.extend(self.by_name(name)),
                RunsOn::Selector(sel) if sel.gpu.is_some() => {
                    for (i, r) in self.runners.iter().enumerate() {
                        let have = r.gpus.iter().filter(|g| sel.gpu.as_ref() == Some(&g.kind));
                        if have.count() >= sel.count.max(1) as usize {
                            found.push(i);
                        }
                    }
                }
                RunsOn::Selector(_) => {
                    if let Placement::Placed(a) = self.place_inner(std::slice::from_ref(alt), true)
                    {
                        found.push(a.runner);
                    }
                }
            }
        }
        if runs_on.is_empty()
            && let Placement::Placed(a) = self.place_inner(runs_on, true)
        {
            found.push(a.runner);
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Places a step now if it can; takes its slot and GPUs.
    pub fn try_place(&mut self, runs_on: &[RunsOn]) -> Placement {
        let p = self.place_inner(runs_on, false);
        if let Placement::Placed(a) = &p {
            let r = &mut self.runners[a.runner];
            r.used += 1;
            for g in &a.gpus {
                if let Some(pg) = r.gpus.iter_mut().find(|pg| pg.index == g.index) {
                    pg.busy = true;
                }
            }
        }
        p
    }

    /// Gives back what a placement took.
    pub fn release(&mut self, a: &Assignment) {
        let r = &mut self.runners[a.runner];
        r.used = r.used.saturating_sub(1);
        for g in &a.gpus {
            if let Some(pg) = r.gpus.iter_mut().find(|pg| pg.index == g.index) {
                pg.busy = false;
            }
        }
    }

    /// Marks an adopted step's placement as taken (after a restart).
    pub fn take(&mut self, a: &Assignment) {
        let r = &mut self.runners[a.runner];
        r.used += 1;
        for g in &a.gpus {
            if let Some(pg) = r.gpus.iter_mut().find(|pg| pg.index == g.index) {
                pg.busy = true;
            }
        }
    }

    fn place_inner(&self, runs_on: &[RunsOn], ignore_busy: bool) -> Placement {
        let any = [RunsOn::Selector(Selector::default())];
        let alternatives = if runs_on.is_empty() {
            &any[..]
        } else {
            runs_on
        };
        let mut waits = Vec::new();
        for alt in alternatives {
            let candidates: Vec<usize> = match alt {
                RunsOn::Runner(name) => self.by_name(name).into_iter().collect(),
                RunsOn::Selector(_) => (0..self.runners.len()).collect(),
            };
            let sel = match alt {
                RunsOn::Runner(_) => Selector::default(),
                RunsOn::Selector(s) => s.clone(),
            };
            for i in candidates {
                let r = &self.runners[i];
                let matching: Vec<&PoolGpu> = r
                    .gpus
                    .iter()
                    .filter(|g| sel.gpu.as_deref().is_none_or(|k| g.kind == k))
                    .filter(|g| {
                        sel.memory
                            .is_none_or(|m| g.memory.is_some_and(|have| have >= m))
                    })
                    .collect();
                let want = if sel.gpu.is_some() {
                    sel.count.max(1) as usize
                } else {
                    0
                };
                if matching.len() < want {
                    continue;
                }
                if ignore_busy {
                    return Placement::Placed(Assignment {
                        runner: i,
                        gpus: vec![],
                    });
                }
                if r.runner.is_down() {
                    waits.push(format!("runner `{}` is down", r.name));
                    continue;
                }
                let free: Vec<&&PoolGpu> = matching.iter().filter(|g| !g.busy).collect();
                if r.used < r.slots && free.len() >= want {
                    let gpus = free
                        .iter()
                        .take(want)
                        .map(|g| Gpu {
                            kind: g.kind.clone(),
                            index: g.index,
                        })
                        .collect();
                    return Placement::Placed(Assignment { runner: i, gpus });
                }
                waits.push(format!("runner `{}` is busy", r.name));
            }
        }
        if waits.is_empty() {
            Placement::Never(format!(
                "no runner matches runs-on {}; runners: {}",
                describe(alternatives),
                self.describe_inventory()
            ))
        } else {
            Placement::Wait(format!(
                "waiting for a free slot matching {} ({})",
                describe(alternatives),
                waits.join(", ")
            ))
        }
    }

    fn describe_inventory(&self) -> String {
        self.runners
            .iter()
            .map(|r| {
                if r.gpus.is_empty() {
                    format!("{} (no GPUs)", r.name)
                } else {
                    let mut kinds: Vec<String> = r.gpus.iter().map(|g| g.kind.clone()).collect();
                    kinds.dedup();
                    format!("{} ({} × {})", r.name, r.gpus.len(), kinds.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn describe(alts: &[RunsOn]) -> String {
    alts.iter()
        .map(|a| match a {
            RunsOn::Runner(n) => format!("`{n}`"),
            RunsOn::Selector(s) => match &s.gpu {
                Some(k) => format!(
                    "{{ gpu: {k}, count: {}{} }}",
                    s.count.max(1),
                    s.memory
                        .map(|m| format!(", memory: {} GiB", m >> 30))
                        .unwrap_or_default()
                ),
                None => "any runner".to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

//! The walk over a run's DAG, apart from processes and records: by topological index, which
//! steps are worth a look (every upstream step final: the frontier), and for one of them
//! whether it is ready, must be skipped (an upstream step did not pass) or still waits. The
//! dispatcher holds one and tells it what happened; the unit tests below drive it with
//! statuses alone.

use std::collections::BTreeSet;

use crate::dag::Dag;
use crate::store::StepStatus;

/// What to do with a step on the frontier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not pending any more (started, cached, final): it leaves the frontier.
    Gone,
    /// Upstream step (by index) failed, timed out or was skipped: skip this one.
    Skip(usize),
    /// Some upstream step has not passed yet.
    Wait,
    /// Every upstream step passed (or was cached).
    Ready,
}

/// Two ascending iterators of distinct steps, merged in ascending order.
struct Merged<A: Iterator<Item = usize>, B: Iterator<Item = usize>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = usize>, B: Iterator<Item = usize>> Iterator for Merged<A, B> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y < x => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

#[derive(Debug)]
pub struct Walk {
    needs: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    /// Per step, how many of its upstream steps are not final yet (a fan-in of thousands is
    /// not rescanned each time one of them ends).
    unfinished: Vec<usize>,
    /// The steps seen final (each counted down from its dependents once).
    ended: Vec<bool>,
    frontier: BTreeSet<usize>,
    /// Steps on the frontier found ready and not in the cache, that wait for a free slot
    /// only: not worth a look while every slot is taken.
    parked: BTreeSet<usize>,
    /// The frontier less the parked steps: what a turn looks at while every slot is taken
    /// (a fan-out parks thousands).
    open: BTreeSet<usize>,
}

impl Walk {
    /// The walk of `dag`'s steps in topological order, `status(i)` the status of the `i`-th.
    pub fn new(dag: &Dag, status: impl Fn(usize) -> StepStatus) -> Walk {
        let order = dag.topo_order();
        let index: std::collections::HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let needs = order
            .iter()
            .map(|n| dag.needs(n).iter().map(|u| index[u.as_str()]).collect())
            .collect();
        Walk::from_needs(needs, status)
    }

    /// The walk of a graph where `needs[i]` lists the (earlier) steps step `i` needs.
    pub fn from_needs(needs: Vec<Vec<usize>>, status: impl Fn(usize) -> StepStatus) -> Walk {
        let mut dependents = vec![Vec::new(); needs.len()];
        for (i, ns) in needs.iter().enumerate() {
            for &u in ns {
                dependents[u].push(i);
            }
        }
        let ended: Vec<bool> = (0..needs.len()).map(|i| status(i).is_final()).collect();
        let unfinished = needs
            .iter()
            .map(|ns| ns.iter().filter(|&&u| !ended[u]).count())
            .collect();
        let mut walk = Walk {
            needs,
            dependents,
            unfinished,
            ended,
            frontier: BTreeSet::new(),
            parked: BTreeSet::new(),
            open: BTreeSet::new(),
        };
        walk.frontier = (0..walk.needs.len())
            .filter(|&i| walk.may_start(i, &status))
            .collect();
        walk.open = walk.frontier.clone();
        walk
    }

    /// The steps worth a look now, in topological order. Every Pending or Waiting step whose
    /// upstream steps are final is on it, so every Waiting step is.
    #[cfg(test)]
    pub fn frontier(&self) -> Vec<usize> {
        self.frontier.iter().copied().collect()
    }

    /// What to do with step `i`.
    pub fn verdict(&self, i: usize, status: impl Fn(usize) -> StepStatus) -> Verdict {
        if !matches!(status(i), StepStatus::Pending | StepStatus::Waiting) {
            return Verdict::Gone;
        }
        let needs = &self.needs[i];
        // A step cancelled on its own (its runner stopped it, not a cancel of the run, which
        // schedules nothing more) did not pass either: what needs it is skipped, not left
        // waiting for ever; a resume sets both back to Pending.
        if let Some(&bad) = needs.iter().find(|&&u| {
            matches!(
                status(u),
                StepStatus::Failed
                    | StepStatus::TimedOut
                    | StepStatus::Skipped
                    | StepStatus::Cancelled
            )
        }) {
            return Verdict::Skip(bad);
        }
        if needs.iter().all(|&u| status(u).is_done()) {
            Verdict::Ready
        } else {
            Verdict::Wait
        }
    }

    /// The frontier less the parked steps, with the first `parked` of those (one per free
    /// slot), in topological order. A turn with one free slot in a fan-out of thousands looks
    /// at one parked step, not at each of them.
    pub fn to_look_at(&self, parked: usize) -> impl Iterator<Item = usize> + '_ {
        Merged {
            a: self.open.iter().copied().peekable(),
            b: self.parked.iter().copied().take(parked).peekable(),
        }
    }

    /// Step `i`, on the frontier, is ready and waits for a slot only (see [`Walk::to_look_at`]).
    pub fn park(&mut self, i: usize) {
        if self.frontier.contains(&i) {
            self.parked.insert(i);
            self.open.remove(&i);
        }
    }

    /// The parked steps, in topological order.
    pub fn parked(&self) -> impl Iterator<Item = usize> + '_ {
        self.parked.iter().copied()
    }

    /// Whether step `i` waits for a slot only.
    pub fn is_parked(&self, i: usize) -> bool {
        self.parked.contains(&i)
    }

    /// Step `i` left the frontier (it started, was cached, skipped or failed).
    pub fn leave(&mut self, i: usize) {
        self.frontier.remove(&i);
        self.parked.remove(&i);
        self.open.remove(&i);
    }

    /// Step `i` comes back to the frontier (it will be retried).
    pub fn revisit(&mut self, i: usize) {
        self.frontier.insert(i);
        self.parked.remove(&i);
        self.open.insert(i);
    }

    /// Step `i` became final: each step after it whose upstream steps are now all final
    /// joins the frontier.
    pub fn finished(&mut self, i: usize, status: impl Fn(usize) -> StepStatus) {
        if std::mem::replace(&mut self.ended[i], true) {
            return;
        }
        for k in 0..self.dependents[i].len() {
            let d = self.dependents[i][k];
            self.unfinished[d] -= 1;
            if self.may_start(d, &status) {
                self.frontier.insert(d);
                self.open.insert(d);
            }
        }
    }

    /// Pending or waiting, with every upstream step final.
    fn may_start(&self, i: usize, status: &impl Fn(usize) -> StepStatus) -> bool {
        self.unfinished[i] == 0 && matches!(status(i), StepStatus::Pending | StepStatus::Waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepStatus::*;

    /// 0 → 1 → 3, 0 → 2 → 3, 4 alone.
    fn diamond() -> Vec<Vec<usize>> {
        vec![vec![], vec![0], vec![0], vec![1, 2], vec![]]
    }

    #[test]
    fn the_frontier_grows_as_upstream_steps_finish() {
        let mut st = [Pending; 5];
        let mut w = Walk::from_needs(diamond(), |i| st[i]);
        assert_eq!(w.frontier(), [0, 4]);
        assert_eq!(w.verdict(0, |i| st[i]), Verdict::Ready);
        st[0] = Running;
        w.leave(0);
        assert_eq!(w.verdict(0, |i| st[i]), Verdict::Gone);
        st[0] = Passed;
        w.finished(0, |i| st[i]);
        assert_eq!(w.frontier(), [1, 2, 4]);
        st[1] = Cached;
        w.leave(1);
        w.finished(1, |i| st[i]);
        // 3 still waits for 2.
        assert_eq!(w.frontier(), [2, 4]);
        st[2] = Passed;
        w.leave(2);
        w.finished(2, |i| st[i]);
        assert_eq!(w.frontier(), [3, 4]);
        assert_eq!(w.verdict(3, |i| st[i]), Verdict::Ready);
    }

    #[test]
    fn a_failed_step_makes_its_dependents_skip_and_a_retry_comes_back() {
        let mut st = [Pending; 5];
        let mut w = Walk::from_needs(diamond(), |i| st[i]);
        st[0] = Passed;
        w.leave(0);
        w.finished(0, |i| st[i]);
        // 1 fails once and waits for its retry: back on the frontier, not ready before its
        // time (the dispatcher's timer), and 3 is not released by a waiting step.
        st[1] = Waiting;
        w.leave(1);
        w.revisit(1);
        assert!(w.frontier().contains(&1));
        st[1] = Failed;
        w.leave(1);
        w.finished(1, |i| st[i]);
        assert!(!w.frontier().contains(&3), "3 still needs 2 to end");
        st[2] = Passed;
        w.leave(2);
        w.finished(2, |i| st[i]);
        assert_eq!(w.verdict(3, |i| st[i]), Verdict::Skip(1));
    }

    #[test]
    fn a_cancelled_step_makes_its_dependents_skip() {
        let mut st = [Passed, Passed, Running, Pending, Pending];
        let mut w = Walk::from_needs(diamond(), |i| st[i]);
        st[2] = Cancelled;
        w.finished(2, |i| st[i]);
        assert_eq!(w.frontier(), [3, 4]);
        assert_eq!(w.verdict(3, |i| st[i]), Verdict::Skip(2));
    }

    #[test]
    fn a_resumed_run_starts_from_what_its_records_say() {
        let st = [Passed, Failed, Running, Pending, Cached];
        let w = Walk::from_needs(diamond(), |i| st[i]);
        // 3 waits for the running 2; 1 failed (a resume set it back to Pending first).
        assert_eq!(w.frontier(), Vec::<usize>::new());
        let st = [Passed, Pending, Passed, Pending, Cached];
        let w = Walk::from_needs(diamond(), |i| st[i]);
        assert_eq!(w.frontier(), [1]);
        assert_eq!(w.verdict(3, |i| st[i]), Verdict::Wait);
    }

    /// The dispatcher's timer looks for Waiting steps on the frontier only: a step waiting
    /// for a slot (ready, never left) and one waiting for its retry (revisited) are both
    /// there, also in a walk rebuilt from the records by a resume.
    #[test]
    fn every_waiting_step_is_on_the_frontier() {
        let mut st = [Passed, Pending, Pending, Pending, Pending];
        let mut w = Walk::from_needs(diamond(), |i| st[i]);
        st[1] = Waiting; // no slot: stays where it was
        st[2] = Waiting; // its retry: left when it started, back now
        w.leave(2);
        w.revisit(2);
        let waiting = |w: &Walk, st: &[StepStatus]| {
            (0..st.len())
                .filter(|&i| st[i] == Waiting)
                .all(|i| w.frontier().contains(&i))
        };
        assert!(waiting(&w, &st));
        let rebuilt = Walk::from_needs(diamond(), |i| st[i]);
        assert!(waiting(&rebuilt, &st));
    }

    #[test]
    fn a_parked_step_is_looked_at_only_while_a_slot_is_free() {
        let st = [Pending; 5];
        let mut w = Walk::from_needs(diamond(), |i| st[i]);
        w.park(4);
        assert!(w.is_parked(4));
        assert_eq!(w.to_look_at(0).collect::<Vec<_>>(), [0]);
        assert_eq!(w.to_look_at(1).collect::<Vec<_>>(), [0, 4]);
        w.leave(4);
        assert!(!w.is_parked(4));
        assert_eq!(w.to_look_at(1).collect::<Vec<_>>(), [0]);
    }

    /// A fan-in is counted down, once per upstream step, however often one is said to end.
    #[test]
    fn a_fan_in_joins_the_frontier_when_its_last_upstream_step_ends() {
        let needs = vec![vec![], vec![], vec![], vec![0, 1, 2]];
        let mut st = [Pending; 4];
        let mut w = Walk::from_needs(needs, |i| st[i]);
        for i in 0..2 {
            st[i] = Passed;
            w.leave(i);
            w.finished(i, |j| st[j]);
            w.finished(i, |j| st[j]); // said twice: counted once
            assert!(!w.frontier().contains(&3));
        }
        st[2] = Failed;
        w.leave(2);
        w.finished(2, |j| st[j]);
        assert_eq!(w.frontier(), [3]);
        assert_eq!(w.verdict(3, |j| st[j]), Verdict::Skip(2));
    }
}

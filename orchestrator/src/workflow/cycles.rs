//! Finding cycles among steps, each as a concrete path to print (`a → b → c → a`). Kahn first
//! (cheap, and enough when there is none); then petgraph's Kosaraju (iterative, so a 100,000-step
//! chain cannot overflow the stack as its recursive Tarjan would) for the components.

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// Every cycle of the graph where `needs[i]` lists the steps step `i` needs: one per strongly
/// connected component, as the path `[a, b, c]` (a needs b, b needs c, c needs a) starting at
/// the component's first step in file order; components ordered by that step. A step that
/// needs itself is the cycle `[a]`.
pub(crate) fn find_cycles(needs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    if !has_cycle(needs) {
        return Vec::new();
    }
    let mut g = DiGraph::<(), ()>::with_capacity(needs.len(), needs.iter().map(Vec::len).sum());
    for _ in needs {
        g.add_node(());
    }
    for (i, ns) in needs.iter().enumerate() {
        for &j in ns {
            g.add_edge(NodeIndex::new(i), NodeIndex::new(j), ());
        }
    }
    let mut comp = vec![usize::MAX; needs.len()];
    let mut cycles = Vec::new();
    for (c, scc) in kosaraju_scc(&g).into_iter().enumerate() {
        for n in &scc {
            comp[n.index()] = c;
        }
        let start = scc.iter().map(|n| n.index()).min().unwrap_or(0);
        if scc.len() > 1 || needs[start].contains(&start) {
            cycles.push((start, c));
        }
    }
    cycles.sort();
    cycles
        .into_iter()
        .map(|(start, c)| shortest_cycle(needs, &comp, c, start))
        .collect()
}

/// Kahn's algorithm: whether any step is left once every step whose needs are done is removed.
fn has_cycle(needs: &[Vec<usize>]) -> bool {
    let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); needs.len()];
    for (i, ns) in needs.iter().enumerate() {
        for &j in ns {
            dependents[j].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..needs.len()).filter(|&i| waiting[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(d);
            }
        }
    }
    done < needs.len()
}

/// Breadth-first from `start` inside component `c` back to `start`.
fn shortest_cycle(needs: &[Vec<usize>], comp: &[usize], c: usize, start: usize) -> Vec<usize> {
    let mut parent = std::collections::HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(i) = queue.pop_front() {
        for &j in &needs[i] {
            if j == start {
                let mut path = vec![i];
                while let Some(&p) = parent.get(path.last().unwrap_or(&start)) {
                    path.push(p);
                }
                path.reverse();
                return path;
            }
            if comp[j] == c && !parent.contains_key(&j) {
                parent.insert(j, i);
                queue.push_back(j);
            }
        }
    }
    vec![start]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_cycle_once_with_its_path() {
        // 0 needs 1, 1 needs 2, 2 needs 0; 3 needs itself; 4 needs 0 (not in a cycle).
        let needs = vec![vec![1], vec![2], vec![0], vec![3], vec![0]];
        assert_eq!(find_cycles(&needs), vec![vec![0, 1, 2], vec![3]]);
        assert!(find_cycles(&[vec![], vec![0], vec![0, 1]]).is_empty());
    }

    #[test]
    fn picks_a_shortest_path_through_a_component() {
        // 0 → 1 → 2 → 3 → 0 and a shortcut 1 → 0.
        let needs = vec![vec![1], vec![2, 0], vec![3], vec![0]];
        assert_eq!(find_cycles(&needs), vec![vec![0, 1]]);
    }

    #[test]
    fn long_chains_do_not_overflow() {
        let n = 200_000;
        let mut needs: Vec<Vec<usize>> = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert!(find_cycles(&needs).is_empty());
        needs[0].push(n - 1);
        assert_eq!(find_cycles(&needs)[0].len(), n);
    }
}

//! Each step's depth in the graph (0: needs nothing; else one more than its deepest need): the
//! one layering behind `Dag::layers` (`tuna graph`) and the dashboard's picture of a run.

use std::collections::BTreeMap;

/// The depth of each node, where `needs[i]` lists the nodes node `i` needs. Nodes on a cycle
/// (which a sealed graph has none of) and those after them stay at depth 0.
pub fn depths(needs: &[Vec<usize>]) -> Vec<usize> {
    let n = needs.len();
    let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ns) in needs.iter().enumerate() {
        for &j in ns {
            after[j].push(i);
        }
    }
    let mut depth = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    while let Some(j) = ready.pop() {
        for &i in &after[j] {
            depth[i] = depth[i].max(depth[j] + 1);
            waiting[i] -= 1;
            if waiting[i] == 0 {
                ready.push(i);
            }
        }
    }
    depth
}

/// [`depths`] for steps named in a map of needs (as a run's records give them); a need that
/// names no step of the map is ignored.
pub fn depths_by_name(needs: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, usize> {
    let index: BTreeMap<&str, usize> = needs
        .keys()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let by_index: Vec<Vec<usize>> = needs
        .values()
        .map(|ns| {
            ns.iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect()
        })
        .collect();
    needs.keys().cloned().zip(depths(&by_index)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_sits_one_deeper_than_its_deepest_need() {
        // 0 ← 1 ← 2, and 3 needs 0 and 2.
        assert_eq!(
            depths(&[vec![], vec![0], vec![1], vec![0, 2]]),
            vec![0, 1, 2, 3]
        );
        let needs: BTreeMap<String, Vec<String>> = [
            ("eval", vec!["train", "ghost"]),
            ("prep", vec![]),
            ("train", vec!["prep"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        let d = depths_by_name(&needs);
        assert_eq!((d["prep"], d["train"], d["eval"]), (0, 1, 2));
    }
}

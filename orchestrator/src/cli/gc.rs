//! `tuna gc`: drop old runs (with `--keep N`), attempt folders other than each step's last,
//! cache entries of dropped runs, and every artifact nothing kept refers to.

use std::collections::HashSet;

use super::args::Cli;
use super::exit::{Fail, OK};
use crate::store::RunStatus;

pub fn gc(cli: &Cli, keep: Option<usize>) -> Result<u8, Fail> {
    let engine = super::run::open_engine(cli, None, true)?;
    let store = &engine.store;
    let mut runs = store.runs()?;
    runs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let drop_n = keep.map_or(0, |k| runs.len().saturating_sub(k));
    let (mut dropped_runs, mut dropped_dirs) = (0, 0);
    let mut dropped_ids = HashSet::new();
    for r in &runs[..drop_n] {
        if r.status == RunStatus::Running {
            continue;
        }
        store.delete_run(&r.id)?;
        let _ = std::fs::remove_dir_all(engine.home.runs().join(&r.id));
        dropped_ids.insert(r.id.clone());
        dropped_runs += 1;
    }
    let mut live = Vec::new();
    let mut live_keys = HashSet::new();
    for r in runs.iter().filter(|r| !dropped_ids.contains(&r.id)) {
        for rec in store.steps(&r.id)? {
            live.extend(rec.outputs.values().cloned());
            live_keys.extend(rec.cache_key.clone());
            let n = rec.attempts.len();
            for a in rec.attempts.iter().take(n.saturating_sub(1)) {
                if a.dir.exists() && std::fs::remove_dir_all(&a.dir).is_ok() {
                    dropped_dirs += 1;
                }
            }
        }
    }
    let mut dropped_entries = 0;
    for (key, entry) in store.cache_entries()? {
        if dropped_ids.contains(&entry.run) && !live_keys.contains(&key) {
            store.remove_cache_entry(&key)?;
            dropped_entries += 1;
        } else {
            live.extend(entry.outputs.values().cloned());
        }
    }
    store.flush()?;
    let stats = engine
        .cas
        .gc(live)
        .map_err(|e| Fail::env(format!("error: artifact store: {e}")))?;
    println!(
        "removed {dropped_runs} runs, {dropped_dirs} old attempt folders, {dropped_entries} cache entries, {} blobs ({} bytes)",
        stats.removed, stats.bytes_freed
    );
    Ok(OK)
}

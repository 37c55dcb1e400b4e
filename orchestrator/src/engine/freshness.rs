//! The one answer to "is this step fresh?": a stored result of the same key whose outputs are
//! still where it keeps them, or the reasons the step must run. `tuna plan` asks it before a
//! run, the dispatcher at each step, and the reasons go on the step's record for `tuna status`.

use crate::cache::{DirtyReason, KeyInputs};
use crate::store::{CacheEntry, Store, StoreError};

/// Whether a step can take a stored result.
#[derive(Debug)]
pub enum Freshness {
    /// Reuse this entry: same key, outputs present.
    Fresh(CacheEntry),
    /// Run it, for these reasons.
    Dirty(Vec<DirtyReason>),
}

/// What the answer depends on besides the store.
pub struct Question<'a> {
    pub workflow: &'a str,
    pub step: &'a str,
    pub inputs: &'a KeyInputs,
    pub key: &'a str,
    /// The step's `cache:` (false: never a hit).
    pub cache_enabled: bool,
    /// `--no-cache` for this run.
    pub no_cache: bool,
}

/// Answers `q`; `outputs_there` says what is missing of a matching entry's outputs (nothing
/// when they are all where the entry keeps them).
pub fn freshness(
    store: &Store,
    q: &Question<'_>,
    outputs_there: impl FnOnce(&CacheEntry) -> Vec<DirtyReason>,
) -> Result<Freshness, StoreError> {
    let mut reasons = Vec::new();
    if !q.cache_enabled {
        reasons.push(DirtyReason::CacheDisabled);
    } else if q.no_cache {
        reasons.push(DirtyReason::NoCacheFlag);
    }
    match store.cache_entry(q.key)? {
        Some(_) if !reasons.is_empty() => {}
        Some(entry) => {
            let missing = outputs_there(&entry);
            if missing.is_empty() {
                return Ok(Freshness::Fresh(entry));
            }
            reasons.extend(missing);
        }
        None => match store.last_key(q.workflow, q.step)? {
            None => reasons.push(DirtyReason::NeverRun),
            Some(last) => reasons.extend(DirtyReason::diff(&last.inputs, q.inputs)),
        },
    }
    Ok(Freshness::Dirty(reasons))
}

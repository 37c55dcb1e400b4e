//! The `tracking_pending` tree: runs whose export to the tracking server is not complete (the
//! server was down or answered errors), so `tuna track sync RUN` and the next `tuna run`,
//! `tuna resume` or `tuna serve` send them later. Only the fact and the last error are kept:
//! what to send is read again from the run's own records, and the server's tags say what it
//! has already.

use serde::{Deserialize, Serialize};

use super::db::{HasFormat, Store, StoreError, decode, get, put};
use super::records::FORMAT_MAJOR;

const TREE: &str = "tracking_pending";

/// A run with something left to send to the tracking server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingExport {
    pub format: u32,
    pub run: String,
    /// When the first send failed (unix ms).
    pub since: u64,
    /// The last failure (never holds the server's credentials).
    pub error: String,
}

impl PendingExport {
    pub fn new(run: &str, error: &str) -> PendingExport {
        PendingExport {
            format: FORMAT_MAJOR,
            run: run.to_string(),
            since: super::records::now_ms(),
            error: error.to_string(),
        }
    }
}

impl HasFormat for PendingExport {
    fn format(&self) -> u32 {
        self.format
    }
}

impl Store {
    /// Records that run `p.run` has something left to send (keeping the first failure's time).
    pub fn put_pending_export(&self, p: &PendingExport) -> Result<(), StoreError> {
        let tree = self.tree(TREE)?;
        let since = get::<PendingExport>(&tree, p.run.as_bytes())?.map_or(p.since, |o| o.since);
        put(
            &tree,
            p.run.as_bytes(),
            &PendingExport { since, ..p.clone() },
        )?;
        self.flush()
    }

    pub fn pending_export(&self, run: &str) -> Result<Option<PendingExport>, StoreError> {
        get(&self.tree(TREE)?, run.as_bytes())
    }

    /// Every run with something left to send, oldest run first.
    pub fn pending_exports(&self) -> Result<Vec<PendingExport>, StoreError> {
        self.tree(TREE)?
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&String::from_utf8_lossy(&k), &v)
            })
            .collect()
    }

    /// The run's export is complete.
    pub fn remove_pending_export(&self, run: &str) -> Result<(), StoreError> {
        self.tree(TREE)?.remove(run.as_bytes())?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_export_keeps_its_first_time_and_goes_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut first = PendingExport::new("r1", "down");
        first.since = 5;
        store.put_pending_export(&first).unwrap();
        store
            .put_pending_export(&PendingExport::new("r1", "500"))
            .unwrap();
        let got = store.pending_export("r1").unwrap().unwrap();
        assert_eq!((got.since, got.error.as_str()), (5, "500"));
        assert_eq!(store.pending_exports().unwrap().len(), 1);
        store.remove_pending_export("r1").unwrap();
        assert!(store.pending_exports().unwrap().is_empty());
        let newer = PendingExport {
            format: FORMAT_MAJOR + 1,
            ..first
        };
        store.put_pending_export(&newer).unwrap();
        assert!(matches!(
            store.pending_export("r1"),
            Err(StoreError::TooNew { .. })
        ));
    }
}

//! The sled store: typed access to runs, step records, the cache index and last keys.
//!
//! sled allows one process per store. [`Store::open`] turns its lock error into
//! [`StoreError::Locked`] naming the owner's pid, so the CLI can talk to the owner through its
//! control socket instead. Writes are buffered by sled until [`Store::flush`]: callers flush
//! before any action that depends on a write (write-ahead).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::records::{CacheEntry, FORMAT_MAJOR, LastKey, RunRecord, StepRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} is in use by another tuna process (pid {pid}); commands reach it through its control socket"
    )]
    Locked { path: PathBuf, pid: String },
    #[error("store at {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
    #[error("store record {key}: {source}")]
    Decode {
        key: String,
        source: serde_json::Error,
    },
    #[error(
        "store record {key} has format {found}, newer than this tuna understands ({FORMAT_MAJOR}); upgrade tuna"
    )]
    TooNew { key: String, found: u32 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// A stable name for the kind of failure (`tuna::store::…`), as the engine's errors and
    /// the workflow's diagnostics have theirs. Every one is tuna's surroundings (exit code 3).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Locked { .. } => "tuna::store::locked",
            StoreError::Sled { .. } => "tuna::store::sled",
            StoreError::Decode { .. } => "tuna::store::decode",
            StoreError::TooNew { .. } => "tuna::store::too_new",
            StoreError::Io(_) => "tuna::store::io",
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(source: sled::Error) -> Self {
        StoreError::Sled {
            path: PathBuf::new(),
            source,
        }
    }
}

pub struct Store {
    db: sled::Db,
    runs: sled::Tree,
    steps: sled::Tree,
    cache: sled::Tree,
    last_keys: sled::Tree,
}

impl Store {
    /// Opens (creating) the store in `dir`, and records this process as its owner.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)?;
        let owner_file = dir.join("owner.pid");
        let mut waited = 0;
        let mut released = false;
        let db = loop {
            match sled::Config::new()
                .path(dir)
                .mode(sled::Mode::HighThroughput)
                .open()
            {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock || is_lock_error(&e) =>
                {
                    let pid = std::fs::read_to_string(&owner_file).unwrap_or_default();
                    let pid = pid.trim().to_string();
                    // A killed owner's lock can outlive it for a moment (a child it was
                    // starting still holds the descriptor until its exec): while the recorded
                    // owner is gone, wait briefly (bounded) for the lock to be released.
                    if waited < 100 && !process_alive(&pid) {
                        waited += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                    return Err(StoreError::Locked {
                        path: dir.to_path_buf(),
                        pid,
                    });
                }
                Err(sled::Error::Io(e))
                    if super::reserve::is_disk_full(&e)
                        && !released
                        && super::reserve::release(dir) =>
                {
                    // The disk is full: give up the reserve so the store opens (to read it, to
                    // record a failure, to run gc), and say so once.
                    released = true;
                    eprintln!(
                        "warning: the disk holding {} is full; tuna gave up its {} MiB space reserve to open the store (free space, e.g. `tuna gc`)",
                        dir.display(),
                        super::reserve::RESERVE >> 20
                    );
                }
                Err(source) => {
                    return Err(StoreError::Sled {
                        path: dir.to_path_buf(),
                        source,
                    });
                }
            }
        };
        if !released {
            super::reserve::ensure(dir);
        }
        // The owner's pid is a hint for the messages of other processes: on a full disk it
        // may not be written, which costs nothing but that hint.
        if let Err(e) = std::fs::write(&owner_file, std::process::id().to_string())
            && !super::reserve::is_disk_full(&e)
        {
            return Err(e.into());
        }
        Ok(Store {
            runs: db.open_tree("runs")?,
            steps: db.open_tree("steps")?,
            cache: db.open_tree("cache")?,
            last_keys: db.open_tree("last_keys")?,
            db,
        })
    }

    /// A named sled tree of this store (the daemon's schedules, fires and leaderboard rows
    /// live in their own trees; see `daemon_trees.rs`).
    pub(super) fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        put(&self.runs, run.id.as_bytes(), run)
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        get(&self.runs, id.as_bytes())
    }

    /// Every run, oldest first (run ids sort by time).
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.runs
            .iter()
            .values()
            .map(|v| decode("run", &v?))
            .collect()
    }

    pub fn put_step(&self, rec: &StepRecord) -> Result<(), StoreError> {
        put(&self.steps, step_key(&rec.run, &rec.step).as_bytes(), rec)
    }

    pub fn step(&self, run: &str, step: &str) -> Result<Option<StepRecord>, StoreError> {
        get(&self.steps, step_key(run, step).as_bytes())
    }

    /// Every step record of a run (in key order).
    pub fn steps(&self, run: &str) -> Result<Vec<StepRecord>, StoreError> {
        let prefix = format!("{run}\0");
        self.steps
            .scan_prefix(prefix.as_bytes())
            .values()
            .map(|v| decode("step", &v?))
            .collect()
    }

    pub fn delete_run(&self, run: &str) -> Result<(), StoreError> {
        let prefix = format!("{run}\0");
        for k in self.steps.scan_prefix(prefix.as_bytes()).keys() {
            self.steps.remove(k?)?;
        }
        self.runs.remove(run.as_bytes())?;
        Ok(())
    }

    pub fn cache_entry(&self, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        get(&self.cache, key.as_bytes())
    }

    pub fn put_cache_entry(&self, key: &str, entry: &CacheEntry) -> Result<(), StoreError> {
        put(&self.cache, key.as_bytes(), entry)
    }

    pub fn cache_entries(&self) -> Result<Vec<(String, CacheEntry)>, StoreError> {
        self.cache
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    decode("cache", &v)?,
                ))
            })
            .collect()
    }

    pub fn remove_cache_entry(&self, key: &str) -> Result<(), StoreError> {
        self.cache.remove(key.as_bytes())?;
        Ok(())
    }

    pub fn last_key(&self, workflow: &str, step: &str) -> Result<Option<LastKey>, StoreError> {
        get(&self.last_keys, step_key(workflow, step).as_bytes())
    }

    pub fn put_last_key(
        &self,
        workflow: &str,
        step: &str,
        last: &LastKey,
    ) -> Result<(), StoreError> {
        put(&self.last_keys, step_key(workflow, step).as_bytes(), last)
    }
}

/// Whether `pid` names a live (not zombie) process.
fn process_alive(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn is_lock_error(e: &std::io::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

fn step_key(run: &str, step: &str) -> String {
    format!("{run}\0{step}")
}

pub(super) fn put<T: Serialize>(
    tree: &sled::Tree,
    key: &[u8],
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).expect("records serialize");
    tree.insert(key, bytes)?;
    Ok(())
}

pub(super) fn get<T: DeserializeOwned + HasFormat>(
    tree: &sled::Tree,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        Some(v) => decode(&String::from_utf8_lossy(key), &v).map(Some),
        None => Ok(None),
    }
}

pub(super) fn decode<T: DeserializeOwned + HasFormat>(
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let value: T = serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        key: key.replace('\0', "/"),
        source,
    })?;
    if value.format() > T::MAX_FORMAT {
        return Err(StoreError::TooNew {
            key: key.replace('\0', "/"),
            found: value.format(),
        });
    }
    Ok(value)
}

pub(super) trait HasFormat {
    /// The newest format major this tuna reads for the record type.
    const MAX_FORMAT: u32 = FORMAT_MAJOR;
    fn format(&self) -> u32;
}

macro_rules! has_format {
    ($($t:ty),*) => {$(impl HasFormat for $t { fn format(&self) -> u32 { self.format } })*};
}
has_format!(RunRecord, StepRecord, CacheEntry, LastKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_store_error_has_its_code() {
        let locked = StoreError::Locked {
            path: PathBuf::from("/h/db"),
            pid: "7".into(),
        };
        assert_eq!(locked.code(), "tuna::store::locked");
        let too_new = StoreError::TooNew {
            key: "run/x".into(),
            found: FORMAT_MAJOR + 1,
        };
        assert_eq!(too_new.code(), "tuna::store::too_new");
        let io = StoreError::Io(std::io::Error::other("disk"));
        assert_eq!(io.code(), "tuna::store::io");
        let decode = serde_json::from_str::<u32>("x").unwrap_err();
        let decode = StoreError::Decode {
            key: "k".into(),
            source: decode,
        };
        assert_eq!(decode.code(), "tuna::store::decode");
    }
}

//! Secret values masked in the logs copied back from a host. A job with secrets has its values
//! registered here at launch (and again when a later tuna process adopts the attempt, which
//! launches it again); its logs then come back through a [`Redactor`] per stream, from an
//! offset in the remote file kept here, since the masked local file is shorter than the remote
//! one. A process that did not see the launch has no offset: it copies the remote log again
//! from its start over the local file, masked. On the host the logs stay private to the user
//! (the wrapper creates them 0600).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::redact::Redactor;

/// The masks of the attempts with secrets, by remote attempt folder.
#[derive(Debug, Default)]
pub(crate) struct LogMasks {
    by_dir: Mutex<HashMap<String, DirMask>>,
}

#[derive(Debug)]
struct DirMask {
    values: Vec<Vec<u8>>,
    streams: HashMap<String, StreamMask>,
    /// The attempt ended and what was held back went out; kept so that a later look at the
    /// attempt still copies from the remote offsets, never the raw bytes.
    done: bool,
}

/// Where a stream's copy stands.
#[derive(Debug)]
struct StreamMask {
    /// Bytes of the remote file already read.
    remote_off: u64,
    redactor: Redactor,
}

/// What to do with a stream's new bytes.
pub(crate) enum Copy {
    /// No secrets: the local file mirrors the remote one byte for byte.
    Plain,
    /// Read the remote file from `from`; when `restart`, the local file starts over.
    Masked { from: u64, restart: bool },
}

impl LogMasks {
    /// Registers the secret values of the attempt in `dir` (nothing when there are none).
    pub(crate) fn register(&self, dir: &str, values: Vec<Vec<u8>>) {
        if values.is_empty() {
            return;
        }
        let mut map = self.by_dir.lock().expect("log masks");
        map.entry(dir.to_owned()).or_insert(DirMask {
            values,
            streams: HashMap::new(),
            done: false,
        });
    }

    /// How to copy `name` of `dir`.
    pub(crate) fn plan(&self, dir: &str, name: &str) -> Copy {
        let mut map = self.by_dir.lock().expect("log masks");
        let Some(mask) = map.get_mut(dir) else {
            return Copy::Plain;
        };
        match mask.streams.get(name) {
            Some(s) => Copy::Masked {
                from: s.remote_off,
                restart: false,
            },
            None => {
                let redactor = Redactor::new(mask.values.iter().cloned());
                mask.streams.insert(
                    name.to_owned(),
                    StreamMask {
                        remote_off: 0,
                        redactor,
                    },
                );
                Copy::Masked {
                    from: 0,
                    restart: true,
                }
            }
        }
    }

    /// Masks `bytes` read from `name` of `dir`; the remote offset moves past them.
    pub(crate) fn mask(&self, dir: &str, name: &str, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut map = self.by_dir.lock().expect("log masks");
        match map.get_mut(dir).and_then(|m| m.streams.get_mut(name)) {
            Some(s) => {
                s.redactor.push(bytes, &mut out);
                s.remote_off += bytes.len() as u64;
            }
            None => out.extend_from_slice(bytes),
        }
        out
    }

    /// The attempt ended: what each stream held back (a possible start of a value), by name,
    /// once.
    pub(crate) fn finish(&self, dir: &str) -> Vec<(String, Vec<u8>)> {
        let mut map = self.by_dir.lock().expect("log masks");
        let Some(mask) = map.get_mut(dir).filter(|m| !m.done) else {
            return Vec::new();
        };
        mask.done = true;
        mask.streams
            .iter_mut()
            .map(|(name, s)| {
                let mut out = Vec::new();
                s.redactor.finish(&mut out);
                (name.clone(), out)
            })
            .filter(|(_, out)| !out.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_attempt_is_copied_masked_from_its_remote_offset() {
        let m = LogMasks::default();
        assert!(matches!(m.plan("/d", "stdout.log"), Copy::Plain));
        m.register("/d", vec![b"hunter2".to_vec()]);
        assert!(matches!(
            m.plan("/d", "stdout.log"),
            Copy::Masked {
                from: 0,
                restart: true
            }
        ));
        let a = m.mask("/d", "stdout.log", b"pw=hun");
        assert!(matches!(
            m.plan("/d", "stdout.log"),
            Copy::Masked {
                from: 6,
                restart: false
            }
        ));
        let b = m.mask("/d", "stdout.log", b"ter2 ok hunt");
        let held = m.finish("/d");
        let mut all = [a, b].concat();
        for (_, h) in held {
            all.extend(h);
        }
        assert_eq!(String::from_utf8(all).unwrap(), "pw=*** ok hunt");
        assert!(m.finish("/d").is_empty());
        assert!(matches!(
            m.plan("/d", "stdout.log"),
            Copy::Masked {
                from: 18,
                restart: false
            }
        ));
    }

    #[test]
    fn no_values_means_no_mask() {
        let m = LogMasks::default();
        m.register("/d", Vec::new());
        assert!(matches!(m.plan("/d", "stderr.log"), Copy::Plain));
    }
}

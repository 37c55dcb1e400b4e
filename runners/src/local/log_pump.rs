//! The logs of a job that has secrets: the script's stdout and stderr reach the shim through
//! pipes, and the shim appends them to the log files with every secret value masked
//! ([`crate::redact::Redactor`]). Jobs without secrets write their logs directly.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use crate::redact::Redactor;

/// The two pumps of one script.
pub(crate) struct Pumps {
    done: mpsc::Receiver<()>,
    running: usize,
}

impl Pumps {
    /// Starts a pump for each of the child's piped outputs, into `dir/log`.
    pub(crate) fn start(child: &mut Child, dir: &Path, values: &[Vec<u8>]) -> io::Result<Pumps> {
        let (tx, done) = mpsc::channel();
        let mut running = 0;
        let streams: [(Option<Box<dyn Read + Send>>, &str); 2] = [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
                super::layout::STDOUT_LOG,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
                super::layout::STDERR_LOG,
            ),
        ];
        for (stream, name) in streams {
            let Some(mut stream) = stream else { continue };
            let mut log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))?;
            let mut redactor = Redactor::new(values.iter().cloned());
            let tx = tx.clone();
            running += 1;
            std::thread::spawn(move || {
                redactor.copy(&mut stream, &mut log);
                let _ = tx.send(());
            });
        }
        Ok(Pumps { done, running })
    }

    /// Waits until both pipes are drained, at most `within` (a process that left the
    /// script's group may hold a pipe open: its later output is lost, the attempt is not).
    pub(crate) fn finish(self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        for _ in 0..self.running {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if self.done.recv_timeout(left).is_err() {
                return;
            }
        }
    }
}

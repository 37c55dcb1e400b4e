//! A job's logs: the script's stdout and stderr reach its waiter through pipes, and the waiter
//! appends them to `stdout.log` and `stderr.log` with every secret value masked
//! ([`crate::redact::Redactor`]). A log file is made at the first byte there is to write: most
//! short steps print nothing, and every inode a step makes costs (more so on ext4 right after
//! many files were deleted).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::redact::Redactor;

/// The two pumps of one script.
pub(crate) struct Pumps {
    done: mpsc::Receiver<()>,
    running: usize,
}

impl Pumps {
    /// Starts a pump for each of the script's output pipes (stdout, stderr: their read ends),
    /// into the attempt's log files.
    pub(crate) fn start(pipes: [File; 2], dir: &Path, values: &[Vec<u8>]) -> Pumps {
        let (tx, done) = mpsc::channel();
        let mut running = 0;
        let [out, err] = pipes;
        for (mut stream, name) in [
            (out, super::layout::STDOUT_LOG),
            (err, super::layout::STDERR_LOG),
        ] {
            let mut log = LazyLog {
                path: dir.join(name),
                file: None,
            };
            let mut redactor = Redactor::new(values.iter().cloned());
            let tx = tx.clone();
            running += 1;
            std::thread::spawn(move || {
                redactor.copy(&mut stream, &mut log);
                let _ = tx.send(());
            });
        }
        Pumps { done, running }
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

/// A log file opened (created, appended to) at the first write.
struct LazyLog {
    path: PathBuf,
    file: Option<File>,
}

impl Write for LazyLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.is_empty() {
            return Ok(0);
        }
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.file = Some(file);
        }
        self.file.as_mut().expect("opened above").write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_stream_makes_no_log_file_and_a_loud_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let (quiet_r, quiet_w) = pipe();
        let (loud_r, mut loud_w) = pipe();
        let pumps = Pumps::start([loud_r, quiet_r], dir.path(), &[b"hunter22".to_vec()]);
        loud_w.write_all(b"pass hunter22\n").unwrap();
        drop((quiet_w, loud_w));
        pumps.finish(Duration::from_secs(10));
        let out = std::fs::read_to_string(dir.path().join(super::super::layout::STDOUT_LOG));
        assert_eq!(out.unwrap(), "pass ***\n");
        assert!(!dir.path().join(super::super::layout::STDERR_LOG).exists());
    }

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe fills the array; the fds are ours alone.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            use std::os::fd::FromRawFd;
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        }
    }
}

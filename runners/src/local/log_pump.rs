//! A job's logs: the script's stdout and stderr reach its waiter through pipes, and the waiter
//! (between its waits for signals: see `attempt.rs`) appends them to `stdout.log` and
//! `stderr.log` with every secret value masked
//! ([`crate::redact::Redactor`]). A log file is made at the first byte there is to write: most
//! short steps print nothing, and every inode a step makes costs (more so on ext4 right after
//! many files were deleted).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::redact::Redactor;

thread_local! {
    /// The read buffer of the last script's pumps, for the next one's (a waiter runs one
    /// script after another: a new 64 KiB buffer each time would be zeroed each time).
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The two output streams of one script, read by its waiter between its waits for signals
/// (no thread of their own: a step would pay for two).
pub(crate) struct Pumps {
    streams: Vec<Stream>,
    buf: Vec<u8>,
}

/// One pipe and the log it goes to.
struct Stream {
    pipe: File,
    log: LazyLog,
    redactor: Redactor,
    open: bool,
}

impl Pumps {
    /// The script's output pipes (stdout, stderr: their read ends), into the attempt's log
    /// files.
    pub(crate) fn start(pipes: [File; 2], dir: &Path, values: &[Vec<u8>]) -> Pumps {
        let [out, err] = pipes;
        let streams = [
            (out, super::layout::STDOUT_LOG),
            (err, super::layout::STDERR_LOG),
        ]
        .into_iter()
        .map(|(pipe, name)| {
            // SAFETY: fcntl on a pipe we own.
            let open = unsafe {
                let flags = libc::fcntl(pipe.as_raw_fd(), libc::F_GETFL);
                libc::fcntl(pipe.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
            };
            Stream {
                pipe,
                log: LazyLog {
                    dir: dir.to_path_buf(),
                    name,
                    file: None,
                },
                redactor: Redactor::new(values.iter().cloned()),
                open,
            }
        })
        .collect();
        Pumps {
            streams,
            buf: SPARE.take(),
        }
    }

    /// The pipes still open, to poll for input: (stream, fd).
    pub(crate) fn open_fds(&self) -> Vec<(usize, RawFd)> {
        (self.streams.iter().enumerate())
            .filter(|(_, s)| s.open)
            .map(|(i, s)| (i, s.pipe.as_raw_fd()))
            .collect()
    }

    /// Copies what stream `i` holds now into its log, masked (until the pipe is empty, or at
    /// its end). Write errors are ignored: the pipe is drained either way, so the script
    /// never blocks on it.
    pub(crate) fn read(&mut self, i: usize) {
        let stream = &mut self.streams[i];
        let mut out = Vec::new();
        while stream.open {
            if self.buf.is_empty() {
                self.buf = vec![0u8; 64 << 10];
            }
            match (&stream.pipe).read(&mut self.buf) {
                Ok(0) => {
                    stream.open = false;
                    stream.redactor.finish(&mut out);
                }
                Ok(n) => stream.redactor.push(&self.buf[..n], &mut out),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => stream.open = false,
            }
            if !out.is_empty() {
                let _ = stream.log.write_all(&out);
                out.clear();
            }
        }
    }

    /// Reads both pipes to their end, at most `within` (a process that left the script's
    /// group may hold a pipe open: its later output is lost, the attempt is not).
    pub(crate) fn finish(mut self, within: Duration) {
        let deadline = Instant::now() + within;
        // Most often both pipes are at their end already: reading says so without a poll.
        for i in 0..self.streams.len() {
            self.read(i);
        }
        loop {
            let fds = self.open_fds();
            let left = deadline.saturating_duration_since(Instant::now());
            if fds.is_empty() || left.is_zero() {
                SPARE.set(std::mem::take(&mut self.buf));
                return;
            }
            for i in poll_readable(&fds, Some(left)) {
                self.read(i);
            }
        }
    }
}

/// Waits up to `timeout` (forever if `None`) until one of `fds` is readable or closed; the
/// streams that are.
pub(crate) fn poll_readable(fds: &[(usize, RawFd)], timeout: Option<Duration>) -> Vec<usize> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(_, fd)| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
    // SAFETY: poll on a vector of valid pollfds.
    let n = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return Vec::new();
    }
    (polled.iter().zip(fds))
        .filter(|(p, _)| p.revents != 0)
        .map(|(_, &(i, _))| i)
        .collect()
}

/// A log file opened (created, appended to) at the first write, its folder with it when that
/// is not there yet.
struct LazyLog {
    dir: PathBuf,
    name: &'static str,
    file: Option<File>,
}

impl Write for LazyLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.is_empty() {
            return Ok(0);
        }
        if self.file.is_none() {
            self.file = Some(super::layout::open_log(&self.dir, self.name)?);
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

//! The launcher's side of the home's supervisor: hand it a launch spec, starting it first when
//! none listens, and read which waiter owns the attempt.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::daemon::{SOCKET, socket_path};
use super::proc_id::ProcId;
use super::spec::LaunchSpec;
use crate::RunnerError;

/// How the supervisor's waiter answered a launch.
#[derive(Debug)]
pub(crate) enum Answer {
    /// This launch's waiter claimed the attempt and runs it; it says `exited RECORD` on the
    /// connection when the job has ended.
    Claimed(ProcId, Connection),
    /// An earlier launch's waiter owns the attempt.
    Taken(ProcId),
}

/// A claimed launch's connection, with what was read past the `claimed` line.
#[derive(Debug)]
pub(crate) struct Connection {
    buffered: Vec<u8>,
    stream: tokio::net::UnixStream,
}

impl Connection {
    /// Sends `bytes` (a launch line for the attempt in `attempt_dir`) to this connection's
    /// waiter, whose last job has ended, and reads its answer: `None` when the waiter is gone
    /// (nothing was claimed: the launch may go to the supervisor instead).
    pub async fn launch(
        mut self,
        attempt_dir: &Path,
        bytes: &[u8],
    ) -> Result<Option<Answer>, RunnerError> {
        use tokio::io::AsyncWriteExt;
        if !self.buffered.is_empty() || self.stream.write_all(bytes).await.is_err() {
            return Ok(None);
        }
        self.answer(attempt_dir).await
    }

    /// The waiter's answer to the launch just sent; `None` when the connection ended first.
    async fn answer(mut self, attempt_dir: &Path) -> Result<Option<Answer>, RunnerError> {
        let line = match self.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        parse(&String::from_utf8_lossy(&line), self, attempt_dir).map(Some)
    }

    /// The next line the waiter says (without its newline); `None` once the connection ended
    /// (or was reset) first.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(end) = self.buffered.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buffered.drain(..=end).collect();
                line.pop();
                return Ok(Some(line));
            }
            let mut chunk = [0u8; 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) => return Ok(None),
                Ok(n) => self.buffered.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

/// How long a launch may take to reach a supervisor, starting one if need be.
const REACH_WITHIN: Duration = Duration::from_secs(20);

/// Sends `spec` to the supervisor of `dir` (started with `shim` when none listens). Runs on a
/// thread of tokio's runtime (a blocking task): a claimed launch's connection is handed back
/// registered with it.
pub(crate) fn launch(dir: &Path, shim: &Path, spec: &LaunchSpec) -> Result<Answer, RunnerError> {
    let bytes = spec.to_bytes()?;
    let deadline = Instant::now() + REACH_WITHIN;
    let mut last_problem = String::new();
    while Instant::now() < deadline {
        let conn = socket_path(dir, SOCKET).and_then(|(_dir, path)| UnixStream::connect(path));
        match conn {
            Ok(conn) => match exchange(conn, &bytes)? {
                Some((line, reader)) => {
                    let buffered = reader.buffer().to_vec();
                    let stream = reader.into_inner();
                    stream.set_nonblocking(true)?;
                    let stream = tokio::net::UnixStream::from_std(stream)?;
                    let conn = Connection { buffered, stream };
                    return parse(&line, conn, &spec.job.attempt_dir);
                }
                // The supervisor went away before its waiter took the connection: nothing
                // was claimed, so launching again is safe.
                None => last_problem = "the supervisor closed the connection".into(),
            },
            Err(e) => {
                last_problem = e.to_string();
                start(dir, shim, spec)?;
            }
        }
    }
    Err(RunnerError::Spawn(format!(
        "cannot reach the supervisor in {} within {}s: {last_problem}",
        dir.display(),
        REACH_WITHIN.as_secs()
    )))
}

/// [`launch`] without blocking, for when the supervisor listens: `None` when no waiter took
/// the spec (nobody listens, or the supervisor went away first), and [`launch`] must start
/// one. The launcher's common path: no thread of its own, no hand-off.
pub(crate) async fn try_launch(
    dir: &Path,
    attempt_dir: &Path,
    bytes: &[u8],
) -> Result<Option<Answer>, RunnerError> {
    use tokio::io::AsyncWriteExt;
    let Ok((_dir, path)) = socket_path(dir, SOCKET) else {
        return Ok(None);
    };
    let Ok(mut stream) = tokio::net::UnixStream::connect(&path).await else {
        return Ok(None);
    };
    // The connection stays open both ways: the waiter runs the launcher's next launches on
    // it too (see [`Connection::launch`]).
    if stream.write_all(bytes).await.is_err() {
        return Ok(None);
    }
    Connection {
        buffered: Vec::new(),
        stream,
    }
    .answer(attempt_dir)
    .await
}

/// Writes the spec and reads the waiter's one line; `None` when the connection closed (or was
/// reset) first, which only happens when no waiter took it: a waiter holds the connection
/// until it has answered.
fn exchange(
    mut conn: UnixStream,
    spec: &[u8],
) -> Result<Option<(String, BufReader<UnixStream>)>, RunnerError> {
    // A waiter that finds the attempt taken may stop reading early: that is not an error.
    let _ = conn.write_all(spec);
    let mut line = String::new();
    let mut reader = BufReader::new(conn);
    match reader.read_line(&mut line) {
        Ok(_) => Ok((!line.is_empty()).then_some((line, reader))),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The waiter's line, read from `conn`. A `taken` answer lets go of the connection (its
/// waiter is then idle again).
fn parse(line: &str, conn: Connection, attempt_dir: &Path) -> Result<Answer, RunnerError> {
    let line = line.trim_end();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let owner = serde_json::from_str::<ProcId>(rest);
    match (word, owner) {
        ("claimed", Ok(id)) => Ok(Answer::Claimed(id, conn)),
        ("taken", Ok(id)) => Ok(Answer::Taken(id)),
        ("error", _) => Err(RunnerError::Spawn(rest.to_owned())),
        _ => Err(RunnerError::Protocol(format!(
            "the supervisor did not take the attempt {} (it said {line:?})",
            attempt_dir.display()
        ))),
    }
}

/// Runs `shim --supervisor DIR`, which returns once a supervisor listens (its own, or another
/// that holds the lock and is about to).
fn start(dir: &Path, shim: &Path, spec: &LaunchSpec) -> Result<(), RunnerError> {
    let mut child = Command::new(shim)
        .arg("--supervisor")
        .arg(dir)
        .env_clear()
        .envs(&spec.base_env)
        .envs(std::env::var("TUNA_SUPERVISOR_IDLE_MS").map(|v| ("TUNA_SUPERVISOR_IDLE_MS", v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            RunnerError::Spawn(format!("cannot start the shim {}: {e}", shim.display()))
        })?;
    let mut said = String::new();
    if let Some(out) = child.stdout.take() {
        // One line; the supervisor it forked lets go of the pipe as it starts.
        let _ = BufReader::new(out).take(4096).read_line(&mut said);
    }
    let _ = child.wait();
    match said.trim_end() {
        "ready" => Ok(()),
        // Another supervisor holds the lock: it listens already, or is about to, or is
        // exiting. Give it a moment before connecting again.
        "running" => {
            std::thread::sleep(Duration::from_millis(2));
            Ok(())
        }
        "" => Err(RunnerError::Spawn(format!(
            "the shim {} could not start the supervisor in {}: it said nothing",
            shim.display(),
            dir.display(),
        ))),
        other => Err(RunnerError::Spawn(format!(
            "the shim {} could not start the supervisor in {}: {}",
            shim.display(),
            dir.display(),
            other.strip_prefix("error ").unwrap_or(other)
        ))),
    }
}

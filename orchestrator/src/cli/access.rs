//! How a command that looks at runs reaches them: the store itself when no other tuna process
//! owns it, the owner's control socket when one does, a daemon over HTTP with `--server`.
//!
//! An owner holds the store a moment before its socket answers (it is starting) and a moment
//! after its socket is gone (its run is ending, the tracker flushing); a command started in
//! either moment tries again, the store or the socket, until one answers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::args::Cli;
use super::client::Client;
use super::exit::Fail;
use crate::engine::{AskError, Request, RunSummary, RunView, request};
use crate::store::{Store, StoreError};

/// How long a command waits for an owner that holds the store but does not answer.
const OWNER_GRACE: Duration = Duration::from_secs(30);
/// The pause between two tries while it waits.
const RETRY: Duration = Duration::from_millis(20);

/// Where a command reads runs from.
pub(super) enum Access {
    Local(Store),
    /// The store is held by the tuna process `pid`, which answers on `socket`.
    Remote {
        socket: PathBuf,
        pid: String,
    },
    Server(Client),
}

/// Why a look through an [`Access`] failed.
pub(super) enum Miss {
    /// The owner did not answer (starting, or ending): try again.
    Gone(String),
    Fail(Fail),
}

impl From<Fail> for Miss {
    fn from(f: Fail) -> Miss {
        Miss::Fail(f)
    }
}

impl From<StoreError> for Miss {
    fn from(e: StoreError) -> Miss {
        Miss::Fail(e.into())
    }
}

impl Access {
    /// The way in now: the daemon named by `--server`, else the store or its owner.
    pub(super) fn open(cli: &Cli) -> Result<Access, Fail> {
        if let Some(c) = Client::from_cli(cli) {
            return Ok(Access::Server(c));
        }
        let home = super::open::home(cli);
        if !home.db().exists() {
            return Err(Fail::invalid(format!(
                "error: no tuna store at {} (run a workflow first, or set --home)",
                home.root.display()
            )));
        }
        match Store::open(&home.db()) {
            Ok(s) => Ok(Access::Local(s)),
            Err(StoreError::Locked { pid, .. }) => Ok(Access::Remote {
                socket: home.control_socket(),
                pid,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// `look` through a fresh way in, again while the owner does not answer (up to
    /// [`OWNER_GRACE`]); the way that answered and what it gave.
    pub(super) fn read<T>(
        cli: &Cli,
        look: impl Fn(&Access) -> Result<T, Miss>,
    ) -> Result<(Access, T), Fail> {
        let deadline = Instant::now() + OWNER_GRACE;
        let mut told = false;
        loop {
            let a = Access::open(cli)?;
            match look(&a) {
                Ok(v) => return Ok((a, v)),
                Err(Miss::Fail(f)) => return Err(f),
                Err(Miss::Gone(why)) => {
                    if Instant::now() >= deadline {
                        let pid = match &a {
                            Access::Remote { pid, .. } => pid.as_str(),
                            _ => "?",
                        };
                        return Err(Fail::env(format!(
                            "error: tuna process {pid} holds the store but has not answered for {} s: {why}",
                            OWNER_GRACE.as_secs()
                        )));
                    }
                    if !told {
                        tracing::debug!("the store's owner did not answer ({why}); trying again");
                        told = true;
                    }
                    drop(a);
                    std::thread::sleep(RETRY);
                }
            }
        }
    }

    /// Asks the owner (only for [`Access::Remote`]); its refusals are `refused`'s failures.
    pub(super) fn ask(&self, req: &Request, refused: fn(String) -> Fail) -> Result<Value, Miss> {
        let Access::Remote { socket, .. } = self else {
            unreachable!("only the owner is asked");
        };
        request(socket, req).map_err(|e| match e {
            AskError::Unreachable(m) => Miss::Gone(m),
            AskError::Refused(m) => Miss::Fail(refused(m)),
        })
    }

    /// Every run, oldest first.
    pub(super) fn summaries(&self) -> Result<Vec<RunSummary>, Miss> {
        match self {
            Access::Local(s) => Ok(RunSummary::list(s)?),
            Access::Remote { .. } => {
                let v = self.ask(&Request::Runs, |m| Fail::env(format!("error: {m}")))?;
                Ok(serde_json::from_value(v).map_err(|e| Fail::env(e.to_string()))?)
            }
            Access::Server(c) => {
                let mut list: Vec<RunSummary> = serde_json::from_value(c.get("/api/v1/runs")?)
                    .map_err(|e| Fail::env(e.to_string()))?;
                list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
                Ok(list)
            }
        }
    }

    /// One run (`last`: the newest).
    pub(super) fn view(&self, run: &str) -> Result<RunView, Miss> {
        let run = if run == "last" {
            self.summaries()?
                .into_iter()
                .max_by(|x, y| x.created_at.cmp(&y.created_at).then(x.id.cmp(&y.id)))
                .ok_or_else(|| Fail::invalid("error: there are no runs"))?
                .id
        } else {
            run.to_string()
        };
        match self {
            Access::Local(s) => Ok(RunView::load(s, &run)?
                .ok_or_else(|| Fail::invalid(format!("error: run `{run}` not found")))?),
            Access::Remote { .. } => {
                let v = self.ask(&Request::Status { run }, |m| {
                    Fail::invalid(format!("error: {m}"))
                })?;
                Ok(serde_json::from_value(v).map_err(|e| Fail::env(e.to_string()))?)
            }
            Access::Server(c) => {
                if !crate::daemon::valid_run_id(&run) {
                    return Err(Fail::invalid(format!("error: `{run}` is not a run id")).into());
                }
                Ok(
                    serde_json::from_value(c.get(&format!("/api/v1/runs/{run}"))?)
                        .map_err(|e| Fail::env(e.to_string()))?,
                )
            }
        }
    }
}

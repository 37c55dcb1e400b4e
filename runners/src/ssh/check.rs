//! `check`: open a fresh connection to the host and look for its GPUs.

use super::config::SshConfig;
use super::conn::{Conn, OpError};
use crate::{CheckProblem, FoundGpu, RunnerInfo};

/// Connects (host key, login, runner folder) and asks `nvidia-smi` for the GPUs.
pub(crate) fn check(cfg: &SshConfig) -> RunnerInfo {
    let conn = match Conn::open(cfg) {
        Ok(c) => c,
        Err(e) => {
            return RunnerInfo {
                reachable: false,
                detail: e.to_string(),
                problem: Some(e.problem()),
                gpus_found: Vec::new(),
            };
        }
    };
    let query = "command -v nvidia-smi >/dev/null 2>&1 && \
                 nvidia-smi --query-gpu=name,memory.total --format=csv,noheader";
    match conn.exec(query) {
        Ok(out) => {
            let gpus = parse_gpus(&out.stdout);
            let found = if out.code != 0 && gpus.is_empty() {
                "no nvidia-smi".to_owned()
            } else {
                format!("{} GPU(s) found", gpus.len())
            };
            RunnerInfo {
                reachable: true,
                detail: format!(
                    "{}@{}: reachable, workdir {}; {found}",
                    cfg.user,
                    cfg.host_entry(),
                    cfg.workdir
                ),
                problem: None,
                gpus_found: gpus,
            }
        }
        Err(OpError::Conn(m) | OpError::Fatal(m)) => RunnerInfo {
            reachable: false,
            detail: format!("{}: connected, then: {m}", cfg.host_entry()),
            problem: Some(CheckProblem::Unreachable),
            gpus_found: Vec::new(),
        },
    }
}

/// `NVIDIA A100-SXM4-40GB, 40960 MiB` lines.
pub(crate) fn parse_gpus(csv: &str) -> Vec<FoundGpu> {
    csv.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("name"))
        .map(|line| {
            let (name, mem) = line.rsplit_once(',').unwrap_or((line, ""));
            FoundGpu {
                name: name.trim().to_owned(),
                memory_mib: mem.trim().trim_end_matches("MiB").trim().parse().ok(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_gpus;

    #[test]
    fn reads_nvidia_smi_csv() {
        let gpus = parse_gpus("NVIDIA A100-SXM4-40GB, 40960 MiB\nTesla T4, 15360 MiB\n");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA A100-SXM4-40GB");
        assert_eq!(gpus[0].memory_mib, Some(40960));
        assert_eq!(gpus[1].name, "Tesla T4");
    }
}

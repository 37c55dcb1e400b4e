//! `tuna pull RUN STEP [--to DIR]`: a step's outputs copied into a folder here.

use std::path::{Path, PathBuf};

use super::args::Cli;
use super::exit::{Fail, OK};

pub fn pull(cli: &Cli, run: &str, step: &str, to: Option<&Path>, json: bool) -> Result<u8, Fail> {
    let engine = super::open::open_engine(cli, true)?;
    let run = if run == "last" {
        engine
            .last_run()?
            .ok_or_else(|| Fail::invalid("error: there are no runs"))?
            .id
    } else {
        run.to_string()
    };
    let dir = to.map_or_else(
        || PathBuf::from(format!("{step}-outputs")),
        Path::to_path_buf,
    );
    let pulled = engine.pull(&run, step, &dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&pulled).expect("json"));
        return Ok(OK);
    }
    if pulled.is_empty() {
        println!("step `{step}` of run {run} has no outputs");
    }
    for p in &pulled {
        println!(
            "{}  {} bytes  from {}",
            p.path.display(),
            p.bytes,
            p.location
        );
    }
    Ok(OK)
}

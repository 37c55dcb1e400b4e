//! Commands that read workflow files without running them: validate, graph, plan, schema.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::args::{Cli, GraphFormat};
use super::exit::{Fail, INVALID, OK};
use crate::dag::{Dag, GraphFormat as Format};

/// Loads a workflow or fails with its diagnostics (exit 2).
pub fn load(file: &Path) -> Result<(Dag, String), Fail> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Fail::invalid(format!("error: {}: {e}", file.display())))?;
    match crate::dag::load_str(file, &text) {
        Ok(dag) => Ok((dag, text)),
        Err(e) => Err(Fail::invalid(e.render_plain())),
    }
}

pub fn validate(files: &[PathBuf]) -> Result<u8, Fail> {
    let mut code = OK;
    for f in files {
        match load(f) {
            Ok((dag, _)) => println!(
                "ok: {} ({} step{})",
                f.display(),
                dag.len(),
                if dag.len() == 1 { "" } else { "s" }
            ),
            Err(fail) => {
                eprintln!("{}", fail.message);
                code = INVALID;
            }
        }
    }
    Ok(code)
}

pub fn graph(file: &Path, format: GraphFormat) -> Result<u8, Fail> {
    let (dag, _) = load(file)?;
    let f = match format {
        GraphFormat::Ascii => Format::Ascii,
        GraphFormat::Dot => Format::Dot,
        GraphFormat::Mermaid => Format::Mermaid,
    };
    print!("{}", dag.render(f));
    Ok(OK)
}

pub fn plan(
    cli: &Cli,
    file: &Path,
    params: &[(String, String)],
    no_cache: bool,
    json: bool,
) -> Result<u8, Fail> {
    let (dag, _) = load(file)?;
    let engine = super::open::open_engine(cli, true)?;
    let overrides: BTreeMap<String, String> = params.iter().cloned().collect();
    let rows = engine.plan(&dag, &overrides, no_cache)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        return Ok(OK);
    }
    let width = rows.iter().map(|r| r.step.len()).max().unwrap_or(4).max(4);
    for r in &rows {
        if r.hit {
            println!("{:width$}  hit", r.step);
        } else {
            println!("{:width$}  run   {}", r.step, r.reasons.join("; "));
        }
    }
    let hits = rows.iter().filter(|r| r.hit).count();
    println!(
        "{} of {} steps cached, {} to run",
        hits,
        rows.len(),
        rows.len() - hits
    );
    Ok(OK)
}

pub fn schema() -> Result<u8, Fail> {
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::workflow::json_schema()).expect("json")
    );
    Ok(OK)
}

//! `tuna-ml`: the part of tuna that links libtorch (feature `torch`). `tuna` hands over to it
//! for built-in kinds that need libtorch (`tuna-ml exec-step`, inside a step's runner) and for
//! the model server (`tuna-ml serve-model`, also reached as `tuna serve-model`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tuna_steps::ml::serve::{ServedModel, serve};
use tuna_steps::settings::ServeModelArgs;

/// The part of tuna that links libtorch.
#[derive(Parser)]
#[command(name = "tuna-ml", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the built-in step described by the environment tuna sets (TUNA_STEP_KIND, ...).
    ExecStep,
    /// Serve a model over HELM's HTTP model API (POST /process, /tokenize, /decode).
    ServeModel(ServeModelArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::ExecStep => tuna_steps::execute_from_env().map_err(|e| e.to_string()),
        Command::ServeModel(a) => serve_model(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve_model(a: &ServeModelArgs) -> Result<(), String> {
    let device = a.device_spec().resolve()?;
    let model = ServedModel::load(&a.model, a.adapter.as_deref(), a.dtype, device)
        .map_err(|e| e.to_string())?;
    let listen = a.address();
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("listening on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let url = format!("http://{addr}");
        println!("serving {} on {url}", a.model.display());
        if let Some(f) = &a.ready_file {
            // Written whole, then renamed: a reader never sees half a URL.
            let tmp = f.with_extension("tmp");
            std::fs::write(&tmp, &url)
                .and_then(|()| std::fs::rename(&tmp, f))
                .map_err(|e| format!("{}: {e}", f.display()))?;
        }
        let stop = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        serve(model, listener, stop)
            .await
            .map_err(|e| e.to_string())
    })
}

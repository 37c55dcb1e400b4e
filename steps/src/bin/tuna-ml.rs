//! `tuna-ml`: the part of tuna that links libtorch (feature `torch`). `tuna` hands over to it
//! for built-in kinds that need libtorch (`tuna-ml exec-step`, inside a step's runner) and for
//! the model server (`tuna-ml serve-model`, also reached as `tuna serve-model`).

use std::path::PathBuf;
use std::process::ExitCode;

use tuna_steps::ml::serve::{Engine, serve};
use tuna_steps::settings::{DType, DeviceSpec};

const USAGE: &str = "usage:
  tuna-ml exec-step
      run the built-in step described by the environment tuna sets (TUNA_STEP_KIND, ...)
  tuna-ml serve-model --model DIR [--adapter DIR] [--listen ADDR] [--dtype fp32|bf16]
                      [--device auto|cpu|cuda|cuda:N] [--ready-file PATH]
      serve a Hugging Face model folder (and a PEFT adapter) over HELM's HTTP model API:
      POST /process, /tokenize, /decode. --listen defaults to 127.0.0.1:8080 (port 0: any
      free port); the address is printed, and written to --ready-file once listening.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("exec-step") => tuna_steps::execute_from_env().map_err(|e| e.to_string()),
        Some("serve-model") => serve_model(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some("-V" | "--version") => {
            println!("tuna-ml {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        _ => Err(format!("unknown command\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct ServeArgs {
    model: PathBuf,
    adapter: Option<PathBuf>,
    listen: String,
    dtype: DType,
    device: DeviceSpec,
    ready_file: Option<PathBuf>,
}

fn parse_serve(args: &[String]) -> Result<ServeArgs, String> {
    let mut a = ServeArgs {
        model: PathBuf::new(),
        adapter: None,
        listen: "127.0.0.1:8080".into(),
        dtype: DType::F32,
        device: DeviceSpec("auto".into()),
        ready_file: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--model" => a.model = value()?.into(),
            "--adapter" => a.adapter = Some(value()?.into()),
            "--listen" => a.listen = value()?,
            "--port" => a.listen = format!("127.0.0.1:{}", value()?),
            "--dtype" => {
                let v = value()?;
                a.dtype = serde_json::from_value(serde_json::Value::String(v.clone()))
                    .map_err(|_| format!("--dtype {v}: write fp32 or bf16"))?;
            }
            "--device" => a.device = DeviceSpec(value()?),
            "--ready-file" => a.ready_file = Some(value()?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if a.model.as_os_str().is_empty() {
        return Err(format!("--model DIR is required\n{USAGE}"));
    }
    Ok(a)
}

fn serve_model(args: &[String]) -> Result<(), String> {
    let a = parse_serve(args)?;
    let device = a.device.resolve()?;
    let engine =
        Engine::load(&a.model, a.adapter.as_deref(), a.dtype, device).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .map_err(|e| format!("listening on {}: {e}", a.listen))?;
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
        serve(engine, listener, stop)
            .await
            .map_err(|e| e.to_string())
    })
}

//! The model server's command-line flags, defined once: `tuna-ml serve-model` parses them and
//! `tuna serve-model` shows the same help and hands them over.

use std::path::PathBuf;

use super::precision::{DType, DeviceSpec};

/// Serve a Hugging Face model folder (and a PEFT adapter) over HELM's HTTP model API:
/// POST /process, /tokenize, /decode.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ServeModelArgs {
    /// The model folder (config.json, safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// A PEFT adapter folder to apply to the model.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Address to listen on (port 0: any free port); the address is printed.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Listen on 127.0.0.1 at this port (instead of --listen).
    #[arg(long, conflicts_with = "listen")]
    pub port: Option<u16>,
    /// Precision of the weights: fp32 or bf16.
    #[arg(long, default_value = "fp32", value_parser = parse_dtype)]
    pub dtype: DType,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Written with the server's URL once it listens (whole, then renamed).
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

impl ServeModelArgs {
    /// The address to bind.
    pub fn address(&self) -> String {
        match self.port {
            Some(p) => format!("127.0.0.1:{p}"),
            None => self.listen.clone(),
        }
    }

    /// Where tensors go, as written.
    pub fn device_spec(&self) -> DeviceSpec {
        DeviceSpec(self.device.clone())
    }

    /// The flags again, for handing them to `tuna-ml serve-model`.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec!["--model".to_string(), self.model.display().to_string()];
        if let Some(d) = &self.adapter {
            a.extend(["--adapter".into(), d.display().to_string()]);
        }
        a.extend(["--listen".into(), self.address()]);
        let dtype = serde_json::to_value(self.dtype).expect("dtype serializes");
        a.extend([
            "--dtype".into(),
            dtype.as_str().unwrap_or("fp32").to_string(),
        ]);
        a.extend(["--device".into(), self.device.clone()]);
        if let Some(f) = &self.ready_file {
            a.extend(["--ready-file".into(), f.display().to_string()]);
        }
        a
    }
}

fn parse_dtype(v: &str) -> Result<DType, String> {
    serde_json::from_value(serde_json::Value::String(v.to_string()))
        .map_err(|_| format!("`{v}`: write fp32 or bf16"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServeModelArgs,
    }

    fn parse(argv: &[&str]) -> Result<ServeModelArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn flags_parse_and_hand_over_unchanged() {
        let a = parse(&["--model", "m", "--port", "9", "--dtype", "bfloat16"]).unwrap();
        assert_eq!(a.address(), "127.0.0.1:9");
        assert_eq!(a.dtype, DType::Bf16);
        assert_eq!(
            parse(&a.to_args().iter().map(String::as_str).collect::<Vec<_>>())
                .unwrap()
                .address(),
            "127.0.0.1:9"
        );
        assert!(parse(&["--adapter", "a"]).is_err(), "--model is required");
        let e = parse(&["--model", "m", "--dtype", "fp8"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("write fp32 or bf16"), "{e}");
        assert!(parse(&["--model", "m", "--port", "1", "--listen", "0.0.0.0:1"]).is_err());
    }
}

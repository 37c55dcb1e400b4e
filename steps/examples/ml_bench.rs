//! Benchmark and device-check driver for the native ML core (feature `torch`).
//!
//! ```text
//! ml_bench make-model --size tiny|bench|350m --out DIR [--seed N]
//! ml_bench make-data  --out FILE [--examples N] [--prompt-words P] [--completion-words C]
//! ml_bench train      --model DIR --data FILE --out DIR [--steps N] [--batch B] [--seq L]
//!                     [--dtype fp32|bf16] [--quantize none|nf4] [--device cpu|cuda] [--threads T]
//!                     [--epochs E]     # --steps all: the whole schedule (E epochs of the data)
//! ml_bench weights    --model DIR          # bf16 vs NF4 bytes of the linear weights
//! ml_bench cuda-check --model DIR          # CPU vs CUDA logits, NF4 on CUDA, a short CUDA run
//! ml_bench parity     --fixtures DIR [--device cpu|cuda]   # logits against transformers' references
//! ```
//! Models are random OPTs written as Hugging Face folders (config.json, model.safetensors and a
//! word-level tokenizer.json over the words `w0 … wN`), loadable by transformers too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use tch::{Device, Kind, Tensor};
use tuna_steps::ml::finetune::{FinetuneConfig, Quantize, finetune};
use tuna_steps::ml::{
    DType, DeviceSpec, LoraConfig, Mode, Nf4Tensor, load_causal_lm, quantize_nf4,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Words of the benchmark tokenizer (besides 4 special tokens).
const WORDS: usize = 2000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!(
            "usage: ml_bench make-model|make-data|train|weights|cuda-check|parity [--key value ...]"
        );
        std::process::exit(2);
    };
    let opts = Opts::parse(&args[1..]);
    let result = match cmd.as_str() {
        "make-model" => make_model(&opts),
        "make-data" => make_data(&opts),
        "train" => train(&opts),
        "weights" => weights(&opts),
        "cuda-check" => cuda_check(&opts),
        "parity" => parity(&opts),
        other => Err(format!("unknown command {other}").into()),
    };
    if let Err(e) = result {
        eprintln!("ml_bench {cmd}: {e}");
        std::process::exit(1);
    }
}

struct Opts(BTreeMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Self {
        let mut m = BTreeMap::new();
        for pair in args.chunks(2) {
            let key = pair[0].trim_start_matches("--").to_string();
            m.insert(key, pair.get(1).cloned().unwrap_or_default());
        }
        Opts(m)
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn req(&self, k: &str) -> Res<&str> {
        self.get(k)
            .ok_or_else(|| format!("--{k} is required").into())
    }
    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Res<T> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{k} {v} is not a number").into()),
        }
    }
}

struct Size {
    layers: i64,
    hidden: i64,
    ffn: i64,
    heads: i64,
    proj: i64,
    pre_ln: bool,
    vocab: i64,
}

fn size(name: &str) -> Res<Size> {
    Ok(match name {
        "tiny" => Size {
            layers: 2,
            hidden: 64,
            ffn: 256,
            heads: 4,
            proj: 64,
            pre_ln: true,
            vocab: 2048,
        },
        // 6 layers × 512 hidden with OPT's real vocabulary.
        "bench" => Size {
            layers: 6,
            hidden: 512,
            ffn: 2048,
            heads: 8,
            proj: 512,
            pre_ln: true,
            vocab: 50272,
        },
        // OPT-350m's shapes: post-LN, 512-wide embeddings projected to 1024.
        "350m" => Size {
            layers: 24,
            hidden: 1024,
            ffn: 4096,
            heads: 16,
            proj: 512,
            pre_ln: false,
            vocab: 50272,
        },
        other => return Err(format!("--size {other}: tiny, bench or 350m").into()),
    })
}

fn make_model(o: &Opts) -> Res<()> {
    let s = size(o.get("size").unwrap_or("tiny"))?;
    let out = PathBuf::from(o.req("out")?);
    std::fs::create_dir_all(&out)?;
    tch::manual_seed(o.num("seed", 0i64)?);
    let max_pos = 2048;
    let mut t: Vec<(String, Tensor)> = Vec::new();
    let randn = |shape: &[i64]| Tensor::randn(shape, (Kind::Float, Device::Cpu)) * 0.02;
    let p = "model.decoder";
    t.push((
        format!("{p}.embed_tokens.weight"),
        randn(&[s.vocab, s.proj]),
    ));
    t.push((
        format!("{p}.embed_positions.weight"),
        randn(&[max_pos + 2, s.hidden]),
    ));
    if s.proj != s.hidden {
        t.push((format!("{p}.project_in.weight"), randn(&[s.hidden, s.proj])));
        t.push((
            format!("{p}.project_out.weight"),
            randn(&[s.proj, s.hidden]),
        ));
    }
    let ln = |t: &mut Vec<(String, Tensor)>, name: String, h: i64| {
        t.push((
            format!("{name}.weight"),
            Tensor::ones([h], (Kind::Float, Device::Cpu)),
        ));
        t.push((
            format!("{name}.bias"),
            Tensor::zeros([h], (Kind::Float, Device::Cpu)),
        ));
    };
    for i in 0..s.layers {
        let l = format!("{p}.layers.{i}");
        for m in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            t.push((
                format!("{l}.self_attn.{m}.weight"),
                randn(&[s.hidden, s.hidden]),
            ));
            t.push((
                format!("{l}.self_attn.{m}.bias"),
                Tensor::zeros([s.hidden], (Kind::Float, Device::Cpu)),
            ));
        }
        t.push((format!("{l}.fc1.weight"), randn(&[s.ffn, s.hidden])));
        t.push((
            format!("{l}.fc1.bias"),
            Tensor::zeros([s.ffn], (Kind::Float, Device::Cpu)),
        ));
        t.push((format!("{l}.fc2.weight"), randn(&[s.hidden, s.ffn])));
        t.push((
            format!("{l}.fc2.bias"),
            Tensor::zeros([s.hidden], (Kind::Float, Device::Cpu)),
        ));
        ln(&mut t, format!("{l}.self_attn_layer_norm"), s.hidden);
        ln(&mut t, format!("{l}.final_layer_norm"), s.hidden);
    }
    if s.pre_ln {
        ln(&mut t, format!("{p}.final_layer_norm"), s.hidden);
    }
    Tensor::write_safetensors(&t, out.join("model.safetensors"))?;
    let config = json!({
        "model_type": "opt", "architectures": ["OPTForCausalLM"], "vocab_size": s.vocab,
        "hidden_size": s.hidden, "num_hidden_layers": s.layers, "ffn_dim": s.ffn,
        "num_attention_heads": s.heads, "max_position_embeddings": max_pos,
        "word_embed_proj_dim": s.proj, "do_layer_norm_before": s.pre_ln, "dropout": 0.1,
        "attention_dropout": 0.0, "activation_function": "relu", "enable_bias": true,
        "layer_norm_elementwise_affine": true, "pad_token_id": 1, "bos_token_id": 2,
        "eos_token_id": 2, "tie_word_embeddings": true, "torch_dtype": "float32",
    });
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    std::fs::write(
        out.join("tokenizer.json"),
        serde_json::to_string(&word_tokenizer())?,
    )?;
    println!(
        "{}",
        json!({"model": out, "params": t.iter().map(|(_, x)| x.numel()).sum::<usize>()})
    );
    Ok(())
}

/// A word-level tokenizer over `w0 … w{WORDS-1}`, OPT's special ids, `</s>` prepended.
fn word_tokenizer() -> serde_json::Value {
    let specials = ["<s>", "<pad>", "</s>", "<unk>"];
    let mut vocab = serde_json::Map::new();
    for (i, s) in specials.iter().enumerate() {
        vocab.insert(s.to_string(), json!(i));
    }
    for i in 0..WORDS {
        vocab.insert(format!("w{i}"), json!(i + specials.len()));
    }
    let added: Vec<_> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
}

fn make_data(o: &Opts) -> Res<()> {
    let out = PathBuf::from(o.req("out")?);
    let n: usize = o.num("examples", 256)?;
    let pw: usize = o.num("prompt-words", 32)?;
    let cw: usize = o.num("completion-words", 96)?;
    let mut state: u64 = o.num("seed", 1)?;
    let mut word = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        format!("w{}", (state >> 33) as usize % WORDS)
    };
    let mut lines = String::new();
    for _ in 0..n {
        let prompt: Vec<String> = (0..pw).map(|_| word()).collect();
        let completion: Vec<String> = (0..cw).map(|_| word()).collect();
        lines += &json!({"prompt": prompt.join(" "), "completion": format!(" {}", completion.join(" "))}).to_string();
        lines.push('\n');
    }
    std::fs::write(&out, lines)?;
    Ok(())
}

fn train(o: &Opts) -> Res<()> {
    let cfg = FinetuneConfig {
        lora: LoraConfig {
            r: o.num("r", 8)?,
            alpha: o.num("alpha", 16.0)?,
            dropout: o.num("lora-dropout", 0.05)?,
            targets: o
                .get("targets")
                .map(|t| t.split(',').map(str::to_string).collect()),
        },
        dtype: match o.get("dtype").unwrap_or("fp32") {
            "bf16" => DType::Bf16,
            _ => DType::F32,
        },
        quantize: if o.get("quantize") == Some("nf4") {
            Quantize::Nf4
        } else {
            Quantize::None
        },
        double_quant: o.get("quantize") == Some("nf4"),
        device: DeviceSpec(o.get("device").unwrap_or("cpu").to_string()),
        learning_rate: o.num("lr", 2e-4)?,
        batch_size: o.num("batch", 8)?,
        max_seq_len: o.num("seq", 128)?,
        max_steps: match o.get("steps") {
            Some("all") => None,
            _ => Some(o.num("steps", 10)?),
        },
        epochs: o.num("epochs", 1)?,
        threads: o.get("threads").map(str::parse).transpose()?,
        ..FinetuneConfig::default()
    };
    let model = Path::new(o.req("model")?);
    let out = Path::new(o.req("out")?);
    let _ = std::fs::remove_dir_all(out);
    let m = finetune(&cfg, model, Path::new(o.req("data")?), out)?;
    println!(
        "{}",
        json!({
            "impl": "tuna", "tokens_per_s": m.tokens_per_s, "peak_memory_bytes": m.peak_memory_bytes,
            "memory_kind": m.memory_kind, "loss_first": m.loss_first, "loss_last": m.loss_last,
            "steps": m.steps, "trainable_params": m.trainable_params, "base_linear_bytes": m.base_linear_bytes,
            "train_seconds": m.train_seconds, "step_seconds": m.step_seconds, "tokens_trained": m.tokens_trained,
            "projected_hours": m.projected_hours,
        })
    );
    Ok(())
}

fn weights(o: &Opts) -> Res<()> {
    let dir = Path::new(o.req("model")?);
    let mut model = load_causal_lm(dir, DType::Bf16, Device::Cpu)?;
    let all_bf16: u64 = model
        .state_dict()
        .iter()
        .map(|(_, t)| (t.numel() * 2) as u64)
        .sum();
    let (linear_bf16, nf4) = quantize_nf4(model.as_mut(), false);
    let mut model = load_causal_lm(dir, DType::Bf16, Device::Cpu)?;
    let (_, nf4_dq) = quantize_nf4(model.as_mut(), true);
    let rest = all_bf16 - linear_bf16;
    println!(
        "{}",
        json!({
            "linear_bf16_bytes": linear_bf16, "linear_nf4_bytes": nf4, "linear_nf4_double_quant_bytes": nf4_dq,
            "linear_ratio": nf4 as f64 / linear_bf16 as f64, "linear_ratio_double_quant": nf4_dq as f64 / linear_bf16 as f64,
            "model_bf16_bytes": all_bf16, "model_nf4_bytes": rest + nf4_dq,
            "model_ratio": (rest + nf4_dq) as f64 / all_bf16 as f64,
        })
    );
    Ok(())
}

fn check(name: &str, ok: bool, detail: String) -> bool {
    println!("{} {name}: {detail}", if ok { "PASS" } else { "FAIL" });
    ok
}

fn cuda_check(o: &Opts) -> Res<()> {
    let dir = Path::new(o.req("model")?);
    let mut ok = check(
        "cuda available",
        tch::Cuda::is_available(),
        format!("{} device(s)", tch::Cuda::device_count()),
    );
    if !ok {
        return Err(
            "libtorch sees no CUDA device (is libtorch_cuda linked? see steps/build.rs)".into(),
        );
    }
    let gpu = Device::Cuda(0);
    let ids = Tensor::arange_start(4, 68, (Kind::Int64, Device::Cpu)).view([2, 32]);
    let cpu_model = load_causal_lm(dir, DType::F32, Device::Cpu)?;
    let gpu_model = load_causal_lm(dir, DType::F32, gpu)?;
    let a = tch::no_grad(|| cpu_model.forward(&ids, None, Mode::Eval));
    let b = tch::no_grad(|| gpu_model.forward(&ids.to_device(gpu), None, Mode::Eval))
        .to_device(Device::Cpu);
    let d = (&a - &b).abs().max().double_value(&[]);
    ok &= check(
        "fp32 logits cuda == cpu",
        d <= 1e-3,
        format!("max |Δ| = {d:.3e}"),
    );
    let w = Tensor::randn([1024, 1024], (Kind::Float, Device::Cpu));
    let q_cpu = Nf4Tensor::quantize(&w, true).dequantize(Kind::Float);
    let q_gpu = Nf4Tensor::quantize(&w.to_device(gpu), true)
        .dequantize(Kind::Float)
        .to_device(Device::Cpu);
    let d = (&q_cpu - &q_gpu).abs().max().double_value(&[]);
    ok &= check("nf4 cuda == cpu", d <= 1e-5, format!("max |Δ| = {d:.3e}"));
    if !ok {
        return Err("CUDA check failed".into());
    }
    Ok(())
}

/// Every tiny model of `--fixtures` (folders with transformers' `reference.safetensors`, made by
/// steps/tests/fixtures/make_tiny_*.py) on `--device`: one JSON line per model and dtype with
/// the largest logit difference and its bound (fp32: 1e-4; bf16: 5 % of the largest reference
/// logit, as the tests ask). Fails when any is over.
fn parity(o: &Opts) -> Res<()> {
    let device = DeviceSpec(o.get("device").unwrap_or("cpu").to_string()).resolve()?;
    let mut names: Vec<PathBuf> = std::fs::read_dir(o.req("fixtures")?)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("reference.safetensors").is_file())
        .collect();
    names.sort();
    let mut over = 0;
    for dir in &names {
        let r: BTreeMap<String, Tensor> =
            Tensor::read_safetensors(dir.join("reference.safetensors"))?
                .into_iter()
                .collect();
        let (ids, mask, want) = (&r["input_ids"], &r["attention_mask"], &r["logits"]);
        let scale = want.abs().max().double_value(&[]);
        for (dtype, name, bound) in [
            (DType::F32, "fp32", 1e-4),
            (DType::Bf16, "bf16", 0.05 * scale),
        ] {
            let model = load_causal_lm(dir, dtype, device)?;
            let got = tch::no_grad(|| {
                model.forward(
                    &ids.to_device(device),
                    Some(&mask.to_device(device)),
                    Mode::Eval,
                )
            })
            .to_device(Device::Cpu)
            .to_kind(Kind::Double);
            let keep = mask.to_kind(Kind::Bool).unsqueeze(-1).expand_as(&got);
            let d = (got.masked_select(&keep) - want.to_kind(Kind::Double).masked_select(&keep))
                .abs()
                .max()
                .double_value(&[]);
            over += usize::from(d > bound);
            println!(
                "{}",
                json!({"model": dir.file_name().map(|n| n.to_string_lossy()), "dtype": name,
                       "device": format!("{device:?}").to_ascii_lowercase(),
                       "max_abs_diff": d, "bound": bound, "pass": d <= bound})
            );
        }
    }
    match (names.len(), over) {
        (0, _) => Err("no fixtures with reference.safetensors".into()),
        (_, 0) => Ok(()),
        (_, n) => Err(format!("{n} comparison(s) over their bound").into()),
    }
}

//! Text generation for the model server: greedy decoding at temperature 0, otherwise sampling
//! with temperature, top-k and top-p from a seeded, process-independent random stream; stop
//! sequences; per-token log-probabilities and top alternatives; prompt echo for scoring.
//! Each new token re-runs the model over the whole sequence (no key/value cache yet).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::api::{
    DecodeRequest, DecodeResponse, ProcessRequest, ProcessResponse, TokenOut, TokenizeRequest,
    TokenizeResponse,
};
use crate::ml::causal_lm::CausalLm;
use crate::ml::dtype::DType;
use crate::ml::error::MlResult;
use crate::ml::loader::load_causal_lm;
use crate::ml::mode::{Mode, hash_uniform, mix};
use crate::ml::peft::load_adapter;
use crate::ml::tokenizer::TextTokenizer;

/// Temperatures at or below this decode greedily.
const GREEDY_BELOW: f64 = 1e-5;

/// A loaded model and its tokenizer.
pub struct ServedModel {
    model: Box<dyn CausalLm>,
    tok: TextTokenizer,
}

impl ServedModel {
    /// Loads `model_dir` (and the PEFT adapter in `adapter`, if given).
    pub fn load(
        model_dir: &Path,
        adapter: Option<&Path>,
        dtype: DType,
        device: Device,
    ) -> MlResult<Self> {
        let tok = TextTokenizer::from_model_dir(model_dir)?;
        let mut model = load_causal_lm(model_dir, dtype, device)?;
        if let Some(dir) = adapter {
            load_adapter(model.as_mut(), dir)?;
        }
        Ok(ServedModel { model, tok })
    }

    /// Longest sequence the model takes.
    pub fn max_positions(&self) -> i64 {
        self.model.info().max_positions
    }

    /// Answers `/process` (the request must have passed [`ProcessRequest::problem`]).
    pub fn process(&self, req: &ProcessRequest) -> MlResult<ProcessResponse> {
        let start = Instant::now();
        let info = self.model.info().clone();
        let mut ids = self.tok.encode(&req.prompt, true)?;
        // Keep the prompt's end when prompt + completion exceed the model's positions.
        let room = (info.max_positions - req.max_new_tokens).max(1) as usize;
        if ids.len() > room {
            ids.drain(..ids.len() - room);
        }
        let prompt_len = ids.len();
        let k = req.top_k_per_token;
        let mut tokens = Vec::new();
        let _guard = tch::no_grad_guard();

        if req.echo_prompt {
            let logp = self.log_probs(&ids);
            for (i, &id) in ids.iter().enumerate() {
                let (lp, top) = if i == 0 {
                    (0.0, BTreeMap::new())
                } else {
                    self.scored(&logp.get(i as i64 - 1), id, k)?
                };
                tokens.push(TokenOut {
                    text: self.tok.decode_token(id)?,
                    logprob: lp,
                    top_logprob: top,
                });
            }
        }

        let seed = req.seed.unwrap_or(0);
        let mut generated: Vec<i64> = Vec::new();
        let mut gen_tokens: Vec<TokenOut> = Vec::new();
        let mut text_end: Option<usize> = None;
        for step in 0..req.max_new_tokens {
            let logp = self.log_probs(&ids);
            let last = logp.get(ids.len() as i64 - 1);
            let next = self.choose(&last, req, mix(seed, step as u64));
            if Some(next) == info.eos_token_id {
                break;
            }
            let (lp, top) = self.scored(&last, next, k)?;
            ids.push(next);
            generated.push(next);
            gen_tokens.push(TokenOut {
                text: self.tok.decode_token(next)?,
                logprob: lp,
                top_logprob: top,
            });
            let text = self.tok.decode(&generated)?;
            if let Some(cut) = req
                .stop_sequences
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text_end = Some(cut);
                // Drop the tokens that reach into the stop sequence.
                while !gen_tokens.is_empty() && self.tok.decode(&generated)?.len() > cut {
                    generated.pop();
                    gen_tokens.pop();
                }
                break;
            }
        }
        let mut completion = self.tok.decode(&generated)?;
        if let Some(cut) = text_end {
            completion.truncate(cut.min(completion.len()));
        }
        tokens.extend(gen_tokens);
        let text = if req.echo_prompt {
            let prompt_text = self.tok.decode(&ids[..prompt_len])?;
            format!("{prompt_text}{completion}")
        } else {
            completion.trim().to_string()
        };
        let logprob = tokens.iter().map(|t| t.logprob).sum();
        Ok(ProcessResponse {
            text,
            tokens,
            logprob,
            request_time: start.elapsed().as_secs_f64(),
        })
    }

    /// Answers `/tokenize`.
    pub fn tokenize(&self, req: &TokenizeRequest) -> MlResult<TokenizeResponse> {
        let start = Instant::now();
        let mut tokens = self.tok.encode(&req.text, false)?;
        if let (true, Some(n)) = (req.truncation, req.max_length) {
            tokens.truncate(n);
        }
        Ok(TokenizeResponse {
            tokens,
            request_time: start.elapsed().as_secs_f64(),
        })
    }

    /// Answers `/decode`.
    pub fn decode(&self, req: &DecodeRequest) -> MlResult<DecodeResponse> {
        let start = Instant::now();
        Ok(DecodeResponse {
            text: self.tok.decode(&req.tokens)?,
            request_time: start.elapsed().as_secs_f64(),
        })
    }

    /// Whether every id is in the vocabulary.
    pub fn valid_ids(&self, ids: &[i64]) -> bool {
        let v = self.model.info().vocab_size;
        ids.iter().all(|&i| (0..v).contains(&i))
    }

    /// Log-softmax over the vocabulary at every position of `ids`: `[seq, vocab]`, f32, CPU.
    fn log_probs(&self, ids: &[i64]) -> Tensor {
        let device = self.model.info().device;
        let input = Tensor::from_slice(ids).view([1, -1]).to_device(device);
        let logits = self.model.forward(&input, None, Mode::Eval);
        logits
            .get(0)
            .to_kind(Kind::Float)
            .log_softmax(-1, Kind::Float)
            .to_device(Device::Cpu)
    }

    /// The log-probability of `id` and the `k` best alternatives at one position.
    fn scored(&self, logp: &Tensor, id: i64, k: i64) -> MlResult<(f64, BTreeMap<String, f64>)> {
        let lp = logp.double_value(&[id]);
        let mut top = BTreeMap::new();
        if k > 0 {
            let (vals, idx) = logp.topk(k, -1, true, true);
            for j in 0..k {
                let text = self.tok.decode_token(idx.int64_value(&[j]))?;
                top.entry(text).or_insert(vals.double_value(&[j]));
            }
        }
        Ok((lp, top))
    }

    /// The next token: argmax when greedy, else a draw from the tempered, top-k/top-p
    /// filtered distribution with uniform number `mix(seed, step)`.
    fn choose(&self, logp: &Tensor, req: &ProcessRequest, key: u64) -> i64 {
        if req.temperature <= GREEDY_BELOW {
            return logp.argmax(-1, false).int64_value(&[]);
        }
        let probs = (logp / req.temperature).softmax(-1, Kind::Float);
        let (sorted, order) = probs.sort(-1, true);
        let vocab = sorted.size()[0];
        let mut keep = vocab;
        if req.top_k > 0 {
            keep = keep.min(req.top_k);
        }
        if req.top_p < 1.0 {
            // Smallest prefix whose mass reaches top_p.
            let cum = sorted.cumsum(-1, Kind::Float);
            let below = cum.lt(req.top_p).sum(Kind::Int64).int64_value(&[]);
            keep = keep.min(below + 1);
        }
        let kept = sorted.narrow(0, 0, keep);
        let cum = (kept.cumsum(-1, Kind::Float) / kept.sum(Kind::Float)).to_kind(Kind::Double);
        let u = hash_uniform(&[1], key, Device::Cpu).double_value(&[0]);
        let pick = cum.lt(u).sum(Kind::Int64).int64_value(&[]).min(keep - 1);
        order.int64_value(&[pick])
    }
}

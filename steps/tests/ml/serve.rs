//! The model server answers HELM-shaped requests over real HTTP on 127.0.0.1, and answers bad
//! ones with 4xx JSON errors.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tch::Kind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tuna_steps::ml::serve::{ServedModel, serve};
use tuna_steps::ml::{DType, Mode, TextTokenizer, load_causal_lm};

use crate::common::{device, fixtures};

pub(crate) struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> Server {
    start_on("pre_ln").await
}

/// Serves fixture `name` on a free port of 127.0.0.1.
pub(crate) async fn start_on(name: &str) -> Server {
    let dir = fixtures().join(name);
    let engine = tokio::task::spawn_blocking(move || {
        ServedModel::load(&dir, None, DType::F32, device()).unwrap()
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(engine, listener, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
    }
}

impl Server {
    pub(crate) async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }

    /// Sends a raw request; returns status and JSON body.
    async fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1;
        (
            status,
            serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}")),
        )
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, &body.to_string()).await
    }
}

pub(crate) fn helm_request(prompt: &str, max_new_tokens: i64) -> Value {
    json!({
        "prompt": prompt, "temperature": 1e-7, "num_return_sequences": 1,
        "max_new_tokens": max_new_tokens, "top_p": 1, "echo_prompt": false,
        "top_k_per_token": 3, "stop_sequences": []
    })
}

#[tokio::test]
async fn greedy_generation_matches_the_models_argmax() {
    let srv = start().await;
    let prompt = "question: what colour is the sky? answer:";
    let (status, out) = srv.post("/process", helm_request(prompt, 4)).await;
    assert_eq!(status, 200, "{out}");
    let tokens = out["tokens"].as_array().unwrap();
    assert!(!tokens.is_empty() && tokens.len() <= 4);
    for t in tokens {
        assert!(t["text"].is_string() && t["logprob"].as_f64().unwrap() <= 0.0);
        // Up to 3 alternatives (tokens that decode to the same text share an entry).
        let alts = t["top_logprob"].as_object().unwrap().len();
        assert!((1..=3).contains(&alts), "{t}");
    }
    let sum: f64 = tokens.iter().map(|t| t["logprob"].as_f64().unwrap()).sum();
    assert!((out["logprob"].as_f64().unwrap() - sum).abs() < 1e-9);
    assert!(out["request_time"].as_f64().unwrap() >= 0.0);

    // The first token is the argmax of the model's next-token distribution, with its logprob.
    let dir = fixtures().join("pre_ln");
    let tok = TextTokenizer::from_model_dir(&dir).unwrap();
    let model = load_causal_lm(&dir, DType::F32, device()).unwrap();
    let ids = tok.encode(prompt, true).unwrap();
    let input = tch::Tensor::from_slice(&ids)
        .view([1, -1])
        .to_device(device());
    let logp = tch::no_grad(|| model.forward(&input, None, Mode::Eval))
        .get(0)
        .get(ids.len() as i64 - 1)
        .log_softmax(-1, Kind::Float)
        .to_device(tch::Device::Cpu);
    let best = logp.argmax(-1, false).int64_value(&[]);
    assert_eq!(tokens[0]["text"], tok.decode_token(best).unwrap());
    assert!((tokens[0]["logprob"].as_f64().unwrap() - logp.double_value(&[best])).abs() < 1e-4);

    // Deterministic, and stripped.
    let (_, again) = srv.post("/process", helm_request(prompt, 4)).await;
    assert_eq!(again["text"], out["text"]);
    let text = out["text"].as_str().unwrap();
    assert_eq!(text, text.trim());
    srv.shutdown().await;
}

#[tokio::test]
async fn echo_prompt_scores_the_prompt_and_stop_sequences_cut() {
    let srv = start().await;
    let prompt = "the quick brown fox";
    let mut req = helm_request(prompt, 0);
    req["echo_prompt"] = json!(true);
    let (status, out) = srv.post("/process", req).await;
    assert_eq!(status, 200, "{out}");
    let dir = fixtures().join("pre_ln");
    let tok = TextTokenizer::from_model_dir(&dir).unwrap();
    let ids = tok.encode(prompt, true).unwrap();
    let tokens = out["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), ids.len());
    assert_eq!(tokens[0]["logprob"], 0.0);
    assert!(
        tokens[1..]
            .iter()
            .all(|t| t["logprob"].as_f64().unwrap() < 0.0)
    );
    assert!(out["text"].as_str().unwrap().ends_with(prompt));

    // Generate freely, then stop at the first later token whose text is new.
    let (_, free) = srv.post("/process", helm_request(prompt, 6)).await;
    let toks: Vec<String> = free["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap().to_string())
        .collect();
    let j = (1..toks.len())
        .find(|&j| {
            let t = &toks[j];
            !t.trim().is_empty()
                && !t.contains('\u{fffd}')
                && !toks[..j].concat().contains(t.as_str())
        })
        .unwrap_or_else(|| {
            panic!("this fixture's greedy continuation suits the stop test: {toks:?}")
        });
    let mut req = helm_request(prompt, 6);
    req["stop_sequences"] = json!(["never appears", toks[j]]);
    let (status, cut) = srv.post("/process", req).await;
    assert_eq!(status, 200);
    let cut_toks: Vec<&str> = cut["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        cut_toks,
        toks[..j].iter().map(String::as_str).collect::<Vec<_>>(),
        "{cut}"
    );
    let text = cut["text"].as_str().unwrap();
    assert!(!text.contains(toks[j].as_str()));
    assert!(free["text"].as_str().unwrap().starts_with(text));
    srv.shutdown().await;
}

#[tokio::test]
async fn sampling_is_seeded_and_tokenize_decode_round_trip() {
    let srv = start().await;
    let req = |seed: u64| {
        json!({"prompt": "tuna", "temperature": 1.0, "top_p": 0.9, "top_k": 50,
               "max_new_tokens": 8, "seed": seed, "top_k_per_token": 1})
    };
    let (s1, a) = srv.post("/process", req(1)).await;
    let (_, b) = srv.post("/process", req(1)).await;
    assert_eq!(s1, 200, "{a}");
    assert_eq!(a["tokens"], b["tokens"]);
    let mut differs = false;
    for seed in 2..8 {
        let (_, c) = srv.post("/process", req(seed)).await;
        differs |= c["tokens"] != a["tokens"];
    }
    assert!(differs, "different seeds give different samples");

    let (status, t) = srv
        .post(
            "/tokenize",
            json!({"text": "the quick brown fox", "truncation": false, "max_length": 10}),
        )
        .await;
    assert_eq!(status, 200);
    let ids = t["tokens"].clone();
    assert!(!ids.as_array().unwrap().is_empty());
    let (status, d) = srv.post("/decode", json!({"tokens": ids})).await;
    assert_eq!(status, 200);
    assert_eq!(d["text"], "the quick brown fox");
    let (_, t2) = srv
        .post(
            "/tokenize",
            json!({"text": "the quick brown fox", "truncation": true, "max_length": 2}),
        )
        .await;
    assert_eq!(t2["tokens"].as_array().unwrap().len(), 2);
    srv.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_4xx_json_errors_and_the_server_survives() {
    let srv = start().await;
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "POST",
            "/process",
            "{not json".into(),
            400,
            "invalid request body",
        ),
        (
            "POST",
            "/process",
            json!({"temperature": 0}).to_string(),
            400,
            "prompt",
        ),
        (
            "POST",
            "/process",
            json!({"prompt": 5}).to_string(),
            400,
            "invalid request body",
        ),
        (
            "POST",
            "/process",
            json!({"prompt": "a", "temperature": -1}).to_string(),
            400,
            "temperature",
        ),
        (
            "POST",
            "/process",
            json!({"prompt": "a", "top_p": 0}).to_string(),
            400,
            "top_p",
        ),
        (
            "POST",
            "/process",
            json!({"prompt": "a", "max_new_tokens": 100000}).to_string(),
            400,
            "max_new_tokens",
        ),
        (
            "POST",
            "/process",
            json!({"prompt": "a", "num_return_sequences": 3}).to_string(),
            400,
            "num_return_sequences",
        ),
        (
            "POST",
            "/process",
            json!({"prompt": "a", "stop_sequences": [""]}).to_string(),
            400,
            "stop_sequences",
        ),
        (
            "POST",
            "/decode",
            json!({"tokens": [999999]}).to_string(),
            400,
            "vocabulary",
        ),
        (
            "POST",
            "/tokenize",
            json!({"txt": "a"}).to_string(),
            400,
            "text",
        ),
        ("GET", "/process", String::new(), 405, "POST"),
        ("POST", "/nope", "{}".into(), 404, "no such endpoint"),
    ];
    for (method, path, body, want, says) in cases {
        let (status, out) = srv.call(method, path, &body).await;
        assert_eq!(status, want, "{method} {path} {body}: {out}");
        let msg = out["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {out}"));
        assert!(msg.contains(says), "{method} {path} {body}: {msg}");
    }
    let (status, _) = srv.post("/process", helm_request("still alive", 2)).await;
    assert_eq!(status, 200);
    srv.shutdown().await;
}

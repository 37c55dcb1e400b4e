//! Built-in step kinds (`uses:`) driven through the real binaries: a random OPT model folder
//! (`model.init`), data preparation (`data.prepare`), and LoRA/QLoRA fine-tuning (`finetune`,
//! run by `tuna-ml` against libtorch) with gates, the smoke-test projection, and a cancelled
//! run that resumes from its checkpoint.

use std::time::Duration;

use tuna_tests::{Project, tuna_ml_bin, wait_until};

/// 40 prompt/completion lines: 30 distinct, 8 exact copies, 2 near copies.
pub(crate) fn data() -> String {
    let topics = [
        "sorting",
        "recursion",
        "hashing",
        "caching",
        "paging",
        "parsing",
        "linking",
        "routing",
        "batching",
        "sharding",
    ];
    let mut out = String::new();
    for i in 0..30 {
        let t = topics[i % topics.len()];
        out.push_str(&format!(
            "{{\"prompt\": \"Explain {t} to a new colleague, example number {i}.\", \"completion\": \" {t} answer {i}: keep it short and clear.\"}}\n"
        ));
    }
    for i in 0..8 {
        let t = topics[i % topics.len()];
        out.push_str(&format!(
            "{{\"prompt\": \"Explain {t} to a new colleague, example number {i}.\", \"completion\": \" {t} answer {i}: keep it short and clear.\"}}\n"
        ));
    }
    // Same words as example 3 with different punctuation and case: a near copy, not an exact one.
    out.push_str("{\"prompt\": \"EXPLAIN caching to a new colleague; example number 3!\", \"completion\": \" caching answer 3 - keep it short and clear\"}\n");
    out.push_str("{\"prompt\": \"explain caching to a new colleague example number 3\", \"completion\": \" caching answer 3 keep it short and clear!!\"}\n");
    out
}

/// `base` (a tiny random OPT-shaped model) and `prepare` (its data), for workflows to build on.
pub(crate) const BASE: &str = r#"
  base:
    uses: model.init
    with: { corpus: data/train.jsonl, vocab_size: 400, hidden_size: 32, layers: 2, heads: 4, ffn_dim: 64, max_positions: 96 }
  prepare:
    uses: data.prepare
    with:
      input: data/train.jsonl
      tokenizer: ${{ steps.base.outputs.model/ }}
      dedup_threshold: 0.8
      val_fraction: 0.1
"#;

fn project(steps: &str) -> Project {
    let p = Project::new();
    p.file("data/train.jsonl", &data());
    write_workflow(&p, steps);
    p
}

/// The metrics of step `name` of run `id`.
fn step_metrics(p: &Project, id: &str, name: &str) -> serde_json::Value {
    p.status(id)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()["metrics"]
        .clone()
}

/// `wf.yaml`: [`BASE`] then `steps`.
fn write_workflow(p: &Project, steps: &str) {
    p.file(
        "wf.yaml",
        &format!("name: kinds\nparams:\n  lr: 1e-3\n  steps: 6\nsteps:{BASE}{steps}"),
    );
}

#[test]
fn model_init_and_data_prepare_run_cache_and_notice_changed_input() {
    let p = project("");
    let r = p.run(&["run", "wf.yaml"]).ok();
    let id = r.run_id();
    let status = p.status(&id);
    let step = |name: &str| {
        status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let m = &step("prepare")["metrics"];
    assert_eq!(m["examples_read"], 40.0, "{m}");
    assert_eq!(m["dropped_duplicates"], 8.0, "{m}");
    assert_eq!(m["dropped_near_duplicates"], 2.0, "{m}");
    assert_eq!(
        m["examples"].as_f64().unwrap() + m["val_examples"].as_f64().unwrap(),
        30.0
    );
    assert_eq!(m["val_examples"], 3.0, "{m}");
    assert!(m["tokens_max"].as_f64().unwrap() > 5.0, "{m}");
    assert!(step("base")["metrics"]["parameters"].as_f64().unwrap() > 10_000.0);

    // The outputs are real files in the run's output folders.
    let pulled = p.run(&["status", &id, "--json"]).ok();
    assert!(pulled.stdout.contains("train.jsonl"), "{}", pulled.stdout);
    let again = p.run(&["run", "wf.yaml"]).ok();
    assert!(again.stderr.contains("2 cached"), "{}", again.stderr);

    p.file(
        "data/train.jsonl",
        &(data() + "{\"prompt\": \"one more\", \"completion\": \" line\"}\n"),
    );
    let plan = p.run(&["plan", "wf.yaml"]).ok();
    assert!(
        plan.stdout
            .contains("input `with.corpus=data/train.jsonl` changed"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("upstream step `base` runs"),
        "{}",
        plan.stdout
    );
}

#[test]
fn bad_with_values_are_errors_at_their_position() {
    let p = project(
        r#"
  smoke:
    uses: finetune
    with:
      model: ${{ steps.base.outputs.model/ }}
      data: ${{ steps.prepare.outputs.train.jsonl }}
      lora: { r: 0 }
  other:
    uses: data.prepare
    with: { input: data/train.jsonl, max_tokens: 10, shuffle: true }
"#,
    );
    let r = p.run(&["validate", "wf.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("wf.yaml:22:"),
        "lora.r points at its line: {}",
        r.stderr
    );
    assert!(r.stderr.contains("lora.r"), "{}", r.stderr);
    assert!(r.stderr.contains("unknown field `shuffle`"), "{}", r.stderr);
    assert!(
        r.stderr.contains("wf.yaml:25:63"),
        "the unknown key is pointed at: {}",
        r.stderr
    );
    // Nothing ran.
    assert!(!p.home().join("runs").exists() || p.run(&["runs", "--json"]).stdout.trim() == "[]");
}

#[test]
fn finetune_smoke_projects_hours_and_gates_stop_a_run_that_cannot_fit() {
    tuna_ml_bin();
    let smoke = r#"
  smoke:
    uses: finetune
    with:
      model: ${{ steps.base.outputs.model/ }}
      data: ${{ steps.prepare.outputs.train.jsonl }}
      max_steps: ${{ params.steps }}
      learning_rate: ${{ params.lr }}
      batch_size: 4
      epochs: 3
      lora: { r: 4, alpha: 8 }
      gpu: t4
      gpu_speeds: { t4: 1.0, a100: 8.0 }
    gate: ["loss_last < loss_first", "projected_hours_a100 <= LIMIT"]
  after:
    needs: [smoke]
    run: test -f ${{ steps.smoke.outputs.adapter/ }}/adapter_model.safetensors
"#;
    let p = project(&smoke.replace("LIMIT", "24"));
    let id = p.run(&["run", "wf.yaml"]).ok().run_id();
    let smoke_m = step_metrics(&p, &id, "smoke");
    let hours = smoke_m["projected_hours"].as_f64().unwrap();
    let a100 = smoke_m["projected_hours_a100"].as_f64().unwrap();
    assert!(
        hours > 0.0 && (a100 * 8.0 - hours).abs() < 1e-9 * hours.max(1.0),
        "{smoke_m}"
    );
    assert_eq!(smoke_m["steps"], 6.0);
    assert!(smoke_m["trainable_params"].as_f64().unwrap() > 0.0);
    assert_eq!(p.step_status(&id, "after"), "passed");

    // The same run with a 24-hour budget no projection can meet: the gate fails the smoke step
    // and nothing after it runs.
    write_workflow(&p, &smoke.replace("LIMIT", "0"));
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let id = r.run_id();
    assert_eq!(p.step_status(&id, "smoke"), "failed");
    assert_eq!(p.step_status(&id, "after"), "skipped");
    let why = p.run(&["status", &id]).stdout;
    assert!(why.contains("projected_hours_a100"), "{why}");
}

#[test]
fn finetune_eval_loss_on_val_jsonl_is_listed_per_evaluation_and_gates_the_step() {
    tuna_ml_bin();
    let step = r#"
  tune:
    uses: finetune
    with:
      model: ${{ steps.base.outputs.model/ }}
      data: ${{ steps.prepare.outputs.train.jsonl }}
      eval_data: ${{ steps.prepare.outputs.val.jsonl }}
      eval_every: 2
      max_steps: 5
      learning_rate: 1e-2
      batch_size: 4
      lora: { r: 4, alpha: 8, dropout: 0.1 }
    gate: ["eval_loss < LIMIT"]
"#;
    let p = project(&step.replace("LIMIT", "100"));
    let id = p.run(&["run", "wf.yaml"]).ok().run_id();
    let m = step_metrics(&p, &id, "tune");
    let file = p
        .home()
        .join(format!("runs/{id}/tune/1/work/finetune.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    // Every 2 steps and after the last (5).
    assert_eq!(doc["eval_steps"], serde_json::json!([2, 4, 5]), "{doc}");
    let losses = doc["eval_losses"].as_array().unwrap();
    assert_eq!(losses.len(), 3, "{doc}");
    assert!(losses.iter().all(|l| l.as_f64().unwrap() > 0.0), "{doc}");
    // The final value is a step metric; the lists stay in the file.
    assert_eq!(m["eval_loss"], losses[2], "{m}");
    assert!(m.get("eval_losses").is_none(), "{m}");
    let log = p.run(&["logs", &id, "tune", "--stderr"]).stdout;
    assert_eq!(log.matches("eval-loss ").count(), 3, "{log}");
    // Its progress file ($TUNA_PROGRESS) ended at the last step, with a rate and the loss.
    let file = p.home().join(format!("runs/{id}/tune/1/progress.json"));
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(progress["done"], 5, "{progress}");
    assert_eq!(progress["total"], 5, "{progress}");
    assert_eq!(progress["unit"], "steps", "{progress}");
    assert_eq!(progress["rate_unit"], "tokens/s", "{progress}");
    assert!(progress["rate"].as_f64().unwrap() > 0.0, "{progress}");
    assert!(
        progress["message"].as_str().unwrap().starts_with("loss "),
        "{progress}"
    );

    // A limit no model meets: the gate on eval_loss fails the step.
    write_workflow(&p, &step.replace("LIMIT", "0.001"));
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let id = r.run_id();
    assert_eq!(p.step_status(&id, "tune"), "failed");
    let why = p.run(&["status", &id]).stdout;
    assert!(why.contains("eval_loss"), "{why}");

    // `eval_every` without `eval_data` is refused before anything runs.
    let without = step.replace(
        "      eval_data: ${{ steps.prepare.outputs.val.jsonl }}\n",
        "",
    );
    assert!(!without.contains("eval_data"));
    write_workflow(&p, &without);
    let r = p.run(&["validate", "wf.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("needs `eval_data`"), "{}", r.stderr);
}

#[test]
fn cancelled_qlora_run_resumes_from_its_last_checkpoint() {
    tuna_ml_bin();
    let p = project(
        r#"
  qlora:
    uses: finetune
    with:
      model: ${{ steps.base.outputs.model/ }}
      data: ${{ steps.prepare.outputs.train.jsonl }}
      max_steps: 400
      quantize: nf4
      double_quant: true
      batch_size: 2
      checkpoint_every: 2
      lora: { r: 4, alpha: 8 }
"#,
    );
    let mut child = p.spawn(&["run", "wf.yaml"]);
    let mut id = String::new();
    wait_until(Duration::from_secs(120), "a checkpoint of qlora", || {
        if id.is_empty() {
            let runs = p.run(&["runs", "--json"]).stdout;
            let v: serde_json::Value = serde_json::from_str(&runs).unwrap_or_default();
            if let Some(r) = v.as_array().and_then(|a| a.first()) {
                id = r["id"].as_str().unwrap_or_default().to_string();
            }
        }
        !id.is_empty()
            && p.run(&["logs", &id, "qlora", "--stderr"])
                .stdout
                .contains("(checkpoint)")
    });
    p.run(&["cancel", &id]).ok();
    let _ = child.wait();
    assert_eq!(p.step_status(&id, "qlora"), "cancelled");

    let r = p.run(&["resume", &id]).ok();
    assert_eq!(r.run_id(), id);
    let log = p.run(&["logs", &id, "qlora", "--stderr"]).stdout;
    let resumed: u64 = log
        .split("resumed from the checkpoint at step ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the resumed attempt says where it resumed:\n{log}"));
    assert!(resumed >= 2 && resumed.is_multiple_of(2), "{log}");
    let m = p.status(&id)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "qlora")
        .unwrap()["metrics"]
        .clone();
    assert_eq!(m["steps"], 400.0, "{m}");
    assert_eq!(m["resumed_from_step"], resumed as f64, "{m}");
    // The checkpoints are outputs too (`checkpoint_every` is set).
    let status = p.status(&id);
    let outputs = &status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "qlora")
        .unwrap()["outputs"];
    for out in ["adapter/", "checkpoints/", "finetune.json"] {
        assert!(outputs.get(out).is_some(), "{out}: {outputs}");
    }
}

#[test]
fn helm_eval_scores_a_model_served_by_tuna_serve_model() {
    tuna_ml_bin();
    let p = project(
        r#"
  export:
    run: cp -r ${{ steps.base.outputs.model/ }} "$TUNA_PROJECT_DIR/model"
"#,
    );
    p.run(&["run", "wf.yaml"]).ok();
    let mut server = p
        .tuna()
        .args(["serve-model", "--model", "model", "--listen", "127.0.0.1:0"])
        .args(["--ready-file", "server-url"])
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(60),
        "the model server to listen",
        || {
            assert!(server.try_wait().unwrap().is_none(), "serve-model exited");
            p.path("server-url").exists()
        },
    );
    let url = p.read("server-url");
    p.file(
        "eval.yaml",
        r#"
name: eval
params:
  url: ""  # given with -p
steps:
  eval:
    uses: helm.eval
    with:
      server: ${{ params.url }}
      entries: [simple_mcqa]
      max_eval_instances: 3
    gate: ["simple_mcqa_exact_match >= 0"]
"#,
    );
    let r = p.run(&["run", "eval.yaml", "-p", &format!("url={url}")]);
    let _ = server.kill();
    let _ = server.wait();
    let id = r.ok().run_id();
    let m = p.status(&id)["steps"][0]["metrics"].clone();
    let em = m["simple_mcqa_exact_match"]
        .as_f64()
        .unwrap_or_else(|| panic!("{m}"));
    assert!((0.0..=1.0).contains(&em), "{m}");
    assert!(
        m["simple_mcqa_num_prompt_tokens"].as_f64().unwrap() > 0.0,
        "{m}"
    );
}

#[test]
fn a_bad_param_for_a_kind_is_refused_before_anything_runs() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"
name: refuse
params:
  url: ""
steps:
  first:
    run: touch "$TUNA_PROJECT_DIR/first-ran"
  eval:
    needs: [first]
    uses: helm.eval
    with: { server: "${{ params.url }}" }
"#,
    );
    // An empty default is checked when a run gives the value.
    p.run(&["validate", "wf.yaml"]).ok();
    let r = p.run(&["run", "wf.yaml", "-p", "url=ftp://example"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("step `eval`: `with.server`: `ftp://example` is not an http(s) URL nor"),
        "{}",
        r.stderr
    );
    assert!(!p.path("first-ran").exists());

    // A project file named in `with` that is not there: refused before `first` runs.
    p.file(
        "wf.yaml",
        r#"
name: refuse
steps:
  first:
    run: touch "$TUNA_PROJECT_DIR/first-ran"
  prepare:
    needs: [first]
    uses: data.prepare
    with: { input: data/missing.jsonl }
"#,
    );
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`with.input` names `data/missing.jsonl`, which does not exist"),
        "{}",
        r.stderr
    );
    assert!(!p.path("first-ran").exists());
}

#[test]
fn a_served_model_is_stopped_at_the_end_and_started_again_on_resume() {
    tuna_ml_bin();
    let p = project(
        r#"
  serve:
    uses: model.serve
    with: { model: "${{ steps.base.outputs.model/ }}" }
  ask:
    run: |
      test -f "$TUNA_PROJECT_DIR/go"
      python3 -c 'import json, sys, urllib.request; url = json.load(open(sys.argv[1]))["url"]; r = urllib.request.urlopen(urllib.request.Request(url + "/tokenize", data=b"{\"text\": \"hello\"}", headers={"Content-Type": "application/json"})); print("tokens", json.load(r)["tokens"])' ${{ steps.serve.outputs.endpoint.json }}
"#,
    );
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 1, "`ask` fails until `go` exists: {}", r.stderr);
    let id = r.run_id();
    let endpoint = |attempt: u32| -> i32 {
        let text = p.read(&format!(
            ".tuna/runs/{id}/serve/{attempt}/work/endpoint.json"
        ));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["pid"].as_i64().unwrap() as i32
    };
    let first = endpoint(1);
    wait_until(Duration::from_secs(10), "the server to be stopped", || {
        !tuna_tests::alive(first)
    });
    p.file("go", "");
    p.run(&["resume", &id]).ok();
    assert_eq!(p.step_status(&id, "ask"), "passed");
    let log = p.run(&["logs", &id, "ask"]).ok().stdout;
    assert!(log.contains("tokens ["), "{log}");
    let second = endpoint(2);
    assert_ne!(first, second, "the resume started the server again");
    wait_until(
        Duration::from_secs(10),
        "the second server to be stopped",
        || !tuna_tests::alive(second),
    );
    // A service step is never a cache hit: a new run starts its own server.
    let again = p.run(&["plan", "wf.yaml"]).ok();
    assert!(
        again
            .stdout
            .lines()
            .any(|l| l.starts_with("serve") && l.contains("cache: false")),
        "{}",
        again.stdout
    );
}

#[test]
fn a_random_llama_fine_tunes_with_qlora_on_its_mlp_projections() {
    tuna_ml_bin();
    let p = Project::new();
    p.file("data/train.jsonl", &data());
    p.file(
        "wf.yaml",
        r#"
name: llama
steps:
  base:
    uses: model.init
    with: { architecture: llama, corpus: data/train.jsonl, vocab_size: 400, hidden_size: 32, layers: 2, heads: 4, kv_heads: 2, ffn_dim: 64, max_positions: 96 }
  tune:
    uses: finetune
    with:
      model: ${{ steps.base.outputs.model/ }}
      data: data/train.jsonl
      max_steps: 8
      learning_rate: 1e-2
      batch_size: 8
      quantize: nf4
    gate: ["loss_last < loss_first"]
  check:
    run: grep -q gate_proj ${{ steps.tune.outputs.adapter/ }}/adapter_config.json
"#,
    );
    let id = p.run(&["run", "wf.yaml"]).ok().run_id();
    assert_eq!(p.step_status(&id, "check"), "passed");
    p.file(
        "bad.yaml",
        "name: bad\nsteps:\n  base:\n    uses: model.init\n    with: { architecture: llama, corpus: data/train.jsonl, heads: 4, kv_heads: 3 }\n",
    );
    let r = p.run(&["validate", "bad.yaml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("must divide heads 4, found 3"),
        "{}",
        r.stderr
    );
}

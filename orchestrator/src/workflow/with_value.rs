//! A `uses:` step's `with:` mapping rendered for one run: every `${{ … }}` replaced, and a value
//! written as nothing but one `${{ params.X }}` typed the way YAML reads the param's value
//! (`lr: ${{ params.lr }}` with `lr = 2e-4` gives the number 2e-4, not the string).

use super::template::{Part, Ref, Template};

/// Renders `with` with `resolve` giving each reference's value.
pub fn render_with(
    with: &serde_yaml::Value,
    resolve: &mut dyn FnMut(&Ref) -> String,
) -> serde_json::Value {
    use serde_json::Value as J;
    use serde_yaml::Value as Y;
    match with {
        Y::String(s) if s.contains("${{") => match Template::parse(s) {
            Ok(t) => {
                let text = t.render(&mut *resolve, |v| v.to_string());
                match t.parts.as_slice() {
                    [Part::Ref(Ref::Param(_))] => typed(&text),
                    _ => J::String(text),
                }
            }
            // The loader reports malformed templates; one that slipped through stays as written.
            Err(_) => J::String(s.clone()),
        },
        Y::Sequence(items) => J::Array(items.iter().map(|i| render_with(i, resolve)).collect()),
        Y::Mapping(m) => J::Object(
            m.iter()
                .map(|(k, v)| (key_text(k), render_with(v, resolve)))
                .collect(),
        ),
        Y::Tagged(t) => render_with(&t.value, resolve),
        other => serde_json::to_value(other).unwrap_or(J::Null),
    }
}

/// The file a path key's `with` value names, its params filled in from `param` (unknown:
/// empty); `None` for a value that is not a valid template or that names a step's output
/// (whose digest counts instead). Used by the loader's check and by the engine alike.
pub fn with_path(text: &str, param: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let t = Template::parse(text).ok()?;
    if t.refs().any(|r| matches!(r, Ref::StepOutput { .. })) {
        return None;
    }
    Some(t.render(
        |r| match r {
            Ref::Param(p) => param(p).unwrap_or_default(),
            _ => String::new(),
        },
        |v| v.to_string(),
    ))
}

/// `with` as it is checked before a run has outputs: params from `param` (typed like
/// [`render_with`]), step outputs as placeholder paths `steps/STEP/OUTPUT`.
pub fn preview_with(
    with: &serde_yaml::Value,
    param: &dyn Fn(&str) -> Option<String>,
) -> serde_json::Value {
    render_with(with, &mut |r| match r {
        Ref::Param(p) => param(p).unwrap_or_default(),
        Ref::StepOutput { step, output } => format!("steps/{step}/{output}"),
        Ref::RunId => "run".into(),
        Ref::ScheduledTime => String::new(),
    })
}

fn key_text(k: &serde_yaml::Value) -> String {
    match k {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

/// A param's text as YAML reads a plain scalar: a number or a boolean when it is one, else the
/// text itself.
fn typed(text: &str) -> serde_json::Value {
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(v @ (serde_yaml::Value::Number(_) | serde_yaml::Value::Bool(_))) => {
            serde_json::to_value(v).unwrap_or_else(|_| serde_json::Value::String(text.into()))
        }
        _ => serde_json::Value::String(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::render_with;
    use crate::workflow::Ref;

    #[test]
    fn lone_params_are_typed_and_the_rest_stays_text() {
        let with: serde_yaml::Value = serde_yaml::from_str(
            "lr: ${{ params.lr }}\nname: run-${{ params.n }}\nflag: ${{ params.f }}\nmodel: ${{ params.m }}\ndata: ${{ steps.p.outputs.t.jsonl }}\nlora: {r: 8, targets: [fc1]}\n",
        )
        .unwrap();
        let mut resolve = |r: &Ref| match r {
            Ref::Param(p) if p == "lr" => "2e-4".to_string(),
            Ref::Param(p) if p == "n" => "7".to_string(),
            Ref::Param(p) if p == "f" => "true".to_string(),
            Ref::Param(_) => "models/opt".to_string(),
            _ => "/runs/r/p/out/t.jsonl".to_string(),
        };
        let v = render_with(&with, &mut resolve);
        assert_eq!(v["lr"], serde_json::json!(2e-4));
        assert_eq!(v["name"], "run-7");
        assert_eq!(v["flag"], true);
        assert_eq!(v["model"], "models/opt");
        assert_eq!(v["data"], "/runs/r/p/out/t.jsonl");
        assert_eq!(v["lora"]["r"], 8);
        assert_eq!(v["lora"]["targets"][0], "fc1");
    }
}

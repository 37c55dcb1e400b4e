//! Gate expressions: `metric OP number` or `metric OP metric`, OP one of `< <= > >= == !=`.

use super::model::{Gate, GateOp, GateOperand};

const OPS: [(&str, GateOp); 6] = [
    ("<=", GateOp::Le),
    (">=", GateOp::Ge),
    ("==", GateOp::Eq),
    ("!=", GateOp::Ne),
    ("<", GateOp::Lt),
    (">", GateOp::Gt),
];

const FORMAT_HELP: &str = "a gate compares a metric with a number or another metric, e.g. `loss_last < loss_first` or `accuracy >= 0.8`; operators: < <= > >= == !=";

/// Parses one gate; the error is `(message, help)`.
pub(crate) fn parse_gate(text: &str) -> Result<Gate, (String, String)> {
    let fail = |m: String| Err((m, FORMAT_HELP.to_string()));
    let b = text.as_bytes();
    let lone_eq = (0..b.len()).any(|i| {
        b[i] == b'=' && !(i > 0 && b"<>!=".contains(&b[i - 1])) && b.get(i + 1) != Some(&b'=')
    });
    if lone_eq {
        return fail(format!("gate `{text}`: `=` is not an operator; use `==`"));
    }
    let Some((at, sym, op)) = text.char_indices().find_map(|(i, _)| {
        OPS.iter()
            .find(|(s, _)| text[i..].starts_with(s))
            .map(|(s, op)| (i, *s, *op))
    }) else {
        return fail(format!("gate `{text}` has no comparison operator"));
    };
    let (l, r) = (text[..at].trim(), text[at + sym.len()..].trim());
    if r.contains(['<', '>', '=', '!']) {
        return fail(format!("gate `{text}` has more than one operator"));
    }
    let left = match operand(l) {
        Some(GateOperand::Metric(m)) => GateOperand::Metric(m),
        Some(GateOperand::Number(_)) => {
            return fail(format!("gate `{text}`: put the metric on the left"));
        }
        None => return fail(format!("gate `{text}`: `{l}` is not a metric name")),
    };
    let Some(right) = operand(r) else {
        return fail(format!(
            "gate `{text}`: `{r}` is neither a number nor a metric name"
        ));
    };
    Ok(Gate {
        text: text.to_string(),
        left,
        op,
        right,
    })
}

fn operand(s: &str) -> Option<GateOperand> {
    if let Ok(n) = s.parse::<f64>() {
        return n.is_finite().then_some(GateOperand::Number(n));
    }
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c));
    (first_ok && rest_ok).then(|| GateOperand::Metric(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comparisons() {
        let g = parse_gate("loss_last < loss_first").unwrap();
        assert_eq!(g.left, GateOperand::Metric("loss_last".into()));
        assert_eq!(g.op, GateOp::Lt);
        assert_eq!(g.right, GateOperand::Metric("loss_first".into()));
        let g = parse_gate("projected_hours_a100<=24").unwrap();
        assert_eq!((g.op, g.right), (GateOp::Le, GateOperand::Number(24.0)));
        assert_eq!(parse_gate("eval/acc != 0").unwrap().op, GateOp::Ne);
        assert_eq!(
            parse_gate("acc >= 1e-3").unwrap().right,
            GateOperand::Number(1e-3)
        );
    }

    #[test]
    fn refuses_malformed_gates() {
        assert!(
            parse_gate("loss")
                .unwrap_err()
                .0
                .contains("no comparison operator")
        );
        assert!(parse_gate("loss = 1").unwrap_err().0.contains("use `==`"));
        assert!(
            parse_gate("1 < loss")
                .unwrap_err()
                .0
                .contains("metric on the left")
        );
        assert!(
            parse_gate("a < b < c")
                .unwrap_err()
                .0
                .contains("more than one")
        );
        assert!(parse_gate("loss < ").unwrap_err().0.contains("neither"));
        assert!(parse_gate("loss < 3 apples").is_err());
    }
}

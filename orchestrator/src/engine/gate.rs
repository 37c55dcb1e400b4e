//! Gates: metric comparisons that must hold for a step to pass.

use std::collections::BTreeMap;

use crate::workflow::{Gate, GateOp, GateOperand};

/// `Ok` when every gate holds; else the first failure, with the values it saw.
pub fn check(gates: &[Gate], metrics: &BTreeMap<String, f64>) -> Result<(), String> {
    for g in gates {
        let value = |o: &GateOperand| -> Result<f64, String> {
            match o {
                GateOperand::Number(n) => Ok(*n),
                GateOperand::Metric(m) => metrics.get(m).copied().ok_or_else(|| {
                    format!(
                        "gate `{}`: metric `{m}` was not reported in $TUNA_METRICS",
                        g.text
                    )
                }),
            }
        };
        let (l, r) = (value(&g.left)?, value(&g.right)?);
        let holds = match g.op {
            GateOp::Lt => l < r,
            GateOp::Le => l <= r,
            GateOp::Gt => l > r,
            GateOp::Ge => l >= r,
            GateOp::Eq => l == r,
            GateOp::Ne => l != r,
        };
        if !holds {
            return Err(format!(
                "gate `{}` failed ({} = {l}, {} = {r})",
                g.text,
                show(&g.left),
                show(&g.right)
            ));
        }
    }
    Ok(())
}

fn show(o: &GateOperand) -> String {
    match o {
        GateOperand::Metric(m) => m.clone(),
        GateOperand::Number(n) => n.to_string(),
    }
}

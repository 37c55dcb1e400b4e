//! Attention masks shared by the architectures: causal, padded keys hidden, optionally limited
//! to a sliding window of recent keys.

use tch::{Device, Kind, Tensor};

/// The boolean mask (true = may attend) for causal attention over `attention_mask`
/// (`[batch, seq]`, 1 = token, 0 = padding), with keys more than `window - 1` positions back
/// hidden when a window is given. `[batch, 1, seq, seq]` with padding, `[1, 1, seq, seq]`
/// without; `None` when plain causal attention computes the same (no padding, no window shorter
/// than the sequence). A token always sees itself, so rows of padding never attend to nothing.
pub(crate) fn causal_mask(
    attention_mask: Option<&Tensor>,
    seq: i64,
    window: Option<i64>,
    device: Device,
) -> Option<Tensor> {
    let padded = attention_mask
        .map(|m| m.to_kind(Kind::Int64))
        .filter(|m| m.min().int64_value(&[]) == 0);
    let window = window.filter(|&w| w < seq);
    if padded.is_none() && window.is_none() {
        return None;
    }
    let ones = Tensor::ones([seq, seq], (Kind::Bool, device));
    let mut allowed = ones.tril(0);
    if let Some(w) = window {
        // Key j is visible from query i when i - j < w.
        allowed = allowed.logical_and(&ones.triu(1 - w));
    }
    Some(match padded {
        Some(m) => {
            let b = m.size()[0];
            let keys = m.to_kind(Kind::Bool).view([b, 1, 1, seq]);
            keys.logical_or(&Tensor::eye(seq, (Kind::Bool, device)))
                .logical_and(&allowed)
        }
        None => allowed.view([1, 1, seq, seq]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(t: &Tensor) -> Vec<Vec<i64>> {
        let t = t.to_kind(Kind::Int64);
        let n = t.size()[0];
        (0..n)
            .map(|i| Vec::<i64>::try_from(t.get(i)).unwrap())
            .collect()
    }

    #[test]
    fn no_padding_and_no_window_is_plain_causal() {
        let m = Tensor::ones([2, 5], (Kind::Int64, Device::Cpu));
        assert!(causal_mask(Some(&m), 5, None, Device::Cpu).is_none());
        assert!(causal_mask(None, 5, Some(5), Device::Cpu).is_none());
    }

    #[test]
    fn window_hides_old_keys() {
        let m = causal_mask(None, 4, Some(2), Device::Cpu).unwrap();
        assert_eq!(m.size(), [1, 1, 4, 4]);
        assert_eq!(
            rows(&m.get(0).get(0)),
            [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
        );
    }

    #[test]
    fn padding_hides_keys_but_keeps_the_diagonal() {
        let pad = Tensor::from_slice(&[0i64, 1, 1]).view([1, 3]);
        let m = causal_mask(Some(&pad), 3, None, Device::Cpu).unwrap();
        assert_eq!(rows(&m.get(0).get(0)), [[1, 0, 0], [0, 1, 0], [0, 1, 1]]);
    }
}

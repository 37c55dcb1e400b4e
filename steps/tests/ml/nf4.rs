//! NF4 storage: round-trip error within the format's bound, memory well under bf16's.

use tch::{Kind, Tensor};
use tuna_steps::ml::{NF4_BLOCK, Nf4Tensor, nf4_max_relative_error};

/// Per-element bound: half the widest level gap times the block's absmax (plus the scale's own
/// rounding error when double-quantized).
fn check_roundtrip(w: &Tensor, double_quant: bool) {
    let q = Nf4Tensor::quantize(w, double_quant);
    let back = q.dequantize(Kind::Float);
    assert_eq!(back.size(), w.size());
    let numel = w.numel() as i64;
    let blocks = (numel + NF4_BLOCK - 1) / NF4_BLOCK;
    let padded = Tensor::cat(
        &[
            w.reshape([-1]),
            Tensor::zeros([blocks * NF4_BLOCK - numel], (Kind::Float, w.device())),
        ],
        0,
    )
    .reshape([blocks, NF4_BLOCK]);
    let true_absmax = padded.abs().amax([1], false);
    let stored_absmax = q.absmax();
    let scale_err = (&true_absmax - &stored_absmax).abs();
    let bound =
        (&true_absmax * f64::from(nf4_max_relative_error()) + &scale_err * 1.0 + 1e-6).unsqueeze(1);
    let err = Tensor::cat(
        &[
            (w - &back).abs().reshape([-1]),
            Tensor::zeros([blocks * NF4_BLOCK - numel], (Kind::Float, w.device())),
        ],
        0,
    )
    .reshape([blocks, NF4_BLOCK]);
    let excess = (err - bound).max().double_value(&[]);
    assert!(
        excess <= 0.0,
        "an element exceeds the NF4 bound by {excess}"
    );
    // Not trivially exact either: the format loses information.
    assert!((w - &back).abs().max().double_value(&[]) > 0.0);
    // The block maximum itself is represented exactly (level ±1) up to the scale's error.
    if !double_quant {
        let rel = ((&back - w).abs().sum(Kind::Float) / w.abs().sum(Kind::Float)).double_value(&[]);
        assert!(
            rel < 0.12,
            "mean relative error {rel} is too high for NF4 on Gaussian weights"
        );
    }
}

#[test]
fn roundtrip_error_is_within_the_format_bound() {
    tch::manual_seed(3);
    for shape in [[64i64, 64], [48, 100], [7, 9]] {
        let w = Tensor::randn(shape, (Kind::Float, crate::common::device())) * 0.05;
        check_roundtrip(&w, false);
        check_roundtrip(&w, true);
    }
    // Larger than one block of scales (256 blocks of 64).
    let w = Tensor::randn([512, 96], (Kind::Float, crate::common::device()));
    check_roundtrip(&w, true);
}

#[test]
fn nf4_levels_are_reproduced_exactly() {
    let levels = Tensor::from_slice(&tuna_steps::ml::NF4_LEVELS)
        .repeat([4])
        .reshape([1, 64]);
    let q = Nf4Tensor::quantize(&levels, false);
    let back = q.dequantize(Kind::Float);
    assert!((back - levels).abs().max().double_value(&[]) < 1e-7);
}

#[test]
fn memory_is_under_a_third_of_bf16() {
    let w = Tensor::randn([1024, 1024], (Kind::Float, crate::common::device()));
    let bf16 = (w.numel() * 2) as f64;
    let plain = Nf4Tensor::quantize(&w, false).bytes() as f64;
    let dq = Nf4Tensor::quantize(&w, true).bytes() as f64;
    assert!(plain / bf16 <= 0.3, "{}", plain / bf16);
    assert!(dq < plain, "double quantization saves memory");
    assert!(dq / bf16 <= 0.27, "{}", dq / bf16);
}

//! 4-bit NormalFloat (NF4) storage for frozen weights, as QLoRA defines the format: each block
//! of 64 values is scaled by its absolute maximum and every value is replaced by the nearest of
//! 16 levels placed at quantiles of a standard normal. Two codes share a byte. Optionally the
//! per-block scales are themselves quantized ("double quantization") to signed 8-bit in blocks
//! of 256, after subtracting their mean. Weights are dequantized on the fly in `forward`.

use tch::{Device, Kind, Tensor};

/// Values per quantization block.
pub const NF4_BLOCK: i64 = 64;
/// Scales per block of the double quantization.
pub const SCALE_BLOCK: i64 = 256;

/// The 16 NF4 levels (normal quantiles scaled to [-1, 1], with an exact zero).
pub const NF4_LEVELS: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// Half the widest gap between adjacent levels: the worst rounding error, relative to a block's
/// absolute maximum.
pub fn nf4_max_relative_error() -> f32 {
    NF4_LEVELS
        .windows(2)
        .map(|w| (w[1] - w[0]) / 2.0)
        .fold(0.0, f32::max)
}

/// How the per-block scales are stored.
enum Scales {
    /// One f32 per block.
    Plain(Tensor),
    /// Signed 8-bit codes (one per block), one f32 step per 256 codes, plus the mean that was
    /// subtracted.
    Double {
        codes: Tensor,
        steps: Tensor,
        mean: f64,
        blocks: i64,
    },
}

/// A weight stored as NF4.
pub struct Nf4Tensor {
    packed: Tensor,
    scales: Scales,
    shape: Vec<i64>,
    numel: i64,
}

impl Nf4Tensor {
    /// Quantizes `w` (any float kind, any device).
    pub fn quantize(w: &Tensor, double_quant: bool) -> Nf4Tensor {
        let _guard = tch::no_grad_guard();
        let shape = w.size();
        let numel = w.numel() as i64;
        let device = w.device();
        let blocks = (numel + NF4_BLOCK - 1) / NF4_BLOCK;
        let flat = w.detach().to_kind(Kind::Float).reshape([-1]);
        let padded = pad_to(&flat, blocks * NF4_BLOCK).reshape([blocks, NF4_BLOCK]);
        let absmax = padded
            .abs()
            .amax([1], false)
            .clamp_min(f64::from(f32::MIN_POSITIVE));
        let normalized = &padded / absmax.unsqueeze(1);
        let mids = midpoints(device);
        let codes = normalized
            .bucketize(&mids, false, false)
            .to_kind(Kind::Uint8)
            .reshape([-1, 2]);
        let packed = (codes.select(1, 0) * 16 + codes.select(1, 1)).to_kind(Kind::Uint8);
        let scales = if double_quant {
            quantize_scales(&absmax)
        } else {
            Scales::Plain(absmax)
        };
        Nf4Tensor {
            packed,
            scales,
            shape,
            numel,
        }
    }

    /// The weight back in `kind`.
    pub fn dequantize(&self, kind: Kind) -> Tensor {
        let _guard = tch::no_grad_guard();
        let device = self.packed.device();
        let hi = self.packed.bitwise_right_shift_tensor_scalar(4);
        let lo = self.packed.bitwise_and(15);
        let codes = Tensor::stack(&[hi, lo], 1)
            .reshape([-1, NF4_BLOCK])
            .to_kind(Kind::Int64);
        let levels = Tensor::from_slice(&NF4_LEVELS).to_device(device);
        let values = levels
            .index_select(0, &codes.reshape([-1]))
            .reshape([-1, NF4_BLOCK]);
        let scaled = values * self.absmax().unsqueeze(1);
        scaled
            .reshape([-1])
            .narrow(0, 0, self.numel)
            .reshape(self.shape.as_slice())
            .to_kind(kind)
    }

    /// The per-block absolute maxima (reconstructed when double-quantized).
    pub fn absmax(&self) -> Tensor {
        match &self.scales {
            Scales::Plain(t) => t.shallow_clone(),
            Scales::Double {
                codes,
                steps,
                mean,
                blocks,
            } => {
                let groups = steps.size()[0];
                let codes = pad_to(&codes.to_kind(Kind::Float), groups * SCALE_BLOCK)
                    .reshape([groups, SCALE_BLOCK]);
                let dq = codes * steps.unsqueeze(1) + *mean;
                dq.reshape([-1]).narrow(0, 0, *blocks)
            }
        }
    }

    /// The stored shape.
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    /// Bytes held: packed codes plus scales.
    pub fn bytes(&self) -> u64 {
        let t = |t: &Tensor| (t.numel() * t.kind().elt_size_in_bytes()) as u64;
        t(&self.packed)
            + match &self.scales {
                Scales::Plain(s) => t(s),
                Scales::Double { codes, steps, .. } => t(codes) + t(steps) + 8,
            }
    }

    /// Moves to `device`.
    pub fn to_device(&self, device: Device) -> Nf4Tensor {
        let scales = match &self.scales {
            Scales::Plain(s) => Scales::Plain(s.to_device(device)),
            Scales::Double {
                codes,
                steps,
                mean,
                blocks,
            } => Scales::Double {
                codes: codes.to_device(device),
                steps: steps.to_device(device),
                mean: *mean,
                blocks: *blocks,
            },
        };
        Nf4Tensor {
            packed: self.packed.to_device(device),
            scales,
            shape: self.shape.clone(),
            numel: self.numel,
        }
    }
}

fn pad_to(flat: &Tensor, len: i64) -> Tensor {
    let n = flat.size()[0];
    if n == len {
        flat.shallow_clone()
    } else {
        Tensor::cat(
            &[
                flat.shallow_clone(),
                flat.zeros_like().narrow(0, 0, 1).expand([len - n], false),
            ],
            0,
        )
    }
}

/// Boundaries between adjacent levels: the nearest level of x is `bucketize(x, mids)`.
fn midpoints(device: Device) -> Tensor {
    let mids: Vec<f32> = NF4_LEVELS.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    Tensor::from_slice(&mids).to_device(device)
}

fn quantize_scales(absmax: &Tensor) -> Scales {
    let blocks = absmax.size()[0];
    let mean = absmax.mean(Kind::Float).double_value(&[]);
    let centered = absmax - mean;
    let groups = (blocks + SCALE_BLOCK - 1) / SCALE_BLOCK;
    let padded = pad_to(&centered, groups * SCALE_BLOCK).reshape([groups, SCALE_BLOCK]);
    let steps = (padded.abs().amax([1], false) / 127.0).clamp_min(f64::from(f32::MIN_POSITIVE));
    let codes = (&padded / steps.unsqueeze(1))
        .round()
        .clamp(-127.0, 127.0)
        .to_kind(Kind::Int8);
    // Stored without the padding of the last group.
    let codes = codes.reshape([-1]).narrow(0, 0, blocks).contiguous();
    Scales::Double {
        codes,
        steps,
        mean,
        blocks,
    }
}

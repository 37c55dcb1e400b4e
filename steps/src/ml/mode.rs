//! Training or evaluation, and dropout that does not use libtorch's process-wide random
//! generator: its masks are a counter-based hash of (seed, call site, element index), so a run
//! gives the same numbers whatever else the process does (other threads, other runs), and a
//! resumed run draws exactly the masks an uninterrupted one would.

use tch::{Device, Kind, Tensor};

/// How a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No dropout.
    Eval,
    /// Dropout on, with masks derived from `seed` (vary it per micro-batch).
    Train {
        /// Seed of this forward pass.
        seed: u64,
    },
}

const M31: i64 = 0x7fff_ffff;

impl Mode {
    /// Whether dropout is active.
    pub fn is_train(self) -> bool {
        matches!(self, Mode::Train { .. })
    }

    /// Inverted dropout of `x` with probability `p`; `stream` tells call sites apart.
    pub fn dropout(self, x: &Tensor, p: f64, stream: u64) -> Tensor {
        match self {
            Mode::Train { seed } if p > 0.0 => {
                let bits = hash_bits(x.numel() as i64, mix(seed, stream), x.device());
                let dropped = bits.lt((p * TWO31) as i64).view(x.size().as_slice());
                let mut y = x * (1.0 / (1.0 - p));
                let _ = y.masked_fill_(&dropped, 0.0);
                y
            }
            _ => x.shallow_clone(),
        }
    }
}

/// SplitMix64 of two words.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(0x6a09_e667_f3bc_c909);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 2³¹, the range of [`hash_bits`].
const TWO31: f64 = 2_147_483_648.0;

/// `n` pseudo-random 31-bit integers (int32), a pure function of `key` and the index, computed
/// on `device` with in-place integer ops (int32 products wrap, as two's complement does on every
/// libtorch backend; results are masked to 31 bits).
pub(crate) fn hash_bits(n: i64, key: u64, device: Device) -> Tensor {
    let k1 = (key & M31 as u64) as i64;
    let k2 = ((key >> 32) & M31 as u64) as i64;
    let mut x = Tensor::arange(n, (Kind::Int, device));
    let _ = x.bitwise_xor_(k1);
    for round in 0..2 {
        let shifted = x.bitwise_right_shift_tensor_scalar(16);
        let _ = x.bitwise_xor_tensor_(&shifted);
        let _ = x.g_mul_scalar_(0x045d_9f3b_i64);
        let _ = x.bitwise_and_(M31);
        if round == 0 {
            let _ = x.bitwise_xor_(k2);
        }
    }
    let shifted = x.bitwise_right_shift_tensor_scalar(15);
    let _ = x.bitwise_xor_tensor_(&shifted);
    x
}

/// Uniform floats in [0, 1) of shape `size` from [`hash_bits`].
pub(crate) fn hash_uniform(size: &[i64], key: u64, device: Device) -> Tensor {
    let n: i64 = size.iter().product();
    (hash_bits(n, key, device).to_kind(Kind::Float) / TWO31).view(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_uniform_is_uniform_and_keyed() {
        let a = hash_uniform(&[200, 500], 7, Device::Cpu);
        let mean = a.mean(Kind::Float).double_value(&[]);
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let below = a
            .lt(0.1)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!((below - 0.1).abs() < 0.01, "{below}");
        assert!(a.max().double_value(&[]) < 1.0 && a.min().double_value(&[]) >= 0.0);
        let same = hash_uniform(&[200, 500], 7, Device::Cpu);
        assert!(a.equal(&same));
        let other = hash_uniform(&[200, 500], 8, Device::Cpu);
        let agree = a
            .eq_tensor(&other)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!(agree < 0.01);
    }

    #[test]
    fn dropout_keeps_expectation() {
        let x = Tensor::ones([100, 1000], (Kind::Float, Device::Cpu));
        let y = Mode::Train { seed: 3 }.dropout(&x, 0.25, 1);
        let zeros = y
            .eq(0.0)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!((zeros - 0.25).abs() < 0.01, "{zeros}");
        assert!((y.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 0.02);
        assert!(Mode::Eval.dropout(&x, 0.25, 1).equal(&x));
        assert!(!y.equal(&Mode::Train { seed: 3 }.dropout(&x, 0.25, 2)));
    }
}

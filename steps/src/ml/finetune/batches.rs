//! Which examples form micro-batch `i` of a run: a seeded shuffle per epoch, optionally grouped
//! by length, so that any micro-batch can be recomputed from its index alone (a resumed run
//! sees exactly the batches an uninterrupted one would).

use tch::{Device, Kind, Reduction, Tensor};

use super::data::Example;
use crate::ml::causal_lm::CausalLm;
use crate::ml::mode::Mode;

/// Positions with no loss.
pub(crate) const IGNORE: i64 = -100;

/// The batch order of a run.
pub(crate) struct BatchPlan {
    lengths: Vec<usize>,
    batch_size: usize,
    group_by_length: bool,
    seed: u64,
    cached: Option<(u64, Vec<Vec<usize>>)>,
}

impl BatchPlan {
    pub(crate) fn new(
        lengths: Vec<usize>,
        batch_size: usize,
        group_by_length: bool,
        seed: u64,
    ) -> Self {
        BatchPlan {
            lengths,
            batch_size,
            group_by_length,
            seed,
            cached: None,
        }
    }

    /// Micro-batches in one epoch.
    pub(crate) fn per_epoch(&self) -> u64 {
        self.lengths.len().div_ceil(self.batch_size) as u64
    }

    /// Example indices of global micro-batch `i`.
    pub(crate) fn batch(&mut self, i: u64) -> Vec<usize> {
        let epoch = i / self.per_epoch();
        if self.cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.cached = Some((epoch, self.epoch_batches(epoch)));
        }
        let (_, batches) = self.cached.as_ref().expect("just filled");
        batches[(i % self.per_epoch()) as usize].clone()
    }

    fn epoch_batches(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.lengths.len()).collect();
        shuffle(
            &mut order,
            self.seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        if self.group_by_length {
            // Sort within mega-batches of 50 batches: similar lengths share a batch, yet the
            // order across mega-batches stays random.
            for mega in order.chunks_mut(self.batch_size * 50) {
                mega.sort_by_key(|&j| std::cmp::Reverse(self.lengths[j]));
            }
        }
        order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect()
    }
}

/// Fisher–Yates with a SplitMix64 stream: the same order for the same seed, on any platform.
fn shuffle(v: &mut [usize], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..v.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Tensors of one micro-batch.
pub(crate) struct Collated {
    pub(crate) input_ids: Tensor,
    pub(crate) attention_mask: Tensor,
    /// Next-token targets aligned with the logits (`targets[:, c] = input_ids[:, c + 1]`; the
    /// last column and non-completion positions are `IGNORE`), so the logits need no shifted copy.
    pub(crate) targets: Tensor,
    /// Positions that carry loss.
    pub(crate) target_tokens: i64,
    /// Real (non-padding) tokens.
    pub(crate) tokens: i64,
}

impl Collated {
    /// The summed next-token loss of `model` over this batch's target (completion) positions;
    /// padding and prompt positions carry none.
    pub(crate) fn loss_sum(&self, model: &dyn CausalLm, mode: Mode) -> Tensor {
        let logits = model.forward(&self.input_ids, Some(&self.attention_mask), mode);
        let (rows, width, vocab) = logits.size3().expect("logits are [batch, seq, vocab]");
        let logits = logits.to_kind(Kind::Float).reshape([rows * width, vocab]);
        logits.cross_entropy_loss::<Tensor>(
            &self.targets.reshape([-1]),
            None,
            Reduction::Sum,
            IGNORE,
            0.0,
        )
    }
}

/// Right-pads examples to a rectangle.
pub(crate) fn collate(examples: &[&Example], pad_id: i64, device: Device) -> Collated {
    let width = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1);
    let rows = examples.len();
    let mut ids = vec![pad_id; rows * width];
    let mut mask = vec![0i64; rows * width];
    let mut targets = vec![IGNORE; rows * width];
    let mut target_tokens = 0;
    let mut tokens = 0;
    for (r, e) in examples.iter().enumerate() {
        for (c, &id) in e.ids.iter().enumerate() {
            ids[r * width + c] = id;
            mask[r * width + c] = 1;
            // The logit at c-1 predicts token c; only completion tokens are targets.
            if c >= 1 && c >= e.prompt_len {
                targets[r * width + c - 1] = id;
                target_tokens += 1;
            }
        }
        tokens += e.ids.len() as i64;
    }
    let t = |v: Vec<i64>, w: usize| {
        Tensor::from_slice(&v)
            .view([rows as i64, w as i64])
            .to_device(device)
    };
    Collated {
        input_ids: t(ids, width),
        attention_mask: t(mask, width),
        targets: t(targets, width).to_kind(Kind::Int64),
        target_tokens,
        tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_once_per_epoch_and_reproducible() {
        let lengths: Vec<usize> = (0..23).map(|i| 5 + i % 7).collect();
        let mut a = BatchPlan::new(lengths.clone(), 4, true, 7);
        let mut b = BatchPlan::new(lengths, 4, true, 7);
        assert_eq!(a.per_epoch(), 6);
        for epoch in 0..2 {
            let mut seen: Vec<usize> = (0..6).flat_map(|i| a.batch(epoch * 6 + i)).collect();
            seen.sort();
            assert_eq!(seen, (0..23).collect::<Vec<_>>());
        }
        assert_eq!(a.batch(8), b.batch(8));
        assert_ne!(a.batch(0), a.batch(6), "epochs are shuffled differently");
    }

    #[test]
    fn group_by_length_sorts_within_megabatches() {
        let lengths: Vec<usize> = (0..40).map(|i| (i * 37) % 50).collect();
        let mut p = BatchPlan::new(lengths.clone(), 4, true, 1);
        let flat: Vec<usize> = (0..10)
            .flat_map(|i| p.batch(i))
            .map(|j| lengths[j])
            .collect();
        assert!(flat.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn targets_cover_completion_only() {
        let e1 = Example {
            ids: vec![2, 10, 11, 20, 21],
            prompt_len: 3,
        };
        let e2 = Example {
            ids: vec![2, 12, 22],
            prompt_len: 2,
        };
        let c = collate(&[&e1, &e2], 1, Device::Cpu);
        assert_eq!(
            Vec::<i64>::try_from(c.targets.view([-1])).unwrap(),
            vec![-100, -100, 20, 21, -100, -100, 22, -100, -100, -100]
        );
        assert_eq!(c.target_tokens, 3);
        assert_eq!(c.tokens, 8);
        assert_eq!(
            Vec::<i64>::try_from(c.attention_mask.view([-1])).unwrap(),
            vec![1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
        );
    }
}

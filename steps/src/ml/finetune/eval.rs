//! The loss on held-out data (`eval_data`): every example once, in file order, batched like
//! training (right-padded, padding and prompt tokens masked), forward passes without dropout
//! and without gradients; the mean over all completion tokens of the set.

use tch::Device;

use super::batches::collate;
use super::data::Dataset;
use crate::ml::causal_lm::CausalLm;
use crate::ml::mode::Mode;

/// A tokenized eval set and how to batch it.
pub(crate) struct EvalSet {
    pub(crate) data: Dataset,
    pub(crate) batch_size: usize,
    pub(crate) pad: i64,
    pub(crate) device: Device,
}

impl EvalSet {
    /// Mean completion-token loss of `model` on the whole set. [`Mode::Eval`] turns dropout off
    /// for these passes only (the mode is per forward pass, so training continues in train
    /// mode), and no autograd graph is built.
    pub(crate) fn loss(&self, model: &dyn CausalLm) -> f64 {
        tch::no_grad(|| {
            let (mut sum, mut tokens) = (0.0, 0i64);
            for chunk in self.data.examples.chunks(self.batch_size.max(1)) {
                let b = collate(&chunk.iter().collect::<Vec<_>>(), self.pad, self.device);
                sum += b.loss_sum(model, Mode::Eval).double_value(&[]);
                tokens += b.target_tokens;
            }
            sum / tokens.max(1) as f64
        })
    }
}

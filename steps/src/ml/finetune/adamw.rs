//! AdamW (decoupled weight decay, bias-corrected moments) over the adapter tensors, with its
//! state exposed so that a checkpoint can restore it exactly.

use tch::Tensor;

/// Optimizer state for a fixed list of parameters.
pub(crate) struct AdamW {
    pub(crate) params: Vec<Tensor>,
    pub(crate) m: Vec<Tensor>,
    pub(crate) v: Vec<Tensor>,
    pub(crate) t: u64,
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) eps: f64,
    pub(crate) weight_decay: f64,
}

impl AdamW {
    pub(crate) fn new(
        params: Vec<Tensor>,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    ) -> Self {
        let m = params.iter().map(Tensor::zeros_like).collect();
        let v = params.iter().map(Tensor::zeros_like).collect();
        AdamW {
            params,
            m,
            v,
            t: 0,
            beta1,
            beta2,
            eps,
            weight_decay,
        }
    }

    /// Global L2 norm of the gradients; scales them down to `max_norm` when above it (0 = no
    /// clipping). Returns the norm before clipping.
    pub(crate) fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let sq: Vec<Tensor> = grads
            .iter()
            .map(|g| g.square().sum(tch::Kind::Float))
            .collect();
        let norm = Tensor::stack(&sq, 0)
            .sum(tch::Kind::Float)
            .sqrt()
            .double_value(&[]);
        if max_norm > 0.0 && norm > max_norm {
            let factor = max_norm / (norm + 1e-6);
            for mut g in grads {
                let _ = g.f_mul_scalar_(factor);
            }
        }
        norm
    }

    /// One update with learning rate `lr`; clears the gradients.
    pub(crate) fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        for ((p, m), v) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            *m = &*m * self.beta1 + &g * (1.0 - self.beta1);
            *v = &*v * self.beta2 + g.square() * (1.0 - self.beta2);
            if self.weight_decay > 0.0 {
                let _ = p.f_mul_scalar_(1.0 - lr * self.weight_decay);
            }
            let update = (&*m / bc1) / ((&*v / bc2).sqrt() + self.eps) * lr;
            let _ = p.f_sub_(&update);
            p.zero_grad();
        }
    }
}

//! Learning rate by optimizer step: linear warm-up, then cosine decay to zero.

/// The schedule of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) peak: f64,
    pub(crate) warmup: u64,
    pub(crate) total: u64,
}

impl Schedule {
    /// Learning rate of 0-based step `step`: `peak·(step+1)/warmup` during warm-up, then
    /// `peak·½(1 + cos(π·progress))` with progress from 0 at the end of warm-up to 1 at `total`.
    pub(crate) fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    #[test]
    fn warms_up_then_decays() {
        let s = Schedule {
            peak: 1.0,
            warmup: 4,
            total: 14,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert_eq!(s.lr(4), 1.0);
        assert!((s.lr(9) - 0.5).abs() < 1e-12);
        assert!(s.lr(13) < s.lr(12) && s.lr(13) > 0.0);
        assert!(s.lr(14).abs() < 1e-12);
    }

    #[test]
    fn no_warmup_starts_at_peak() {
        let s = Schedule {
            peak: 2e-4,
            warmup: 0,
            total: 10,
        };
        assert_eq!(s.lr(0), 2e-4);
    }
}

//! The scheduler's clock, injectable so cron logic is tested without waiting.
//!
//! [`SystemClock`] reads the system time, shifted by `TUNA_CLOCK_OFFSET_S` seconds when that is
//! set (the end-to-end tests use it to simulate a daemon that was down for hours).

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock {
    offset: Duration,
}

impl SystemClock {
    /// The system time, shifted by `$TUNA_CLOCK_OFFSET_S` seconds if set.
    pub fn from_env() -> SystemClock {
        let secs = std::env::var("TUNA_CLOCK_OFFSET_S")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        SystemClock {
            offset: Duration::seconds(secs),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    pub fn new(at: DateTime<Utc>) -> FakeClock {
        FakeClock(Mutex::new(at))
    }
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock") = at;
    }
    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("clock") += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

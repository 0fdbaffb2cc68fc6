use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in floating-point seconds since the Unix epoch, as the cache stores it.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> f64;
}

/// The system clock, optionally shifted by a fixed offset (for simulating clock skew).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock {
    /// Seconds added to the system time.
    pub offset: f64,
}

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        d.as_secs_f64() + self.offset
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<f64>>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: f64) -> Self {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: f64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += secs;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

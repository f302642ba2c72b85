//! `--speed`: events written at the recorded pace (or N times faster).
//! The first event sets the origin; each later one waits until its offset
//! from it, divided by the speed, has passed on the monotonic clock.

use std::time::{Duration, Instant};

pub struct Pacer {
    speed: Option<f64>,
    origin: Option<(i64, Instant)>,
}

/// Waits shorter than this are not slept: a sleep costs about as much.
const SLACK: Duration = Duration::from_micros(200);

impl Pacer {
    /// `speed`: None, as fast as possible.
    pub fn new(speed: Option<f64>) -> Pacer {
        Pacer { speed, origin: None }
    }

    /// The wall-clock instant trace time `ts_ns` is due at.
    fn due(&mut self, ts_ns: i64) -> Option<Instant> {
        let speed = self.speed?;
        let (t0, w0) = *self.origin.get_or_insert((ts_ns, Instant::now()));
        let offset = (ts_ns.saturating_sub(t0)).max(0) as f64 / speed;
        Some(w0 + Duration::from_nanos(offset.min(u64::MAX as f64 / 2.0) as u64))
    }

    /// Whether the event at `ts_ns` must wait (the caller flushes first).
    pub fn must_wait(&mut self, ts_ns: i64) -> bool {
        self.due(ts_ns).is_some_and(|due| due > Instant::now() + SLACK)
    }

    /// Sleeps until `ts_ns` is due, calling `tick` with the trace time at
    /// each whole second passed on the way (views print settled seconds).
    pub fn wait(&mut self, ts_ns: i64, tick: &mut dyn FnMut(i64) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let Some(due) = self.due(ts_ns) else { return Ok(()) };
        let (t0, w0) = self.origin.expect("set by due");
        let speed = self.speed.expect("pacing");
        loop {
            let now = Instant::now();
            if now + SLACK >= due {
                return Ok(());
            }
            // Trace time now, and the next whole second after it.
            let trace_now = t0 + (now.duration_since(w0).as_nanos() as f64 * speed) as i64;
            let next_second = (trace_now.div_euclid(1_000_000_000) + 1) * 1_000_000_000;
            if next_second < ts_ns {
                let at = w0 + Duration::from_nanos(((next_second - t0) as f64 / speed) as u64);
                std::thread::sleep(at.saturating_duration_since(now));
                tick(next_second)?;
            } else {
                std::thread::sleep(due.saturating_duration_since(now));
            }
        }
    }
}

//! When per-call data recording switches to per-socket aggregates, and back.
//!
//! The kernel switches by itself when the ring buffer nears full (or a data
//! record finds it full); user space switches when the send/recv rate passes
//! `--data-budget`. Either way user space decides when to switch back: once
//! the rate, read from the aggregates themselves, is under half of what made
//! it switch, and not before `HOLD` has passed, so a burst does not flap.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::probe::DataSwitch;

/// Shortest stay in aggregates.
const HOLD: Duration = Duration::from_secs(5);
/// Shortest window a per-call rate is measured over.
const WINDOW: Duration = Duration::from_millis(200);

/// One switch, as the segment metadata records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    pub at: DateTime<Utc>,
    /// "aggregates" or "calls".
    pub to: &'static str,
    pub reason: String,
}

impl Switch {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "ts": self.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "to": self.to,
            "reason": self.reason,
        })
    }
}

struct Aggregating {
    since: Instant,
    since_wall: DateTime<Utc>,
    /// Events per second under which recording goes back to calls.
    back_under: u64,
}

pub struct Budget {
    /// Send/recv events per second; 0: the rate never switches.
    budget: u64,
    aggregating: Option<Aggregating>,
    window_start: Instant,
    window_calls: u64,
    /// The last full window's per-call rate.
    last_rate: u64,
}

/// What `step` wants done.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Tell the kernel (None: back to calls); record the switch.
    Set(DataSwitch, Switch),
    /// The kernel switched already: record it.
    Record(Switch),
}

impl Budget {
    pub fn new(budget: u64, now: Instant) -> Budget {
        Budget { budget, aggregating: None, window_start: now, window_calls: 0, last_rate: 0 }
    }

    pub fn aggregating(&self) -> bool {
        self.aggregating.is_some()
    }

    /// Called after every flush: `calls` per-call data rows since the last
    /// step; `kernel` the switch the kernel has now; `aggregated` the newest
    /// interval drained from the kernel's aggregates (its start and the
    /// calls it counted per second).
    pub fn step(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
        kernel: DataSwitch,
        calls: u64,
        aggregated: Option<(DateTime<Utc>, u64)>,
    ) -> Option<Action> {
        self.window_calls += calls;
        let elapsed = now.duration_since(self.window_start);
        let rate = (elapsed >= WINDOW).then(|| {
            let rate = (self.window_calls as f64 / elapsed.as_secs_f64()) as u64;
            self.window_start = now;
            self.window_calls = 0;
            self.last_rate = rate;
            rate
        });
        match &self.aggregating {
            None if kernel != DataSwitch::None => {
                let reason = match kernel {
                    DataSwitch::RingNearFull => "the ring buffer was 3/4 full",
                    DataSwitch::RingFull => "the ring buffer was full",
                    _ => "switched by the kernel",
                };
                // Back when the rate is under half of what filled the ring.
                let filled_at =
                    if self.budget > 0 { self.budget.min(self.last_rate.max(1)) } else { self.last_rate.max(1) };
                self.start(now, wall, filled_at);
                Some(Action::Record(Switch { at: wall, to: "aggregates", reason: reason.to_string() }))
            }
            None => {
                let rate = rate.filter(|&r| self.budget > 0 && r > self.budget)?;
                self.start(now, wall, self.budget);
                Some(Action::Set(
                    DataSwitch::Budget,
                    Switch {
                        at: wall,
                        to: "aggregates",
                        reason: format!("{rate} send/recv events/s, over --data-budget {}", self.budget),
                    },
                ))
            }
            Some(a) => {
                let (start, per_second) = aggregated?;
                let threshold = a.back_under / 2;
                if now.duration_since(a.since) < HOLD || start < a.since_wall || per_second >= threshold {
                    return None;
                }
                self.aggregating = None;
                self.window_start = now;
                self.window_calls = 0;
                Some(Action::Set(
                    DataSwitch::None,
                    Switch {
                        at: wall,
                        to: "calls",
                        reason: format!("{per_second} send/recv events/s, under {threshold}"),
                    },
                ))
            }
        }
    }

    fn start(&mut self, now: Instant, wall: DateTime<Utc>, back_under: u64) {
        self.aggregating = Some(Aggregating { since: now, since_wall: wall, back_under });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> (Instant, DateTime<Utc>) {
        (
            t0 + Duration::from_millis(ms),
            DateTime::from_timestamp(1_700_000_000, 0).unwrap() + Duration::from_millis(ms),
        )
    }

    #[test]
    fn over_budget_switches_to_aggregates_and_back_after_the_hold() {
        let t0 = Instant::now();
        let mut b = Budget::new(1000, t0);
        let (t, w) = at(t0, 500);
        // 400 calls in 0.5 s: 800/s, under budget.
        assert_eq!(b.step(t, w, DataSwitch::None, 400, None), None);
        let (t, w) = at(t0, 1000);
        match b.step(t, w, DataSwitch::None, 2000, None) {
            Some(Action::Set(DataSwitch::Budget, s)) => {
                assert_eq!(s.to, "aggregates");
                assert!(s.reason.contains("4000 send/recv events/s, over --data-budget 1000"), "{}", s.reason);
            }
            other => panic!("{other:?}"),
        }
        assert!(b.aggregating());
        // Rate back down, but within the hold, or from an interval before the switch: stay.
        let (t, w) = at(t0, 3000);
        assert_eq!(b.step(t, w, DataSwitch::Budget, 0, Some((w, 10))), None);
        let (t, w) = at(t0, 7000);
        assert_eq!(b.step(t, w, DataSwitch::Budget, 0, Some((w - Duration::from_secs(7), 10))), None);
        // Still at half the budget: stay.
        assert_eq!(b.step(t, w, DataSwitch::Budget, 0, Some((w, 500))), None);
        match b.step(t, w, DataSwitch::Budget, 0, Some((w, 499))) {
            Some(Action::Set(DataSwitch::None, s)) => {
                assert_eq!((s.to, s.reason.as_str()), ("calls", "499 send/recv events/s, under 500"))
            }
            other => panic!("{other:?}"),
        }
        assert!(!b.aggregating());
    }

    #[test]
    fn a_kernel_switch_is_recorded_and_a_zero_budget_never_switches_for_the_rate() {
        let t0 = Instant::now();
        let mut b = Budget::new(0, t0);
        let (t, w) = at(t0, 1000);
        assert_eq!(b.step(t, w, DataSwitch::None, 10_000_000, None), None);
        let (t, w) = at(t0, 1100);
        match b.step(t, w, DataSwitch::RingNearFull, 0, None) {
            Some(Action::Record(s)) => assert_eq!(s.reason, "the ring buffer was 3/4 full"),
            other => panic!("{other:?}"),
        }
        // Back under half the rate that filled the ring.
        let (t, w) = at(t0, 7000);
        assert_eq!(b.step(t, w, DataSwitch::RingNearFull, 0, Some((w, 5_000_000))), None);
        assert!(matches!(
            b.step(t, w, DataSwitch::RingNearFull, 0, Some((w, 4_999_999))),
            Some(Action::Set(DataSwitch::None, _))
        ));
    }
}

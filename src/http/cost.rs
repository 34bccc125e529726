//! Cost budgets: like a rate limit, but charged by the work a request
//! turned out to do rather than by the request. A caller starts with the
//! whole budget, which refills evenly over the window; a request is
//! charged once its cost is known, so a single expensive one may leave the
//! caller in debt, and until the budget is above zero again every request
//! of that caller is refused (429 with `Retry-After`) before doing work.
//! Each caller pays only from its own budget. Sync uses one for the facts
//! a push folds again because it sent them out of order
//! (`rate_limits.refold`, docs/skill-graph.md).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A budget of `per_window` units per `window` for each key.
pub struct CostBudget<K> {
    per_window: f64,
    window: Duration,
    /// Per key: units left (negative in debt) as of the instant.
    left: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Eq + Hash + Clone> CostBudget<K> {
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window: f64::from(per_window.max(1)),
            window: window.max(Duration::from_millis(1)),
            left: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, (left, since): (f64, Instant), now: Instant) -> f64 {
        let refill = now.duration_since(since).as_secs_f64() / self.window.as_secs_f64();
        (left + refill * self.per_window).min(self.per_window)
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<K, (f64, Instant)>) -> T) -> T {
        // A poisoned map only held budgets; carry on with it.
        let mut map = self.left.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut map)
    }

    /// Whether `key` may start a request at `now`.
    ///
    /// # Errors
    /// The whole seconds until its budget is above zero again (at least 1).
    pub fn admit(&self, key: &K, now: Instant) -> Result<(), u64> {
        self.with(|map| {
            let Some(&entry) = map.get(key) else {
                return Ok(());
            };
            let left = self.refilled(entry, now);
            if left > 0.0 {
                return Ok(());
            }
            let secs = (-left + 1.0) / self.per_window * self.window.as_secs_f64();
            // Whole seconds, rounded up (the cast saturates).
            Err((secs.ceil() as u64).max(1))
        })
    }

    /// Charges `cost` units to `key` at `now` (nothing for 0).
    pub fn charge(&self, key: &K, cost: u64, now: Instant) {
        if cost == 0 {
            return;
        }
        self.with(|map| {
            let left = map
                .get(key)
                .map_or(self.per_window, |&e| self.refilled(e, now));
            // Precision beyond 2^53 units does not matter here.
            map.insert(key.clone(), (left - cost as f64, now));
        });
    }

    /// Forgets keys whose budget is full again, bounding memory.
    pub fn retain_recent(&self, now: Instant) {
        self.with(|map| map.retain(|_, e| self.refilled(*e, now) < self.per_window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_in_debt_waits_for_its_own_budget_only() {
        let b = CostBudget::new(100, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(b.admit(&"a", t0), Ok(()));
        b.charge(&"a", 40, t0);
        assert_eq!(b.admit(&"a", t0), Ok(()), "60 left");
        // One request may cost more than what is left: the caller is in
        // debt by 90 and waits until 91 have refilled (0.6 s each).
        b.charge(&"a", 150, t0);
        assert_eq!(b.admit(&"a", t0), Err(55));
        assert_eq!(b.admit(&"b", t0), Ok(()), "another caller is not charged");
        assert_eq!(b.admit(&"a", t0 + Duration::from_secs(54)), Err(1));
        assert_eq!(b.admit(&"a", t0 + Duration::from_secs(55)), Ok(()));
        // Refills stop at the budget.
        b.retain_recent(t0 + Duration::from_secs(600));
        assert!(b.with(|m| m.is_empty()));
    }
}

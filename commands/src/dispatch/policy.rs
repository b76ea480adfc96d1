//! The dispatch policy: backoff for retry-later errors, attempts, the crash policy's time limit, and the
//! pacing of each recipient.

use blazz_domain::provider::Backoff;

/// How retry-later errors are retried: exponential backoff with jitter, at most `max_attempts`
/// attempts in all; the pair limit (131056) backs off by powers of 4.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// The first retry's delay (doubled per attempt, ×4 for the pair limit), before jitter.
    pub base: std::time::Duration,
    pub max_delay: std::time::Duration,
    /// An attempt with no outcome (no answer recorded, no webhook) after this long is marked unknown.
    pub unknown_after: std::time::Duration,
    /// Campaign messages to one recipient on one channel go out at least this far apart (Meta's pair
    /// limit allows about one every 6 s).
    pub recipient_pace: std::time::Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: std::time::Duration::from_secs(2),
            max_delay: std::time::Duration::from_secs(600),
            unknown_after: std::time::Duration::from_secs(600),
            recipient_pace: std::time::Duration::from_secs(6),
        }
    }
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt` (1-based), with ±50 % jitter.
    pub fn delay(&self, attempt: u32, backoff: Option<Backoff>) -> std::time::Duration {
        use rand::Rng;
        let factor: u32 = if backoff == Some(Backoff::Recipient) { 4 } else { 2 };
        let exp = factor.saturating_pow(attempt.saturating_sub(1).min(10));
        let raw = self.base.saturating_mul(exp).min(self.max_delay);
        raw.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }
}

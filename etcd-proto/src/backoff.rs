//! The pause between the attempts of a compare-and-swap loop (v2 and v3
//! `update_with`): exponential from 2 ms, capped at 250 ms, its upper half
//! random so that contenders who lost the same race do not retry in step.
//! The randomness is a seed the transport draws
//! ([`Entropy::random`](crate::drive::Entropy::random)); the sequence is
//! then deterministic, so a test or a fuzzer replays it exactly.

use std::time::Duration;

/// A seeded source of backoff pauses.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    state: u64,
}

impl Backoff {
    pub(crate) fn new(seed: u64) -> Self {
        Backoff { state: seed }
    }

    /// The pause before attempt `attempt + 1` (`attempt` counts from 0).
    pub(crate) fn pause(&mut self, attempt: u32) -> Duration {
        // One step of a 64-bit linear congruential generator (Knuth's MMIX
        // constants); its high bits are random enough for jitter.
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let ceiling = (2u64 << attempt.min(7)).min(250);
        let jitter = (self.state >> 33) % (ceiling / 2 + 1);
        Duration::from_millis(ceiling / 2 + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_stay_capped_and_differ_between_seeds() {
        let mut a = Backoff::new(1);
        let pauses: Vec<_> = (0..12).map(|n| a.pause(n)).collect();
        assert!(pauses[0] >= Duration::from_millis(1) && pauses[0] <= Duration::from_millis(2));
        assert!(pauses.iter().all(|p| *p <= Duration::from_millis(250)));
        assert!(pauses[11] >= Duration::from_millis(125));
        let mut b = Backoff::new(2);
        let other: Vec<_> = (0..12).map(|n| b.pause(n)).collect();
        assert_ne!(pauses, other);
        let mut again = Backoff::new(1);
        assert_eq!(pauses, (0..12).map(|n| again.pause(n)).collect::<Vec<_>>());
    }
}

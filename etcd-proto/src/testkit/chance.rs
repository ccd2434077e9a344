//! Chance as an input: every random choice a scenario makes comes from a
//! [`Tape`], so a fuzzer (or a property test) steers each one and a failing
//! run replays exactly.

use std::time::Duration;

/// A run's random choices: the tape's values first, one per draw; then,
/// once it runs out, either the quietest choice (0) every time, or a
/// xorshift generator seeded from the tape.
#[derive(Debug, Clone)]
pub struct Tape {
    /// The values left, last first.
    values: Vec<u64>,
    /// The generator after the tape; `None`: every later draw is 0.
    state: Option<u64>,
}

impl Tape {
    /// `values`, then 0 forever: no fault, no disturbance, the first choice.
    pub fn quiet(values: impl IntoIterator<Item = u64>) -> Tape {
        let mut values: Vec<u64> = values.into_iter().collect();
        values.reverse();
        Tape {
            values,
            state: None,
        }
    }

    /// One draw per byte of `bytes` (a fuzzer's input), then a generator
    /// seeded from them.
    pub fn steered(bytes: &[u8]) -> Tape {
        let seed = bytes.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut tape = Tape::quiet(
            bytes
                .iter()
                // One byte decides a whole draw, whatever its range.
                .map(|b| u64::from(*b).wrapping_mul(0x0101_0101_0101_0101)),
        );
        tape.state = Some(seed | 1);
        tape
    }

    /// A generator from `seed`, with no tape before it.
    pub fn seeded(seed: u64) -> Tape {
        Tape {
            values: Vec::new(),
            state: Some(seed | 1),
        }
    }

    /// The next draw.
    pub fn draw(&mut self) -> u64 {
        if let Some(value) = self.values.pop() {
            return value;
        }
        let Some(state) = &mut self.state else {
            return 0;
        };
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// A number below `n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.draw() % n.max(1)
    }

    /// True `percent` times in a hundred (never once a quiet tape ran out).
    pub fn chance(&mut self, percent: u64) -> bool {
        if self.values.is_empty() && self.state.is_none() {
            return false;
        }
        self.below(100) < percent
    }

    /// Up to `max` milliseconds.
    pub fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max))
    }
}

//! Log lines an endpoint's data repeats at the rate it sends packs: a pack that cannot be
//! published, a message past what the broker takes. A broken or hostile device sending such
//! packs as fast as Kaa takes them would otherwise write the node's log full, one WARN per
//! pack. Each kind of line has a budget per appender (or connection): the first [`BURST`] of a
//! [`WINDOW`] are written, the rest counted and named in the first line written after them.
//! JMX counts every pack either way.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::supervise::lock;

/// Lines written per window.
const BURST: u32 = 10;
/// How long a burst lasts; the count of lines left out starts again with each.
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct LogBudget(Mutex<Spent>);

#[derive(Default)]
struct Spent {
    /// When the window began; `None` before the first line.
    since: Option<Instant>,
    written: u32,
    left_out: u64,
}

impl LogBudget {
    /// Whether a line may be written at `now`, and if so what to add to it: how many were left
    /// out before it, or that the next ones will be. `None`: leave it out (it is counted).
    pub(crate) fn take(&self, now: Instant) -> Option<String> {
        let mut spent = lock(&self.0);
        if spent.since.is_none_or(|since| now >= since + WINDOW) {
            spent.since = Some(now);
            spent.written = 0;
        }
        if spent.written == BURST {
            spent.left_out += 1;
            return None;
        }
        spent.written += 1;
        let left_out = std::mem::take(&mut spent.left_out);
        Some(match (left_out, spent.written == BURST) {
            (0, false) => String::new(),
            (n, false) => format!(" ({n} more lines like this were left out before this one)"),
            (0, true) => format!(
                " (lines like this are left out for the next {}s, and counted)",
                WINDOW.as_secs()
            ),
            (n, true) => format!(
                " ({n} more lines like this were left out before this one; the next are left \
                 out for {}s, and counted)",
                WINDOW.as_secs()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood: ten lines a window, the tenth saying the rest are left out, the first of the
    /// next window how many were.
    #[test]
    fn a_flood_writes_ten_lines_a_minute_and_counts_the_rest() {
        let budget = LogBudget::default();
        let start = Instant::now();
        let notes: Vec<Option<String>> = (0..25).map(|_| budget.take(start)).collect();
        assert!(notes[..9].iter().all(|n| n.as_deref() == Some("")));
        assert_eq!(
            notes[9].as_deref(),
            Some(" (lines like this are left out for the next 60s, and counted)")
        );
        assert!(notes[10..].iter().all(Option::is_none));

        let later = start + WINDOW;
        assert_eq!(
            budget.take(later).as_deref(),
            Some(" (15 more lines like this were left out before this one)")
        );
        assert_eq!(budget.take(later).as_deref(), Some(""), "counted once");
    }

    /// A line now and then is always written, with nothing added.
    #[test]
    fn occasional_lines_are_all_written() {
        let budget = LogBudget::default();
        let start = Instant::now();
        for minute in 0..30 {
            let at = start + Duration::from_secs(61 * minute);
            assert_eq!(budget.take(at).as_deref(), Some(""));
        }
    }
}

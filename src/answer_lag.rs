//! How far behind the answers to Kaa are.
//!
//! One thread (the bridge's dispatcher) hands every pack's answer, of every appender, to Kaa's
//! callback, and every native log line to SLF4J. A callback or a logging backend that blocks
//! (a synchronous appender on a dead socket or a full disk) holds it, and answers pile up
//! behind: the packs are done for the appender, so no bound of its own stops new ones, and
//! each queued answer keeps Kaa's callback object alive. Once the job in hand was queued more
//! than [`LIMIT`] ago, new packs are answered at once on the caller's thread instead
//! (`onConnectionError`: Kaa sends them again), and log lines are dropped, so the queue holds
//! at most about that long of the node's packs. The dispatcher says what was done once it has
//! caught up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Answers this late are still far inside the endpoint's wait (about 120 s), and a pause of the
/// whole JVM (a long collection) stays below it.
const LIMIT: Duration = Duration::from_secs(10);

/// Reports come at least this far apart: a callback slow enough to put the answers past the
/// limit again and again would otherwise have one every few seconds. What is done meanwhile
/// adds up into the next.
const REPORT_GAP: Duration = Duration::from_secs(60);

/// The one dispatcher's lag.
pub(crate) static ANSWERS: AnswerLag = AnswerLag::new();

/// Times are nanoseconds since the first one taken in the process, so they fit an atomic.
pub(crate) fn now() -> u64 {
    static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);
    BASE.elapsed().as_nanos() as u64
}

pub(crate) struct AnswerLag {
    /// When the job in hand was queued, plus one; 0 while the dispatcher waits for work.
    serving: AtomicU64,
    turned_away: AtomicU64,
    /// Of those, the packs whose callback threw: not logged then, on Kaa's thread, through the
    /// logging that may be what holds the dispatcher.
    threw: AtomicU64,
    dropped_lines: AtomicU64,
    /// The largest lag a pack was turned away at, since the last report.
    worst: AtomicU64,
    /// When the last report was made, plus one; 0 before the first.
    reported: AtomicU64,
}

impl AnswerLag {
    pub(crate) const fn new() -> Self {
        AnswerLag {
            serving: AtomicU64::new(0),
            turned_away: AtomicU64::new(0),
            threw: AtomicU64::new(0),
            dropped_lines: AtomicU64::new(0),
            worst: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        }
    }

    /// The dispatcher takes a job queued at `queued`, until the guard is dropped: also when
    /// the job panics, or answers would look late for ever.
    pub(crate) fn serving(&self, queued: u64) -> Serving<'_> {
        self.serving.store(queued + 1, Ordering::Release);
        Serving(self)
    }

    /// After a job queued at `queued`: once the dispatcher has caught up (the job waited less
    /// than half the limit) after packs were turned away or lines dropped, what to log, if
    /// [`REPORT_GAP`] has passed since the last report. Only the dispatcher calls it.
    pub(crate) fn caught_up(&self, queued: u64, now: u64) -> Option<String> {
        if now.saturating_sub(queued) >= LIMIT.as_nanos() as u64 / 2 {
            return None;
        }
        let reported = self.reported.load(Ordering::Relaxed);
        if reported != 0 && now < reported - 1 + REPORT_GAP.as_nanos() as u64 {
            return None;
        }
        let packs = self.turned_away.swap(0, Ordering::Relaxed);
        let threw = match self.threw.swap(0, Ordering::Relaxed) {
            0 => String::new(),
            n => format!(" ({n} of their callbacks threw)"),
        };
        let lines = self.dropped_lines.swap(0, Ordering::Relaxed);
        let worst = Duration::from_nanos(self.worst.swap(0, Ordering::Relaxed));
        (packs > 0 || lines > 0).then(|| {
            self.reported.store(now + 1, Ordering::Relaxed);
            format!(
                "answers to Kaa were over {} s late (up to {:.1} s): a Kaa callback or the node's \
                 logging held the thread that makes them; meanwhile {packs} packs were answered \
                 onConnectionError at once, on the thread that appended them (Kaa sends them \
                 again){threw}, and {lines} native log lines were dropped",
                LIMIT.as_secs(),
                worst.as_secs_f64()
            )
        })
    }

    /// How late the answers are, when over the limit: the dispatcher's job in hand waited
    /// that long since it was queued, and every job behind it waits longer. The clock is read
    /// only while a job is in hand: this runs for every pack.
    pub(crate) fn behind(&self, now: impl FnOnce() -> u64) -> Option<Duration> {
        let queued = self.serving.load(Ordering::Acquire).checked_sub(1)?;
        let lag = Duration::from_nanos(now().saturating_sub(queued));
        (lag > LIMIT).then_some(lag)
    }

    /// A pack answered at once, `lag` behind.
    pub(crate) fn turned_away(&self, lag: Duration) {
        self.turned_away.fetch_add(1, Ordering::Relaxed);
        self.worst
            .fetch_max(lag.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The callback of a pack answered at once threw.
    pub(crate) fn callback_threw(&self) {
        self.threw.fetch_add(1, Ordering::Relaxed);
    }

    /// A log line left out.
    pub(crate) fn dropped_line(&self) {
        self.dropped_lines.fetch_add(1, Ordering::Relaxed);
    }
}

/// The dispatcher's job in hand; waiting for work again once dropped.
pub(crate) struct Serving<'a>(&'a AnswerLag);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.serving.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// Late only while a job is in hand, and only past the limit; the report comes once the
    /// dispatcher has caught up, once, with what was done meanwhile.
    #[test]
    fn answers_are_late_while_the_job_in_hand_waited_past_the_limit() {
        let lag = AnswerLag::new();
        let limit = LIMIT.as_secs();
        assert_eq!(lag.behind(|| 100 * SECOND), None, "idle");
        let held = lag.serving(5 * SECOND);
        assert_eq!(lag.behind(|| (5 + limit) * SECOND), None, "at the limit");
        let late = lag.behind(|| (6 + limit) * SECOND);
        assert_eq!(late, Some(Duration::from_secs(limit + 1)));
        lag.turned_away(late.expect("late"));
        lag.callback_threw();
        lag.dropped_line();
        lag.dropped_line();
        // The job that was held ends; the next ones still waited long: no report yet.
        drop(held);
        assert_eq!(lag.caught_up(5 * SECOND, (7 + limit) * SECOND), None);
        assert_eq!(lag.behind(|| (7 + limit) * SECOND), None, "idle again");
        // A job that panics is done with too.
        let panicked = std::panic::catch_unwind(|| {
            let _serving = lag.serving(SECOND);
            panic!("injected: the job panics");
        });
        assert!(panicked.is_err());
        assert_eq!(
            lag.behind(|| (7 + limit) * SECOND),
            None,
            "idle after a panic"
        );
        drop(lag.serving((6 + limit) * SECOND));
        let report = lag.caught_up((6 + limit) * SECOND, (6 + limit) * SECOND + 1000);
        let report = report.expect("caught up");
        assert!(
            report.contains(&format!("up to {}.0 s", limit + 1))
                && report.contains("1 packs were answered onConnectionError at once")
                && report.contains("(1 of their callbacks threw)")
                && report.contains("2 native log lines were dropped"),
            "{report}"
        );
        assert_eq!(lag.caught_up(50 * SECOND, 50 * SECOND), None, "said once");
        // Late again, twice, within the minute: said once the minute has passed, both counted.
        let reported = (6 + limit) * SECOND + 1000;
        for _ in 0..2 {
            lag.turned_away(Duration::from_secs(limit + 2));
            let soon = reported + 30 * SECOND;
            assert_eq!(lag.caught_up(soon, soon), None, "caught up within the gap");
        }
        let later = reported + REPORT_GAP.as_nanos() as u64;
        let report = lag.caught_up(later, later).expect("said after the gap");
        assert!(
            report.contains("2 packs were answered onConnectionError at once")
                && !report.contains("callbacks threw"),
            "{report}"
        );
    }

    /// Caught up means the job in hand waited less than half the limit; the report gives the
    /// worst lag, not the last; dropped log lines alone are said too.
    #[test]
    fn the_report_waits_for_half_the_limit_and_gives_the_worst_lag() {
        let lag = AnswerLag::new();
        let half = LIMIT.as_nanos() as u64 / 2;
        let queued = 100 * SECOND;
        lag.turned_away(LIMIT + Duration::from_secs(2));
        lag.turned_away(LIMIT + Duration::from_secs(1));
        assert_eq!(lag.caught_up(queued, queued + half), None, "half the limit");
        let report = lag.caught_up(queued, queued + half - 1).expect("caught up");
        let worst = (LIMIT + Duration::from_secs(2)).as_secs_f64();
        assert!(
            report.contains(&format!("up to {worst:.1} s"))
                && report.contains("2 packs were answered"),
            "{report}"
        );

        let lines = AnswerLag::new();
        lines.dropped_line();
        let report = lines
            .caught_up(queued, queued)
            .expect("lines alone are said");
        assert!(
            report.contains("0 packs were answered")
                && report.contains("1 native log lines were dropped"),
            "{report}"
        );
    }
}

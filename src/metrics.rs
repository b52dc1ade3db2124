//! What an operator watches: per appender, packs and records by outcome, what is in flight,
//! and how long packs wait for their answer; per connection, reconnects and state. Read over
//! JMX (a snapshot through the bridge) and summarised in a periodic log line.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::delivery::Outcome;
use crate::supervise::lock;

/// Latency buckets: four per power of two of microseconds, up to about 19 hours.
const BUCKETS: usize = 4 * 36;

/// The recent latency figures are over the packs answered since the newest of these marks of
/// the lifetime counts that is at least [`RECENT`] old (else the oldest, the one taken when the
/// appender opened), one mark taken every [`MARK_EVERY`]: about the last 60 to 70 s. While the
/// sweep that takes them is held (the runtime busy), the window reaches back to the last mark
/// before the hold, so what was answered meanwhile stays in it. Lifetime figures of a node up
/// for weeks hide an hour of slow answers.
const MARKS: usize = 7;
const MARK_EVERY: Duration = Duration::from_secs(10);
const RECENT: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct ConnectionMetrics {
    pub reconnects: AtomicU64,
    pub connected: AtomicBool,
    /// Connections the broker closed because another client connected with the same id.
    pub takeovers: AtomicU64,
}

pub struct AppenderMetrics {
    packs: [AtomicU64; Outcome::COUNT],
    records_delivered: AtomicU64,
    records_failed: AtomicU64,
    in_flight: AtomicI64,
    latency: [AtomicU64; BUCKETS],
    /// The lifetime latency counts every [`MARK_EVERY`], oldest first, at most [`MARKS`].
    marks: Mutex<VecDeque<(Instant, Histogram)>>,
}

/// Packs by latency bucket.
#[derive(Clone, Copy)]
struct Histogram([u64; BUCKETS]);

impl Histogram {
    /// The `q` quantile (0..=1), as its bucket's upper bound; zero if none.
    fn quantile(&self, q: f64) -> Duration {
        let total: u64 = self.0.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_limit(i);
            }
        }
        bucket_limit(BUCKETS - 1)
    }

    /// What was counted since `earlier`, a mark of the same counts.
    fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram(std::array::from_fn(|i| {
            self.0[i].saturating_sub(earlier.0[i])
        }))
    }
}

/// A consistent-enough copy of the counters (each read atomically, not all at one instant).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    pub packs_delivered: u64,
    pub packs_connection_error: u64,
    pub packs_remote_error: u64,
    pub packs_internal_error: u64,
    pub records_delivered: u64,
    pub records_failed: u64,
    pub packs_in_flight: i64,
    pub records_awaiting_broker: u64,
    pub reconnects: u64,
    pub connected: bool,
    pub takeovers: u64,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    /// Over the packs answered in about the last minute (see [`MARKS`]).
    pub recent_latency_p50: Duration,
    pub recent_latency_p99: Duration,
}

fn index(outcome: Outcome) -> usize {
    usize::from(outcome.code())
}

fn bucket(latency: Duration) -> usize {
    let us = latency.as_micros().max(1) as f64;
    ((us.log2() * 4.0) as usize).min(BUCKETS - 1)
}

/// The upper bound of a bucket.
fn bucket_limit(i: usize) -> Duration {
    Duration::from_secs_f64(2f64.powf((i + 1) as f64 / 4.0) / 1e6)
}

impl Default for AppenderMetrics {
    fn default() -> Self {
        AppenderMetrics {
            packs: Default::default(),
            records_delivered: AtomicU64::new(0),
            records_failed: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            // From the start: a pack answered before the sweep's first mark is recent too.
            marks: Mutex::new(VecDeque::from([(Instant::now(), Histogram([0; BUCKETS]))])),
        }
    }
}

/// One pack in its appender's figures, in flight from `doAppend` until Kaa's callback for it
/// has returned: counted then, not when the answer is decided, because the one thread that
/// answers can be held by a callback or logging backend that blocks, and answers queue
/// meanwhile (`answer_lag`). Dropped unanswered (a panic on the way), it counts as the
/// internal error its pack is then answered.
pub struct Tally(Option<(Arc<AppenderMetrics>, usize, Instant)>);

impl Tally {
    /// A pack of `records` records handed over now.
    pub fn start(metrics: &Arc<AppenderMetrics>, records: usize) -> Tally {
        metrics.started();
        Tally(Some((Arc::clone(metrics), records, Instant::now())))
    }

    /// Kaa's callback has its answer, `outcome`.
    pub fn answered(mut self, outcome: Outcome) {
        if let Some((metrics, records, started)) = self.0.take() {
            metrics.finished(outcome, records, started.elapsed());
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if let Some((metrics, records, started)) = self.0.take() {
            metrics.finished(Outcome::InternalError, records, started.elapsed());
        }
    }
}

impl AppenderMetrics {
    /// Packs taken and not yet answered to Kaa (answered, their callback queued or running,
    /// included).
    pub(crate) fn in_flight(&self) -> usize {
        usize::try_from(self.in_flight.load(Ordering::Relaxed)).unwrap_or(0)
    }

    fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A pack of `records` records was answered `outcome` after `latency`.
    fn finished(&self, outcome: Outcome, records: usize, latency: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.packs[index(outcome)].fetch_add(1, Ordering::Relaxed);
        let counter = if outcome == Outcome::Delivered {
            &self.records_delivered
        } else {
            &self.records_failed
        };
        counter.fetch_add(records as u64, Ordering::Relaxed);
        self.latency[bucket(latency)].fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self) -> Histogram {
        Histogram(std::array::from_fn(|i| {
            self.latency[i].load(Ordering::Relaxed)
        }))
    }

    /// Marks the latency counts for the recent figures, if the last mark is [`MARK_EVERY`]
    /// old; called often (the appender's sweep), it does little else.
    pub fn mark(&self, now: Instant) {
        let mut marks = lock(&self.marks);
        if marks
            .back()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) < MARK_EVERY)
        {
            return;
        }
        marks.push_back((now, self.counts()));
        while marks.len() > MARKS {
            marks.pop_front();
        }
    }

    pub fn snapshot(&self, connection: &ConnectionMetrics, awaiting_broker: usize) -> Snapshot {
        self.snapshot_at(connection, awaiting_broker, Instant::now())
    }

    fn snapshot_at(
        &self,
        connection: &ConnectionMetrics,
        awaiting_broker: usize,
        now: Instant,
    ) -> Snapshot {
        let counts = self.counts();
        let recent = {
            let marks = lock(&self.marks);
            let start = marks
                .iter()
                .rev()
                .find(|(at, _)| now.saturating_duration_since(*at) >= RECENT)
                .or(marks.front());
            start.map_or(counts, |(_, mark)| counts.since(mark))
        };
        let packs = |o: Outcome| self.packs[index(o)].load(Ordering::Relaxed);
        Snapshot {
            packs_delivered: packs(Outcome::Delivered),
            packs_connection_error: packs(Outcome::ConnectionError),
            packs_remote_error: packs(Outcome::RemoteError),
            packs_internal_error: packs(Outcome::InternalError),
            records_delivered: self.records_delivered.load(Ordering::Relaxed),
            records_failed: self.records_failed.load(Ordering::Relaxed),
            packs_in_flight: self.in_flight.load(Ordering::Relaxed),
            records_awaiting_broker: awaiting_broker as u64,
            reconnects: connection.reconnects.load(Ordering::Relaxed),
            connected: connection.connected.load(Ordering::Relaxed),
            takeovers: connection.takeovers.load(Ordering::Relaxed),
            latency_p50: counts.quantile(0.5),
            latency_p99: counts.quantile(0.99),
            recent_latency_p50: recent.quantile(0.5),
            recent_latency_p99: recent.quantile(0.99),
        }
    }
}

/// One JMX attribute's value; its variant is the attribute's type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure {
    Count(i64),
    Flag(bool),
    Millis(f64),
}

impl Figure {
    /// The attribute's type as JMX names it.
    pub fn java_type(self) -> &'static str {
        match self {
            Figure::Count(_) => "long",
            Figure::Flag(_) => "boolean",
            Figure::Millis(_) => "double",
        }
    }
}

/// What JMX shows, declared once: each figure's attribute name and description, in the order
/// of [`Snapshot::figures`], whose values give their types. The bridge builds the JMX bean's
/// attributes from this table and answers its reads.
pub const FIGURES: [(&str, &str); 15] = [
    ("PacksDelivered", "Packs answered onSuccess"),
    ("PacksFailedConnection", "Packs answered onConnectionError"),
    ("PacksFailedRemote", "Packs answered onRemoteError"),
    ("PacksFailedInternal", "Packs answered onInternalError"),
    ("RecordsDelivered", "Records of packs answered onSuccess"),
    ("RecordsFailed", "Records of packs answered with an error"),
    ("PacksInFlight", "Packs handed over and not answered yet"),
    (
        "RecordsAwaitingBroker",
        "Messages accepted by the connection and not yet confirmed by the broker, what \
         maxPendingRecords bounds: a record each, or a pack each with grouping PACK, and the \
         statusTopic message (shared connection's total)",
    ),
    (
        "Reconnects",
        "Connections made again after one was lost (shared connection's total)",
    ),
    (
        "Connected",
        "Whether every connection of the appender is up",
    ),
    (
        "AnswerLatencyP50Millis",
        "Median time from doAppend to the pack's answer, ms, over every pack since the \
         appender opened",
    ),
    (
        "AnswerLatencyP99Millis",
        "99th percentile of the time from doAppend to the pack's answer, ms, over every pack \
         since the appender opened",
    ),
    (
        "RecentAnswerLatencyP50Millis",
        "Median time from doAppend to the pack's answer, ms, over the packs answered in about \
         the last 60 to 70 s (in the appender's first minute: since it opened); 0 if none",
    ),
    (
        "RecentAnswerLatencyP99Millis",
        "99th percentile of the time from doAppend to the pack's answer, ms, over the packs \
         answered in about the last 60 to 70 s (in the appender's first minute: since it \
         opened); 0 if none",
    ),
    (
        "Takeovers",
        "Connections the broker closed because another client connected with the same client id \
         (a Kaa cluster whose nodes share one fixed id): said by an MQTT 5 broker, or inferred \
         from a close within seconds of being accepted, not under the node's own id, which no \
         other client holds (shared connection's total)",
    ),
];

impl Snapshot {
    /// In the order of [`FIGURES`], which names them; latencies in milliseconds.
    pub fn figures(self) -> [Figure; FIGURES.len()] {
        let count = |n: u64| Figure::Count(n as i64);
        let millis = |d: Duration| Figure::Millis(d.as_secs_f64() * 1e3);
        [
            count(self.packs_delivered),
            count(self.packs_connection_error),
            count(self.packs_remote_error),
            count(self.packs_internal_error),
            count(self.records_delivered),
            count(self.records_failed),
            Figure::Count(self.packs_in_flight),
            count(self.records_awaiting_broker),
            count(self.reconnects),
            Figure::Flag(self.connected),
            millis(self.latency_p50),
            millis(self.latency_p99),
            millis(self.recent_latency_p50),
            millis(self.recent_latency_p99),
            count(self.takeovers),
        ]
    }

    /// Whether a summary line is worth writing now, `last` the one of the last summary's
    /// time: packs were answered since, or some are in flight. An idle appender says nothing.
    pub fn worth_a_summary(&self, last: &Snapshot) -> bool {
        let answered = |s: &Snapshot| {
            s.packs_delivered
                + s.packs_connection_error
                + s.packs_remote_error
                + s.packs_internal_error
        };
        answered(self) != answered(last) || self.packs_in_flight > 0
    }

    /// The periodic INFO line.
    pub fn summary(&self) -> String {
        format!(
            "{} records in {} packs delivered; packs failed: {} connection, {} remote, {} internal; \
             {} packs in flight, {} records awaiting the broker; answer latency p50 {:.1} ms, \
             p99 {:.1} ms (last minute: p50 {:.1} ms, p99 {:.1} ms); {}, {} reconnects, {} client \
             id takeovers",
            self.records_delivered,
            self.packs_delivered,
            self.packs_connection_error,
            self.packs_remote_error,
            self.packs_internal_error,
            self.packs_in_flight,
            self.records_awaiting_broker,
            self.latency_p50.as_secs_f64() * 1e3,
            self.latency_p99.as_secs_f64() * 1e3,
            self.recent_latency_p50.as_secs_f64() * 1e3,
            self.recent_latency_p99.as_secs_f64() * 1e3,
            if self.connected { "connected" } else { "not connected" },
            self.reconnects,
            self.takeovers
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outcomes_and_quantiles() {
        let m = AppenderMetrics::default();
        let c = ConnectionMetrics::default();
        for i in 0..100u64 {
            m.started();
            let outcome = if i < 97 {
                Outcome::Delivered
            } else {
                Outcome::ConnectionError
            };
            m.finished(
                outcome,
                10,
                Duration::from_millis(if i < 98 { 2 } else { 400 }),
            );
        }
        m.started();
        let s = m.snapshot(&c, 7);
        assert_eq!(s.packs_delivered, 97);
        assert_eq!(s.packs_connection_error, 3);
        assert_eq!(s.records_delivered, 970);
        assert_eq!(s.records_failed, 30);
        assert_eq!(s.packs_in_flight, 1);
        assert_eq!(s.records_awaiting_broker, 7);
        // Buckets are a quarter power of two wide: the bound is within 19% above the value.
        assert!(
            s.latency_p50 >= Duration::from_millis(2)
                && s.latency_p50 < Duration::from_micros(2400)
        );
        assert!(
            s.latency_p99 >= Duration::from_millis(400)
                && s.latency_p99 < Duration::from_millis(480)
        );
    }

    /// With exactly half the packs up to a bucket, the median is that bucket's bound, not the
    /// next one's that holds packs.
    #[test]
    fn the_median_is_the_bucket_that_reaches_half_the_packs() {
        let m = AppenderMetrics::default();
        for millis in [1, 1, 100, 100] {
            m.started();
            m.finished(Outcome::Delivered, 1, Duration::from_millis(millis));
        }
        let s = m.snapshot(&ConnectionMetrics::default(), 0);
        assert!(
            s.latency_p50 >= Duration::from_millis(1) && s.latency_p50 < Duration::from_millis(2),
            "{:?}",
            s.latency_p50
        );
    }

    /// A pack is in flight until its answer is given, not decided, and a tally dropped on the
    /// way (a panic) is the internal error its pack is answered, not a pack in flight for ever.
    #[test]
    fn a_pack_counts_once_answered_or_dropped() {
        let m = Arc::new(AppenderMetrics::default());
        let c = ConnectionMetrics::default();
        let held = Tally::start(&m, 3);
        let dropped = Tally::start(&m, 2);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(m.snapshot(&c, 0).packs_in_flight, 2);
        drop(dropped);
        held.answered(Outcome::Delivered);
        let s = m.snapshot(&c, 0);
        assert_eq!(s.packs_in_flight, 0);
        assert_eq!((s.packs_delivered, s.records_delivered), (1, 3));
        assert_eq!((s.packs_internal_error, s.records_failed), (1, 2));
        assert!(
            s.latency_p50 >= Duration::from_millis(20),
            "{:?}",
            s.latency_p50
        );
    }

    /// Every figure a value of its own: a figure reading another's field shows.
    #[test]
    fn each_figure_sits_under_its_name() {
        let us = Duration::from_micros;
        let s = Snapshot {
            packs_delivered: 1,
            packs_connection_error: 2,
            packs_remote_error: 3,
            packs_internal_error: 4,
            records_delivered: 5,
            records_failed: 6,
            packs_in_flight: 7,
            records_awaiting_broker: 8,
            reconnects: 9,
            connected: true,
            takeovers: 13,
            latency_p50: us(1500),
            latency_p99: us(2500),
            recent_latency_p50: us(250),
            recent_latency_p99: us(750),
        };
        let figures = s.figures();
        let named = |name: &str| figures[FIGURES.iter().position(|(n, _)| *n == name).unwrap()];
        let expected = [
            ("PacksDelivered", Figure::Count(1)),
            ("PacksFailedConnection", Figure::Count(2)),
            ("PacksFailedRemote", Figure::Count(3)),
            ("PacksFailedInternal", Figure::Count(4)),
            ("RecordsDelivered", Figure::Count(5)),
            ("RecordsFailed", Figure::Count(6)),
            ("PacksInFlight", Figure::Count(7)),
            ("RecordsAwaitingBroker", Figure::Count(8)),
            ("Reconnects", Figure::Count(9)),
            ("Connected", Figure::Flag(true)),
            ("AnswerLatencyP50Millis", Figure::Millis(1.5)),
            ("AnswerLatencyP99Millis", Figure::Millis(2.5)),
            ("RecentAnswerLatencyP50Millis", Figure::Millis(0.25)),
            ("RecentAnswerLatencyP99Millis", Figure::Millis(0.75)),
            ("Takeovers", Figure::Count(13)),
        ];
        assert_eq!(expected.len(), FIGURES.len(), "every figure");
        for (name, figure) in expected {
            assert_eq!(named(name), figure, "{name}");
        }
    }

    /// The recent figures leave out what was answered before about the last minute, which the
    /// lifetime ones keep; in the appender's first minute they cover every pack; after minutes
    /// without a mark (the sweep held), they start at the last mark before, also once marks
    /// come again.
    #[test]
    fn recent_latency_covers_the_last_minute_or_so() {
        let m = AppenderMetrics::default();
        let c = ConnectionMetrics::default();
        let t0 = Instant::now();
        let answer = |packs: usize, millis: u64| {
            for _ in 0..packs {
                m.started();
                m.finished(Outcome::Delivered, 1, Duration::from_millis(millis));
            }
        };
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let slow = |d: Duration| d >= Duration::from_millis(400) && d < Duration::from_millis(480);
        let fast = |d: Duration| d >= Duration::from_millis(2) && d < Duration::from_micros(2400);
        answer(100, 2);
        let s = m.snapshot_at(&c, 0, t0);
        assert_eq!(
            (s.recent_latency_p50, s.recent_latency_p99),
            (s.latency_p50, s.latency_p99),
            "since the appender opened"
        );
        // Answered before the second mark.
        answer(50, 400);
        for k in 1..=6 {
            m.mark(at(10 * k));
        }
        answer(100, 2);
        // Too soon after the last mark to take another: the first is still the oldest.
        m.mark(at(65));
        let s = m.snapshot_at(&c, 0, at(65));
        assert!(slow(s.recent_latency_p99), "{:?}", s.recent_latency_p99);
        // A mark 70 s after the first drops it: the slow packs are over a minute old.
        m.mark(at(70));
        let s = m.snapshot_at(&c, 0, at(70));
        assert!(fast(s.recent_latency_p99), "{:?}", s.recent_latency_p99);
        assert!(fast(s.recent_latency_p50), "{:?}", s.recent_latency_p50);
        assert!(slow(s.latency_p99), "lifetime: {:?}", s.latency_p99);
        // 2 ms falls in the bucket up to 2^11 µs.
        let line = s.summary();
        assert!(
            line.contains("(last minute: p50 2.0 ms, p99 2.0 ms)"),
            "{line}"
        );
        // No mark since: read 130 s after the last, the window starts there, not at the oldest.
        answer(10, 400);
        let s = m.snapshot_at(&c, 0, at(200));
        assert!(slow(s.recent_latency_p50), "{:?}", s.recent_latency_p50);
        // Marks again: the slow packs of the hold stay in the window.
        m.mark(at(200));
        let s = m.snapshot_at(&c, 0, at(201));
        assert!(slow(s.recent_latency_p50), "{:?}", s.recent_latency_p50);
    }

    /// Marks count to the instant: one taken exactly [`MARK_EVERY`] after the last (read at 85
    /// s), and one exactly [`RECENT`] old (read at 70 s), start the recent window, leaving out
    /// the slow pack answered before them.
    #[test]
    fn the_recent_window_starts_at_marks_to_the_instant() {
        for (marks, read) in [(&[10, 20][..], 85), (&[10][..], 70)] {
            let m = AppenderMetrics::default();
            let t0 = Instant::now();
            let at = |secs: u64| t0 + Duration::from_secs(secs);
            let answer = |millis: u64| {
                m.started();
                m.finished(Outcome::Delivered, 1, Duration::from_millis(millis));
            };
            let (last, earlier) = marks.split_last().expect("a mark");
            earlier.iter().for_each(|&secs| m.mark(at(secs)));
            answer(400);
            m.mark(at(*last));
            answer(2);
            let s = m.snapshot_at(&ConnectionMetrics::default(), 0, at(read));
            assert!(
                s.recent_latency_p99 < Duration::from_millis(3),
                "marks {marks:?}, read at {read} s: {:?}",
                s.recent_latency_p99
            );
        }
    }

    /// The summary line gives each figure in its place, and is written only while packs
    /// flow: answered since the last one, or in flight.
    #[test]
    fn the_summary_says_every_figure_while_packs_flow() {
        let ms = Duration::from_millis;
        let s = Snapshot {
            packs_delivered: 11,
            packs_connection_error: 2,
            packs_remote_error: 3,
            packs_internal_error: 4,
            records_delivered: 110,
            records_failed: 9,
            packs_in_flight: 5,
            records_awaiting_broker: 50,
            reconnects: 6,
            connected: true,
            takeovers: 7,
            latency_p50: ms(1),
            latency_p99: ms(20),
            recent_latency_p50: ms(3),
            recent_latency_p99: ms(40),
        };
        assert_eq!(
            s.summary(),
            "110 records in 11 packs delivered; packs failed: 2 connection, 3 remote, 4 internal; \
             5 packs in flight, 50 records awaiting the broker; answer latency p50 1.0 ms, p99 \
             20.0 ms (last minute: p50 3.0 ms, p99 40.0 ms); connected, 6 reconnects, 7 client id \
             takeovers"
        );
        let idle = Snapshot {
            packs_in_flight: 0,
            ..s
        };
        assert!(
            !idle.worth_a_summary(&idle),
            "nothing answered, nothing in flight"
        );
        assert!(s.worth_a_summary(&s), "in flight");
        for answered in [
            Snapshot {
                packs_delivered: 12,
                ..idle
            },
            Snapshot {
                packs_connection_error: 3,
                ..idle
            },
            Snapshot {
                packs_remote_error: 4,
                ..idle
            },
            Snapshot {
                packs_internal_error: 5,
                ..idle
            },
        ] {
            assert!(answered.worth_a_summary(&idle), "{answered:?}");
        }
        let reconnected = Snapshot {
            reconnects: 9,
            ..idle
        };
        assert!(!reconnected.worth_a_summary(&idle), "no pack answered");
    }

    #[test]
    fn empty_metrics_report_zero_latency() {
        let s = AppenderMetrics::default().snapshot(&ConnectionMetrics::default(), 0);
        assert_eq!(s.latency_p99, Duration::ZERO);
        assert_eq!(s.recent_latency_p99, Duration::ZERO);
        assert!(!s.connected);
    }
}

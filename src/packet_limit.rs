//! The largest packet a broker takes, learned on one connection from how the broker behaves,
//! where it does not say (MQTT 3.1.1; MQTT 5 without a Maximum Packet Size, which
//! `protocol::Grants` holds messages to before they are written).
//!
//! Such a broker (EMQX takes 1 MB by default, AWS IoT 128 KB, Mosquitto its `max_packet_size`)
//! closes the connection at a larger PUBLISH, with no reason under MQTT 3.1.1. Kaa sends the
//! pack again, and every attempt reset the connection every appender shares and looked like
//! another client taking the id, which moves the id (see `connection::taken_over_by_another`).
//! So a close that leaves unacknowledged a message far larger than any the broker acknowledged
//! lately is blamed on that message and never taken for a takeover; when the same message is left
//! unacknowledged at a later close too, each time within moments of its write (a broker closes
//! as soon as it reads the packet's header), the connection takes its size for the broker's
//! limit, and messages that large fail their packs before they are written: that endpoint's
//! only, until another endpoint's message teaches one too (`PacketLimit::one`). At QoS 0, which
//! nothing acknowledges, the connection outliving a message by moments is its acknowledgement,
//! and every one far larger than any record taken waits for that before its pack is answered,
//! so that Kaa sends it again when the broker closed at it. Size alone would not do: a broker restarting, or nodes fighting over one client id, while a large record is
//! in flight would teach a limit the broker does not have. A record near the sizes the broker
//! took is not told from such a close at all. An endpoint whose oversized records differ at each
//! pack never meets the same-message rule: after [`SOURCE_SUSPECTS`] closes at its messages,
//! its messages about as large fail unwritten, that endpoint's alone, and not once the closes
//! are taken for a takeover or the broker takes a message as large.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::protocol::Origin;

/// A suspect passes the largest acknowledged message by this fraction of it: record sizes
/// wander a little, and a takeover fight easily finds a record a few bytes larger than any
/// acknowledged yet in flight, or sent again after the last push-out.
const MARGIN_DIVISOR: usize = 4;

/// A close this soon after the suspect's write can be the broker's answer to it; a slow link,
/// or a full socket ahead of the message, may delay that, and then nothing is learned.
const QUICK: Duration = Duration::from_secs(2);

/// Suspects remembered: several endpoints' records may be over the limit at once, each sent
/// again at its own pace.
const SUSPECTS: usize = 4;

/// Closes blamed, each within moments of its write, on a message of one endpoint's records
/// through one appender (one [`Origin`]) not blamed before, each within [`LIFE`] of the last:
/// then that origin's messages about as large fail unpublished ([`Sources`]) until [`LIFE`]
/// has passed without another. The same message at two closes teaches a ceiling; an endpoint
/// changing its oversized records at every pack (a byte, a length) never sends the same one
/// twice, and closed the connection every appender shares at each pack.
pub const SOURCE_SUSPECTS: usize = 3;

/// Origins counted at most: when full, the one blamed longest ago goes.
const SOURCES: usize = 4096;

/// One origin's messages blamed ([`SOURCE_SUSPECTS`]).
#[derive(Debug, Clone, Copy)]
struct Source {
    count: usize,
    last: Instant,
    /// The smallest of them: the broker taking a message as large says the closes were not
    /// about size.
    smallest: usize,
    /// Its messages from this size on are held: of each blamed, half its size (an endpoint
    /// shrinking its records a little at each pack would cost a close at each step towards the
    /// limit), but past what the broker had taken by the margin; the least of those, raised
    /// past each message the broker takes since.
    floor: usize,
}

/// The origins whose messages the broker closed the connection at ([`SOURCE_SUSPECTS`]).
#[derive(Debug, Default)]
struct Sources {
    by_origin: HashMap<Origin, Source>,
    /// Once an origin was held: the least floor of those held, and until when one may be. A
    /// message below that floor looks no further: no clock read, no lookup.
    held: Option<(usize, Instant)>,
    /// The least `smallest` of all: an ack below it clears none, and looks no further.
    least_smallest: Option<usize>,
}

impl Sources {
    /// `origin`'s message of `size` bytes was blamed at `now`, the broker having taken `acked`
    /// bytes at most; the connection's own messages (the status message) are no endpoint's.
    fn count(&mut self, origin: Origin, size: usize, acked: usize, now: Instant) {
        if origin.appender == 0 {
            return;
        }
        if self.by_origin.len() == SOURCES && !self.by_origin.contains_key(&origin) {
            let oldest = self.by_origin.iter().min_by_key(|(_, s)| s.last);
            if let Some(&oldest) = oldest.map(|(o, _)| o) {
                self.by_origin.remove(&oldest);
            }
        }
        let fresh = Source {
            count: 0,
            last: now,
            smallest: usize::MAX,
            floor: usize::MAX,
        };
        let source = self.by_origin.entry(origin).or_insert(fresh);
        if now.saturating_duration_since(source.last) >= LIFE {
            *source = fresh;
        }
        source.count += 1;
        source.last = now;
        source.smallest = source.smallest.min(size);
        let past_taken = acked + acked / MARGIN_DIVISOR + 1;
        source.floor = source.floor.min((size / 2).max(past_taken));
        let (floor, smallest) = (source.floor, source.smallest);
        if source.count >= SOURCE_SUSPECTS {
            let least = self.held.map_or(floor, |(f, _)| f.min(floor));
            self.held = Some((least, now + LIFE));
        }
        self.least_smallest = Some(self.least_smallest.map_or(smallest, |l| l.min(smallest)));
    }

    /// Whether `origin`'s message of `size` bytes is held; `clock` is read only for a message
    /// above the least held floor.
    fn refuses(&self, origin: Origin, size: usize, clock: impl FnOnce() -> Instant) -> bool {
        match self.held {
            Some((floor, until)) if size >= floor => {
                let now = clock();
                now < until
                    && self.by_origin.get(&origin).is_some_and(|s| {
                        s.count >= SOURCE_SUSPECTS
                            && now.saturating_duration_since(s.last) < LIFE
                            && size >= s.floor
                    })
            }
            _ => false,
        }
    }

    /// The broker took a message of `size` bytes: an origin with a message that large blamed
    /// was blamed for closes that were not about size, and no origin's messages that large
    /// are held any longer.
    fn taken(&mut self, size: usize) {
        let floor = self.held.is_some_and(|(f, _)| size >= f);
        if !floor && self.least_smallest.is_none_or(|l| size < l) {
            return;
        }
        self.by_origin.retain(|_, s| s.smallest > size);
        for source in self.by_origin.values_mut() {
            source.floor = source.floor.max(size + 1);
        }
        self.least_smallest = self.by_origin.values().map(|s| s.smallest).min();
        let held = self
            .by_origin
            .values()
            .filter(|s| s.count >= SOURCE_SUSPECTS);
        let least = held.map(|s| s.floor).min();
        self.held = self.held.zip(least).map(|((_, until), f)| (f, until));
    }

    /// No origin is held past `now`: messages above the least floor stop reading the clock.
    fn expire(&mut self, now: Instant) {
        self.held = self.held.filter(|&(_, until)| now < until);
    }

    fn forget(&mut self) {
        *self = Sources::default();
    }
}

/// How long a learned limit, and a suspect, hold. Then messages that large are written again:
/// a broker whose limit was raised takes them (and lifts the limit), and a limit taught by a
/// network that dropped twice under the same message lets records through again; a broker
/// that does limit closes the connection again, and two more closes teach the limit again.
pub(crate) const LIFE: Duration = Duration::from_secs(600);

/// A message as the packet limit sees it: its PUBLISH packet's size, and a mark that tells the
/// same message sent again from another of that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    pub size: usize,
    mark: u64,
}

impl Measure {
    /// Marked by the end of its payload, FNV-1a over at most 32 bytes: a record sent again
    /// ends the same, also where a header with the time of the append comes first (`JSON_WITH_HEADER`).
    pub fn of(size: usize, payload: &[u8]) -> Measure {
        let tail = &payload[payload.len().saturating_sub(32)..];
        let mark = tail.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Measure { size, mark }
    }
}

/// Whether a message of `size` bytes passes one of `than` bytes by the margin.
pub fn far_larger(size: usize, than: usize) -> bool {
    size > than + than / MARGIN_DIVISOR
}

/// The largest size noted lately: within the last one or two [`LIFE`]s (fixed windows of that
/// length: a size vouches until the end of the window after its own). A size the broker took
/// long ago no longer vouches for one it takes now: restarted with a lower limit (an
/// operator's change), it closes at sizes between the two, and against the old high-water
/// those were never blamed, so each resend of such a record reset the shared connection
/// until the node restarted.
#[derive(Debug, Default)]
struct Recent {
    /// The largest of the current window, and of the one before it.
    largest: usize,
    before: usize,
    /// When the current window began.
    window: Option<Instant>,
}

impl Recent {
    fn note(&mut self, size: usize, now: Instant) {
        let start = *self.window.get_or_insert(now);
        let age = now.saturating_duration_since(start);
        if age >= LIFE {
            // The window after the one that ended; after a whole window without a size, one
            // from now, with nothing before it.
            (self.before, self.window) = if age < 2 * LIFE {
                (self.largest, Some(start + LIFE))
            } else {
                (0, Some(now))
            };
            self.largest = 0;
        }
        self.largest = self.largest.max(size);
    }

    fn get(&self, now: Instant) -> usize {
        let Some(start) = self.window else {
            return 0;
        };
        let age = now.saturating_duration_since(start);
        if age < LIFE {
            self.largest.max(self.before)
        } else if age < 2 * LIFE {
            self.largest
        } else {
            0
        }
    }
}

/// What one connection (across its reconnects to one broker) knows of its broker's packet
/// limit. Sizes are
/// those of the PUBLISH packets (`protocol::Outbox::packet_size`).
#[derive(Debug, Default)]
pub struct PacketLimit {
    /// The largest message the broker acknowledged lately (PUBACK, PUBREC; refused ones too:
    /// the broker read them).
    acked: Recent,
    /// The largest of them that was a record's, not the connection's own status message, or a
    /// QoS 0 record the connection outlived: what QoS 0 messages are measured against.
    records: Recent,
    /// Messages left unacknowledged at earlier closes within moments of their write, larger
    /// than any acknowledged since, and when; newest last.
    suspects: VecDeque<(Measure, Instant)>,
    /// The limit learned: messages this large or larger are not written, whoever's.
    everyone: Option<Ceiling>,
    /// A limit one endpoint's message taught: that endpoint's messages this large or larger
    /// are not written, through any appender (a copy of its records another appender made,
    /// blamed next, is no other endpoint's doing). Its closes may have been at something else
    /// of its own (under MQTT 3.1.1 a broker closes at a publish its ACL denies without a
    /// reason: a record to a denied topic ahead of a large one, sent again, teaches a false
    /// limit), so it holds every endpoint's messages only once another endpoint's message
    /// teaches one too, at the larger of the two: one false limit does not lower what the
    /// others may send.
    one: Option<(Ceiling, Origin)>,
    /// Suspects blamed per origin.
    sources: Sources,
    /// The broker said its limit (MQTT 5's Maximum Packet Size), which `protocol::Grants`
    /// holds messages to: nothing is learned, and no message is unproven.
    announced: bool,
}

/// A packet limit learned from the broker's closes ([`PacketLimit::blame`]).
#[derive(Debug, Clone, Copy)]
struct Ceiling {
    size: usize,
    /// When it was learned.
    at: Instant,
}

impl Ceiling {
    fn live(self, now: Instant) -> bool {
        now.saturating_duration_since(self.at) < LIFE
    }
}

/// What a close by the broker says about the packet limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blamed {
    /// A close with this message unacknowledged, far larger than any acknowledged: it may be
    /// over the broker's limit.
    Suspect { size: usize, acked: usize },
    /// The same message unacknowledged again: messages of `ceiling` bytes or more are refused,
    /// of every origin or of the message's own only ([`PacketLimit::one`]).
    Ceiling {
        size: usize,
        ceiling: usize,
        acked: usize,
        everyone: bool,
    },
}

impl PacketLimit {
    /// The broker acknowledged a message of `size` bytes: that size gets through, and so does
    /// any smaller. Returns the ceiling it lifts, if it reached one: a message handed to the
    /// client before the ceiling was learned, or tried again after it expired, and taken.
    pub fn acked(&mut self, size: usize, now: Instant) -> Option<usize> {
        self.acked.note(size, now);
        self.suspects.retain(|(m, _)| m.size > size);
        self.sources.expire(now);
        self.sources.taken(size);
        let everyone = self.everyone.take_if(|c| size >= c.size).map(|c| c.size);
        let one = self
            .one
            .take_if(|(c, _)| size >= c.size)
            .map(|(c, _)| c.size);
        everyone.max(one)
    }

    /// The broker closed the connection (not a refusal, not a takeover it said) at `now` with
    /// `largest` the largest message written after the last one it acknowledged, and not
    /// acknowledged itself, when it was written, and whose records it is (QoS 1 and 2; at QoS
    /// 0, which nothing acknowledges, those proving themselves, `delivery::Tracker::proving`,
    /// and those whose write failed with the connection). Blamed when the broker has taken
    /// something, and the message passes all it took by a margin; a ceiling when the same
    /// message was blamed at an earlier close, both times within moments of its write; counted
    /// against its origin when new ([`SOURCE_SUSPECTS`]).
    ///
    /// A record's message passes the records the broker took ([`PacketLimit::unproven_record`]),
    /// or with none taken lately what it acknowledged (the status message), but not at a close
    /// that `may_be_takeover` (silent, soon after the connect): on connections too short-lived
    /// to carry a record through (nodes fighting over one client id) the status message would
    /// make every such close a record's size, never the takeover it is.
    pub fn blame(
        &mut self,
        largest: Option<(Measure, Instant, Origin)>,
        now: Instant,
        may_be_takeover: bool,
    ) -> Option<Blamed> {
        let acked = self.acked.get(now);
        let (message, written, origin) = largest.filter(|(m, _, origin)| {
            // The connection's own message (the status message) is no endpoint's record.
            let record = origin.appender != 0;
            if record && (self.records.get(now) > 0 || may_be_takeover) {
                self.unproven_record(m.size, now)
            } else {
                self.unproven(m.size, now)
            }
        })?;
        let size = message.size;
        self.suspects
            .retain(|&(_, at)| now.saturating_duration_since(at) < LIFE);
        if now.saturating_duration_since(written) > QUICK {
            return Some(Blamed::Suspect { size, acked });
        }
        if self.suspects.iter().any(|&(m, _)| m == message) {
            let everyone = self.everyone.filter(|c| c.live(now)).map(|c| c.size);
            let one = self.one.filter(|(c, _)| c.live(now));
            let to_all = match one {
                // The connection's own message (the status message) is no endpoint's doing.
                _ if origin.appender == 0 => Some(size),
                Some((c, of)) if !of.same_endpoint(origin) => Some(c.size.max(size)),
                _ => None,
            };
            let ceiling = match to_all {
                Some(all) => {
                    let all = everyone.map_or(all, |e| e.min(all));
                    self.everyone = Some(Ceiling { size: all, at: now });
                    if origin.appender != 0 {
                        // Its evidence is spent: with a third origin's it would lower the limit.
                        self.one = None;
                    }
                    all
                }
                None => {
                    let own = one.map_or(size, |(c, _)| c.size.min(size));
                    self.one = Some((Ceiling { size: own, at: now }, origin));
                    own
                }
            };
            return Some(Blamed::Ceiling {
                size,
                ceiling,
                acked,
                everyone: to_all.is_some(),
            });
        }
        if self.suspects.len() == SUSPECTS {
            self.suspects.pop_front();
        }
        self.suspects.push_back((message, now));
        self.sources.count(origin, size, acked, now);
        Some(Blamed::Suspect { size, acked })
    }

    /// Whether a message of `size` bytes of `origin`'s records is not to be written: the
    /// broker closed the connection at [`SOURCE_SUSPECTS`] of that origin's messages, and it is
    /// about as large ([`Source::floor`]).
    pub fn refuses_source(&self, origin: Origin, size: usize) -> bool {
        self.sources.refuses(origin, size, Instant::now)
    }

    /// The closes were taken for another client with the client id: what they taught of
    /// origins goes (a fight's closes, each just after a large record of one endpoint, would
    /// hold that endpoint's records though the broker takes them).
    pub fn forget_sources(&mut self) {
        self.sources.forget();
    }

    /// A connection was made, to a broker that said its limit or not. Said, it replaces what
    /// was learned: that broker's closes have other causes, and a QoS 0 record within its
    /// limit would wait to prove itself for nothing.
    pub fn announced(&mut self, said: bool) {
        self.announced = said;
        if said {
            self.suspects.clear();
            self.everyone = None;
            self.one = None;
            self.sources.forget();
        }
    }

    /// Whether a close may be blamed on a message of `size` bytes: the broker did not say its
    /// limit, took a message, and this one passes the largest it took by the margin.
    pub fn unproven(&self, size: usize, now: Instant) -> bool {
        let acked = self.acked.get(now);
        !self.announced && acked > 0 && far_larger(size, acked)
    }

    /// The broker took a record's message of `size` bytes (after [`PacketLimit::acked`]).
    pub fn record_taken(&mut self, size: usize, now: Instant) {
        self.records.note(size, now);
    }

    /// Whether a record's message of `size` bytes passes by the margin a record the broker
    /// took: at QoS 0 it is to prove itself before it is answered (`delivery::Tracker::proving`),
    /// and a close may be blamed on it (with no record taken lately, also a close that cannot
    /// be a takeover may, measured by the status message: [`PacketLimit::blame`]). The status
    /// message alone is no measure: with it as the only one, nearly every QoS 0 record would
    /// wait, and on connections too short-lived to carry a record through (nodes fighting over
    /// one client id) every close would be blamed on a record's size, never taken for the
    /// takeover it is.
    pub fn unproven_record(&self, size: usize, now: Instant) -> bool {
        let records = self.records.get(now);
        records > 0 && far_larger(size, records) && self.unproven(size, now)
    }

    /// The learned ceiling a message of `size` bytes of `origin`'s records reaches, and
    /// whether it holds every origin's messages.
    pub fn refuses(&self, size: usize, origin: Origin) -> Option<(usize, bool)> {
        if self.everyone.is_none() && self.one.is_none() {
            return None;
        }
        self.held(size, origin, Instant::now())
    }

    /// [`PacketLimit::refuses`] at `now`.
    fn held(&self, size: usize, origin: Origin, now: Instant) -> Option<(usize, bool)> {
        let everyone = self.everyone.filter(|c| c.live(now) && size >= c.size);
        let one = self
            .one
            .filter(|&(c, of)| c.live(now) && size >= c.size && of.same_endpoint(origin));
        match (everyone, one) {
            (Some(c), _) => Some((c.size, true)),
            (None, Some((c, _))) => Some((c.size, false)),
            (None, None) => None,
        }
    }

    /// The largest message acknowledged lately.
    pub fn largest_acked(&self, now: Instant) -> usize {
        self.acked.get(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl PacketLimit {
        /// The ceiling in force at `now` for a message of `size` bytes of `origin`'s.
        fn holds(&self, size: usize, origin: Origin, now: Instant) -> Option<usize> {
            self.held(size, origin, now).map(|(c, _)| c)
        }
    }

    /// The messages of `endpoint` through appender 1.
    fn origin(endpoint: u64) -> Origin {
        Origin {
            appender: 1,
            endpoint,
        }
    }

    /// The broker acknowledged a record's message of `size` bytes at `now`.
    fn took_record(limit: &mut PacketLimit, size: usize, now: Instant) {
        limit.acked(size, now);
        limit.record_taken(size, now);
    }

    /// The message `tail` ends with, written just before the close at `now`.
    fn written(size: usize, tail: &[u8], now: Instant) -> Option<(Measure, Instant, Origin)> {
        Some((Measure::of(size, tail), now, Origin::default()))
    }

    /// A limit that took a message of `acked` bytes and learned `ceiling` from the same
    /// message left unacknowledged at two closes at `now`.
    fn taught(acked: usize, ceiling: usize, now: Instant) -> PacketLimit {
        let mut limit = PacketLimit::default();
        limit.acked(acked, now);
        limit.blame(written(ceiling, b"a", now), now, false);
        limit.blame(written(ceiling, b"a", now), now, false);
        limit
    }

    #[test]
    fn the_same_message_unacknowledged_at_two_closes_teaches_a_ceiling() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(300, now);
        assert_eq!(
            limit.blame(written(132_000, b"a", now), now, false),
            Some(Blamed::Suspect {
                size: 132_000,
                acked: 300
            })
        );
        assert_eq!(
            limit.holds(usize::MAX, Origin::default(), now),
            None,
            "one close proves nothing"
        );
        assert_eq!(
            limit.blame(written(132_000, b"a", now), now, false),
            Some(Blamed::Ceiling {
                size: 132_000,
                ceiling: 132_000,
                acked: 300,
                everyone: true
            })
        );
        assert_eq!(limit.holds(132_000, Origin::default(), now), Some(132_000));
        assert_eq!(limit.holds(131_999, Origin::default(), now), None);
    }

    /// A record's message is measured against the records the broker took, not against the
    /// connection's own message (the status message): until a record is taken, no close that
    /// may be a takeover is blamed on a record's size, so that closes on connections too
    /// short-lived to carry one (nodes fighting over one client id) still count as takeovers.
    /// Another close (a connection that lived, an MQTT 5 "packet too large") is measured
    /// against what the broker acknowledged, as the connection's own message always is.
    #[test]
    fn a_records_size_is_measured_by_records_taken_at_a_close_that_may_be_a_takeover() {
        let now = Instant::now();
        let record = |tail: &[u8]| {
            let origin = Origin {
                appender: 1,
                endpoint: 7,
            };
            Some((Measure::of(9_000, tail), now, origin))
        };
        let mut limit = PacketLimit::default();
        limit.acked(300, now);
        assert_eq!(
            limit.blame(record(b"a"), now, true),
            None,
            "maybe a takeover"
        );
        let other = limit.blame(record(b"x"), now, false);
        assert!(other.is_some(), "a close that is no takeover");
        let own = limit.blame(written(9_000, b"b", now), now, true);
        assert!(own.is_some(), "the connection's own");
        limit.record_taken(300, now);
        assert_eq!(
            limit.blame(record(b"c"), now, true),
            Some(Blamed::Suspect {
                size: 9_000,
                acked: 300
            })
        );
    }

    /// Two closes at `message` of `origin`'s, each at its write: the ceiling they teach, and
    /// whether it holds everyone's messages.
    fn closed_twice_at(
        limit: &mut PacketLimit,
        message: Measure,
        origin: Origin,
        now: Instant,
    ) -> (usize, bool) {
        let of = || Some((message, now, origin));
        limit.blame(of(), now, false);
        match limit.blame(of(), now, false) {
            Some(Blamed::Ceiling {
                ceiling, everyone, ..
            }) => (ceiling, everyone),
            other => panic!("{other:?}"),
        }
    }

    /// A ceiling one endpoint's message taught holds that endpoint's messages only (its closes
    /// may have been at something else of its own: a record to a topic the broker's ACL denies,
    /// ahead of the large one), until another endpoint's message teaches one too: then every
    /// endpoint's, at the larger of the two (one of them may be false). A third endpoint's
    /// smaller one holds its own messages, not lowering everyone's; acknowledged, it goes.
    #[test]
    fn one_endpoints_closes_teach_a_limit_for_its_messages_only() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        took_record(&mut limit, 300, now);
        let mut teach = |size, tail: &[u8], endpoint| {
            closed_twice_at(&mut limit, Measure::of(size, tail), origin(endpoint), now)
        };
        assert_eq!(teach(9_000, b"a", 1), (9_000, false));
        assert_eq!(teach(12_000, b"b", 2), (12_000, true), "the larger");
        assert_eq!(teach(10_000, b"c", 4), (10_000, false), "not lower");
        assert_eq!(limit.holds(9_000, origin(1), now), None, "spent");
        assert_eq!(limit.holds(12_000, origin(3), now), Some(12_000));
        assert_eq!(limit.holds(11_999, origin(3), now), None);
        assert_eq!(limit.holds(10_000, origin(4), now), Some(10_000));
        assert_eq!(limit.held(12_000, origin(4), now), Some((12_000, true)));
        assert_eq!(limit.held(10_000, origin(4), now), Some((10_000, false)));
        assert_eq!(limit.acked(10_000, now), Some(10_000));
        assert_eq!(limit.holds(10_000, origin(4), now), None, "lifted");
        assert_eq!(limit.holds(12_000, origin(4), now), Some(12_000));
    }

    /// Through two appenders (Kaa hands every pack to each), one endpoint's copies of a record
    /// are still one endpoint's: the limit its closes taught holds both copies, and closes
    /// blamed on the other copy do not make it everyone's. Before, the other appender's copy
    /// counted as another endpoint's, and one endpoint lowered every endpoint's limit.
    #[test]
    fn one_endpoints_copies_through_two_appenders_do_not_teach_everyones_limit() {
        let now = Instant::now();
        let through = |appender| Origin {
            appender,
            endpoint: 7,
        };
        let mut limit = PacketLimit::default();
        took_record(&mut limit, 300, now);
        let mut teach = |size, tail: &[u8], origin| {
            closed_twice_at(&mut limit, Measure::of(size, tail), origin, now)
        };
        assert_eq!(teach(12_000, b"y", through(2)), (12_000, false));
        assert_eq!(teach(9_000, b"x", through(1)), (9_000, false), "its own");
        assert_eq!(limit.held(9_000, through(2), now), Some((9_000, false)));
        assert_eq!(limit.held(9_000, through(1), now), Some((9_000, false)));
        let other = Origin {
            appender: 1,
            endpoint: 8,
        };
        assert_eq!(limit.held(12_000, other, now), None, "another endpoint's");
        assert_eq!(
            limit.held(12_000, Origin::default(), now),
            None,
            "the status message"
        );
    }

    /// A broker reconfigured to say its limit (MQTT 5): what its silent closes taught before
    /// no longer holds messages back, and while it says it, none are suspected.
    #[test]
    fn a_limit_the_broker_says_replaces_one_learned() {
        let now = Instant::now();
        let mut limit = taught(300, 132_000, now);
        assert_eq!(limit.holds(132_000, Origin::default(), now), Some(132_000));

        limit.announced(true);
        assert_eq!(limit.holds(132_000, Origin::default(), now), None);
        assert_eq!(limit.blame(written(132_000, b"a", now), now, false), None);
        assert!(!limit.unproven_record(132_000, now));
    }

    /// Closes over different large messages (a broker restarting, a takeover fight) are
    /// blamed on them, and teach nothing. (Before c767e18: any two such closes set a ceiling
    /// no acknowledgement could lift.)
    #[test]
    fn closes_over_different_messages_teach_nothing() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(300, now);
        assert!(limit.blame(written(8_000, b"a", now), now, false).is_some());
        assert!(limit.blame(written(9_000, b"b", now), now, false).is_some());
        assert!(limit.blame(written(8_000, b"c", now), now, false).is_some());
        assert_eq!(limit.holds(usize::MAX, Origin::default(), now), None);
    }

    /// Four endpoints' records over the limit at once, each sent again in turn: the first is
    /// still remembered when it comes round again, and teaches its limit.
    #[test]
    fn four_suspects_at_once_are_all_remembered() {
        let now = Instant::now();
        let of = |endpoint, tail: &[u8]| {
            let origin = Origin {
                appender: 1,
                endpoint,
            };
            Some((Measure::of(9_000 + endpoint as usize, tail), now, origin))
        };
        let mut limit = PacketLimit::default();
        took_record(&mut limit, 300, now);
        for (endpoint, tail) in [(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d")] {
            assert!(matches!(
                limit.blame(of(endpoint, tail), now, false),
                Some(Blamed::Suspect { .. })
            ));
        }
        assert_eq!(
            limit.blame(of(1, b"a"), now, false),
            Some(Blamed::Ceiling {
                size: 9_001,
                ceiling: 9_001,
                acked: 300,
                everyone: false
            })
        );
    }

    /// Different messages of one endpoint's records (one origin) at three closes hold its
    /// messages from half the smallest blamed on: not at two, not another endpoint's, not its
    /// smaller ones, not the connection's own; and a suspect after [`LIFE`] counts anew.
    #[test]
    fn three_suspects_of_one_origin_hold_its_messages_about_as_large() {
        let now = Instant::now();
        let of = |size, tail: &[u8], o| Some((Measure::of(size, tail), now, o));
        let mut limit = PacketLimit::default();
        took_record(&mut limit, 300, now);
        limit.blame(of(8_002, b"a", origin(1)), now, false);
        limit.blame(of(8_001, b"b", origin(1)), now, false);
        assert!(!limit.refuses_source(origin(1), 8_000), "two");
        limit.blame(of(9_000, b"c", origin(1)), now, false);
        assert!(limit.refuses_source(origin(1), 8_000));
        assert!(limit.refuses_source(origin(1), 4_000), "half the smallest");
        assert!(
            !limit.refuses_source(origin(1), 3_999),
            "its records below that"
        );
        assert!(!limit.refuses_source(origin(2), 8_000), "another endpoint");
        for (size, tail) in [(30_000, b"g"), (30_001, b"h"), (30_002, b"i")] {
            limit.blame(of(size, tail, origin(3)), now, false);
        }
        assert!(limit.refuses_source(origin(3), 15_000));
        assert!(
            !limit.refuses_source(origin(3), 14_999),
            "each origin its own floor"
        );
        assert_eq!(
            limit.holds(usize::MAX, Origin::default(), now),
            None,
            "no ceiling"
        );
        for tail in [b"d", b"e", b"f"] {
            limit.blame(of(8_000, tail, Origin::default()), now, false);
        }
        assert!(
            !limit.refuses_source(Origin::default(), 8_000),
            "the connection's own"
        );

        let mut limit = PacketLimit::default();
        took_record(&mut limit, 300, now);
        limit.blame(of(8_000, b"a", origin(1)), now, false);
        limit.blame(of(8_001, b"b", origin(1)), now, false);
        let later = now + LIFE;
        limit.blame(
            Some((Measure::of(8_002, b"c"), later, origin(1))),
            later,
            false,
        );
        assert!(!limit.refuses_source(origin(1), 8_000), "counted anew");
    }

    /// A hold ends [`LIFE`] after the last close blamed on its origin, and the next ack
    /// forgets it, so that large messages stop reading the clock.
    #[test]
    fn a_held_origin_is_let_go_after_a_quiet_life() {
        let now = Instant::now();
        let origin = Origin {
            appender: 1,
            endpoint: 7,
        };
        let mut limit = PacketLimit::default();
        took_record(&mut limit, 300, now);
        for (size, tail) in [(9_000, b"a"), (9_001, b"b"), (9_002, b"c")] {
            limit.blame(Some((Measure::of(size, tail), now, origin)), now, false);
        }
        let almost = now + LIFE - Duration::from_secs(1);
        assert!(limit.sources.refuses(origin, 9_000, || almost));
        limit.acked(300, almost);
        assert!(limit.sources.held.is_some(), "still held");
        let later = now + LIFE;
        assert!(!limit.sources.refuses(origin, 9_000, || later), "expired");
        limit.acked(300, later);
        assert_eq!(limit.sources.held, None, "forgotten at the next ack");
    }

    /// With [`SOURCES`] origins counted, a new one pushes out the one blamed longest ago, not
    /// one blamed just now: that one's next close still holds its messages.
    #[test]
    fn a_full_count_of_origins_forgets_the_one_blamed_longest_ago() {
        let now = Instant::now();
        let at = |millis| now + Duration::from_millis(millis);
        let mut sources = Sources::default();
        for endpoint in 0..SOURCES as u64 {
            sources.count(origin(endpoint), 9_000, 300, at(endpoint));
        }
        let newest = origin(SOURCES as u64 - 1);
        sources.count(newest, 9_001, 300, at(SOURCES as u64 - 1));
        sources.count(origin(SOURCES as u64), 9_000, 300, at(SOURCES as u64));
        assert_eq!(sources.by_origin.len(), SOURCES);
        sources.count(newest, 9_002, 300, at(SOURCES as u64 + 1));
        let later = at(SOURCES as u64 + 2);
        assert!(sources.refuses(newest, 9_000, || later), "three closes");
        assert!(
            !sources.by_origin.contains_key(&origin(0)),
            "the oldest gone"
        );
    }

    /// Half a blamed size is never below what the broker took, by the margin; and the hold
    /// goes when the broker takes a message as large as one blamed (the closes were not about
    /// size), when the closes are taken for a takeover, or when the broker says its limit.
    #[test]
    fn a_held_origin_is_let_go_when_its_closes_were_not_about_size() {
        let now = Instant::now();
        let origin = Origin {
            appender: 1,
            endpoint: 7,
        };
        let held = |prepare: &dyn Fn(&mut PacketLimit)| {
            let mut limit = PacketLimit::default();
            took_record(&mut limit, 6_000, now);
            for (size, tail) in [(9_000, b"a"), (9_001, b"b"), (9_002, b"c")] {
                limit.blame(Some((Measure::of(size, tail), now, origin)), now, false);
            }
            prepare(&mut limit);
            (
                limit.refuses_source(origin, 9_000),
                limit.refuses_source(origin, 7_500),
            )
        };
        assert_eq!(held(&|_| ()), (true, false), "past 6,000 by the margin");
        let mut limit = PacketLimit::default();
        took_record(&mut limit, 300, now);
        for (size, tail) in [(20_000, b"a"), (20_001, b"b"), (20_002, b"c")] {
            limit.blame(Some((Measure::of(size, tail), now, origin)), now, false);
        }
        assert!(limit.refuses_source(origin, 10_000), "half of 20,000");
        limit.acked(12_000, now);
        assert!(!limit.refuses_source(origin, 12_000), "taken since");
        assert!(limit.refuses_source(origin, 12_001));
        assert!(limit.refuses_source(origin, 20_000));
        assert_eq!(
            held(&|l| {
                l.acked(8_999, now);
            }),
            (true, false)
        );
        assert_eq!(
            held(&|l| {
                l.acked(9_000, now);
            }),
            (false, false),
            "taken"
        );
        assert_eq!(held(&|l| l.forget_sources()), (false, false), "takeover");
        assert_eq!(held(&|l| l.announced(true)), (false, false), "announced");
    }

    /// A message written long before the close, or a suspect from long ago, teaches nothing:
    /// the broker answers a packet too large as soon as it reads its header.
    #[test]
    fn closes_long_after_the_write_or_the_suspect_teach_nothing() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(300, now);
        let long_ago = now
            .checked_sub(QUICK * 2)
            .expect("a monotonic clock this old");
        assert!(limit
            .blame(written(8_000, b"a", long_ago), now, false)
            .is_some());
        assert!(limit
            .blame(written(8_000, b"a", long_ago), now, false)
            .is_some());
        assert_eq!(
            limit.holds(usize::MAX, Origin::default(), now),
            None,
            "written long before"
        );
        assert!(limit.blame(written(8_000, b"a", now), now, false).is_some());
        let later = now + LIFE;
        assert!(matches!(
            limit.blame(written(8_000, b"a", later), later, false),
            Some(Blamed::Suspect { .. })
        ));
        assert_eq!(
            limit.holds(usize::MAX, Origin::default(), later),
            None,
            "suspect expired"
        );
    }

    /// A close exactly [`QUICK`] after the write is still the broker's answer to it; a moment
    /// later, it is not.
    #[test]
    fn a_close_exactly_quick_after_the_write_still_teaches() {
        let written_at = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(300, written_at);
        let closes_twice = |limit: &mut PacketLimit, after: Duration| {
            let now = written_at + after;
            limit.blame(written(8_000, b"a", written_at), now, false);
            limit.blame(written(8_000, b"a", written_at), now, false)
        };
        assert!(matches!(
            closes_twice(&mut limit, QUICK + Duration::from_millis(1)),
            Some(Blamed::Suspect { .. })
        ));
        assert!(matches!(
            closes_twice(&mut limit, QUICK),
            Some(Blamed::Ceiling { ceiling: 8_000, .. })
        ));
    }

    /// Within a quarter of what the broker acknowledged, a close is not told from a takeover
    /// fight, whose resent records are a few bytes larger: nothing is blamed.
    #[test]
    fn a_message_near_the_largest_acknowledged_is_not_blamed() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(1_800, now);
        assert_eq!(limit.blame(written(2_100, b"y", now), now, false), None);
        assert_eq!(limit.blame(written(2_100, b"y", now), now, false), None);
        assert_eq!(limit.holds(usize::MAX, Origin::default(), now), None);
    }

    /// A message a quarter larger than the largest acknowledged is within the margin; a byte
    /// more, it is blamed.
    #[test]
    fn a_message_a_quarter_larger_than_any_acknowledged_is_not_blamed_a_byte_more_is() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(1_000, now);
        assert_eq!(limit.blame(written(1_250, b"a", now), now, false), None);
        assert_eq!(
            limit.blame(written(1_251, b"a", now), now, false),
            Some(Blamed::Suspect {
                size: 1_251,
                acked: 1_000
            })
        );
    }

    #[test]
    fn an_acknowledgement_as_large_clears_the_suspicion() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(300, now);
        assert!(limit.blame(written(5_000, b"a", now), now, false).is_some());
        limit.acked(5_000, now);
        assert_eq!(
            limit.blame(written(5_000, b"a", now), now, false),
            None,
            "not larger"
        );
        assert!(limit.blame(written(7_000, b"a", now), now, false).is_some());
        assert_eq!(limit.holds(usize::MAX, Origin::default(), now), None);
    }

    /// Nothing acknowledged yet, nothing is blamed, not even the same message twice.
    #[test]
    fn closes_before_any_acknowledgement_blame_nothing() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        assert_eq!(limit.blame(written(200, b"a", now), now, false), None);
        assert_eq!(limit.blame(written(200, b"a", now), now, false), None);
        assert_eq!(limit.blame(None, now, false), None);
        assert_eq!(limit.holds(usize::MAX, Origin::default(), now), None);
    }

    /// The ceiling expires; one that large the broker acknowledges lifts it.
    #[test]
    fn a_ceiling_expires_or_is_lifted() {
        let now = Instant::now();
        let mut limit = taught(100, 1_000, now);
        let later = now + LIFE;
        assert_eq!(
            limit.holds(1_000, Origin::default(), later - Duration::from_secs(1)),
            Some(1_000)
        );
        assert_eq!(
            limit.holds(1_000, Origin::default(), later),
            None,
            "expired"
        );
        assert_eq!(limit.acked(999, now), None);
        assert_eq!(limit.acked(1_000, now), Some(1_000));
        assert_eq!(limit.holds(1_000, Origin::default(), now), None, "lifted");
    }

    /// A broker restarted with a lower limit: the large messages it took before vouch for
    /// their sizes for one more life at most, then a close at a size between the two limits is
    /// blamed, and taught at the next. (Before: the largest message ever acknowledged held for
    /// the connection's life, and such closes were never blamed: each resend of the record
    /// reset the shared connection.) A size acknowledged all along keeps vouching.
    #[test]
    fn sizes_the_broker_took_long_ago_vouch_for_nothing() {
        let start = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(900_000, start);
        limit.record_taken(900_000, start);
        // Restarted with a 128 KB limit: records of 4 KB are taken, 200 KB ones close it.
        let mut now = start;
        while now < start + 2 * LIFE {
            now += Duration::from_secs(60);
            limit.acked(4_000, now);
            limit.record_taken(4_000, now);
            if now < start + LIFE {
                assert!(
                    !limit.unproven(200_000, now),
                    "within the first life at {now:?}"
                );
            }
        }
        assert!(limit.unproven(200_000, now) && limit.unproven_record(200_000, now));
        assert!(
            !limit.unproven(4_500, now),
            "sizes taken lately still vouch"
        );
        assert!(matches!(
            limit.blame(written(200_000, b"a", now), now, false),
            Some(Blamed::Suspect { acked: 4_000, .. })
        ));
        assert_eq!(
            limit.blame(written(200_000, b"a", now), now, false),
            Some(Blamed::Ceiling {
                size: 200_000,
                ceiling: 200_000,
                acked: 4_000,
                everyone: true
            })
        );
    }

    /// Without a size noted since, one vouches until the end of the window after its own,
    /// then for nothing: the broker has then taken nothing lately, and nothing is blamed.
    #[test]
    fn a_size_vouches_for_two_windows_at_most() {
        let start = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(900_000, start);
        assert_eq!(limit.largest_acked(start + LIFE + LIFE / 2), 900_000);
        assert_eq!(limit.largest_acked(start + 2 * LIFE), 0);
        assert!(!limit.unproven(2_000_000, start + 2 * LIFE));
        // A later size starts the window after: the first still vouches through it.
        limit.acked(1_000, start + 3 * LIFE);
        limit.acked(800_000, start + 3 * LIFE + LIFE / 2);
        limit.acked(1_000, start + 4 * LIFE + LIFE / 2);
        assert_eq!(limit.largest_acked(start + 4 * LIFE + LIFE / 2), 800_000);
        assert_eq!(limit.largest_acked(start + 5 * LIFE), 1_000);
    }

    /// A record sent again (a new append time at the head of its header) keeps its mark;
    /// records of one size that end differently do not share one.
    #[test]
    fn a_message_sent_again_keeps_its_mark() {
        let record = |timestamp: &str, v: &str| {
            format!(
                r#"{{"header":{{"timestamp":{{"long":{timestamp}}}}},"event":{{"device":"d-17","v":{v}}}}}"#
            )
        };
        let first = record("1700000000001", "1.25");
        let again = record("1700000000932", "1.25");
        let other = record("1700000000001", "1.75");
        let measure = |text: &str| Measure::of(text.len(), text.as_bytes());
        assert_eq!(measure(&first), measure(&again));
        assert_ne!(measure(&first), measure(&other));
    }
}

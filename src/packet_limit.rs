//! The largest packet a broker takes, learned on one connection from how the broker behaves,
//! where it does not say (MQTT 3.1.1; MQTT 5 without a Maximum Packet Size, which
//! `protocol::Grants` holds messages to before they are written).
//!
//! Such a broker (EMQX takes 1 MB by default, AWS IoT 128 KB, Mosquitto its `max_packet_size`)
//! closes the connection at a larger PUBLISH, with no reason under MQTT 3.1.1. Kaa sends the
//! pack again, and without this every attempt reset the connection every appender shares and
//! looked like another client taking the id, which moves the id (see
//! `connection::taken_over_by_another`). So a close that leaves unacknowledged a message larger
//! than any the broker acknowledged makes it a suspect; when the same message is left
//! unacknowledged at a later close too (Kaa sent it again), the connection takes its size for
//! the broker's limit, and messages that large fail their packs before they are written.
//! Either close is never taken for a takeover. Size alone would not do: a broker restarting
//! twice, or nodes fighting over one client id, while large records are in flight would teach
//! a limit the broker does not have.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A first close is not counted as a takeover when its suspect passes the largest acknowledged
/// message by this fraction of it: record sizes wander a little, and a takeover fight easily
/// finds a record a few bytes larger than any acknowledged yet in flight. A broker's packet
/// limit is met by a message far past the usual, or by the same one again (below).
const MARGIN_DIVISOR: usize = 4;

/// Suspects remembered: several endpoints' records may be over the limit at once, each sent
/// again at its own pace.
const SUSPECTS: usize = 4;

/// How long a learned limit holds. Then one message that large is tried again: a broker whose
/// limit was raised takes it (and lifts the limit), and a limit taught by a network that
/// dropped twice under the same message lets records through again; a broker that does limit
/// closes the connection once more at the same message, still a suspect, and the limit is
/// back at once.
const CEILING_LIFE: Duration = Duration::from_secs(600);

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

/// What one connection (across its reconnects) knows of its broker's packet limit. Sizes are
/// those of the PUBLISH packets (`protocol::Outbox::packet_size`).
#[derive(Debug, Default)]
pub struct PacketLimit {
    /// The largest message the broker acknowledged (PUBACK, PUBREC; refused ones too: the
    /// broker read them).
    acked: usize,
    /// Messages left unacknowledged at earlier closes, larger than any acknowledged since;
    /// newest last.
    suspects: VecDeque<Measure>,
    /// The limit learned, and when: messages this large or larger are not written.
    ceiling: Option<(usize, Instant)>,
}

/// What a close by the broker says about the packet limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blamed {
    /// The first close with this message unacknowledged, far larger than any acknowledged: it
    /// may be over the broker's limit.
    Suspect { size: usize, acked: usize },
    /// The same message unacknowledged again: messages of `ceiling` bytes or more are refused.
    Ceiling {
        size: usize,
        ceiling: usize,
        acked: usize,
    },
}

impl PacketLimit {
    /// The broker acknowledged a message of `size` bytes: that size gets through, and so does
    /// any smaller. Returns the ceiling it lifts, if it reached one: a message handed to the
    /// client before the ceiling was learned, or tried again after it expired, and taken.
    pub fn acked(&mut self, size: usize) -> Option<usize> {
        self.acked = self.acked.max(size);
        self.suspects.retain(|m| m.size > size);
        self.ceiling.take_if(|(c, _)| size >= *c).map(|(c, _)| c)
    }

    /// The broker closed the connection (not a refusal, not a takeover it said) with
    /// `largest` the largest message written after the last one it acknowledged, and not
    /// acknowledged itself (QoS 1 and 2: a QoS 0 message is answered when written and gives no
    /// sign of having got through, so it is never blamed). Blames it when the broker has
    /// acknowledged something, nothing as large, and it was left unacknowledged at an earlier
    /// close too; or, as a suspect only, when it is far larger than anything acknowledged.
    pub fn blame(&mut self, largest: Option<Measure>, now: Instant) -> Option<Blamed> {
        let acked = self.acked;
        // Before any acknowledgement the broker has shown nothing of what it takes, and a
        // takeover fight over identical messages would find the same one at two closes.
        let message = largest.filter(|m| acked > 0 && m.size > acked)?;
        if self.suspects.contains(&message) {
            let size = message.size;
            let ceiling = self.live(now).map_or(size, |c| c.min(size));
            self.ceiling = Some((ceiling, now));
            return Some(Blamed::Ceiling {
                size,
                ceiling,
                acked,
            });
        }
        if self.suspects.len() == SUSPECTS {
            self.suspects.pop_front();
        }
        self.suspects.push_back(message);
        (acked > 0 && message.size > acked + acked / MARGIN_DIVISOR).then_some(Blamed::Suspect {
            size: message.size,
            acked,
        })
    }

    /// The learned ceiling, when a message of `size` bytes reaches it.
    pub fn refuses(&self, size: usize) -> Option<usize> {
        self.ceiling?;
        self.ceiling_at(size, Instant::now())
    }

    /// The ceiling in force at `now`, when `size` reaches it.
    fn ceiling_at(&self, size: usize, now: Instant) -> Option<usize> {
        self.live(now).filter(|&c| size >= c)
    }

    /// The ceiling, unless it has expired at `now`.
    fn live(&self, now: Instant) -> Option<usize> {
        self.ceiling
            .filter(|&(_, at)| now.saturating_duration_since(at) < CEILING_LIFE)
            .map(|(c, _)| c)
    }

    /// The largest message acknowledged.
    pub fn largest_acked(&self) -> usize {
        self.acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(size: usize, tail: &[u8]) -> Option<Measure> {
        Some(Measure::of(size, tail))
    }

    #[test]
    fn the_same_message_unacknowledged_at_two_closes_teaches_a_ceiling() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(300);
        assert_eq!(
            limit.blame(message(132_000, b"a"), now),
            Some(Blamed::Suspect {
                size: 132_000,
                acked: 300
            })
        );
        assert_eq!(limit.refuses(1_000_000), None, "one close proves nothing");
        assert_eq!(
            limit.blame(message(132_000, b"a"), now),
            Some(Blamed::Ceiling {
                size: 132_000,
                ceiling: 132_000,
                acked: 300
            })
        );
        assert_eq!(limit.ceiling_at(132_000, now), Some(132_000));
        assert_eq!(limit.ceiling_at(131_999, now), None);
    }

    /// Two closes, each with another large message in flight (a broker restarting twice, a
    /// takeover fight), teach nothing, however far apart. (Before: any two such closes set a
    /// ceiling, and records that large failed for the life of the connection.)
    #[test]
    fn closes_over_different_messages_teach_nothing() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(300);
        assert!(limit.blame(message(8_000, b"a"), now).is_some());
        assert!(limit.blame(message(9_000, b"b"), now).is_some());
        assert!(
            limit.blame(message(8_000, b"c"), now).is_some(),
            "same size, other message"
        );
        assert_eq!(limit.ceiling_at(usize::MAX, now), None);
    }

    /// A record just over the limit, within a quarter of what the broker acknowledged: its
    /// first close is an ordinary one, its second teaches the ceiling. (Before: never blamed,
    /// every attempt reset the connection, and the closes were taken for a takeover.)
    #[test]
    fn a_message_near_the_largest_acknowledged_is_blamed_the_second_time() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(1_800);
        assert_eq!(limit.blame(message(2_100, b"y"), now), None);
        assert!(matches!(
            limit.blame(message(2_100, b"y"), now),
            Some(Blamed::Ceiling { ceiling: 2_100, .. })
        ));
    }

    #[test]
    fn an_acknowledgement_as_large_clears_the_suspicion() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(300);
        assert!(limit.blame(message(5_000, b"a"), now).is_some());
        limit.acked(5_000);
        assert_eq!(limit.blame(message(5_000, b"a"), now), None, "not larger");
        assert_eq!(limit.ceiling_at(usize::MAX, now), None);
    }

    /// Nothing acknowledged yet, nothing is blamed, not even the same message twice; nor a
    /// message no larger than one acknowledged.
    #[test]
    fn closes_over_ordinary_or_unmeasured_messages_blame_nothing() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        assert_eq!(limit.blame(message(200, b"a"), now), None);
        assert_eq!(limit.blame(message(200, b"a"), now), None);
        limit.acked(300);
        assert_eq!(limit.blame(message(370, b"b"), now), None);
        assert_eq!(limit.blame(None, now), None);
        assert_eq!(limit.blame(message(300, b"c"), now), None);
        assert_eq!(limit.ceiling_at(usize::MAX, now), None);
    }

    /// The ceiling expires, and a broker that does limit teaches it again at once, its
    /// message still a suspect; one that takes the message lifts it.
    #[test]
    fn a_ceiling_expires_and_is_learned_again_or_lifted() {
        let now = Instant::now();
        let mut limit = PacketLimit::default();
        limit.acked(100);
        limit.blame(message(1_000, b"a"), now);
        limit.blame(message(1_000, b"a"), now);
        let later = now + CEILING_LIFE;
        assert_eq!(
            limit.ceiling_at(1_000, later - Duration::from_secs(1)),
            Some(1_000)
        );
        assert_eq!(limit.ceiling_at(1_000, later), None, "tried again");
        assert!(matches!(
            limit.blame(message(1_000, b"a"), later),
            Some(Blamed::Ceiling { ceiling: 1_000, .. })
        ));
        assert_eq!(limit.ceiling_at(1_000, later), Some(1_000));
        assert_eq!(limit.acked(999), None);
        assert_eq!(limit.acked(1_000), Some(1_000));
        assert_eq!(limit.ceiling_at(1_000, later), None);
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

//! The largest packet a broker takes, learned on one connection from how the broker behaves,
//! where it does not say (MQTT 3.1.1; MQTT 5 without a Maximum Packet Size, which
//! `protocol::Grants` holds messages to before they are written).
//!
//! Such a broker (EMQX takes 1 MB by default, AWS IoT 128 KB, Mosquitto its `max_packet_size`)
//! closes the connection at a larger PUBLISH, with no reason under MQTT 3.1.1. Kaa sends the
//! pack again, and without this every attempt reset the connection every appender shares and
//! looked like another client taking the id, which moves the id for good (see
//! `connection::taken_over_by_another`). So a close that leaves a message unacknowledged that
//! is well past anything the broker ever acknowledged is blamed on that message, not taken
//! for a takeover; a second one in a row teaches the connection a ceiling, and messages at or
//! above it fail their packs before they are written.

/// A suspect must pass the largest acknowledged message by this fraction of it: record sizes
/// wander a little, and a close by another client with the id (a takeover fight) easily finds
/// a record a few bytes larger than any acknowledged yet in flight. A broker's packet limit is
/// met by a message far past the usual.
const MARGIN_DIVISOR: usize = 4;

/// What one connection (across its reconnects) knows of its broker's packet limit. Sizes are
/// those of the PUBLISH packets (`protocol::Outbox::packet_size`).
#[derive(Debug, Default)]
pub struct PacketLimit {
    /// The largest message the broker acknowledged (PUBACK, PUBREC; refused ones too: the
    /// broker read them).
    acked: usize,
    /// The largest message left unacknowledged at a close blamed on it, while no message as
    /// large has been acknowledged since.
    suspect: Option<usize>,
    /// Learned from two such closes in a row: messages this large or larger are not written.
    ceiling: Option<usize>,
}

/// What a close by the broker says about the packet limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blamed {
    /// The first close with this message unacknowledged: it may be over the broker's limit.
    Suspect { size: usize, acked: usize },
    /// The second in a row: messages of `ceiling` bytes or more are refused from now on.
    Ceiling {
        size: usize,
        ceiling: usize,
        acked: usize,
    },
}

impl PacketLimit {
    /// The broker acknowledged a message of `size` bytes: that size gets through, and so does
    /// any smaller. Returns the ceiling it lifts, if it reached one: a message handed to the
    /// client before the ceiling was learned, and taken after all, shows it was wrong.
    pub fn acked(&mut self, size: usize) -> Option<usize> {
        self.acked = self.acked.max(size);
        if self.suspect.is_some_and(|s| size >= s) {
            self.suspect = None;
        }
        self.ceiling.take_if(|c| size >= *c)
    }

    /// The broker closed the connection (not a refusal, not a takeover it said) with
    /// `largest` the largest message written and not acknowledged (QoS 1 and 2: a QoS 0
    /// message is answered when written and gives no sign of having got through, so it is
    /// never blamed). Blames it when it is well past anything acknowledged; without any
    /// acknowledgement the broker has shown nothing of what it takes, and nothing is blamed.
    pub fn blame(&mut self, largest: Option<usize>) -> Option<Blamed> {
        let acked = self.acked;
        let size = largest.filter(|&s| acked > 0 && s > acked + acked / MARGIN_DIVISOR)?;
        match self.suspect.take() {
            None => {
                self.suspect = Some(size);
                Some(Blamed::Suspect { size, acked })
            }
            Some(first) => {
                let ceiling = self
                    .ceiling
                    .map_or(first.min(size), |c| c.min(first.min(size)));
                self.ceiling = Some(ceiling);
                Some(Blamed::Ceiling {
                    size,
                    ceiling,
                    acked,
                })
            }
        }
    }

    /// The learned ceiling, when a message of `size` bytes reaches it.
    pub fn refuses(&self, size: usize) -> Option<usize> {
        self.ceiling.filter(|&c| size >= c)
    }

    /// The largest message acknowledged.
    pub fn largest_acked(&self) -> usize {
        self.acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_closes_over_a_message_well_past_the_acknowledged_teach_a_ceiling() {
        let mut limit = PacketLimit::default();
        limit.acked(300);
        assert_eq!(
            limit.blame(Some(132_000)),
            Some(Blamed::Suspect {
                size: 132_000,
                acked: 300
            })
        );
        assert_eq!(limit.refuses(1_000_000), None, "one close proves nothing");
        assert_eq!(
            limit.blame(Some(140_000)),
            Some(Blamed::Ceiling {
                size: 140_000,
                ceiling: 132_000,
                acked: 300
            })
        );
        assert_eq!(limit.refuses(132_000), Some(132_000));
        assert_eq!(limit.refuses(131_999), None);
    }

    #[test]
    fn an_acknowledgement_as_large_clears_the_suspicion() {
        let mut limit = PacketLimit::default();
        limit.acked(300);
        assert!(limit.blame(Some(5_000)).is_some());
        limit.acked(5_000);
        assert_eq!(
            limit.blame(Some(7_000)),
            Some(Blamed::Suspect {
                size: 7_000,
                acked: 5_000
            }),
            "a first suspect again, not a second"
        );
        assert_eq!(limit.refuses(usize::MAX), None);
    }

    /// A takeover fight closes connections with records in flight a little larger than any
    /// acknowledged yet, or before anything was acknowledged: none of that is blamed.
    #[test]
    fn closes_over_ordinary_or_unmeasured_messages_blame_nothing() {
        let mut limit = PacketLimit::default();
        assert_eq!(limit.blame(Some(200)), None, "nothing acknowledged yet");
        limit.acked(300);
        assert_eq!(limit.blame(Some(370)), None);
        assert_eq!(limit.blame(None), None);
        assert_eq!(limit.blame(Some(370)), None);
        assert_eq!(limit.refuses(usize::MAX), None);
    }

    #[test]
    fn an_acknowledgement_at_the_ceiling_lifts_it() {
        let mut limit = PacketLimit::default();
        limit.acked(100);
        limit.blame(Some(1_000));
        limit.blame(Some(1_000));
        assert_eq!(limit.refuses(1_000), Some(1_000));
        assert_eq!(limit.acked(999), None);
        assert_eq!(limit.acked(1_000), Some(1_000));
        assert_eq!(limit.refuses(1_000), None);
    }
}

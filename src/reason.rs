//! The codes a broker answers with, said as the MQTT specifications say them: a log line names
//! what a broker's own documentation and logs name ("reason 0x87, not authorized"), never how a
//! Rust type prints.

use std::fmt;

/// What a broker answered: a refusal of a connection or a message, or why it closed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// An MQTT 5 reason code (CONNACK, PUBACK, PUBREC, PUBCOMP, DISCONNECT).
    V5(u8),
    /// An MQTT 3.1.1 CONNACK return code.
    V4(u8),
}

impl Reason {
    pub(crate) const NOT_AUTHORIZED: Reason = Reason::V5(0x87);
    const TOPIC_NAME_INVALID: Reason = Reason::V5(0x90);
    #[cfg(test)]
    pub(crate) const QUOTA_EXCEEDED: Reason = Reason::V5(0x97);

    /// Whether it refuses the message's topic (not authorized, topic name invalid): the broker
    /// refuses every message to that topic alike.
    pub(crate) fn refuses_topic(self) -> bool {
        matches!(self, Reason::NOT_AUTHORIZED | Reason::TOPIC_NAME_INVALID)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::V5(code) => write!(f, "reason 0x{code:02X}, {}", words_v5(code)),
            Reason::V4(code) => write!(f, "return code {code}, {}", words_v4(code)),
        }
    }
}

/// MQTT 5.0, section 2.4. 0x00 is said only of a DISCONNECT: a success is never a refusal.
fn words_v5(code: u8) -> &'static str {
    match code {
        0x00 => "normal disconnection",
        0x01 => "granted QoS 1",
        0x02 => "granted QoS 2",
        0x04 => "disconnect with will message",
        0x10 => "no matching subscribers",
        0x11 => "no subscription existed",
        0x18 => "continue authentication",
        0x19 => "re-authenticate",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x8B => "server shutting down",
        0x8C => "bad authentication method",
        0x8D => "keep alive timeout",
        0x8E => "session taken over",
        0x8F => "topic filter invalid",
        0x90 => "topic name invalid",
        0x91 => "packet identifier in use",
        0x92 => "packet identifier not found",
        0x93 => "receive maximum exceeded",
        0x94 => "topic alias invalid",
        0x95 => "packet too large",
        0x96 => "message rate too high",
        0x97 => "quota exceeded",
        0x98 => "administrative action",
        0x99 => "payload format invalid",
        0x9A => "retain not supported",
        0x9B => "QoS not supported",
        0x9C => "use another server",
        0x9D => "server moved",
        0x9E => "shared subscriptions not supported",
        0x9F => "connection rate exceeded",
        0xA0 => "maximum connect time",
        0xA1 => "subscription identifiers not supported",
        0xA2 => "wildcard subscriptions not supported",
        _ => "a code MQTT 5 does not define",
    }
}

/// MQTT 3.1.1, section 3.2.2.3.
fn words_v4(code: u8) -> &'static str {
    match code {
        0 => "connection accepted",
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "a code MQTT 3.1.1 does not define",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_said_with_its_code_and_the_specifications_words() {
        assert_eq!(Reason::V5(0x87).to_string(), "reason 0x87, not authorized");
        assert_eq!(
            Reason::V5(0x9B).to_string(),
            "reason 0x9B, QoS not supported"
        );
        assert_eq!(
            Reason::V4(4).to_string(),
            "return code 4, bad user name or password"
        );
        assert_eq!(
            Reason::V5(0xA7).to_string(),
            "reason 0xA7, a code MQTT 5 does not define"
        );
    }

    #[test]
    fn only_not_authorized_and_topic_name_invalid_refuse_a_topic() {
        let refusing: Vec<u8> = (0..=u8::MAX)
            .filter(|&c| Reason::V5(c).refuses_topic())
            .collect();
        assert_eq!(refusing, [0x87, 0x90]);
        assert!(!Reason::V4(5).refuses_topic(), "a CONNACK's");
    }
}

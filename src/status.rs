//! The liveness message on `statusTopic`: retained `online` on every connect, `offline` at
//! close and as the connection's last will. As small JSON naming the node
//! (`{"status":"online","host":"node-1","pid":4242,"instance":"9f3a06c1","since":"2026-03-01T12:00:00Z"}`),
//! or as the bare words earlier builds published.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::identity;
use crate::utc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusFormat {
    /// `online` / `offline`, for consumers that compare the payload with those words.
    Text,
    /// `{"status":…,"host":…,"pid":…,"instance":…,"since":…}`.
    Json,
}

impl StatusFormat {
    /// Its MQTT 5 content type, on every status message and the last will.
    pub fn content_type(self) -> &'static str {
        match self {
            StatusFormat::Text => "text/plain",
            StatusFormat::Json => "application/json",
        }
    }
}

/// Which message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Published when the broker accepts the connection.
    Online,
    /// Published when the appender closes the connection.
    Offline,
    /// The last will, left with the broker at connect and sent by it when the connection dies:
    /// nobody can stamp the moment, so its `since` is `null`.
    LastWill,
}

impl Status {
    /// The word it says, in either format.
    pub fn word(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Offline | Status::LastWill => "offline",
        }
    }
}

/// The payload of `status` in `format`; `now` stamps `since`.
pub fn payload(format: StatusFormat, status: Status, now: SystemTime) -> Vec<u8> {
    let word = status.word();
    match format {
        StatusFormat::Text => word.as_bytes().to_vec(),
        StatusFormat::Json => {
            let since = match status {
                Status::LastWill => "null".to_string(),
                _ => format!("\"{}\"", iso8601(now)),
            };
            // serde_json escapes the host name as JSON wants; the keys keep this order. The
            // instance (`{random}`) tells apart nodes with one host name and pid (containers
            // running the node as pid 1 with host networking).
            let host = serde_json::Value::from(identity::hostname());
            format!(
                "{{\"status\":\"{word}\",\"host\":{host},\"pid\":{},\"instance\":\"{}\",\
                 \"since\":{since}}}",
                std::process::id(),
                identity::random()
            )
            .into_bytes()
        }
    }
}

/// `YYYY-MM-DDThh:mm:ssZ` (UTC, whole seconds).
fn iso8601(t: SystemTime) -> String {
    utc::iso8601(
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_utc_iso8601() {
        let at = |s| iso8601(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    /// MQTT 5 subscribers read the format from the content type.
    #[test]
    fn each_format_names_its_content_type() {
        assert_eq!(StatusFormat::Text.content_type(), "text/plain");
        assert_eq!(StatusFormat::Json.content_type(), "application/json");
    }

    #[test]
    fn json_names_the_node_and_text_stays_bare() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let online: serde_json::Value =
            serde_json::from_slice(&payload(StatusFormat::Json, Status::Online, now)).unwrap();
        assert_eq!(online["status"], "online");
        assert_eq!(online["host"], identity::hostname());
        assert_eq!(online["pid"], std::process::id());
        assert_eq!(online["instance"], identity::random());
        let tag = identity::expand("{random}").unwrap();
        assert_eq!(online["instance"], tag.as_str(), "what {{random}} gives");
        assert_eq!(online["since"], "2023-11-14T22:13:20Z");
        let will: serde_json::Value =
            serde_json::from_slice(&payload(StatusFormat::Json, Status::LastWill, now)).unwrap();
        assert_eq!(will["status"], "offline");
        assert!(will["since"].is_null());
        let offline = payload(StatusFormat::Json, Status::Offline, now);
        assert!(String::from_utf8(offline.clone())
            .unwrap()
            .starts_with("{\"status\":\"offline\","));
        let offline: serde_json::Value = serde_json::from_slice(&offline).unwrap();
        assert_eq!(
            offline["since"], "2023-11-14T22:13:20Z",
            "a close is stamped"
        );
        assert_eq!(payload(StatusFormat::Text, Status::Online, now), b"online");
        assert_eq!(
            payload(StatusFormat::Text, Status::LastWill, now),
            b"offline"
        );
    }
}

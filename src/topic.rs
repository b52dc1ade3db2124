//! Topic templates: `mqtttopic` with placeholders for the pack's header values and the
//! record's own fields, e.g. `kaa/{applicationToken}/{event.deviceId}/telemetry`. A template
//! without placeholders is the original's static topic.

use std::borrow::Cow;
use std::sync::Arc;

use crate::decode::LogSchema;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    ApplicationToken,
    EndpointKeyHash,
    LogSchemaVersion,
    AppenderName,
    /// A field of the record, by its path of field names.
    Event(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct TopicTemplate {
    /// As the user wrote it, for log lines.
    text: String,
    parts: Vec<Part>,
    /// The whole topic when there are no placeholders, shared by every message.
    fixed: Option<Arc<str>>,
}

/// What a pack's placeholders stand for.
pub struct PackValues<'a> {
    pub application_token: &'a str,
    pub endpoint_key_hash: &'a str,
    pub log_schema_version: i32,
    pub appender_name: &'a str,
    /// The pack's output bound ([`crate::payload::Encoder::pack_limit`]), which also bounds
    /// what decoding a record's fields for `{event.…}` may write.
    pub output_limit: usize,
}

/// MQTT writes a topic's length as 16 bits. rumqttc writes `len as u16` without a check, so
/// a longer topic would be cut short on the wire and the broker would read the rest of the
/// packet (endpoint data) as the packet id and payload, and drop the shared connection.
pub const MAX_TOPIC_BYTES: usize = 65_535;

fn too_long(bytes: usize) -> String {
    format!("the topic is {bytes} bytes of UTF-8, over MQTT's limit of {MAX_TOPIC_BYTES}")
}

/// Characters a broker may refuse in a topic name, closing the connection as for a malformed
/// packet: NUL, the control characters and the Unicode noncharacters, which MQTT says topics
/// should not hold (Mosquitto refuses them all).
fn refused_in_topics(c: char) -> bool {
    matches!(c, '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fdd0}'..='\u{fdef}')
        || (c as u32) & 0xfffe == 0xfffe
}

/// `value` as MQTT text a broker takes: the characters it may refuse ([`refused_in_topics`],
/// which it refuses in any MQTT string) as `_`, as in a topic. For the MQTT 5 user properties
/// a pack's values make.
pub(crate) fn as_mqtt_text(value: &str) -> Cow<'_, str> {
    if value.contains(refused_in_topics) {
        Cow::Owned(value.replace(refused_in_topics, "_"))
    } else {
        Cow::Borrowed(value)
    }
}

/// Why a broker would not take `text` as an MQTT string of its CONNECT (a client id, a user
/// name, the last will's topic), if it would not: a character it refuses
/// ([`refused_in_topics`]: Mosquitto closes the connection at once), or more bytes than the
/// string's 16-bit length, which rumqttc writes cut short, corrupting the packet. Either fails
/// every connect, and no packet says why.
pub(crate) fn unfit_in_connect(text: &str) -> Option<String> {
    if text.len() > MAX_TOPIC_BYTES {
        return Some(format!(
            "is {} bytes of UTF-8, over MQTT's limit of {MAX_TOPIC_BYTES}",
            text.len()
        ));
    }
    text.contains(refused_in_topics).then(|| {
        "holds a control character or a Unicode noncharacter, which brokers refuse in MQTT \
         text (Mosquitto closes the connection)"
            .to_string()
    })
}

/// Whether a broker would refuse `topic` as a publish topic: it holds a wildcard, or a
/// character [`refused_in_topics`]. Configured topics are checked with it.
pub(crate) fn unfit_for_publish(topic: &str) -> bool {
    topic.contains(['+', '#']) || topic.contains(refused_in_topics)
}

/// Appends a substituted value: a character that would add a topic level or a wildcard, or
/// that a broker may refuse, becomes `_`, so one record cannot cost the shared connection.
/// So does a `$` that would begin the topic: topics starting with `$` are the broker's own
/// (`$SYS`), which a `#` in an ACL does not match. Mosquitto refuses such a publish by MQTT 5,
/// and by MQTT 3.1.1 acknowledges it and drops it, so its pack would be confirmed unread.
fn push_sanitized(topic: &mut String, value: &str) {
    let first = topic.is_empty();
    topic.extend(value.chars().enumerate().map(|(i, c)| match c {
        '/' | '+' | '#' => '_',
        '$' if first && i == 0 => '_',
        c if refused_in_topics(c) => '_',
        c => c,
    }));
}

/// The part a placeholder's name inside `{…}` stands for.
fn placeholder(name: &str) -> Result<Part, String> {
    Ok(match name {
        "applicationToken" => Part::ApplicationToken,
        "endpointKeyHash" => Part::EndpointKeyHash,
        "logSchemaVersion" => Part::LogSchemaVersion,
        "appenderName" => Part::AppenderName,
        _ => match name.strip_prefix("event.") {
            Some(path) if path.split('.').all(|s| !s.is_empty()) => {
                Part::Event(path.split('.').map(String::from).collect())
            }
            _ => {
                return Err(format!(
                    "unknown placeholder {{{name}}}; known: {{applicationToken}}, \
                     {{endpointKeyHash}}, {{logSchemaVersion}}, {{appenderName}}, \
                     {{event.<field>[.<field>...]}}"
                ))
            }
        },
    })
}

impl TopicTemplate {
    /// Parses and checks a template; the error says what is wrong.
    pub fn parse(text: &str) -> Result<TopicTemplate, String> {
        match TopicTemplate::parse_original(text)? {
            (template, None) => Ok(template),
            (_, Some(why)) => Err(why),
        }
    }

    /// Parses `mqtttopic` as the original PahoMQTT appender used it, literally, but with the
    /// placeholders substituted: a `{…}` that is none of them and a stray `{` or `}` are text,
    /// and what is wrong with the first of them (why [`TopicTemplate::parse`] refuses `text`)
    /// comes with the template. What no topic may hold is an error all the same.
    pub fn parse_original(text: &str) -> Result<(TopicTemplate, Option<String>), String> {
        if text.is_empty() {
            return Err("is empty".into());
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut problem = None;
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let after = &rest[at..];
            let part = if after.starts_with('}') {
                Err(format!("'{text}': a '}}' closes no '{{'"))
            } else {
                match after.find('}') {
                    Some(close) => placeholder(&after[1..close]).map(|part| (part, close)),
                    None => Err(format!("'{text}': a '{{' is not closed")),
                }
            };
            match part {
                Ok((part, close)) => {
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    rest = &after[close + 1..];
                }
                // Only this brace is text: a placeholder may still follow inside what it opened.
                Err(why) => {
                    literal.push_str(&after[..1]);
                    problem.get_or_insert(why);
                    rest = &after[1..];
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if parts
            .iter()
            .any(|part| matches!(part, Part::Literal(l) if unfit_for_publish(l)))
        {
            return Err(format!(
                "'{}' contains a wildcard, a control character or a Unicode noncharacter, which a \
                 publish topic cannot",
                text.escape_debug()
            ));
        }
        if text.len() > MAX_TOPIC_BYTES {
            return Err(too_long(text.len()));
        }
        let fixed = match parts.as_slice() {
            [Part::Literal(l)] => Some(Arc::from(l.as_str())),
            _ => None,
        };
        let template = TopicTemplate {
            text: text.to_string(),
            parts,
            fixed,
        };
        Ok((template, problem))
    }

    /// The template as configured.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn has_event_fields(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Event(_)))
    }

    /// The topic of one message; `record` is needed only for `{event.…}` placeholders.
    pub fn render(
        &self,
        pack: &PackValues,
        schema: &LogSchema,
        record: Option<&[u8]>,
        scratch: &mut Vec<u8>,
    ) -> Result<Arc<str>, String> {
        if let Some(fixed) = &self.fixed {
            return Ok(Arc::clone(fixed));
        }
        let mut topic = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => topic.push_str(l),
                Part::ApplicationToken => push_sanitized(&mut topic, pack.application_token),
                Part::EndpointKeyHash => push_sanitized(&mut topic, pack.endpoint_key_hash),
                Part::LogSchemaVersion => topic.push_str(&pack.log_schema_version.to_string()),
                Part::AppenderName => push_sanitized(&mut topic, pack.appender_name),
                Part::Event(path) => {
                    let record = record.ok_or("event placeholders need one message per record")?;
                    scratch.clear();
                    schema.field_text(record, path, scratch, pack.output_limit)?;
                    push_sanitized(&mut topic, &String::from_utf8_lossy(scratch));
                }
            }
        }
        if topic.is_empty() {
            return Err("the topic came out empty".into());
        }
        if topic.len() > MAX_TOPIC_BYTES {
            return Err(too_long(topic.len()));
        }
        Ok(Arc::from(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"T","fields":[
        {"name":"n","type":"int"},
        {"name":"dev","type":{"type":"record","name":"D","fields":[
            {"name":"id","type":["null","string"]},{"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]}}]}},
        {"name":"t","type":"double"}]}"#;

    /// n=5, dev={id:"x/y+#", kind:B}, t=1.5
    fn record() -> Vec<u8> {
        let mut r = vec![0x0a, 0x02, 0x0a];
        r.extend_from_slice(b"x/y+#");
        r.push(0x02);
        r.extend_from_slice(&1.5f64.to_le_bytes());
        r
    }

    /// Text MQTT forbids, or that brokers refuse, becomes `_`; other text is not copied.
    #[test]
    fn mqtt_text_replaces_what_brokers_refuse() {
        assert!(matches!(as_mqtt_text("k/ey+=#"), Cow::Borrowed("k/ey+=#")));
        assert_eq!(as_mqtt_text("a\0b\nc\u{9f}d\u{fffe}é"), "a_b_c_d_é");
    }

    fn values() -> PackValues<'static> {
        PackValues {
            application_token: "app1",
            endpoint_key_hash: "k/ey=",
            log_schema_version: 3,
            appender_name: "mqtt",
            output_limit: usize::MAX,
        }
    }

    fn render(template: &str, record: Option<&[u8]>) -> Result<String, String> {
        let schema = LogSchema::parse(SCHEMA).unwrap();
        TopicTemplate::parse(template)?
            .render(&values(), &schema, record, &mut Vec::new())
            .map(|t| t.to_string())
    }

    #[test]
    fn static_topics_are_shared() {
        let t = TopicTemplate::parse("home/kaa/topic").unwrap();
        assert!(!t.has_event_fields());
        assert_eq!(render("home/kaa/topic", None).unwrap(), "home/kaa/topic");
    }

    #[test]
    fn header_and_event_values_are_substituted_and_sanitised() {
        let r = record();
        assert_eq!(
            render(
                "kaa/{applicationToken}/{endpointKeyHash}/v{logSchemaVersion}/{appenderName}",
                None
            )
            .unwrap(),
            "kaa/app1/k_ey=/v3/mqtt"
        );
        assert_eq!(
            render(
                "d/{event.dev.id}/{event.dev.kind}/{event.n}/{event.t}",
                Some(&r)
            )
            .unwrap(),
            "d/x_y__/B/5/1.5"
        );
    }

    /// A value may not make the topic one of the broker's own; a configured `$` prefix (AWS
    /// IoT's `$aws/...`) stays.
    #[test]
    fn a_value_never_begins_the_topic_with_a_dollar() {
        let (schema, record) = text_record("$SYS");
        let render = |template: &str| {
            TopicTemplate::parse(template)
                .unwrap()
                .render(&values(), &schema, Some(&record), &mut Vec::new())
                .unwrap()
                .to_string()
        };
        assert_eq!(render("{event.s}/t"), "_SYS/t");
        assert_eq!(render("t/{event.s}"), "t/$SYS");
        assert_eq!(render("$aws/{event.s}"), "$aws/$SYS");
    }

    #[test]
    fn unresolvable_fields_are_errors() {
        let r = record();
        assert!(render("{event.missing}", Some(&r))
            .unwrap_err()
            .contains("no field 'missing'"));
        assert!(render("{event.dev}", Some(&r))
            .unwrap_err()
            .contains("is a record"));
        assert!(render("{event.n.x}", Some(&r))
            .unwrap_err()
            .contains("only records"));
        let mut null_id = record();
        null_id[1] = 0x00; // dev.id: null branch
        null_id.drain(2..8);
        assert!(render("{event.dev.id}", Some(&null_id))
            .unwrap_err()
            .contains("is null"));
        assert!(render("{event.n}", None)
            .unwrap_err()
            .contains("one message per record"));
    }

    /// A record with a string field of `text`, in the schema `{"name":"s","type":"string"}`.
    fn text_record(text: &str) -> (LogSchema, Vec<u8>) {
        let schema = LogSchema::parse(
            r#"{"type":"record","name":"S","fields":[{"name":"s","type":"string"}]}"#,
        )
        .unwrap();
        let mut bytes = Vec::new();
        let mut n = (text.len() as u64) << 1; // zig-zag of a non-negative long
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                bytes.push(b);
                break;
            }
            bytes.push(b | 0x80);
        }
        bytes.extend_from_slice(text.as_bytes());
        (schema, bytes)
    }

    /// A topic made of a record's empty field alone is no topic (MQTT requires at least one
    /// character, and a broker drops the shared connection at an empty one): it is an error,
    /// which fails that record's pack before anything is published.
    #[test]
    fn a_topic_a_record_leaves_empty_is_an_error() {
        let template = TopicTemplate::parse("{event.s}").unwrap();
        let (schema, record) = text_record("");
        let rendered = template.render(&values(), &schema, Some(&record), &mut Vec::new());
        assert_eq!(rendered.unwrap_err(), "the topic came out empty");
    }

    /// The appender's name, which the admin form takes as any text, adds no topic level and no
    /// wildcard.
    #[test]
    fn the_appender_name_in_a_topic_is_sanitized() {
        let schema = LogSchema::parse(SCHEMA).unwrap();
        let named = PackValues {
            appender_name: "a/b+#",
            ..values()
        };
        let topic = TopicTemplate::parse("k/{appenderName}")
            .unwrap()
            .render(&named, &schema, None, &mut Vec::new())
            .unwrap();
        assert_eq!(&*topic, "k/a_b__");
    }

    #[test]
    fn topics_over_the_mqtt_limit_in_utf8_bytes_are_errors() {
        let template = TopicTemplate::parse("t/{event.s}").unwrap();
        let render = |text: &str| {
            let (schema, record) = text_record(text);
            template.render(&values(), &schema, Some(&record), &mut Vec::new())
        };
        // 2 + 65,533 bytes: exactly the limit.
        assert_eq!(render(&"a".repeat(65_533)).unwrap().len(), 65_535);
        assert!(render(&"a".repeat(65_534))
            .unwrap_err()
            .contains("65536 bytes of UTF-8, over MQTT's limit of 65535"));
        // 33,000 characters, but 66,002 bytes: counted in bytes.
        let wide = "é".repeat(33_000);
        assert!(wide.chars().count() < 65_535);
        assert!(render(&wide).unwrap_err().contains("66002 bytes"));
        // A fixed topic over the limit is refused when the configuration is read.
        assert!(TopicTemplate::parse(&"a".repeat(65_536))
            .unwrap_err()
            .contains("over MQTT's limit"));
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in [
            "",
            "a/+/b",
            "a/#",
            "a/{nope}",
            "a/{event.}",
            "a/{event.x..y}",
            "a/{x",
            "a}b",
            "a/\0",
            "a/b\nc",
            "a/\u{85}",
            "a/\u{fdd0}",
            "a/\u{1fffe}",
        ] {
            assert!(TopicTemplate::parse(bad).is_err(), "{}", bad.escape_debug());
        }
        assert!(TopicTemplate::parse("a/\u{e9}\u{fffd}\u{10fffd}").is_ok());
    }

    /// The original published to its topic literally: read as its topic, a `{…}` that is no
    /// placeholder and a stray brace are text (one static topic, shared by every message), the
    /// placeholders are still substituted, and what no topic may hold is still refused. The
    /// same templates read as ours stay errors.
    #[test]
    fn the_originals_topic_keeps_unknown_braces_as_text() {
        let schema = LogSchema::parse(SCHEMA).unwrap();
        let original = |text: &str| {
            let (template, why) = TopicTemplate::parse_original(text).unwrap();
            let topic = template
                .render(&values(), &schema, None, &mut Vec::new())
                .unwrap();
            (template, topic.to_string(), why)
        };
        for text in [
            "plant/{line}/logs",
            "plant/a}b",
            "a{b",
            "}{",
            "a/{event.}/{}",
        ] {
            let (template, topic, why) = original(text);
            assert_eq!(topic, text);
            assert_eq!(template.fixed.as_deref(), Some(text), "one static topic");
            assert!(why.is_some(), "{text}");
            assert!(TopicTemplate::parse(text).is_err(), "{text}");
        }
        assert!(original("plant/{line}/logs")
            .2
            .unwrap()
            .contains("unknown placeholder {line}"));
        assert!(original("plant/a}b")
            .2
            .unwrap()
            .contains("'}' closes no '{'"));
        let (_, topic, why) = original("kaa/{appenderName}/{x{applicationToken}}");
        assert_eq!(topic, "kaa/mqtt/{xapp1}");
        assert!(why.unwrap().contains("{x{applicationToken}"));
        let (_, topic, why) = original("kaa/{endpointKeyHash}");
        assert_eq!((topic.as_str(), why), ("kaa/k_ey=", None), "sanitised");
        for bad in ["", "{line}/+", "a/#/{x", "{\0}"] {
            assert!(TopicTemplate::parse_original(bad).is_err(), "{bad}");
        }
        let long = format!("{{{}}}", "a".repeat(65_534));
        assert!(TopicTemplate::parse_original(&long)
            .unwrap_err()
            .contains("over MQTT's limit"));
        assert!(TopicTemplate::parse_original(&long[1..]).is_ok());
    }

    /// A record's value with a character Mosquitto refuses in a topic (it drops the connection
    /// as for a malformed packet, failing every other pack on it) becomes `_` in the topic; the
    /// characters around them stay.
    #[test]
    fn characters_brokers_refuse_are_replaced_in_substituted_values() {
        let template = TopicTemplate::parse("t/{event.s}").unwrap();
        let render = |text: &str| {
            let (schema, record) = text_record(text);
            template
                .render(&values(), &schema, Some(&record), &mut Vec::new())
                .unwrap()
                .to_string()
        };
        assert_eq!(
            render("a\u{0}b\nc\u{1f}d\u{7f}e\u{9f}f\u{fdd0}g\u{fdef}h\u{fffe}i\u{10ffff}j"),
            "t/a_b_c_d_e_f_g_h_i_j"
        );
        assert_eq!(
            render(" \u{a0}\u{fdcf}\u{fdf0}\u{fffd}\u{1f600}"),
            "t/ \u{a0}\u{fdcf}\u{fdf0}\u{fffd}\u{1f600}"
        );
    }
}

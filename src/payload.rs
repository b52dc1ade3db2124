//! Turns a pack's records into MQTT message payloads, in the configured format and grouping.

use crate::config::{Grouping, PayloadFormat};
use crate::decode::{DecodeError, LogSchema, Style};
use crate::header::RecordHeader;

/// A record's JSON is typically 2 to 2.5 times its Avro binary (field names, quotes, digits):
/// room for that up front saves growing the buffer for almost every record.
fn json_size(record: &[u8]) -> usize {
    record.len() * 3 + 64
}

/// Output bytes a pack may produce for every byte of its records, beyond `maxMessageBytes`.
/// Telemetry comes out 2 to 3 times its Avro size; long field names, union labels and
/// escaped control characters reach 20 or 30; only items that take no input bytes (arrays
/// of null, empty records) go far beyond.
pub const BYTES_PER_INPUT_BYTE: usize = 64;

/// What each record counts as at least, in input bytes, so that packs of tiny records have
/// room for their per-message framing (`JSON_WITH_HEADER`'s header, a record of nulls).
pub const MIN_RECORD_BYTES: usize = 16;

/// Encodes packs; `max_payload` is the largest message the broker connection accepts, and
/// `max_held` the most bytes messages may hold while they wait for it (maxPendingRecords').
pub struct Encoder {
    pub format: PayloadFormat,
    pub grouping: Grouping,
    pub max_payload: usize,
    pub max_held: usize,
}

impl Encoder {
    /// The MQTT 5 content type of the messages it makes: every format but the Avro binary is
    /// JSON text.
    pub fn content_type(&self) -> &'static str {
        match self.format {
            PayloadFormat::AvroJson | PayloadFormat::Json | PayloadFormat::JsonWithHeader => {
                "application/json"
            }
            PayloadFormat::AvroBinary => "application/octet-stream",
        }
    }

    /// The most all messages of a pack may take together, while they are made:
    /// `maxMessageBytes + 64 × (the records' bytes + 16 × the number of records)`. Endpoints
    /// are untrusted, and a few bytes of Avro can stand for megabytes of JSON (a five-byte
    /// `array<null>` record for five), so decoding stops at this bound and the pack fails,
    /// instead of the node running out of memory (a failed allocation in native code would
    /// abort the JVM). Any pack of legal messages that stays under `maxMessageBytes` in
    /// total fits, whatever its records; beyond that, 64 bytes of output per byte of input
    /// is well over what real records expand to. JSON messages are held until the broker has
    /// them, so they may not pass `max_held` either: a pack of more could never be accepted,
    /// and several such packs decoded at once would each take that much. (AVRO_BINARY's
    /// messages are the records as uploaded; the JSON that checks them is dropped record by
    /// record.)
    pub fn pack_limit<R: AsRef<[u8]>>(&self, records: &[R]) -> usize {
        let input = records.iter().fold(0usize, |sum, r| {
            sum.saturating_add(r.as_ref().len().max(MIN_RECORD_BYTES))
        });
        let limit = self
            .max_payload
            .saturating_add(input.saturating_mul(BYTES_PER_INPUT_BYTE));
        match self.format {
            PayloadFormat::AvroBinary => limit,
            _ => limit.min(self.max_held),
        }
    }

    /// The messages of one pack, or why it cannot be published (naming the record).
    pub fn encode<R: AsRef<[u8]>>(
        &self,
        schema: &LogSchema,
        header: &RecordHeader,
        records: &[R],
    ) -> Result<Vec<Vec<u8>>, String> {
        let limit = self.pack_limit(records);
        let binary = self.format == PayloadFormat::AvroBinary;
        if binary {
            // AVRO_BINARY's messages are the records as uploaded: one too large is known before
            // the JSON that checks it is made, which may take several times its size.
            let sizes = records.iter().map(|r| r.as_ref().len());
            let too_large = match self.grouping {
                Grouping::Record => sizes.enumerate().find(|&(_, n)| n > self.max_payload),
                Grouping::Pack => Some((0, sizes.fold(0, usize::saturating_add)))
                    .filter(|&(_, n)| n > self.max_payload),
            };
            if let Some((i, n)) = too_large {
                return Err(format!(
                    "message {i} is at least {n} bytes, over the limit of {} bytes",
                    self.max_payload
                ));
            }
        }
        let mut zero_width = crate::decode::ZERO_WIDTH_BUDGET;
        let messages = match self.grouping {
            Grouping::Record => {
                // What the messages made so far, and the JSON that checked AVRO_BINARY records,
                // left of the pack's bound.
                let mut left = limit;
                let mut messages = Vec::with_capacity(records.len());
                for (i, record) in records.iter().enumerate() {
                    let room = self.room(left);
                    let mut out = Vec::with_capacity(json_size(record.as_ref()).min(room));
                    self.open(&mut out, header, false);
                    let checked = self.record(
                        &mut out,
                        schema,
                        (i, record.as_ref()),
                        room,
                        limit,
                        &mut zero_width,
                    )?;
                    self.close(&mut out, false);
                    left = left
                        .checked_sub(out.len() + checked)
                        .ok_or_else(|| over_limit(i, limit))?;
                    // A message keeps its memory while it waits for the broker (up to
                    // maxPendingRecords of them), and the room reserved for decoding was 2.3
                    // times the message for 4 KiB records. Shrinking gives the rest back in
                    // place, without the copy a scratch buffer would cost.
                    out.shrink_to_fit();
                    messages.push(out);
                }
                messages
            }
            Grouping::Pack => {
                let size: usize = records.iter().map(|r| json_size(r.as_ref())).sum();
                let mut out = Vec::with_capacity(size.min(limit.min(self.max_payload)) + 16);
                self.open(&mut out, header, true);
                if binary {
                    // An Avro array of the records: one block, then the end marker.
                    crate::binary::write_long(&mut out, records.len() as i64);
                }
                // The JSON that checked AVRO_BINARY records so far, made and dropped.
                let mut checked = 0usize;
                for (i, record) in records.iter().enumerate() {
                    if i > 0 && !binary {
                        out.push(b',');
                    }
                    let room = self.room(limit.saturating_sub(checked));
                    checked += self.record(
                        &mut out,
                        schema,
                        (i, record.as_ref()),
                        room,
                        limit,
                        &mut zero_width,
                    )?;
                }
                self.close(&mut out, true);
                out.shrink_to_fit(); // as each record's message above
                vec![out]
            }
        };
        if let Some((i, m)) = messages
            .iter()
            .enumerate()
            .find(|(_, m)| m.len() > self.max_payload)
        {
            return Err(format!(
                "message {i} is {} bytes, over the limit of {} bytes",
                m.len(),
                self.max_payload
            ));
        }
        Ok(messages)
    }

    /// How far decoding may take a message, with `left` of the pack's bound: no further than
    /// `max_payload` either, unless the JSON is AVRO_BINARY's, which only checks the record
    /// and is not the message.
    fn room(&self, left: usize) -> usize {
        match self.format {
            PayloadFormat::AvroBinary => left,
            _ => left.min(self.max_payload),
        }
    }

    fn open(&self, out: &mut Vec<u8>, header: &RecordHeader, pack: bool) {
        match (self.format, pack) {
            (PayloadFormat::JsonWithHeader, _) => {
                out.extend_from_slice(b"{\"header\":");
                header.write_json(out, Style::AvroJson);
                out.extend_from_slice(if pack {
                    b",\"events\":["
                } else {
                    b",\"event\":"
                });
            }
            (PayloadFormat::AvroJson | PayloadFormat::Json, true) => out.push(b'['),
            _ => {}
        }
    }

    fn close(&self, out: &mut Vec<u8>, pack: bool) {
        match (self.format, pack) {
            (PayloadFormat::JsonWithHeader, true) => out.extend_from_slice(b"]}"),
            (PayloadFormat::JsonWithHeader, false) => out.push(b'}'),
            (PayloadFormat::AvroJson | PayloadFormat::Json, true) => out.push(b']'),
            (PayloadFormat::AvroBinary, true) => out.push(0),
            _ => {}
        }
    }

    /// Appends one record; `out` may not grow past `room` bytes: what is left of the pack's
    /// bound (`limit`), or `max_payload` where that is less, since a larger message would be
    /// refused anyway, and decoding it first only costs memory. AVRO_BINARY publishes the
    /// record as uploaded, once its JSON shows it is a record of the schema: returns the bytes
    /// of that JSON, made and dropped, which count against the pack's bound too (0 for the
    /// other formats, whose JSON is the message). Its zero-byte array items draw on the pack's
    /// `zero_width` budget.
    fn record(
        &self,
        out: &mut Vec<u8>,
        schema: &LogSchema,
        (index, record): (usize, &[u8]),
        room: usize,
        limit: usize,
        zero_width: &mut u64,
    ) -> Result<usize, String> {
        let style = match self.format {
            PayloadFormat::Json => Style::Plain,
            _ => Style::AvroJson,
        };
        let mark = out.len();
        let decoded = schema.to_json_drawing(record, out, style, room, zero_width);
        let mut checked = 0;
        if self.format == PayloadFormat::AvroBinary {
            checked = out.len() - mark;
            out.truncate(mark);
            out.extend_from_slice(record);
        }
        decoded.map(|()| checked).map_err(|e| match e {
            DecodeError::OverLimit { .. }
                if room >= self.max_payload && self.format != PayloadFormat::AvroBinary =>
            {
                format!(
                    "record {index} takes its message past {} bytes, the largest message \
                     allowed (maxMessageBytes, or the broker's maximum packet size); decoding \
                     stopped there",
                    self.max_payload
                )
            }
            DecodeError::OverLimit { .. } => over_limit(index, limit),
            e => format!("record {index} cannot be decoded: {e}"),
        })
    }
}

fn over_limit(index: usize, limit: usize) -> String {
    format!(
        "record {index} takes the pack's messages past {limit} bytes, the most a pack may \
         produce (maxMessageBytes + {BYTES_PER_INPUT_BYTE} bytes per byte of its records, each \
         counted as at least {MIN_RECORD_BYTES}, and, unless the format is AVRO_BINARY, no \
         more than one pack may hold of what maxPendingRecords lets wait for the broker: 4 KiB \
         for each of half as many messages; AVRO_BINARY counts the JSON \
         that checks its records); decoding stopped there"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::HeaderStructure;

    const SCHEMA: &str = r#"{"type":"record","name":"T","fields":[
        {"name":"id","type":"int"},{"name":"note","type":["null","string"]}]}"#;

    /// MQTT 5 consumers choose their parser by it: JSON text, but for the Avro binary.
    #[test]
    fn each_format_has_its_content_type() {
        let of = |format| {
            Encoder {
                format,
                grouping: Grouping::Record,
                max_payload: 1,
                max_held: 1,
            }
            .content_type()
        };
        assert_eq!(of(PayloadFormat::AvroJson), "application/json");
        assert_eq!(of(PayloadFormat::Json), "application/json");
        assert_eq!(of(PayloadFormat::JsonWithHeader), "application/json");
        assert_eq!(of(PayloadFormat::AvroBinary), "application/octet-stream");
    }

    /// {"id": 1, "note": "a"} and {"id": 2, "note": null}
    fn records() -> Vec<Vec<u8>> {
        vec![vec![0x02, 0x02, 0x02, b'a'], vec![0x04, 0x00]]
    }

    fn encode(
        format: PayloadFormat,
        grouping: Grouping,
        max: usize,
    ) -> Result<Vec<String>, String> {
        let schema = LogSchema::parse(SCHEMA).unwrap();
        let structure = HeaderStructure::from_names(&["KEYHASH", "LSVERSION"]).unwrap();
        let header = structure.header("token", "ep1", 4, 99);
        let encoder = Encoder {
            format,
            grouping,
            max_payload: max,
            max_held: usize::MAX,
        };
        encoder.encode(&schema, &header, &records()).map(|ms| {
            ms.into_iter()
                .map(|m| String::from_utf8_lossy(&m).into_owned())
                .collect()
        })
    }

    const HEADER: &str = r#"{"endpointKeyHash":{"string":"ep1"},"applicationToken":null,"headerVersion":null,"timestamp":null,"logSchemaVersion":{"int":4}}"#;

    #[test]
    fn one_message_per_record() {
        use PayloadFormat::*;
        assert_eq!(
            encode(AvroJson, Grouping::Record, 1000).unwrap(),
            [
                r#"{"id":1,"note":{"string":"a"}}"#,
                r#"{"id":2,"note":null}"#
            ]
        );
        assert_eq!(
            encode(Json, Grouping::Record, 1000).unwrap(),
            [r#"{"id":1,"note":"a"}"#, r#"{"id":2,"note":null}"#]
        );
        assert_eq!(
            encode(JsonWithHeader, Grouping::Record, 1000).unwrap()[1],
            format!(r#"{{"header":{HEADER},"event":{{"id":2,"note":null}}}}"#)
        );
        let binary = encode(AvroBinary, Grouping::Record, 1000).unwrap();
        assert_eq!(binary[1].as_bytes(), &records()[1][..]);
    }

    /// maxMessageBytes is the largest message published: one of exactly that size goes, one a
    /// byte larger fails its pack, in every format and grouping.
    #[test]
    fn a_message_of_exactly_max_message_bytes_is_published() {
        use PayloadFormat::*;
        for format in [AvroJson, Json, JsonWithHeader, AvroBinary] {
            for grouping in [Grouping::Record, Grouping::Pack] {
                let largest = encode(format, grouping, 1000)
                    .unwrap()
                    .iter()
                    .map(String::len)
                    .max()
                    .unwrap();
                let at = encode(format, grouping, largest);
                assert!(at.is_ok(), "{format:?} {grouping:?} at {largest}: {at:?}");
                let over = encode(format, grouping, largest - 1);
                assert!(
                    over.is_err(),
                    "{format:?} {grouping:?} past {}",
                    largest - 1
                );
            }
        }
    }

    /// A message waiting for the broker holds its own size, not the room reserved to make it
    /// (three times its record): up to `maxPendingRecords` of them wait at once.
    #[test]
    fn messages_hold_no_spare_room() {
        let schema = LogSchema::parse(SCHEMA).unwrap();
        let header = HeaderStructure::from_names::<&str>(&[])
            .unwrap()
            .header("t", "e", 1, 0);
        for grouping in [Grouping::Record, Grouping::Pack] {
            let encoder = Encoder {
                format: PayloadFormat::AvroJson,
                grouping,
                max_payload: 1000,
                max_held: usize::MAX,
            };
            let messages = encoder.encode(&schema, &header, &records()).unwrap();
            let expected = match grouping {
                Grouping::Record => records().len(),
                Grouping::Pack => 1,
            };
            assert_eq!(messages.len(), expected, "{grouping:?}");
            for m in messages {
                assert_eq!(m.capacity(), m.len(), "{grouping:?}");
            }
        }
    }

    #[test]
    fn one_message_per_pack() {
        use PayloadFormat::*;
        assert_eq!(
            encode(AvroJson, Grouping::Pack, 1000).unwrap(),
            [r#"[{"id":1,"note":{"string":"a"}},{"id":2,"note":null}]"#]
        );
        assert_eq!(
            encode(JsonWithHeader, Grouping::Pack, 1000).unwrap(),
            [format!(
                r#"{{"header":{HEADER},"events":[{{"id":1,"note":{{"string":"a"}}}},{{"id":2,"note":null}}]}}"#
            )]
        );
        // An Avro array: count 2 (zig-zag 4), the records, the end marker.
        let binary = encode(AvroBinary, Grouping::Pack, 1000).unwrap();
        assert_eq!(binary[0].as_bytes(), &[4, 2, 2, 2, b'a', 4, 0, 0][..]);
    }

    #[test]
    fn undecodable_records_and_oversized_messages_are_errors() {
        let schema = LogSchema::parse(SCHEMA).unwrap();
        let header = HeaderStructure::default().header("t", "e", 1, 0);
        let encoder = Encoder {
            format: PayloadFormat::AvroBinary,
            grouping: Grouping::Record,
            max_payload: 1000,
            max_held: usize::MAX,
        };
        let err = encoder
            .encode(&schema, &header, &[vec![0x02, 0x07]])
            .unwrap_err();
        assert!(err.starts_with("record 0 cannot be decoded"), "{err}");
        let err = encode(PayloadFormat::AvroJson, Grouping::Record, 25).unwrap_err();
        assert_eq!(err, "message 0 is 30 bytes, over the limit of 25 bytes");
    }

    /// An AVRO_BINARY record larger than a message may be is refused as it is, before its
    /// checking JSON is made: here one that is no record of the schema at all, which decoding
    /// would have said.
    #[test]
    fn an_avro_binary_message_too_large_is_refused_before_decoding() {
        let schema = LogSchema::parse(SCHEMA).unwrap();
        let header = HeaderStructure::default().header("t", "e", 1, 0);
        for (grouping, message) in [(Grouping::Record, 1), (Grouping::Pack, 0)] {
            let encoder = Encoder {
                format: PayloadFormat::AvroBinary,
                grouping,
                max_payload: 1000,
                max_held: usize::MAX,
            };
            let records = [vec![0x02, 0x00], vec![0x07; 1001]];
            let err = encoder.encode(&schema, &header, &records).unwrap_err();
            assert!(
                err.starts_with(&format!("message {message} is at least ")),
                "{grouping:?}: {err}"
            );
        }
    }

    const MAX: usize = 10 << 20;

    /// Encodes as AVRO_JSON with the default maxMessageBytes; the error, which must name the
    /// bound: the pack's, or with one message per pack, maxMessageBytes where that is less.
    fn refused(schema: &str, grouping: Grouping, records: &[Vec<u8>]) -> String {
        refused_as(PayloadFormat::AvroJson, schema, grouping, records)
    }

    /// As [`refused`], in `format`. AVRO_BINARY's JSON only checks the records, so the pack's
    /// bound alone limits it.
    fn refused_as(
        format: PayloadFormat,
        schema: &str,
        grouping: Grouping,
        records: &[Vec<u8>],
    ) -> String {
        let schema = LogSchema::parse(schema).unwrap();
        let header = HeaderStructure::default().header("t", "e", 1, 0);
        let encoder = Encoder {
            format,
            grouping,
            max_payload: MAX,
            max_held: usize::MAX,
        };
        let limit = match (grouping, format) {
            (Grouping::Pack, f) if f != PayloadFormat::AvroBinary => {
                encoder.pack_limit(records).min(MAX)
            }
            _ => encoder.pack_limit(records),
        };
        match encoder.encode(&schema, &header, records) {
            Ok(messages) => panic!(
                "accepted: {} messages of {} bytes in all",
                messages.len(),
                messages.iter().map(Vec::len).sum::<usize>()
            ),
            Err(e) => {
                assert!(e.contains(&format!("past {limit} bytes")), "{e}");
                e
            }
        }
    }

    /// The records of one pack share one budget of zero-byte array items. [`ZERO_WIDTH_BUDGET`]
    /// nulls in one five-byte record are 5 MiB of JSON: a pack of such records is refused at
    /// its second, in every format. (Before: each record had a budget of its own, so each
    /// five-byte record under maxMessageBytes became a 5 MiB message, and a pack of a thousand
    /// stopped only at the pack's bound.)
    ///
    /// [`ZERO_WIDTH_BUDGET`]: crate::decode::ZERO_WIDTH_BUDGET
    #[test]
    fn a_pack_of_null_arrays_stops_at_its_zero_width_budget() {
        let schema = r#"{"type":"record","name":"R","fields":[
            {"name":"a","type":{"type":"array","items":"null"}}]}"#;
        // Block count 1,048,576 (zig-zag 2^21: 80 80 80 01), then the end of the array.
        let record = vec![0x80, 0x80, 0x80, 0x01, 0x00];
        let one = encode_as(
            PayloadFormat::AvroJson,
            Grouping::Record,
            schema,
            &[&record],
        );
        assert_eq!(
            one.map(|m| m[0].len()),
            Ok(5 * (1 << 20) + 7),
            "one record is whole"
        );
        let pack = vec![record; 1000];
        for format in [PayloadFormat::AvroJson, PayloadFormat::AvroBinary] {
            for grouping in [Grouping::Record, Grouping::Pack] {
                let e = encode_as(format, grouping, schema, &pack).expect_err("refused");
                assert!(
                    e.starts_with("record 1 ") && e.contains("zero-byte array items"),
                    "{format:?}, {grouping:?}: {e}"
                );
            }
        }
    }

    /// The messages of `records` in `format` and `grouping`, under [`MAX`].
    fn encode_as<R: AsRef<[u8]>>(
        format: PayloadFormat,
        grouping: Grouping,
        schema: &str,
        records: &[R],
    ) -> Result<Vec<Vec<u8>>, String> {
        let encoder = Encoder {
            format,
            grouping,
            max_payload: MAX,
            max_held: usize::MAX,
        };
        let header = HeaderStructure::default().header("t", "e", 1, 0);
        encoder.encode(&LogSchema::parse(schema).unwrap(), &header, records)
    }

    /// An `array<string>` of `n` strings of one control character (`\u0001` in JSON: six
    /// bytes for two of Avro).
    fn control_characters(n: i64) -> Vec<u8> {
        let mut record = Vec::new();
        crate::binary::write_long(&mut record, n);
        for _ in 0..n {
            record.extend_from_slice(&[0x02, 0x01]);
        }
        record.push(0);
        record
    }

    /// AVRO_BINARY holds the published record, not the JSON that checked it, to
    /// maxMessageBytes: a record of control characters (six bytes of JSON each) fits.
    #[test]
    fn avro_binary_messages_are_held_to_max_message_bytes_by_their_own_size() {
        let schema = LogSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"string"}}]}"#,
        )
        .unwrap();
        let header = HeaderStructure::default().header("t", "e", 1, 0);
        // 1,003 bytes, over 4,000 bytes of JSON.
        let record = control_characters(500);
        for grouping in [Grouping::Record, Grouping::Pack] {
            let encoder = Encoder {
                format: PayloadFormat::AvroBinary,
                grouping,
                max_payload: 2048,
                max_held: usize::MAX,
            };
            let messages = encoder
                .encode(&schema, &header, std::slice::from_ref(&record))
                .unwrap_or_else(|e| panic!("{grouping:?}: {e}"));
            // One message per pack is an Avro array: a count of one (zig-zag 2), the end 0.
            let m = &messages[0];
            let body = match grouping {
                Grouping::Record => &m[..],
                Grouping::Pack => &m[1..m.len() - 1],
            };
            assert_eq!(body, &record[..], "{grouping:?}");
        }
    }

    /// A record whose message would pass maxMessageBytes is decoded only that far, though the
    /// pack's bound (64 bytes per input byte) would let it go on: before, a 100 MB record
    /// could make gigabytes before it was refused.
    #[test]
    fn a_message_is_decoded_no_further_than_max_message_bytes() {
        let schema = LogSchema::parse(r#"{"type":"array","items":"string"}"#).unwrap();
        let header = HeaderStructure::default().header("t", "e", 1, 0);
        // 4,500 bytes of ["\u0001",...].
        let record = control_characters(500);
        for grouping in [Grouping::Record, Grouping::Pack] {
            let encoder = Encoder {
                format: PayloadFormat::AvroJson,
                grouping,
                max_payload: 1000,
                max_held: usize::MAX,
            };
            assert!(encoder.pack_limit(&[&record]) > 30_000);
            let e = encoder.encode(&schema, &header, &[&record]).unwrap_err();
            assert!(
                e.starts_with("record 0 takes its message past 1000 bytes")
                    && e.ends_with("decoding stopped there"),
                "{e}"
            );
        }
    }

    /// Each item takes one byte (its union index) and writes a record of twenty nulls: about
    /// 330 bytes of JSON per input byte, 8 MB per record, under maxMessageBytes.
    #[test]
    fn items_that_expand_a_hundredfold_stop_at_the_pack_bound() {
        let fields: Vec<String> = (0..20)
            .map(|i| format!(r#"{{"name":"field_{i:02}","type":"null"}}"#))
            .collect();
        let schema = format!(
            r#"{{"type":"record","name":"R","fields":[{{"name":"a","type":{{"type":"array",
                "items":["null",{{"type":"record","name":"Z","fields":[{}]}}]}}}}]}}"#,
            fields.join(",")
        );
        // One block of 25,000 items, each branch 1.
        let mut record = Vec::new();
        crate::binary::write_long(&mut record, 25_000);
        record.resize(record.len() + 25_000, 2);
        record.push(0);
        let e = refused(&schema, Grouping::Record, &vec![record; 5]);
        assert!(e.starts_with("record 2 "), "{e}");
    }

    /// JSON messages wait for the broker within maxPendingRecords' bytes: a pack that would
    /// make more is refused once it passes them, not after (8 MB of JSON per record here).
    /// AVRO_BINARY holds its records as uploaded, and the JSON that checks them is dropped
    /// record by record, so that bound does not limit the check.
    #[test]
    fn a_pack_is_decoded_no_further_than_its_messages_may_wait() {
        let fields: Vec<String> = (0..20)
            .map(|i| format!(r#"{{"name":"field_{i:02}","type":"null"}}"#))
            .collect();
        let schema = LogSchema::parse(&format!(
            r#"{{"type":"record","name":"R","fields":[{{"name":"a","type":{{"type":"array",
                "items":["null",{{"type":"record","name":"Z","fields":[{}]}}]}}}}]}}"#,
            fields.join(",")
        ))
        .unwrap();
        let mut record = Vec::new();
        crate::binary::write_long(&mut record, 25_000);
        record.resize(record.len() + 25_000, 2);
        record.push(0);
        let header = HeaderStructure::default().header("t", "e", 1, 0);
        let held = 1 << 20;
        for grouping in [Grouping::Record, Grouping::Pack] {
            let encoder = Encoder {
                format: PayloadFormat::AvroJson,
                grouping,
                max_payload: MAX,
                max_held: held,
            };
            let e = encoder
                .encode(&schema, &header, &vec![record.clone(); 5])
                .unwrap_err();
            assert!(
                e.starts_with("record 0 takes the pack's messages past 1048576 bytes"),
                "{grouping:?}: {e}"
            );
            let encoder = Encoder {
                format: PayloadFormat::AvroBinary,
                ..encoder
            };
            let messages = encoder
                .encode(&schema, &header, std::slice::from_ref(&record))
                .unwrap_or_else(|e| panic!("{grouping:?}: {e}"));
            assert!(messages[0].len() < held, "{grouping:?}");
        }
    }

    /// A map of 500,000 entries with one empty key: 500 KB of input, 4 MB of JSON, and
    /// 192 bytes of working memory for each entry while it is put in HashMap order.
    #[test]
    fn a_large_map_charges_its_working_memory() {
        let schema = r#"{"type":"map","values":"null"}"#;
        let mut record = Vec::new();
        crate::binary::write_long(&mut record, 500_000);
        record.resize(record.len() + 500_000, 0);
        record.push(0);
        refused(schema, Grouping::Pack, &[record]);
        // A smaller one fits, and its working memory is given back after each map: a pack
        // of many takes only its output.
        let mut record = Vec::new();
        crate::binary::write_long(&mut record, 20_000);
        record.resize(record.len() + 20_000, 0);
        record.push(0);
        let encoder = Encoder {
            format: PayloadFormat::AvroJson,
            grouping: Grouping::Record,
            max_payload: MAX,
            max_held: usize::MAX,
        };
        let schema_ = LogSchema::parse(schema).unwrap();
        let header = HeaderStructure::default().header("t", "e", 1, 0);
        let messages = encoder
            .encode(&schema_, &header, &vec![record; 200])
            .unwrap();
        assert_eq!(messages.len(), 200);
        assert!(messages.iter().all(|m| m == b"{\"\":null}"));
    }

    /// Zero-width records nested in zero-width records, in arrays of arrays: their weight is
    /// what draws on the pack's budget.
    #[test]
    fn nested_zero_width_structures_stop_at_the_budget() {
        let schema = r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array",
            "items":{"type":"array","items":{"type":"record","name":"E","fields":[
                {"name":"x","type":"null"},
                {"name":"y","type":{"type":"record","name":"F","fields":[
                    {"name":"z","type":"null"},{"name":"e","type":{"type":"fixed","name":"G","size":0}}]}}]}}}}]}"#;
        // 1,000 inner arrays of 200 items: 200,000 items of weight 5, under the budget alone,
        // about 7 MB of JSON.
        let mut record = Vec::new();
        crate::binary::write_long(&mut record, 1000);
        for _ in 0..1000 {
            crate::binary::write_long(&mut record, 200);
            record.push(0);
        }
        record.push(0);
        let e = encode_as(
            PayloadFormat::AvroJson,
            Grouping::Record,
            schema,
            &vec![record; 10],
        )
        .expect_err("refused");
        assert!(
            e.starts_with("record 1 ") && e.contains("zero-byte array items"),
            "{e}"
        );
    }
}

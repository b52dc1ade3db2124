//! Turns a pack's records into MQTT message payloads, in the configured format and grouping.

use crate::config::{Grouping, PayloadFormat};
use crate::decode::{LogSchema, Style};
use crate::header::RecordHeader;

/// A record's JSON is typically 2 to 2.5 times its Avro binary (field names, quotes, digits):
/// room for that up front saves growing the buffer for almost every record.
fn json_size(record: &[u8]) -> usize {
    record.len() * 3 + 64
}

/// Encodes packs; `max_payload` is the largest message the broker connection accepts.
pub struct Encoder {
    pub format: PayloadFormat,
    pub grouping: Grouping,
    pub max_payload: usize,
}

impl Encoder {
    /// The messages of one pack, or why it cannot be published (naming the record).
    pub fn encode<R: AsRef<[u8]>>(
        &self,
        schema: &LogSchema,
        header: &RecordHeader,
        records: &[R],
    ) -> Result<Vec<Vec<u8>>, String> {
        let messages = match self.grouping {
            Grouping::Record => records
                .iter()
                .enumerate()
                .map(|(i, record)| {
                    let mut out = Vec::with_capacity(json_size(record.as_ref()));
                    self.open(&mut out, header, false);
                    self.record(&mut out, schema, i, record.as_ref())?;
                    self.close(&mut out, false);
                    Ok(out)
                })
                .collect::<Result<Vec<_>, String>>()?,
            Grouping::Pack => {
                let size: usize = records.iter().map(|r| json_size(r.as_ref())).sum();
                let mut out = Vec::with_capacity(size + 16);
                self.open(&mut out, header, true);
                if self.format == PayloadFormat::AvroBinary {
                    // An Avro array of the records: one block, then the end marker.
                    crate::binary::write_long(&mut out, records.len() as i64);
                }
                for (i, record) in records.iter().enumerate() {
                    if i > 0 && self.format != PayloadFormat::AvroBinary {
                        out.push(b',');
                    }
                    self.record(&mut out, schema, i, record.as_ref())?;
                }
                self.close(&mut out, true);
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

    fn record(
        &self,
        out: &mut Vec<u8>,
        schema: &LogSchema,
        index: usize,
        record: &[u8],
    ) -> Result<(), String> {
        let style = match self.format {
            PayloadFormat::Json => Style::Plain,
            _ => Style::AvroJson,
        };
        let mark = out.len();
        let decoded = schema.to_json(record, out, style);
        if self.format == PayloadFormat::AvroBinary {
            // Published as uploaded, but only once it is known to be a record of the schema.
            out.truncate(mark);
            out.extend_from_slice(record);
        }
        decoded.map_err(|e| format!("record {index} cannot be decoded: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::HeaderStructure;

    const SCHEMA: &str = r#"{"type":"record","name":"T","fields":[
        {"name":"id","type":"int"},{"name":"note","type":["null","string"]}]}"#;

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
        };
        let err = encoder
            .encode(&schema, &header, &[vec![0x02, 0x07]])
            .unwrap_err();
        assert!(err.starts_with("record 0 cannot be decoded"), "{err}");
        let err = encode(PayloadFormat::AvroJson, Grouping::Record, 25).unwrap_err();
        assert_eq!(err, "message 0 is 30 bytes, over the limit of 25 bytes");
    }
}

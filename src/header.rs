//! Kaa's record header (`RecordHeader`), filled the way Kaa's `AbstractLogAppender` fills it:
//! only the fields named in the appender's header structure, the others null.

use crate::decode::Style;
use crate::json_text::{write_i64, write_json_str};

/// Which header fields the appender's `LogAppenderDto.getHeaderStructure()` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderStructure {
    key_hash: bool,
    version: bool,
    timestamp: bool,
    token: bool,
    schema_version: bool,
}

impl HeaderStructure {
    /// From `LogHeaderStructureDto` names (`KEYHASH`, `VERSION`, `TIMESTAMP`, `TOKEN`,
    /// `LSVERSION`).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<HeaderStructure, String> {
        let mut h = HeaderStructure::default();
        for name in names {
            match name.as_ref() {
                "KEYHASH" => h.key_hash = true,
                "VERSION" => h.version = true,
                "TIMESTAMP" => h.timestamp = true,
                "TOKEN" => h.token = true,
                "LSVERSION" => h.schema_version = true,
                other => return Err(format!("unknown header field '{other}'")),
            }
        }
        Ok(h)
    }

    /// The header of one pack, appended at `now_ms` (ms since the epoch).
    pub fn header<'a>(
        &self,
        application_token: &'a str,
        endpoint_key: &'a str,
        schema_version: i32,
        now_ms: i64,
    ) -> RecordHeader<'a> {
        RecordHeader {
            endpoint_key_hash: self.key_hash.then_some(endpoint_key),
            application_token: self.token.then_some(application_token),
            header_version: self.version.then_some(1),
            timestamp: self.timestamp.then_some(now_ms),
            log_schema_version: self.schema_version.then_some(schema_version),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader<'a> {
    pub endpoint_key_hash: Option<&'a str>,
    pub application_token: Option<&'a str>,
    pub header_version: Option<i32>,
    pub timestamp: Option<i64>,
    pub log_schema_version: Option<i32>,
}

impl RecordHeader<'_> {
    /// As JSON: in Avro JSON each present field is wrapped in its union branch
    /// (`{"string":…}`, `{"int":…}`, `{"long":…}`), exactly as Kaa's header converter writes it.
    pub fn write_json(&self, out: &mut Vec<u8>, style: Style) {
        fn field<T>(
            out: &mut Vec<u8>,
            prefix: &[u8],
            value: Option<T>,
            branch: &[u8],
            style: Style,
            write: impl FnOnce(&mut Vec<u8>, T),
        ) {
            out.extend_from_slice(prefix);
            match value {
                None => out.extend_from_slice(b"null"),
                Some(v) if style == Style::Plain => write(out, v),
                Some(v) => {
                    out.extend_from_slice(branch);
                    write(out, v);
                    out.push(b'}');
                }
            }
        }
        let text = |out: &mut Vec<u8>, s: &str| write_json_str(out, s.as_bytes());
        let int = |out: &mut Vec<u8>, v: i64| write_i64(out, v);
        field(
            out,
            b"{\"endpointKeyHash\":",
            self.endpoint_key_hash,
            b"{\"string\":",
            style,
            text,
        );
        field(
            out,
            b",\"applicationToken\":",
            self.application_token,
            b"{\"string\":",
            style,
            text,
        );
        let version = self.header_version.map(i64::from);
        field(
            out,
            b",\"headerVersion\":",
            version,
            b"{\"int\":",
            style,
            int,
        );
        field(
            out,
            b",\"timestamp\":",
            self.timestamp,
            b"{\"long\":",
            style,
            int,
        );
        let schema = self.log_schema_version.map(i64::from);
        field(
            out,
            b",\"logSchemaVersion\":",
            schema,
            b"{\"int\":",
            style,
            int,
        );
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(h: &RecordHeader, style: Style) -> String {
        let mut out = Vec::new();
        h.write_json(&mut out, style);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn full_structure_fills_every_field() {
        let s =
            HeaderStructure::from_names(&["KEYHASH", "VERSION", "TIMESTAMP", "TOKEN", "LSVERSION"])
                .unwrap();
        let h = s.header("tok\"en", "key/hash=", 3, 1_700_000_000_123);
        assert_eq!(
            render(&h, Style::AvroJson),
            r#"{"endpointKeyHash":{"string":"key/hash="},"applicationToken":{"string":"tok\"en"},"headerVersion":{"int":1},"timestamp":{"long":1700000000123},"logSchemaVersion":{"int":3}}"#
        );
        assert_eq!(
            render(&h, Style::Plain),
            r#"{"endpointKeyHash":"key/hash=","applicationToken":"tok\"en","headerVersion":1,"timestamp":1700000000123,"logSchemaVersion":3}"#
        );
    }

    #[test]
    fn fields_outside_the_structure_stay_null() {
        let s = HeaderStructure::from_names(&["TOKEN"]).unwrap();
        let h = s.header("t", "k", 3, 5);
        assert_eq!(
            render(&h, Style::AvroJson),
            r#"{"endpointKeyHash":null,"applicationToken":{"string":"t"},"headerVersion":null,"timestamp":null,"logSchemaVersion":null}"#
        );
        let none = HeaderStructure::from_names::<&str>(&[])
            .unwrap()
            .header("t", "k", 3, 5);
        assert_eq!(none.application_token, None);
    }

    #[test]
    fn unknown_field_is_an_error() {
        assert!(HeaderStructure::from_names(&["KEYHASH", "COLOR"]).is_err());
    }
}

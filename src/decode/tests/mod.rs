//! Every expected string below is what Avro 1.7.5 (GenericDatumReader → GenericDatumWriter →
//! JsonEncoder over Jackson 1.9.13, flushed) writes for the same schema and bytes; they were
//! checked against the real library, except where a comment says we deliberately differ.

mod hostile;
mod maps;
mod schemas;
mod values;

use super::java_number::{write_java_double, write_java_float};
use super::*;
use crate::json_text::json_string;

/// Builds Avro binary by hand.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn new() -> Self {
        Enc(Vec::new())
    }
    /// int, long, enum index, union index, block count, length: zig-zag varint.
    fn long(mut self, v: i64) -> Self {
        let mut n = ((v << 1) ^ (v >> 63)) as u64;
        while n >= 0x80 {
            self.0.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
        self
    }
    fn bytes(self, b: &[u8]) -> Self {
        self.long(b.len() as i64).raw(b)
    }
    fn str(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn float(self, f: f32) -> Self {
        self.raw(&f.to_le_bytes())
    }
    fn double(self, d: f64) -> Self {
        self.raw(&d.to_le_bytes())
    }
    fn done(self) -> Vec<u8> {
        self.0
    }
}

fn json(schema: &str, datum: &[u8]) -> Result<String, DecodeError> {
    let schema = LogSchema::parse(schema).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    schema.to_avro_json(datum, &mut out)?;
    Ok(String::from_utf8(out).expect("output is UTF-8"))
}

/// Half the stack of a JVM thread (1 MiB by default on Linux x86_64), where schemas are
/// parsed and records decoded, and an overflow aborts the node: 4 MiB in debug builds, whose
/// frames are several times larger.
fn half_a_jvm_stack() -> usize {
    if cfg!(debug_assertions) {
        4 << 20
    } else {
        512 << 10
    }
}

#[track_caller]
fn check(schema: &str, datum: &[u8], expected: &str) {
    assert_eq!(
        json(schema, datum).unwrap_or_else(|e| panic!("{e}")),
        expected
    );
}

#[track_caller]
fn fails(schema: &str, datum: &[u8]) -> DecodeError {
    match json(schema, datum) {
        Ok(s) => panic!("expected an error, got {s}"),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#)
}

fn field(name: &str, ty: &str) -> String {
    format!(r#"{{"name":"{name}","type":{ty}}}"#)
}

/// A map of ints, in blocks of entries as given.
fn map_datum(blocks: &[&[(&str, i64)]]) -> Vec<u8> {
    let mut e = Enc::new();
    for block in blocks {
        e = e.long(block.len() as i64);
        for &(k, v) in block.iter() {
            e = e.str(k).long(v);
        }
    }
    e.long(0).done()
}

const INT_MAP: &str = r#"{"type":"map","values":"int"}"#;

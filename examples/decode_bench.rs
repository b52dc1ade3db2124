//! The benchmark's decode mode (`scripts/bench`): Avro binary → Avro-JSON with
//! `LogSchema::to_avro_json`, one thread, over the benchmark's records, as the appender does it
//! (a fresh output buffer per record). Before timing it checks every record's output against
//! the text Avro 1.7.5 made of it (`--expect`), so both sides of the comparison do the same work.
//!
//! ```text
//! decode_bench --schema F.avsc --records F.bin --expect F.bin [--seconds 5] [--warmup-seconds 1]
//!              [--max-passes 1000000] --result FILE
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use kaa_mqtt_appender::decode::{LogSchema, Style};

const LIMIT: usize = 10 << 20;

#[path = "common/mod.rs"]
mod common;
use common::*;

/// One pass over all records, as `Appender::encode` does it; returns the bytes written.
fn pass(schema: &LogSchema, records: &[Vec<u8>]) -> usize {
    let mut total = 0;
    for record in records {
        let mut out = Vec::with_capacity(record.len() * 2 + 16);
        // Bounded as the appender bounds a pack's output (the default maxMessageBytes).
        schema
            .to_json_within(record, &mut out, Style::AvroJson, LIMIT)
            .expect("decode");
        total += black_box(out).len();
    }
    total
}

/// Runs passes for at least `time` (and at most `max_passes`); returns (records, seconds).
fn timed(schema: &LogSchema, records: &[Vec<u8>], time: Duration, max_passes: u64) -> (u64, f64) {
    let start = Instant::now();
    let mut passes = 0u64;
    while passes < max_passes && (passes == 0 || start.elapsed() < time) {
        black_box(pass(schema, black_box(records)));
        passes += 1;
    }
    (passes * records.len() as u64, start.elapsed().as_secs_f64())
}

fn main() {
    let opts = args();
    let schema_text = std::fs::read_to_string(need(&opts, "schema")).expect("read schema");
    let schema = LogSchema::parse(&schema_text).expect("parse schema");
    let records = read_frames(&need(&opts, "records"));
    let expect = read_frames(&need(&opts, "expect"));
    assert_eq!(
        records.len(),
        expect.len(),
        "records and expected payloads differ in number"
    );
    let mismatches = records
        .iter()
        .zip(&expect)
        .filter(|(r, e)| {
            let mut out = Vec::new();
            schema.to_avro_json(r, &mut out).is_err() || &out != *e
        })
        .count();
    let seconds = Duration::from_secs_f64(num(&opts, "seconds", 5.0));
    let warmup = Duration::from_secs_f64(num(&opts, "warmup-seconds", 1.0));
    let max_passes = num(&opts, "max-passes", 1e6) as u64;

    timed(&schema, &records, warmup, max_passes);
    let (n, secs) = timed(&schema, &records, seconds, max_passes);
    let json = serde_json::json!({
        "mode": "decode-rust",
        "records": n,
        "seconds": secs,
        "records_per_s": n as f64 / secs.max(1e-9),
        "distinct_records": records.len(),
        "payload_bytes_avg": expect.iter().map(Vec::len).sum::<usize>() as f64 / expect.len().max(1) as f64,
        "binary_bytes_avg": records.iter().map(Vec::len).sum::<usize>() as f64 / records.len().max(1) as f64,
        "mismatches_vs_avro_1_7_5": mismatches,
        "peak_rss_kib": peak_rss_kib(),
        "error": if mismatches > 0 { Some(format!("{mismatches} records differ from Avro 1.7.5's text")) } else { None },
    });
    std::fs::write(need(&opts, "result"), format!("{json}\n")).expect("write result");
    if mismatches > 0 {
        eprintln!("decode_bench: {mismatches} records differ from Avro 1.7.5's JsonEncoder text");
        std::process::exit(1);
    }
}

//! The benchmark's decode mode (`scripts/bench`): Avro binary → Avro-JSON with
//! `LogSchema::to_avro_json`, one thread, over the benchmark's records, as the appender does it
//! (a fresh output buffer per record). Before timing it checks every record's output against
//! the text Avro 1.7.5 made of it (`--expect`), so both sides of the comparison do the same work.
//!
//! ```text
//! decode_bench --schema F.avsc --records F.bin --expect F.bin [--seconds 5] [--warmup-seconds 1]
//!              [--max-passes 1000000] --result FILE
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use kaa_mqtt_appender::decode::LogSchema;

fn args() -> HashMap<String, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = HashMap::new();
    let mut i = 0;
    while i < argv.len() {
        let key = argv[i].strip_prefix("--").unwrap_or_else(|| {
            eprintln!("bad argument {}", argv[i]);
            std::process::exit(2)
        });
        let value = argv.get(i + 1).cloned().unwrap_or_else(|| {
            eprintln!("--{key} needs a value");
            std::process::exit(2)
        });
        opts.insert(key.to_string(), value);
        i += 2;
    }
    opts
}

fn need(opts: &HashMap<String, String>, key: &str) -> String {
    opts.get(key).cloned().unwrap_or_else(|| {
        eprintln!("--{key} is required");
        std::process::exit(2)
    })
}

fn num(opts: &HashMap<String, String>, key: &str, default: f64) -> f64 {
    opts.get(key)
        .map(|v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("--{key}: not a number: {v}");
                std::process::exit(2)
            })
        })
        .unwrap_or(default)
}

/// The benchmark's record file: each record as a 4-byte big-endian length and its bytes.
fn read_frames(path: &str) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 4 <= data.len() {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        frames.push(data[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    assert_eq!(at, data.len(), "{path}: truncated record file");
    frames
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// One pass over all records, as `Appender::encode` does it; returns the bytes written.
fn pass(schema: &LogSchema, records: &[Vec<u8>]) -> usize {
    let mut total = 0;
    for record in records {
        let mut out = Vec::with_capacity(record.len() * 2 + 16);
        schema.to_avro_json(record, &mut out).expect("decode");
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

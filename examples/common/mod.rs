//! What the benchmark's examples share: `--key value` arguments, the record file, and
//! readings of this process from /proc. Each example uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::str::FromStr;

use rumqttc::QoS;

pub fn args() -> HashMap<String, String> {
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

pub fn need(opts: &HashMap<String, String>, key: &str) -> String {
    opts.get(key).cloned().unwrap_or_else(|| {
        eprintln!("--{key} is required");
        std::process::exit(2)
    })
}

pub fn num<T: FromStr>(opts: &HashMap<String, String>, key: &str, default: T) -> T {
    opts.get(key)
        .map(|v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("--{key}: not a number: {v}");
                std::process::exit(2)
            })
        })
        .unwrap_or(default)
}

pub fn qos(q: u64) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// The benchmark's record file: each record as a 4-byte big-endian length and its bytes.
pub fn read_frames(path: &str) -> Vec<Vec<u8>> {
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

/// Peak resident set size of this process, KiB (`VmHWM`).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// User plus system CPU time of this process so far, in seconds (`/proc/self/stat`).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0 // USER_HZ
}

/// A counter of `/proc/self/io`: `syscw`, the write system calls so far (write and writev, on
/// sockets, pipes, eventfds and files alike), or `syscr`; `None` where there is none.
pub fn proc_io(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/io").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    })
}

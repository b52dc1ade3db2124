//! Log capture for unit tests: a process has one logger, so every module's tests share this
//! one. Lines are kept as "LEVEL message"; tests running at once pick theirs out by a text
//! only they log (a port, a client id).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{LevelFilter, Log, Metadata, Record};

static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        CAPTURED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

/// Captures from now on, every level (again: a no-op).
pub(crate) fn capture() {
    let _ = log::set_logger(&Capture);
    log::set_max_level(LevelFilter::Trace);
}

/// The lines captured so far that contain `text`.
pub(crate) fn lines_with(text: &str) -> Vec<String> {
    CAPTURED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|l| l.contains(text))
        .cloned()
        .collect()
}

/// The first line captured that contains `text` and that `wanted` takes, waited for up to
/// `wait` (the code under test logs from its own threads); panics naming `text` if none came.
pub(crate) fn await_line(text: &str, wanted: impl Fn(&str) -> bool, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(line) = lines_with(text).into_iter().find(|l| wanted(l)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no such line with {text:?} in {wait:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that `line` says each of `parts`, naming the first it lacks.
pub(crate) fn assert_says(line: &str, parts: &[&str]) {
    for part in parts {
        assert!(line.contains(part), "{part:?} in {line}");
    }
}

//! Log lines an endpoint's data repeats at the rate it sends packs: a pack that cannot be
//! published, a message past what the broker takes. A broken or hostile device sending such
//! packs as fast as Kaa takes them would otherwise write the node's log full, one WARN per
//! pack. Each kind of line has its own budget per appender (or connection), so that a flood of
//! one kind hides no other: the first [`BURST`] of a [`WINDOW`] are written, the rest counted
//! and named in the first line of that kind written after them. JMX counts every pack.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::supervise::lock;

/// Lines of one kind written per window.
const BURST: u32 = 10;
/// How long a burst lasts; the count of lines left out starts again with each.
const WINDOW: Duration = Duration::from_secs(60);

/// Budgets by kind: a few names fixed in the code, so it never grows with what endpoints send.
#[derive(Default)]
pub(crate) struct LogBudget(Mutex<HashMap<&'static str, Spent>>);

#[derive(Default)]
struct Spent {
    /// When the window began; `None` before the first line.
    since: Option<Instant>,
    written: u32,
    left_out: u64,
}

impl LogBudget {
    /// Whether a line of `kind` may be written at `now`, and if so what to add to it: how many
    /// were left out before it, or that the next ones will be. `None`: leave it out (it is
    /// counted).
    pub(crate) fn take(&self, kind: &'static str, now: Instant) -> Option<String> {
        let mut budgets = lock(&self.0);
        let spent = budgets.entry(kind).or_default();
        if spent.since.is_none_or(|since| now >= since + WINDOW) {
            spent.since = Some(now);
            spent.written = 0;
        }
        if spent.written == BURST {
            spent.left_out += 1;
            return None;
        }
        spent.written += 1;
        let left_out = std::mem::take(&mut spent.left_out);
        Some(match (left_out, spent.written == BURST) {
            (0, false) => String::new(),
            (n, false) => format!(" ({n} more lines like this were left out before this one)"),
            (0, true) => " (lines like this are left out for the rest of the minute, and counted)"
                .to_string(),
            (n, true) => format!(
                " ({n} more lines like this were left out before this one; the next are left \
                 out for the rest of the minute, and counted)"
            ),
        })
    }
}

/// Text from outside as a log line shows it: an endpoint key (Kaa's are 28 characters of
/// base64, but one that is not failed its pack), a topic a broker named. It must not flood the
/// log or break its lines.
pub(crate) fn shown_in_log(text: &str) -> String {
    const SHOWN: usize = 64;
    let shown: String = text
        .chars()
        .take(SHOWN)
        .collect::<String>()
        .escape_debug()
        .collect();
    if text.chars().nth(SHOWN).is_some() {
        format!("{shown}... ({} bytes)", text.len())
    } else {
        shown
    }
}

/// What one line of the node's log keeps of a longer record: its first characters, and its
/// last, where our hints, a panic's place and a budget's note come.
const HEAD: usize = 3072;
const TAIL: usize = 1024;

/// A record's text as one line of the node's log, of at most [`HEAD`] and [`TAIL`] characters
/// and a note of what was left out between: what a broker, a proxy or a certificate put into an
/// error (the MQTT client's text of an unexpected packet holds its topic whole, line breaks and
/// all) reaches lines of ours and the MQTT client's, and must neither start lines of its own
/// nor fill the log. Line breaks and other control characters are escaped.
pub(crate) fn one_line(text: String) -> String {
    let breaks = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if text.len() <= HEAD + TAIL && !text.contains(breaks) {
        return text;
    }
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        if breaks(c) {
            line.extend(c.escape_debug());
        } else {
            line.push(c);
        }
    }
    let shown = line.chars().count();
    if shown <= HEAD + TAIL {
        return line;
    }
    let head: String = line.chars().take(HEAD).collect();
    let tail: String = line.chars().skip(shown - TAIL).collect();
    format!(
        "{head} [... {} characters of {} bytes left out ...] {tail}",
        shown - HEAD - TAIL,
        text.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's text reaches the log as one line, its first 3,072 and last 1,024 characters
    /// at most (escapes counted), with what was left out between; the usual line, as it is.
    #[test]
    fn a_record_is_one_line_of_the_log() {
        let usual = "connected to 127.0.0.1:1883 as 'kaa-h-1' (MQTT 3.1.1)".to_string();
        assert_eq!(one_line(usual.clone()), usual);
        assert_eq!(
            one_line("lost: Publish { topic: \"a\n12:00 [main] ERROR forged\r\" }".into()),
            "lost: Publish { topic: \"a\\n12:00 [main] ERROR forged\\r\" }"
        );
        assert_eq!(one_line("a\u{2028}b\tc".into()), "a\\u{2028}b\\tc");
        let end = "; retrying (2 more lines left out)";
        let long = one_line(format!("x{}{end}", "é".repeat(70_000)));
        let tail = format!("{}{end}", "é".repeat(1024 - end.len()));
        let left_out = 70_001 + end.len() - 4096;
        let bytes = 140_001 + end.len();
        assert_eq!(
            long,
            format!(
                "x{} [... {left_out} characters of {bytes} bytes left out ...] {tail}",
                "é".repeat(3071)
            )
        );
        // Escapes count as what they show: control characters make no line longer.
        let full = format!("{}\t", "a".repeat(4094));
        assert_eq!(
            one_line(full),
            format!("{}\\t", "a".repeat(4094)),
            "4,096 as escaped"
        );
        let escaped = one_line("\u{1b}".repeat(10_000));
        assert!(escaped.starts_with("\\u{1b}\\u{1b}"), "{escaped}");
        assert!(escaped.len() < 4096 + 64, "{}", escaped.len());
    }

    /// An endpoint key is logged as it is when it looks like Kaa's, cut short and escaped when
    /// it does not, so that one pack cannot flood the log or start a line of its own.
    #[test]
    fn text_from_outside_is_logged_short_and_on_one_line() {
        assert_eq!(
            shown_in_log("b4Yq+9/Z3kKJ2rVvJmD0b1c6Xy0="),
            "b4Yq+9/Z3kKJ2rVvJmD0b1c6Xy0="
        );
        assert_eq!(shown_in_log("a\nb\0"), "a\\nb\\0");
        let long = shown_in_log(&"k".repeat(70_000));
        assert_eq!(long, format!("{}... (70000 bytes)", "k".repeat(64)));
        // Cut by one character is cut, and says so.
        assert_eq!(shown_in_log(&"k".repeat(64)), "k".repeat(64));
        assert_eq!(
            shown_in_log(&"k".repeat(65)),
            format!("{}... (65 bytes)", "k".repeat(64))
        );
    }

    /// A flood: ten lines a window, the tenth saying the rest are left out, the first of the
    /// next window how many were.
    #[test]
    fn a_flood_writes_ten_lines_a_minute_and_counts_the_rest() {
        let budget = LogBudget::default();
        let start = Instant::now();
        let notes: Vec<Option<String>> = (0..25).map(|_| budget.take("flood", start)).collect();
        assert!(notes[..9].iter().all(|n| n.as_deref() == Some("")));
        assert_eq!(
            notes[9].as_deref(),
            Some(" (lines like this are left out for the rest of the minute, and counted)")
        );
        assert!(notes[10..].iter().all(Option::is_none));
        assert_eq!(
            budget.take("other", start).as_deref(),
            Some(""),
            "another kind"
        );

        let later = start + WINDOW;
        assert_eq!(
            budget.take("flood", later).as_deref(),
            Some(" (15 more lines like this were left out before this one)")
        );
        assert_eq!(
            budget.take("flood", later).as_deref(),
            Some(""),
            "counted once"
        );
    }

    /// A line now and then is always written, with nothing added.
    #[test]
    fn occasional_lines_are_all_written() {
        let budget = LogBudget::default();
        let start = Instant::now();
        for minute in 0..30 {
            let at = start + Duration::from_secs(61 * minute);
            assert_eq!(budget.take("now and then", at).as_deref(), Some(""));
        }
    }
}

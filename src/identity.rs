//! Who this process is, for the names that must differ between the nodes of a Kaa cluster:
//! every node loads the same appender configuration, and a broker closes the older of two
//! connections that share a client id. `clientId` and `statusTopic` may hold `{hostname}`,
//! `{pid}` and `{random}`, resolved once per process.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// The placeholders, as written in the configuration.
pub(crate) const PLACEHOLDERS: [&str; 3] = ["{hostname}", "{pid}", "{random}"];

struct Node {
    /// Stable across restarts of the node.
    hostname: String,
    /// New at every start of the node's JVM.
    pid: String,
    /// Eight hex digits drawn once per process: tells apart nodes that share a host name and a
    /// pid (containers with host networking, each running its JVM as pid 1).
    random: String,
}

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| sanitize(h.trim()))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        // std seeds every RandomState from the OS's random source.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        Node {
            hostname,
            pid: std::process::id().to_string(),
            random: format!("{:08x}", hasher.finish() as u32),
        }
    })
}

/// Keeps what a client id and a topic level can carry everywhere: letters, digits, `.`, `-`, `_`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `text` with its placeholders resolved; a `{…}` that is not one of them is an error naming it.
pub(crate) fn expand(text: &str) -> Result<String, String> {
    match expand_original(text) {
        (out, None) => Ok(out),
        (_, Some(why)) => Err(why),
    }
}

/// `text` as the original PahoMQTT appender used it, literally, but with the placeholders
/// resolved: any other `{` is kept as text, and what is wrong with the first such `{` (why
/// [`expand`] refuses `text`) comes with it.
pub(crate) fn expand_original(text: &str) -> (String, Option<String>) {
    let node = node();
    let mut out = String::with_capacity(text.len());
    let mut problem = None;
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let value = match after.find('}') {
            Some(close) => match &after[..=close] {
                "{hostname}" => Ok((node.hostname.as_str(), close)),
                "{pid}" => Ok((node.pid.as_str(), close)),
                "{random}" => Ok((node.random.as_str(), close)),
                other => Err(format!(
                    "unknown placeholder {other}; known: {}",
                    PLACEHOLDERS.join(", ")
                )),
            },
            None => Err(format!("'{{' without '}}' in '{text}'")),
        };
        match value {
            Ok((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            // Only this '{' is text: a placeholder may still follow inside what it opened.
            Err(why) => {
                out.push('{');
                problem.get_or_insert(why);
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    (out, problem)
}

/// This node's host name, as `{hostname}` gives it.
pub(crate) fn hostname() -> &'static str {
    &node().hostname
}

/// This process's random tag, as `{random}` gives it.
pub(crate) fn random() -> &'static str {
    &node().random
}

/// A client id no other node uses: `id` followed by this node's host name, pid and random tag.
pub(crate) fn unique(id: &str) -> String {
    let node = node();
    format!("{id}-{}-{}-{}", node.hostname, node.pid, node.random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_resolve_once_per_process() {
        let a = expand("kaa-{hostname}-{pid}-{random}").unwrap();
        assert_eq!(a, expand("kaa-{hostname}-{pid}-{random}").unwrap());
        assert!(a.contains(&format!("-{}-", std::process::id())));
        assert!(!a.contains('{'));
        let random = a.rsplit('-').next().unwrap();
        assert_eq!(random.len(), 8);
        assert!(random.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(expand("DefaultClient-ID").unwrap(), "DefaultClient-ID");
        assert_eq!(
            expand("kaa/status/{hostname}").unwrap(),
            format!("kaa/status/{}", node().hostname)
        );
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_errors() {
        assert!(expand("kaa-{hostName}").unwrap_err().contains("{hostName}"));
        assert!(expand("kaa-{pid").unwrap_err().contains("without"));
    }

    /// The original used its client id literally: there, a `{` that opens none of our
    /// placeholders is text, and the placeholders an operator adds for a cluster still resolve.
    #[test]
    fn the_originals_ids_keep_unknown_braces_as_text() {
        let kept = |text: &str| {
            let (out, why) = expand_original(text);
            (out, why.is_some())
        };
        assert_eq!(kept("kaa-{node-7}"), ("kaa-{node-7}".to_string(), true));
        assert!(expand_original("kaa-{node-7}")
            .1
            .unwrap()
            .contains("unknown placeholder {node-7}"));
        assert_eq!(kept("a{b"), ("a{b".to_string(), true));
        assert_eq!(kept("a}b{"), ("a}b{".to_string(), true));
        assert_eq!(kept("{x{pid}}"), (format!("{{x{}}}", node().pid), true));
        assert_eq!(
            kept("kaa-{hostname}"),
            (format!("kaa-{}", node().hostname), false)
        );
        assert_eq!(
            kept("DefaultClient-ID"),
            ("DefaultClient-ID".to_string(), false)
        );
        // Elsewhere a typo stays an error.
        assert!(expand("kaa-{node-7}").is_err());
    }

    #[test]
    fn names_carry_no_topic_or_id_specials() {
        assert_eq!(sanitize("node 1/a+#é"), "node_1_a___");
        let hostname = &node().hostname;
        assert!(!hostname.is_empty() && sanitize(hostname) == *hostname);
        let id = unique("DefaultClient-ID");
        assert!(id.starts_with("DefaultClient-ID-") && id.ends_with(&node().random));
    }
}

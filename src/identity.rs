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
    let node = node();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| format!("'{{' without '}}' in '{text}'"))?;
        out.push_str(match &rest[open..=close] {
            "{hostname}" => &node.hostname,
            "{pid}" => &node.pid,
            "{random}" => &node.random,
            other => {
                return Err(format!(
                    "unknown placeholder {other}; known: {}",
                    PLACEHOLDERS.join(", ")
                ))
            }
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// This node's host name, as `{hostname}` gives it.
pub(crate) fn hostname() -> &'static str {
    &node().hostname
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

    #[test]
    fn names_carry_no_topic_or_id_specials() {
        assert_eq!(sanitize("node 1/a+#é"), "node_1_a___");
        let hostname = &node().hostname;
        assert!(!hostname.is_empty() && sanitize(hostname) == *hostname);
        let id = unique("DefaultClient-ID");
        assert!(id.starts_with("DefaultClient-ID-") && id.ends_with(&node().random));
    }
}

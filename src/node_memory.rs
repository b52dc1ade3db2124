//! The memory the node may use, which `maxPendingRecords` is weighed against at init, the
//! appender's alone and the node's open appenders' together: a broker that is away makes an
//! appender hold up to that many messages, and bounds past what the machine (or the node's
//! container) has let an outage end in the kernel killing the node instead of packs failing
//! at the bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};

use crate::delivery::{max_pending_bytes, PENDING_BYTES_PER_RECORD};

/// The memory this process may use, in bytes, and where that figure comes from: the
/// machine's (`MemTotal`), or the lowest limit of its control group and those above it where
/// that is lower (a container, a systemd `MemoryMax` on the service or its slice). `None`
/// where neither can be read.
pub(crate) fn limit() -> Option<(u64, &'static str)> {
    limit_in(|path| std::fs::read_to_string(path).ok())
}

/// [`limit`], with the files read by `read`.
fn limit_in(read: impl Fn(&Path) -> Option<String>) -> Option<(u64, &'static str)> {
    let machine = read(Path::new("/proc/meminfo"))
        .as_deref()
        .and_then(mem_total)
        .map(|bytes| (bytes, "the machine's memory"));
    let group = read(Path::new("/proc/self/cgroup"))
        .map(|own| group_limit_files(&own))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|path| read(&path))
        .filter_map(|text| group_limit(&text))
        .min()
        .map(|bytes| {
            (
                bytes,
                "the memory limit of the node's control group, or of one above it",
            )
        });
    machine
        .into_iter()
        .chain(group)
        .min_by_key(|(bytes, _)| *bytes)
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A control group's memory limit file: a number of bytes, or none (`max` under cgroup v2;
/// cgroup v1 writes a number near 2^63 for none, which no machine has, so it never counts).
fn group_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Where the limits of the process's control groups are (`own`: `/proc/self/cgroup`): its
/// own group's file and each of its ancestors' (a limit on a parent slice holds for every
/// group under it), up to the root, which is its own inside a container that shows it only
/// its part of the tree.
fn group_limit_files(own: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (root, file) = if controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut group = PathBuf::from(root).join(path.trim_start_matches('/'));
        loop {
            files.push(group.join(file));
            if group == Path::new(root) || !group.pop() {
                break;
            }
        }
    }
    files
}

/// The WARN for an appender whose `maxPendingRecords` lets a broker that is away make it hold
/// more than half of `limit` ([`limit`]), its messages at their byte bound
/// ([`max_pending_bytes`]) on each of its `connections`; `None` for one within it.
pub(crate) fn pending_bound_warning(
    max_pending: usize,
    connections: usize,
    limit: Option<(u64, &str)>,
) -> Option<String> {
    let (memory, whose) = limit?;
    let held = (max_pending_bytes(max_pending) as u64).saturating_mul(connections as u64);
    if held <= memory / 2 {
        return None;
    }
    let fits = (memory / 2 / (PENDING_BYTES_PER_RECORD as u64 * connections as u64)).max(1);
    let (each, or) = if connections > 1 {
        (
            format!(", on each of its {connections} connections"),
            " (or connectionsPerBroker)",
        )
    } else {
        (String::new(), "")
    };
    Some(format!(
        "maxPendingRecords {max_pending} lets a broker that is away make this appender hold up \
         to {} of messages ({} KiB for each message{each}), more than half of the {} the node \
         may use ({whose}): an outage could end with the kernel killing the node for memory, \
         where packs should fail at the bound; lower maxPendingRecords to {fits} or less{or}",
        shown(held),
        PENDING_BYTES_PER_RECORD / 1024,
        shown(memory),
    ))
}

/// What the connections of every open appender may hold together while their brokers are
/// away, from each appender's connections (any key that tells them apart) and its
/// `maxPendingRecords`: a connection checks its whole count against the bound of the appender
/// submitting, so it holds up to its largest appender's bound, once however many share it.
pub(crate) fn node_pending_bytes<K: Eq + Hash>(
    bounds: impl IntoIterator<Item = (K, usize)>,
) -> u64 {
    let mut largest: HashMap<K, usize> = HashMap::new();
    for (connection, max_pending) in bounds {
        let bound = largest.entry(connection).or_default();
        *bound = (*bound).max(max_pending);
    }
    largest
        .into_values()
        .map(|max_pending| max_pending_bytes(max_pending) as u64)
        .fold(0, u64::saturating_add)
}

/// The WARN for the appender that takes the appenders open in the node together past half of
/// `limit` ([`node_pending_bytes`]: `before` without it, `held` with it, over `appenders`);
/// `None` for one that does not cross it, within or past it already (the one that did said
/// so). Appenders are made one application at a time, each within [`pending_bound_warning`]
/// alone, and four at the default bound on connections of their own hold 1.5 GiB.
pub(crate) fn node_bound_warning(
    (before, held): (u64, u64),
    appenders: usize,
    limit: Option<(u64, &str)>,
) -> Option<String> {
    let (memory, whose) = limit?;
    (before <= memory / 2 && held > memory / 2).then(|| {
        format!(
            "the {appenders} appenders open in this node let brokers that are away make them \
             hold up to {} of messages together (4 KiB for each message their \
             maxPendingRecords allow, a connection several appenders share at its largest \
             one's), more than half of the {} the node may use ({whose}): an outage could end \
             with the kernel killing the node for memory, where packs should fail at the \
             bound; lower maxPendingRecords of this appender or of the others",
            shown(held),
            shown(memory),
        )
    })
}

/// Bytes as an operator reads them: `390.6 MiB`, `3.8 GiB`, `7.5 TiB`.
pub(crate) fn shown(bytes: u64) -> String {
    let mut value = bytes as f64 / (1024.0 * 1024.0);
    for unit in ["MiB", "GiB"] {
        if value < 1024.0 {
            return format!("{value:.1} {unit}");
        }
        value /= 1024.0;
    }
    format!("{value:.1} TiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machines_memory_is_its_mem_total() {
        let meminfo = "MemTotal:       24683784 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total(meminfo), Some(24_683_784 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn a_group_limit_is_a_number_and_max_is_none() {
        assert_eq!(group_limit("4294967296\n"), Some(4 << 30));
        assert_eq!(group_limit("max\n"), None);
        // cgroup v1's "no limit" is a number, larger than any machine's memory.
        assert_eq!(
            group_limit("9223372036854771712\n"),
            Some(9_223_372_036_854_771_712)
        );
    }

    #[test]
    fn the_limit_files_are_the_groups_own_and_its_ancestors() {
        let v2 = group_limit_files("0::/kaa.slice/kaa-node.service\n");
        assert_eq!(
            v2,
            [
                PathBuf::from("/sys/fs/cgroup/kaa.slice/kaa-node.service/memory.max"),
                PathBuf::from("/sys/fs/cgroup/kaa.slice/memory.max"),
                PathBuf::from("/sys/fs/cgroup/memory.max"),
            ]
        );
        let v1 = group_limit_files("9:name=systemd:/\n4:memory:/docker/abc\n3:cpu,cpuacct:/\n");
        assert_eq!(
            v1,
            [
                PathBuf::from("/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"),
                PathBuf::from("/sys/fs/cgroup/memory/docker/memory.limit_in_bytes"),
                PathBuf::from("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            ]
        );
        assert_eq!(
            group_limit_files("0::/\n"),
            [PathBuf::from("/sys/fs/cgroup/memory.max")]
        );
        assert!(group_limit_files("garbage").is_empty());
    }

    /// The lowest of the machine's memory and the limits of the node's group and those above
    /// it: a slice's limit holds for the service under it, whatever the service's own says.
    #[test]
    fn the_lowest_limit_of_the_machine_and_the_groups_holds() {
        let files = |slice: &'static str| {
            move |path: &Path| {
                Some(
                    match path.to_str()? {
                        "/proc/meminfo" => "MemTotal: 16777216 kB\n",
                        "/proc/self/cgroup" => "0::/kaa.slice/kaa-node.service\n",
                        "/sys/fs/cgroup/kaa.slice/kaa-node.service/memory.max" => "8589934592\n",
                        "/sys/fs/cgroup/kaa.slice/memory.max" => slice,
                        "/sys/fs/cgroup/memory.max" => "max\n",
                        _ => return None,
                    }
                    .to_string(),
                )
            }
        };
        let group = "the memory limit of the node's control group, or of one above it";
        assert_eq!(limit_in(files("4294967296\n")), Some((4 << 30, group)));
        assert_eq!(limit_in(files("max\n")), Some((8 << 30, group)));
        assert_eq!(
            limit_in(files("34359738368\n")),
            Some((8 << 30, group)),
            "the service's own"
        );
        assert_eq!(
            limit_in(|path: &Path| files("max\n")(path).filter(|_| !path.starts_with("/sys"))),
            Some((16 << 30, "the machine's memory"))
        );
    }

    /// This machine's own figure: some memory, never more than `MemTotal` says.
    #[test]
    fn this_machine_has_a_limit() {
        let (bytes, _) = limit().expect("Linux tells its memory");
        let total = mem_total(&std::fs::read_to_string("/proc/meminfo").unwrap()).unwrap();
        assert!(bytes > 0 && bytes <= total, "{bytes} of {total}");
    }

    /// More than half of what the node may use is said, with the figures and the way out;
    /// half or less, or no figure, is not.
    #[test]
    fn a_pending_bound_past_half_the_memory_is_said() {
        let gib = |n: u64| Some((n << 30, "the machine's memory"));
        // The default, 100,000 messages of 4 KiB: 390.6 MiB.
        assert_eq!(pending_bound_warning(100_000, 1, gib(1)), None);
        assert_eq!(pending_bound_warning(100_000, 1, None), None);
        let said = pending_bound_warning(100_000, 16, gib(8)).expect("6.1 GiB of 8");
        crate::test_log::assert_says(
            &said,
            &[
            "maxPendingRecords 100000 lets a broker that is away make this appender hold up to \
             6.1 GiB of messages (4 KiB for each message, on each of its 16 connections), more \
             than half of the 8.0 GiB the node may use (the machine's memory)",
            // 4 GiB over 16 connections of 4 KiB messages.
            "lower maxPendingRecords to 65536 or less (or connectionsPerBroker)",
            ],
        );
        let alone = pending_bound_warning(1_000_000, 1, gib(2)).expect("3.8 GiB of 2");
        assert!(
            alone.ends_with("lower maxPendingRecords to 262144 or less"),
            "{alone}"
        );
        assert_eq!(pending_bound_warning(100_000, 10, gib(8)), None, "3.8 GiB");
        let at_half = Some((2 * max_pending_bytes(100_000) as u64, "x"));
        assert_eq!(pending_bound_warning(100_000, 1, at_half), None);
        assert!(pending_bound_warning(100_001, 1, at_half).is_some());
        // The most the fields take, 128 TiB, against a machine of 1 TiB: no overflow.
        assert!(pending_bound_warning(i32::MAX as usize, 16, gib(1024)).is_some());
    }

    /// A connection holds up to its largest appender's bound, once however many share it;
    /// connections of their own add up.
    #[test]
    fn the_nodes_appenders_hold_each_connections_largest_bound_together() {
        let default = max_pending_bytes(100_000) as u64;
        assert_eq!(node_pending_bytes::<usize>([]), 0);
        assert_eq!(
            node_pending_bytes([(1, 100_000), (2, 100_000)]),
            2 * default
        );
        assert_eq!(
            node_pending_bytes([(1, 1_000), (1, 100_000), (1, 10)]),
            default,
            "one connection, three appenders"
        );
        assert_eq!(
            node_pending_bytes([(1, 100_000), (2, 50_000), (2, 100_000), (3, 100_000)]),
            3 * default
        );
        assert_eq!(
            node_pending_bytes([(1, usize::MAX), (2, usize::MAX)]),
            u64::MAX,
            "no overflow"
        );
    }

    #[test]
    fn appenders_holding_more_than_half_the_memory_together_are_said() {
        let gib = |n: u64| Some((n << 30, "the memory limit of the node's control group"));
        let three = node_pending_bytes((0..3).map(|c| (c, 100_000)));
        let four = node_pending_bytes((0..4).map(|c| (c, 100_000)));
        let said = node_bound_warning((three, four), 4, gib(3)).expect("1.5 GiB of 3");
        crate::test_log::assert_says(
            &said,
            &[
                "the 4 appenders open in this node let brokers that are away make them hold up \
                 to 1.5 GiB of messages together",
                "more than half of the 3.0 GiB the node may use (the memory limit of the \
                 node's control group)",
                "lower maxPendingRecords of this appender or of the others",
            ],
        );
        assert_eq!(
            node_bound_warning((three, four), 4, gib(4)),
            None,
            "1.5 GiB of 4"
        );
        assert_eq!(node_bound_warning((three, four), 4, None), None);
        let five = node_pending_bytes((0..5).map(|c| (c, 100_000)));
        assert_eq!(
            node_bound_warning((four, five), 5, gib(3)),
            None,
            "past half already: the fourth said so"
        );
    }

    #[test]
    fn sizes_read_as_mib_or_gib() {
        assert_eq!(shown(100_000 * 4096), "390.6 MiB");
        assert_eq!(shown(4 << 30), "4.0 GiB");
        assert_eq!(shown(1 << 30), "1.0 GiB");
        assert_eq!(shown((1 << 30) - (1 << 20)), "1023.0 MiB");
        assert_eq!(shown(2_000_000_000 * 4096), "7.5 TiB");
    }
}

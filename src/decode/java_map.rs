//! A map's entries in the iteration order of the `java.util.HashMap` that Avro 1.7.5's
//! `GenericDatumReader` reads it into, which is the order its `JsonEncoder` wrote them in.
//! The walker writes each `"key":value` in input order and records where it lies
//! ([`MapEntry`]); [`finish_map`] then puts the entries in Java's order, emulating the
//! table's sizing, resizes and buckets from the keys' Java hash codes ([`java_hash`]).

use std::borrow::Cow;
use std::collections::HashMap;

use super::KeyKind;
use crate::json_text::java_decode_utf8;

/// Maps of up to this many entries are ordered without touching the heap.
pub(super) const SMALL_MAP: usize = 16;

#[derive(Clone, Copy, Default)]
pub(super) struct MapEntry<'a> {
    pub(super) key: &'a [u8],
    /// `key.hashCode()` of the Java key object.
    pub(super) hash: i32,
    /// The `"key":value` text in `out`.
    pub(super) start: usize,
    pub(super) end: usize,
}

/// `hashCode()` of the key object GenericDatumReader puts in the map.
pub(super) fn java_hash(kind: &KeyKind, key: &[u8]) -> i32 {
    match kind {
        // Avro 1.7.5 Utf8.hashCode(): h = h*31 + b over the bytes, as signed Java bytes.
        KeyKind::Utf8 | KeyKind::Invalid(_) => key.iter().fold(0i32, |h, &b| {
            h.wrapping_mul(31).wrapping_add(i32::from(b as i8))
        }),
        // String.hashCode(): the same over the UTF-16 code units of the decoded text.
        KeyKind::JavaString => {
            let step = |h: i32, u: u16| h.wrapping_mul(31).wrapping_add(i32::from(u));
            match std::str::from_utf8(key) {
                Ok(text) => text.encode_utf16().fold(0, step),
                Err(_) => java_decode_utf8(key).into_iter().fold(0, step),
            }
        }
    }
}

/// The identity of a key: its bytes for `Utf8` keys, its decoded text (as UTF-8) for
/// `String` keys, where different bytes can decode to the same text through U+FFFD.
fn key_identity<'a>(kind: &KeyKind, key: &'a [u8]) -> Cow<'a, [u8]> {
    match kind {
        KeyKind::JavaString if std::str::from_utf8(key).is_err() => {
            Cow::Owned(String::from_utf16_lossy(&java_decode_utf8(key)).into_bytes())
        }
        _ => Cow::Borrowed(key),
    }
}

fn keys_equal(kind: &KeyKind, a: &[u8], b: &[u8]) -> bool {
    a == b || (*kind == KeyKind::JavaString && key_identity(kind, a) == key_identity(kind, b))
}

/// Java 8's `HashMap.hash`: the high half folded into the low half.
fn spread(hash: i32) -> u32 {
    let h = hash as u32;
    h ^ (h >> 16)
}

/// Reorders the map just written at `out[mark..]` (`{` segments separated by `,` `}`) into the
/// iteration order of the `java.util.HashMap` Avro 1.7.5 reads it into:
/// `new HashMap<>(firstBlockCount)`, then `put` of every entry in input order.
///
/// Java 8 HashMap facts used: the table is allocated at the first put with
/// `tableSizeFor(initialCapacity)` buckets (1 for 0 or 1); it doubles when `++size > threshold`
/// (threshold = capacity * 0.75, truncated); a put to an existing key keeps the key's node
/// and replaces its value; new nodes go to the tail of their bucket's chain and a resize
/// splits every chain preserving relative order, so each bucket iterates in first-insertion
/// order; iteration walks buckets 0..capacity. A chain that reaches 9 nodes in a table of
/// fewer than 64 buckets makes `treeifyBin` resize instead, which is emulated. In a larger
/// table that chain becomes a red-black tree whose iteration order can differ; that needs
/// nine keys in one bucket of a table of 64 or more and is not emulated.
///
/// The bytes it copied doing so (0 when they were in order already); `None`, with `out` as it
/// was, when rewriting the map would take more than `room` bytes.
// Not inlined: its stack arrays then never sit in the frames of the recursion.
#[inline(never)]
pub(super) fn finish_map(
    out: &mut Vec<u8>,
    mark: usize,
    entries: &[MapEntry<'_>],
    first_block: usize,
    kind: &KeyKind,
    room: usize,
) -> Option<usize> {
    let n = entries.len();
    if n <= 1 {
        return Some(0);
    }
    if n <= SMALL_MAP {
        // The same steps as below, with arrays on the stack.
        let mut first_of = [0usize; SMALL_MAP];
        let mut has_duplicates = false;
        for i in 0..n {
            first_of[i] = i;
            for j in 0..i {
                if first_of[j] == j
                    && entries[j].hash == entries[i].hash
                    && keys_equal(kind, entries[j].key, entries[i].key)
                {
                    first_of[i] = j;
                    has_duplicates = true;
                    break;
                }
            }
        }
        let mut slots = [0usize; SMALL_MAP];
        let mut hashes = [0u32; SMALL_MAP];
        let mut slot_of = [0usize; SMALL_MAP];
        let mut distinct = 0;
        for i in 0..n {
            if first_of[i] == i {
                slot_of[i] = distinct;
                slots[distinct] = i;
                hashes[distinct] = spread(entries[i].hash);
                distinct += 1;
            } else {
                slots[slot_of[first_of[i]]] = i;
            }
        }
        let mask = java_hashmap_capacity(first_block, &hashes[..distinct]) - 1;
        let mut order = [0usize; SMALL_MAP];
        for (k, slot) in order[..distinct].iter_mut().enumerate() {
            *slot = k;
        }
        order[..distinct].sort_unstable_by_key(|&k| (hashes[k] & mask, k));
        return reorder_map(
            out,
            mark,
            entries,
            has_duplicates,
            &order[..distinct],
            &slots,
            room,
        );
    }
    // For each entry, the entry of the first equal key (itself if it is the first).
    let mut first_of: Vec<usize> = (0..n).collect();
    let mut has_duplicates = false;
    let mut by_hash: Vec<usize> = (0..n).collect();
    by_hash.sort_unstable_by_key(|&i| (entries[i].hash, i));
    let mut group_start = 0;
    while group_start < n {
        let hash = entries[by_hash[group_start]].hash;
        let mut group_end = group_start + 1;
        while group_end < n && entries[by_hash[group_end]].hash == hash {
            group_end += 1;
        }
        let group = &by_hash[group_start..group_end];
        if group.len() <= SMALL_MAP {
            for (gi, &i) in group.iter().enumerate().skip(1) {
                for &j in &group[..gi] {
                    if first_of[j] == j && keys_equal(kind, entries[j].key, entries[i].key) {
                        first_of[i] = j;
                        has_duplicates = true;
                        break;
                    }
                }
            }
        } else {
            // Many keys with one hash (crafted input): look equal keys up by their text.
            // Sized once: the charge for the map counted a table of this size, not its regrowth.
            let mut seen: HashMap<Cow<'_, [u8]>, usize> = HashMap::with_capacity(group.len());
            for &i in group {
                let key = key_identity(kind, entries[i].key);
                match seen.get(&key) {
                    Some(&j) => {
                        first_of[i] = j;
                        has_duplicates = true;
                    }
                    None => {
                        seen.insert(key, i);
                    }
                }
            }
        }
        group_start = group_end;
    }
    // Distinct keys in first-insertion order: the entry holding each one's last value, and
    // its hash.
    let mut slots: Vec<usize> = Vec::with_capacity(n);
    let mut hashes: Vec<u32> = Vec::with_capacity(n);
    let mut slot_of: Vec<usize> = vec![0; n];
    for i in 0..n {
        if first_of[i] == i {
            slot_of[i] = slots.len();
            slots.push(i);
            hashes.push(spread(entries[i].hash));
        } else {
            slots[slot_of[first_of[i]]] = i;
        }
    }
    let mask = java_hashmap_capacity(first_block, &hashes) - 1;
    let mut order: Vec<usize> = (0..slots.len()).collect();
    order.sort_unstable_by_key(|&k| (hashes[k] & mask, k));
    reorder_map(out, mark, entries, has_duplicates, &order, &slots, room)
}

/// Rewrites the map at `out[mark..]` with the distinct keys in `order` (indices into `slots`,
/// which name the entry holding each key's last value), unless that is what is there already.
/// The new text is assembled after the old one: `None`, and nothing written, when that takes
/// more than `room` bytes; else how many bytes it copied.
fn reorder_map(
    out: &mut Vec<u8>,
    mark: usize,
    entries: &[MapEntry<'_>],
    has_duplicates: bool,
    order: &[usize],
    slots: &[usize],
    room: usize,
) -> Option<usize> {
    if !has_duplicates && order.iter().enumerate().all(|(pos, &k)| pos == k) {
        return Some(0);
    }
    // Never longer than the map as written: duplicates only drop entries.
    let copied = out.len() - mark;
    if copied > room {
        return None;
    }
    let assembled = out.len();
    out.push(b'{');
    for (pos, &k) in order.iter().enumerate() {
        if pos > 0 {
            out.push(b',');
        }
        let e = &entries[slots[k]];
        out.extend_from_within(e.start..e.end);
    }
    out.push(b'}');
    out.drain(mark..assembled);
    Some(copied)
}

/// The table size of a `java.util.HashMap` created with `initial_capacity` after putting
/// keys with these spread hashes, in order.
fn java_hashmap_capacity(initial_capacity: usize, hashes: &[u32]) -> u32 {
    const MAXIMUM_CAPACITY: u32 = 1 << 30;
    const TREEIFY_THRESHOLD: u32 = 8;
    const MIN_TREEIFY_CAPACITY: u32 = 64;
    let threshold = |cap: u32| (cap as u64 * 3 / 4) as usize;
    let mut cap = if initial_capacity <= 1 {
        1
    } else {
        (initial_capacity.min(MAXIMUM_CAPACITY as usize) as u32).next_power_of_two()
    };
    // Chains can only reach 9 nodes with 9 keys.
    let track_chains = hashes.len() > TREEIFY_THRESHOLD as usize;
    let mut chains: Vec<u32> = Vec::new();
    let rebuild = |chains: &mut Vec<u32>, cap: u32, inserted: &[u32]| {
        chains.clear();
        chains.resize(cap as usize, 0);
        for &h in inserted {
            chains[(h & (cap - 1)) as usize] += 1;
        }
    };
    if track_chains {
        rebuild(&mut chains, cap, &[]);
    }
    for (i, &h) in hashes.iter().enumerate() {
        if track_chains {
            let bucket = (h & (cap - 1)) as usize;
            chains[bucket] += 1;
            // putVal appends the node, then treeifyBin when the chain had 8 nodes before;
            // treeifyBin resizes instead while the table is small.
            if chains[bucket] > TREEIFY_THRESHOLD
                && cap < MIN_TREEIFY_CAPACITY
                && cap < MAXIMUM_CAPACITY
            {
                cap *= 2;
                rebuild(&mut chains, cap, &hashes[..=i]);
            }
        }
        if i + 1 > threshold(cap) && cap < MAXIMUM_CAPACITY {
            cap *= 2;
            if track_chains {
                rebuild(&mut chains, cap, &hashes[..=i]);
            }
        }
    }
    cap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashmap_capacity() {
        let h = |s: &str| spread(java_hash(&KeyKind::Utf8, s.as_bytes()));
        // tableSizeFor, then doubling at 0.75.
        assert_eq!(java_hashmap_capacity(0, &[]), 1);
        assert_eq!(java_hashmap_capacity(1, &[h("a")]), 2);
        assert_eq!(java_hashmap_capacity(3, &[h("a"), h("b"), h("c")]), 4);
        assert_eq!(
            java_hashmap_capacity(1, &[h("a"), h("b"), h("c"), h("d")]),
            8
        );
        assert_eq!(java_hashmap_capacity(13, &[h("a")]), 16);
        let twelve: Vec<u32> = (0..12).map(|i| h(&format!("k{i}"))).collect();
        assert_eq!(java_hashmap_capacity(12, &twelve), 16);
        let thirteen: Vec<u32> = (0..13).map(|i| h(&format!("k{i}"))).collect();
        assert_eq!(java_hashmap_capacity(13, &thirteen), 32);
        assert_eq!(
            java_hash(&KeyKind::Utf8, b"Aa"),
            java_hash(&KeyKind::Utf8, b"BB")
        );
        // C3 A9 as signed bytes: -61 * 31 - 87.
        assert_eq!(java_hash(&KeyKind::Utf8, "é".as_bytes()), -1978);
        assert_eq!(java_hash(&KeyKind::JavaString, "é".as_bytes()), 233);
    }
}

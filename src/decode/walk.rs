//! The walker: one datum, read along the compiled `Node` tree and written as JSON text into
//! the caller's buffer in one pass ([`LogSchema::to_json_within`] and its kin, and
//! [`LogSchema::field_text`] for topic templates). `Cx` carries the bounds a hostile datum
//! meets on the way: nesting ([`MAX_DEPTH`]), block counts the input cannot back, zero-width
//! items ([`ZERO_WIDTH_BUDGET`]) and the output limit, a large map's working memory included.

use super::java_map::{finish_map, java_hash, MapEntry, SMALL_MAP};
use super::java_number::{write_java_double, write_java_float};
use super::{
    DecodeError, KeyKind, LogSchema, Node, Style, MAP_ENTRY_COST, MAX_DEPTH, REORDER_TIMES,
    ZERO_WIDTH_BUDGET,
};
use crate::binary::Reader;
use crate::json_text::{write_base64, write_i64, write_latin1_string, write_utf8_string};

impl LogSchema {
    /// Appends the Avro-JSON text of one datum to `out`: what Avro 1.7.5's JsonEncoder writes,
    /// byte for byte. On error `out` may hold partial output; callers truncate.
    ///
    /// Bytes left over after the datum are an error. Kaa itself would ignore them, but a
    /// record written in another schema must fail here rather than publish garbage.
    pub fn to_avro_json(&self, datum: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        self.to_json(datum, out, Style::AvroJson)
    }

    /// Appends the datum in the given style (see [`Style`]); otherwise as
    /// [`LogSchema::to_avro_json`].
    pub fn to_json(
        &self,
        datum: &[u8],
        out: &mut Vec<u8>,
        style: Style,
    ) -> Result<(), DecodeError> {
        self.to_json_within(datum, out, style, usize::MAX)
    }

    /// As [`LogSchema::to_json`], but stops with [`DecodeError::OverLimit`] once `out` would
    /// grow past `limit` bytes (its length, all of it, not only what this datum adds), a large
    /// map's working memory counted as [`MAP_ENTRY_COST`] bytes per entry while it is live,
    /// and what a map's repeated keys dropped as written (Avro's writers never repeat a key). The
    /// check comes before every array item and map entry, and before a map's entries are
    /// allocated, so `out` passes `limit` by at most one item that holds no array or map
    /// (whose size its input and the schema bound), and grows to at most twice that.
    pub fn to_json_within(
        &self,
        datum: &[u8],
        out: &mut Vec<u8>,
        style: Style,
        limit: usize,
    ) -> Result<(), DecodeError> {
        self.to_json_drawing(datum, out, style, limit, &mut ZERO_WIDTH_BUDGET.clone())
    }

    /// As [`LogSchema::to_json_within`], its zero-byte array items drawn from `budget`, which
    /// the records of one pack share ([`ZERO_WIDTH_BUDGET`]).
    pub fn to_json_drawing(
        &self,
        datum: &[u8],
        out: &mut Vec<u8>,
        style: Style,
        limit: usize,
        budget: &mut u64,
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(datum);
        let mut cx = Cx::new(datum.len(), style, limit, out.len(), *budget);
        out.reserve((datum.len() * 3 + 64).min(limit.saturating_sub(out.len())));
        let written = self.write(self.root, &mut r, out, &mut cx, 0);
        *budget = cx.budget;
        written?;
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes {
                offset: cx.offset(r.remaining()),
                trailing: r.remaining(),
            });
        }
        Ok(())
    }

    fn write(
        &self,
        node: u32,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
        cx: &mut Cx,
        depth: u32,
    ) -> Result<(), DecodeError> {
        macro_rules! read {
            ($what:expr, $call:ident ( $($arg:expr),* )) => {{
                let at = r.remaining();
                match r.$call($($arg),*) {
                    Ok(v) => v,
                    Err(error) => {
                        return Err(DecodeError::Malformed {
                            offset: cx.offset(at),
                            what: $what,
                            error,
                        })
                    }
                }
            }};
        }
        match &self.nodes[node as usize] {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Boolean => {
                let b = read!("boolean", read_boolean());
                out.extend_from_slice(if b { b"true" } else { b"false" });
            }
            Node::Int => write_i64(out, i64::from(read!("int", read_int()))),
            Node::Long => write_i64(out, read!("long", read_long())),
            Node::Float => write_java_float(out, read!("float", read_float())),
            Node::Double => write_java_double(out, read!("double", read_double())),
            Node::String => write_utf8_string(out, read!("string", read_string_bytes())),
            Node::Bytes => write_bytes(out, read!("bytes", read_bytes()), cx.style),
            Node::Fixed(size) => write_bytes(out, read!("fixed", read_fixed(*size)), cx.style),
            Node::Enum(symbols) => {
                let at = r.remaining();
                let index = read!("enum index", read_int());
                match usize::try_from(index).ok().and_then(|i| symbols.get(i)) {
                    Some(symbol) => out.extend_from_slice(symbol),
                    None => {
                        return Err(DecodeError::EnumIndex {
                            offset: cx.offset(at),
                            index,
                            symbols: symbols.len(),
                        })
                    }
                }
            }
            Node::Record(fields) => {
                if fields.is_empty() {
                    // Nested empty records: Avro 1.7.5's JsonEncoder emits `{}` for them
                    // through its grammar's implicit RECORD_START / RECORD_END actions, which
                    // run when the next value is written or at flush(). Only a datum in which
                    // nothing at all is written (a top-level record whose fields are all,
                    // recursively, field-less records) comes out empty there, because the
                    // parser's root symbol is never expanded; we publish the JSON such a record
                    // stands for instead (`{}` at top level, `{"e":{}}` and so on), never nothing.
                    out.extend_from_slice(b"{}");
                    return Ok(());
                }
                let depth = cx.enter(depth, r)?;
                for field in fields.iter() {
                    // Records of records that take no input bytes, reused by name, can stand
                    // for 2^n values in a datum of no bytes at all: the bound is checked here
                    // as well as between array items and map entries.
                    cx.check_output(out, r)?;
                    out.extend_from_slice(&field.prefix);
                    self.write(field.node, r, out, cx, depth)?;
                }
                out.push(b'}');
            }
            Node::Union(branches) => {
                let at = r.remaining();
                let index = read!("union index", read_int());
                let Some(branch) = usize::try_from(index).ok().and_then(|i| branches.get(i)) else {
                    return Err(DecodeError::UnionIndex {
                        offset: cx.offset(at),
                        index,
                        branches: branches.len(),
                    });
                };
                match &branch.open {
                    None => out.extend_from_slice(b"null"),
                    Some(_) if cx.style == Style::Plain => {
                        let depth = cx.enter(depth, r)?;
                        self.write(branch.node, r, out, cx, depth)?;
                    }
                    Some(open) => {
                        let depth = cx.enter(depth, r)?;
                        out.extend_from_slice(open);
                        self.write(branch.node, r, out, cx, depth)?;
                        out.push(b'}');
                    }
                }
            }
            Node::Array {
                items,
                empty_weight,
            } => {
                let depth = cx.enter(depth, r)?;
                out.push(b'[');
                let mut first = true;
                loop {
                    let at = r.remaining();
                    let count = read!("array block count", read_block_count());
                    if count == 0 {
                        break;
                    }
                    cx.check_block(count, *empty_weight, at, r.remaining())?;
                    for _ in 0..count {
                        cx.check_output(out, r)?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        self.write(*items, r, out, cx, depth)?;
                    }
                }
                out.push(b']');
            }
            Node::Map { values, keys } => {
                let depth = cx.enter(depth, r)?;
                self.write_map(*values, keys, r, out, cx, depth)?;
            }
        }
        Ok(())
    }

    /// The text of the field at `path` (field names from the top record down) in one datum,
    /// for topic templates: a string as it is, a number or boolean as JSON writes it, an enum
    /// its symbol; a union stands for its branch. Null, bytes, fixed, records, arrays and maps
    /// have no text; the error says which field and why. The fields before it are decoded
    /// into a scratch buffer bounded by `limit` bytes, as in [`LogSchema::to_json_within`].
    pub fn field_text<S: AsRef<str>>(
        &self,
        datum: &[u8],
        path: &[S],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), String> {
        let dotted = || path.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(".");
        let failed = |e: DecodeError| format!("event.{}: {e}", dotted());
        let mut r = Reader::new(datum);
        let mut cx = Cx::new(datum.len(), Style::Plain, limit, 0, ZERO_WIDTH_BUDGET);
        let mut skipped = Vec::new();
        let mut node = self.root;
        let mut segments = path.iter();
        loop {
            match &self.nodes[node as usize] {
                Node::Union(branches) => {
                    let index = r.read_int().map_err(|e| {
                        failed(DecodeError::Malformed {
                            offset: 0,
                            what: "union index",
                            error: e,
                        })
                    })?;
                    node = usize::try_from(index)
                        .ok()
                        .and_then(|i| branches.get(i))
                        .ok_or_else(|| {
                            format!("event.{}: union index {index} does not exist", dotted())
                        })?
                        .node;
                }
                Node::Record(fields) => {
                    let Some(name) = segments.next() else {
                        return Err(format!("event.{} is a record, not a value", dotted()));
                    };
                    let name = name.as_ref();
                    let target = fields
                        .iter()
                        .position(|f| &*f.name == name)
                        .ok_or_else(|| {
                            format!("event.{}: the record has no field '{name}'", dotted())
                        })?;
                    for field in &fields[..target] {
                        cx.written += skipped.len();
                        skipped.clear();
                        self.write(field.node, &mut r, &mut skipped, &mut cx, 0)
                            .map_err(failed)?;
                    }
                    node = fields[target].node;
                }
                _ if segments.len() > 0 => {
                    return Err(format!("event.{}: only records have fields", dotted()));
                }
                Node::String => {
                    let bytes = r.read_string_bytes().map_err(|e| {
                        failed(DecodeError::Malformed {
                            offset: 0,
                            what: "string",
                            error: e,
                        })
                    })?;
                    out.extend_from_slice(String::from_utf8_lossy(bytes).as_bytes());
                    return Ok(());
                }
                Node::Enum(_)
                | Node::Boolean
                | Node::Int
                | Node::Long
                | Node::Float
                | Node::Double => {
                    let mark = out.len();
                    self.write(node, &mut r, out, &mut cx, 0).map_err(failed)?;
                    // Enum symbols and NaN / Infinity come quoted: a topic wants the bare text.
                    if out.get(mark) == Some(&b'"') {
                        out.remove(mark);
                        out.pop();
                    }
                    return Ok(());
                }
                Node::Null => return Err(format!("event.{} is null", dotted())),
                _ => return Err(format!("event.{} has no text value", dotted())),
            }
        }
    }

    /// Writes a map: the entries go out in insertion order first, each `"key":value` as one
    /// segment, then [`finish_map`] reorders the segments into Java's HashMap order.
    // Not inlined, so that the entry array below sits only in the frames of map levels.
    #[inline(never)]
    fn write_map(
        &self,
        values: u32,
        keys: &KeyKind,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
        cx: &mut Cx,
        depth: u32,
    ) -> Result<(), DecodeError> {
        let mark = out.len();
        // The entries, on the stack while there are few (almost always), else on the heap,
        // reserved a block at a time once the block's working memory is charged to the limit.
        let mut small = [MapEntry::default(); SMALL_MAP];
        let mut spill: Vec<MapEntry<'_>> = Vec::new();
        let mut n = 0usize;
        let mut first_block = 0usize;
        out.push(b'{');
        loop {
            let at = r.remaining();
            let count = match r.read_block_count() {
                Ok(n) => n,
                Err(error) => {
                    return Err(DecodeError::Malformed {
                        offset: cx.offset(at),
                        what: "map block count",
                        error,
                    })
                }
            };
            if count == 0 {
                break;
            }
            // Every key takes at least its length byte.
            cx.check_block(count, 0, at, r.remaining())?;
            if let KeyKind::Invalid(value) = keys {
                return Err(DecodeError::BadStringType {
                    offset: cx.offset(at),
                    value: value.clone(),
                });
            }
            if first_block == 0 {
                first_block = count;
            }
            let total = n + count;
            if total > SMALL_MAP {
                // Every entry on the heap is charged, the ones moved from the stack too.
                let newly = if spill.is_empty() { total } else { count };
                cx.charge(out, newly.saturating_mul(MAP_ENTRY_COST), at)?;
                if spill.is_empty() {
                    spill.reserve_exact(total);
                    spill.extend_from_slice(&small[..n]);
                } else {
                    spill.reserve_exact(count);
                }
            }
            for _ in 0..count {
                cx.check_output(out, r)?;
                let at = r.remaining();
                let key = match r.read_string_bytes() {
                    Ok(k) => k,
                    Err(error) => {
                        return Err(DecodeError::Malformed {
                            offset: cx.offset(at),
                            what: "map key",
                            error,
                        })
                    }
                };
                if n > 0 {
                    out.push(b',');
                }
                let start = out.len();
                write_utf8_string(out, key);
                out.push(b':');
                self.write(values, r, out, cx, depth)?;
                let entry = MapEntry {
                    key,
                    hash: java_hash(keys, key),
                    start,
                    end: out.len(),
                };
                if spill.capacity() == 0 {
                    small[n] = entry;
                } else {
                    spill.push(entry);
                }
                n += 1;
            }
        }
        out.push(b'}');
        let (entries, charged) = if spill.capacity() == 0 {
            (&small[..n], 0)
        } else {
            (&spill[..], n * MAP_ENTRY_COST)
        };
        // Putting the entries in order may copy the map's text once more, within the limit.
        let room = cx.limit.saturating_sub(out.len());
        let written = out.len();
        let Some(copied) = finish_map(out, mark, entries, first_block, keys, room) else {
            return Err(cx.over_limit(r.remaining()));
        };
        // A key repeated keeps its last value only: what it dropped was written all the same,
        // and counts against the bound (or each of many maps could write up to it and drop it).
        let dropped = written - out.len();
        cx.written += dropped;
        cx.limit = cx
            .limit
            .checked_sub(dropped)
            .ok_or_else(|| cx.over_limit(r.remaining()))?;
        cx.reordered(copied, out, r)?;
        cx.limit += charged;
        Ok(())
    }
}

/// Per-datum decoding state.
struct Cx {
    len: usize,
    budget: u64,
    style: Style,
    /// The length `out` may reach, less the working memory of the large maps being written
    /// and what repeated map keys dropped.
    limit: usize,
    /// `limit` as the caller gave it, for the error.
    bound: usize,
    /// Bytes copied putting maps in Java's order ([`REORDER_TIMES`]).
    reordered: usize,
    /// The output of this datum: what it wrote and dropped since (scratch buffers, a map's
    /// repeated keys), and where it starts in the buffer it writes now.
    written: usize,
    start: usize,
}

impl Cx {
    fn new(len: usize, style: Style, limit: usize, start: usize, budget: u64) -> Cx {
        Cx {
            len,
            budget,
            style,
            limit,
            bound: limit,
            reordered: 0,
            written: 0,
            start,
        }
    }

    /// Counts `copied` bytes of a map put in order into `out`; fails once they pass
    /// [`REORDER_TIMES`] the datum's output.
    fn reordered(&mut self, copied: usize, out: &[u8], r: &Reader<'_>) -> Result<(), DecodeError> {
        self.reordered += copied;
        let output = self.written + (out.len() - self.start);
        if self.reordered > REORDER_TIMES.saturating_mul(output) {
            return Err(DecodeError::MapsTooNested {
                offset: self.offset(r.remaining()),
                times: REORDER_TIMES,
            });
        }
        Ok(())
    }

    fn offset(&self, remaining: usize) -> usize {
        self.len - remaining
    }

    fn enter(&self, depth: u32, r: &Reader<'_>) -> Result<u32, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep {
                offset: self.offset(r.remaining()),
                limit: MAX_DEPTH,
            });
        }
        Ok(depth + 1)
    }

    /// Stops before another item, field or entry once the output has passed the limit.
    #[inline(always)]
    fn check_output(&self, out: &[u8], r: &Reader<'_>) -> Result<(), DecodeError> {
        if out.len() > self.limit {
            return Err(self.over_limit(r.remaining()));
        }
        Ok(())
    }

    #[cold]
    fn over_limit(&self, remaining: usize) -> DecodeError {
        DecodeError::OverLimit {
            offset: self.offset(remaining),
            limit: self.bound,
        }
    }

    /// Sets aside `bytes` of the limit for working memory, if the output leaves room for it.
    fn charge(&mut self, out: &[u8], bytes: usize, at: usize) -> Result<(), DecodeError> {
        match self.limit.checked_sub(bytes) {
            Some(limit) if out.len() <= limit => {
                self.limit = limit;
                Ok(())
            }
            _ => Err(self.over_limit(at)),
        }
    }

    /// Rejects a block count the input cannot back: items that take at least one byte each
    /// cannot outnumber the bytes left; zero-byte items draw on the pack's budget.
    fn check_block(
        &mut self,
        count: usize,
        empty_weight: u32,
        at: usize,
        remaining: usize,
    ) -> Result<(), DecodeError> {
        if empty_weight == 0 {
            if count > remaining {
                return Err(DecodeError::BlockCount {
                    offset: self.offset(at),
                    count,
                    remaining,
                });
            }
            return Ok(());
        }
        let cost = (count as u64).saturating_mul(u64::from(empty_weight));
        if cost > self.budget {
            return Err(DecodeError::TooManyEmptyItems {
                offset: self.offset(at),
            });
        }
        self.budget -= cost;
        Ok(())
    }
}

/// Bytes and fixed in the given style: ISO-8859-1 text (Avro JSON), or base64 (plain JSON).
fn write_bytes(out: &mut Vec<u8>, bytes: &[u8], style: Style) {
    match style {
        Style::AvroJson => write_latin1_string(out, bytes),
        Style::Plain => {
            out.push(b'"');
            write_base64(out, bytes);
            out.push(b'"');
        }
    }
}

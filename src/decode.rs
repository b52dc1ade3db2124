//! Avro binary → the Avro-JSON text that Kaa's own converter produced.
//!
//! Kaa 0.9.0 decodes every log record with Avro **1.7.5**'s `GenericDatumReader` and writes
//! it with `GenericDatumWriter` into a non-pretty `JsonEncoder` (Jackson 1.9 `Utf8Generator`,
//! UTF-8, `MinimalPrettyPrinter`). The original appender published that text and dashboards
//! compare it byte for byte, so [`LogSchema::to_avro_json`] reproduces it exactly:
//!
//! * the schema is parsed once by `apache-avro` and compiled into a small tree of `Node`s
//!   (named types and references resolved, field names and union labels pre-rendered as JSON
//!   bytes), so the hot path only walks that tree and appends to the caller's buffer;
//! * Avro 1.7.5 has no logical types: every logical type `apache-avro` knows is written as its
//!   underlying primitive or fixed, and union labels are the 1.7.5 ones (`int`, `bytes`, the
//!   fixed's full name, ...);
//! * floats and doubles are formatted like JDK 8's `Float.toString` / `Double.toString`
//!   (see `write_java_double` for the rare values where we differ), NaN and the infinities
//!   as JSON strings, as Jackson does;
//! * strings, bytes and fixed are escaped like Jackson 1.9 (`\"`, `\\`, `\b`, `\t`, `\n`,
//!   `\f`, `\r`, other control characters as `\u00XX` with upper-case hex, and characters
//!   outside the BMP as escaped surrogate pairs); malformed UTF-8 in strings becomes U+FFFD
//!   exactly where JDK 8's decoder puts it;
//! * a map's keys come out in the iteration order of the `java.util.HashMap` that
//!   `GenericDatumReader` reads it into (see `finish_map`).
//!
//! Malformed data is an error, never a panic, never an unbounded allocation and never an
//! unbounded recursion.

use std::fmt;

use crate::binary::{BinaryError, Reader};
use java_map::{finish_map, java_hash, MapEntry, SMALL_MAP};
use java_number::{write_java_double, write_java_float};

use crate::json_text::{write_base64, write_i64, write_latin1_string, write_utf8_string};

/// Nesting limit for records, arrays, maps and unions inside one datum. Recursive schemas
/// (a linked list) would otherwise let a hostile record recurse as deep as its bytes allow.
/// A level takes about 300 bytes of stack (1.1 KB for a map), so at most some 140 KB.
pub const MAX_DEPTH: u32 = 128;

/// How much output a datum may produce from array items that take no input bytes at all
/// (`null`, `fixed` of size 0, records made only of those): each such item costs its schema
/// weight. Every other item consumes at least one input byte, which bounds it already.
const ZERO_WIDTH_BUDGET: u64 = 1 << 20;

/// What one entry of a map of more than [`SMALL_MAP`] entries costs in working memory while
/// the map is put in Java's order, charged to the output bound before any of it is allocated:
/// its `MapEntry` (40 bytes), `finish_map`'s index vectors (44), the table of same-hash keys
/// (up to 76, for crafted collisions: 33 bytes a bucket, at most 2.3 buckets an entry) and
/// `java_hashmap_capacity`'s chain counts (up to 12), rounded up. (Keys that are not UTF-8 in
/// a map of `String` keys also get a decoded copy there, at most three times their bytes.)
pub const MAP_ENTRY_COST: usize = 192;

/// Why a schema could not be used or a datum could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The schema text is not JSON, or not a schema (the message says what is wrong).
    Schema(String),
    /// The binary datum is malformed where a value of kind `what` starts at byte `offset`.
    Malformed {
        offset: usize,
        what: &'static str,
        error: BinaryError,
    },
    /// A union branch index outside the union.
    UnionIndex {
        offset: usize,
        index: i32,
        branches: usize,
    },
    /// An enum index outside the symbol list.
    EnumIndex {
        offset: usize,
        index: i32,
        symbols: usize,
    },
    /// An array or map block claims more items than the bytes that are left could hold.
    BlockCount {
        offset: usize,
        count: usize,
        remaining: usize,
    },
    /// Arrays of zero-byte items (`null`, empty records, `fixed` of size 0) that would expand
    /// into an absurd amount of output.
    TooManyEmptyItems { offset: usize },
    /// Records, arrays, maps and unions nested deeper than [`MAX_DEPTH`].
    TooDeep { offset: usize, limit: u32 },
    /// The output (with a large map's working memory) would pass the bound the caller set
    /// ([`LogSchema::to_json_within`]); decoding stopped there, before allocating more.
    OverLimit { offset: usize, limit: usize },
    /// The datum ended before the input did: the record is not in this schema.
    TrailingBytes { offset: usize, trailing: usize },
    /// A map schema's `avro.java.string` property names no `GenericData.StringType`: Avro
    /// 1.7.5 throws when it reads such a map's first key, and so do we.
    BadStringType { offset: usize, value: String },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Schema(msg) => write!(f, "unusable log schema: {msg}"),
            DecodeError::Malformed {
                offset,
                what,
                error,
            } => write!(f, "malformed datum at byte {offset} ({what}): {error}"),
            DecodeError::UnionIndex {
                offset,
                index,
                branches,
            } => write!(
                f,
                "malformed datum at byte {offset}: union branch {index} of a union of {branches}"
            ),
            DecodeError::EnumIndex {
                offset,
                index,
                symbols,
            } => write!(
                f,
                "malformed datum at byte {offset}: enum index {index} of an enum of {symbols} symbols"
            ),
            DecodeError::BlockCount {
                offset,
                count,
                remaining,
            } => write!(
                f,
                "malformed datum at byte {offset}: block of {count} items with only {remaining} bytes left"
            ),
            DecodeError::TooManyEmptyItems { offset } => write!(
                f,
                "malformed datum at byte {offset}: too many zero-byte array items (limit {ZERO_WIDTH_BUDGET} units)"
            ),
            DecodeError::TooDeep { offset, limit } => write!(
                f,
                "datum nested deeper than {limit} levels at byte {offset}"
            ),
            DecodeError::OverLimit { offset, limit } => write!(
                f,
                "output passes its bound of {limit} bytes at byte {offset}"
            ),
            DecodeError::TrailingBytes { offset, trailing } => write!(
                f,
                "datum ends at byte {offset} but {trailing} more bytes follow: the record is not in this schema"
            ),
            DecodeError::BadStringType { offset, value } => write!(
                f,
                "map at byte {offset}: its schema's avro.java.string {value:?} is not CharSequence, String or Utf8"
            ),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Malformed { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A parsed log schema, compiled for decoding. Cheap to share between threads.
#[derive(Debug)]
pub struct LogSchema {
    nodes: Vec<Node>,
    root: u32,
}

/// One type of the compiled schema. Children are indices into [`LogSchema::nodes`], which
/// is how recursive schemas are represented.
#[derive(Debug)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    /// Each symbol already rendered as a JSON string, quotes included.
    Enum(Box<[Box<[u8]>]>),
    /// `empty_weight` is 0 when an item takes at least one input byte; otherwise it is the
    /// output cost charged to [`ZERO_WIDTH_BUDGET`] per item.
    Array {
        items: u32,
        empty_weight: u32,
    },
    Map {
        values: u32,
        keys: KeyKind,
    },
    Record(Box<[Field]>),
    Union(Box<[Branch]>),
}

#[derive(Debug)]
struct Field {
    name: Box<str>,
    /// `{"name":` for the first field, `,"name":` for the others.
    prefix: Box<[u8]>,
    node: u32,
}

#[derive(Debug)]
struct Branch {
    /// `{"label":`, or `None` for the null branch (written as a bare `null`).
    open: Option<Box<[u8]>>,
    node: u32,
}

/// The Java class `GenericDatumReader` reads a map's keys into, which decides their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyKind {
    /// `org.apache.avro.util.Utf8` (the default): hash over the signed UTF-8 bytes, equality
    /// of bytes.
    Utf8,
    /// `java.lang.String` (`"avro.java.string": "String"` on the map schema): hash over the
    /// UTF-16 code units of the decoded text, equality of text.
    JavaString,
    /// Any other `avro.java.string` text: Avro 1.7.5 throws on the first key it reads.
    Invalid(String),
}

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
    /// map's working memory counted as [`MAP_ENTRY_COST`] bytes per entry while it is live. The
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
        let mut r = Reader::new(datum);
        let mut cx = Cx {
            len: datum.len(),
            budget: ZERO_WIDTH_BUDGET,
            style,
            limit,
            bound: limit,
        };
        out.reserve(datum.len() * 3 + 64);
        self.write(self.root, &mut r, out, &mut cx, 0)?;
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
        let mut cx = Cx {
            len: datum.len(),
            budget: ZERO_WIDTH_BUDGET,
            style: Style::Plain,
            limit,
            bound: limit,
        };
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
        if !finish_map(out, mark, entries, first_block, keys, room) {
            return Err(cx.over_limit(r.remaining()));
        }
        cx.limit += charged;
        Ok(())
    }
}

/// Per-datum decoding state.
struct Cx {
    len: usize,
    budget: u64,
    style: Style,
    /// The length `out` may reach, less the working memory of the large maps being written.
    limit: usize,
    /// `limit` as the caller gave it, for the error.
    bound: usize,
}

/// How a datum becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Avro's JSON encoding, as Avro 1.7.5's JsonEncoder writes it (the original's payload).
    AvroJson,
    /// Plain JSON: a union's value without its `{"type": …}` wrapper, bytes and fixed as
    /// base64 strings.
    Plain,
}

impl Cx {
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

    /// Stops before another item once the output has passed the limit.
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
    /// cannot outnumber the bytes left; zero-byte items draw on the datum's budget.
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

mod compile;
mod java_map;
mod java_number;

#[cfg(test)]
mod tests;

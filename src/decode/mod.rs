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
//! * floats and doubles are formatted like JDK 8's `Float.toString` / `Double.toString`,
//!   NaN and the infinities as JSON strings, as Jackson does;
//! * strings, bytes and fixed are escaped like Jackson 1.9 (`\"`, `\\`, `\b`, `\t`, `\n`,
//!   `\f`, `\r`, other control characters as `\u00XX` with upper-case hex, and characters
//!   outside the BMP as escaped surrogate pairs); malformed UTF-8 in strings becomes U+FFFD
//!   exactly where JDK 8's decoder puts it;
//! * a map's keys come out in the iteration order of the `java.util.HashMap` that
//!   `GenericDatumReader` reads it into.
//!
//! Malformed data is an error, never a panic, never an unbounded allocation and never an
//! unbounded recursion.
//!
//! This file holds the public face (the types, [`DecodeError`], [`Style`], the limits) and the
//! compiled tree; each job has its own file:
//!
//! * `compile`: [`LogSchema::parse`], the schema read as 1.7.5 reads it and compiled;
//! * `walk`: [`LogSchema::to_json_within`] and its kin, a datum walked along the tree, within
//!   its bounds;
//! * `java_map`: a map's entries put in `java.util.HashMap` order;
//! * `java_number`: floats and doubles as Java 8 prints them, digits and layout; `exact`: the
//!   exact integers its digit loop needs where Java's runs on `FDBigInteger`;
//! * strings, bytes and integers are written by `crate::json_text`, beside this module,
//!   which the record header (`crate::header`) writes with too.

use std::fmt;

use crate::binary::BinaryError;

mod compile;
mod exact;
mod java_map;
mod java_number;
mod walk;

#[cfg(test)]
mod tests;

/// Nesting limit for records, arrays, maps and unions inside one datum. Recursive schemas
/// (a linked list) would otherwise let a hostile record recurse as deep as its bytes allow.
/// A level takes about 300 bytes of stack (1.1 KB for a map), so at most some 140 KB.
pub const MAX_DEPTH: u32 = 128;

/// How much output the records of one pack may produce from array items that take no input
/// bytes at all (`null`, `fixed` of size 0, records made only of those): each such item costs
/// its schema weight (about 5 bytes of output a unit), drawn by every record of the pack
/// ([`LogSchema::to_json_drawing`]). Every other item consumes at least one input byte, which
/// bounds it already. Per record, a pack of 4-byte records made a 5 MiB message of each.
pub const ZERO_WIDTH_BUDGET: u64 = 1 << 20;

/// How many times over its output a datum may copy in putting maps in Java's order. A map put
/// in order copies its text once, with the maps inside it, so a byte is copied once for every
/// map around it that needed it: a few times in the schemas of real records. A record of a
/// recursive schema (a JSON value as records, unions and maps) can nest some 40 maps, each
/// copying what is inside it, and would cost that many copies of its output on a Kaa thread.
pub const REORDER_TIMES: usize = 16;

/// What one entry of a map of more than `java_map::SMALL_MAP` entries costs in
/// working memory while the map is put in Java's order, charged to the output bound before any
/// of it is allocated: its `MapEntry` (40 bytes), `finish_map`'s index vectors (44), the table
/// of same-hash keys (up to 76, for crafted collisions: 33 bytes a bucket, at most 2.3 buckets
/// an entry) and `java_hashmap_capacity`'s chain counts (up to 12), rounded up. (Keys that are
/// not UTF-8 in a map of `String` keys also get a decoded copy there, at most three times their
/// bytes.)
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
    /// Maps inside maps, each put in Java's order, would copy the output more than
    /// [`REORDER_TIMES`] over.
    MapsTooNested { offset: usize, times: usize },
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
                "malformed datum at byte {offset}: too many zero-byte array items (limit {ZERO_WIDTH_BUDGET} units for a pack's records)"
            ),
            DecodeError::TooDeep { offset, limit } => write!(
                f,
                "datum nested deeper than {limit} levels at byte {offset}"
            ),
            DecodeError::OverLimit { offset, limit } => write!(
                f,
                "output passes its bound of {limit} bytes at byte {offset}"
            ),
            DecodeError::MapsTooNested { offset, times } => write!(
                f,
                "maps nested in maps at byte {offset}: putting each in Java's order would copy \
                 the output more than {times} times over"
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

/// How a datum becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Avro's JSON encoding, as Avro 1.7.5's JsonEncoder writes it (the original's payload).
    AvroJson,
    /// Plain JSON: a union's value without its `{"type": …}` wrapper, bytes and fixed as
    /// base64 strings.
    Plain,
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

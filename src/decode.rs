//! Avro binary → the Avro-JSON text that Kaa's own converter produced.
//!
//! Kaa 0.9.0 decodes every log record with Avro **1.7.5**'s `GenericDatumReader` and writes
//! it with `GenericDatumWriter` into a non-pretty `JsonEncoder` (Jackson 1.9 `Utf8Generator`,
//! UTF-8, `MinimalPrettyPrinter`). The original appender published that text and dashboards
//! compare it byte for byte, so [`LogSchema::to_avro_json`] reproduces it exactly:
//!
//! * the schema is parsed once by `apache-avro` and compiled into a small tree of [`Node`]s
//!   (named types and references resolved, field names and union labels pre-rendered as JSON
//!   bytes), so the hot path only walks that tree and appends to the caller's buffer;
//! * Avro 1.7.5 has no logical types: every logical type `apache-avro` knows is written as its
//!   underlying primitive or fixed, and union labels are the 1.7.5 ones (`int`, `bytes`, the
//!   fixed's full name, ...);
//! * floats and doubles are formatted like Java's `Float.toString` / `Double.toString`
//!   (see [`write_java_double`]), NaN and the infinities as JSON strings, as Jackson does;
//! * strings, bytes and fixed are escaped like Jackson 1.x (`\"`, `\\`, `\b`, `\t`, `\n`,
//!   `\f`, `\r`, other control characters as `\u00XX` with upper-case hex, nothing else);
//! * a map's keys come out in the iteration order of the `java.util.HashMap` that
//!   `GenericDatumReader` reads it into (see [`finish_map`]).
//!
//! Malformed data is an error, never a panic, never an unbounded allocation and never an
//! unbounded recursion.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use apache_avro::schema::{
    DecimalSchema, InnerDecimalSchema, Name, NamesRef, ResolvedSchema, Schema, UuidSchema,
};
use serde_json::Value;

use crate::binary::{BinaryError, Reader};

/// Nesting limit for records, arrays, maps and unions inside one datum. Recursive schemas
/// (a linked list) would otherwise let a hostile record recurse as deep as its bytes allow.
pub const MAX_DEPTH: u32 = 128;

/// How much output a datum may produce from array items that take no input bytes at all
/// (`null`, `fixed` of size 0, records made only of those): each such item costs its schema
/// weight. Every other item consumes at least one input byte, which bounds it already.
const ZERO_WIDTH_BUDGET: u64 = 1 << 20;

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
    /// Parses an Avro schema (JSON text) and compiles it.
    pub fn parse(text: &str) -> Result<LogSchema, DecodeError> {
        let mut json: Value = serde_json::from_str(text)
            .map_err(|e| DecodeError::Schema(format!("not valid JSON: {e}")))?;
        relax_for_avro_1_7_5(&mut json);
        let schema = Schema::parse(&json).map_err(|e| DecodeError::Schema(e.to_string()))?;
        let resolved = ResolvedSchema::try_from(&schema)
            .map_err(|e| DecodeError::Schema(format!("unresolvable name: {e}")))?;
        let mut compiler = Compiler {
            names: resolved.get_names(),
            named: HashMap::new(),
            primitives: [None; 8],
            nodes: Vec::new(),
        };
        let root = compiler.compile(&schema, 0)?;
        let mut nodes = compiler.nodes;
        mark_zero_width_arrays(&mut nodes);
        Ok(LogSchema { nodes, root })
    }

    /// Appends the Avro-JSON text of one datum to `out`. On error `out` may hold partial
    /// output; callers truncate.
    ///
    /// Bytes left over after the datum are an error. Kaa itself would ignore them, but a
    /// record written in another schema must fail here rather than publish garbage.
    pub fn to_avro_json(&self, datum: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let mut r = Reader::new(datum);
        let mut cx = Cx {
            len: datum.len(),
            budget: ZERO_WIDTH_BUDGET,
        };
        out.reserve(datum.len() * 2 + 16);
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
            Node::Bytes => write_latin1_string(out, read!("bytes", read_bytes())),
            Node::Fixed(size) => write_latin1_string(out, read!("fixed", read_fixed(*size))),
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
                let Some(branch) = usize::try_from(index).ok().and_then(|i| branches.get(i))
                else {
                    return Err(DecodeError::UnionIndex {
                        offset: cx.offset(at),
                        index,
                        branches: branches.len(),
                    });
                };
                match &branch.open {
                    None => out.extend_from_slice(b"null"),
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

    /// Writes a map: the entries go out in insertion order first, each `"key":value` as one
    /// segment, then [`finish_map`] reorders the segments into Java's HashMap order.
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
        let mut entries: Vec<MapEntry<'_>> = Vec::new();
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
                entries.reserve(count.min(1024));
            }
            for _ in 0..count {
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
                if !entries.is_empty() {
                    out.push(b',');
                }
                let start = out.len();
                write_utf8_string(out, key);
                out.push(b':');
                self.write(values, r, out, cx, depth)?;
                entries.push(MapEntry {
                    key,
                    hash: java_hash(keys, key),
                    start,
                    end: out.len(),
                });
            }
        }
        out.push(b'}');
        finish_map(out, mark, &entries, first_block, keys);
        Ok(())
    }
}

/// Per-datum decoding state.
struct Cx {
    len: usize,
    budget: u64,
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

// ---------------------------------------------------------------------------------------
// Schema compilation
// ---------------------------------------------------------------------------------------

/// Makes `apache-avro` accept what Avro 1.7.5 accepts in the places that cannot matter to us:
/// 1.7.5 never checks `default` values (of fields, or an enum's default symbol) and keeps a
/// non-text `logicalType` as a plain property, while `apache-avro` rejects both. Defaults
/// only serve schema resolution, and we always read with the writer's own schema.
fn relax_for_avro_1_7_5(schema: &mut Value) {
    match schema {
        Value::Array(branches) => branches.iter_mut().for_each(relax_for_avro_1_7_5),
        Value::Object(map) => {
            if map.get("logicalType").is_some_and(|t| !t.is_string()) {
                map.remove("logicalType");
            }
            if map.get("type").and_then(Value::as_str) == Some("enum") {
                map.remove("default");
            }
            if let Some(t) = map.get_mut("type") {
                if !t.is_string() {
                    relax_for_avro_1_7_5(t);
                }
            }
            if let Some(Value::Array(fields)) = map.get_mut("fields") {
                for field in fields.iter_mut() {
                    if let Value::Object(field) = field {
                        field.remove("default");
                        if let Some(t) = field.get_mut("type") {
                            relax_for_avro_1_7_5(t);
                        }
                    }
                }
            }
            for key in ["items", "values"] {
                if let Some(child) = map.get_mut(key) {
                    relax_for_avro_1_7_5(child);
                }
            }
        }
        _ => {}
    }
}

struct Compiler<'s> {
    names: &'s NamesRef<'s>,
    /// Node of every named type compiled (or being compiled) so far.
    named: HashMap<Name, u32>,
    /// Shared nodes of the eight primitive types.
    primitives: [Option<u32>; 8],
    nodes: Vec<Node>,
}

impl<'s> Compiler<'s> {
    fn push(&mut self, node: Node) -> u32 {
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    fn primitive(&mut self, slot: usize, node: Node) -> u32 {
        if let Some(i) = self.primitives[slot] {
            return i;
        }
        let i = self.push(node);
        self.primitives[slot] = Some(i);
        i
    }

    fn compile(&mut self, schema: &'s Schema, level: u32) -> Result<u32, DecodeError> {
        // The schema JSON itself is nested at most serde_json's 128 levels; this guards the
        // compiler against anything else.
        if level > 4 * MAX_DEPTH {
            return Err(DecodeError::Schema("schema nested too deeply".into()));
        }
        let level = level + 1;
        Ok(match schema {
            Schema::Null => self.primitive(0, Node::Null),
            Schema::Boolean => self.primitive(1, Node::Boolean),
            // Logical types are unknown to Avro 1.7.5: their underlying type is all it sees.
            Schema::Int | Schema::Date | Schema::TimeMillis => self.primitive(2, Node::Int),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.primitive(3, Node::Long),
            Schema::Float => self.primitive(4, Node::Float),
            Schema::Double => self.primitive(5, Node::Double),
            Schema::Bytes
            | Schema::BigDecimal
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            })
            | Schema::Uuid(UuidSchema::Bytes) => self.primitive(6, Node::Bytes),
            Schema::String | Schema::Uuid(UuidSchema::String) => self.primitive(7, Node::String),
            Schema::Fixed(fixed)
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Fixed(fixed),
                ..
            })
            | Schema::Uuid(UuidSchema::Fixed(fixed))
            | Schema::Duration(fixed) => {
                let size = fixed.size;
                self.named(&fixed.name, |_| Ok(Node::Fixed(size)))?
            }
            Schema::Enum(e) => self.named(&e.name, |_| {
                Ok(Node::Enum(
                    e.symbols
                        .iter()
                        .map(|s| json_string(s).into_boxed_slice())
                        .collect(),
                ))
            })?,
            Schema::Record(rec) => self.named(&rec.name, |c| {
                let mut fields = Vec::with_capacity(rec.fields.len());
                for (i, field) in rec.fields.iter().enumerate() {
                    let mut prefix = vec![if i == 0 { b'{' } else { b',' }];
                    prefix.extend_from_slice(&json_string(&field.name));
                    prefix.push(b':');
                    fields.push(Field {
                        prefix: prefix.into_boxed_slice(),
                        node: c.compile(&field.schema, level)?,
                    });
                }
                Ok(Node::Record(fields.into_boxed_slice()))
            })?,
            Schema::Ref { name } => match self.named.get(name) {
                Some(&i) => i,
                None => {
                    let target = *self.names.get(name).ok_or_else(|| {
                        DecodeError::Schema(format!("undefined name {}", name.fullname(None)))
                    })?;
                    self.compile(target, level)?
                }
            },
            Schema::Array(array) => {
                let items = self.compile(&array.items, level)?;
                self.push(Node::Array {
                    items,
                    empty_weight: 0,
                })
            }
            Schema::Map(map) => {
                let keys = match map.attributes.get("avro.java.string") {
                    Some(Value::String(s)) => match s.as_str() {
                        "String" => KeyKind::JavaString,
                        "CharSequence" | "Utf8" => KeyKind::Utf8,
                        _ => KeyKind::Invalid(s.clone()),
                    },
                    // GenericData reads a property only when it is JSON text.
                    _ => KeyKind::Utf8,
                };
                let values = self.compile(&map.types, level)?;
                self.push(Node::Map { values, keys })
            }
            Schema::Union(union) => {
                let mut branches = Vec::with_capacity(union.variants().len());
                let mut labels: Vec<String> = Vec::new();
                for variant in union.variants() {
                    let label = union_label(variant)?;
                    if let Some(label) = &label {
                        // 1.7.5 names each branch by this label and rejects duplicates, e.g.
                        // an int next to a date (which apache-avro tells apart).
                        if labels.contains(label) {
                            return Err(DecodeError::Schema(format!(
                                "duplicate in union: {label}"
                            )));
                        }
                        labels.push(label.clone());
                    }
                    let node = self.compile(variant, level)?;
                    let open = label.map(|l| {
                        let mut open = vec![b'{'];
                        open.extend_from_slice(&json_string(&l));
                        open.push(b':');
                        open.into_boxed_slice()
                    });
                    branches.push(Branch { open, node });
                }
                self.push(Node::Union(branches.into_boxed_slice()))
            }
        })
    }

    /// Compiles a named type once: its node is reserved before its children are compiled,
    /// so a recursive reference finds it.
    fn named(
        &mut self,
        name: &Name,
        build: impl FnOnce(&mut Self) -> Result<Node, DecodeError>,
    ) -> Result<u32, DecodeError> {
        if let Some(&i) = self.named.get(name) {
            return Ok(i);
        }
        let i = self.push(Node::Null);
        self.named.insert(name.clone(), i);
        self.nodes[i as usize] = build(self)?;
        Ok(i)
    }
}

/// The name Avro 1.7.5 gives a union branch (`Schema.getFullName()`): the full name of a
/// record, enum or fixed, the type name of anything else; `None` for `null`.
fn union_label(schema: &Schema) -> Result<Option<String>, DecodeError> {
    let plain = |s: &str| Ok(Some(s.to_owned()));
    match schema {
        Schema::Null => Ok(None),
        Schema::Boolean => plain("boolean"),
        Schema::Int | Schema::Date | Schema::TimeMillis => plain("int"),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => plain("long"),
        Schema::Float => plain("float"),
        Schema::Double => plain("double"),
        Schema::Bytes
        | Schema::BigDecimal
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Bytes,
            ..
        })
        | Schema::Uuid(UuidSchema::Bytes) => plain("bytes"),
        Schema::String | Schema::Uuid(UuidSchema::String) => plain("string"),
        Schema::Array(_) => plain("array"),
        Schema::Map(_) => plain("map"),
        Schema::Union(_) => Err(DecodeError::Schema("nested union".into())),
        Schema::Record(_)
        | Schema::Enum(_)
        | Schema::Fixed(_)
        | Schema::Decimal(_)
        | Schema::Uuid(_)
        | Schema::Duration(_)
        | Schema::Ref { .. } => match schema.name() {
            Some(name) => Ok(Some(name.fullname(None))),
            None => Err(DecodeError::Schema("named type without a name".into())),
        },
    }
}

/// Finds the arrays whose items can take zero input bytes and gives them a weight: the
/// number of schema nodes one item writes.
fn mark_zero_width_arrays(nodes: &mut [Node]) {
    // Least fixed point: a record is zero-width when all its fields are. A record that
    // contains itself can never be encoded, and stays "not zero-width".
    let mut zero = vec![false; nodes.len()];
    loop {
        let mut changed = false;
        for (i, node) in nodes.iter().enumerate() {
            if zero[i] {
                continue;
            }
            let z = match node {
                Node::Null => true,
                Node::Fixed(0) => true,
                Node::Record(fields) => fields.iter().all(|f| zero[f.node as usize]),
                _ => false,
            };
            if z {
                zero[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    fn weight(nodes: &[Node], zero: &[bool], memo: &mut [u32], i: usize) -> u32 {
        if memo[i] != 0 {
            return memo[i];
        }
        let w = match &nodes[i] {
            Node::Record(fields) => fields.iter().fold(1u32, |acc, f| {
                acc.saturating_add(weight(nodes, zero, memo, f.node as usize))
            }),
            _ => 1,
        };
        debug_assert!(zero[i]);
        memo[i] = w;
        w
    }
    let mut memo = vec![0u32; nodes.len()];
    for i in 0..nodes.len() {
        if let Node::Array { items, .. } = nodes[i] {
            let items = items as usize;
            if zero[items] {
                let w = weight(nodes, &zero, &mut memo, items);
                if let Node::Array { empty_weight, .. } = &mut nodes[i] {
                    *empty_weight = w;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Maps in java.util.HashMap order
// ---------------------------------------------------------------------------------------

struct MapEntry<'a> {
    key: &'a [u8],
    /// `key.hashCode()` of the Java key object.
    hash: i32,
    /// The `"key":value` text in `out`.
    start: usize,
    end: usize,
}

/// `hashCode()` of the key object GenericDatumReader puts in the map.
fn java_hash(kind: &KeyKind, key: &[u8]) -> i32 {
    match kind {
        // Avro 1.7.5 Utf8.hashCode(): h = h*31 + b over the bytes, as signed Java bytes.
        KeyKind::Utf8 | KeyKind::Invalid(_) => key
            .iter()
            .fold(0i32, |h, &b| h.wrapping_mul(31).wrapping_add(i32::from(b as i8))),
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
        KeyKind::JavaString if std::str::from_utf8(key).is_err() => Cow::Owned(
            String::from_utf16_lossy(&java_decode_utf8(key)).into_bytes(),
        ),
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
fn finish_map(out: &mut Vec<u8>, mark: usize, entries: &[MapEntry<'_>], first_block: usize, kind: &KeyKind) {
    let n = entries.len();
    if n <= 1 {
        return;
    }
    // For each entry, the entry of the first equal key (itself if it is the first).
    let mut first_of: Vec<usize> = (0..n).collect();
    let mut has_duplicates = false;
    if n <= 16 {
        for i in 1..n {
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
    } else {
        let mut by_hash: Vec<usize> = (0..n).collect();
        by_hash.sort_by_key(|&i| (entries[i].hash, i));
        let mut group_start = 0;
        while group_start < n {
            let hash = entries[by_hash[group_start]].hash;
            let mut group_end = group_start + 1;
            while group_end < n && entries[by_hash[group_end]].hash == hash {
                group_end += 1;
            }
            let group = &by_hash[group_start..group_end];
            if group.len() <= 16 {
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
                let mut seen: HashMap<Cow<'_, [u8]>, usize> = HashMap::new();
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
    }
    // Distinct keys in first-insertion order, and the entry holding each one's last value.
    let mut distinct: Vec<usize> = Vec::with_capacity(n);
    let mut last_of: Vec<usize> = (0..n).collect();
    for i in 0..n {
        if first_of[i] == i {
            distinct.push(i);
        } else {
            last_of[first_of[i]] = i;
        }
    }
    let hashes: Vec<u32> = distinct.iter().map(|&i| spread(entries[i].hash)).collect();
    let mask = java_hashmap_capacity(first_block, &hashes) - 1;
    let mut order: Vec<usize> = (0..distinct.len()).collect();
    order.sort_by_key(|&k| (hashes[k] & mask, k));
    if !has_duplicates && order.iter().enumerate().all(|(pos, &k)| pos == k) {
        return;
    }
    let assembled = out.len();
    out.push(b'{');
    for (pos, &k) in order.iter().enumerate() {
        if pos > 0 {
            out.push(b',');
        }
        let e = &entries[last_of[distinct[k]]];
        out.extend_from_within(e.start..e.end);
    }
    out.push(b'}');
    out.drain(mark..assembled);
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

// ---------------------------------------------------------------------------------------
// Text output, as Jackson 1.9's Utf8Generator writes it
// ---------------------------------------------------------------------------------------

/// For each byte of valid UTF-8: 0 when written as is, else the character after the
/// backslash (`u` for the `\u00XX` form), or [`ASTRAL`] for the lead byte of a 4-byte sequence.
static ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut lead = 0xF0;
    while lead < 0x100 {
        t[lead] = ASTRAL;
        lead += 1;
    }
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0A] = b'n';
    t[0x0C] = b'f';
    t[0x0D] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Marks the lead byte of a character outside the BMP in [`ESCAPES`].
const ASTRAL: u8 = 0xFF;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn write_u_escape(out: &mut Vec<u8>, unit: u16) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        HEX[(unit >> 12) as usize],
        HEX[((unit >> 8) & 0xF) as usize],
        HEX[((unit >> 4) & 0xF) as usize],
        HEX[(unit & 0xF) as usize],
    ]);
}

/// Writes valid UTF-8 text as a JSON string, as Jackson 1.9's `Utf8Generator` does. Besides
/// the ASCII escapes, it writes every UTF-16 surrogate as a `\uXXXX` escape: a character
/// outside the Basic Multilingual Plane (an emoji) becomes an escaped surrogate pair such as
/// `\uD83D\uDE00`, never its 4-byte UTF-8 form. Everything else non-ASCII is raw UTF-8.
fn write_json_str(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let escape = ESCAPES[b as usize];
        if escape == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&text[start..i]);
        if escape == ASTRAL {
            // A 4-byte sequence (the text is valid UTF-8).
            let c = (u32::from(b & 0x07) << 18)
                | (u32::from(text[i + 1] & 0x3F) << 12)
                | (u32::from(text[i + 2] & 0x3F) << 6)
                | u32::from(text[i + 3] & 0x3F);
            let c = c - 0x10000;
            write_u_escape(out, 0xD800 | (c >> 10) as u16);
            write_u_escape(out, 0xDC00 | (c & 0x3FF) as u16);
            i += 4;
        } else {
            if escape == b'u' {
                write_u_escape(out, u16::from(b));
            } else {
                out.extend_from_slice(&[b'\\', escape]);
            }
            i += 1;
        }
        start = i;
    }
    out.extend_from_slice(&text[start..]);
    out.push(b'"');
}

fn json_string(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    write_json_str(&mut out, text.as_bytes());
    out
}

/// An Avro string: Java decodes its bytes as UTF-8 (`Utf8.toString()` is
/// `new String(bytes, "UTF-8")`) and Jackson writes the text back. Valid UTF-8 (the normal
/// case) goes straight through; anything else is decoded the way JDK 8 does it
/// ([`java_decode_utf8`]), which puts U+FFFD in other places than `String::from_utf8_lossy`.
fn write_utf8_string(out: &mut Vec<u8>, bytes: &[u8]) {
    if std::str::from_utf8(bytes).is_ok() {
        write_json_str(out, bytes);
    } else {
        write_json_utf16(out, &java_decode_utf8(bytes));
    }
}

/// JDK 8's `new String(bytes, "UTF-8")` (sun.nio.cs.UTF_8.Decoder.decode, the array decoder,
/// with malformed input replaced by U+FFFD), as UTF-16 code units. Only called for input that
/// is not valid UTF-8. It differs from `String::from_utf8_lossy` in places: an encoded
/// surrogate (`ED A0 80`) is one U+FFFD, not three; a lead byte followed by a bad byte
/// replaces one or two bytes by its own rules; and a sequence cut short at the very end of
/// the string stops the decoding after one U+FFFD.
fn java_decode_utf8(sa: &[u8]) -> Vec<u16> {
    const REPL: u16 = 0xFFFD;
    let cont = |b: u8| b & 0xC0 == 0x80;
    let sl = sa.len();
    let mut da: Vec<u16> = Vec::with_capacity(sl);
    let mut sp = 0;
    while sp < sl {
        let b1 = sa[sp];
        sp += 1;
        match b1 {
            0x00..=0x7F => da.push(u16::from(b1)),
            0xC2..=0xDF => {
                if sp < sl {
                    let b2 = sa[sp];
                    if cont(b2) {
                        da.push((u16::from(b1 & 0x1F) << 6) | u16::from(b2 & 0x3F));
                        sp += 1;
                    } else {
                        da.push(REPL);
                    }
                    continue;
                }
                da.push(REPL);
                return da;
            }
            0xE0..=0xEF => {
                if sp + 1 < sl {
                    let (b2, b3) = (sa[sp], sa[sp + 1]);
                    let bad_b2 = (b1 == 0xE0 && b2 & 0xE0 == 0x80) || !cont(b2);
                    if bad_b2 || !cont(b3) {
                        da.push(REPL);
                        // malformedN(3): the lead alone, or the lead and b2.
                        sp += if bad_b2 { 0 } else { 1 };
                    } else {
                        let c = (u16::from(b1 & 0x0F) << 12)
                            | (u16::from(b2 & 0x3F) << 6)
                            | u16::from(b3 & 0x3F);
                        da.push(if (0xD800..=0xDFFF).contains(&c) { REPL } else { c });
                        sp += 2;
                    }
                    continue;
                }
                if sp < sl && ((b1 == 0xE0 && sa[sp] & 0xE0 == 0x80) || !cont(sa[sp])) {
                    da.push(REPL);
                    continue;
                }
                da.push(REPL);
                return da;
            }
            0xF0..=0xF7 => {
                if sp + 2 < sl {
                    let (b2, b3, b4) = (sa[sp], sa[sp + 1], sa[sp + 2]);
                    let uc = (u32::from(b1 & 0x07) << 18)
                        | (u32::from(b2 & 0x3F) << 12)
                        | (u32::from(b3 & 0x3F) << 6)
                        | u32::from(b4 & 0x3F);
                    if !cont(b2) || !cont(b3) || !cont(b4) || !(0x10000..=0x10FFFF).contains(&uc)
                    {
                        da.push(REPL);
                        // malformedN(4): how many bytes the replacement stands for.
                        let bad_b2 = b1 > 0xF4
                            || (b1 == 0xF0 && !(0x90..=0xBF).contains(&b2))
                            || (b1 == 0xF4 && b2 & 0xF0 != 0x80)
                            || !cont(b2);
                        sp += if bad_b2 {
                            0
                        } else if !cont(b3) {
                            1
                        } else {
                            2
                        };
                    } else {
                        let u = uc - 0x10000;
                        da.push(0xD800 | (u >> 10) as u16);
                        da.push(0xDC00 | (u & 0x3FF) as u16);
                        sp += 3;
                    }
                    continue;
                }
                // Fewer than three bytes after the lead. (JDK 8's first test here also
                // compares the signed lead byte with 0xf0, which never holds.)
                if sp < sl && !cont(sa[sp]) {
                    da.push(REPL);
                    continue;
                }
                sp += 1;
                if sp < sl && !cont(sa[sp]) {
                    da.push(REPL);
                    continue;
                }
                da.push(REPL);
                return da;
            }
            _ => da.push(REPL),
        }
    }
    da
}

/// Writes Java text (UTF-16 code units, as decoded by [`java_decode_utf8`]) as Jackson does.
fn write_json_utf16(out: &mut Vec<u8>, units: &[u16]) {
    out.push(b'"');
    for &u in units {
        if u < 0x80 {
            match ESCAPES[u as usize] {
                0 => out.push(u as u8),
                b'u' => write_u_escape(out, u),
                escape => out.extend_from_slice(&[b'\\', escape]),
            }
        } else if u < 0x800 {
            out.extend_from_slice(&[0xC0 | (u >> 6) as u8, 0x80 | (u & 0x3F) as u8]);
        } else if (0xD800..=0xDFFF).contains(&u) {
            write_u_escape(out, u);
        } else {
            out.extend_from_slice(&[
                0xE0 | (u >> 12) as u8,
                0x80 | ((u >> 6) & 0x3F) as u8,
                0x80 | (u & 0x3F) as u8,
            ]);
        }
    }
    out.push(b'"');
}

/// Avro bytes and fixed: JsonEncoder turns them into text as ISO-8859-1 (each byte one
/// code point U+0000..U+00FF), so a byte >= 0x80 comes out as two UTF-8 bytes.
fn write_latin1_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 2);
    out.push(b'"');
    for &b in bytes {
        if b >= 0x80 {
            out.extend_from_slice(&[0xC0 | (b >> 6), 0x80 | (b & 0x3F)]);
        } else {
            match ESCAPES[b as usize] {
                0 => out.push(b),
                b'u' => write_u_escape(out, u16::from(b)),
                escape => out.extend_from_slice(&[b'\\', escape]),
            }
        }
    }
    out.push(b'"');
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

// ---------------------------------------------------------------------------------------
// Java's Float.toString / Double.toString
// ---------------------------------------------------------------------------------------

/// Writes a double as Jackson does: `Double.toString(d)` raw, or NaN and the infinities as
/// JSON strings (`QUOTE_NON_NUMERIC_NUMBERS`, on by default).
///
/// The digits follow JDK 8's `FloatingDecimal` (Kaa runs on Java 8):
/// * an integral value 1 <= |d| < 2^63 takes its "easy" path ([`java_integer_digits`]): the
///   exact integer, rounded to drop the digits its precision cannot vouch for. Above 2^53 this
///   keeps more digits than the shortest (`2.82879384806159008E17`), and we keep them too;
/// * anything else gets the shortest digits that read back as the same double (zmij, a
///   Schubfach/Ryu-family algorithm). Where such a result has one digit and would be
///   written `d.0E-n` for a subnormal, Java shows the two-digit decimal closest to the value
///   instead (`Double.MIN_VALUE` is `4.9E-324`).
///
/// The layout is Java's: plain decimal for 1e-3 <= |d| < 1e7 with at least one digit after
/// the point, otherwise `d.dddE[-]n`.
///
/// Known, rare divergence: FloatingDecimal's general digit loop (Steele & White with a
/// symmetric stopping test) is not always shortest, mostly for doubles just below a power of
/// ten, e.g. the double nearest 1e23 prints as `9.999999999999999E22` in Java and as `1.0E23`
/// here. Against JDK 17 (whose `FloatingDecimal` is JDK 8's) no such case turned up among
/// 140,000 random doubles of ordinary magnitude; the tests against the real Avro 1.7.5 are
/// where any others will show.
fn write_java_double(out: &mut Vec<u8>, d: f64) {
    if write_non_finite(out, d.is_nan(), d.is_infinite(), d.is_sign_negative()) {
        return;
    }
    if d.is_sign_negative() {
        out.push(b'-');
    }
    let bits = d.to_bits();
    let exp_field = ((bits >> 52) & 0x7FF) as i32;
    let digits = if d == 0.0 {
        Digits::ZERO
    } else if exp_field == 0 {
        shortest_digits(zmij::Buffer::new().format_finite(d.abs()), |w| {
            fmt::write(w, format_args!("{:.1e}", d.abs()))
        })
    } else {
        let fract = (bits & ((1 << 52) - 1)) | (1 << 52);
        match java_integer_digits(fract, exp_field - 1023, 53) {
            Some(digits) => digits,
            None => parse_digits(zmij::Buffer::new().format_finite(d.abs()).as_bytes()),
        }
    };
    write_java_layout(out, &digits);
}

/// Writes a float as Jackson does: `Float.toString(f)`; see [`write_java_double`]. Java runs
/// floats through the same code with 24 significant bits, so integral floats from 2^24 up
/// keep their exact digits too (`1.01534304E8`, where the shortest is `1.015343E8`).
fn write_java_float(out: &mut Vec<u8>, f: f32) {
    if write_non_finite(out, f.is_nan(), f.is_infinite(), f.is_sign_negative()) {
        return;
    }
    if f.is_sign_negative() {
        out.push(b'-');
    }
    let bits = f.to_bits();
    let exp_field = ((bits >> 23) & 0xFF) as i32;
    let digits = if f == 0.0 {
        Digits::ZERO
    } else if exp_field == 0 {
        shortest_digits(zmij::Buffer::new().format_finite(f.abs()), |w| {
            fmt::write(w, format_args!("{:.1e}", f.abs()))
        })
    } else {
        let fract = u64::from((bits & 0x7F_FFFF) | 0x80_0000) << 29;
        match java_integer_digits(fract, exp_field - 127, 24) {
            Some(digits) => digits,
            None => parse_digits(zmij::Buffer::new().format_finite(f.abs()).as_bytes()),
        }
    };
    write_java_layout(out, &digits);
}

/// The shortest digits of a subnormal, with Java's second digit when there is only one.
fn shortest_digits(shortest: &str, two_digits: impl FnOnce(&mut StackBuf) -> fmt::Result) -> Digits {
    let digits = parse_digits(shortest.as_bytes());
    if digits.len != 1 {
        return digits;
    }
    let mut buf = StackBuf {
        buf: [0; 64],
        len: 0,
    };
    match two_digits(&mut buf) {
        Ok(()) => parse_digits(&buf.buf[..buf.len]),
        Err(_) => digits,
    }
}

/// `FloatingDecimal.BinaryToASCIIBuffer.dtoa`'s easy case: `fract` holds the significand with
/// its leading bit at bit 52, the value is `fract × 2^(bin_exp - 52)`. When that is an integer
/// and `bin_exp` is at most 62, Java prints the integer itself after rounding away
/// `insignificantDigitsForPow2(bin_exp - significant_bits - 1)` low digits (developLongDigits).
fn java_integer_digits(fract: u64, bin_exp: i32, significant_bits: i32) -> Option<Digits> {
    /// insignificantDigitsNumber: the number of decimal digits of 2^i, less one.
    const INSIGNIFICANT_DIGITS: [u32; 64] = [
        0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 8, 8, 8,
        9, 9, 9, 9, 10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15,
        15, 16, 16, 16, 17, 17, 17, 18, 18, 18, 19,
    ];
    // MIN_SMALL_BIN_EXP..=MAX_SMALL_BIN_EXP
    if !(-21..=62).contains(&bin_exp) {
        return None;
    }
    let fract_bits = 53 - fract.trailing_zeros() as i32;
    if fract_bits - bin_exp - 1 > 0 {
        // Bits to the right of the point: not an integer.
        return None;
    }
    let insignificant = if bin_exp > significant_bits {
        let p2 = bin_exp - significant_bits - 1;
        if p2 > 1 && p2 < 64 {
            INSIGNIFICANT_DIGITS[p2 as usize]
        } else {
            0
        }
    } else {
        0
    };
    let mut value = if bin_exp >= 52 {
        fract << (bin_exp - 52)
    } else {
        fract >> (52 - bin_exp)
    };
    if insignificant != 0 {
        let pow10 = 10u64.pow(insignificant);
        let residue = value % pow10;
        value /= pow10;
        if residue >= pow10 / 2 {
            value += 1;
        }
    }
    let mut text = [0u8; 20];
    let mut i = text.len();
    while value != 0 {
        i -= 1;
        text[i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    let mut digits = parse_digits(&text[i..]);
    digits.exp += insignificant as i32;
    Some(digits)
}

/// NaN and the infinities, as Jackson quotes them; false for a finite value.
fn write_non_finite(out: &mut Vec<u8>, nan: bool, infinite: bool, negative: bool) -> bool {
    let text: &[u8] = if nan {
        b"\"NaN\""
    } else if infinite {
        if negative {
            b"\"-Infinity\""
        } else {
            b"\"Infinity\""
        }
    } else {
        return false;
    };
    out.extend_from_slice(text);
    true
}

/// A small stack buffer for `fmt::Write`.
struct StackBuf {
    buf: [u8; 64],
    len: usize,
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Decimal digits of a positive number, without leading or trailing zeros, and the exponent
/// `e` such that the number is `0.d1d2d3... × 10^e`.
struct Digits {
    digits: [u8; 40],
    len: usize,
    exp: i32,
}

impl Digits {
    const ZERO: Digits = Digits {
        digits: [0; 40],
        len: 0,
        exp: 0,
    };
}

/// Reads any plain or scientific rendering (`123.45`, `0.001`, `1e+21`, `1.5e-7`, `4.9e-324`).
fn parse_digits(text: &[u8]) -> Digits {
    let mut d = Digits {
        digits: [0; 40],
        len: 0,
        exp: 0,
    };
    let mut point = None;
    let mut leading_zeros = 0i32;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'0' if d.len == 0 => {
                // Leading zeros count only to place the point.
                leading_zeros += 1;
            }
            c @ b'0'..=b'9' => {
                if d.len < d.digits.len() {
                    d.digits[d.len] = c;
                    d.len += 1;
                }
            }
            b'.' => point = Some(leading_zeros + d.len as i32),
            b'e' | b'E' => {
                let mut e = 0i32;
                let mut negative = false;
                for &c in &text[i + 1..] {
                    match c {
                        b'-' => negative = true,
                        b'0'..=b'9' => e = e * 10 + i32::from(c - b'0'),
                        _ => {}
                    }
                }
                d.exp = if negative { -e } else { e };
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let integer_digits = point.unwrap_or(leading_zeros + d.len as i32);
    d.exp += integer_digits - leading_zeros;
    while d.len > 0 && d.digits[d.len - 1] == b'0' {
        d.len -= 1;
    }
    d
}

/// `BinaryToASCIIBuffer.getChars` for a non-negative value (the sign is already written).
fn write_java_layout(out: &mut Vec<u8>, d: &Digits) {
    if d.len == 0 {
        out.extend_from_slice(b"0.0");
        return;
    }
    let digits = &d.digits[..d.len];
    let n = d.len as i32;
    let e = d.exp;
    if e > 0 && e < 8 {
        // 1 <= x < 1e7: plain, at least one digit after the point.
        let int_len = n.min(e) as usize;
        out.extend_from_slice(&digits[..int_len]);
        if (int_len as i32) < e {
            out.resize(out.len() + (e as usize - int_len), b'0');
            out.extend_from_slice(b".0");
        } else {
            out.push(b'.');
            if int_len < digits.len() {
                out.extend_from_slice(&digits[int_len..]);
            } else {
                out.push(b'0');
            }
        }
    } else if e <= 0 && e > -3 {
        // 1e-3 <= x < 1
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-e) as usize, b'0');
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        out.push(b'.');
        if digits.len() > 1 {
            out.extend_from_slice(&digits[1..]);
        } else {
            out.push(b'0');
        }
        out.push(b'E');
        write_i64(out, i64::from(e - 1));
    }
}

#[cfg(test)]
mod tests;

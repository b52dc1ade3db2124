//! Property tests of `LogSchema::to_avro_json` against hostile and valid input.
//!
//! Every Kaa log record reaches the decoder as bytes an endpoint uploaded, so the decoder must
//! answer every byte string with `Ok` or `Err`: never a panic (the JNI bridge would turn it into
//! an `onInternalError`, but it would still be a bug), never an absurd allocation, and on `Ok`
//! always valid UTF-8 that is valid JSON (bytes and strings come out as JSON strings whatever
//! they hold; NaN and the infinities as quoted strings, as Jackson writes them).
//!
//! Three sources of input, for each of a dozen schemas (primitives, nested records, unions of
//! named types, maps, arrays, a recursive linked list, a recursive tree, fixed, enum, top-level
//! non-record schemas):
//! * valid encodings, generated together with the JSON they stand for: the decoder must accept
//!   them and produce that JSON (compared as JSON values: map order and number spelling are
//!   covered by the byte-exact unit tests and the Avro 1.7.5 integration tests);
//! * random mutations of those valid encodings (byte replaced, inserted, deleted, truncated);
//! * plain random bytes.
//!
//! Whole packs go through `Encoder::encode`, as the appender encodes them: packs of up to 40
//! such records, some with a block count inflated to a million, in every payload format and
//! grouping, must stay within the pack's output bound and use at most [`pack_memory_limit`]
//! of memory at their peak, whatever the records hold.
//!
//! Case counts are bounded so the whole file runs in a few seconds under `cargo test`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};

use kaa_mqtt_appender::config::{Grouping, PayloadFormat};
use kaa_mqtt_appender::decode::{DecodeError, LogSchema, Style, MAX_DEPTH};
use kaa_mqtt_appender::header::HeaderStructure;
use kaa_mqtt_appender::payload::Encoder;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

// ------------------------------------------------------------------------------------------
// Allocation watch: the largest single allocation a decode makes on this thread.

// Also the bytes this thread holds (allocated here, less freed here) and their peak: a
// pack is encoded on one thread, which frees what it allocates.

struct Watch;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, -(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), layout.size() as isize);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size, new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

fn note(size: usize, change: isize) {
    // try_with: the thread-locals may already be gone while a thread shuts down.
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size)
        }
    });
    let _ = LIVE.try_with(|live| {
        let now = live.get() + change;
        live.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now)
            }
        });
    });
}

#[global_allocator]
static GLOBAL: Watch = Watch;

/// No single allocation of a decode may exceed this. The inputs here are at most a few KB,
/// and the output is bounded (about 6 output bytes per input byte, plus the decoder's 1 MiB
/// budget for zero-width array items, doubled by Vec growth); what this catches is an
/// allocation sized by a length or count read from the data, which can claim up to 2^63.
const ALLOCATION_LIMIT: usize = 16 << 20;

/// Decodes `datum`, checks the invariants every outcome must satisfy, and returns the text.
fn decode_checked(schema: &LogSchema, datum: &[u8]) -> Result<String, DecodeError> {
    LARGEST.with(|l| l.set(0));
    let mut out = Vec::new();
    let result = schema.to_avro_json(datum, &mut out);
    let largest = LARGEST.with(|l| l.get());
    assert!(
        largest <= ALLOCATION_LIMIT,
        "a decode of {} input bytes made an allocation of {largest} bytes",
        datum.len()
    );
    match result {
        Ok(()) => {
            let text = match String::from_utf8(out) {
                Ok(text) => text,
                Err(e) => panic!("output is not UTF-8 ({e}) for input {datum:02x?}"),
            };
            if let Err(e) = check_json(&text) {
                panic!("output is not JSON ({e}): {text}\ninput {datum:02x?}");
            }
            Ok(text)
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error must say something");
            Err(e)
        }
    }
}

/// The most memory encoding a pack may take at its peak, beyond what it was given: twice its
/// output bound (Vec growth doubles), the buffers `Encoder::encode` reserves up front from the
/// record sizes (3 bytes per input byte and 64 per record, plus the list of messages), and a
/// little more per record for what one item past the bound and the allocator's rounding add.
fn pack_memory_limit(bound: usize, input: usize, records: usize) -> usize {
    2 * bound + 3 * input + 128 * records + (64 << 10)
}

/// Encodes a pack as the appender does and checks its peak memory and, on `Ok`, that the
/// messages fit the pack's bound. Returns the outcome.
fn encode_pack_checked(
    schema: &LogSchema,
    records: &[Vec<u8>],
    format: PayloadFormat,
    grouping: Grouping,
    max_payload: usize,
) -> Result<Vec<Vec<u8>>, String> {
    let header = HeaderStructure::from_names(&["KEYHASH", "TOKEN", "LSVERSION", "TIMESTAMP"])
        .expect("header structure")
        .header("token-fuzz", "keyhash/fuzz=", 3, 1_700_000_000_000);
    let encoder = Encoder {
        format,
        grouping,
        max_payload,
        max_held: usize::MAX,
    };
    let bound = encoder.pack_limit(records);
    let input: usize = records.iter().map(Vec::len).sum();
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let result = encoder.encode(schema, &header, records);
    let peak = (PEAK.with(Cell::get) - start) as usize;
    let limit = pack_memory_limit(bound, input, records.len());
    assert!(
        peak <= limit,
        "a pack of {} records, {input} bytes, bound {bound}, took {peak} bytes at its peak \
         (limit {limit}; {format:?}, {grouping:?}): {}",
        records.len(),
        match &result {
            Ok(m) => format!("accepted, {} bytes", m.iter().map(Vec::len).sum::<usize>()),
            Err(e) => e.clone(),
        }
    );
    if let Ok(messages) = &result {
        let total: usize = messages.iter().map(Vec::len).sum();
        assert!(
            total <= bound,
            "{total} bytes of messages, over the bound {bound}"
        );
    }
    result
}

/// Valid JSON per serde_json. Where serde_json stops short of the JSON grammar, per a small
/// iterative checker of that grammar: past its nesting limit of 128 (a long linked list is
/// legitimately deeper), and for doubles next to f64::MAX, which its default (not correctly
/// rounded) float parser can push over to infinity and then refuses as out of range.
fn check_json(text: &str) -> Result<(), String> {
    match serde_json::from_str::<Value>(text) {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("recursion limit") => deep_json(text.as_bytes()),
        Err(e) if e.to_string().contains("out of range") => deep_json(text.as_bytes()),
        Err(e) => Err(e.to_string()),
    }
}

/// A JSON number per RFC 8259, `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, that reads
/// as a finite double (std's parser is correctly rounded). Returns the index after it.
fn number(s: &[u8], mut i: usize) -> Result<usize, String> {
    let start = i;
    let digits = |s: &[u8], mut i: usize| {
        let from = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        (i, i - from)
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    let (after, n) = digits(s, i);
    if n == 0 || (n > 1 && s[i] == b'0') {
        return Err(format!("bad number at byte {start}"));
    }
    i = after;
    if s.get(i) == Some(&b'.') {
        let (after, n) = digits(s, i + 1);
        if n == 0 {
            return Err(format!("bad fraction at byte {start}"));
        }
        i = after;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let (after, n) = digits(s, i);
        if n == 0 {
            return Err(format!("bad exponent at byte {start}"));
        }
        i = after;
    }
    let text = std::str::from_utf8(&s[start..i]).map_err(|e| e.to_string())?;
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(i),
        _ => Err(format!("number {text} is not a finite double")),
    }
}

/// Grammar check without recursion: values, objects, arrays, strings with escapes (paired
/// surrogates), numbers, literals. Only used past serde_json's depth limit.
fn deep_json(s: &[u8]) -> Result<(), String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Ctx {
        Obj,
        Arr,
    }
    let mut stack: Vec<Ctx> = Vec::new();
    let mut i = 0;
    let err = |what: &str, at: usize| Err(format!("{what} at byte {at}"));
    loop {
        // A value.
        match s.get(i) {
            Some(b'{') => {
                i += 1;
                if s.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    stack.push(Ctx::Obj);
                    i = string(s, i)?;
                    if s.get(i) != Some(&b':') {
                        return err("expected ':'", i);
                    }
                    i += 1;
                    continue;
                }
            }
            Some(b'[') => {
                i += 1;
                if s.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    stack.push(Ctx::Arr);
                    continue;
                }
            }
            Some(b'"') => i = string(s, i)?,
            Some(b't') if s[i..].starts_with(b"true") => i += 4,
            Some(b'f') if s[i..].starts_with(b"false") => i += 5,
            Some(b'n') if s[i..].starts_with(b"null") => i += 4,
            Some(b'-' | b'0'..=b'9') => i = number(s, i)?,
            _ => return err("expected a value", i),
        }
        // After a value: close containers or go on to the next element.
        loop {
            match stack.last() {
                None => {
                    return if i == s.len() {
                        Ok(())
                    } else {
                        err("trailing text", i)
                    }
                }
                Some(Ctx::Obj) => match s.get(i) {
                    Some(b',') => {
                        i = string(s, i + 1)?;
                        if s.get(i) != Some(&b':') {
                            return err("expected ':'", i);
                        }
                        i += 1;
                        break;
                    }
                    Some(b'}') => {
                        stack.pop();
                        i += 1;
                    }
                    _ => return err("expected ',' or '}'", i),
                },
                Some(Ctx::Arr) => match s.get(i) {
                    Some(b',') => {
                        i += 1;
                        break;
                    }
                    Some(b']') => {
                        stack.pop();
                        i += 1;
                    }
                    _ => return err("expected ',' or ']'", i),
                },
            }
        }
    }
}

/// Checks one JSON string starting at `i` (the opening quote); returns the index after it.
fn string(s: &[u8], mut i: usize) -> Result<usize, String> {
    if s.get(i) != Some(&b'"') {
        return Err(format!("expected a string at byte {i}"));
    }
    let start = i;
    i += 1;
    let mut end = None;
    while i < s.len() {
        match s[i] {
            b'"' => {
                end = Some(i + 1);
                break;
            }
            b'\\' => i += if s.get(i + 1) == Some(&b'u') { 6 } else { 2 },
            c if c < 0x20 => return Err(format!("raw control character at byte {i}")),
            _ => i += 1,
        }
    }
    let end = end.ok_or_else(|| format!("unterminated string at byte {start}"))?;
    let text = std::str::from_utf8(&s[start..end]).map_err(|e| e.to_string())?;
    serde_json::from_str::<String>(text).map_err(|e| format!("string {text}: {e}"))?;
    Ok(end)
}

// ------------------------------------------------------------------------------------------
// A small model of Avro types: it writes the schema text and generates valid datums together
// with the JSON they must decode to.

#[derive(Clone, Debug)]
enum Ty {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    Str,
    Fixed(&'static str, usize),
    Enum(&'static str, &'static [&'static str]),
    Array(Box<Ty>),
    Map(Box<Ty>),
    Record(&'static str, Vec<(&'static str, Ty)>),
    Union(Vec<Ty>),
    /// A named type defined elsewhere in the same schema (reuse, recursion).
    Ref(&'static str),
}

fn arr(t: Ty) -> Ty {
    Ty::Array(Box::new(t))
}
fn map(t: Ty) -> Ty {
    Ty::Map(Box::new(t))
}
fn rec(name: &'static str, fields: Vec<(&'static str, Ty)>) -> Ty {
    Ty::Record(name, fields)
}

impl Ty {
    /// The schema JSON; each named type is defined where it first appears.
    fn schema(&self, defined: &mut HashSet<&'static str>) -> Value {
        use serde_json::json;
        match self {
            Ty::Null => json!("null"),
            Ty::Boolean => json!("boolean"),
            Ty::Int => json!("int"),
            Ty::Long => json!("long"),
            Ty::Float => json!("float"),
            Ty::Double => json!("double"),
            Ty::Bytes => json!("bytes"),
            Ty::Str => json!("string"),
            Ty::Ref(name) => json!(name),
            Ty::Fixed(name, _) | Ty::Enum(name, _) | Ty::Record(name, _)
                if defined.contains(name) =>
            {
                json!(name)
            }
            Ty::Fixed(name, size) => {
                defined.insert(name);
                json!({"type": "fixed", "name": name, "size": size})
            }
            Ty::Enum(name, symbols) => {
                defined.insert(name);
                json!({"type": "enum", "name": name, "symbols": symbols})
            }
            Ty::Record(name, fields) => {
                defined.insert(name);
                let fields: Vec<Value> = fields
                    .iter()
                    .map(|(f, t)| json!({"name": f, "type": t.schema(defined)}))
                    .collect();
                json!({"type": "record", "name": name, "fields": fields})
            }
            Ty::Array(t) => json!({"type": "array", "items": t.schema(defined)}),
            Ty::Map(t) => json!({"type": "map", "values": t.schema(defined)}),
            Ty::Union(ts) => Value::Array(ts.iter().map(|t| t.schema(defined)).collect()),
        }
    }

    /// The label Avro 1.7.5 gives a union branch of this type.
    fn label(&self) -> &'static str {
        match self {
            Ty::Null => "null",
            Ty::Boolean => "boolean",
            Ty::Int => "int",
            Ty::Long => "long",
            Ty::Float => "float",
            Ty::Double => "double",
            Ty::Bytes => "bytes",
            Ty::Str => "string",
            Ty::Array(_) => "array",
            Ty::Map(_) => "map",
            Ty::Fixed(name, _) | Ty::Enum(name, _) | Ty::Record(name, _) | Ty::Ref(name) => name,
            Ty::Union(_) => unreachable!("unions do not nest"),
        }
    }

    fn collect_named(&self, out: &mut HashMap<&'static str, Ty>) {
        match self {
            Ty::Fixed(name, _) | Ty::Enum(name, _) => {
                out.entry(name).or_insert_with(|| self.clone());
            }
            Ty::Record(name, fields) if !out.contains_key(name) => {
                out.insert(name, self.clone());
                for (_, t) in fields {
                    t.collect_named(out);
                }
            }
            Ty::Array(t) | Ty::Map(t) => t.collect_named(out),
            Ty::Union(ts) => ts.iter().for_each(|t| t.collect_named(out)),
            _ => {}
        }
    }
}

/// The JSON a datum must decode to. Numbers keep their Avro type so they can be compared the
/// way they are written (floats are printed as Java prints a float, not a double).
#[derive(Clone, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

/// Decoded output as a tree, numbers kept as their text so they can be read exactly (serde_json's
/// default float parser is not correctly rounded). Only used on valid JSON of modest depth.
#[derive(Debug)]
enum Tree {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Tree>),
    Obj(Vec<(String, Tree)>),
}

fn tree(s: &[u8], i: &mut usize) -> Result<Tree, String> {
    let value = match s.get(*i) {
        Some(b'n') => {
            *i += 4;
            Tree::Null
        }
        Some(b't') => {
            *i += 4;
            Tree::Bool(true)
        }
        Some(b'f') => {
            *i += 5;
            Tree::Bool(false)
        }
        Some(b'"') => {
            let end = string(s, *i)?;
            let text = std::str::from_utf8(&s[*i..end]).map_err(|e| e.to_string())?;
            *i = end;
            Tree::Str(serde_json::from_str(text).map_err(|e| e.to_string())?)
        }
        Some(b'[') => {
            *i += 1;
            let mut items = Vec::new();
            while s.get(*i) != Some(&b']') {
                if !items.is_empty() {
                    *i += 1; // ','
                }
                items.push(tree(s, i)?);
            }
            *i += 1;
            Tree::Arr(items)
        }
        Some(b'{') => {
            *i += 1;
            let mut entries = Vec::new();
            while s.get(*i) != Some(&b'}') {
                if !entries.is_empty() {
                    *i += 1; // ','
                }
                let key = match tree(s, i)? {
                    Tree::Str(k) => k,
                    other => return Err(format!("object key {other:?}")),
                };
                *i += 1; // ':'
                entries.push((key, tree(s, i)?));
            }
            *i += 1;
            Tree::Obj(entries)
        }
        _ => {
            let end = number(s, *i)?;
            let text = String::from_utf8_lossy(&s[*i..end]).into_owned();
            *i = end;
            Tree::Num(text)
        }
    };
    Ok(value)
}

fn same(expected: &Json, actual: &Tree, path: &str) -> Result<(), String> {
    let mismatch = || Err(format!("at {path}: expected {expected:?}, got {actual:?}"));
    // Java's Double/Float.toString is not always the shortest spelling, but reads back as
    // the same number; one unit in the last place is allowed all the same.
    fn close64(a: f64, b: f64) -> bool {
        (a == b && a.is_sign_negative() == b.is_sign_negative())
            || (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 1
    }
    fn close32(a: f32, b: f32) -> bool {
        (a == b && a.is_sign_negative() == b.is_sign_negative())
            || (i64::from(a.to_bits()) - i64::from(b.to_bits())).abs() <= 1
    }
    let float = match expected {
        Json::F32(f) => Some(f64::from(*f)),
        Json::F64(f) => Some(*f),
        _ => None,
    };
    if let Some(f) = float.filter(|f| !f.is_finite()) {
        // Jackson writes NaN and the infinities as JSON strings.
        let want = if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        return match actual {
            Tree::Str(s) if s == want => Ok(()),
            _ => mismatch(),
        };
    }
    match (expected, actual) {
        (Json::Null, Tree::Null) => Ok(()),
        (Json::Bool(a), Tree::Bool(b)) if a == b => Ok(()),
        (Json::Int(a), Tree::Num(b)) if b.parse::<i64>().ok() == Some(*a) => Ok(()),
        (Json::F64(a), Tree::Num(b)) => match b.parse::<f64>() {
            Ok(b) if close64(*a, b) => Ok(()),
            _ => mismatch(),
        },
        (Json::F32(a), Tree::Num(b)) => match b.parse::<f32>() {
            Ok(b) if close32(*a, b) => Ok(()),
            _ => mismatch(),
        },
        (Json::Str(a), Tree::Str(b)) if a == b => Ok(()),
        (Json::Arr(a), Tree::Arr(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same(x, y, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Json::Obj(a), Tree::Obj(b)) if a.len() == b.len() => {
            // Map entries come out in Java's HashMap order, not in the order written.
            for (k, x) in a {
                match b.iter().find(|(key, _)| key == k) {
                    Some((_, y)) => same(x, y, &format!("{path}.{k}"))?,
                    None => return mismatch(),
                }
            }
            Ok(())
        }
        _ => mismatch(),
    }
}

/// A valid datum and the JSON it stands for.
#[derive(Clone, Debug)]
struct Datum {
    bin: Vec<u8>,
    json: Json,
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Items encoded as Avro blocks. `layout` picks where blocks end and which use the
/// negative-count form (count, then the block's size in bytes), both legal for a writer.
fn blocks(items: &[Vec<u8>], layout: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bits = layout;
    let mut i = 0;
    while i < items.len() {
        let take = 1 + (bits & 3) as usize % (items.len() - i);
        let sized = bits & 4 != 0;
        bits = bits.rotate_right(3) ^ 0x9e37_79b9_7f4a_7c15;
        let body: Vec<u8> = items[i..i + take].concat();
        if sized {
            zigzag(&mut out, -(take as i64));
            zigzag(&mut out, body.len() as i64);
        } else {
            zigzag(&mut out, take as i64);
        }
        out.extend_from_slice(&body);
        i += take;
    }
    out.push(0);
    out
}

fn int_values() -> impl Strategy<Value = i32> {
    prop_oneof![
        -300..300i32,
        any::<i32>(),
        Just(i32::MIN),
        Just(i32::MAX),
        Just(0)
    ]
}

fn long_values() -> impl Strategy<Value = i64> {
    prop_oneof![
        -300..300i64,
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        (0..63u32).prop_map(|s| 1i64 << s)
    ]
}

fn f32_values() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits),
        -1000.0..1000.0f32,
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(-0.0f32),
        Just(f32::MIN_POSITIVE),
    ]
}

fn f64_values() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        -1e6..1e6f64,
        Just(f64::NAN),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(1e23),
        Just(f64::from_bits(1)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode scalar values: controls, quotes, backslashes, astral characters.
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..10).prop_map(String::from_iter),
        "[a-z\"\\\\/\\n\\t\\u{1}-\\u{1f} é😀]{0,12}",
    ]
}

const MAX_ITEMS: usize = 5;

/// Strategies for valid datums of every type in one schema, built once per (type, recursion
/// depth) so that recursive schemas cost what their depth costs.
struct Gen {
    named: HashMap<&'static str, Ty>,
    max_refs: u32,
    memo: HashMap<(&'static str, u32), Option<BoxedStrategy<Datum>>>,
}

impl Gen {
    fn new(root: &Ty, max_refs: u32) -> Gen {
        let mut named = HashMap::new();
        root.collect_named(&mut named);
        Gen {
            named,
            max_refs,
            memo: HashMap::new(),
        }
    }

    /// `None` when no finite datum of `ty` fits in the remaining recursion budget.
    fn datum(&mut self, ty: &Ty, refs: u32) -> Option<BoxedStrategy<Datum>> {
        let leaf = |bin: Vec<u8>, json: Json| Datum { bin, json };
        Some(match ty {
            Ty::Null => Just(leaf(vec![], Json::Null)).boxed(),
            Ty::Boolean => any::<bool>()
                .prop_map(move |b| leaf(vec![u8::from(b)], Json::Bool(b)))
                .boxed(),
            Ty::Int => int_values()
                .prop_map(move |v| {
                    let mut bin = vec![];
                    zigzag(&mut bin, i64::from(v));
                    leaf(bin, Json::Int(i64::from(v)))
                })
                .boxed(),
            Ty::Long => long_values()
                .prop_map(move |v| {
                    let mut bin = vec![];
                    zigzag(&mut bin, v);
                    leaf(bin, Json::Int(v))
                })
                .boxed(),
            Ty::Float => f32_values()
                .prop_map(move |v| leaf(v.to_le_bytes().to_vec(), Json::F32(v)))
                .boxed(),
            Ty::Double => f64_values()
                .prop_map(move |v| leaf(v.to_le_bytes().to_vec(), Json::F64(v)))
                .boxed(),
            Ty::Bytes => prop::collection::vec(any::<u8>(), 0..20)
                .prop_map(move |b| {
                    let mut bin = vec![];
                    zigzag(&mut bin, b.len() as i64);
                    bin.extend_from_slice(&b);
                    leaf(bin, Json::Str(latin1(&b)))
                })
                .boxed(),
            Ty::Str => text()
                .prop_map(move |s| {
                    let mut bin = vec![];
                    zigzag(&mut bin, s.len() as i64);
                    bin.extend_from_slice(s.as_bytes());
                    leaf(bin, Json::Str(s))
                })
                .boxed(),
            Ty::Fixed(_, size) => prop::collection::vec(any::<u8>(), *size)
                .prop_map(move |b| leaf(b.clone(), Json::Str(latin1(&b))))
                .boxed(),
            Ty::Enum(_, symbols) => {
                let symbols = *symbols;
                (0..symbols.len())
                    .prop_map(move |i| {
                        let mut bin = vec![];
                        zigzag(&mut bin, i as i64);
                        leaf(bin, Json::Str(symbols[i].to_string()))
                    })
                    .boxed()
            }
            Ty::Array(item) => match self.datum(item, refs) {
                Some(item) => (prop::collection::vec(item, 0..MAX_ITEMS), any::<u64>())
                    .prop_map(|(items, layout)| {
                        let bins: Vec<Vec<u8>> = items.iter().map(|d| d.bin.clone()).collect();
                        Datum {
                            bin: blocks(&bins, layout),
                            json: Json::Arr(items.into_iter().map(|d| d.json).collect()),
                        }
                    })
                    .boxed(),
                None => Just(leaf(vec![0], Json::Arr(vec![]))).boxed(),
            },
            Ty::Map(value) => match self.datum(value, refs) {
                Some(value) => (
                    prop::collection::btree_map(text(), value, 0..MAX_ITEMS),
                    any::<u64>(),
                )
                    .prop_map(|(entries, layout): (BTreeMap<String, Datum>, u64)| {
                        let bins: Vec<Vec<u8>> = entries
                            .iter()
                            .map(|(k, d)| {
                                let mut bin = vec![];
                                zigzag(&mut bin, k.len() as i64);
                                bin.extend_from_slice(k.as_bytes());
                                bin.extend_from_slice(&d.bin);
                                bin
                            })
                            .collect();
                        Datum {
                            bin: blocks(&bins, layout),
                            json: Json::Obj(
                                entries.into_iter().map(|(k, d)| (k, d.json)).collect(),
                            ),
                        }
                    })
                    .boxed(),
                None => Just(leaf(vec![0], Json::Obj(vec![]))).boxed(),
            },
            Ty::Record(name, fields) => {
                let key = (*name, refs);
                if let Some(known) = self.memo.get(&key) {
                    return known.clone();
                }
                let mut parts = Vec::with_capacity(fields.len());
                let mut names = Vec::with_capacity(fields.len());
                for (f, t) in fields {
                    match self.datum(t, refs) {
                        Some(s) => parts.push(s),
                        None => {
                            self.memo.insert(key, None);
                            return None;
                        }
                    }
                    names.push(f.to_string());
                }
                let strategy = parts
                    .prop_map(move |values: Vec<Datum>| Datum {
                        bin: values.iter().flat_map(|d| d.bin.iter().copied()).collect(),
                        json: Json::Obj(
                            names
                                .iter()
                                .cloned()
                                .zip(values.into_iter().map(|d| d.json))
                                .collect(),
                        ),
                    })
                    .boxed();
                self.memo.insert(key, Some(strategy.clone()));
                strategy
            }
            Ty::Union(branches) => {
                let mut options = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    let Some(s) = self.datum(branch, refs) else {
                        continue;
                    };
                    let label = match branch {
                        Ty::Null => None,
                        other => Some(other.label().to_string()),
                    };
                    options.push(
                        s.prop_map(move |d| {
                            let mut bin = vec![];
                            zigzag(&mut bin, i as i64);
                            bin.extend_from_slice(&d.bin);
                            let json = match &label {
                                None => Json::Null,
                                Some(l) => Json::Obj(vec![(l.clone(), d.json)]),
                            };
                            Datum { bin, json }
                        })
                        .boxed(),
                    );
                }
                if options.is_empty() {
                    return None;
                }
                proptest::strategy::Union::new(options).boxed()
            }
            Ty::Ref(name) => {
                if refs >= self.max_refs {
                    return None;
                }
                let target = self.named[name].clone();
                return self.datum(&target, refs + 1);
            }
        })
    }
}

// ------------------------------------------------------------------------------------------
// The schemas.

struct Case {
    label: &'static str,
    ty: Ty,
    max_refs: u32,
}

fn cases() -> Vec<Case> {
    use Ty::*;
    let point = rec("fuzz.geo.Point", vec![("x", Double), ("y", Double)]);
    let inner = rec(
        "fuzz.inner.Inner",
        vec![
            ("p", point),
            ("tags", arr(Str)),
            ("empty", rec("fuzz.Empty", vec![])),
        ],
    );
    let linked_list = rec(
        "LinkedList",
        vec![
            ("value", Int),
            ("next", Union(vec![Null, Ref("LinkedList")])),
        ],
    );
    vec![
        Case {
            label: "primitives",
            ty: rec(
                "fuzz.Primitives",
                vec![
                    ("n", Null),
                    ("b", Boolean),
                    ("i", Int),
                    ("l", Long),
                    ("f", Float),
                    ("d", Double),
                    ("by", Bytes),
                    ("s", Str),
                ],
            ),
            max_refs: 0,
        },
        Case {
            label: "nested records",
            ty: rec(
                "fuzz.outer.Outer",
                vec![
                    ("id", Str),
                    ("inner", inner),
                    ("again", Ref("fuzz.geo.Point")),
                    ("opt", Union(vec![Null, Ref("fuzz.inner.Inner")])),
                ],
            ),
            max_refs: 2,
        },
        Case {
            label: "unions of named types",
            ty: rec(
                "fuzz.u.Holder",
                vec![
                    (
                        "choice",
                        Union(vec![
                            Null,
                            rec("fuzz.a.A", vec![("v", Int)]),
                            // Same simple name, another namespace: labels must be full names.
                            rec("fuzz.b.A", vec![("w", Str)]),
                            Enum("fuzz.e.Color", &["RED", "GREEN", "BLUE"]),
                            Fixed("fuzz.f.Hash", 4),
                            Str,
                            Long,
                            Bytes,
                            Double,
                            arr(Int),
                            map(Boolean),
                        ]),
                    ),
                    ("second", Union(vec![Ref("fuzz.b.A"), Null])),
                    ("color", Ref("fuzz.e.Color")),
                ],
            ),
            max_refs: 2,
        },
        Case {
            label: "maps",
            ty: rec(
                "fuzz.m.Maps",
                vec![
                    ("counts", map(Int)),
                    ("nested", map(map(Str))),
                    ("optional", map(Union(vec![Null, Double]))),
                    ("records", map(rec("fuzz.m.V", vec![("k", Long)]))),
                ],
            ),
            max_refs: 0,
        },
        Case {
            label: "arrays",
            ty: rec(
                "fuzz.arr.Arrays",
                vec![
                    ("longs", arr(Long)),
                    ("matrix", arr(arr(Double))),
                    ("floats", arr(Float)),
                    // Items that take no input bytes at all.
                    ("nulls", arr(Null)),
                    ("empties", arr(rec("fuzz.arr.E", vec![]))),
                    ("zero", arr(Fixed("fuzz.arr.Z", 0))),
                ],
            ),
            max_refs: 0,
        },
        Case {
            label: "recursive linked list",
            ty: linked_list,
            max_refs: 12,
        },
        Case {
            label: "recursive tree",
            ty: rec(
                "fuzz.t.Tree",
                vec![
                    ("label", Str),
                    ("children", arr(Ref("fuzz.t.Tree"))),
                    ("index", Union(vec![Null, map(Ref("fuzz.t.Tree"))])),
                ],
            ),
            max_refs: 2,
        },
        Case {
            label: "fixed",
            ty: rec(
                "fuzz.fx.F",
                vec![
                    ("h16", Fixed("fuzz.fx.H16", 16)),
                    ("h0", Fixed("fuzz.fx.H0", 0)),
                    ("h1", Fixed("fuzz.fx.H1", 1)),
                    ("again", Ref("fuzz.fx.H16")),
                ],
            ),
            max_refs: 1,
        },
        Case {
            label: "enum",
            ty: rec(
                "fuzz.en.E",
                vec![
                    (
                        "level",
                        Enum("fuzz.en.Level", &["A", "B", "C", "D", "E", "F", "G"]),
                    ),
                    ("only", Enum("fuzz.en.One", &["ONLY"])),
                ],
            ),
            max_refs: 0,
        },
        Case {
            label: "top-level fixed",
            ty: Fixed("fuzz.TopHash", 8),
            max_refs: 0,
        },
        Case {
            label: "top-level enum",
            ty: Enum("fuzz.TopLevel", &["LOW", "MID", "HIGH"]),
            max_refs: 0,
        },
        Case {
            label: "top-level string",
            ty: Str,
            max_refs: 0,
        },
        Case {
            label: "top-level bytes",
            ty: Bytes,
            max_refs: 0,
        },
        Case {
            label: "top-level double",
            ty: Double,
            max_refs: 0,
        },
        Case {
            label: "top-level union",
            ty: Union(vec![Null, Str, Int, arr(Long)]),
            max_refs: 0,
        },
        Case {
            label: "top-level map of arrays",
            ty: map(arr(Str)),
            max_refs: 0,
        },
        Case {
            label: "empty record",
            ty: rec("fuzz.Nothing", vec![]),
            max_refs: 0,
        },
    ]
}

fn parsed(case: &Case) -> LogSchema {
    let text = case.ty.schema(&mut HashSet::new()).to_string();
    LogSchema::parse(&text)
        .unwrap_or_else(|e| panic!("{}: schema {text} rejected: {e}", case.label))
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        // No regression files written next to the sources; a failure prints its input.
        failure_persistence: None,
        ..Config::default()
    })
}

/// A varint block count of 1,048,576 (the per-record zero-width budget in items of weight 1).
const MILLION_COUNT: [u8; 4] = [0x80, 0x80, 0x80, 0x01];

/// A valid datum with one byte, from `at` on (mod the length), replaced by [`MILLION_COUNT`]
/// where that leaves a datum of the schema: a block count that now claims a million items,
/// which only zero-width items can back. The datum unchanged when there is no such byte.
fn inflate(schema: &LogSchema, bin: Vec<u8>, at: usize) -> Vec<u8> {
    for k in 0..bin.len() {
        let at = (at + k) % bin.len();
        let mut inflated = bin.clone();
        inflated.splice(at..=at, MILLION_COUNT);
        // Checked within a small bound: cheap, and the bound is reached only by a datum that
        // decodes that far.
        match schema.to_json_within(&inflated, &mut Vec::new(), Style::AvroJson, 1 << 16) {
            Ok(()) | Err(DecodeError::OverLimit { .. }) => return inflated,
            Err(_) => {}
        }
    }
    bin
}

/// Random edits of a valid encoding: replace, insert, delete a byte, or cut the tail.
fn mutate(mut bin: Vec<u8>, edits: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(op, at, byte) in edits {
        let len = bin.len();
        match op % 5 {
            0 if len > 0 => bin[at % len] = byte,
            1 => bin.insert(at % (len + 1), byte),
            2 if len > 0 => {
                bin.remove(at % len);
            }
            3 => bin.truncate(at % (len + 1)),
            // Extreme varint bytes are where lengths and counts go wrong.
            _ if len > 0 => bin[at % len] = [0xff, 0x80, 0x7f, 0x01, 0x00][usize::from(byte) % 5],
            _ => bin.push(byte),
        }
    }
    bin
}

// ------------------------------------------------------------------------------------------
// The properties.

/// Valid encodings decode, to the JSON they stand for.
#[test]
fn valid_encodings_decode_to_what_they_encode() {
    for case in cases() {
        let schema = parsed(&case);
        let strategy = Gen::new(&case.ty, case.max_refs)
            .datum(&case.ty, 0)
            .expect("every schema here has finite datums");
        runner(150)
            .run(&strategy, |d| {
                let text = decode_checked(&schema, &d.bin).map_err(|e| {
                    TestCaseError::fail(format!("{}: a valid datum was refused: {e}", case.label))
                })?;
                let value = tree(text.as_bytes(), &mut 0)
                    .map_err(|e| TestCaseError::fail(format!("{}: {e}", case.label)))?;
                same(&d.json, &value, "$")
                    .map_err(|e| TestCaseError::fail(format!("{}: {e}\n  text {text}", case.label)))
            })
            .unwrap_or_else(|e| panic!("{}: {e}", case.label));
    }
}

/// Mutated valid encodings: Ok or Err, never a panic; Ok is UTF-8 JSON.
#[test]
fn mutated_encodings_never_panic() {
    for case in cases() {
        let schema = parsed(&case);
        let strategy = (
            Gen::new(&case.ty, case.max_refs)
                .datum(&case.ty, 0)
                .expect("every schema here has finite datums"),
            prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4),
        );
        runner(300)
            .run(&strategy, |(d, edits)| {
                let _ = decode_checked(&schema, &mutate(d.bin, &edits));
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", case.label));
    }
}

/// Plain random bytes: Ok or Err, never a panic; Ok is UTF-8 JSON.
#[test]
fn random_bytes_never_panic() {
    for case in cases() {
        let schema = parsed(&case);
        let strategy = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(any::<u8>(), 0..1024),
            // Mostly small varints: long chains of plausible lengths, counts and indices.
            prop::collection::vec(0u8..8, 0..256),
        ];
        runner(400)
            .run(&strategy, |bytes| {
                let _ = decode_checked(&schema, &bytes);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", case.label));
    }
}

/// Whole packs, encoded as the appender encodes them (`Encoder::encode`, every format and
/// grouping, a small maxMessageBytes so that bounds are reached with small inputs): up to 40
/// records, valid or with a block count inflated to a million where the schema allows it (in
/// the arrays schema, megabytes of zero-width items per record), and in some packs a mutated
/// record at the end. Peak memory stays within [`pack_memory_limit`] of the pack's bound, and
/// accepted packs within the bound.
#[test]
fn whole_packs_stay_within_their_memory_bound() {
    let formats = [
        PayloadFormat::AvroJson,
        PayloadFormat::Json,
        PayloadFormat::JsonWithHeader,
        PayloadFormat::AvroBinary,
    ];
    for case in cases() {
        let schema = std::sync::Arc::new(parsed(&case));
        let datum = || {
            Gen::new(&case.ty, case.max_refs)
                .datum(&case.ty, 0)
                .expect("every schema here has finite datums")
        };
        let for_inflating = std::sync::Arc::clone(&schema);
        let record = (datum(), any::<bool>(), any::<usize>()).prop_map(move |(d, big, at)| {
            if big {
                inflate(&for_inflating, d.bin, at)
            } else {
                d.bin
            }
        });
        let broken = prop::option::of(
            (
                datum(),
                prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..3),
            )
                .prop_map(|(d, edits)| mutate(d.bin, &edits)),
        );
        let strategy = (
            prop::collection::vec(record, 1..40),
            broken,
            0usize..4,
            any::<bool>(),
            prop_oneof![Just(4usize << 10), Just(64usize << 10)],
        );
        runner(16)
            .run(
                &strategy,
                |(mut records, broken, format, per_pack, max_payload)| {
                    records.extend(broken);
                    let grouping = if per_pack {
                        Grouping::Pack
                    } else {
                        Grouping::Record
                    };
                    let _ = encode_pack_checked(
                        &schema,
                        &records,
                        formats[format],
                        grouping,
                        max_payload,
                    );
                    Ok(())
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", case.label));
    }
}

/// The pack of issue 13: 1,000 records of five bytes, each an array of 1,048,576 nulls (5 MiB
/// of JSON each, 5 GiB together), with the default maxMessageBytes. Refused at its second
/// record, whose nulls the pack's budget of zero-byte items no longer covers, in every payload
/// format (before that budget was the pack's, at the pack's bound of memory).
#[test]
fn a_five_gib_pack_is_refused_at_its_zero_width_budget() {
    let schema = LogSchema::parse(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"null"}}]}"#,
    )
    .expect("schema");
    let mut record = MILLION_COUNT.to_vec();
    record.push(0);
    let pack = vec![record; 1000];
    for grouping in [Grouping::Record, Grouping::Pack] {
        for format in [
            PayloadFormat::AvroJson,
            PayloadFormat::JsonWithHeader,
            PayloadFormat::AvroBinary,
        ] {
            let e = encode_pack_checked(&schema, &pack, format, grouping, 10 << 20)
                .expect_err("a 5 GiB pack must be refused");
            assert!(
                e.starts_with("record 1 ") && e.contains("too many zero-byte array items"),
                "{grouping:?}, {format:?}: {e}"
            );
        }
    }
}

/// The linked list, walked to and past the nesting limit: short lists decode, long ones are
/// refused with `TooDeep`, none of them overflows the stack.
#[test]
fn linked_list_depth_is_bounded() {
    let case = cases()
        .into_iter()
        .find(|c| c.label == "recursive linked list")
        .expect("the linked list case");
    let schema = parsed(&case);
    // Each node is a record and a union: two levels of nesting.
    let fits = (MAX_DEPTH / 2 - 2) as usize;
    let too_deep = (MAX_DEPTH / 2 + 2) as usize;
    for nodes in (1..=too_deep + 8).chain([1_000, 100_000]) {
        let mut bin = Vec::new();
        for v in 0..nodes {
            zigzag(&mut bin, v as i64); // value
            if v + 1 < nodes {
                bin.push(2); // union branch 1: another node follows
            }
        }
        bin.push(0); // the last node's next is null
        match decode_checked(&schema, &bin) {
            Ok(text) => assert!(
                nodes <= too_deep,
                "{nodes} nodes decoded past the nesting limit: {} bytes of JSON",
                text.len()
            ),
            Err(DecodeError::TooDeep { .. }) => assert!(
                nodes > fits,
                "{nodes} nodes refused as too deep; the limit is {MAX_DEPTH} levels"
            ),
            Err(e) => panic!("{nodes} nodes: unexpected error {e}"),
        }
    }
}

/// A datum of one schema decoded with another: never a panic, and in this suite's schemas
/// never silently accepted as a whole when the bytes run on past the datum.
#[test]
fn datums_decoded_with_the_wrong_schema_never_panic() {
    let all = cases();
    let schemas: Vec<LogSchema> = all.iter().map(parsed).collect();
    for (i, writer) in all.iter().enumerate() {
        let strategy = Gen::new(&writer.ty, writer.max_refs)
            .datum(&writer.ty, 0)
            .expect("every schema here has finite datums");
        runner(40)
            .run(&strategy, |d| {
                for (j, reader) in schemas.iter().enumerate() {
                    if i != j {
                        let _ = decode_checked(reader, &d.bin);
                    }
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("written as {}: {e}", writer.label));
    }
}

/// The checker itself: it must reject what is not JSON, or the properties above prove little.
#[test]
fn json_checker_rejects_broken_text() {
    for bad in [
        "",
        "{",
        "{\"a\":}",
        "[1,]",
        "\"\\ud800\"",
        "nul",
        "{\"a\" 1}",
        "[1 2]",
        "\"\u{1}\"",
        "01x",
        "01",
        "1.",
        "-",
        "1e",
        "1e400",
    ] {
        assert!(check_json(bad).is_err(), "accepted {bad:?}");
        assert!(
            deep_json(bad.as_bytes()).is_err(),
            "deep checker accepted {bad:?}"
        );
    }
    let deep = format!("{}1{}", "[".repeat(500), "]".repeat(500));
    assert!(check_json(&deep).is_ok());
    let deep_obj = format!("{}null{}", "{\"a\":".repeat(300), "}".repeat(300));
    assert!(check_json(&deep_obj).is_ok());
    assert!(check_json(&format!("{}1{}", "[".repeat(300), "]".repeat(299))).is_err());
    for good in [
        "{}",
        "[]",
        "{\"a\":[1,-2.5E-3,\"x\\u0000\"],\"b\":{\"c\":null}}",
        "\"\\ud83d\\ude00\"",
    ] {
        assert!(check_json(good).is_ok(), "refused {good:?}");
        assert!(
            deep_json(good.as_bytes()).is_ok(),
            "deep checker refused {good:?}"
        );
    }
}

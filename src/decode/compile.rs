//! Schema compilation: [`LogSchema::parse`] reads the schema JSON as Avro 1.7.5 reads it
//! ([`relax_for_avro_1_7_5`]), has `apache-avro` parse it and resolve its names, and compiles
//! it into the tree of `Node`s the walker follows: named types and references become indices
//! (so recursive schemas are cycles), logical types their underlying types, field names and
//! union labels (1.7.5's, [`union_label`]) JSON bytes rendered once, and arrays whose items
//! take no input bytes get the weight the walker charges for them
//! ([`mark_zero_width_arrays`]).

use std::collections::HashMap;

use apache_avro::schema::{
    DecimalSchema, InnerDecimalSchema, Name, NamesRef, ResolvedSchema, Schema, UuidSchema,
};
use serde_json::Value;

use super::{Branch, DecodeError, Field, KeyKind, LogSchema, Node, MAX_DEPTH};
use crate::json_text::json_string;

impl LogSchema {
    /// Parses an Avro schema (JSON text) and compiles it.
    pub fn parse(text: &str) -> Result<LogSchema, DecodeError> {
        let mut json: Value = serde_json::from_str(text)
            .map_err(|e| DecodeError::Schema(format!("not valid JSON: {e}")))?;
        let originals = relax_for_avro_1_7_5(&mut json);
        let schema = Schema::parse(&json).map_err(|e| DecodeError::Schema(e.to_string()))?;
        let resolved = ResolvedSchema::try_from(&schema)
            .map_err(|e| DecodeError::Schema(format!("unresolvable name: {e}")))?;
        let mut compiler = Compiler {
            originals,
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
}

/// Prepares the schema JSON so that `apache-avro` sees what Avro 1.7.5 sees:
///
/// * 1.7.5 never checks `default` values (of fields, or an enum's default symbol) and keeps a
///   non-text `logicalType` as a plain property, while `apache-avro` rejects both. Defaults
///   only serve schema resolution, and we always read with the writer's own schema, so they
///   are dropped, as are non-text `logicalType`s.
/// * Every named type and every reference to one is rewritten to its full name as 1.7.5's
///   `Schema.parse` computes it, because the two disagree on namespace inheritance: in 1.7.5 a
///   type declared with `"namespace": ""` has no namespace, but the types nested in it still
///   inherit the enclosing one (its parser only changes the default namespace to a non-null
///   one), and that full name is what a union branch is labelled with.
/// * A type `"error"` (a record in 1.7.5) becomes `"record"`.
/// * 1.7.5 ignores a `logicalType` on a record, enum, array or map, which `apache-avro`
///   refuses, and checks no alias's namespace: both are dropped.
/// * 1.7.5 takes any Java letter in names and checks no namespace, `apache-avro` only
///   `[A-Za-z_][A-Za-z0-9_]*` in each part: a name, field name or enum symbol it would refuse
///   gets a stand-in, and the returned map gives the original for each.
fn relax_for_avro_1_7_5(schema: &mut Value) -> HashMap<String, String> {
    let mut names = StandIns::default();
    relax(schema, None, &mut names);
    names.originals
}

/// Names `apache-avro` takes in place of the ones it refuses ([`relax_for_avro_1_7_5`]).
#[derive(Default)]
struct StandIns {
    /// Each stand-in's original: a full name as 1.7.5 labels it, a field name or a symbol.
    originals: HashMap<String, String>,
    /// The stand-in of each named type, by the full name references are qualified to.
    by_full: HashMap<String, String>,
}

impl StandIns {
    /// A field name or enum symbol: `name` if `apache-avro` takes it, else a stand-in.
    fn simple(&mut self, name: &str) -> String {
        if avro_takes(name) {
            return name.to_owned();
        }
        self.stand_in(name)
    }

    /// A named type's full name (as references are qualified to it): `full` if `apache-avro`
    /// takes it, else a stand-in, in [`NO_NAMESPACE`] so that `apache-avro` files it under no
    /// enclosing namespace; `label` is 1.7.5's full name, which its union branches carry.
    fn type_name(&mut self, full: String, label: &str) -> String {
        if full.split('.').all(avro_takes) {
            return full;
        }
        let stand_in = format!("{NO_NAMESPACE}.{}", self.stand_in(label));
        self.by_full.insert(full, stand_in.clone());
        stand_in
    }

    fn stand_in(&mut self, original: &str) -> String {
        let stand_in = format!("{STAND_IN}{}", self.originals.len());
        self.originals.insert(stand_in.clone(), original.to_owned());
        stand_in
    }

    /// A reference, qualified to its full name: the stand-in, if its type got one.
    fn reference(&self, full: String) -> String {
        self.by_full.get(&full).cloned().unwrap_or(full)
    }
}

/// The prefix of stand-in names, which no one writes.
const STAND_IN: &str = "kaa_mqtt_appender_name_";

/// Whether one part of a name is what the Avro specification allows.
fn avro_takes(part: &str) -> bool {
    let mut chars = part.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn is_primitive(name: &str) -> bool {
    matches!(
        name,
        "null" | "boolean" | "int" | "long" | "float" | "double" | "bytes" | "string"
    )
}

/// A reference `name` read where 1.7.5's default namespace is `space`, written fully
/// qualified (a leading dot means "no namespace" to apache-avro).
/// Stands for "no namespace" in the names given to apache-avro, which would otherwise file a
/// type declared with `"namespace": ""` under the enclosing namespace (where Avro 1.7.5 does
/// not, so two types may share a simple name). Never shown: [`union_label`] takes it off.
const NO_NAMESPACE: &str = "kaa_mqtt_appender_no_namespace";

fn qualify(name: &str, space: Option<&str>) -> String {
    if name.contains('.') {
        name.to_owned()
    } else {
        format!("{}.{name}", space.unwrap_or(NO_NAMESPACE))
    }
}

/// `space` is 1.7.5's default namespace where `schema` sits (never `Some("")`).
fn relax(schema: &mut Value, space: Option<&str>, names: &mut StandIns) {
    match schema {
        Value::String(name) if !is_primitive(name) => {
            *name = names.reference(qualify(name, space));
        }
        Value::Array(branches) => branches.iter_mut().for_each(|b| relax(b, space, names)),
        Value::Object(map) => {
            if map.get("logicalType").is_some_and(|t| !t.is_string()) {
                map.remove("logicalType");
            }
            let kind = match map.get("type") {
                Some(Value::String(kind)) => kind.clone(),
                Some(_) => {
                    if let Some(t) = map.get_mut("type") {
                        relax(t, space, names);
                    }
                    return;
                }
                None => return,
            };
            // 1.7.5 knows no logical types; apache-avro refuses one on these ("no type called
            // 'record'"), where a fixed or a primitive takes it.
            if matches!(kind.as_str(), "record" | "error" | "enum" | "array" | "map") {
                map.remove("logicalType");
            }
            // Aliases serve schema resolution only (we read with the writer's schema), and
            // apache-avro checks their names where 1.7.5 checks none of a namespace.
            map.remove("aliases");
            match kind.as_str() {
                "record" | "error" | "enum" | "fixed" => {
                    let mut inner: Option<String> = space.map(str::to_owned);
                    if let Some(name) = map.get("name").and_then(Value::as_str).map(str::to_owned) {
                        // Schema.Name(name, space): the namespace attribute (even "") or else
                        // the default; a dotted name brings its own; "" means none.
                        let declared = match map.get("namespace") {
                            Some(Value::String(ns)) => Some(ns.clone()),
                            _ => space.map(str::to_owned),
                        };
                        let (ns, short) = match name.rfind('.') {
                            Some(dot) => (Some(name[..dot].to_owned()), name[dot + 1..].to_owned()),
                            None => (declared.filter(|ns| !ns.is_empty()), name.clone()),
                        };
                        let (full, label) = match &ns {
                            Some(ns) => {
                                // Only a non-null namespace becomes the default for children
                                // (a leading dot gives an empty one).
                                inner = Some(ns.clone()).filter(|ns| !ns.is_empty());
                                let full = format!("{ns}.{short}");
                                (full.clone(), full)
                            }
                            None => (qualify(&short, None), short),
                        };
                        map.insert("name".into(), Value::String(names.type_name(full, &label)));
                        map.remove("namespace");
                    }
                    if kind == "enum" {
                        map.remove("default");
                        if let Some(Value::Array(symbols)) = map.get_mut("symbols") {
                            for symbol in symbols.iter_mut() {
                                if let Value::String(s) = symbol {
                                    *s = names.simple(s);
                                }
                            }
                        }
                    }
                    if kind == "error" {
                        // 1.7.5 reads an "error" (a protocol's error type) as a record.
                        map.insert("type".into(), Value::String("record".into()));
                    }
                    if let Some(Value::Array(fields)) = map.get_mut("fields") {
                        for field in fields.iter_mut() {
                            if let Value::Object(field) = field {
                                field.remove("default");
                                if let Some(Value::String(name)) = field.get_mut("name") {
                                    *name = names.simple(name);
                                }
                                if let Some(t) = field.get_mut("type") {
                                    relax(t, inner.as_deref(), names);
                                }
                            }
                        }
                    }
                }
                "array" => {
                    if let Some(items) = map.get_mut("items") {
                        relax(items, space, names);
                    }
                }
                "map" => {
                    if let Some(values) = map.get_mut("values") {
                        relax(values, space, names);
                    }
                }
                other if is_primitive(other) => {}
                other => {
                    // {"type": "SomeName"}: a reference in an object.
                    let full = names.reference(qualify(other, space));
                    map.insert("type".into(), Value::String(full));
                }
            }
        }
        _ => {}
    }
}

struct Compiler<'s> {
    /// The original of each stand-in name ([`StandIns`]).
    originals: HashMap<String, String>,
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

    /// The name a schema gave where `apache-avro` has `name` ([`StandIns`]).
    fn original<'a>(&'a self, name: &'a str) -> &'a str {
        self.originals.get(name).map_or(name, String::as_str)
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
            Schema::Enum(e) => self.named(&e.name, |c| {
                Ok(Node::Enum(
                    e.symbols
                        .iter()
                        .map(|s| json_string(c.original(s)).into_boxed_slice())
                        .collect(),
                ))
            })?,
            Schema::Record(rec) => self.named(&rec.name, |c| {
                let mut fields = Vec::with_capacity(rec.fields.len());
                for (i, field) in rec.fields.iter().enumerate() {
                    let name = c.original(&field.name);
                    let mut prefix = vec![if i == 0 { b'{' } else { b',' }];
                    prefix.extend_from_slice(&json_string(name));
                    prefix.push(b':');
                    fields.push(Field {
                        name: name.into(),
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
                // A set: a union of thousands of branches is checked in one pass, not in
                // quadratic time.
                let mut labels = std::collections::HashSet::new();
                for variant in union.variants() {
                    let label = union_label(variant)?.map(|l| self.original(&l).to_owned());
                    if let Some(label) = &label {
                        // 1.7.5 names each branch by this label and rejects duplicates, e.g.
                        // an int next to a date (which apache-avro tells apart).
                        if !labels.insert(label.clone()) {
                            return Err(DecodeError::Schema(format!(
                                "duplicate in union: {label}"
                            )));
                        }
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
            Some(name) => {
                let full = name.fullname(None);
                let bare = full
                    .strip_prefix(NO_NAMESPACE)
                    .and_then(|n| n.strip_prefix('.'));
                Ok(Some(bare.map_or(full.clone(), str::to_owned)))
            }
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
    // Without recursion: records named by reference nest without bound in a shallow text (each
    // field of the next record naming the last), and this runs on the thread Kaa calls us on.
    // Zero-width records contain no cycle, since no record containing itself is zero-width.
    fn weight(nodes: &[Node], zero: &[bool], memo: &mut [u32], root: usize) -> u32 {
        let mut stack = vec![(root, false)];
        while let Some((i, fields_done)) = stack.pop() {
            if memo[i] != 0 {
                continue;
            }
            debug_assert!(zero[i]);
            match &nodes[i] {
                Node::Record(fields) if !fields_done => {
                    stack.push((i, true));
                    stack.extend(fields.iter().map(|f| (f.node as usize, false)));
                }
                Node::Record(fields) => {
                    memo[i] = fields
                        .iter()
                        .fold(1u32, |acc, f| acc.saturating_add(memo[f.node as usize]));
                }
                _ => memo[i] = 1,
            }
        }
        memo[root]
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

//! Schemas: what apache-avro is made to accept like 1.7.5, and what is refused.

use super::*;

#[test]
fn defaults_and_odd_logical_types_are_ignored_as_in_1_7_5() {
    let schema = r#"{"type":"record","name":"R","fields":[
        {"name":"a","type":"int","default":"not an int"},
        {"name":"b","type":["null","string"],"default":"x"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"default":"Z"}},
        {"name":"l","type":{"type":"long","logicalType":{"not":"text"}}},
        {"name":"f","type":{"type":"error","name":"Err","fields":[{"name":"m","type":"string"}]}}]}"#;
    let datum = Enc::new().long(1).long(0).long(1).long(-2).str("m").done();
    check(
        schema,
        &datum,
        r#"{"a":1,"b":null,"e":"B","l":-2,"f":{"m":"m"}}"#,
    );
}

#[test]
fn logical_types_on_records_arrays_maps_and_enums_are_ignored_as_in_1_7_5() {
    let schema = r#"{"type":"record","name":"R","fields":[
        {"name":"t","type":{"type":"record","name":"Ts","logicalType":"timestamp-millis",
            "fields":[{"name":"ms","type":"long"}]}},
        {"name":"d","type":{"type":"array","items":"int","logicalType":"date"}},
        {"name":"m","type":{"type":"map","values":"long","logicalType":"decimal"}},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"logicalType":"uuid"}}]}"#;
    let datum = Enc::new()
        .long(1)
        .long(1)
        .long(2)
        .long(0)
        .long(0)
        .long(1)
        .done();
    check(schema, &datum, r#"{"t":{"ms":1},"d":[2],"m":{},"e":"B"}"#);
}

#[test]
fn alias_namespaces_are_not_checked_as_in_1_7_5() {
    let schema = r#"{"type":"record","name":"R","aliases":["com.my-co.Old"],"fields":[
        {"name":"f","type":{"type":"fixed","name":"F","size":1,"aliases":["a-b.OldF"]}}]}"#;
    check(schema, &[0x41], r#"{"f":"A"}"#);
}

#[test]
fn names_apache_avro_refuses_are_published_as_1_7_5_writes_them() {
    // 1.7.5 takes any Java letter in a name and checks no namespace.
    let schema = r#"{"type":"record","name":"Mesure","namespace":"com.acme-iot","fields":[
        {"name":"température","type":"double"},
        {"name":"état","type":{"type":"enum","name":"État","symbols":["ÉTEINT","ALLUMÉ"]}},
        {"name":"u","type":["null",{"type":"record","name":"Pièce","fields":[]},
            {"type":"fixed","name":"x.3m.Id","size":1}]},
        {"name":"again","type":["null","Pièce","com.acme-iot.État","x.3m.Id"]}]}"#;
    let datum = Enc::new()
        .double(1.5)
        .long(1)
        .long(1)
        .long(3)
        .raw(b"A")
        .done();
    check(
        schema,
        &datum,
        r#"{"température":1.5,"état":"ALLUMÉ","u":{"com.acme-iot.Pièce":{}},"again":{"x.3m.Id":"A"}}"#,
    );
}

#[test]
fn names_apache_avro_refuses_keep_1_7_5_namespaces() {
    // Inside a type of a valid namespace: labelled, and found from elsewhere, by 1.7.5's name.
    let schema = r#"{"type":"record","name":"R","namespace":"org.kaa","fields":[
        {"name":"u","type":["null",{"type":"enum","name":"État","symbols":["A"]}]},
        {"name":"c","type":{"type":"record","name":"C","namespace":"org.kaa.x",
            "fields":[{"name":"s","type":"org.kaa.État"}]}}]}"#;
    let datum = Enc::new().long(1).long(0).long(0).done();
    check(
        schema,
        &datum,
        r#"{"u":{"org.kaa.État":"A"},"c":{"s":"A"}}"#,
    );
    // Recursion through a type of a valid name.
    let schema = r#"{"type":"record","name":"Nœud","fields":[{"name":"c","type":{"type":"record",
        "name":"C","fields":[{"name":"n","type":["null","Nœud"]}]}}]}"#;
    let datum = Enc::new().long(1).long(0).done();
    check(schema, &datum, r#"{"c":{"n":{"Nœud":{"c":{"n":null}}}}}"#);
    // A leading dot: no namespace for what it declares, and its own label as 1.7.5 gives it.
    let schema = r#"{"type":"record","name":"R","fields":[
        {"name":"e","type":["null",{"type":"record","name":".P","fields":[
            {"name":"e","type":{"type":"enum","name":"E","symbols":["X"]}},{"name":"f","type":"E"}]}]}]}"#;
    let datum = Enc::new().long(1).long(0).long(0).done();
    check(schema, &datum, r#"{"e":{".P":{"e":"X","f":"X"}}}"#);
}

#[test]
fn empty_namespace_keeps_the_enclosing_one_for_nested_types() {
    // 1.7.5: Inner has no namespace, yet Deep, declared inside it, is a.Deep.
    let schema = r#"{"type":"record","name":"Outer","namespace":"a","fields":[
        {"name":"in","type":{"type":"record","name":"Inner","namespace":"","fields":[
            {"name":"u","type":["null",{"type":"record","name":"Deep","fields":[]},"Outer"]}]}},
        {"name":"v","type":["null","a.Deep"]}]}"#;
    let datum = Enc::new().long(1).long(1).done();
    check(
        schema,
        &datum,
        r#"{"in":{"u":{"a.Deep":{}}},"v":{"a.Deep":{}}}"#,
    );
}

#[test]
fn map_with_an_unknown_java_string_type() {
    // Avro 1.7.5 throws (StringType.valueOf) when it reads such a map's first key.
    let schema = r#"{"type":"map","values":"int","avro.java.string":"Bogus"}"#;
    check(schema, &Enc::new().long(0).done(), "{}");
    assert!(matches!(
        fails(schema, &map_datum(&[&[("a", 1)]])),
        DecodeError::BadStringType { .. }
    ));
}

#[test]
fn unusable_schemas() {
    for text in [
        "",
        "{",
        r#""nosuchtype""#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"Undefined"}]}"#,
        // Two branches that 1.7.5 both calls "int".
        r#"["int",{"type":"int","logicalType":"date"}]"#,
        r#"["null","null"]"#,
        // A type in no namespace cannot be named from inside one in 1.7.5.
        r#"{"type":"record","name":"R","namespace":"n","fields":[
            {"name":"a","type":{"type":"record","name":"S","namespace":"","fields":[]}},
            {"name":"b","type":"S"}]}"#,
    ] {
        match LogSchema::parse(text) {
            Ok(_) => panic!("accepted {text}"),
            Err(e) => assert!(matches!(e, DecodeError::Schema(_)), "{e}"),
        }
    }
}

#[test]
fn log_schema_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<LogSchema>();
    shareable::<DecodeError>();
}

#[test]
fn plain_json_unwraps_unions_and_writes_bytes_as_base64() {
    let schema = LogSchema::parse(
        r#"{"type":"record","name":"R","namespace":"n","fields":[
            {"name":"u","type":["null","string",{"type":"record","name":"In","fields":[{"name":"x","type":"int"}]}]},
            {"name":"v","type":["null","long"]},
            {"name":"b","type":"bytes"},
            {"name":"f","type":{"type":"fixed","name":"F","size":4}},
            {"name":"m","type":{"type":"map","values":["null","double"]}}]}"#,
    )
    .unwrap();
    let datum = Enc::new()
        .long(2)
        .long(-3)
        .long(0)
        .bytes(&[0xFB, 0xFF, 0x00, 0x61, 0x62])
        .raw(b"\x00\xffab")
        .long(1)
        .str("k")
        .long(1)
        .double(1.5)
        .long(0)
        .done();
    let mut plain = Vec::new();
    schema.to_json(&datum, &mut plain, Style::Plain).unwrap();
    assert_eq!(
        String::from_utf8(plain).unwrap(),
        r#"{"u":{"x":-3},"v":null,"b":"+/8AYWI=","f":"AP9hYg==","m":{"k":1.5}}"#
    );
    let mut avro = Vec::new();
    schema.to_avro_json(&datum, &mut avro).unwrap();
    assert_eq!(
        String::from_utf8(avro).unwrap(),
        "{\"u\":{\"n.In\":{\"x\":-3}},\"v\":null,\"b\":\"\u{fb}\u{ff}\\u0000ab\",\"f\":\"\\u0000\u{ff}ab\",\"m\":{\"k\":{\"double\":1.5}}}"
    );
}

#[test]
fn a_type_without_namespace_may_share_its_simple_name_with_one_in_the_enclosing_namespace() {
    let schema = r#"{"type":"record","name":"Shadow","namespace":"a.b","fields":[
        {"name":"choice","type":["null",
            {"type":"record","name":"Point","fields":[{"name":"local","type":"int"}]},
            {"type":"record","name":"Point","namespace":"","fields":[{"name":"bare","type":"int"}]}]}]}"#;
    check(
        schema,
        &Enc::new().long(1).long(5).done(),
        r#"{"choice":{"a.b.Point":{"local":5}}}"#,
    );
    check(
        schema,
        &Enc::new().long(2).long(5).done(),
        r#"{"choice":{"Point":{"bare":5}}}"#,
    );
}

/// A log schema is parsed on the Kaa thread that calls `doAppend`, where a stack overflow
/// aborts the JVM (no panic to catch). The deepest schemas JSON parsing lets through (serde_json
/// stops at 128 levels) are parsed, or refused, within half a JVM thread's default stack of
/// 1 MiB: nested unions, which apache-avro recurses into deepest, took between 128 and 256
/// KiB in a release build (2026-12). A debug build's frames are larger (between 1 and 2 MiB
/// here): it gets 4.
#[test]
fn the_deepest_schemas_parse_within_half_a_jvm_threads_stack() {
    // Records nested by reference nest without bound in a shallow text: each one's field names
    // the last, and an array's items name the deepest. A zero-width item's weight was found
    // by recursion through every link, and the stack overflowed, which aborts the JVM.
    let links = 50_000;
    let mut chain = String::from(r#"{"type":"record","name":"R","fields":["#);
    chain.push_str(r#"{"name":"f0","type":{"type":"record","name":"A0","fields":[]}}"#);
    for k in 1..links {
        let last = k - 1;
        chain.push_str(&format!(
            r#",{{"name":"f{k}","type":{{"type":"record","name":"A{k}","fields":[{{"name":"a","type":"A{last}"}}]}}}}"#
        ));
    }
    let deepest = links - 1;
    chain.push_str(&format!(
        r#",{{"name":"all","type":{{"type":"array","items":"A{deepest}"}}}}]}}"#
    ));
    check_on_half_a_stack(chain, true);
    let nest = |open: &str, close: &str| {
        let depth = 126;
        format!("{}\"int\"{}", open.repeat(depth), close.repeat(depth))
    };
    // A record takes four levels: its object, the fields array, a field, the field's type.
    let records = (0..31).fold(r#""int""#.to_string(), |inner, i| {
        format!(r#"{{"type":"record","name":"R{i}","fields":[{{"name":"f","type":{inner}}}]}}"#)
    });
    for text in [
        nest("[", "]"),
        nest(r#"{"type":"array","items":"#, "}"),
        nest(r#"{"type":"map","values":"#, "}"),
        records,
    ] {
        let nested_types = text.starts_with('{');
        check_on_half_a_stack(text, nested_types);
    }
}

/// Parses `text` on a thread with [`half_a_jvm_stack`]; whether it must be a valid schema.
fn check_on_half_a_stack(text: String, valid: bool) {
    let parsed = std::thread::Builder::new()
        .stack_size(half_a_jvm_stack())
        .spawn(move || LogSchema::parse(&text).map(drop))
        .expect("a thread")
        .join();
    assert!(parsed.is_ok(), "no panic");
    if valid {
        assert_eq!(parsed.ok().map(|p| p.is_ok()), Some(true), "a valid schema");
    }
}

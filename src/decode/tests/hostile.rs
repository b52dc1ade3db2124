//! Recursive schemas and input made to exhaust time, memory or the stack.

use super::*;

const LINKED_LIST: &str = r#"{"type":"record","name":"Node","namespace":"list","fields":[
    {"name":"value","type":"int"},{"name":"next","type":["null","Node"]}]}"#;

#[test]
fn recursive_linked_list() {
    let datum = Enc::new()
        .long(1)
        .long(1)
        .long(2)
        .long(1)
        .long(3)
        .long(0)
        .done();
    check(
        LINKED_LIST,
        &datum,
        r#"{"value":1,"next":{"list.Node":{"value":2,"next":{"list.Node":{"value":3,"next":null}}}}}"#,
    );
}

#[test]
fn deep_recursion_is_refused() {
    // 40 nodes nest 80 levels (record + union each): fine.
    let mut e = Enc::new();
    for i in 0..40 {
        e = e.long(i).long(1);
    }
    let datum = e.long(0).long(0).done();
    assert!(json(LINKED_LIST, &datum).is_ok());
    // 100 000 nodes would recurse without end.
    let mut e = Enc::new();
    for _ in 0..100_000 {
        e = e.long(0).long(1);
    }
    assert!(matches!(
        fails(LINKED_LIST, &e.done()),
        DecodeError::TooDeep {
            limit: MAX_DEPTH,
            ..
        }
    ));
    // Arrays of arrays, and maps, count too.
    let mut e = Enc::new();
    for _ in 0..10_000 {
        e = e.long(1).long(1);
    }
    let nested = r#"{"type":"record","name":"A","fields":[{"name":"a","type":{"type":"array","items":"A"}}]}"#;
    assert!(matches!(
        fails(nested, &e.done()),
        DecodeError::TooDeep { .. }
    ));
}

/// The deepest records the walker takes, decoded on [`half_a_jvm_stack`] in both styles: it
/// runs on Kaa's own thread, in `doAppend`. Nested maps take the most stack a level (in a
/// release build about 1 KB, 133 KB at the 126 levels schema text can nest; arrays 160 bytes,
/// a record and its union 320); a recursive schema nests as deep as `MAX_DEPTH` allows.
#[test]
fn the_deepest_records_decode_on_half_a_stack() {
    let levels = 126;
    let maps = format!(
        "{}\"int\"{}",
        r#"{"type":"map","values":"#.repeat(levels),
        "}".repeat(levels)
    );
    let mut e = Enc::new();
    for _ in 0..levels {
        e = e.long(1).str("k");
    }
    e = e.long(7);
    for _ in 0..levels {
        e = e.long(0);
    }
    let deepest_maps = e.done();
    // The root record, then a union and a record for each node: 127 levels.
    let nodes = (MAX_DEPTH as usize - 1) / 2;
    let mut e = Enc::new();
    for i in 0..nodes {
        e = e.long(i as i64).long(1);
    }
    let deepest_list = e.long(0).long(0).done();
    for (schema, datum) in [
        (maps, deepest_maps),
        (LINKED_LIST.to_string(), deepest_list),
    ] {
        for style in [Style::AvroJson, Style::Plain] {
            let (schema, datum) = (schema.clone(), datum.clone());
            let decoded = std::thread::Builder::new()
                .stack_size(half_a_jvm_stack())
                .spawn(move || {
                    let schema = LogSchema::parse(&schema).unwrap_or_else(|e| panic!("{e}"));
                    schema.to_json(&datum, &mut Vec::new(), style)
                })
                .expect("a thread")
                .join();
            assert!(matches!(decoded, Ok(Ok(()))), "{style:?}: {decoded:?}");
        }
    }
}

#[test]
fn hostile_lengths_and_counts_fail_without_allocating() {
    let huge = Enc::new().long(1 << 40).raw(b"abc").done();
    assert!(matches!(
        fails(r#""string""#, &huge),
        DecodeError::Malformed {
            offset: 0,
            what: "string",
            error: BinaryError::BadLength(_)
        }
    ));
    assert!(matches!(
        fails(r#"{"type":"array","items":"int"}"#, &huge),
        DecodeError::BlockCount {
            offset: 0,
            count: 1099511627776,
            remaining: 3
        }
    ));
    assert!(matches!(
        fails(INT_MAP, &huge),
        DecodeError::BlockCount { .. }
    ));
    // Items of no bytes at all: a budget, not the input size, bounds them.
    let nulls = r#"{"type":"array","items":"null"}"#;
    check(
        nulls,
        &Enc::new().long(3).long(0).done(),
        "[null,null,null]",
    );
    assert!(matches!(
        fails(nulls, &Enc::new().long(i64::MAX).long(0).done()),
        DecodeError::TooManyEmptyItems { offset: 0 }
    ));
    let empties = r#"{"type":"array","items":{"type":"record","name":"E","fields":[{"name":"n","type":"null"}]}}"#;
    assert!(matches!(
        fails(empties, &Enc::new().long(1 << 30).long(0).done()),
        DecodeError::TooManyEmptyItems { .. }
    ));
    check(
        empties,
        &Enc::new().long(2).long(0).done(),
        r#"[{"n":null},{"n":null}]"#,
    );
}

#[test]
fn malformed_data_reports_where() {
    let schema = record(&[field("a", r#""int""#), field("s", r#""string""#)].join(","));
    assert_eq!(
        fails(&schema, &Enc::new().long(1).raw(&[0x08, b'a']).done()),
        DecodeError::Malformed {
            offset: 1,
            what: "string",
            error: BinaryError::BadLength(4)
        }
    );
    assert_eq!(
        fails(&schema, &[]),
        DecodeError::Malformed {
            offset: 0,
            what: "int",
            error: BinaryError::Truncated
        }
    );
    // An int that does not fit 32 bits.
    assert!(matches!(
        fails(r#""int""#, &Enc::new().long(1 << 31).done()),
        DecodeError::Malformed {
            what: "int",
            error: BinaryError::BadVarint,
            ..
        }
    ));
    assert!(matches!(
        fails(r#""double""#, &[0; 7]),
        DecodeError::Malformed { what: "double", .. }
    ));
}

#[test]
fn trailing_bytes_are_an_error() {
    // Kaa would ignore them; a record in another schema must fail instead.
    let schema = record(&field("a", r#""int""#));
    assert_eq!(
        fails(&schema, &[2, 2, 2]),
        DecodeError::TrailingBytes {
            offset: 1,
            trailing: 2
        }
    );
}

#[test]
fn errors_say_what_and_where() {
    let e = fails(r#""boolean""#, &[]);
    assert_eq!(
        e.to_string(),
        "malformed datum at byte 0 (boolean): input ends inside a value"
    );
    assert!(std::error::Error::source(&e).is_some());
    let e = LogSchema::parse("{").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("unusable log schema: not valid JSON"),
        "{e}"
    );
}

/// Maps in maps, each written out of Java's order, as a record of a recursive schema can nest
/// them: putting each in order copies all inside it, so they may nest until the copies reach
/// [`REORDER_TIMES`] the output; past that the record fails, where it cost a copy of its output
/// per level.
#[test]
fn maps_nested_past_the_copies_allowed_are_refused() {
    let nested = |levels: usize| {
        let mut schema = r#""string""#.to_string();
        for _ in 0..levels {
            schema = format!(r#"{{"type":"map","values":{schema}}}"#);
        }
        let big = "x".repeat(2_000);
        // Inserted "b" then "a"; Java's HashMap of two (four buckets once it holds both) puts
        // them "a" first.
        let mut head = Enc::new();
        for _ in 1..levels {
            head = head.long(2).str("b").long(0).str("a");
        }
        let mut datum = head.long(2).str("b").str("").str("a").str(&big);
        for _ in 0..levels {
            datum = datum.long(0);
        }
        let mut expected = format!(r#"{{"a":"{big}","b":""}}"#);
        for _ in 1..levels {
            expected = format!(r#"{{"a":{expected},"b":{{}}}}"#);
        }
        (schema, datum.done(), expected)
    };
    let (schema, datum, expected) = nested(REORDER_TIMES - 2);
    check(&schema, &datum, &expected);
    let (schema, datum, _) = nested(REORDER_TIMES + 2);
    assert!(matches!(
        fails(&schema, &datum),
        DecodeError::MapsTooNested {
            times: REORDER_TIMES,
            ..
        }
    ));
}

/// A map's repeated key keeps its last value only, but its earlier values were written all
/// the same: that work counts against the output bound. Each map here is 16 entries of 2 bytes,
/// of one key, whose values (records of 50 nulls, which take no input) come to 8 KB of text,
/// all but the last dropped: under the bound one map at a time. Before, 100 such maps (3.4 KB
/// of input) wrote 0.8 MB and dropped all but 1 KB of it, within a bound of 20 KB.
#[test]
fn what_repeated_map_keys_drop_counts_against_the_output_bound() {
    let nulls: Vec<String> = (0..50)
        .map(|i| field(&format!("f{i}"), r#""null""#))
        .collect();
    let value = format!(
        r#"{{"type":"record","name":"Z","fields":[{}]}}"#,
        nulls.join(",")
    );
    let maps = format!(r#"{{"type":"array","items":{{"type":"map","values":["null",{value}]}}}}"#);
    let schema = LogSchema::parse(&record(&field("maps", &maps))).unwrap();
    let datum = |n: i64| {
        let mut e = Enc::new().long(n);
        for _ in 0..n {
            e = e.long(16);
            for _ in 0..15 {
                e = e.str("").long(1);
            }
            e = e.str("").long(0).long(0);
        }
        e.long(0).done()
    };
    let limit = 20_000;
    let mut out = Vec::new();
    schema
        .to_json_within(&datum(1), &mut out, Style::AvroJson, limit)
        .expect("one map fits");
    assert_eq!(String::from_utf8(out).unwrap(), r#"{"maps":[{"":null}]}"#);
    let mut out = Vec::new();
    let e = schema
        .to_json_within(&datum(100), &mut out, Style::AvroJson, limit)
        .expect_err("over the bound");
    assert!(matches!(e, DecodeError::OverLimit { .. }), "{e}");
}

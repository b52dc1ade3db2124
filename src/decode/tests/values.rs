//! Values of each Avro type, in records and unions, as Avro 1.7.5 writes them.

use super::*;

#[test]
fn primitives_in_a_record() {
    let schema = record(
        &[
            field("n", r#""null""#),
            field("t", r#""boolean""#),
            field("f", r#""boolean""#),
            field("i", r#""int""#),
            field("imin", r#""int""#),
            field("l", r#""long""#),
            field("lmin", r#""long""#),
            field("x", r#""float""#),
            field("d", r#""double""#),
            field("s", r#""string""#),
            field("b", r#""bytes""#),
        ]
        .join(","),
    );
    let datum = Enc::new()
        .raw(&[1, 0])
        .long(2147483647)
        .long(-2147483648)
        .long(i64::MAX)
        .long(i64::MIN)
        .float(1.5)
        .double(-0.25)
        .str("héllo")
        .bytes(&[0x61, 0x00, 0xFF])
        .done();
    check(
        &schema,
        &datum,
        r#"{"n":null,"t":true,"f":false,"i":2147483647,"imin":-2147483648,"l":9223372036854775807,"lmin":-9223372036854775808,"x":1.5,"d":-0.25,"s":"héllo","b":"a\u0000ÿ"}"#,
    );
}

#[test]
fn top_level_primitives() {
    check(r#""int""#, &Enc::new().long(-3).done(), "-3");
    check(r#""string""#, &Enc::new().str("").done(), r#""""#);
    check(r#""null""#, &[], "null");
    check(r#"{"type":"long"}"#, &Enc::new().long(0).done(), "0");
}

// ---------------------------------------------------------------------------------------
// Java's Double.toString / Float.toString
// ---------------------------------------------------------------------------------------

#[test]
fn doubles_as_java_prints_them() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (-1.0, "-1.0"),
        (100.0, "100.0"),
        (0.1, "0.1"),
        (0.5, "0.5"),
        (123.456, "123.456"),
        (1013.25, "1013.25"),
        (0.001, "0.001"),
        (0.0009999, "9.999E-4"),
        (1.0e-5, "1.0E-5"),
        (9999999.0, "9999999.0"),
        (1.0e7, "1.0E7"),
        (1.2345678e7, "1.2345678E7"),
        (12345678.9, "1.23456789E7"),
        (1.0e21, "1.0E21"),
        (1.0e22, "1.0E22"),
        (-1.5e300, "-1.5E300"),
        (f64::MAX, "1.7976931348623157E308"),
        (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
        (5e-324, "4.9E-324"),
        (0.30000000000000004, "0.30000000000000004"),
        (1.0 / 3.0, "0.3333333333333333"),
        (2.0 / 3.0, "0.6666666666666666"),
        (9007199254740992.0, "9.007199254740992E15"),
        (9007199254740994.0, "9.007199254740994E15"),
        // Integral doubles from 2^53 to 2^63 keep FloatingDecimal's exact digits, not the
        // shortest ones (2.82879384806159E17 would round-trip too).
        (2.82879384806159e17, "2.82879384806159008E17"),
        (1.7e18, "1.7E18"),
        (
            f64::from_bits(0x43d3_1ebd_7bf4_d7c7),
            "5.5109875044334377E18",
        ),
        (9.223372036854776e18, "9.223372036854776E18"),
        (1.0e19, "1.0E19"),
    ];
    let schema = r#""double""#;
    for &(d, want) in cases {
        check(schema, &Enc::new().double(d).done(), want);
    }
}

/// Every value of `java_number_vectors.txt` (made by `scripts/dev/JavaNumberVectors.java` on
/// JDK 17, whose FloatingDecimal is Java 8's) renders exactly as the JDK printed it. Set
/// `JAVA_NUMBER_VECTORS` to a larger file made the same way to check more values.
#[test]
fn numbers_render_as_java_8_prints_them() {
    let text = match std::env::var("JAVA_NUMBER_VECTORS") {
        Ok(path) => std::fs::read_to_string(path).expect("JAVA_NUMBER_VECTORS is readable"),
        Err(_) => include_str!("../java_number_vectors.txt").to_string(),
    };
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (kind, bits, want) = (parts.next(), parts.next(), parts.next());
        let (Some(kind), Some(bits), Some(want)) = (kind, bits, want) else {
            continue;
        };
        let mut out = Vec::new();
        match kind {
            "d" => write_java_double(
                &mut out,
                f64::from_bits(u64::from_str_radix(bits, 16).unwrap()),
            ),
            _ => write_java_float(
                &mut out,
                f32::from_bits(u32::from_str_radix(bits, 16).unwrap()),
            ),
        }
        let want = match want {
            "NaN" | "Infinity" | "-Infinity" => format!("\"{want}\""),
            _ => want.to_string(),
        };
        if out != want.as_bytes() {
            wrong.push(format!(
                "{kind} {bits}: Java {want}, ours {}",
                String::from_utf8_lossy(&out)
            ));
        }
        checked += 1;
    }
    assert!(checked > 5000, "only {checked} vectors");
    assert!(
        wrong.is_empty(),
        "{} of {checked} differ, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}

/// Every binary exponent, the extremes included, prints digits that read back as the value:
/// the exact integers of the digit loop hold the largest values it makes.
#[test]
fn doubles_of_every_exponent_read_back() {
    for exp_field in 0..2047u64 {
        for fract in [
            0,
            1,
            0x8_0000_0000_0000,
            0xF_FFFF_FFFF_FFFF,
            0x3_7A5B_C1D2_E3F4,
        ] {
            let d = f64::from_bits((exp_field << 52) | fract);
            let mut out = Vec::new();
            write_java_double(&mut out, d);
            let text = String::from_utf8(out).expect("ASCII");
            assert_eq!(text.parse::<f64>().ok(), Some(d), "{d:e} printed {text}");
        }
    }
}

#[test]
fn non_finite_numbers_are_quoted() {
    check(
        r#""double""#,
        &Enc::new().double(f64::NAN).done(),
        r#""NaN""#,
    );
    check(
        r#""double""#,
        &Enc::new().double(f64::INFINITY).done(),
        r#""Infinity""#,
    );
    check(
        r#""double""#,
        &Enc::new().double(f64::NEG_INFINITY).done(),
        r#""-Infinity""#,
    );
    check(r#""float""#, &Enc::new().float(f32::NAN).done(), r#""NaN""#);
    check(
        r#""float""#,
        &Enc::new().float(f32::NEG_INFINITY).done(),
        r#""-Infinity""#,
    );
}

#[test]
fn floats_as_java_prints_them() {
    let cases: &[(f32, &str)] = &[
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (0.1, "0.1"),
        (21.5, "21.5"),
        (-273.15, "-273.15"),
        (9.80665, "9.80665"),
        (1.0e-5, "1.0E-5"),
        (1.0e7, "1.0E7"),
        (16777216.0, "1.6777216E7"),
        // Integral floats from 2^24: FloatingDecimal's exact digits (shortest: 1.015343E8).
        (101534304.0, "1.01534304E8"),
        (1.227e14, "1.22700001E14"),
        (f32::MAX, "3.4028235E38"),
        (1.4e-45, "1.4E-45"),
    ];
    for &(f, want) in cases {
        check(r#""float""#, &Enc::new().float(f).done(), want);
    }
}

// ---------------------------------------------------------------------------------------
// Strings, bytes, fixed
// ---------------------------------------------------------------------------------------

#[test]
fn string_escapes_as_jackson_1() {
    let mut all_controls = String::new();
    for c in 0u8..0x20 {
        all_controls.push(c as char);
    }
    check(
        r#""string""#,
        &Enc::new().str(&all_controls).done(),
        r#""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000B\f\r\u000E\u000F\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001A\u001B\u001C\u001D\u001E\u001F""#,
    );
    // Quote and backslash escaped; slash, DEL, U+2028 and other non-ASCII raw.
    check(
        r#""string""#,
        &Enc::new().str("\"\\/\u{7f}é€\u{2028}\u{ffff}").done(),
        "\"\\\"\\\\/\u{7f}é€\u{2028}\u{ffff}\"",
    );
}

#[test]
fn characters_outside_the_bmp_are_escaped_surrogate_pairs() {
    // Jackson 1.9's Utf8Generator escapes each surrogate: 😀 is \uD83D\uDE00, never F0 9F 98 80.
    check(
        r#""string""#,
        &Enc::new().str("a😀b\u{10FFFF}").done(),
        r#""a\uD83D\uDE00b\uDBFF\uDFFF""#,
    );
}

#[test]
fn malformed_utf8_is_replaced_as_jdk_8_does() {
    let cases: &[(&[u8], &str)] = &[
        (b"a\xffb", "a\u{fffd}b"),
        (b"\xc3", "\u{fffd}"),
        (b"\xc3(", "\u{fffd}("),
        (b"\xc0\xaf", "\u{fffd}\u{fffd}"),
        // An encoded surrogate is one replacement in Java (three in from_utf8_lossy).
        (b"\xed\xa0\x80x", "\u{fffd}x"),
        (b"\xed\xb0\x80x", "\u{fffd}x"),
        // The first three-byte character, beside a malformed byte.
        (b"\xe0\xa0\x80\xff", "\u{800}\u{fffd}"),
        // Over-long and out-of-range 3- and 4-byte forms.
        (b"\xe0\x80\x80", "\u{fffd}\u{fffd}\u{fffd}"),
        (b"\xf0\x80\x80\x80", "\u{fffd}\u{fffd}\u{fffd}\u{fffd}"),
        (b"\xf4\x90\x80\x80", "\u{fffd}\u{fffd}\u{fffd}\u{fffd}"),
        (b"\xe2\x82(", "\u{fffd}("),
        // Cut short at the end.
        (b"x\xe2\x82", "x\u{fffd}"),
        (b"\xf0\x9f\x98", "\u{fffd}"),
        (b"\xf5\x9f", "\u{fffd}\u{fffd}"),
        // A literal U+FFFD is just text.
        ("\u{fffd}".as_bytes(), "\u{fffd}"),
    ];
    for &(bytes, want) in cases {
        check(
            r#""string""#,
            &Enc::new().bytes(bytes).done(),
            &format!("\"{want}\""),
        );
    }
}

#[test]
fn bytes_and_fixed_are_latin1_text() {
    let raw = [
        0x00, 0x08, 0x1F, 0x22, 0x2F, 0x5C, 0x7F, 0x80, 0xA0, 0xE9, 0xFF,
    ];
    let want = "\"\\u0000\\b\\u001F\\\"/\\\\\u{7f}\u{80}\u{a0}éÿ\"";
    check(r#""bytes""#, &Enc::new().bytes(&raw).done(), want);
    check(
        r#"{"type":"fixed","name":"F","size":11}"#,
        &Enc::new().raw(&raw).done(),
        want,
    );
    check(r#"{"type":"fixed","name":"F0","size":0}"#, &[], r#""""#);
}

// ---------------------------------------------------------------------------------------
// Enums, arrays, records
// ---------------------------------------------------------------------------------------

#[test]
fn enum_symbols() {
    let schema = r#"{"type":"enum","name":"Level","symbols":["DEBUG","INFO","WARN"]}"#;
    check(schema, &Enc::new().long(0).done(), r#""DEBUG""#);
    check(schema, &Enc::new().long(2).done(), r#""WARN""#);
    assert!(matches!(
        fails(schema, &Enc::new().long(3).done()),
        DecodeError::EnumIndex {
            offset: 0,
            index: 3,
            symbols: 3
        }
    ));
    assert!(matches!(
        fails(schema, &Enc::new().long(-1).done()),
        DecodeError::EnumIndex { index: -1, .. }
    ));
}

#[test]
fn arrays_in_blocks() {
    let schema = r#"{"type":"array","items":"int"}"#;
    check(schema, &Enc::new().long(0).done(), "[]");
    check(
        schema,
        &Enc::new().long(2).long(1).long(2).long(0).done(),
        "[1,2]",
    );
    // Two blocks, the second with a negative count followed by its byte size.
    let datum = Enc::new()
        .long(1)
        .long(7)
        .long(-2)
        .long(2)
        .long(-8)
        .long(9)
        .long(0)
        .done();
    check(schema, &datum, "[7,-8,9]");
    check(
        r#"{"type":"array","items":{"type":"array","items":"string"}}"#,
        &Enc::new()
            .long(2)
            .long(0)
            .long(1)
            .str("x")
            .long(0)
            .long(0)
            .done(),
        r#"[[],["x"]]"#,
    );
}

#[test]
fn record_fields_in_schema_order() {
    let schema = r#"{"type":"record","name":"Log","namespace":"org.kaaproject.kaa.schema.sample.logging","fields":[
        {"name":"level","type":{"type":"enum","name":"Level","symbols":["KAA_DEBUG","KAA_ERROR","KAA_FATAL","KAA_INFO","KAA_TRACE","KAA_WARN"]}},
        {"name":"tag","type":{"type":"string","avro.java.string":"String"}},
        {"name":"message","type":{"type":"string","avro.java.string":"String"}},
        {"name":"timeStamp","type":["long","null"]}]}"#;
    let datum = Enc::new()
        .long(3)
        .str("thermostat")
        .str("temperature is 21.5 °C")
        .long(0)
        .long(1_460_000_000_000)
        .done();
    check(
        schema,
        &datum,
        r#"{"level":"KAA_INFO","tag":"thermostat","message":"temperature is 21.5 °C","timeStamp":{"long":1460000000000}}"#,
    );
    let datum = Enc::new().long(1).str("").str("").long(1).done();
    check(
        schema,
        &datum,
        r#"{"level":"KAA_ERROR","tag":"","message":"","timeStamp":null}"#,
    );
}

#[test]
fn escaped_field_names() {
    // Field names cannot need escaping in a valid schema, but the writer would escape them.
    assert_eq!(json_string("a\"b\\c\n"), br#""a\"b\\c\n""#);
}

// ---------------------------------------------------------------------------------------
// Empty records
// ---------------------------------------------------------------------------------------

#[test]
fn top_level_record_without_fields_is_braces() {
    // Avro 1.7.5 writes nothing at all here; the original appender then published nothing.
    // We publish the JSON the record stands for (the spec for this appender).
    check(r#"{"type":"record","name":"E","fields":[]}"#, &[], "{}");
}

#[test]
fn nested_empty_records_are_braces_as_in_1_7_5() {
    let schema = r#"{"type":"record","name":"Empties","namespace":"e","fields":[
        {"name":"first","type":{"type":"record","name":"Empty","fields":[]}},
        {"name":"i","type":"int"},
        {"name":"arr","type":{"type":"array","items":"Empty"}},
        {"name":"un","type":["null","Empty"]},
        {"name":"me","type":{"type":"map","values":"Empty"}},
        {"name":"last","type":"Empty"}]}"#;
    let datum = Enc::new()
        .long(5)
        .long(2)
        .long(0)
        .long(1)
        .long(1)
        .str("k")
        .long(0)
        .done();
    check(
        schema,
        &datum,
        r#"{"first":{},"i":5,"arr":[{},{}],"un":{"e.Empty":{}},"me":{"k":{}},"last":{}}"#,
    );
}

#[test]
fn record_of_only_empty_records() {
    // 1.7.5 writes nothing for this datum either (no value is ever written, so its grammar's
    // root is never expanded); like the top-level case we publish the JSON it stands for.
    check(
        r#"{"type":"record","name":"O","fields":[{"name":"e","type":{"type":"record","name":"E","fields":[]}}]}"#,
        &[],
        r#"{"e":{}}"#,
    );
}

/// `R0 {a: R1, b: R1}`, ..., `Rn {a: null, b: null}`: each type reused by name, so a datum of
/// no bytes at all stands for 2^(n+1) nulls, and a field `t: string` after them.
fn doubling_empty_records(levels: usize) -> String {
    let mut ty = r#"{"type":"record","name":"R0","fields":[{"name":"a","type":"null"},{"name":"b","type":"null"}]}"#.to_string();
    for i in 1..=levels {
        let inner = format!("R{}", i - 1);
        ty = format!(
            r#"{{"type":"record","name":"R{i}","fields":[{{"name":"a","type":{ty}}},{{"name":"b","type":"{inner}"}}]}}"#
        );
    }
    record(&format!(
        "{},{}",
        field("d", &ty),
        field("t", r#""string""#)
    ))
}

#[test]
fn records_that_take_no_bytes_stop_at_the_output_bound() {
    // Unbounded, this datum of 2 bytes (the string "a") would be 2^21 nulls: over 20 MB.
    let schema = LogSchema::parse(&doubling_empty_records(20)).unwrap();
    let datum = Enc::new().str("a").done();
    let limit = 1 << 20;
    let mut out = Vec::new();
    let e = schema
        .to_json_within(&datum, &mut out, Style::AvroJson, limit)
        .expect_err("over the bound");
    assert!(matches!(e, DecodeError::OverLimit { .. }), "{e}");
    assert!(out.len() <= limit + 64, "stopped at {} bytes", out.len());
    // The same for the fields a topic template skips on its way to its own.
    let mut scratch = Vec::new();
    let e = schema
        .field_text(&datum, &["t"], &mut scratch, limit)
        .expect_err("over the bound");
    assert!(e.contains("passes its bound of 1048576 bytes"), "{e}");
    // Within a bound they fit, the output is all of it.
    let small = LogSchema::parse(&doubling_empty_records(2)).unwrap();
    let mut out = Vec::new();
    small
        .to_json_within(&datum, &mut out, Style::AvroJson, limit)
        .unwrap();
    assert_eq!(out.iter().filter(|&&b| b == b'n').count(), 8);
}

// ---------------------------------------------------------------------------------------
// Unions
// ---------------------------------------------------------------------------------------

#[test]
fn union_branches_are_named_as_1_7_5_names_them() {
    let schema = r#"{"type":"record","name":"Outer","namespace":"a.b","fields":[{"name":"u","type":[
        "null","boolean","int","long","float","double","bytes","string",
        {"type":"array","items":"int"},{"type":"map","values":"int"},
        {"type":"fixed","name":"F2","size":2},
        {"type":"enum","name":"Color","namespace":"c","symbols":["RED"]}]}]}"#;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Enc::new().long(0).done(), r#"{"u":null}"#),
        (
            Enc::new().long(1).raw(&[1]).done(),
            r#"{"u":{"boolean":true}}"#,
        ),
        (Enc::new().long(2).long(-7).done(), r#"{"u":{"int":-7}}"#),
        (Enc::new().long(3).long(7).done(), r#"{"u":{"long":7}}"#),
        (
            Enc::new().long(4).float(0.5).done(),
            r#"{"u":{"float":0.5}}"#,
        ),
        (
            Enc::new().long(5).double(2.0).done(),
            r#"{"u":{"double":2.0}}"#,
        ),
        (
            Enc::new().long(6).bytes(b"\x01").done(),
            r#"{"u":{"bytes":"\u0001"}}"#,
        ),
        (
            Enc::new().long(7).str("s").done(),
            r#"{"u":{"string":"s"}}"#,
        ),
        (
            Enc::new().long(8).long(1).long(3).long(0).done(),
            r#"{"u":{"array":[3]}}"#,
        ),
        (
            Enc::new().long(9).long(1).str("k").long(4).long(0).done(),
            r#"{"u":{"map":{"k":4}}}"#,
        ),
        (
            Enc::new().long(10).raw(b"hi").done(),
            r#"{"u":{"a.b.F2":"hi"}}"#,
        ),
        (
            Enc::new().long(11).long(0).done(),
            r#"{"u":{"c.Color":"RED"}}"#,
        ),
    ];
    for (datum, want) in cases {
        check(schema, &datum, want);
    }
    assert!(matches!(
        fails(schema, &Enc::new().long(12).done()),
        DecodeError::UnionIndex {
            offset: 0,
            index: 12,
            branches: 12
        }
    ));
    assert!(matches!(
        fails(schema, &Enc::new().long(-1).done()),
        DecodeError::UnionIndex { index: -1, .. }
    ));
}

#[test]
fn union_of_two_records_from_different_namespaces() {
    let schema = r#"{"type":"record","name":"Event","namespace":"org.kaa.events","fields":[
        {"name":"payload","type":[
            {"type":"record","name":"Reading","fields":[{"name":"value","type":"double"}]},
            {"type":"record","name":"Reading","namespace":"com.vendor.legacy","fields":[{"name":"raw","type":"string"}]},
            "null"]},
        {"name":"again","type":["null","Reading","com.vendor.legacy.Reading"]}]}"#;
    let datum = Enc::new().long(0).double(21.5).long(2).str("x").done();
    check(
        schema,
        &datum,
        r#"{"payload":{"org.kaa.events.Reading":{"value":21.5}},"again":{"com.vendor.legacy.Reading":{"raw":"x"}}}"#,
    );
    let datum = Enc::new().long(1).str("17").long(1).double(-1.0).done();
    check(
        schema,
        &datum,
        r#"{"payload":{"com.vendor.legacy.Reading":{"raw":"17"}},"again":{"org.kaa.events.Reading":{"value":-1.0}}}"#,
    );
}

#[test]
fn logical_types_are_their_underlying_types() {
    let schema = r#"{"type":"record","name":"L","namespace":"lt","fields":[
        {"name":"date","type":{"type":"int","logicalType":"date"}},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"tm","type":{"type":"long","logicalType":"time-micros"}},
        {"name":"uuid","type":{"type":"string","logicalType":"uuid"}},
        {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":6,"scale":2}},
        {"name":"decf","type":{"type":"fixed","name":"DecF","size":2,"logicalType":"decimal","precision":4}},
        {"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},
        {"name":"u","type":["null",{"type":"int","logicalType":"date"},{"type":"long","logicalType":"timestamp-micros"},
            {"type":"string","logicalType":"uuid"},"DecF","Dur",{"type":"bytes","logicalType":"decimal","precision":4}]}]}"#;
    let head = Enc::new()
        .long(19000)
        .long(1_600_000_000_000)
        .long(5)
        .str("6f1c")
        .bytes(&[0x30, 0x39])
        .raw(&[0x04, 0xD2])
        .raw(&[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
    let prefix = r#"{"date":19000,"ts":1600000000000,"tm":5,"uuid":"6f1c","dec":"09","decf":"\u0004Ò","dur":"\u0001\u0000\u0000\u0000\u0002\u0000\u0000\u0000\u0003\u0000\u0000\u0000","u":"#;
    let cases: Vec<(Enc, &str)> = vec![
        (Enc::new().long(1).long(-1), r#"{"int":-1}"#),
        (Enc::new().long(2).long(3), r#"{"long":3}"#),
        (Enc::new().long(3).str("u"), r#"{"string":"u"}"#),
        (Enc::new().long(4).raw(b"ab"), r#"{"lt.DecF":"ab"}"#),
        (
            Enc::new().long(5).raw(&[0x41; 12]),
            r#"{"lt.Dur":"AAAAAAAAAAAA"}"#,
        ),
        (Enc::new().long(6).bytes(b"z"), r#"{"bytes":"z"}"#),
    ];
    for (tail, want) in cases {
        let datum = Enc::new().raw(&head.0).raw(&tail.0).done();
        check(schema, &datum, &format!("{prefix}{want}}}"));
    }
}

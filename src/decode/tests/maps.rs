//! Maps, whose entries Avro 1.7.5 writes in `java.util.HashMap` order.

use super::*;

#[test]
fn map_keys_in_hashmap_order() {
    check(INT_MAP, &map_datum(&[]), "{}");
    check(INT_MAP, &map_datum(&[&[("only", 1)]]), r#"{"only":1}"#);
    // Capacity 4: "a" 97 → bucket 1, "b" → 2, "c" → 3.
    check(
        INT_MAP,
        &map_datum(&[&[("c", 3), ("a", 1), ("b", 2)]]),
        r#"{"a":1,"b":2,"c":3}"#,
    );
    check(
        INT_MAP,
        &map_datum(&[&[
            ("temperature", 1),
            ("humidity", 2),
            ("pressure", 3),
            ("wind", 4),
        ]]),
        r#"{"temperature":1,"humidity":2,"pressure":3,"wind":4}"#,
    );
    let keys: Vec<String> = (1..=12).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, i64)> = keys.iter().map(|k| (k.as_str(), 0)).collect();
    check(
        INT_MAP,
        &map_datum(&[&entries]),
        r#"{"k1":0,"k2":0,"k3":0,"k4":0,"k5":0,"k11":0,"k6":0,"k10":0,"k7":0,"k8":0,"k12":0,"k9":0}"#,
    );
}

#[test]
fn map_capacity_comes_from_the_first_block() {
    // Same entries; a first block of 1 (the table grows 1, 2, 4, 8) or one block of 6 (8 at
    // once): the final table is 8 either way, so the order is the same.
    let all = [
        ("k10", 1),
        ("x", 2),
        ("é", 3),
        ("k2", 4),
        ("AaBB", 5),
        ("BBAa", 6),
    ];
    let want = r#"{"x":2,"é":3,"k10":1,"k2":4,"AaBB":5,"BBAa":6}"#;
    check(INT_MAP, &map_datum(&[&all]), want);
    check(INT_MAP, &map_datum(&[&all[..1], &all[1..]]), want);
    // Eight keys: a table of 16 whether it starts at 1 or at 8.
    let eight = [
        ("alpha", 1),
        ("beta", 2),
        ("gamma", 3),
        ("delta", 4),
        ("epsilon", 5),
        ("zeta", 6),
        ("eta", 7),
        ("theta", 8),
    ];
    let want = r#"{"epsilon":5,"zeta":6,"eta":7,"alpha":1,"delta":4,"theta":8,"beta":2,"gamma":3}"#;
    check(INT_MAP, &map_datum(&[&eight]), want);
    check(INT_MAP, &map_datum(&[&eight[..1], &eight[1..]]), want);
}

#[test]
fn repeated_map_key_keeps_its_place_and_takes_the_last_value() {
    check(
        INT_MAP,
        &map_datum(&[&[("b", 1), ("a", 2)], &[("b", 3)]]),
        r#"{"a":2,"b":3}"#,
    );
    check(
        INT_MAP,
        &map_datum(&[&[("z", 1), ("y", 2), ("z", 3), ("z", 4)]]),
        r#"{"y":2,"z":4}"#,
    );
}

#[test]
fn map_keys_hash_as_utf8_bytes_or_as_java_strings() {
    // Utf8.hashCode sums signed bytes, String.hashCode UTF-16 units: "é" lands elsewhere.
    let entries: &[(&str, i64)] = &[("é", 1), ("a", 2), ("ü", 3), ("b", 4), ("€", 5)];
    check(
        INT_MAP,
        &map_datum(&[entries]),
        r#"{"é":1,"a":2,"b":4,"€":5,"ü":3}"#,
    );
    check(
        r#"{"type":"map","values":"int","avro.java.string":"String"}"#,
        &map_datum(&[entries]),
        r#"{"é":1,"a":2,"b":4,"ü":3,"€":5}"#,
    );
}

#[test]
fn java_string_keys_that_decode_alike_are_one_key() {
    // FF and EF BF BD (U+FFFD itself) are different Utf8 keys but the same String key.
    let datum = Enc::new()
        .long(2)
        .bytes(b"\xff")
        .long(1)
        .bytes("\u{fffd}".as_bytes())
        .long(2)
        .long(0)
        .done();
    check(INT_MAP, &datum, "{\"\u{fffd}\":1,\"\u{fffd}\":2}");
    check(
        r#"{"type":"map","values":"int","avro.java.string":"String"}"#,
        &datum,
        "{\"\u{fffd}\":2}",
    );
}

#[test]
fn colliding_keys_resize_a_small_table_instead_of_treeifying() {
    // Nine keys with one hash (Aa and BB hash alike) fill one bucket of a 16-slot table:
    // HashMap.treeifyBin resizes to 32 instead of building a tree.
    let keys = [
        "AaAaAaAa", "AaAaAaBB", "AaAaBBAa", "AaAaBBBB", "AaBBAaAa", "AaBBAaBB", "AaBBBBAa",
        "AaBBBBBB", "BBAaAaAa",
    ];
    let entries: Vec<(&str, i64)> = std::iter::once(("x", 0))
        .chain(keys.iter().enumerate().map(|(i, k)| (*k, i as i64 + 1)))
        .chain(std::iter::once(("k1", 10)))
        .collect();
    check(
        INT_MAP,
        &map_datum(&[&entries]),
        r#"{"k1":10,"AaAaAaAa":1,"AaAaAaBB":2,"AaAaBBAa":3,"AaAaBBBB":4,"AaBBAaAa":5,"AaBBAaBB":6,"AaBBBBAa":7,"AaBBBBBB":8,"BBAaAaAa":9,"x":0}"#,
    );
}

#[test]
fn large_map_with_duplicates_in_a_later_block() {
    // 20 keys in a first block (table 32), then key3 and key17 again and a new key.
    let keys: Vec<String> = (0..20).map(|i| format!("key{i}")).collect();
    let first: Vec<(&str, i64)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i as i64))
        .collect();
    let datum = map_datum(&[&first, &[("key3", 100), ("key17", 200), ("extra", 300)]]);
    check(
        INT_MAP,
        &datum,
        r#"{"key1":1,"key2":2,"key0":0,"key5":5,"key6":6,"key3":100,"key4":4,"key9":9,"key7":7,"key8":8,"key11":11,"key10":10,"key15":15,"key14":14,"key13":13,"key12":12,"key19":19,"key18":18,"key17":200,"key16":16,"extra":300}"#,
    );
}

#[test]
fn nested_maps_are_each_reordered() {
    let schema = r#"{"type":"record","name":"M","fields":[
        {"name":"before","type":"string"},
        {"name":"m","type":{"type":"map","values":{"type":"map","values":"long"}}},
        {"name":"after","type":"int"}]}"#;
    let datum = Enc::new()
        .str("s")
        .long(2)
        .str("c")
        .long(2)
        .str("b")
        .long(1)
        .str("a")
        .long(2)
        .long(0)
        .str("a")
        .long(0)
        .long(0)
        .long(7)
        .done();
    check(
        schema,
        &datum,
        r#"{"before":"s","m":{"a":{},"c":{"a":2,"b":1}},"after":7}"#,
    );
}

#[test]
fn output_is_appended_after_existing_content() {
    let schema = LogSchema::parse(INT_MAP).unwrap();
    let mut out = b"prefix:".to_vec();
    schema
        .to_avro_json(&map_datum(&[&[("c", 3), ("a", 1)]]), &mut out)
        .unwrap();
    assert_eq!(out, br#"prefix:{"a":1,"c":3}"#);
}

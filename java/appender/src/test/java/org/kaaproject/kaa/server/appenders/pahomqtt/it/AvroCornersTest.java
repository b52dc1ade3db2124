package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.INTERNAL_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.AbstractMap;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.util.Utf8;
import org.codehaus.jackson.JsonNode;
import org.codehaus.jackson.map.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * Payload bytes for the corners of every Avro type that {@code EndToEndTest.edgeValuesMatchAvro175ByteForByte} does
 * not reach: nested and recursive records, records without fields inside others, unions of named types from
 * different namespaces, logical types Avro 1.7.5 does not know, maps in Java's HashMap order (sizes around every
 * resize, keys that share a bucket or a hash, String versus Utf8 keys, several blocks, repeated keys), arrays in
 * several blocks, zero-byte items, varint boundaries and over-long varints, NaN bit patterns, malformed UTF-8, and
 * ISO-8859-1 bytes. Every expected payload is what Avro 1.7.5's JsonEncoder writes for the record (decoded with
 * GenericDatumReader, written with GenericDatumWriter, as Kaa's converter does), compared byte for byte with what
 * a real subscriber received. Records Avro 1.7.5 never writes itself (several blocks, over-long varints, raw NaN
 * bits, malformed UTF-8) are hand-encoded and still decoded by Avro 1.7.5 for the reference.
 *
 * <p>Where the appender cannot or deliberately does not match (Java tree bins in maps, the nesting and
 * zero-byte-item limits, bytes after the record), the last tests pin what it does instead: the same entries in
 * another order, or onInternalError with nothing published, never a wrong text.
 */
class AvroCornersTest {

    private static final Duration GRACE = Duration.ofMillis(500);

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    // ------------------------------------------------------------------------------------------------ harness

    /** One record: a name for failure messages, its Avro binary and the exact payload expected for it. */
    private static final class Case {
        final String name;
        final byte[] binary;
        final byte[] expected;

        Case(String name, byte[] binary, byte[] expected) {
            this.name = name;
            this.binary = binary;
            this.expected = expected;
        }
    }

    /** The records of one log schema, each with an id "prefix-n" so a failure names the case. */
    private static final class Cases {
        final String schemaText;
        final Schema schema;
        final String prefix;
        final List<Case> list = new ArrayList<>();

        Cases(String resource, String prefix) {
            this.schemaText = TestData.schemaText(resource);
            this.schema = AvroReference.parse(schemaText);
            this.prefix = prefix;
        }

        /** The id the next case gets. */
        String nextId() {
            return prefix + "-" + list.size();
        }

        /** A record with every field at its zero value and the next id, then {@code fill} applied. */
        void record(String name, Consumer<GenericRecord> fill) {
            GenericRecord r = (GenericRecord) zero(schema);
            if (schema.getField("id") != null) {
                r.put("id", nextId());
            }
            fill.accept(r);
            binary(name, AvroReference.binary(schema, r));
        }

        /** A hand-encoded record; the reference is what Avro 1.7.5 makes of it. */
        void binary(String name, byte[] binary) {
            byte[] expected;
            try {
                expected = AvroReference.expectedPayload(schema, binary);
            } catch (RuntimeException e) {
                throw new IllegalStateException("test case [" + name + "] is not a record Avro 1.7.5 can read: " + e,
                        e);
            }
            list.add(new Case(name, binary, expected));
        }

        /** A record whose expected payload is not Avro 1.7.5's output (a documented difference). */
        void binaryExpecting(String name, byte[] binary, String expected) {
            list.add(new Case(name, binary, expected.getBytes(StandardCharsets.UTF_8)));
        }
    }

    /** The zero value of a schema: "", 0, false, empty collections, null for unions with null, first branch else. */
    static Object zero(Schema s) {
        switch (s.getType()) {
            case NULL:
                return null;
            case BOOLEAN:
                return false;
            case INT:
                return 0;
            case LONG:
                return 0L;
            case FLOAT:
                return 0f;
            case DOUBLE:
                return 0d;
            case STRING:
                return "";
            case BYTES:
                return ByteBuffer.wrap(new byte[0]);
            case FIXED:
                return new GenericData.Fixed(s, new byte[s.getFixedSize()]);
            case ENUM:
                return new GenericData.EnumSymbol(s, s.getEnumSymbols().get(0));
            case ARRAY:
                return new ArrayList<>();
            case MAP:
                return new HashMap<>();
            case UNION:
                for (Schema b : s.getTypes()) {
                    if (b.getType() == Schema.Type.NULL) {
                        return null;
                    }
                }
                return zero(s.getTypes().get(0));
            case RECORD:
                GenericRecord r = new GenericData.Record(s);
                for (Schema.Field f : s.getFields()) {
                    r.put(f.name(), zero(f.schema()));
                }
                return r;
            default:
                throw new IllegalArgumentException(s.toString());
        }
    }

    /** A topic of its own, an appender of its own, one pack with every case; every payload compared byte for byte. */
    private void deliverAndCompare(Cases cases) {
        String topic = "kaa/it/corners/" + cases.prefix + "/" + UUID.randomUUID().toString().substring(0, 8);
        List<byte[]> bins = new ArrayList<>();
        for (Case c : cases.list) {
            bins.add(c.binary);
        }
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            LogAppender appender = BROKER.load("corners-" + cases.prefix, KaaNode.brokerConfig(BROKER.port(), topic,
                    1));
            RecordingCallback cb = new RecordingCallback(cases.prefix + " pack of " + bins.size() + " records");
            cb.appendStarting();
            appender.doAppend(KaaNode.pack(cases.schemaText, 1, bins), cb);
            cb.appendReturned();
            RecordingCallback.Call first = cb.awaitFirst(Duration.ofSeconds(30));
            if (!first.method.equals(SUCCESS)) {
                fail(cases.prefix + ": the pack of " + bins.size() + " records was answered " + first.method
                        + " (onInternalError: the appender refused the schema or a record Avro 1.7.5 reads); "
                        + "records: " + names(cases));
            }
            sub.awaitCount(bins.size(), Duration.ofSeconds(20));
            RecordingCallback.sleep(GRACE);
            cb.assertOnlyOne(SUCCESS);
            assertNull(sub.connectionLost(), "the test subscriber lost its connection");
            compare(cases, sub.payloads());
        }
    }

    private static List<String> names(Cases cases) {
        List<String> out = new ArrayList<>();
        for (Case c : cases.list) {
            out.add(c.name);
        }
        return out;
    }

    /** Every expected payload received exactly once and nothing else; failures name each case. */
    private static void compare(Cases cases, List<byte[]> received) {
        Map<String, Integer> left = new HashMap<>();
        for (byte[] r : received) {
            left.merge(Payloads.key(r), 1, Integer::sum);
        }
        List<Case> missing = new ArrayList<>();
        for (Case c : cases.list) {
            String k = Payloads.key(c.expected);
            Integer n = left.get(k);
            if (n == null) {
                missing.add(c);
            } else if (n == 1) {
                left.remove(k);
            } else {
                left.put(k, n - 1);
            }
        }
        if (missing.isEmpty() && left.isEmpty()) {
            return;
        }
        Map<String, byte[]> unexpectedById = new LinkedHashMap<>();
        List<byte[]> unexpected = new ArrayList<>();
        for (Map.Entry<String, Integer> e : left.entrySet()) {
            byte[] b = e.getKey().getBytes(StandardCharsets.ISO_8859_1);
            String id = Payloads.idOf(b);
            if (id != null) {
                unexpectedById.put(id, b);
            }
            for (int i = 0; i < e.getValue(); i++) {
                unexpected.add(b);
            }
        }
        StringBuilder sb = new StringBuilder();
        sb.append(cases.prefix).append(": ").append(missing.size()).append(" of ").append(cases.list.size())
                .append(" records differ from Avro 1.7.5's JsonEncoder output (").append(unexpected.size())
                .append(" unexpected payloads):");
        for (Case c : missing) {
            String id = Payloads.idOf(c.expected);
            byte[] got = id == null ? null : unexpectedById.remove(id);
            sb.append("\n  [").append(c.name).append("]\n      expected ").append(clip(Payloads.show(c.expected)));
            if (got != null) {
                sb.append("\n      received ").append(clip(Payloads.show(got))).append("\n      ")
                        .append(Payloads.firstDifference(c.expected, got));
            } else {
                sb.append("\n      received nothing with that id");
            }
        }
        for (byte[] u : unexpectedById.values()) {
            sb.append("\n  [unexpected] ").append(clip(Payloads.show(u)));
        }
        fail(sb.append(AvroReference.NUMBER_FORMAT_NOTE).toString());
    }

    private static String clip(String s) {
        return s.length() <= 3000 ? s : s.substring(0, 3000) + "...(" + s.length() + " chars)";
    }

    private static byte[] bytes(int... values) {
        byte[] b = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            b[i] = (byte) values[i];
        }
        return b;
    }

    private static Schema fieldSchema(Schema s, String... path) {
        Schema cur = s;
        for (String p : path) {
            cur = cur.getField(p).schema();
        }
        return cur;
    }

    /** The branch of a union with this full name (or type name for unnamed types). */
    private static Schema branch(Schema union, String name) {
        for (Schema b : union.getTypes()) {
            if (b.getFullName().equals(name) || b.getType().getName().equals(name)) {
                return b;
            }
        }
        throw new IllegalArgumentException(name + " not in " + union);
    }

    // ------------------------------------------------------------------------------------------------ records

    /** Records in records, named types used again by reference, a linked list and a tree (recursive types). */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void nestedAndRecursiveRecords() {
        Cases cases = new Cases("corners-nested.avsc", "nested");
        Schema s = cases.schema;
        Schema outer = fieldSchema(s, "outer");
        Schema inner = fieldSchema(outer, "inner");
        Schema deepest = fieldSchema(inner, "deepest");
        Schema cell = fieldSchema(s, "list").getTypes().get(1);
        Schema tree = fieldSchema(s, "tree");

        cases.record("all zero", r -> { });
        cases.record("nested records with values", r -> {
            GenericRecord o = (GenericRecord) r.get("outer");
            GenericRecord i = (GenericRecord) o.get("inner");
            GenericRecord d = (GenericRecord) i.get("deepest");
            d.put("v", -42);
            d.put("tag", "deep \"tag\"");
            i.put("label", "inner label");
        });
        cases.record("a named record used by reference in an array, a map and a union", r -> {
            GenericRecord o = (GenericRecord) r.get("outer");
            List<GenericRecord> inners = new ArrayList<>();
            Map<String, GenericRecord> byName = new LinkedHashMap<>();
            for (int k = 0; k < 5; k++) {
                GenericRecord i = (GenericRecord) zero(inner);
                ((GenericRecord) i.get("deepest")).put("v", k);
                ((GenericRecord) i.get("deepest")).put("tag", k % 2 == 0 ? null : "t" + k);
                i.put("label", "inner-" + k);
                inners.add(i);
                byName.put("name-" + k, i);
            }
            o.put("inners", inners);
            o.put("byName", byName);
            o.put("maybe", inners.get(3));
        });
        for (int len : new int[] {1, 2, 3, 10, 30, 60, 63}) {
            cases.record("linked list of " + len + " cells (" + (2 * len + 1) + " levels deep)", r -> {
                GenericRecord next = null;
                for (int k = len; k > 0; k--) {
                    GenericRecord c = new GenericData.Record(cell);
                    c.put("value", k == 1 ? Long.MIN_VALUE : (long) k * 1_000_000_007L);
                    c.put("next", next);
                    next = c;
                }
                r.put("list", next);
            });
        }
        cases.record("tree 4 levels deep, 3 children each, children also by key",
                r -> r.put("tree", tree(tree, "root", 4, 3)));
        cases.record("tree that is a path 40 deep through maps", r -> {
            GenericRecord t = (GenericRecord) zero(tree);
            t.put("label", "leaf");
            for (int k = 0; k < 40; k++) {
                GenericRecord parent = (GenericRecord) zero(tree);
                parent.put("label", "level " + k);
                parent.put("byKey", Map.of("down", t));
                t = parent;
            }
            r.put("tree", t);
        });
        deliverAndCompare(cases);
    }

    private static GenericRecord tree(Schema tree, String label, int depth, int fanout) {
        GenericRecord t = new GenericData.Record(tree);
        t.put("label", label);
        List<GenericRecord> children = new ArrayList<>();
        Map<String, GenericRecord> byKey = new LinkedHashMap<>();
        if (depth > 1) {
            for (int k = 0; k < fanout; k++) {
                GenericRecord c = tree(tree, label + "." + k, depth - 1, fanout);
                children.add(c);
                if (k != 1) {
                    byKey.put(label + "/" + k, c);
                }
            }
        }
        t.put("children", children);
        t.put("byKey", byKey);
        return t;
    }

    /**
     * Records without fields everywhere a type can stand: first, middle and last field, inside another record, as
     * array items, map values and union branches; arrays of nulls and of fixed(0), whose items take no input bytes.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void recordsWithoutFieldsInsideOthers() {
        Cases cases = new Cases("corners-empties.avsc", "empties");
        Schema s = cases.schema;
        Schema nothing = fieldSchema(s, "first");
        Schema wrapper = fieldSchema(s, "wrapped");
        Schema zeroFixed = fieldSchema(s, "zeroFixed").getElementType();
        cases.record("all zero", r -> { });
        for (int n : new int[] {1, 3, 1000}) {
            cases.record(n + " empty records in an array and a map", r -> {
                List<GenericRecord> list = new ArrayList<>();
                Map<String, GenericRecord> byKey = new HashMap<>();
                for (int k = 0; k < n; k++) {
                    list.add(new GenericData.Record(nothing));
                    byKey.put("k" + k, new GenericData.Record(nothing));
                }
                r.put("list", list);
                r.put("byKey", byKey);
            });
        }
        cases.record("union branch: the empty record", r -> r.put("maybe", new GenericData.Record(nothing)));
        cases.record("union branch: a record holding only an empty record", r -> {
            GenericRecord w = new GenericData.Record(wrapper);
            w.put("nothing", new GenericData.Record(nothing));
            r.put("maybe", w);
        });
        for (int n : new int[] {1, 7, 5000}) {
            cases.record(n + " nulls and " + n + " fixed(0) in arrays", r -> {
                r.put("nulls", new ArrayList<>(Collections.nCopies(n, null)));
                List<GenericData.Fixed> fs = new ArrayList<>();
                for (int k = 0; k < n; k++) {
                    fs.add(new GenericData.Fixed(zeroFixed, new byte[0]));
                }
                r.put("zeroFixed", fs);
            });
        }
        deliverAndCompare(cases);
    }

    /**
     * A record whose fields are all (recursively) records without fields: Avro 1.7.5's JsonEncoder writes nothing
     * for it, so the original appender published an empty message. The appender publishes the JSON the record
     * stands for, as it does for a top-level record without fields (README, Payload).
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void recordMadeOnlyOfEmptyRecordsIsPublishedAsItsJson() {
        Cases cases = new Cases("corners-only-empties.avsc", "only-empties");
        GenericRecord r = (GenericRecord) zero(cases.schema);
        byte[] bin = AvroReference.binary(cases.schema, r);
        assertEquals(0, bin.length, "such a record has no bytes");
        assertEquals(0, AvroReference.kaaJson(cases.schema, bin).length, "Avro 1.7.5 writes nothing for it");
        cases.binaryExpecting("record of empty records", bin, "{\"a\":{},\"b\":{\"n\":{}}}");
        cases.binaryExpecting("the same again (one message per record)", bin, "{\"a\":{},\"b\":{\"n\":{}}}");
        deliverAndCompare(cases);
    }

    // ------------------------------------------------------------------------------------------------ names

    /**
     * Union branches are labelled with the type's full name as Avro 1.7.5 computes it: the same simple name in
     * different namespaces, a namespace inherited from the enclosing type, {@code "namespace": ""} (no namespace,
     * while the types nested in it still inherit the enclosing one), a dotted name overriding the namespace
     * attribute, references by short and full name; primitives with properties and logical types (unknown to
     * 1.7.5) keep their primitive labels, fixed-based ones the fixed's full name.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void unionsOfNamedTypesFromDifferentNamespaces() {
        Cases cases = new Cases("corners-names.avsc", "names");
        Schema s = cases.schema;
        Schema choice = fieldSchema(s, "choice");
        Schema again = fieldSchema(s, "again");
        Schema primitives = fieldSchema(s, "primitives");
        Schema geo = branch(choice, "com.example.geo.Point");
        Schema place = branch(choice, "com.example.geo.Place");
        Schema screen = branch(choice, "com.example.screen.Point");
        Schema local = branch(choice, "org.kaaproject.kaa.it.corners.names.Point");
        Schema bare = branch(choice, "Bare");
        Schema insideBare = branch(again, "org.kaaproject.kaa.it.corners.names.InsideBare");
        Schema dotted = branch(choice, "net.example.Point");
        Schema paint = branch(choice, "com.example.paint.Color");
        Schema color = branch(choice, "org.kaaproject.kaa.it.corners.names.Color");
        Schema ids = branch(choice, "com.example.ids.Id");
        Schema id1 = branch(choice, "org.kaaproject.kaa.it.corners.names.Id");
        Schema dec = branch(primitives, "org.kaaproject.kaa.it.corners.names.Dec");
        Schema dur = branch(primitives, "org.kaaproject.kaa.it.corners.names.Dur");
        Schema small = fieldSchema(s, "hugeDecimal");
        Schema uuid16 = fieldSchema(s, "uuidFixed").getTypes().get(1);

        GenericRecord geoPoint = new GenericData.Record(geo);
        geoPoint.put("lat", 48.8566);
        GenericRecord pl = new GenericData.Record(place);
        pl.put("name", "Paris");
        GenericRecord geoWithPlace = new GenericData.Record(geo);
        geoWithPlace.put("lat", -0.0);
        geoWithPlace.put("where", pl);
        GenericRecord screenPoint = new GenericData.Record(screen);
        screenPoint.put("px", 1920);
        GenericRecord localPoint = new GenericData.Record(local);
        localPoint.put("local", true);
        GenericRecord barePoint = new GenericData.Record(bare);
        barePoint.put("bare", "no namespace");
        GenericRecord ib = new GenericData.Record(insideBare);
        ib.put("x", 7);
        GenericRecord bareWithInside = new GenericData.Record(bare);
        bareWithInside.put("bare", "with inside");
        bareWithInside.put("inside", ib);
        GenericRecord dottedPoint = new GenericData.Record(dotted);
        dottedPoint.put("dotted", 1L << 40);

        Map<String, Object> choices = new LinkedHashMap<>();
        choices.put("com.example.geo.Point", geoPoint);
        choices.put("com.example.geo.Point with a nested Place (namespace inherited)", geoWithPlace);
        choices.put("com.example.screen.Point", screenPoint);
        choices.put("Point in the enclosing namespace", localPoint);
        choices.put("Bare with namespace \"\" (no namespace)", barePoint);
        choices.put("InsideBare nested in a namespace \"\" record", bareWithInside);
        choices.put("dotted name net.example.Point", dottedPoint);
        choices.put("enum com.example.paint.Color", new GenericData.EnumSymbol(paint, "BLUE"));
        choices.put("enum Color in the enclosing namespace", new GenericData.EnumSymbol(color, "MAGENTA"));
        choices.put("fixed com.example.ids.Id", new GenericData.Fixed(ids, bytes(0, 0x80, 0xff)));
        choices.put("fixed Id in the enclosing namespace", new GenericData.Fixed(id1, bytes('"')));
        choices.put("Place by full-name reference", pl);
        choices.put("array of Point by short-name reference", List.of(localPoint, localPoint));
        choices.put("map of com.example.screen.Point", Map.of("main", screenPoint));
        for (Map.Entry<String, Object> e : choices.entrySet()) {
            cases.record("choice: " + e.getKey(), r -> {
                r.put("choice", e.getValue());
                r.put("again", geoPoint);
            });
        }
        Map<String, Object> agains = new LinkedHashMap<>();
        agains.put("null", null);
        agains.put("Point by short name", localPoint);
        agains.put("net.example.Point", dottedPoint);
        agains.put("com.example.paint.Color", new GenericData.EnumSymbol(paint, "RED"));
        agains.put("Color by short name", new GenericData.EnumSymbol(color, "CYAN"));
        agains.put("com.example.ids.Id", new GenericData.Fixed(ids, bytes(1, 2, 3)));
        agains.put("Id by short name", new GenericData.Fixed(id1, bytes(0xe9)));
        agains.put("InsideBare by short name", ib);
        agains.put("string with avro.java.string", "text");
        for (Map.Entry<String, Object> e : agains.entrySet()) {
            cases.record("again: " + e.getKey(), r -> r.put("again", e.getValue()));
        }
        Map<String, Object> prims = new LinkedHashMap<>();
        prims.put("string with properties", "s");
        prims.put("int with logicalType date", 19_000);
        prims.put("long with logicalType timestamp-millis", 1_700_000_000_123L);
        prims.put("bytes with logicalType decimal", ByteBuffer.wrap(bytes(0x04, 0xd2)));
        prims.put("fixed with logicalType decimal", new GenericData.Fixed(dec, bytes(0xff, 0xff, 0xfb, 0x2e)));
        prims.put("fixed with logicalType duration", new GenericData.Fixed(dur, bytes(1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0,
                0)));
        prims.put("double with an unknown logicalType", 2.5);
        prims.put("boolean with a non-text logicalType", true);
        for (Map.Entry<String, Object> e : prims.entrySet()) {
            cases.record("primitives: " + e.getKey(), r -> r.put("primitives", e.getValue()));
        }
        cases.record("uuid, time-micros, invalid decimals, fixed uuid", r -> {
            r.put("uuid", "123e4567-e89b-12d3-a456-426614174000");
            r.put("micros", 86_399_999_999L);
            r.put("badDecimal", ByteBuffer.wrap(bytes(0x7f, 0xff, 0x00)));
            r.put("hugeDecimal", new GenericData.Fixed(small, bytes(0x80)));
            r.put("uuidFixed", new GenericData.Fixed(uuid16, bytes(0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3,
                    0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00)));
        });
        cases.record("uuid that is not a UUID", r -> r.put("uuid", "not a uuid \u00e9"));
        Schema etat = branch(fieldSchema(s, "etat"), "org.kaaproject.kaa.it.corners.names.\u00c9tat");
        cases.record("enum of a non-ASCII name in the namespace, and referenced from one with a dash", r -> {
            r.put("etat", new GenericData.EnumSymbol(etat, "ALLUM\u00c9"));
            GenericRecord piece = new GenericData.Record(fieldSchema(s, "piece"));
            piece.put("\u00e9tat", new GenericData.EnumSymbol(etat, "ALLUM\u00c9"));
            r.put("piece", piece);
        });
        Schema many = fieldSchema(s, "many");
        for (String symbol : new String[] {"S63", "S64", "S69"}) {
            cases.record("enum symbol " + symbol + " of 70",
                    r -> r.put("many", new GenericData.EnumSymbol(many, symbol)));
        }
        deliverAndCompare(cases);
    }

    /**
     * A type declared with {@code "namespace": ""} has no namespace in Avro 1.7.5, so it may share its simple name
     * with a type of the enclosing namespace ("Point" and "org...shadow.Point" are different full names).
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void typeWithoutNamespaceMayShareItsSimpleNameWithOneInTheEnclosingNamespace() {
        Cases cases = new Cases("corners-null-namespace.avsc", "null-namespace");
        Schema choice = fieldSchema(cases.schema, "choice");
        GenericRecord local = new GenericData.Record(branch(choice, "org.kaaproject.kaa.it.corners.shadow.Point"));
        local.put("local", 1);
        GenericRecord bare = new GenericData.Record(branch(choice, "Point"));
        bare.put("bare", 2);
        cases.record("Point of the enclosing namespace", r -> r.put("choice", local));
        cases.record("Point without namespace", r -> r.put("choice", bare));
        cases.record("null", r -> r.put("choice", null));
        deliverAndCompare(cases);
    }

    // ------------------------------------------------------------------------------------------------ maps

    /** Java's String.hashCode (equal to Avro 1.7.5's Utf8.hashCode for ASCII). */
    private static int spread(String key) {
        int h = key.hashCode();
        return h ^ (h >>> 16);
    }

    /** n ASCII keys "prefix<i>" whose spread hashes agree in the low {@code bits} bits (one bucket of 2^bits). */
    private static List<String> sameBucket(String prefix, int n, int bits) {
        List<String> out = new ArrayList<>();
        int mask = (1 << bits) - 1;
        Integer target = null;
        for (int i = 0; out.size() < n; i++) {
            String k = prefix + i;
            int b = spread(k) & mask;
            if (target == null) {
                target = b;
            }
            if (b == target) {
                out.add(k);
            }
        }
        return out;
    }

    /** n keys of {@code pairs} pairs "Aa"/"BB" (all with one String/Utf8 hash). */
    private static List<String> oneHash(int pairs, int n) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            StringBuilder sb = new StringBuilder();
            for (int b = pairs - 1; b >= 0; b--) {
                sb.append((i >> b & 1) == 0 ? "Aa" : "BB");
            }
            out.add(sb.toString());
        }
        return out;
    }

    /** The values map "key -> index" in insertion order. */
    private static Map<String, Integer> indexed(List<String> keys) {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (String k : keys) {
            m.put(k, m.size());
        }
        return m;
    }

    private static final String[] KEY_KINDS = {"utf8Keys", "stringKeys", "charSequenceKeys"};

    /**
     * Maps in the order of the java.util.HashMap Avro 1.7.5 reads them into: sizes around every resize threshold,
     * everyday key names, random keys, non-ASCII and escaped keys (where Utf8 keys, hashed over signed UTF-8 bytes,
     * and String keys, over UTF-16 units, differ), keys with one hash, keys sharing a bucket (chains, and the resize
     * Java does instead of making a tree bin while the table is small), nested maps and bytes values.
     */
    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void mapsInJavaHashMapOrder() {
        Cases cases = new Cases("corners-maps.avsc", "maps");
        List<Map<String, Integer>> maps = new ArrayList<>();
        List<String> names = new ArrayList<>();
        // Java 8 HashMap(n) has tableSizeFor(n) buckets and doubles past 3/4 full: sizes on both sides of each step.
        for (int n : new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 23, 24, 25, 47, 48, 49, 64, 65, 96,
            97, 100, 193, 1000}) {
            List<String> keys = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                keys.add("k" + i);
            }
            names.add(n + " keys k0..k" + (n - 1));
            maps.add(indexed(keys));
        }
        String[] everyday = {"temperature", "humidity", "pressure", "co2", "voltage", "current", "rssi", "snr",
            "battery", "uptime", "firmware", "lat", "lon", "alt", "speed", "heading", "errors", "resets", "door",
            "motion", "lux", "noise", "pm25", "pm10"};
        for (int n : new int[] {3, 8, 13, 24}) {
            names.add(n + " everyday sensor names");
            maps.add(indexed(Arrays.asList(everyday).subList(0, n)));
        }
        names.add("non-ASCII and escaped keys");
        maps.add(indexed(List.of("\u00e9", "\u00fc", "caf\u00e9", "\u65e5\u672c", "\ud83d\ude00", "\u2028",
                "\u043a\u043b\u044e\u0447", "\u03ba\u03bb\u03b5\u03b9\u03b4\u03af", "a\"b", "back\\slash", "tab\t",
                "nul\u0000", "\u001f", "\u007f", "\u0080", "/", "", " ", "\ufeff", "\uffff", "\udbff\udfff")));
        names.add("8 keys with one hash (Aa/BB combinations)");
        maps.add(indexed(oneHash(3, 8)));
        names.add("10 keys with one hash (Java resizes twice instead of treeifying)");
        maps.add(indexed(oneHash(4, 10)));
        names.add("one hash collision among others");
        maps.add(indexed(List.of("x", "Aa", "y", "BB", "z", "AaAa", "BBBB", "w")));
        names.add("5 keys in one bucket");
        maps.add(indexed(sameBucket("c", 5, 4)));
        names.add("8 keys in one bucket and 5 others");
        List<String> eightPlus = new ArrayList<>(sameBucket("d", 8, 6));
        eightPlus.addAll(List.of("o1", "o2", "o3", "o4", "o5"));
        maps.add(indexed(eightPlus));
        names.add("9 keys in one bucket of a 16-bucket table (Java resizes instead of treeifying)");
        maps.add(indexed(sameBucket("e", 9, 6)));
        names.add("10 keys in one bucket (two such resizes, up to 64 buckets)");
        maps.add(indexed(sameBucket("f", 10, 7)));
        names.add("9 keys in one bucket of 16 that part at 32");
        List<String> part = new ArrayList<>();
        for (String k : sameBucket("g", 40, 4)) {
            if (part.size() < 9 && (spread(k) & 16) == (part.size() % 2) * 16) {
                part.add(k);
            }
        }
        maps.add(indexed(part));
        Random rnd = new Random(20240611);
        for (int m = 0; m < 30; m++) {
            int n = rnd.nextInt(m < 20 ? 30 : 300);
            List<String> keys = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                keys.add(randomKey(rnd));
            }
            names.add("random keys #" + m + " (" + n + ")");
            maps.add(indexed(keys));
        }
        for (int i = 0; i < maps.size(); i++) {
            Map<String, Integer> m = maps.get(i);
            for (String field : KEY_KINDS) {
                cases.record(field + ": " + names.get(i), r -> r.put(field, m));
            }
        }
        cases.record("maps of maps", r -> {
            Map<String, Map<String, String>> outer = new LinkedHashMap<>();
            for (int i = 0; i < 14; i++) {
                Map<String, String> inner = new LinkedHashMap<>();
                for (int j = 0; j <= i; j++) {
                    inner.put("in" + (i * 7 + j), j % 3 == 0 ? null : "v" + j);
                }
                outer.put("out" + i, inner);
            }
            r.put("nested", outer);
        });
        cases.record("bytes values", r -> {
            Map<String, ByteBuffer> blobs = new LinkedHashMap<>();
            for (int i = 0; i < 20; i++) {
                byte[] b = new byte[i];
                for (int j = 0; j < i; j++) {
                    b[j] = (byte) (0x70 + i * 7 + j);
                }
                blobs.put("blob" + i, ByteBuffer.wrap(b));
            }
            r.put("blobs", blobs);
        });
        deliverAndCompare(cases);
    }

    private static String randomKey(Random rnd) {
        String[] alphabet = {"a", "b", "z", "A", "Q", "0", "9", "_", "-", ".", " ", "\u00e9", "\u00df", "\u4e2d",
            "\ud83d\ude80", "\""};
        StringBuilder sb = new StringBuilder();
        int len = 1 + rnd.nextInt(12);
        for (int i = 0; i < len; i++) {
            sb.append(rnd.nextInt(4) == 0 ? alphabet[rnd.nextInt(alphabet.length)] : (char) ('a' + rnd.nextInt(26)));
        }
        return sb.toString();
    }

    /** One Maps record, hand-encoded: {@code field} written in the given blocks, every other map empty. */
    private static byte[] mapsRecord(String id, String field, List<Map.Entry<byte[], Integer>> entries, int[] blocks) {
        AvroBinary b = AvroBinary.start().writeString(id);
        for (String f : KEY_KINDS) {
            if (f.equals(field)) {
                b.writeMapBlocks(entries, blocks, AvroBinary::writeInt);
            } else {
                b.writeEmptyBlocks();
            }
        }
        return b.writeEmptyBlocks().writeEmptyBlocks().bytes();
    }

    private static List<Map.Entry<byte[], Integer>> entries(List<String> keys) {
        List<Map.Entry<byte[], Integer>> out = new ArrayList<>();
        for (String k : keys) {
            out.add(new AbstractMap.SimpleEntry<>(k.getBytes(StandardCharsets.UTF_8), out.size()));
        }
        return out;
    }

    private static Map.Entry<byte[], Integer> entry(byte[] key, int value) {
        return new AbstractMap.SimpleEntry<>(key, value);
    }

    /**
     * Maps in several blocks (hand-encoded; Avro 1.7.5's writer always writes one): Avro 1.7.5 sizes its HashMap by
     * the FIRST block's count, so the same entries come out in a different order depending on how they were
     * blocked. Also the negative-count block form, and repeated keys within and across blocks (the last value
     * wins, at the place of the first), including malformed UTF-8 keys that are one key as String (both decode to
     * U+FFFD) and two as Utf8.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void mapsInSeveralBlocksAndRepeatedKeys() {
        Cases cases = new Cases("corners-maps.avsc", "map-blocks");
        List<String> keys = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            keys.add("key-" + i);
        }
        int[][] blockings = {{40}, {1, 39}, {39, 1}, {2, 38}, {10, 10, 10, 10}, {17, 23}, {-5, -35}, {-40},
            {3, -7, 30}, ones(40)};
        for (String field : KEY_KINDS) {
            for (int[] blocks : blockings) {
                cases.binary(field + ": 40 keys in blocks " + Arrays.toString(blocks).replace(" ", ""),
                        mapsRecord(cases.nextId(), field, entries(keys), blocks));
            }
            List<String> dup = List.of("a", "b", "a", "c", "b", "a");
            cases.binary(field + ": repeated keys in one block",
                    mapsRecord(cases.nextId(), field, entries(dup), new int[] {6}));
            cases.binary(field + ": repeated keys across blocks",
                    mapsRecord(cases.nextId(), field, entries(dup), new int[] {2, 1, 3}));
            List<String> manyDup = new ArrayList<>();
            for (int i = 0; i < 60; i++) {
                manyDup.add("r" + (i * 7 % 23));
            }
            cases.binary(field + ": 60 puts of 23 keys in blocks of 1",
                    mapsRecord(cases.nextId(), field, entries(manyDup), ones(60)));
            List<Map.Entry<byte[], Integer>> malformed = List.of(entry(bytes(0xff), 1), entry(bytes('k'), 2),
                    entry(bytes(0xfe), 3), entry(bytes(0xc3), 4), entry(bytes(0xef, 0xbf, 0xbd), 5),
                    entry(bytes(0xed, 0xa0, 0x80), 6), entry(bytes('a', 0xc3, 'b'), 7));
            cases.binary(field + ": malformed UTF-8 keys (U+FFFD when decoded)",
                    mapsRecord(cases.nextId(), field, malformed, new int[] {7}));
        }
        AvroBinary nested = AvroBinary.start().writeString(cases.nextId()).writeEmptyBlocks().writeEmptyBlocks()
                .writeEmptyBlocks();
        List<Map.Entry<byte[], List<Map.Entry<byte[], String>>>> outer = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            List<Map.Entry<byte[], String>> inner = new ArrayList<>();
            for (int j = 0; j < 12; j++) {
                inner.add(new AbstractMap.SimpleEntry<>(("n" + (i * 12 + j)).getBytes(StandardCharsets.UTF_8),
                        j % 4 == 0 ? null : "v" + j));
            }
            outer.add(new AbstractMap.SimpleEntry<>(("o" + i).getBytes(StandardCharsets.UTF_8), inner));
        }
        nested.writeMapBlocks(outer, new int[] {1, -4, 7}, (b, inner) -> b.writeMapBlocks(inner,
                new int[] {1, 2, -3, 6}, (bb, v) -> {
                    if (v == null) {
                        bb.writeInt(0);
                    } else {
                        bb.writeInt(1).writeString(v);
                    }
                }));
        cases.binary("maps of maps, both in several blocks", nested.writeEmptyBlocks().bytes());
        deliverAndCompare(cases);
    }

    private static int[] ones(int n) {
        int[] a = new int[n];
        Arrays.fill(a, 1);
        return a;
    }

    /**
     * Java 8's HashMap turns a bucket of nine or more keys into a red-black tree once the table has 64 buckets; a
     * tree bin iterates its root first, so its order is no longer insertion order, and the appender does not
     * emulate it (src/decode.rs, finish_map). It takes nine keys whose hashes agree in their low six bits, which
     * only crafted keys do in practice. The payload then holds exactly the same entries as Avro 1.7.5's, with the
     * same text, possibly in another order: this test pins that, and says whether the order matched.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void mapsWithATreeBinHaveTheSameEntriesAsAvro175() throws IOException {
        Cases cases = new Cases("corners-maps.avsc", "tree-bins");
        List<String> eleven = sameBucket("t", 11, 7);
        List<String> bigWithNine = new ArrayList<>(sameBucket("u", 9, 8));
        for (int i = 0; bigWithNine.size() < 60; i++) {
            bigWithNine.add("other" + i);
        }
        List<List<String>> maps = List.of(eleven, bigWithNine, sameBucket("v", 30, 8), oneHash(4, 16));
        List<String> labels = List.of("11 keys in one bucket (tree bin at 64 buckets)",
                "60 keys, 9 of them in one bucket of 64", "30 keys in one bucket", "16 keys with one hash");
        for (int i = 0; i < maps.size(); i++) {
            Map<String, Integer> m = indexed(maps.get(i));
            cases.record(labels.get(i), r -> r.put("utf8Keys", m));
            cases.record(labels.get(i) + " (String keys)", r -> r.put("stringKeys", m));
        }
        String topic = "kaa/it/corners/tree-bins/" + UUID.randomUUID().toString().substring(0, 8);
        List<byte[]> bins = new ArrayList<>();
        for (Case c : cases.list) {
            bins.add(c.binary);
        }
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            LogAppender appender = BROKER.load("tree-bins", KaaNode.brokerConfig(BROKER.port(), topic, 1));
            RecordingCallback cb = new RecordingCallback("tree-bin maps");
            appender.doAppend(KaaNode.pack(cases.schemaText, 1, bins), cb);
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(30), GRACE);
            sub.awaitCount(bins.size(), Duration.ofSeconds(20));
            RecordingCallback.sleep(GRACE); // time for an extra message to show
            assertEquals(bins.size(), sub.payloads().size(), "one message per record, no more");
            Map<String, byte[]> byId = new HashMap<>();
            for (byte[] p : sub.payloads()) {
                byId.put(Payloads.idOf(p), p);
            }
            ObjectMapper json = new ObjectMapper();
            for (Case c : cases.list) {
                byte[] got = byId.get(Payloads.idOf(c.expected));
                if (got == null) {
                    fail(c.name + ": not received");
                }
                JsonNode e = json.readTree(new String(c.expected, StandardCharsets.UTF_8));
                JsonNode g = json.readTree(new String(got, StandardCharsets.UTF_8));
                assertEquals(e, g, c.name + ": the same record (entries compared as a set)");
                assertEquals(c.expected.length, got.length, c.name + ": the same text, byte count");
                System.out.printf("tree bin case [%s]: order %s Avro 1.7.5's%n", c.name,
                        Arrays.equals(c.expected, got) ? "matches" : "differs from");
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ arrays

    /** Arrays empty, single, large, of unions and of nested maps, and arrays in several blocks (hand-encoded). */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void arraysEmptyLargeAndInSeveralBlocks() {
        Cases cases = new Cases("corners-arrays.avsc", "arrays");
        Schema s = cases.schema;
        Schema p = fieldSchema(s, "unions").getElementType().getTypes().get(3);
        cases.record("all empty", r -> { });
        cases.record("one of each", r -> {
            r.put("ints", List.of(-1));
            r.put("strings", List.of(""));
            GenericRecord pr = new GenericData.Record(p);
            pr.put("x", 3);
            r.put("unions", List.of(pr));
            r.put("nested", List.of(List.of(Map.of())));
            r.put("nulls", Arrays.asList((Object) null));
        });
        cases.record("1000 ints, 300 strings", r -> {
            List<Integer> ints = new ArrayList<>();
            List<String> strings = new ArrayList<>();
            for (int i = 0; i < 1000; i++) {
                ints.add(i * 2_147_483 - 1_000_000_000);
                if (i < 300) {
                    strings.add("s" + i);
                }
            }
            r.put("ints", ints);
            r.put("strings", strings);
        });
        cases.record("every union branch", r -> {
            GenericRecord pr = new GenericData.Record(p);
            pr.put("x", 3);
            r.put("unions", Arrays.asList(null, 5L, "five", pr, null, Long.MIN_VALUE));
        });
        cases.record("nested arrays with empty ones and maps", r -> r.put("nested", List.of(List.of(), List.of(Map.of(
                "t", true)), List.of(Map.of(), new LinkedHashMap<>(Map.of("a", false, "b", true, "c", true))))));
        List<Integer> ints = new ArrayList<>();
        for (int i = 0; i < 25; i++) {
            ints.add(i * i * (i % 2 == 0 ? 1 : -1));
        }
        int[][] blockings = {{25}, {1, 24}, {24, 1}, {5, 5, 5, 5, 5}, {-10, -15}, {-25}, {3, -4, 18}, ones(25)};
        for (int[] blocks : blockings) {
            cases.binary("25 ints in blocks " + Arrays.toString(blocks).replace(" ", ""), AvroBinary.start()
                    .writeString(cases.nextId())
                    .writeArrayBlocks(ints, blocks, AvroBinary::writeInt)
                    .writeEmptyBlocks().writeEmptyBlocks().writeEmptyBlocks().writeEmptyBlocks().bytes());
        }
        List<String> strs = List.of("a", "\u00e9", "\ud83d\ude00", "", "\"q\"");
        cases.binary("strings and unions in blocks, nested arrays in blocks inside blocks", AvroBinary.start()
                .writeString(cases.nextId())
                .writeEmptyBlocks()
                .writeArrayBlocks(strs, new int[] {2, -3}, AvroBinary::writeString)
                .writeArrayBlocks(List.of(0, 1, 2, 0, 1), new int[] {1, 1, -2, 1}, (b, branch) -> {
                    b.writeInt(branch);
                    if (branch == 1) {
                        b.writeLong(-77);
                    } else if (branch == 2) {
                        b.writeString("u");
                    }
                })
                .writeArrayBlocks(List.of(3, 0, 2), new int[] {1, -2}, (b, n) -> {
                    List<Integer> inner = new ArrayList<>();
                    for (int i = 0; i < n; i++) {
                        inner.add(i);
                    }
                    b.writeArrayBlocks(inner, n == 0 ? new int[0] : n == 3 ? new int[] {-1, 2} : new int[] {1, 1},
                            (bb, k) -> bb.writeMapBlocks(List.of(entry(("m" + k).getBytes(StandardCharsets.UTF_8),
                                    k % 2)), new int[] {1}, (bbb, v) -> bbb.writeBoolean(v == 1)));
                })
                .writeArrayBlocks(Arrays.asList(null, null, null), new int[] {1, -2}, (b, v) -> { })
                .bytes());
        cases.binary("5000 nulls in one block (3 bytes of input)", AvroBinary.start().writeString(cases.nextId())
                .writeEmptyBlocks().writeEmptyBlocks().writeEmptyBlocks().writeEmptyBlocks()
                .writeArrayBlocks(Collections.nCopies(5000, (Object) null), new int[] {5000}, (b, v) -> { })
                .bytes());
        deliverAndCompare(cases);
    }

    // ------------------------------------------------------------------------------------------------ numbers

    /**
     * Numbers the edge test leaves out: varint boundaries of int and long, over-long varints (valid for Avro
     * 1.7.5's reader), NaN with other bit patterns (sign, payload, signalling), the subnormal range ends, and the
     * values where Java switches to and from scientific notation; also inside a union.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void numbersAtTheirBoundaries() {
        Cases cases = new Cases("corners-numbers.avsc", "numbers");
        int[] ints = {63, 64, -64, -65, 8191, 8192, -8192, -8193, (1 << 20) - 1, 1 << 20, -(1 << 20) - 1, (1 << 27) - 1,
            1 << 27, -(1 << 27) - 1, Integer.MAX_VALUE - 1, Integer.MIN_VALUE + 1};
        for (int v : ints) {
            cases.record("int " + v, r -> {
                r.put("i", v);
                r.put("u", v);
            });
        }
        long[] longs = {1L << 31, -(1L << 31) - 1, 1L << 32, (1L << 35) - 1, 1L << 42, 1L << 49, (1L << 53) + 1,
            -(1L << 53) + 1, 1L << 56, (1L << 62) - 1, 1L << 62, -(1L << 62) - 1, Long.MAX_VALUE - 1,
            Long.MIN_VALUE + 1, 1_000_000_000_000_000_000L};
        for (long v : longs) {
            cases.record("long " + v, r -> {
                r.put("l", v);
                r.put("u", v);
            });
        }
        // Over-long varints: Avro 1.7.5 reads up to 5 bytes for an int and 10 for a long, whatever the value.
        cases.binary("int 0 and long 0 as over-long varints", AvroBinary.start().writeString(cases.nextId())
                .raw(0x80, 0x80, 0x80, 0x80, 0x00).raw(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00)
                .writeFloatBits(0).writeDoubleBits(0).raw(0x82, 0x00).raw(0x81, 0x00).bytes());
        cases.binary("int -1 in 5 bytes, long 1 in 10 bytes", AvroBinary.start().writeString(cases.nextId())
                .raw(0x81, 0x80, 0x80, 0x80, 0x00).raw(0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00)
                .writeFloatBits(0).writeDoubleBits(0).writeInt(0).bytes());
        int[] nanFloats = {0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0xffffffff, 0x7fc00001};
        for (int bits : nanFloats) {
            cases.binary(String.format("float NaN 0x%08x, also in the union", bits), AvroBinary.start()
                    .writeString(cases.nextId()).writeInt(0).writeLong(0).writeFloatBits(bits).writeDoubleBits(0)
                    .writeInt(3).writeFloatBits(bits).bytes());
        }
        long[] nanDoubles = {0x7ff8000000000000L, 0xfff8000000000000L, 0x7ff0000000000001L, 0xfff0000000000001L,
            0x7fffffffffffffffL, 0xffffffffffffffffL};
        for (long bits : nanDoubles) {
            cases.binary(String.format("double NaN 0x%016x, also in the union", bits), AvroBinary.start()
                    .writeString(cases.nextId()).writeInt(0).writeLong(0).writeFloatBits(0).writeDoubleBits(bits)
                    .writeInt(4).writeDoubleBits(bits).bytes());
        }
        cases.record("float -Infinity in the union", r -> r.put("u", Float.NEGATIVE_INFINITY));
        cases.record("double +Infinity in the union", r -> r.put("u", Double.POSITIVE_INFINITY));
        cases.record("float -0.0 in the union", r -> r.put("u", -0.0f));
        cases.record("double -0.0 in the union", r -> r.put("u", -0.0d));
        if (AvroReference.jvmFormatsNumbersLikeJava8()) {
            float[] floats = {-Float.MIN_VALUE, Float.intBitsToFloat(0x007fffff), -Float.MIN_NORMAL,
                Math.nextDown(Float.MIN_NORMAL), 1e-3f, Math.nextDown(1e-3f), 1e7f, Math.nextDown(1e7f), 9999999f,
                -Float.MAX_VALUE, 1e21f, 3.0e-44f, 0.3f, 2f / 3f, 16777216f, 8388608.5f, 1.17549435E-38f};
            for (float v : floats) {
                cases.record("float " + v + " (0x" + Integer.toHexString(Float.floatToRawIntBits(v)) + ")", r -> {
                    r.put("f", v);
                    r.put("u", v);
                });
            }
            double[] doubles = {-Double.MIN_VALUE, Double.longBitsToDouble(0x000fffffffffffffL),
                Math.nextDown(Double.MIN_NORMAL), -Double.MIN_NORMAL, 1e-3, Math.nextDown(1e-3), 1e7,
                Math.nextDown(1e7), 1e22, 1e-7, 9.223372036854776E18, -Double.MAX_VALUE, 4.9e-324 * 3, 2.0 / 3.0,
                5e-324, 1.7976931348623157E308, 123456789012345680.0, 0.30000000000000004, 1e16, 1e15 + 0.3};
            for (double v : doubles) {
                cases.record("double " + v + " (0x" + Long.toHexString(Double.doubleToRawLongBits(v)) + ")", r -> {
                    r.put("d", v);
                    r.put("u", v);
                });
            }
        } else {
            System.err.println("numbers: float/double formatting cases left out" + AvroReference.NUMBER_FORMAT_NOTE);
        }
        deliverAndCompare(cases);
    }

    /**
     * Boolean bytes other than 0 and 1, which the Kaa C SDK sends as a C program set them (a GPIO bit, -1): Avro
     * 1.7.5 reads every byte but 1 as false, and the original appender published that, in a field, a union and an
     * array alike. (They failed the pack before, so Kaa sent it again and again, and such devices' records never
     * reached the broker.)
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void booleanBytesOtherThanZeroAndOneAreReadAsAvro175ReadsThem() {
        Cases cases = new Cases("corners-booleans.avsc", "booleans");
        for (int b : new int[] {0, 1, 2, 8, 0x7f, 0x80, 0xff}) {
            cases.binary(String.format("boolean byte 0x%02x", b), AvroBinary.start().writeString(cases.nextId())
                    .raw(b).writeInt(1).raw(b).writeInt(1).raw(b).writeInt(0).bytes());
        }
        deliverAndCompare(cases);
    }

    // ------------------------------------------------------------------------------------------------ text

    /**
     * Strings, bytes and fixed: every ISO-8859-1 code point from bytes and fixed (in records, unions, arrays and
     * map values), text with C1 controls, noncharacters, the last code point, combining and bidi marks, large
     * values, and malformed UTF-8 of every kind (lone continuation bytes, over-long forms, encoded surrogates, code
     * points past U+10FFFF, sequences cut short mid-string and at the end), both as Utf8 and as String
     * ({@code avro.java.string}).
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void textBytesAndFixed() {
        Cases cases = new Cases("corners-text.avsc", "text");
        Schema s = cases.schema;
        Schema f1 = fieldSchema(s, "f1");
        Schema f16 = fieldSchema(s, "f16");
        for (int chunk = 0; chunk < 16; chunk++) {
            byte[] b = new byte[16];
            for (int i = 0; i < 16; i++) {
                b[i] = (byte) (chunk * 16 + i);
            }
            int c = chunk;
            cases.record(String.format("fixed(16), bytes, union and array of bytes 0x%02x..0x%02x", c * 16,
                    c * 16 + 15), r -> {
                        r.put("f16", new GenericData.Fixed(f16, b));
                        r.put("raw", ByteBuffer.wrap(b));
                        r.put("maybeRaw", c % 2 == 0 ? ByteBuffer.wrap(b) : new GenericData.Fixed(f16, b));
                        r.put("rawList", List.of(ByteBuffer.wrap(b), ByteBuffer.wrap(new byte[0])));
                        r.put("rawByKey", Map.of("k" + c, ByteBuffer.wrap(b)));
                    });
        }
        for (int v : new int[] {0x00, 0x22, 0x5c, 0x7f, 0x80, 0xa0, 0xe9, 0xff}) {
            cases.record(String.format("fixed(1) 0x%02x", v), r -> r.put("f1", new GenericData.Fixed(f1, bytes(v))));
        }
        cases.record("ISO-8859-1 text as bytes", r -> r.put("raw", ByteBuffer.wrap(
                "Gr\u00fc\u00dfe aus K\u00f6ln, \u00a9 \u00bd \u00ff\u0000end".getBytes(StandardCharsets.ISO_8859_1))));
        byte[] big = new byte[200_000];
        new Random(7).nextBytes(big);
        cases.record("200 000 random bytes", r -> r.put("raw", ByteBuffer.wrap(big)));
        StringBuilder ascii = new StringBuilder();
        for (char ch = 0; ch < 0x80; ch++) {
            ascii.append(ch);
        }
        StringBuilder large = new StringBuilder();
        while (large.length() < 300_000) {
            large.append("line ").append(large.length()).append(" \u00e9\u65e5\ud83d\ude00\t\"\\\n");
        }
        String[] texts = {ascii.toString(), "C1 \u0080\u0081\u0085\u009f\u00a0 end", "nonchars \ufffe\uffff \ufdd0",
            "last \udbff\udfff and first astral \ud800\udc00", "combining e\u0301 a\u0308 \u0915\u094d\u0937",
            "bidi \u200e\u200f\u202a\u202e\u2066\u2069 zwj \ud83d\udc69\u200d\ud83d\udcbb \ufeff",
            "separators \u2028\u2029\u0085", "apostrophe ' < > & = %", large.toString()};
        for (int i = 0; i < texts.length; i++) {
            String t = texts[i];
            cases.record("text " + i + " (" + t.length() + " chars) as Utf8 and String", r -> {
                r.put("s", t);
                r.put("javaString", t);
            });
        }
        byte[][] malformed = {bytes(0x80), bytes('a', 0xbf, 'b'), bytes(0xc0, 0x80), bytes(0xc1, 0xbf),
            bytes(0xe0, 0x80, 0x80), bytes(0xe0, 0x9f, 0xbf), bytes(0xf0, 0x80, 0x80, 0x80),
            bytes(0xf0, 0x8f, 0xbf, 0xbf),
            bytes(0xed, 0xa0, 0x80), bytes(0xed, 0xbf, 0xbf), bytes(0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80),
            bytes(0xf4, 0x90, 0x80, 0x80), bytes(0xf5, 0x80, 0x80, 0x80), bytes(0xf8, 0x88, 0x80, 0x80, 0x80),
            bytes(0xfc, 0x84, 0x80, 0x80, 0x80, 0x80), bytes(0xfe), bytes(0xff, 0xfe), bytes('x', 0xc3),
            bytes('x', 0xe2, 0x82), bytes('x', 0xf0, 0x9f, 0x98), bytes(0xe2, 0x82, 'x'), bytes(0xf0, 0x9f, 'x', 0x98),
            bytes(0xc3, 0xc3, 0xa9), bytes(0xe2, 0x28, 0xa1), bytes(0xf0, 0x28, 0x8c, 0x28),
            bytes(0xe0, 0xa0), bytes(0xf1, 0x80, 0x80), bytes(0xef, 0xbf, 0xbe, 0xc2)};
        for (byte[] m : malformed) {
            StringBuilder hex = new StringBuilder();
            for (byte x : m) {
                hex.append(String.format("%02x", x & 0xff));
            }
            // Utf8 field "s" and String field "javaString" hold the same malformed bytes.
            cases.binary("malformed UTF-8 " + hex + " as Utf8 and String", AvroBinary.start()
                    .writeString(cases.nextId()).writeBytes(m).writeBytes(m).writeBytes(new byte[0]).raw(0)
                    .raw(new byte[16]).writeInt(0).writeEmptyBlocks().writeEmptyBlocks().bytes());
        }
        cases.record("malformed UTF-8 as Utf8 through GenericRecord", r -> r.put("s", new Utf8(bytes('<', 0xc3, 0x28,
                '>'))));
        deliverAndCompare(cases);
    }

    // ------------------------------------------------------------------------------------------------ limits

    /**
     * A log schema with non-ASCII names and namespaces that are no Avro names: Avro 1.7.5 accepts any Java letter in
     * a name and checks no namespace, the Avro specification and apache-avro only ASCII letters, digits and
     * underscores. Kaa published {@code {"température":...}}, and so does the appender, in fields, enum symbols and
     * union labels. (Such a schema was refused before: every pack failed.)
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void nonAsciiNamesAndNamespacesOfOtherCharactersAreWrittenAsAvro175WritesThem() {
        Cases cases = new Cases("corners-non-ascii-names.avsc", "non-ascii-names");
        Schema state = fieldSchema(cases.schema, "\u00e9tat");
        Schema room = branch(fieldSchema(cases.schema, "pi\u00e8ce"), "com.3m.v1-0.Pi\u00e8ce");
        cases.record("non-ASCII field names and enum symbols", r -> {
            r.put("temp\u00e9rature", 21.5);
            r.put("\u00e9tat", new GenericData.EnumSymbol(state, "ALLUM\u00c9"));
        });
        cases.record("a record of a namespace with a dash and a digit, in a union", r -> {
            GenericRecord p = new GenericData.Record(room);
            p.put("nom", "cuisine");
            r.put("\u00e9tat", new GenericData.EnumSymbol(state, "\u00c9TEINT"));
            r.put("pi\u00e8ce", p);
        });
        cases.record("an enum of a non-ASCII name in a union", r -> {
            r.put("\u00e9tat", new GenericData.EnumSymbol(state, "\u00c9TEINT"));
            r.put("pi\u00e8ce", new GenericData.EnumSymbol(state, "ALLUM\u00c9"));
        });
        String kaaText = new String(cases.list.get(0).expected, StandardCharsets.UTF_8);
        assertTrue(kaaText.contains("\"temp\u00e9rature\":21.5,\"\u00e9tat\":\"ALLUM\u00c9\""), kaaText);
        deliverAndCompare(cases);
    }

    /**
     * Nesting depth: a linked list of 63 cells (127 levels) is published exactly (see nestedAndRecursiveRecords);
     * one of 200 cells (401 levels), which Avro 1.7.5 still writes (its recursion ends in a StackOverflowError only
     * some thousand levels down), is refused by the appender's nesting limit (128 levels) with onInternalError,
     * once, and nothing is published.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void nestingBeyondTheLimitIsRefusedNotTruncated() {
        Cases cases = new Cases("corners-nested.avsc", "too-deep");
        Schema cell = fieldSchema(cases.schema, "list").getTypes().get(1);
        cases.record("linked list of 200 cells", r -> {
            GenericRecord next = null;
            for (int k = 0; k < 200; k++) {
                GenericRecord c = new GenericData.Record(cell);
                c.put("value", (long) k);
                c.put("next", next);
                next = c;
            }
            r.put("list", next);
        });
        assertRefused(cases);
    }

    /**
     * Bytes left after the record: Avro 1.7.5 reads the record and ignores them (Kaa would publish it); the
     * appender takes them as a sign that the record is not in the pack's log schema and refuses the pack
     * (onInternalError, once, nothing published) rather than publish what may be garbage.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void bytesAfterTheRecordAreRefused() {
        Cases cases = new Cases("corners-numbers.avsc", "trailing");
        cases.record("a valid record", r -> r.put("i", 5));
        byte[] valid = cases.list.get(0).binary;
        byte[] trailing = Arrays.copyOf(valid, valid.length + 2);
        assertEquals(new String(AvroReference.kaaJson(cases.schema, valid), StandardCharsets.UTF_8),
                new String(AvroReference.kaaJson(cases.schema, trailing), StandardCharsets.UTF_8),
                "Avro 1.7.5 ignores the two extra bytes");
        cases.list.set(0, new Case("the record and two more bytes", trailing, cases.list.get(0).expected));
        assertRefused(cases);
    }

    /**
     * A map whose schema names an unknown key class in avro.java.string: Avro 1.7.5 throws on the first key it
     * reads, so Kaa never published such a record; the appender answers onInternalError too. The same map empty
     * has no key to read: both publish it.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void mapKeysOfAnUnknownJavaStringTypeFailAsInAvro175() {
        Cases empty = new Cases("corners-bad-string-type.avsc", "bad-string-type-empty");
        empty.record("empty map", r -> { });
        deliverAndCompare(empty);
        Cases filled = new Cases("corners-bad-string-type.avsc", "bad-string-type");
        GenericRecord r = (GenericRecord) zero(filled.schema);
        r.put("id", "bad-string-type-0");
        r.put("m", Map.of("k", 1));
        byte[] bin = AvroReference.binary(filled.schema, r);
        assertTrue(AvroReference.undecodable(filled.schema, bin), "Avro 1.7.5 cannot read it");
        filled.list.add(new Case("map with one key", bin, new byte[0]));
        assertRefused(filled);
    }

    /**
     * Items that take no input bytes (null, fixed of size 0, records made only of such) can expand a few bytes of
     * input into megabytes of text; the appender bounds that output per record (src/decode.rs, ZERO_WIDTH_BUDGET,
     * 2^20 item units) and refuses beyond it, where Avro 1.7.5 would write it all. 5000 nulls are published
     * exactly (arraysEmptyLargeAndInSeveralBlocks); four million, from 6 bytes of input, are refused.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void millionsOfZeroByteItemsAreRefused() {
        Cases cases = new Cases("corners-arrays.avsc", "zero-width");
        byte[] bin = AvroBinary.start().writeString("zero-width-0").writeEmptyBlocks().writeEmptyBlocks()
                .writeEmptyBlocks().writeEmptyBlocks().writeLong(4_000_000).writeEmptyBlocks().bytes();
        assertFalse(AvroReference.undecodable(cases.schema, bin), "Avro 1.7.5 reads it");
        cases.list.add(new Case("four million nulls", bin, new byte[0]));
        assertRefused(cases);
    }

    private void assertRefused(Cases cases) {
        String topic = "kaa/it/corners/" + cases.prefix + "/" + UUID.randomUUID().toString().substring(0, 8);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            LogAppender appender = BROKER.load(cases.prefix, KaaNode.brokerConfig(BROKER.port(), topic, 1));
            List<byte[]> bins = new ArrayList<>();
            for (Case c : cases.list) {
                bins.add(c.binary);
            }
            RecordingCallback cb = new RecordingCallback(cases.prefix);
            appender.doAppend(KaaNode.pack(cases.schemaText, 1, bins), cb);
            cb.assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(20), GRACE);
            // A pack after it, on the same connection: its record arrives after anything published before it, so
            // the subscriber holding it alone shows that nothing of the refused pack was published.
            Cases after = new Cases("corners-numbers.avsc", cases.prefix + "-after");
            after.record("a valid record after the refused pack", r -> r.put("i", 1));
            RecordingCallback next = new RecordingCallback(after.prefix);
            appender.doAppend(KaaNode.pack(after.schemaText, 1, List.of(after.list.get(0).binary)), next);
            next.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), GRACE);
            sub.awaitCount(1, Duration.ofSeconds(10));
            Payloads.assertSameMultiset("nothing published for a refused pack, only the next pack's record",
                    List.of(after.list.get(0).expected), sub.payloads());
        }
    }
}

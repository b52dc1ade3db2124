package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.INTERNAL_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.kaaproject.kaa.common.dto.EndpointProfileDataDto;
import org.kaaproject.kaa.common.dto.logs.LogSchemaDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogEvent;
import org.kaaproject.kaa.server.common.log.shared.appender.LogSchema;
import org.kaaproject.kaa.server.common.log.shared.appender.data.BaseLogEventPack;

/**
 * Hostile and broken packs through the real JNI path: each gets exactly one answer ({@code onInternalError} for
 * what cannot be decoded), {@code doAppend} never throws, the JVM survives, and the same appender then still
 * delivers a good pack. Truncated records, hand-made malformed encodings, the empty pack and packs after close are
 * in {@code EndToEndTest}; this covers what it does not: broken pack structure (null events list, null event, null
 * data, null or unusable log schema), records written in another schema, and random bytes in bulk, judged against
 * an exact reading of the schema.
 */
class MalformedInputTest {

    private static final Duration ANSWER_WITHIN = Duration.ofSeconds(15);
    private static final Duration GRACE = Duration.ofMillis(500);

    /** Closing an appender after a hostile pack must not throw either: failingOnCloseErrors. */
    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous().failingOnCloseErrors();

    private static LogAppender load(String name, String topic) {
        return BROKER.load(name, KaaNode.brokerConfig(BROKER.port(), topic, 1));
    }

    private static String topic(String what) {
        return "kaa/it/malformed/" + what + "/" + UUID.randomUUID().toString().substring(0, 8);
    }

    private static RecordingCallback append(LogAppender a, BaseLogEventPack pack, String label) {
        return RecordingCallback.append(a, pack, label);
    }

    /** A pack like the log actor's, with the events and schema text as given (either may be null). */
    private static BaseLogEventPack rawPack(String schemaText, List<LogEvent> events) {
        EndpointProfileDataDto profile = new EndpointProfileDataDto("ep-malformed", KaaNode.ENDPOINT_KEY, 1,
                "{}", 1, "{}");
        BaseLogEventPack pack = new BaseLogEventPack(profile, System.currentTimeMillis(), 1, events);
        LogSchemaDto dto = new LogSchemaDto();
        // As in Kaa, one id names one schema text (the appender caches parsed schemas by id and version).
        dto.setId("schema-" + java.util.Objects.hashCode(schemaText));
        dto.setApplicationId(KaaNode.APPLICATION_ID);
        dto.setName("log schema v1");
        dto.setSchema(schemaText);
        dto.setVersion(1);
        pack.setLogSchema(new LogSchema(dto));
        return pack;
    }

    private static LogEvent event(byte[] data) {
        LogEvent e = new LogEvent();
        e.setLogData(data);
        return e;
    }

    private static byte[] simpleRecord(Schema schema, String id) {
        GenericRecord r = new GenericData.Record(schema);
        r.put("id", id);
        r.put("level", new GenericData.EnumSymbol(schema.getField("level").schema(), "B"));
        r.put("note", "n");
        r.put("value", 7);
        return AvroReference.binary(schema, r);
    }

    /** Waits for every pack's first answer, gives a second one time to show up, and checks there is just one. */
    private static void assertAnswers(Map<String, RecordingCallback> cbs, Map<String, String> expected) {
        for (RecordingCallback cb : cbs.values()) {
            cb.awaitFirst(ANSWER_WITHIN);
        }
        RecordingCallback.sleep(GRACE);
        List<String> problems = new ArrayList<>();
        for (Map.Entry<String, RecordingCallback> e : cbs.entrySet()) {
            List<RecordingCallback.Call> calls = e.getValue().calls();
            String want = expected.get(e.getKey());
            if (calls.size() != 1 || (want != null && !calls.get(0).method.equals(want))) {
                problems.add(e.getKey() + ": expected exactly one " + (want == null ? "answer" : want) + ", got "
                        + calls);
            }
        }
        assertTrue(problems.isEmpty(), problems.size() + " of " + cbs.size() + " packs answered wrongly:\n  "
                + String.join("\n  ", problems));
    }

    /** The appender still delivers: a good pack succeeds and its record reaches a subscriber, byte for byte. */
    private static void assertStillDelivers(LogAppender appender, String topic, String label) {
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            assertStillDelivers(appender, sub, label);
        }
    }

    /**
     * Also shows, with {@code sub} subscribed before the refused pack, that none of it was published: the good
     * pack's record goes out on the same connection after anything published before it, and must arrive alone.
     */
    private static void assertStillDelivers(LogAppender appender, Subscriber sub, String label) {
        String logSchema = TestData.schemaText("simple.avsc");
        Schema schema = AvroReference.parse(logSchema);
        byte[] good = simpleRecord(schema, "good-after-" + label);
        RecordingCallback cb = append(appender, KaaNode.pack(logSchema, 1, List.of(good)), "good pack after " + label);
        cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), GRACE);
        sub.awaitCount(1, Duration.ofSeconds(10));
        Payloads.assertSameMultiset("good pack after " + label, List.of(AvroReference.expectedPayload(schema, good)),
                sub.payloads());
    }

    /** Broken pack structure and unusable log schemas: onInternalError, once each. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void brokenPacksAreInternalErrors() {
        String logSchema = TestData.schemaText("simple.avsc");
        Schema schema = AvroReference.parse(logSchema);
        byte[] good = simpleRecord(schema, "good");
        String topic = topic("structure");
        LogAppender appender = load("broken-packs", topic);

        Map<String, BaseLogEventPack> packs = new LinkedHashMap<>();
        packs.put("events list null", rawPack(logSchema, null));
        packs.put("a null LogEvent between good ones", rawPack(logSchema, Arrays.asList(event(good), null,
                event(good))));
        packs.put("a LogEvent whose logData is null", rawPack(logSchema, Arrays.asList(event(good), event(null))));
        packs.put("only a LogEvent whose logData is null", rawPack(logSchema, Collections.singletonList(event(null))));
        BaseLogEventPack noSchema = rawPack(logSchema, List.of(event(good)));
        noSchema.setLogSchema(null);
        packs.put("log schema null", noSchema);
        packs.put("log schema text null", rawPack(null, List.of(event(good))));
        packs.put("log schema text empty", rawPack("", List.of(event(good))));
        packs.put("log schema text not JSON", rawPack("{\"type\": \"record\", \"name\": ", List.of(event(good))));
        packs.put("log schema JSON but not a schema", rawPack("{\"type\": \"no-such-type\"}", List.of(event(good))));
        packs.put("log schema naming an undefined type", rawPack("{\"type\":\"record\",\"name\":\"R\",\"fields\":"
                + "[{\"name\":\"a\",\"type\":\"org.example.Undefined\"}]}", List.of(event(good))));
        packs.put("log schema of another record (fields do not match the data)", rawPack(TestData.schemaText(
                "telemetry.avsc"), List.of(event(good))));

        // Subscribed first: a pack published in part before it was refused would show.
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Map<String, RecordingCallback> cbs = new LinkedHashMap<>();
            Map<String, String> expected = new LinkedHashMap<>();
            for (Map.Entry<String, BaseLogEventPack> e : packs.entrySet()) {
                cbs.put(e.getKey(), append(appender, e.getValue(), e.getKey()));
                expected.put(e.getKey(), INTERNAL_ERROR);
            }
            assertAnswers(cbs, expected);
            assertStillDelivers(appender, sub, "broken packs");
        }
    }

    /**
     * A pack of more records than half of maxPendingRecords (what one pack may hold) is refused before any of them is
     * copied out of Java (a hostile pack of a million tiny records cost 138 ms and 24 MB to copy, only to be
     * refused): with maxPendingRecords 6, a child node's pack of 5 whose last event has no data is refused for its
     * count, while one of 3 is read to its hole.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aPackOverMaxPendingRecordsIsRefusedBeforeItsRecordsAreRead() {
        Map<String, Object> cfg = KaaNode.brokerConfig(Mosquitto.freeLoopbackPort(), topic("count"), 1);
        cfg.put("maxPendingRecords", 6);
        try (ChildNode node = ChildNode.start("info")) {
            node.load("counted", cfg);
            node.append("counted", "holed-five", 1, 5);
            node.assertExactlyOne("holed-five", INTERNAL_ERROR, ANSWER_WITHIN, GRACE);
            node.append("counted", "holed-three", 2, 3);
            node.assertExactlyOne("holed-three", INTERNAL_ERROR, ANSWER_WITHIN, GRACE);
            List<String> warnings = node.appenderLogLines("WARN");
            assertTrue(warnings.stream().anyMatch(l -> l.contains("pack of 5 records") && l.contains(
                    "it makes 5 messages, more than a pack may hold in flight: 3, half of maxPendingRecords (6;")), "the five refused for their count:\n"
                    + node.diagnostics());
            assertTrue(warnings.stream().anyMatch(l -> l.contains("pack of 3 records") && l.contains(
                    "event 2 is null or has no data")), "the three read to the hole:\n" + node.diagnostics());
            assertFalse(warnings.stream().anyMatch(l -> l.contains("event 4")), "the five not read:\n"
                    + node.diagnostics());
        }
    }

    /**
     * Records written in one log schema, sent in a pack that names another. Avro 1.7.5 would fail on some and read
     * others with bytes left over (which Kaa's own converter ignores); either way the data is not a record of the
     * pack's schema and must not be published as one.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void recordsOfAnotherSchemaAreInternalErrors() {
        Map<String, Schema> schemas = new LinkedHashMap<>();
        Map<String, String> texts = new LinkedHashMap<>();
        for (String name : new String[] {"simple.avsc", "telemetry.avsc", "edge.avsc"}) {
            texts.put(name, TestData.schemaText(name));
            schemas.put(name, AvroReference.parse(texts.get(name)));
        }
        Map<String, List<byte[]>> written = new LinkedHashMap<>();
        written.put("simple.avsc", List.of(simpleRecord(schemas.get("simple.avsc"), "written-as-simple")));
        Random rnd = new Random(31);
        written.put("telemetry.avsc", List.of(AvroReference.binary(schemas.get("telemetry.avsc"),
                TestData.telemetry(schemas.get("telemetry.avsc"), rnd, "written-as-telemetry", 1))));
        written.put("edge.avsc", List.of(edgeRecord(schemas.get("edge.avsc"))));

        String topic = topic("other-schema");
        LogAppender appender = load("other-schema", topic);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Map<String, RecordingCallback> cbs = new LinkedHashMap<>();
            Map<String, String> expected = new LinkedHashMap<>();
            for (String writer : written.keySet()) {
                for (String reader : texts.keySet()) {
                    if (writer.equals(reader)) {
                        continue;
                    }
                    String label = "written as " + writer + ", sent as " + reader;
                    for (byte[] bin : written.get(writer)) {
                        assertFalse(decodesExactly(schemas.get(reader), bin), "test data error: " + label
                                + " happens to be a record of " + reader + " too");
                    }
                    cbs.put(label, append(appender, KaaNode.pack(texts.get(reader), 1, written.get(writer)), label));
                    expected.put(label, INTERNAL_ERROR);
                }
            }
            assertAnswers(cbs, expected);
            assertStillDelivers(appender, sub, "records of another schema");
        }
    }

    /**
     * 1,000 records of five bytes, each an array of 1,048,576 nulls: 5 MiB of JSON each (under maxMessageBytes one
     * by one), 5 GiB for the pack. The previous code made every message before checking any size and published them
     * all, or, short of memory, aborted the JVM. Now the pack is answered onInternalError at its second record, past
     * the pack's budget of zero-byte items (before that budget was the pack's, at the pack's bound of memory), nothing
     * of it is published, the JVM lives on and the same appender delivers the next pack.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aPackExpandingToGigabytesIsAnInternalError() {
        String logSchema = "{\"type\":\"record\",\"name\":\"Nulls\",\"fields\":[{\"name\":\"a\",\"type\":"
                + "{\"type\":\"array\",\"items\":\"null\"}}]}";
        // A block of 1,048,576 items (zig-zag varint 80 80 80 01), then the end of the array.
        byte[] record = {(byte) 0x80, (byte) 0x80, (byte) 0x80, 0x01, 0x00};
        String topic = topic("amplified");
        LogAppender appender = load("amplified", topic);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            RecordingCallback cb = append(appender, KaaNode.pack(logSchema, 1, Collections.nCopies(1000, record)),
                    "1,000 records of 1,048,576 nulls");
            cb.assertExactlyOne(INTERNAL_ERROR, ANSWER_WITHIN, GRACE);
            assertStillDelivers(appender, sub, "a 5 GiB pack");
        }
    }

    private static byte[] edgeRecord(Schema schema) {
        GenericRecord r = new GenericData.Record(schema);
        for (Schema.Field f : schema.getFields()) {
            Schema t = f.schema();
            switch (t.getType()) {
                case STRING:
                    r.put(f.name(), "edge-" + f.name());
                    break;
                case INT:
                    r.put(f.name(), 7);
                    break;
                case LONG:
                    r.put(f.name(), 7L);
                    break;
                case FLOAT:
                    r.put(f.name(), 0.5f);
                    break;
                case DOUBLE:
                    r.put(f.name(), 0.25);
                    break;
                case BOOLEAN:
                    r.put(f.name(), true);
                    break;
                case BYTES:
                    r.put(f.name(), java.nio.ByteBuffer.wrap(new byte[] {1, 2, 3}));
                    break;
                case FIXED:
                    r.put(f.name(), new GenericData.Fixed(t, new byte[t.getFixedSize()]));
                    break;
                case ENUM:
                    r.put(f.name(), new GenericData.EnumSymbol(t, t.getEnumSymbols().get(0)));
                    break;
                case MAP:
                    r.put(f.name(), Collections.emptyMap());
                    break;
                case ARRAY:
                    r.put(f.name(), Collections.emptyList());
                    break;
                default:
                    r.put(f.name(), null); // unions here all take null
            }
        }
        return AvroReference.binary(schema, r);
    }

    /**
     * Whether the bytes are one datum of the schema with nothing left over, read by the Avro specification. Not
     * with Avro 1.7.5 itself: it allocates whatever a length in the data claims before it finds the data too
     * short (a telemetry record read as edge.avsc claims a 2 GB byte array), which a test JVM cannot afford.
     */
    private static boolean decodesExactly(Schema schema, byte[] bin) {
        SpecReader r = new SpecReader(bin);
        try {
            r.read(schema);
            return r.at == bin.length;
        } catch (IllegalStateException e) {
            return false;
        }
    }

    /** Avro binary per the specification, checking every length against the bytes left before using it. */
    private static final class SpecReader {
        private final byte[] b;
        private int at;

        SpecReader(byte[] b) {
            this.b = b;
        }

        private int next() {
            if (at >= b.length) {
                throw new IllegalStateException("end of data");
            }
            return b[at++] & 0xFF;
        }

        private long varint(int maxBytes) {
            long n = 0;
            for (int i = 0; i < maxBytes; i++) {
                int x = next();
                n |= (long) (x & 0x7F) << (7 * i);
                if ((x & 0x80) == 0) {
                    return (n >>> 1) ^ -(n & 1);
                }
            }
            throw new IllegalStateException("varint too long");
        }

        private void skip(long n) {
            if (n < 0 || n > b.length - at) {
                throw new IllegalStateException("length " + n + " with " + (b.length - at) + " bytes left");
            }
            at += (int) n;
        }

        private long index(long n, int size) {
            if (n < 0 || n >= size) {
                throw new IllegalStateException("index " + n + " of " + size);
            }
            return n;
        }

        void read(Schema s) {
            switch (s.getType()) {
                case NULL:
                    return;
                case BOOLEAN:
                    next(); // any byte: Avro 1.7.5 reads all but 1 as false
                    return;
                case INT:
                case ENUM:
                    long v = varint(5);
                    if (s.getType() == Schema.Type.ENUM) {
                        index(v, s.getEnumSymbols().size());
                    }
                    return;
                case LONG:
                    varint(10);
                    return;
                case FLOAT:
                    skip(4);
                    return;
                case DOUBLE:
                    skip(8);
                    return;
                case STRING:
                case BYTES:
                    skip(varint(5));
                    return;
                case FIXED:
                    skip(s.getFixedSize());
                    return;
                case UNION:
                    read(s.getTypes().get((int) index(varint(5), s.getTypes().size())));
                    return;
                case RECORD:
                    for (Schema.Field f : s.getFields()) {
                        read(f.schema());
                    }
                    return;
                case ARRAY:
                case MAP:
                    while (true) {
                        long count = varint(10);
                        if (count == 0) {
                            return;
                        }
                        if (count < 0) {
                            count = -count;
                            varint(10); // the block's size in bytes
                        }
                        if (count > b.length - at) {
                            throw new IllegalStateException("block of " + count + " items");
                        }
                        for (long i = 0; i < count; i++) {
                            if (s.getType() == Schema.Type.MAP) {
                                skip(varint(5));
                                read(s.getValueType());
                            } else {
                                read(s.getElementType());
                            }
                        }
                    }
                default:
                    throw new IllegalStateException("type " + s.getType());
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ random bytes

    private static final int MALFORMED = -1;
    private static final int AMBIGUOUS = 0;
    private static final int RECORD = 1;

    /** Thrown by {@link Cursor} for a varint whose meaning is implementation-defined (over-long, out of range). */
    private static final class Odd extends Exception {
        Odd() {
            super(null, null, false, false);
        }
    }

    /** Thrown by {@link Cursor} when the bytes end early. */
    private static final class End extends Exception {
        End() {
            super(null, null, false, false);
        }
    }

    /** Reads Avro binary exactly as the spec defines it, for the one schema the random bytes are judged by. */
    private static final class Cursor {
        private final byte[] b;
        private int at;

        Cursor(byte[] b) {
            this.b = b;
        }

        /** A zig-zag varint that must fit an Avro int in its shortest form; anything else is {@link Odd}. */
        int varint() throws End, Odd {
            long n = 0;
            int shift = 0;
            int used = 0;
            while (true) {
                if (at >= b.length) {
                    throw new End();
                }
                int x = b[at++] & 0xFF;
                used++;
                n |= (long) (x & 0x7F) << shift;
                shift += 7;
                if ((x & 0x80) == 0) {
                    // Shortest form only: a final 0 byte after others means an over-long encoding.
                    if (used > 1 && x == 0) {
                        throw new Odd();
                    }
                    break;
                }
                if (used == 5) {
                    throw new Odd();
                }
            }
            long v = (n >>> 1) ^ -(n & 1);
            if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
                throw new Odd();
            }
            return (int) v;
        }

        void skip(int n) throws End {
            if (n > b.length - at) {
                throw new End();
            }
            at += n;
        }

        boolean atEnd() {
            return at == b.length;
        }
    }

    /**
     * How the bytes stand against schemas/simple.avsc ({id: string, level: enum of 3, note: [null, string],
     * value: int}): a record with nothing left over, certainly not one, or a case whose reading is an
     * implementation's choice (over-long or out-of-range varints), where only "exactly one answer" is asserted.
     */
    private static int classifySimple(byte[] bytes) {
        Cursor c = new Cursor(bytes);
        try {
            int idLength = c.varint();
            if (idLength < 0) {
                return MALFORMED;
            }
            c.skip(idLength);
            int level = c.varint();
            if (level < 0 || level > 2) {
                return MALFORMED;
            }
            int branch = c.varint();
            if (branch == 1) {
                int noteLength = c.varint();
                if (noteLength < 0) {
                    return MALFORMED;
                }
                c.skip(noteLength);
            } else if (branch != 0) {
                return MALFORMED;
            }
            c.varint();
            return c.atEnd() ? RECORD : MALFORMED;
        } catch (End e) {
            return MALFORMED;
        } catch (Odd e) {
            return AMBIGUOUS;
        }
    }

    /**
     * 600 packs of one random record each, against simple.avsc, from three distributions (uniform bytes; small
     * bytes, which read as short lengths and valid indices, so that a good share of them are records; valid records
     * with bytes flipped). What is not a record must be an internal error; what is must be delivered, as the exact
     * text Avro 1.7.5 makes of it.
     */
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void randomBytesAreJudgedExactly() {
        String logSchema = TestData.schemaText("simple.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = topic("random");
        Random rnd = new Random(20261126);
        LogAppender appender = load("random-bytes", topic);

        Map<String, RecordingCallback> cbs = new LinkedHashMap<>();
        Map<String, String> expected = new LinkedHashMap<>();
        List<byte[]> mustArrive = new ArrayList<>();
        Map<String, Integer> classes = new TreeMap<>();
        Set<String> seenInputs = new HashSet<>();
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            for (int i = 0; i < 600; i++) {
                byte[] bytes;
                switch (i % 3) {
                    case 0:
                        bytes = new byte[rnd.nextInt(48)];
                        rnd.nextBytes(bytes);
                        break;
                    case 1:
                        bytes = new byte[rnd.nextInt(12)];
                        for (int k = 0; k < bytes.length; k++) {
                            bytes[k] = (byte) rnd.nextInt(8);
                        }
                        break;
                    default:
                        bytes = simpleRecord(schema, "flip-" + i);
                        for (int k = 1 + rnd.nextInt(2); k > 0; k--) {
                            bytes[rnd.nextInt(bytes.length)] = (byte) rnd.nextInt(256);
                        }
                }
                if (!seenInputs.add(Arrays.toString(bytes))) {
                    continue; // the same record twice would make arrival counting ambiguous
                }
                int kind = classifySimple(bytes);
                String label = "random #" + i + " " + Payloads.show(bytes);
                classes.merge(kind == RECORD ? "record" : kind == MALFORMED ? "malformed" : "ambiguous", 1,
                        Integer::sum);
                if (kind == RECORD) {
                    expected.put(label, SUCCESS);
                    mustArrive.add(AvroReference.expectedPayload(schema, bytes));
                } else if (kind == MALFORMED) {
                    expected.put(label, INTERNAL_ERROR);
                }
                cbs.put(label, append(appender, KaaNode.pack(logSchema, 1, List.of(bytes)), label));
            }
            System.out.println("random bytes against simple.avsc: " + classes);
            assertTrue(classes.getOrDefault("record", 0) >= 20 && classes.getOrDefault("malformed", 0) >= 200,
                    "test data error: too few of a kind to prove anything: " + classes);
            assertAnswers(cbs, expected);

            // Every record that was one arrived, byte for byte as Avro 1.7.5 writes it, and nothing of a malformed
            // one: one message per pack answered onSuccess (an ambiguous one may be either).
            long ambiguousDelivered = cbs.entrySet().stream().filter(e -> !expected.containsKey(e.getKey()))
                    .filter(e -> SUCCESS.equals(e.getValue().calls().get(0).method)).count();
            sub.awaitCount(mustArrive.size() + (int) ambiguousDelivered, Duration.ofSeconds(20));
            RecordingCallback.sleep(GRACE);
            assertEquals(mustArrive.size() + ambiguousDelivered, sub.payloads().size(),
                    "messages: one per pack answered onSuccess (" + ambiguousDelivered + " of them ambiguous inputs)");
            Set<String> got = new HashSet<>();
            for (byte[] p : sub.payloads()) {
                got.add(new String(p, StandardCharsets.ISO_8859_1));
            }
            List<String> missing = new ArrayList<>();
            for (byte[] p : mustArrive) {
                if (!got.contains(new String(p, StandardCharsets.ISO_8859_1))) {
                    missing.add(Payloads.show(p));
                }
            }
            if (!missing.isEmpty()) {
                fail(missing.size() + " of " + mustArrive.size() + " random records that are records of the schema "
                        + "did not arrive as Avro 1.7.5 writes them, e.g. " + missing.subList(0, Math.min(5,
                                missing.size())) + "\n  received e.g. " + sub.payloads().stream().limit(5)
                                        .map(Payloads::show).reduce((a, b) -> a + ", " + b).orElse("nothing"));
            }
        }
        assertStillDelivers(appender, topic, "random bytes");
    }
}

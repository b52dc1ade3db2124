package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.INTERNAL_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.util.Utf8;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.data.BaseLogEventPack;

/**
 * End to end: a real Mosquitto on loopback, the appender loaded and driven exactly like a Kaa 0.9.0 node drives it
 * (class names, raw Avro config, BaseLogEventPack, concurrent doAppend), a real Paho subscriber, and Avro 1.7.5 as
 * the reference for every payload byte.
 */
class EndToEndTest {

    private static final Duration GRACE = Duration.ofMillis(500);

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    /** Some tests kill the broker; the next one starts with it up again. */
    @BeforeEach
    void brokerUp() {
        if (!BROKER.broker().isRunning()) {
            BROKER.broker().start();
        }
    }

    // ------------------------------------------------------------------------------------------------ helpers

    private static String topic(String what) {
        return "kaa/it/" + what + "/" + UUID.randomUUID().toString().substring(0, 8);
    }

    private static LogAppender load(String name, Map<String, Object> overrides) {
        return BROKER.load(name, overrides);
    }

    /** doAppend the way the log actor does it, noting the calling thread and when it returned. */
    private static RecordingCallback append(LogAppender appender, BaseLogEventPack pack, String label) {
        return RecordingCallback.append(appender, pack, label);
    }

    /** n telemetry records with ids prefix-r0..r(n-1), as Avro binaries. */
    private static List<byte[]> telemetryBinaries(Schema schema, Random rnd, String prefix, int n) {
        return TestData.telemetryBinaries(schema, rnd, n, i -> prefix + "-r" + i);
    }

    /** Endpoint "quiet"'s pack of one record, delivered before a test's broker is paused. */
    private static void warmUp(LogAppender appender, String logSchema, Schema schema, Random rnd) {
        append(appender, KaaNode.pack("quiet", logSchema, 1, telemetryBinaries(schema, rnd, "warm", 1)),
                "warm-up").assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);
    }

    /** Endpoint "flooding"'s {@code packs} packs of {@code records} records, ids flood<p>-r<i>. */
    private static List<RecordingCallback> flood(LogAppender appender, String logSchema, Schema schema, Random rnd,
            int packs, int records) {
        List<RecordingCallback> flood = new ArrayList<>();
        for (int p = 0; p < packs; p++) {
            flood.add(append(appender, KaaNode.pack("flooding", logSchema, 1,
                    telemetryBinaries(schema, rnd, "flood" + p, records)), "flooding endpoint's pack " + p));
        }
        return flood;
    }

    // ------------------------------------------------------------------------------------------------ a + b

    /**
     * (a) 20 packs x 50 telemetry records appended from 4 threads at once: every pack gets exactly one callback,
     * onSuccess, and the subscriber receives exactly the Avro 1.7.5 reference texts (as a multiset, byte for byte),
     * at the configured QoS, on the configured topic.
     */
    @ParameterizedTest(name = "qos {0}")
    @ValueSource(ints = {0, 1, 2})
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void concurrentPacksAreDeliveredExactlyAsKaaEncodesThem(int qos) throws Exception {
        final int packs = 20;
        final int perPack = 50;
        final int threads = 4;
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = topic("a-qos" + qos);
        Random rnd = new Random(4242 + qos);

        List<BaseLogEventPack> packList = new ArrayList<>();
        List<byte[]> expected = new ArrayList<>();
        for (int p = 0; p < packs; p++) {
            List<byte[]> bins = telemetryBinaries(schema, rnd, "q" + qos + "-p" + p, perPack);
            packList.add(KaaNode.pack(logSchema, 3, bins));
            expected.addAll(AvroReference.expectedPayloads(schema, bins));
        }

        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, qos)) {
            LogAppender appender = load("e2e-qos" + qos, KaaNode.brokerConfig(BROKER.port(), topic, qos));

            RecordingCallback[] cbs = new RecordingCallback[packs];
            ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
                Thread t = new Thread(r);
                t.setName("kaa-actor-" + t.getId());
                t.setDaemon(true);
                return t;
            });
            try {
                CountDownLatch go = new CountDownLatch(1);
                List<Future<?>> futures = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    final int first = t;
                    futures.add(pool.submit(() -> {
                        go.await();
                        for (int p = first; p < packs; p += threads) {
                            cbs[p] = append(appender, packList.get(p), "qos " + qos + " pack " + p);
                        }
                        return null;
                    }));
                }
                go.countDown();
                for (Future<?> f : futures) {
                    f.get(30, TimeUnit.SECONDS);
                }
            } finally {
                pool.shutdownNow();
            }

            // Every pack answered, each exactly once, each onSuccess.
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            for (RecordingCallback cb : cbs) {
                cb.awaitFirst(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
            }
            RecordingCallback.sleep(GRACE);
            Map<String, Integer> outcomes = new TreeMap<>();
            List<String> problems = new ArrayList<>();
            for (RecordingCallback cb : cbs) {
                List<RecordingCallback.Call> calls = cb.calls();
                for (RecordingCallback.Call c : calls) {
                    outcomes.merge(c.method, 1, Integer::sum);
                }
                if (calls.size() != 1 || !calls.get(0).method.equals(SUCCESS)) {
                    problems.add(cb.toString());
                }
            }
            if (!problems.isEmpty()) {
                fail("qos " + qos + ": every pack must get exactly one onSuccess; callbacks by method " + outcomes
                        + "; packs with other outcomes: " + problems);
            }

            // Every record arrived, exactly as Avro 1.7.5 / Kaa encodes it.
            List<byte[]> received = sub.awaitCount(expected.size(), Duration.ofSeconds(30));
            RecordingCallback.sleep(GRACE); // let duplicates, if any, show up
            received = sub.payloads();
            assertNull(sub.connectionLost(), "the test subscriber lost its connection");
            for (Subscriber.Received m : sub.messages()) {
                assertEquals(topic, m.topic, "topic");
                assertEquals(qos, m.qos, "QoS of a delivered message (subscribed at the same QoS)");
                assertFalse(m.retained, "published messages must not be retained");
            }
            Payloads.assertSameMultiset("qos " + qos, expected, received);
        }
    }

    /** (b) Exactly one callback: the count stays 1 well after the first one. */
    @ParameterizedTest(name = "qos {0}")
    @ValueSource(ints = {0, 1, 2})
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void exactlyOneCallbackPerPack(int qos) {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = topic("b-qos" + qos);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, qos)) {
            LogAppender appender = load("once-qos" + qos, KaaNode.brokerConfig(BROKER.port(), topic, qos));
            List<RecordingCallback> cbs = new ArrayList<>();
            List<byte[]> expected = new ArrayList<>();
            Random rnd = new Random(7 + qos);
            for (int p = 0; p < 5; p++) {
                List<byte[]> bins = telemetryBinaries(schema, rnd, "b" + qos + "-p" + p, p == 0 ? 1 : 10);
                expected.addAll(AvroReference.expectedPayloads(schema, bins));
                cbs.add(append(appender, KaaNode.pack(logSchema, 1, bins), "qos " + qos + " pack " + p));
            }
            for (RecordingCallback cb : cbs) {
                cb.awaitFirst(Duration.ofSeconds(20));
            }
            RecordingCallback.sleep(Duration.ofSeconds(1));
            for (RecordingCallback cb : cbs) {
                cb.assertOnlyOne(SUCCESS);
            }
            sub.awaitCount(expected.size(), Duration.ofSeconds(20));
            RecordingCallback.sleep(GRACE);
            Payloads.assertSameMultiset("qos " + qos, expected, sub.payloads());
        }
    }

    // ------------------------------------------------------------------------------------------------ c

    /**
     * (c) Broker killed: each pack gets onConnectionError exactly once, within the delivery timeout (plus slack),
     * never inline before doAppend returned, and doAppend itself does not wait for the network. After the broker is
     * back on the same port, a later pack succeeds on the same appender (no re-init) and its records arrive.
     */
    @ParameterizedTest(name = "qos {0}")
    @ValueSource(ints = {1, 2})
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void brokerDownMeansConnectionErrorThenRecovery(int qos) {
        final int timeoutSeconds = 2;
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = topic("c-qos" + qos);
        Random rnd = new Random(99 + qos);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, qos);
        cfg.put("deliveryTimeoutSeconds", timeoutSeconds);
        cfg.put("keepAliveSeconds", 5);
        LogAppender appender = load("down-qos" + qos, cfg);

        // Connected and working first.
        RecordingCallback warm = append(appender,
                KaaNode.pack(logSchema, 1, telemetryBinaries(schema, rnd, "c" + qos + "-warm", 5)), "warm-up pack");
        warm.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);

        BROKER.broker().kill();
        // Packs appended once the appender knows the broker is gone, so none is written to the dying connection.
        awaitDisconnected("down-qos" + qos);

        List<RecordingCallback> down = new ArrayList<>();
        for (int p = 0; p < 5; p++) {
            down.add(append(appender,
                    KaaNode.pack(logSchema, 1, telemetryBinaries(schema, rnd, "c" + qos + "-down" + p, 10)),
                    "pack " + p + " while the broker is down"));
        }
        Duration answerWithin = Duration.ofSeconds(timeoutSeconds + 8);
        for (RecordingCallback cb : down) {
            RecordingCallback.Call c = cb.awaitFirst(answerWithin);
            assertEquals(CONNECTION_ERROR, c.method, cb.label() + ": " + cb.calls());
        }
        RecordingCallback.sleep(Duration.ofSeconds(1));
        for (RecordingCallback cb : down) {
            cb.assertOnlyOne(CONNECTION_ERROR);
            cb.assertAnsweredOnlyAfterAppendReturned();
            cb.assertAnsweredBy(Duration.ofSeconds(timeoutSeconds));
            System.out.printf("qos %d, %s: %s after %.0f ms%n", qos, cb.label(), cb.calls().get(0).method,
                    cb.millisToFirst());
        }

        BROKER.broker().restart();

        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, qos)) {
            long deadline = System.nanoTime() + Duration.ofSeconds(40).toNanos();
            List<RecordingCallback> attempts = new ArrayList<>();
            List<byte[]> delivered = null;
            int attempt = 0;
            while (System.nanoTime() < deadline) {
                List<byte[]> bins = telemetryBinaries(schema, rnd, "c" + qos + "-after" + attempt, 10);
                RecordingCallback cb = append(appender, KaaNode.pack(logSchema, 1, bins),
                        "attempt " + attempt + " after the restart");
                attempts.add(cb);
                RecordingCallback.Call c = cb.awaitFirst(answerWithin);
                System.out.printf("qos %d, %s: %s after %.0f ms%n", qos, cb.label(), c.method, cb.millisToFirst());
                if (c.method.equals(SUCCESS)) {
                    delivered = AvroReference.expectedPayloads(schema, bins);
                    break;
                }
                assertEquals(CONNECTION_ERROR, c.method, cb.label() + ": only a connection error may precede "
                        + "recovery: " + cb.calls());
                attempt++;
                RecordingCallback.sleep(GRACE);
            }
            assertNotNull(delivered, "no pack succeeded within 40 s after the broker came back: " + attempts);
            RecordingCallback.sleep(GRACE);
            for (RecordingCallback cb : attempts) {
                assertEquals(1, cb.calls().size(), cb.label() + ": exactly one callback: " + cb.calls());
            }
            sub.awaitCount(delivered.size(), Duration.ofSeconds(10));
            RecordingCallback.sleep(GRACE);
            // Delivery first (by record id), then the bytes (the concurrent test covers payload fidelity at large).
            Map<String, byte[]> gotById = new HashMap<>();
            for (byte[] p : sub.payloads()) {
                gotById.put(Payloads.idOf(p), p);
            }
            for (byte[] e : delivered) {
                byte[] got = gotById.get(Payloads.idOf(e));
                if (got == null) {
                    fail("qos " + qos + ": the pack confirmed after the restart has a record the subscriber never got: "
                            + Payloads.show(e) + "\n  received: " + sub.count() + " messages");
                }
            }
            java.util.Set<String> ids = new java.util.HashSet<>();
            for (byte[] e : delivered) {
                ids.add(Payloads.idOf(e));
            }
            List<byte[]> ofThatPack = new ArrayList<>();
            for (byte[] p : sub.payloads()) {
                if (ids.contains(Payloads.idOf(p))) {
                    ofThatPack.add(p);
                }
            }
            Payloads.assertSameMultiset("qos " + qos + ", pack confirmed after the restart", delivered, ofThatPack);
        }
    }

    // ------------------------------------------------------------------------------------------------ d

    /** (d) Records the log schema cannot decode: onInternalError, exactly once per pack. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void undecodableRecordsGiveInternalError() {
        String logSchema = TestData.schemaText("simple.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = topic("d-bad");
        LogAppender appender = load("undecodable", KaaNode.brokerConfig(BROKER.port(), topic, 1));

        GenericRecord ok = new GenericData.Record(schema);
        ok.put("id", "valid-record-with-a-long-enough-id");
        ok.put("level", new GenericData.EnumSymbol(schema.getField("level").schema(), "B"));
        ok.put("note", "a note");
        ok.put("value", 123456);
        byte[] valid = AvroReference.binary(schema, ok);

        Map<String, byte[]> bad = new LinkedHashMap<>();
        bad.put("truncated (last 3 bytes cut)", Arrays.copyOf(valid, valid.length - 3));
        bad.put("truncated (half)", Arrays.copyOf(valid, valid.length / 2));
        byte[] overlong = new byte[21];
        new Random(5).nextBytes(overlong);
        overlong[0] = 0x7E; // id length 63, but only 20 (random) bytes follow
        bad.put("random bytes behind an id length longer than the data", overlong);
        byte[] huge = {(byte) 0xFE, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x0F, 'x'}; // id length 2^31-1
        bad.put("id length 2^31-1 (6 bytes of data)", huge);
        bad.put("negative id length", new byte[] {0x01, 'x', 'y'});
        bad.put("enum index 8 of 3 symbols", concat(new byte[] {0x02, 'i'}, new byte[] {0x10, 0x00, 0x02}));
        bad.put("union branch 5 of 2", concat(new byte[] {0x02, 'i'}, new byte[] {0x00, 0x0A, 0x02}));
        bad.put("empty record bytes", new byte[0]);

        // Subscribed first: a pack published in part (the first valid record of "valid, truncated, valid") before
        // it was refused would show.
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Map<String, RecordingCallback> cbs = new LinkedHashMap<>();
            for (Map.Entry<String, byte[]> e : bad.entrySet()) {
                if (!e.getKey().startsWith("id length 2^31")) { // Avro 1.7.5 would try to allocate 2 GB for that one
                    assertTrue(AvroReference.undecodable(schema, e.getValue()),
                            "test data error: Avro 1.7.5 decodes '" + e.getKey() + "'");
                }
                cbs.put(e.getKey(), append(appender, KaaNode.pack(logSchema, 1, List.of(e.getValue())), e.getKey()));
            }
            cbs.put("valid, truncated, valid", append(appender, KaaNode.pack(logSchema, 1,
                    List.of(valid, Arrays.copyOf(valid, valid.length - 3), valid)), "valid, truncated, valid"));

            for (RecordingCallback cb : cbs.values()) {
                cb.awaitFirst(Duration.ofSeconds(15));
            }
            RecordingCallback.sleep(GRACE);
            List<String> problems = new ArrayList<>();
            for (RecordingCallback cb : cbs.values()) {
                List<RecordingCallback.Call> calls = cb.calls();
                if (calls.size() != 1 || !calls.get(0).method.equals(INTERNAL_ERROR)) {
                    problems.add(cb.toString());
                }
            }
            assertTrue(problems.isEmpty(), "undecodable data must give exactly one onInternalError per pack; got: "
                    + problems);

            // The appender still works afterwards, and its record arrives alone: nothing of the refused packs went
            // out before it on the same connection.
            RecordingCallback cb = append(appender, KaaNode.pack(logSchema, 1, List.of(valid)), "valid after bad");
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), GRACE);
            sub.awaitCount(1, Duration.ofSeconds(10));
            Payloads.assertSameMultiset("valid pack after undecodable ones",
                    List.of(AvroReference.expectedPayload(schema, valid)), sub.payloads());
        }
    }

    /** (d) An empty pack is delivered trivially: onSuccess, exactly once, nothing published. */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void emptyPackSucceeds() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        String topic = topic("d-empty");
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            LogAppender appender = load("empty-pack", KaaNode.brokerConfig(BROKER.port(), topic, 1));
            RecordingCallback cb = append(appender, KaaNode.pack(logSchema, 1, Collections.emptyList()), "empty pack");
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), GRACE);
            assertEquals(0, sub.count(), "an empty pack publishes nothing");
        }
    }

    /**
     * A pack of 70,000 records, more than one JNI local frame may hold (HotSpot's MaxJNILocalCapacity, 65,536):
     * read a chunk at a time, published as one message and confirmed. (Before: answered onInternalError, "its events
     * cannot be read".)
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aPackOfMoreRecordsThanAJniFrameHoldsIsPublished() {
        String logSchema = "{\"type\":\"record\",\"name\":\"N\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"}]}";
        int n = 70_000;
        List<byte[]> records = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            ByteBuffer varint = ByteBuffer.allocate(5);
            for (int z = i << 1; ; z >>>= 7) { // zig-zag, as Avro writes an int
                if ((z & ~0x7f) == 0) {
                    varint.put((byte) z);
                    break;
                }
                varint.put((byte) ((z & 0x7f) | 0x80));
            }
            records.add(Arrays.copyOf(varint.array(), varint.position()));
        }
        String topic = topic("d-70k");
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
            cfg.put("grouping", new GenericData.EnumSymbol(KaaNode.configSchema().getField("grouping").schema(),
                    "PACK"));
            LogAppender appender = load("seventy-thousand", cfg);
            RecordingCallback cb = append(appender, KaaNode.pack(logSchema, 1, records), "70,000 records");
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(30), GRACE);
            String message = new String(sub.awaitCount(1, Duration.ofSeconds(10)).get(0), StandardCharsets.UTF_8);
            assertTrue(message.startsWith("[{\"n\":0},{\"n\":1},") && message.endsWith(",{\"n\":69999}]"),
                    message.length() > 80 ? message.substring(0, 80) : message);
            assertEquals(n, message.split("\\{").length - 1, "records in the message");
        }
    }

    /** (d) doAppend after close(): onInternalError exactly once, and no exception out of doAppend. */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void appendAfterCloseGivesInternalError() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = topic("d-closed");
        LogAppender appender = load("closed", KaaNode.brokerConfig(BROKER.port(), topic, 1));
        RecordingCallback before = append(appender,
                KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(1), "d-open", 3)), "before close");
        before.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);

        assertDoesNotThrow(appender::close, "close()");
        RecordingCallback after = append(appender,
                KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(2), "d-closed", 3)), "after close");
        after.assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(10), GRACE);

        RecordingCallback emptyAfter = append(appender, KaaNode.pack(logSchema, 1, Collections.emptyList()),
                "empty pack after close");
        emptyAfter.assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(10), GRACE);
    }

    // ------------------------------------------------------------------------------------------------ e

    /** (e) No broker on the configured port: init succeeds, packs get onConnectionError within the deadline. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void unreachableBrokerGivesConnectionError() {
        final int timeoutSeconds = 2;
        int closedPort = Mosquitto.freeLoopbackPort();
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        Map<String, Object> cfg = KaaNode.brokerConfig(closedPort, topic("e"), 1);
        cfg.put("deliveryTimeoutSeconds", timeoutSeconds);
        LogAppender appender = BROKER.closeAfterTest(assertDoesNotThrow(() -> KaaNode.load("unreachable",
                KaaNode.config(cfg)), "init must not fail because the broker is unreachable (the node would drop the "
                + "appender)"));

        List<RecordingCallback> cbs = new ArrayList<>();
        for (int p = 0; p < 3; p++) {
            cbs.add(append(appender,
                    KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(p), "e-p" + p, 5)),
                    "pack " + p + " to a closed port"));
        }
        for (RecordingCallback cb : cbs) {
            RecordingCallback.Call c = cb.awaitFirst(Duration.ofSeconds(timeoutSeconds + 8));
            assertEquals(CONNECTION_ERROR, c.method, cb.label() + ": " + cb.calls());
        }
        RecordingCallback.sleep(Duration.ofSeconds(1));
        for (RecordingCallback cb : cbs) {
            cb.assertOnlyOne(CONNECTION_ERROR);
            // Nothing but the pack's deadline answers it here, so an answer before doAppend returned would mean
            // doAppend waited for the outcome.
            cb.assertAnsweredOnlyAfterAppendReturned();
            cb.assertAnsweredBy(Duration.ofSeconds(timeoutSeconds));
            System.out.printf("%s: %s after %.0f ms%n", cb.label(), cb.calls().get(0).method, cb.millisToFirst());
        }
    }

    /**
     * doAppend does not wait for a broker that cannot be reached, shown without a clock: the packs' deadline is
     * far beyond the test, so nothing can answer them before the test closes the appender, after every doAppend
     * returned. Each doAppend returns with its pack unanswered; close answers each exactly once, on another
     * thread. A doAppend that waited for its pack's outcome would never return before the close the test makes
     * after it (the class timeout ends such a run).
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void doAppendReturnsBeforeAnUnreachableBrokerCouldAnswer() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        Map<String, Object> cfg = KaaNode.brokerConfig(Mosquitto.freeLoopbackPort(), topic("e-held"), 1);
        cfg.put("deliveryTimeoutSeconds", 3600);
        cfg.put("closeTimeoutSeconds", 1);
        LogAppender appender = BROKER.closeAfterTest(KaaNode.load("unreachable-held", KaaNode.config(cfg)));
        List<RecordingCallback> cbs = new ArrayList<>();
        for (int p = 0; p < 3; p++) {
            RecordingCallback cb = append(appender,
                    KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(p), "e-held-p" + p, 5)),
                    "pack " + p + " to a closed port");
            assertEquals(List.of(), cb.calls(), cb.label() + ": doAppend returned with the pack answered, with "
                    + "nothing to answer it yet: it waited");
            cbs.add(cb);
        }
        assertDoesNotThrow(appender::close, "close()");
        for (RecordingCallback cb : cbs) {
            cb.assertExactlyOne(CONNECTION_ERROR, Duration.ofSeconds(20), Duration.ZERO);
        }
        RecordingCallback.sleep(GRACE);
        for (RecordingCallback cb : cbs) {
            cb.assertOnlyOne(CONNECTION_ERROR);
            cb.assertAnsweredOnlyAfterAppendReturned();
        }
    }

    /** An appender with maxPendingRecords 10, connected once (a pack delivered), and then its broker killed. */
    private static LogAppender boundedWithTheBrokerGone(String name, int timeoutSeconds) {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic(name), 1);
        cfg.put("deliveryTimeoutSeconds", timeoutSeconds);
        cfg.put("maxPendingRecords", 10);
        LogAppender appender = load(name + "-bounded", cfg);
        RecordingCallback warm = append(appender, KaaNode.pack(logSchema, 1,
                telemetryBinaries(AvroReference.parse(logSchema), new Random(1), name + "-warm", 2)), "warm-up");
        warm.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);
        BROKER.broker().kill();
        // Until the appender has seen the connection go: a pack appended before that is written to
        // it and fails with its loss, at once, not at its deadline.
        awaitDisconnected(name + "-bounded");
        return appender;
    }

    /** Waits until the appender's JMX bean says its connection is down. */
    private static void awaitDisconnected(String appenderName) {
        try {
            javax.management.MBeanServer server = java.lang.management.ManagementFactory.getPlatformMBeanServer();
            javax.management.ObjectName bean = server.queryNames(new javax.management.ObjectName(
                    "org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="
                            + javax.management.ObjectName.quote(appenderName) + ",*"), null).iterator().next();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (Boolean.TRUE.equals(server.getAttribute(bean, "Connected"))) {
                assertTrue(System.nanoTime() < deadline, "the appender never saw the broker go");
                RecordingCallback.sleep(Duration.ofMillis(10));
            }
        } catch (javax.management.JMException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Design: in-flight work is bounded by maxPendingRecords; a pack that does not fit fails fast with a connection
     * error instead of waiting. With the broker down, packs A and B (5 records each, of two endpoints: one pack holds
     * at most half of the bound of 10) wait for their deadline; pack C (a third endpoint's record, over the bound)
     * must be answered first, with onConnectionError, and each exactly once.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void packOverThePendingBoundFailsFast() {
        final int timeoutSeconds = 6;
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        LogAppender appender = boundedWithTheBrokerGone("bound", timeoutSeconds);
        RecordingCallback a = append(appender, KaaNode.pack("endpoint-a", logSchema, 1,
                telemetryBinaries(schema, new Random(2), "bound-a", 5)), "pack A (5 records)");
        RecordingCallback b = append(appender, KaaNode.pack("endpoint-b", logSchema, 1,
                telemetryBinaries(schema, new Random(3), "bound-b", 5)), "pack B (5 records)");
        RecordingCallback c = append(appender, KaaNode.pack("endpoint-c", logSchema, 1,
                telemetryBinaries(schema, new Random(4), "bound-c", 1)), "pack C (1 more, over the bound)");
        RecordingCallback.Call cc = c.awaitFirst(Duration.ofSeconds(timeoutSeconds + 8));
        RecordingCallback.Call ca = a.awaitFirst(Duration.ofSeconds(timeoutSeconds + 8));
        b.awaitFirst(Duration.ofSeconds(timeoutSeconds + 8));
        RecordingCallback.sleep(GRACE);
        a.assertOnlyOne(CONNECTION_ERROR);
        b.assertOnlyOne(CONNECTION_ERROR);
        c.assertOnlyOne(CONNECTION_ERROR);
        System.out.printf("bound: A answered after %.0f ms, C after %.0f ms%n", a.millisToFirst(), c.millisToFirst());
        assertTrue(cc.nanoTime < ca.nanoTime, "pack C, over maxPendingRecords, must fail fast, before pack A's "
                + "deadline; A answered after " + a.millisToFirst() + " ms, C after " + c.millisToFirst() + " ms");
    }

    /**
     * maxPendingRecords bounds the bytes held too, 4 KiB per record: an endpoint's large records cannot make a
     * broker that is away hold more memory than messages of 4 KiB would. With 10 records allowed (40 KiB; one pack
     * may hold half) and the broker down, packs A and B (one record of 15 KB each, of two endpoints) wait; pack C
     * (one more such record, of a third endpoint) passes the bytes and fails fast with onConnectionError; pack D (one
     * record of 25 KB) can never fit and fails with onInternalError.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void largeRecordsAreBoundedByTheirBytesToo() {
        final int timeoutSeconds = 6;
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        LogAppender appender = boundedWithTheBrokerGone("bytes", timeoutSeconds);
        Random rnd = new Random(4);
        RecordingCallback a = append(appender, KaaNode.pack("endpoint-a", logSchema, 1,
                List.of(TestData.telemetryWithNote(schema, rnd, "bytes-a", 0, 15_000))), "pack A (15 KB)");
        RecordingCallback b = append(appender, KaaNode.pack("endpoint-b", logSchema, 1,
                List.of(TestData.telemetryWithNote(schema, rnd, "bytes-b", 1, 15_000))), "pack B (15 KB)");
        RecordingCallback c = append(appender, KaaNode.pack("endpoint-c", logSchema, 1,
                List.of(TestData.telemetryWithNote(schema, rnd, "bytes-c", 2, 15_000))), "pack C (15 KB more)");
        RecordingCallback d = append(appender, KaaNode.pack("endpoint-d", logSchema, 1,
                List.of(TestData.telemetryWithNote(schema, rnd, "bytes-d", 3, 25_000))), "pack D (25 KB)");
        RecordingCallback.Call cc = c.awaitFirst(Duration.ofSeconds(timeoutSeconds + 8));
        RecordingCallback.Call cd = d.awaitFirst(Duration.ofSeconds(timeoutSeconds + 8));
        RecordingCallback.Call ca = a.awaitFirst(Duration.ofSeconds(timeoutSeconds + 8));
        b.awaitFirst(Duration.ofSeconds(timeoutSeconds + 8));
        RecordingCallback.sleep(GRACE);
        a.assertOnlyOne(CONNECTION_ERROR);
        b.assertOnlyOne(CONNECTION_ERROR);
        c.assertOnlyOne(CONNECTION_ERROR);
        d.assertOnlyOne(INTERNAL_ERROR);
        // In order, not by a clock: C and D fail when they are appended, A waits for its deadline.
        assertTrue(cc.nanoTime < ca.nanoTime && cd.nanoTime < ca.nanoTime, "packs C and D must fail fast, before "
                + "pack A's deadline; A answered after " + a.millisToFirst() + " ms, C after " + c.millisToFirst()
                + " ms, D after " + d.millisToFirst() + " ms");
    }

    /**
     * Endpoints are untrusted: one sending packs faster than the broker takes them holds at most half of
     * maxPendingRecords. With the broker paused (SIGSTOP: connected, reading nothing), 5 of endpoint "flooding"'s
     * one-record packs are accepted and the next fail at once with onConnectionError; endpoint "quiet"'s pack of 4
     * records waits, and once the broker reads again it is delivered with the 5, every record counted by a
     * subscriber. (Before: the flood took 8 of the 10, and the quiet endpoint's pack of 4 failed at once.)
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void oneFloodingEndpointLeavesRoomForTheOthers() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = topic("share");
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        cfg.put("maxPendingRecords", 10);
        cfg.put("keepAliveSeconds", 60); // no ping goes unanswered while the broker is paused
        LogAppender appender = load("share", cfg);
        Random rnd = new Random(5);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            warmUp(appender, logSchema, schema, rnd);
            List<RecordingCallback> flood;
            RecordingCallback quiet;
            BROKER.broker().pause();
            try {
                flood = flood(appender, logSchema, schema, rnd, 8, 1);
                quiet = append(appender, KaaNode.pack("quiet", logSchema, 1,
                        telemetryBinaries(schema, rnd, "quiet", 4)), "quiet endpoint's pack of 4");
                // Within the waiting packs' deadline (30 s), whatever the machine's load: those still waiting
                // after it show that these failed fast.
                for (RecordingCallback cb : flood.subList(5, 8)) {
                    cb.assertExactlyOne(CONNECTION_ERROR, Duration.ofSeconds(15), Duration.ZERO);
                }
                RecordingCallback.sleep(GRACE);
                for (RecordingCallback cb : flood.subList(0, 5)) {
                    assertTrue(cb.calls().isEmpty(), cb.label() + " waits for the broker: " + cb.calls());
                }
                assertTrue(quiet.calls().isEmpty(), "the quiet endpoint's pack waits for the broker: "
                        + quiet.calls());
            } finally {
                BROKER.broker().resume();
            }
            quiet.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), GRACE);
            for (RecordingCallback cb : flood.subList(0, 5)) {
                cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);
            }
            assertEquals(1 + 5 + 4, sub.assertCount(10, Duration.ofSeconds(10)).size(), "received");
        } finally {
            appender.close();
        }
    }

    /**
     * Appenders of different QoS share a connection (one broker configuration): a QoS 2 pack waiting for its window
     * (maxInflight 1, the broker paused) holds back no QoS 0 pack appended after it, which is written and answered while
     * the broker is still paused. (Before, in one line for every QoS, the QoS 0 pack waited until the QoS 2 window
     * moved: here, until the broker came back.)
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aQos2PackWaitingForItsWindowHoldsNoQos0PackBack() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = topic("qos-lines");
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 2);
        cfg.put("maxInflight", 1);
        cfg.put("keepAliveSeconds", 60); // no ping goes unanswered while the broker is paused
        Map<String, Object> qos0Cfg = new HashMap<>(cfg);
        qos0Cfg.put("qos", 0);
        LogAppender exactlyOnce = load("exactly-once", cfg);
        LogAppender atMostOnce = load("at-most-once", qos0Cfg);
        Random rnd = new Random(8);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 2)) {
            warmUp(exactlyOnce, logSchema, schema, rnd);
            warmUp(atMostOnce, logSchema, schema, rnd);
            RecordingCallback twice;
            BROKER.broker().pause();
            try {
                twice = append(exactlyOnce, KaaNode.pack("exactly", logSchema, 1,
                        telemetryBinaries(schema, rnd, "exactly", 2)), "QoS 2 pack of 2");
                RecordingCallback once = append(atMostOnce, KaaNode.pack("atmost", logSchema, 1,
                        telemetryBinaries(schema, rnd, "atmost", 1)), "QoS 0 pack");
                once.assertExactlyOne(SUCCESS, Duration.ofSeconds(5), Duration.ZERO);
                assertTrue(twice.calls().isEmpty(), "the QoS 2 pack waits for the broker");
            } finally {
                BROKER.broker().resume();
            }
            twice.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);
            sub.assertCount(2 + 2 + 1, Duration.ofSeconds(10));
        } finally {
            exactlyOnce.close();
            atMostOnce.close();
        }
    }

    /**
     * Two appenders share a connection (one broker configuration), the first with deliveryTimeoutSeconds 60. The broker
     * stops acknowledging (paused): the first appender's pack fills the window of one, and the second's (2 s) waits
     * behind it. At that pack's deadline the connection is found stalled and made anew, which fails the first pack too,
     * at once. (Before: the sweep found the waiting message past its patience, then answered its pack and dropped it,
     * and the driver, looking again, often found nothing, so the first pack held the window for its whole 60 s, and
     * every pack of the second appender failed meanwhile.)
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aPackWaitingBehindAnotherAppendersWindowFindsTheConnectionStalledAtItsDeadline() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic("patience"), 1);
        cfg.put("maxInflight", 1);
        cfg.put("keepAliveSeconds", 60); // no ping goes unanswered while the broker is paused
        Map<String, Object> patientCfg = new HashMap<>(cfg);
        patientCfg.put("deliveryTimeoutSeconds", 60);
        Map<String, Object> hastyCfg = new HashMap<>(cfg);
        hastyCfg.put("deliveryTimeoutSeconds", 2);
        LogAppender patient = load("patient", patientCfg);
        LogAppender hasty = load("hasty", hastyCfg);
        Random rnd = new Random(7);
        try {
            warmUp(patient, logSchema, schema, rnd);
            BROKER.broker().pause();
            try {
                RecordingCallback held = append(patient, KaaNode.pack("patient", logSchema, 1,
                        telemetryBinaries(schema, rnd, "patient", 1)), "patient appender's pack");
                RecordingCallback.sleep(Duration.ofMillis(300)); // written: it holds the window
                RecordingCallback waiting = append(hasty, KaaNode.pack("hasty", logSchema, 1,
                        telemetryBinaries(schema, rnd, "hasty", 1)), "hasty appender's pack");
                waiting.assertExactlyOne(CONNECTION_ERROR, Duration.ofSeconds(10), Duration.ZERO);
                waiting.assertAnsweredBy(Duration.ofSeconds(2));
                held.assertExactlyOne(CONNECTION_ERROR, Duration.ofSeconds(5), Duration.ZERO);
                // Failed with the connection the waiting pack's deadline found stalled, not at its own 60 s.
                held.assertAnsweredBy(Duration.ofSeconds(3));
            } finally {
                BROKER.broker().resume();
            }
        } finally {
            patient.close();
            hasty.close();
        }
    }

    /**
     * Endpoints are untrusted, and their packs take the window in turn: another endpoint's pack appended after a
     * flooding endpoint's backlog (4 packs of 50, appended while the broker is paused) goes out after the backlog's
     * pack in flight, not behind all of it. On a window of one (maxInflight 1), the subscriber receives the quiet
     * endpoint's two records 51st and 52nd, and each endpoint's records in the order appended. (Before, in one queue:
     * after all 200, so that on a broker slower than such a backlog over deliveryTimeoutSeconds every other
     * endpoint's pack reached the broker only at its deadline, and failed.)
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void anEndpointsBacklogDoesNotHoldAnotherEndpointsPackBehindIt() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = topic("turns");
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        cfg.put("maxInflight", 1); // the backlog waits for the window, not in it
        cfg.put("keepAliveSeconds", 60); // no ping goes unanswered while the broker is paused
        LogAppender appender = load("turns", cfg);
        Random rnd = new Random(6);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            warmUp(appender, logSchema, schema, rnd);
            List<RecordingCallback> flood;
            RecordingCallback quiet;
            BROKER.broker().pause();
            try {
                flood = flood(appender, logSchema, schema, rnd, 4, 50);
                quiet = append(appender, KaaNode.pack("quiet", logSchema, 1,
                        telemetryBinaries(schema, rnd, "quiet", 2)), "quiet endpoint's pack of 2");
            } finally {
                BROKER.broker().resume();
            }
            quiet.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);
            for (RecordingCallback cb : flood) {
                cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);
            }
            List<String> ids = new ArrayList<>();
            for (byte[] payload : sub.assertCount(1 + 200 + 2, Duration.ofSeconds(10)).subList(1, 203)) {
                Matcher id = Pattern.compile("\"(flood\\d-r\\d+|quiet-r\\d)\"").matcher(
                        new String(payload, StandardCharsets.UTF_8));
                assertTrue(id.find(), "a record of the test's: " + new String(payload, StandardCharsets.UTF_8));
                ids.add(id.group(1));
            }
            // The backlog's first pack was going out when the quiet pack came; then it was the quiet pack's turn.
            assertEquals(List.of("flood0-r49", "quiet-r0", "quiet-r1", "flood1-r0"), ids.subList(49, 53),
                    "the records the broker received after the backlog's first pack");
            List<String> floodIds = new ArrayList<>();
            for (int p = 0; p < 4; p++) {
                for (int r = 0; r < 50; r++) {
                    floodIds.add("flood" + p + "-r" + r);
                }
            }
            assertEquals(floodIds, ids.stream().filter(i -> i.startsWith("flood")).collect(Collectors.toList()),
                    "the flooding endpoint's records, in order");
        } finally {
            appender.close();
        }
    }

    /** Design: exactly one callback whatever happens, including close() while packs are in flight. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void closeWhilePacksAreInFlightAnswersEachOnce() {
        final int timeoutSeconds = 3;
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic("close-in-flight"), 1);
        cfg.put("deliveryTimeoutSeconds", timeoutSeconds);
        LogAppender appender = load("close-in-flight", cfg);
        RecordingCallback warm = append(appender,
                KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(1), "cif-warm", 2)), "warm-up");
        warm.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);

        BROKER.broker().kill();
        List<RecordingCallback> cbs = new ArrayList<>();
        for (int p = 0; p < 4; p++) {
            cbs.add(append(appender,
                    KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(10 + p), "cif-p" + p, 5)),
                    "pack " + p + " in flight at close()"));
        }
        assertDoesNotThrow(appender::close, "close() with packs in flight");
        for (RecordingCallback cb : cbs) {
            cb.awaitFirst(Duration.ofSeconds(timeoutSeconds + 8));
        }
        RecordingCallback.sleep(Duration.ofSeconds(1));
        for (RecordingCallback cb : cbs) {
            List<RecordingCallback.Call> calls = cb.calls();
            assertEquals(1, calls.size(), cb.label() + ": exactly one callback: " + calls);
            // Not onInternalError: Kaa resends a connection error, so close() loses nothing.
            assertEquals(CONNECTION_ERROR, calls.get(0).method, cb.label() + ": nothing reached a dead broker, and "
                    + "Kaa must send it again: " + calls);
            System.out.printf("%s: %s after %.0f ms%n", cb.label(), calls.get(0).method, cb.millisToFirst());
        }
    }


    /**
     * doAppend never waits for the broker, shown without a clock: the broker's acks are held at a proxy until the
     * test lets them through, after every doAppend returned. Each doAppend returns with its pack unanswered, the
     * broker then has the packs and its acks wait at the proxy, still with no answer; once released, every pack
     * gets onSuccess, on another thread. A doAppend that waited for its acks could not return before the release
     * the test makes after it: it would return only when the proxy gives up on the held ack (10 s) and drops the
     * connection, with its pack already answered, which the first assertion catches.
     */
    @ParameterizedTest(name = "qos {0}")
    @ValueSource(ints = {1, 2})
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void doAppendReturnsWhileTheBrokersAcksAreHeld(int qos) {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        GatedProxy.HeldAcks held = new GatedProxy.HeldAcks();
        try (GatedProxy proxy = GatedProxy.start(BROKER.port(), held)) {
            Map<String, Object> cfg = KaaNode.brokerConfig(proxy.port(), topic("held-qos" + qos), qos);
            cfg.put("deliveryTimeoutSeconds", 3600);
            LogAppender appender = load("held-qos" + qos, cfg);
            List<RecordingCallback> cbs = new ArrayList<>();
            for (int p = 0; p < 3; p++) {
                RecordingCallback cb = append(appender, KaaNode.pack(logSchema, 1,
                        telemetryBinaries(schema, new Random(p), "held-q" + qos + "-p" + p, 5)),
                        "pack " + p + " while the acks are held");
                assertEquals(List.of(), cb.calls(), cb.label() + ": doAppend returned with the pack answered, "
                        + "with its acks still held: it waited for the broker");
                cbs.add(cb);
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (proxy.acksWaitedFor() == 0 && System.nanoTime() < deadline) {
                RecordingCallback.sleep(Duration.ofMillis(10));
            }
            assertTrue(proxy.acksWaitedFor() > 0, "the broker never acknowledged: the test shows nothing; "
                    + proxy.stats());
            for (RecordingCallback cb : cbs) {
                assertEquals(List.of(), cb.calls(), cb.label() + ": answered while its acks are held");
            }
            held.release();
            for (RecordingCallback cb : cbs) {
                cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);
            }
            RecordingCallback.sleep(GRACE);
            for (RecordingCallback cb : cbs) {
                cb.assertOnlyOne(SUCCESS);
                cb.assertAnsweredOnlyAfterAppendReturned();
            }
        }
    }

    /**
     * close() drains (issue 13, item 7): the broker's acks for a pack are held back at a proxy; close() returns while
     * the pack still waits (it cannot have been confirmed: its ack is held), a pack appended after close is refused
     * at once, and when the acks are let through the pack in flight at close gets onSuccess. Before, it got
     * onInternalError at close.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void closeLetsPacksInFlightWaitForTheirAcks() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        GatedProxy.HeldAcks held = new GatedProxy.HeldAcks();
        try (GatedProxy proxy = GatedProxy.start(BROKER.port(), held)) {
            Map<String, Object> cfg = KaaNode.brokerConfig(proxy.port(), topic("close-drains"), 1);
            cfg.put("closeTimeoutSeconds", 30);
            LogAppender appender = load("close-drains", cfg);
            RecordingCallback inFlight = append(appender,
                    KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(1), "drain", 3)), "in flight");
            assertDoesNotThrow(appender::close, "close() with a pack in flight");
            assertEquals(List.of(), inFlight.calls(), "its acks are held, so nothing has answered it yet");
            RecordingCallback after = append(appender,
                    KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(2), "drain-late", 3)), "after");
            after.assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ZERO);
            held.release();
            inFlight.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), GRACE);
        }
    }

    /**
     * An appender edited in the admin with packs in flight: the old one drains its connection while the new one, under
     * other connection settings (here the keep-alive) but the same fixed client id, starts. The new connection waits
     * for the old one's goodbye; before, it connected at once, the broker pushed the draining one out, and one of
     * the two moved to another client id (a single node on a broker that admits only exact ids would then be
     * refused). Also when the edit moves it to another port of the same broker (another listener, as when TLS is
     * turned on: here the broker's own port instead of the proxy's), which before it waited for nothing.
     */
    @ParameterizedTest(name = "other port: {0}")
    @ValueSource(booleans = {false, true})
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void anAppenderEditedWithPacksInFlightKeepsItsClientId(boolean otherPort) {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String clientId = "it-edit-" + UUID.randomUUID().toString().substring(0, 8);
        GatedProxy.HeldAcks held = new GatedProxy.HeldAcks();
        try (GatedProxy proxy = GatedProxy.start(BROKER.port(), held)) {
            Map<String, Object> cfg = KaaNode.brokerConfig(proxy.port(), topic("edit"), 1);
            cfg.put("clientId", clientId);
            cfg.put("closeTimeoutSeconds", 30);
            LogAppender before = load("edit", cfg);
            RecordingCallback inFlight = append(before,
                    KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(4), "edit-old", 3)), "in flight");
            before.close();
            cfg.put("keepAliveSeconds", 11);
            if (otherPort) {
                cfg.put("port", BROKER.port());
            }
            LogAppender after = load("edit", cfg);
            RecordingCallback next = append(after,
                    KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(5), "edit-new", 3)), "next");
            RecordingCallback.sleep(Duration.ofSeconds(1));
            held.release();
            inFlight.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ZERO);
            next.assertExactlyOne(SUCCESS, Duration.ofSeconds(30), GRACE);
            String log = BROKER.broker().log();
            assertFalse(log.contains("Client " + clientId + " already connected"), "the broker saw two connections "
                    + "with one client id\n" + BROKER.broker().logTail(30));
            assertFalse(log.contains(clientId + "-"), "a connection moved to another client id\n"
                    + BROKER.broker().logTail(30));
        }
    }

    /**
     * A broker that keeps the connection but stops acknowledging (its acks held by a proxy) is left for the failover
     * broker (here the same broker on its own port) once a message waited past deliveryTimeoutSeconds: the held pack
     * fails as a connection error, and the next is delivered through the failover broker. Before, the appender
     * connected to the first broker again, where every pack failed the same way.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aBrokerThatStopsAcknowledgingIsLeftForTheFailoverBroker() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = topic("stall-failover");
        GatedProxy.HeldAcks held = new GatedProxy.HeldAcks();
        try (GatedProxy proxy = GatedProxy.start(BROKER.port(), held);
                Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Map<String, Object> cfg = KaaNode.brokerConfig(proxy.port(), topic, 1);
            cfg.put("brokers", "127.0.0.1:" + BROKER.port());
            cfg.put("deliveryTimeoutSeconds", 2);
            LogAppender appender = load("stall-failover", cfg);
            RecordingCallback stalled = append(appender, KaaNode.pack(logSchema, 1,
                    telemetryBinaries(schema, new Random(6), "held", 3)), "held");
            stalled.assertExactlyOne(CONNECTION_ERROR, Duration.ofSeconds(15), Duration.ZERO);
            // At its deadline, not at the proxy's own reset of an ack it held 10 s.
            stalled.assertAnsweredBy(Duration.ofSeconds(2));
            // Sent again as Kaa does: the first try may meet the connection the sweep has not yet found
            // stalled (the pack's deadline and the stall's are one timeout), and fail with it.
            List<String> answers = new ArrayList<>();
            for (int attempt = 0; attempt < 2 && !answers.contains(SUCCESS); attempt++) {
                RecordingCallback.Call c = append(appender, KaaNode.pack(logSchema, 1,
                        telemetryBinaries(schema, new Random(7), "after", 3)), "after " + attempt)
                        .awaitFirstOrNull(Duration.ofSeconds(15));
                answers.add(c == null ? "none" : c.method);
            }
            assertEquals(SUCCESS, answers.get(answers.size() - 1), "after: " + answers);
            assertEquals(1, proxy.accepted(), "not back at the broker that stopped acknowledging: " + proxy.stats());
            // The held pack's records reached the broker too: only their acks were held.
            sub.assertCount(6, Duration.ofSeconds(10));
            held.release();
        }
    }

    /** With the acks never let through, the pack in flight at close fails at closeTimeoutSeconds: a connection error. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void closeFailsWhatTheBrokerDoesNotConfirmInTime() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        GatedProxy.HeldAcks held = new GatedProxy.HeldAcks();
        try (GatedProxy proxy = GatedProxy.start(BROKER.port(), held)) {
            Map<String, Object> cfg = KaaNode.brokerConfig(proxy.port(), topic("close-bound"), 1);
            cfg.put("closeTimeoutSeconds", 1);
            LogAppender appender = load("close-bound", cfg);
            RecordingCallback inFlight = append(appender,
                    KaaNode.pack(logSchema, 1, telemetryBinaries(schema, new Random(3), "bound", 3)), "in flight");
            assertDoesNotThrow(appender::close, "close()");
            inFlight.assertExactlyOne(CONNECTION_ERROR, Duration.ofSeconds(20), GRACE);
            // At closeTimeoutSeconds, not at the proxy's own reset of an ack it held 10 s.
            inFlight.assertAnsweredBy(Duration.ofSeconds(1));
            held.release();
        }
    }

    // ------------------------------------------------------------------------------------------------ more payload checks

    /** A record with no fields: Avro 1.7.5 writes nothing; the appender must publish "{}" (one message per record). */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void recordWithoutFieldsIsPublishedAsEmptyObject() {
        String logSchema = TestData.schemaText("empty.avsc");
        Schema schema = AvroReference.parse(logSchema);
        byte[] bin = AvroReference.binary(schema, new GenericData.Record(schema));
        assertEquals(0, bin.length, "a record without fields encodes to no bytes");
        assertEquals(0, AvroReference.kaaJson(schema, bin).length, "Avro 1.7.5 JSON of a record without fields");
        String topic = topic("f-empty-record");
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            LogAppender appender = load("heartbeat", KaaNode.brokerConfig(BROKER.port(), topic, 1));
            RecordingCallback cb = append(appender, KaaNode.pack(logSchema, 1, List.of(bin, bin, bin)), "3 heartbeats");
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), GRACE);
            sub.awaitCount(3, Duration.ofSeconds(10));
            RecordingCallback.sleep(GRACE);
            byte[] obj = "{}".getBytes(StandardCharsets.UTF_8);
            Payloads.assertSameMultiset("record without fields", List.of(obj, obj, obj), sub.payloads());
        }
    }

    /**
     * Edge values of the Avro-JSON encoding, one record per edge so a failure names it: Java's number formatting
     * (Double/Float.toString, NaN and infinities quoted), string escaping and non-ASCII text, invalid UTF-8 in a
     * string, bytes/fixed as ISO-8859-1 code points, every union branch kind (named types by full name), map
     * ordering, nested arrays.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void edgeValuesMatchAvro175ByteForByte() {
        String logSchema = TestData.schemaText("edge.avsc");
        Schema schema = AvroReference.parse(logSchema);
        Schema hash = schema.getField("hash").schema();
        Schema level = schema.getField("level").schema();
        Schema choice = schema.getField("choice").schema();
        Schema point = choice.getTypes().get(10);

        Map<String, Map<String, Object>> cases = new LinkedHashMap<>();
        cases.put("baseline", Map.of());
        String[] texts = {"", "plain ascii", "quote \" backslash \\ slash /", "controls \u0000\u0001\u0008\u000c\n\r\t\u001f\u007f",
            "latin-1 é ü ß ÿ", "bmp 日本語 ✓ \u2028\u2029 \ufeff", "astral 😀 𝄞", "html <script>&amp;</script>"};
        for (int i = 0; i < texts.length; i++) {
            cases.put("text " + i, Map.of("text", texts[i]));
        }
        cases.put("invalid UTF-8 in a string", Map.of("text", new Utf8(new byte[] {'a', (byte) 0xC3, 'b', (byte) 0xFF,
            (byte) 0xED, (byte) 0xA0, (byte) 0x80, 'c', (byte) 0xF0, (byte) 0x9F})));
        int[] ints = {0, -1, 1, Integer.MIN_VALUE, Integer.MAX_VALUE};
        for (int v : ints) {
            cases.put("int " + v, Map.of("i", v));
        }
        long[] longs = {Long.MIN_VALUE, Long.MAX_VALUE, 1L << 53, -(1L << 53) - 1};
        for (long v : longs) {
            cases.put("long " + v, Map.of("l", v));
        }
        // Number formatting edge cases are only meaningful where this JVM formats numbers like the node's Java 8.
        boolean numbers = AvroReference.jvmFormatsNumbersLikeJava8();
        if (!numbers) {
            System.err.println("edge test: float/double formatting cases left out" + AvroReference.NUMBER_FORMAT_NOTE);
        }
        float[] floats = !numbers ? new float[0] : new float[] {0f, -0f, 1f, 0.1f, 1e-5f, 1.0E7f, 1.0E-3f, 123456.79f, 3.4028235E38f, Float.MIN_VALUE,
            Float.MIN_NORMAL, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 16777217f, 2.5E-8f};
        for (float v : floats) {
            cases.put("float " + v, Map.of("f", v));
        }
        double[] doubles = !numbers ? new double[0] : new double[] {0d, -0d, 1d, 100d, 0.1, 0.1 + 0.2, 1e-3, 1e-4, 1e7, 9999999.999, 12345678.9, 1e21, 1e23,
            2.82879384806159E17, 1.0E-5, 4.35E-4, Double.MIN_VALUE, Double.MIN_NORMAL, Double.MAX_VALUE, Double.NaN,
            Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, 1.2345678901234567E-300, (double) 0.1f};
        for (double v : doubles) {
            cases.put("double " + v, Map.of("d", v));
        }
        byte[] all = new byte[256];
        for (int i = 0; i < 256; i++) {
            all[i] = (byte) i;
        }
        cases.put("bytes 0..255", Map.of("raw", ByteBuffer.wrap(all)));
        cases.put("fixed 00 7f 80 ff", Map.of("hash", new GenericData.Fixed(hash, new byte[] {0, 0x7f, (byte) 0x80, (byte) 0xff})));
        cases.put("enum in its own namespace", Map.of("level", new GenericData.EnumSymbol(level, "HIGH")));
        cases.put("union int", Map.of("choice", 42));
        cases.put("union long", Map.of("choice", 42L));
        cases.put("union float", Map.of("choice", 1.5f));
        cases.put("union double", Map.of("choice", 1.5d));
        cases.put("union boolean", Map.of("choice", true));
        cases.put("union string", Map.of("choice", "s"));
        cases.put("union bytes", Map.of("choice", ByteBuffer.wrap(new byte[] {1, (byte) 0xe9})));
        cases.put("union fixed", Map.of("choice", new GenericData.Fixed(hash, new byte[] {1, 2, 3, 4})));
        cases.put("union enum", Map.of("choice", new GenericData.EnumSymbol(level, "LOW")));
        GenericRecord pt = new GenericData.Record(point);
        pt.put("x", 1.0);
        pt.put("y", -2.5E-10);
        cases.put("union record", Map.of("choice", pt));
        cases.put("union array", Map.of("choice", List.of("a", "b")));
        cases.put("union map", Map.of("choice", Map.of("k", 1L)));
        cases.put("optional record present", Map.of("optPoint", pt));
        Map<String, Object> tags = new LinkedHashMap<>();
        for (String k : new String[] {"zeta", "alpha", "mid", "beta", "omega", "a", "b", "c", "dd", "\u00e9t\u00e9",
            "key with \"quote\"", "1", "10", "2"}) {
            tags.put(k, k.length() % 3 == 0 ? null : "v-" + k);
        }
        cases.put("map with 14 keys (Java HashMap order after Avro decoding)", Map.of("tags", tags));
        cases.put("map with 2 keys", Map.of("tags", new LinkedHashMap<>(Map.of("b", "1", "a", "2"))));
        cases.put("nested arrays", Map.of("matrix", List.of(List.of(), List.of(1.0, -0.5, 1e300), List.of(3.0))));
        if (numbers) {
            // Java's pre-JDK-19 toString is not the shortest representation for a fraction of all values: random
            // bit patterns (finite) find those that a hand-written list misses.
            Random rnd = new Random(1919);
            for (int k = 0; k < 10; k++) {
                List<Double> ds = new ArrayList<>();
                while (ds.size() < 200) {
                    double d = Double.longBitsToDouble(rnd.nextLong());
                    if (!Double.isNaN(d) && !Double.isInfinite(d)) {
                        ds.add(d);
                    }
                }
                cases.put("200 random-bit doubles #" + k, Map.of("matrix", List.of(ds)));
                List<Float> fs = new ArrayList<>();
                while (fs.size() < 200) {
                    float f = Float.intBitsToFloat(rnd.nextInt());
                    if (!Float.isNaN(f) && !Float.isInfinite(f)) {
                        fs.add(f);
                    }
                }
                cases.put("200 random-bit floats #" + k, Map.of("floats", fs));
                List<Double> plain = new ArrayList<>();
                for (int i = 0; i < 200; i++) {
                    plain.add((rnd.nextDouble() - 0.5) * Math.pow(10, rnd.nextInt(16) - 8));
                }
                cases.put("200 random doubles of everyday magnitude #" + k, Map.of("matrix", List.of(plain)));
            }
        }

        List<byte[]> bins = new ArrayList<>();
        Map<String, byte[]> expectedById = new LinkedHashMap<>();
        int n = 0;
        for (Map.Entry<String, Map<String, Object>> c : cases.entrySet()) {
            String id = "edge-" + (n++);
            GenericRecord r = edgeBaseline(schema, hash, level, id);
            for (Map.Entry<String, Object> f : c.getValue().entrySet()) {
                r.put(f.getKey(), f.getValue());
            }
            byte[] bin = AvroReference.binary(schema, r);
            bins.add(bin);
            expectedById.put(id, AvroReference.expectedPayload(schema, bin));
        }
        List<String> caseNames = new ArrayList<>(cases.keySet());

        String topic = topic("g-edge");
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            LogAppender appender = load("edge", KaaNode.brokerConfig(BROKER.port(), topic, 1));
            RecordingCallback cb = append(appender, KaaNode.pack(logSchema, 1, bins), "edge pack");
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), GRACE);
            sub.awaitCount(bins.size(), Duration.ofSeconds(10));
            RecordingCallback.sleep(GRACE);

            Map<String, byte[]> gotById = new HashMap<>();
            List<byte[]> unidentified = new ArrayList<>();
            for (byte[] p : sub.payloads()) {
                String id = Payloads.idOf(p);
                if (id == null || gotById.put(id, p) != null) {
                    unidentified.add(p);
                }
            }
            List<String> mismatches = new ArrayList<>();
            int i = 0;
            for (Map.Entry<String, byte[]> e : expectedById.entrySet()) {
                String name = caseNames.get(i++);
                byte[] got = gotById.get(e.getKey());
                if (got == null) {
                    mismatches.add("[" + name + "] not received; expected " + Payloads.show(e.getValue()));
                } else if (!Arrays.equals(e.getValue(), got)) {
                    mismatches.add("[" + name + "]\n      expected " + Payloads.show(e.getValue()) + "\n      received "
                            + Payloads.show(got) + "\n      " + Payloads.firstDifference(e.getValue(), got));
                }
            }
            for (byte[] u : unidentified) {
                mismatches.add("[duplicate or without id] received " + Payloads.show(u));
            }
            if (!mismatches.isEmpty()) {
                fail(mismatches.size() + " of " + cases.size() + " edge records differ from Avro 1.7.5:\n    "
                        + String.join("\n    ", mismatches) + AvroReference.NUMBER_FORMAT_NOTE);
            }
        }
    }

    private static GenericRecord edgeBaseline(Schema schema, Schema hash, Schema level, String id) {
        GenericRecord r = new GenericData.Record(schema);
        r.put("id", id);
        r.put("text", "t");
        r.put("i", 7);
        r.put("l", 7L);
        r.put("f", 0.5f);
        r.put("d", 0.25);
        r.put("b", false);
        r.put("nothing", null);
        r.put("raw", ByteBuffer.wrap(new byte[0]));
        r.put("hash", new GenericData.Fixed(hash, new byte[] {'a', 'b', 'c', 'd'}));
        r.put("level", new GenericData.EnumSymbol(level, "LOW"));
        r.put("choice", null);
        r.put("optPoint", null);
        r.put("tags", Collections.emptyMap());
        r.put("matrix", Collections.emptyList());
        r.put("floats", Collections.emptyList());
        return r;
    }

    /** qos above 2 (the original form's default was 3) publishes at QoS 2. */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void qosAboveTwoPublishesAtTwo() {
        String logSchema = TestData.schemaText("simple.avsc");
        Schema schema = AvroReference.parse(logSchema);
        GenericRecord r = new GenericData.Record(schema);
        r.put("id", "qos3");
        r.put("level", new GenericData.EnumSymbol(schema.getField("level").schema(), "C"));
        r.put("note", null);
        r.put("value", -1);
        byte[] bin = AvroReference.binary(schema, r);
        String topic = topic("h-qos3");
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 2)) {
            LogAppender appender = load("qos3", KaaNode.brokerConfig(BROKER.port(), topic, 3));
            RecordingCallback cb = append(appender, KaaNode.pack(logSchema, 1, List.of(bin)), "qos 3 pack");
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), GRACE);
            sub.awaitCount(1, Duration.ofSeconds(10));
            List<Subscriber.Received> msgs = sub.messages();
            assertEquals(1, msgs.size(), "messages received");
            assertEquals(2, msgs.get(0).qos, "configured qos 3 must publish at QoS 2");
            Payloads.assertSameMultiset("qos 3", List.of(AvroReference.expectedPayload(schema, bin)), sub.payloads());
        }
    }

    // The configuration stored by the original appender: OriginalConfigTest.

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.INTERNAL_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import javax.management.ObjectName;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/** Topic templates and the publish options beyond the original's, each against Mosquitto. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TopicAndOptionsTest {

    private static final Schema SCHEMA = AvroReference.parse("{\"type\":\"record\",\"name\":\"Reading\",\"fields\":["
            + "{\"name\":\"device\",\"type\":{\"type\":\"record\",\"name\":\"Device\",\"fields\":["
            + "{\"name\":\"id\",\"type\":[\"null\",\"string\"]},{\"name\":\"room\",\"type\":\"int\"}]}},"
            + "{\"name\":\"value\",\"type\":\"double\"},{\"name\":\"text\",\"type\":\"string\"}]}");

    /** The broker only: these tests close their appenders themselves, some of them half-way through. */
    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    private static byte[] reading(String id, int room, double value, String text) {
        GenericRecord device = new GenericData.Record(SCHEMA.getField("device").schema());
        device.put("id", id);
        device.put("room", room);
        GenericRecord r = new GenericData.Record(SCHEMA);
        r.put("device", device);
        r.put("value", value);
        r.put("text", text);
        return AvroReference.binary(SCHEMA, r);
    }

    private static LogAppender load(Map<String, Object> cfg) {
        return KaaNode.load("topics", KaaNode.config(cfg));
    }

    private static RecordingCallback append(LogAppender appender, List<byte[]> records) {
        RecordingCallback cb = new RecordingCallback();
        appender.doAppend(KaaNode.pack(SCHEMA.toString(), 4, records), cb);
        return cb;
    }

    /** The topics of what {@code sub} received, in order. */
    private static List<String> topics(Subscriber sub) {
        List<String> topics = new ArrayList<>();
        for (Subscriber.Received m : sub.messages()) {
            topics.add(m.topic);
        }
        return topics;
    }

    /**
     * After a refused pack, with {@code sub} subscribed to {@code base/#} before it: a good pack to
     * {@code base/fine} goes out on the same connection, after anything published before it, and must arrive alone,
     * so nothing of the refused pack was published.
     */
    private static void assertOnlyNext(LogAppender appender, Subscriber sub, String base) {
        append(appender, Arrays.asList(reading("fine", 1, 1, "z")))
                .assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(100));
        sub.awaitCount(1, Duration.ofSeconds(10));
        assertEquals(Arrays.asList(base + "/fine"), topics(sub), "only the good pack's record");
    }

    @Test
    void templateSubstitutesHeaderAndRecordFieldsWithoutAddingLevels() {
        String base = "t" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), base
                + "/{applicationToken}/{appenderName}/v{logSchemaVersion}/{event.device.id}/{event.device.room}", 1);
        LogAppender appender = load(cfg);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), base + "/#", 1)) {
            List<byte[]> records = Arrays.asList(reading("lamp-1", 3, 1.5, "a"), reading("evil/+/#", 12, 2, "b"));
            append(appender, records).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(100));
            sub.awaitCount(2, Duration.ofSeconds(10));
            List<String> topics = topics(sub);
            Collections.sort(topics);
            String prefix = base + "/" + KaaNode.APPLICATION_TOKEN + "/topics/v4/";
            assertEquals(Arrays.asList(prefix + "evil____/12", prefix + "lamp-1/3"), topics);
        } finally {
            appender.close();
        }
    }

    @Test
    void unresolvableTemplateFailsThePackAsInternalError() {
        String base = "u" + UUID.randomUUID().toString().substring(0, 8);
        LogAppender appender = load(KaaNode.brokerConfig(BROKER.port(), base + "/{event.device.id}", 1));
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), base + "/#", 1)) {
            // device.id null: no topic can be made; the whole pack fails, nothing is published.
            append(appender, Arrays.asList(reading("ok", 1, 1, "x"), reading(null, 1, 1, "y")))
                    .assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ofMillis(300));
            assertOnlyNext(appender, sub, base);
        } finally {
            appender.close();
        }
    }

    /**
     * MQTT writes a topic's length in 16 bits. A record whose field makes the topic longer than 65,535 bytes of UTF-8
     * (here 33,000 characters of two bytes each: within the limit counted in characters) fails its pack, and the
     * connection the appender shares is never reset: the next pack goes out on the same one.
     */
    @Test
    void topicOverTheMqttLimitFailsItsPackAndLeavesTheConnectionAlone() {
        String base = "l" + UUID.randomUUID().toString().substring(0, 8);
        String clientId = "long-topic-" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), base + "/{event.device.id}", 1);
        cfg.put("clientId", clientId);
        LogAppender appender = load(cfg);
        char[] wide = new char[33_000];
        Arrays.fill(wide, '\u00e9');
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), base + "/#", 1)) {
            append(appender, Arrays.asList(reading("ok", 1, 1, "x"), reading(new String(wide), 1, 1, "y")))
                    .assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ofMillis(300));
            assertOnlyNext(appender, sub, base);
            BROKER.broker().assertConnectedOnce(clientId);
        } finally {
            appender.close();
        }
    }

    /**
     * Mosquitto refuses a topic holding a control character or a Unicode noncharacter as a malformed packet and drops
     * the client's connection, which every appender on it shares. Such characters in a record's field become {@code _}
     * in its topic: the pack is delivered, on the one connection, and so is the next.
     */
    @Test
    void controlCharactersFromARecordNeverResetTheConnection() {
        String base = "c" + UUID.randomUUID().toString().substring(0, 8);
        String clientId = "control-chars-" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), base + "/{event.device.id}", 1);
        cfg.put("clientId", clientId);
        LogAppender appender = load(cfg);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), base + "/#", 1)) {
            append(appender, Arrays.asList(reading("line\nbreak", 1, 1, "x"), reading("del\u007f-\u0085-\ufdd0-\uffff",
                    1, 1, "y"))).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(100));
            append(appender, Arrays.asList(reading("fine", 1, 1, "z")))
                    .assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(100));
            sub.awaitCount(3, Duration.ofSeconds(10));
            List<String> topics = topics(sub);
            Collections.sort(topics);
            assertEquals(Arrays.asList(base + "/del_-_-_-_", base + "/fine", base + "/line_break"), topics);
            BROKER.broker().assertConnectedOnce(clientId);
        } finally {
            appender.close();
        }
    }

    /** The JMX beans of the appenders named {@code appenderName}: one for each that started. */
    private static Set<ObjectName> beans(String appenderName) throws Exception {
        return ManagementFactory.getPlatformMBeanServer().queryNames(new ObjectName(
                "org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="
                        + ObjectName.quote(appenderName) + ",*"), null);
    }

    /**
     * An unknown placeholder fails init: the appender never starts (no native appender, so no JMX bean, which
     * every started appender registers within init), and its packs are refused with onInternalError. An
     * appender that started anyway and refused each pack would have its bean; the same appender with a known
     * placeholder shows that it would.
     */
    @Test
    void unknownPlaceholderKeepsTheAppenderFromStarting() throws Exception {
        String name = "placeholder-" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), "x/{colour}", 1);
        LogAppender appender = KaaNode.load(name, KaaNode.config(cfg));
        try {
            assertEquals(Set.of(), beans(name), "init failed, so nothing was started: no bean");
            append(appender, Arrays.asList(reading("a", 1, 1, "x")))
                    .assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(5), Duration.ofMillis(100));
        } finally {
            appender.close();
        }
        cfg.put("mqtttopic", "x/{appenderName}");
        LogAppender started = KaaNode.load(name, KaaNode.config(cfg));
        try {
            assertEquals(1, beans(name).size(), "with a known placeholder it starts, and has its bean");
            append(started, Arrays.asList(reading("a", 1, 1, "x")))
                    .assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
        } finally {
            started.close();
        }
    }

    @Test
    void retainedMessagesReachLaterSubscribers() {
        String topic = "r/" + UUID.randomUUID();
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        cfg.put("retain", true);
        LogAppender appender = load(cfg);
        try {
            append(appender, Arrays.asList(reading("a", 1, 1, "kept")))
                    .assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
        } finally {
            appender.close();
        }
        // Subscribed only after the publish: only a retained message can arrive.
        try (Subscriber late = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            late.awaitCount(1, Duration.ofSeconds(10));
            List<Subscriber.Received> got = late.messages();
            assertEquals(1, got.size());
            assertTrue(got.get(0).retained, "the broker marks it retained");
            assertTrue(new String(got.get(0).payload, StandardCharsets.UTF_8).contains("\"kept\""));
        }
    }

    /**
     * A pack with more records than half of maxPendingRecords (what one pack may hold, so that one endpoint leaves
     * the other half to the rest) can never be accepted: as a connection error Kaa would resend it forever, so it is
     * the pack's fault (onInternalError), and packs that fit still go through.
     */
    @Test
    void packLargerThanHalfOfMaxPendingRecordsIsAnInternalError() {
        String topic = "pending/" + UUID.randomUUID();
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        cfg.put("maxPendingRecords", 6);
        LogAppender appender = load(cfg);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            List<byte[]> five = new ArrayList<>();
            for (int i = 0; i < 5; i++) {
                five.add(reading("p" + i, i, i, "x"));
            }
            append(appender, five).assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ofMillis(100));
            append(appender, five.subList(0, 3)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(100));
            assertEquals(3, sub.awaitCount(3, Duration.ofSeconds(10)).size());
        } finally {
            appender.close();
        }
    }

    @Test
    void oversizedMessageFailsItsPackAndSmallerOnesGoThrough() {
        String topic = "big/" + UUID.randomUUID();
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        cfg.put("maxMessageBytes", 2000);
        LogAppender appender = load(cfg);
        char[] big = new char[3000];
        Arrays.fill(big, 'x');
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            append(appender, Arrays.asList(reading("a", 1, 1, new String(big))))
                    .assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ofMillis(100));
            append(appender, Arrays.asList(reading("a", 1, 1, new String(big, 0, 1500))))
                    .assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(100));
            assertEquals(1, sub.awaitCount(1, Duration.ofSeconds(10)).size());
        } finally {
            appender.close();
        }
        // Well over rumqttc's own 10 KiB default: the default limit lets it through.
        LogAppender roomy = load(KaaNode.brokerConfig(BROKER.port(), topic, 1));
        try {
            char[] large = new char[200_000];
            Arrays.fill(large, 'y');
            append(roomy, Arrays.asList(reading("a", 1, 1, new String(large))))
                    .assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
        } finally {
            roomy.close();
        }
    }

    @Test
    void keepAliveAndCleanSessionReachTheBroker() {
        String clientId = "opts-" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), "o/" + clientId, 1);
        cfg.put("clientId", clientId);
        cfg.put("keepAliveSeconds", 7);
        cfg.put("cleanSession", false);
        LogAppender appender = load(cfg);
        try {
            append(appender, Arrays.asList(reading("a", 1, 1, "x")))
                    .assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
            // Mosquitto logs each connection as "... as <id> (p2, c<clean>, k<keepalive>)".
            String log = BROKER.broker().logTail(200);
            assertTrue(log.contains("as " + clientId + " (p2, c0, k7)"), log);
        } finally {
            appender.close();
        }
    }

    /**
     * A peer that accepts TCP but never answers CONNECT: with a 1 s connect timeout the appender gives up and
     * tries again, three attempts within 8 s (about 2.5 s are needed); with 10 s, the default, it is still waiting
     * on its first attempt 8 s after that attempt began (timed from its accept, so a slow init moves nothing). Were
     * the setting ignored, the first case would see one attempt.
     */
    @Test
    void connectTimeoutBoundsEachAttempt() throws Exception {
        for (int timeout : new int[] {1, 10}) {
            try (java.net.ServerSocket silent = new java.net.ServerSocket(0, 50,
                    java.net.InetAddress.getLoopbackAddress())) {
                List<java.net.Socket> accepted = Collections.synchronizedList(new ArrayList<>());
                List<Long> acceptedAt = Collections.synchronizedList(new ArrayList<>());
                Thread acceptor = new Thread(() -> {
                    try {
                        while (true) {
                            accepted.add(silent.accept());
                            acceptedAt.add(System.nanoTime());
                        }
                    } catch (java.io.IOException closed) {
                        // the test is over
                    }
                });
                acceptor.setDaemon(true);
                acceptor.start();
                Map<String, Object> cfg = KaaNode.brokerConfig(silent.getLocalPort(), "t/x", 1);
                cfg.put("connectTimeoutSeconds", timeout);
                LogAppender appender = load(cfg);
                try {
                    long eightSeconds = java.util.concurrent.TimeUnit.SECONDS.toNanos(8);
                    long until = System.nanoTime() + eightSeconds;
                    while (acceptedAt.size() < (timeout == 1 ? 3 : 1) && System.nanoTime() < until) {
                        Thread.sleep(20);
                    }
                    if (timeout == 1) {
                        assertTrue(acceptedAt.size() >= 3, "attempts with a 1 s timeout within 8 s: "
                                + acceptedAt.size());
                    } else {
                        assertEquals(1, acceptedAt.size(), "the first attempt with a 10 s timeout, within 8 s");
                        while (System.nanoTime() - acceptedAt.get(0) < eightSeconds) {
                            Thread.sleep(20);
                        }
                        assertEquals(1, acceptedAt.size(), "attempts with a 10 s timeout, 8 s into the first");
                    }
                } finally {
                    appender.close();
                    for (java.net.Socket s : accepted) {
                        s.close();
                    }
                }
            }
        }
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.INTERNAL_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.REMOTE_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import javax.management.MBeanServer;
import javax.management.ObjectName;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.codehaus.jackson.JsonNode;
import org.codehaus.jackson.map.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/** MQTT 5, the liveness status topic, failover brokers and several connections, against Mosquitto. */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class BrokerFeaturesTest {

    private static final String TELEMETRY = TestData.schemaText("telemetry.avsc");
    private static final Schema SCHEMA = AvroReference.parse(TELEMETRY);

    private static List<byte[]> records(int n, int seed) {
        return TestData.telemetryBinaries(SCHEMA, new java.util.Random(seed), n, i -> "bf-" + seed + "-" + i);
    }

    /** The ids of {@link #records}' records. */
    private static List<String> ids(int n, int seed) {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ids.add("bf-" + seed + "-" + i);
        }
        return ids;
    }

    private static Map<String, Object> mqtt5(Map<String, Object> cfg) {
        cfg.put("mqttVersion", new GenericData.EnumSymbol(KaaNode.configSchema().getField("mqttVersion").schema(),
                "MQTT_5"));
        return cfg;
    }

    /**
     * An appender named {@code name} publishing to {@code topic} at {@code qos} as {@code clientId}: appenders given
     * one id share one connection.
     */
    private static LogAppender sharingAs(Mosquitto broker, String clientId, String name, String topic, int qos) {
        return sharingAs(broker, clientId, name, topic, qos, "MQTT_3_1_1");
    }

    private static LogAppender sharingAs(Mosquitto broker, String clientId, String name, String topic, int qos,
            String version) {
        Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), topic, qos);
        cfg.put("clientId", clientId);
        cfg.put("mqttVersion", new GenericData.EnumSymbol(KaaNode.configSchema().getField("mqttVersion").schema(),
                version));
        return KaaNode.load(name, KaaNode.config(cfg));
    }

    private static RecordingCallback append(LogAppender appender, List<byte[]> records) {
        RecordingCallback cb = new RecordingCallback();
        appender.doAppend(KaaNode.pack(TELEMETRY, 3, records), cb);
        return cb;
    }

    /**
     * mosquitto_sub on {@code topic} by MQTT 5, for {@code count} messages, printing each with its properties:
     * {@code MSG|content type|expiry|user properties|payload}. Returns once it has subscribed (-d prints the SUBACK;
     * stdbuf, since a pipe would hold its output back until it exits).
     */
    private static Process subscribeV5(Mosquitto broker, String topic, int count) throws IOException {
        Process sub = new ProcessBuilder("stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p",
                String.valueOf(broker.port()), "-V", "5", "-q", "1", "-t", topic, "-C", String.valueOf(count), "-W",
                "20", "-d", "-F", "MSG|%C|%E|%P|%p").redirectErrorStream(true).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(sub.getInputStream(), StandardCharsets.UTF_8));
        for (String line = out.readLine(); line != null && !line.contains("SUBACK"); line = out.readLine()) {
            // wait until subscribed
        }
        return sub;
    }

    /** The MSG lines a {@link #subscribeV5} subscriber printed, once it has exited. */
    private static List<String> messagesV5(Process sub) throws IOException, InterruptedException {
        BufferedReader out = new BufferedReader(new InputStreamReader(sub.getInputStream(), StandardCharsets.UTF_8));
        List<String> messages = new ArrayList<>();
        for (String line = out.readLine(); line != null; line = out.readLine()) {
            if (line.startsWith("MSG|")) {
                messages.add(line);
            }
        }
        assertTrue(sub.waitFor(10, TimeUnit.SECONDS));
        return messages;
    }

    /**
     * Moquette 0.17 (MQTT 3.1.1) drops a publish its authorizer denies and sends no PUBACK for it, where Mosquitto
     * acknowledges it and AWS IoT and HiveMQ close the connection. The pack is never confirmed: it waits, unanswered,
     * until its deadline, then fails as a connection error Kaa sends again. Its packet id stays taken all that time,
     * and must hold up nothing else: packs published after it on the same connection, to a topic the broker allows,
     * more of them than there are packet ids (1,024 with the automatic {@code maxInflight}), so the ids come round to
     * the taken one, are delivered and confirmed before it is answered, and the connection they share is not made
     * anew.
     */
    @Test
    void mqtt311PublishDroppedUnacknowledgedFailsAtItsDeadlineAndHoldsUpNothing() throws Exception {
        try (Moquette broker = Moquette.startDenying("denied/")) {
            String clientId = "drop-" + UUID.randomUUID().toString().substring(0, 8);
            Map<String, Object> deniedConfig = KaaNode.brokerConfig(broker.tcpPort(), "denied/x", 1);
            Map<String, Object> allowedConfig = KaaNode.brokerConfig(broker.tcpPort(), "allowed/x", 1);
            for (Map<String, Object> cfg : List.of(deniedConfig, allowedConfig)) {
                cfg.put("clientId", clientId);
                cfg.put("deliveryTimeoutSeconds", 10);
            }
            LogAppender denied = KaaNode.load("dropped", KaaNode.config(deniedConfig));
            LogAppender allowed = KaaNode.load("kept", KaaNode.config(allowedConfig));
            MBeanServer server = ManagementFactory.getPlatformMBeanServer();
            try (Subscriber sub = Subscriber.subscribe(broker.tcpPort(), "allowed/x", 1)) {
                RecordingCallback dropped = append(denied, records(1, 40));
                List<byte[]> kept = new ArrayList<>();
                List<RecordingCallback> keptPacks = new ArrayList<>();
                for (int p = 0; p < 5; p++) {
                    List<byte[]> pack = records(250, 41 + p);
                    kept.addAll(pack);
                    keptPacks.add(append(allowed, pack));
                }
                for (RecordingCallback pack : keptPacks) {
                    assertEquals(SUCCESS, pack.awaitFirst(Duration.ofSeconds(8)).method, pack.label());
                }
                assertTrue(dropped.calls().isEmpty(), "the dropped pack answered before its deadline, or the packs "
                        + "after it waited for its packet id: " + dropped.calls());
                Payloads.assertSameMultiset("the allowed packs", AvroReference.expectedPayloads(SCHEMA, kept),
                        sub.assertCount(kept.size(), Duration.ofSeconds(10)));
                ObjectName bean = server.queryNames(new ObjectName("org.kaaproject.kaa.server.appenders.pahomqtt:"
                        + "type=PahoMqttAppender,name=\"kept\",*"), null).iterator().next();
                assertEquals(0L, server.getAttribute(bean, "Reconnects"), "the shared connection was made anew");
                assertEquals(1L, server.getAttribute(bean, "RecordsAwaitingBroker"), "the dropped record, on the "
                        + "connection both appenders share, and nothing of the 1,250 confirmed");
                // Neither acknowledged nor closed at: no answer until its deadline draws near (judged by when the
                // answer came, so a slow machine cannot make it look early).
                dropped.assertExactlyOne(CONNECTION_ERROR, Duration.ofSeconds(15), Duration.ofMillis(300));
                assertTrue(dropped.millisToFirst() >= 9000, "answered before its deadline, after "
                        + dropped.millisToFirst() + " ms");
            } finally {
                denied.close();
                allowed.close();
            }
        }
    }

    @Test
    void mqtt5RefusalOfAnAclDeniedTopicIsARemoteError() throws Exception {
        try (Mosquitto broker = Mosquitto.anonymous()) {
            Path acl = Files.writeString(broker.dir().resolve("acl"), "topic write allowed/#\n");
            broker.extraConfig("acl_file " + acl.toAbsolutePath());
            broker.start();
            LogAppender denied = KaaNode.load("denied", KaaNode.config(mqtt5(
                    KaaNode.brokerConfig(broker.port(), "denied/x", 1))));
            LogAppender allowed = KaaNode.load("allowed", KaaNode.config(mqtt5(
                    KaaNode.brokerConfig(broker.port(), "allowed/x", 1))));
            try {
                append(denied, records(3, 1)).assertExactlyOne(REMOTE_ERROR, Duration.ofSeconds(10),
                        Duration.ofMillis(300));
                append(allowed, records(3, 2)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10),
                        Duration.ofMillis(300));
                // Over JMX the refusal counts as remote, for its appender only.
                Map<String, Object> deniedFigures = figures("denied");
                assertEquals(1L, deniedFigures.get("PacksFailedRemote"), deniedFigures.toString());
                assertEquals(0L, deniedFigures.get("PacksFailedConnection"), deniedFigures.toString());
                assertEquals(3L, deniedFigures.get("RecordsFailed"), deniedFigures.toString());
                Map<String, Object> allowedFigures = figures("allowed");
                assertEquals(0L, allowedFigures.get("PacksFailedRemote"), allowedFigures.toString());
                assertEquals(1L, allowedFigures.get("PacksDelivered"), allowedFigures.toString());
            } finally {
                denied.close();
                allowed.close();
            }
        }
    }

    /**
     * An ACL that allows the records' topics but not statusTopic (an operator adding a status topic outside the
     * allowed prefix): the records keep flowing, on one connection.
     */
    @ParameterizedTest
    @ValueSource(strings = {"MQTT_3_1_1", "MQTT_5"})
    void aStatusTopicTheBrokerDeniesLeavesTheRecordsFlowing(String version) throws Exception {
        try (Mosquitto broker = Mosquitto.anonymous()) {
            Path acl = Files.writeString(broker.dir().resolve("acl"), "topic readwrite allowed/#\n");
            broker.extraConfig("acl_file " + acl.toAbsolutePath());
            broker.start();
            Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), "allowed/x", 1);
            cfg.put("mqttVersion", new GenericData.EnumSymbol(KaaNode.configSchema().getField("mqttVersion").schema(),
                    version));
            cfg.put("statusTopic", "denied/status");
            String clientId = "status-denied-" + UUID.randomUUID().toString().substring(0, 6);
            cfg.put("clientId", clientId);
            LogAppender appender = KaaNode.load("status-denied", KaaNode.config(cfg));
            try (Subscriber sub = Subscriber.subscribe(broker.port(), "allowed/x", 1)) {
                for (int p = 0; p < 3; p++) {
                    append(appender, records(2, 200 + p)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10),
                            Duration.ZERO);
                    Thread.sleep(500);
                }
                sub.awaitCount(6, Duration.ofSeconds(10));
                broker.assertConnectedOnce(clientId);
            } finally {
                appender.close();
            }
        }
    }

    /** The JMX figures of the appender named {@code name}, by attribute. */
    private static Map<String, Object> figures(String name) throws Exception {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        ObjectName bean = server.queryNames(new ObjectName("org.kaaproject.kaa.server.appenders.pahomqtt:"
                + "type=PahoMqttAppender,name=\"" + name + "\",*"), null).iterator().next();
        Map<String, Object> figures = new HashMap<>();
        for (javax.management.MBeanAttributeInfo a : server.getMBeanInfo(bean).getAttributes()) {
            figures.put(a.getName(), server.getAttribute(bean, a.getName()));
        }
        return figures;
    }

    /**
     * Mosquitto answers a publish its ACL denies with PUBACK (QoS 1) or PUBREC (QoS 2) carrying reason code 135, and
     * then closes the connection; the refusal and the close often arrive in one read, and rumqttc then returns the
     * connection error before the refusal's event. Each round is a new connection (its own client id), so each
     * meets that race afresh: every one must be the broker's refusal, never a connection error.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void mqtt5AclRefusalIsARemoteErrorEveryTime(int qos) throws IOException {
        try (Mosquitto broker = Mosquitto.anonymous()) {
            Path acl = Files.writeString(broker.dir().resolve("acl"), "topic write allowed/#\n");
            broker.extraConfig("acl_file " + acl.toAbsolutePath());
            broker.start();
            assertEquals(java.util.Collections.nCopies(20, REMOTE_ERROR), refusedTwentyTimes(broker.port(), qos),
                    "QoS " + qos);
        }
    }

    /** Twenty rounds of a new MQTT 5 appender publishing one pack to denied/x: the answer of each. */
    private static List<String> refusedTwentyTimes(int port, int qos) {
        List<String> answers = new ArrayList<>();
        for (int round = 0; round < 20; round++) {
            Map<String, Object> cfg = mqtt5(KaaNode.brokerConfig(port, "denied/x", qos));
            cfg.put("clientId", "denied-" + qos + "-" + round + "-" + UUID.randomUUID().toString().substring(0, 6));
            LogAppender denied = KaaNode.load("denied-" + round, KaaNode.config(cfg));
            try {
                RecordingCallback cb = append(denied, records(1, 100 + round));
                answers.add(cb.awaitFirst(Duration.ofSeconds(10)).method);
            } finally {
                denied.close();
            }
        }
        return answers;
    }

    /**
     * The race of the test above, every time: a broker that sends its refusal (reason 135) and closes the connection
     * at once, so the refusal and the end of the stream arrive in one read. Mosquitto 2.0.11 on this machine keeps
     * the connection open after a refusal, so a scripted broker shows it.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void mqtt5RefusalFollowedByACloseIsARemoteErrorEveryTime(int qos) throws IOException {
        try (ScriptedBroker broker = new ScriptedBroker(ScriptedBroker.Mode.REFUSE_AND_CLOSE)) {
            assertEquals(java.util.Collections.nCopies(20, REMOTE_ERROR), refusedTwentyTimes(broker.port(), qos),
                    "QoS " + qos);
        }
    }

    /**
     * An MQTT 5 broker that closes the connection soon after accepting it, for a reason other than a takeover (here a
     * refused message), leaves the client id alone: MQTT 5 brokers say "session taken over" (0x8E) when that is the
     * reason, so only that is taken for one. (Before: any close within 3 s of the connect counted as a takeover, and
     * the appender connected as another client id until the node restarted.)
     */
    @Test
    void mqtt5EarlyClosesForOtherReasonsAreNotTakenForTakeovers() throws Exception {
        try (ScriptedBroker broker = new ScriptedBroker(ScriptedBroker.Mode.REFUSE_AND_CLOSE)) {
            // A topic of each record's own: the appender fails a pack to a topic refused lately unpublished.
            Map<String, Object> cfg = mqtt5(KaaNode.brokerConfig(broker.port(), "denied/{event.id}", 1));
            String clientId = "early-close-" + UUID.randomUUID().toString().substring(0, 6);
            cfg.put("clientId", clientId);
            LogAppender appender = KaaNode.load("early close", KaaNode.config(cfg));
            try {
                // Now and then the close overtakes the refusal on this machine, or a pack reaches the connection
                // as it closes (the pack is then a connection error): such a close says nothing, and may be taken
                // for a takeover. A refused one may not.
                long refused = 0;
                for (int round = 0; round < 3; round++) {
                    RecordingCallback cb = append(appender, records(1, 200 + round));
                    String answer = cb.awaitFirst(Duration.ofSeconds(10)).method;
                    assertTrue(answer.equals(REMOTE_ERROR) || answer.equals(CONNECTION_ERROR), answer);
                    refused += answer.equals(REMOTE_ERROR) ? 1 : 0;
                }
                assertTrue(refused > 0, "no refusal reached the appender");
                javax.management.MBeanServer server = java.lang.management.ManagementFactory.getPlatformMBeanServer();
                javax.management.ObjectName bean = server.queryNames(new javax.management.ObjectName(
                        "org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="
                                + javax.management.ObjectName.quote("early close") + ",*"), null).iterator().next();
                long takeovers = (Long) server.getAttribute(bean, "Takeovers");
                assertTrue(takeovers <= 3 - refused, "takeovers " + takeovers + " with " + refused + " refusals");
                // What the broker saw: the configured id, and another only after a takeover counted above.
                List<String> ids = broker.clientIds();
                assertEquals(clientId, ids.get(0), "first connect: " + ids);
                assertTrue(takeovers > 0 || ids.stream().allMatch(clientId::equals),
                        "the client id moved without a takeover: " + ids);
            } finally {
                appender.close();
            }
        }
    }

    /**
     * What awaits the broker's acks stays within the window the connection agreed: an MQTT 5 broker's receive maximum,
     * counted up to PUBACK (QoS 1) or PUBCOMP (QoS 2) as the specification counts it, or without one (MQTT 3.1.1) 100
     * messages, 20 at QoS 2. A broker holds every final ack back, so what the appender published before it stopped is
     * its window; released, the pack completes. maxInflight (last in each case; 0: automatic) sets it, within the
     * receive maximum. Before the window was agreed, a broker announcing 300 got 100 at QoS 1 and 20 at QoS 2.
     * Cases: version, QoS, the broker's receive maximum (0: none), the window, maxInflight.
     */
    @ParameterizedTest
    @ValueSource(strings = {"MQTT_5 1 300 300 0", "MQTT_5 2 300 300 0", "MQTT_5 2 5 5 0", "MQTT_3_1_1 1 0 100 0",
        "MQTT_3_1_1 2 0 20 0", "MQTT_3_1_1 1 0 7 7", "MQTT_3_1_1 2 0 150 150", "MQTT_5 1 5 5 50",
        "MQTT_5 2 300 40 40"})
    void messagesInFlightStayWithinTheAgreedWindow(String testCase) throws Exception {
        String[] c = testCase.split(" ");
        int qos = Integer.parseInt(c[1]);
        int window = Integer.parseInt(c[3]);
        try (ScriptedBroker broker = new ScriptedBroker(ScriptedBroker.Mode.HOLD, Integer.parseInt(c[2]))) {
            Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), "window/x", qos);
            cfg.put("mqttVersion", new GenericData.EnumSymbol(KaaNode.configSchema().getField("mqttVersion").schema(),
                    c[0]));
            cfg.put("maxInflight", Integer.parseInt(c[4]));
            LogAppender appender = KaaNode.load("window", KaaNode.config(cfg));
            try {
                RecordingCallback pack = append(appender, records(window + 30, 50));
                long until = System.nanoTime() + Duration.ofSeconds(10).toNanos();
                while (broker.publishes() < window && System.nanoTime() < until) {
                    Thread.sleep(20);
                }
                Thread.sleep(500); // time enough for any message beyond the window to arrive
                assertEquals(window, broker.publishes(), testCase + ": messages awaiting their final ack");
                broker.mode(ScriptedBroker.Mode.ACK);
                broker.releaseHeld();
                pack.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(100));
                assertEquals(window + 30, broker.publishes(), "each message once");
            } finally {
                appender.close();
            }
        }
    }

    /**
     * A broker that answers pings but acknowledges nothing, then everything: the messages of the expired pack filled
     * the endpoint's half of maxPendingRecords (and would fill the MQTT client's in-flight window) for as long as the
     * connection lived, and
     * keep-alive never ends it, so every later pack failed at once. A message unacknowledged for longer than
     * deliveryTimeoutSeconds now makes the connection anew, and once the broker acknowledges again packs succeed.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void aStalledBrokerIsLeftForAFreshConnection(int qos) throws Exception {
        try (ScriptedBroker broker = new ScriptedBroker(ScriptedBroker.Mode.SILENT)) {
            Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), "stalled/x", qos);
            cfg.put("deliveryTimeoutSeconds", 1);
            cfg.put("maxPendingRecords", 20);
            LogAppender appender = KaaNode.load("stalled", KaaNode.config(cfg));
            try {
                append(appender, records(10, 30)).assertExactlyOne(CONNECTION_ERROR, Duration.ofSeconds(10),
                        Duration.ZERO);
                broker.mode(ScriptedBroker.Mode.ACK);
                long until = System.nanoTime() + Duration.ofSeconds(15).toNanos();
                while (broker.connections() < 2 && System.nanoTime() < until) {
                    Thread.sleep(50);
                }
                assertEquals(2, broker.connections(), "a fresh connection after the stall");
                append(appender, records(5, 31)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10),
                        Duration.ofMillis(100));
            } finally {
                appender.close();
            }
        }
    }

    /**
     * An MQTT 5 broker says in its CONNACK how large a packet it takes (Mosquitto's {@code max_packet_size}). A record
     * whose message is larger fails its pack (onInternalError, as any record that cannot become a message) before any
     * record of it is published, and the connection every appender shares is left alone: rumqttc, handed the message,
     * would fail the connection when it came to write it, and every pack in flight with it, each time Kaa sent the
     * pack again. (Before: the record ahead of the large one was published, its pack answered as failed.)
     */
    @Test
    void mqtt5MessagesOverTheBrokersMaximumPacketSizeFailTheirPackOnly() {
        try (Mosquitto broker = Mosquitto.anonymous().extraConfig("max_packet_size 20000")) {
            broker.start();
            String topic = "mps/" + UUID.randomUUID();
            String clientId = "mps-" + UUID.randomUUID().toString().substring(0, 8);
            Map<String, Object> cfg = mqtt5(KaaNode.brokerConfig(broker.port(), topic, 1));
            cfg.put("clientId", clientId);
            LogAppender appender = KaaNode.load("max packet", KaaNode.config(cfg));
            try (Subscriber sub = Subscriber.subscribe(broker.port(), topic, 1)) {
                List<byte[]> withBig = new ArrayList<>(records(3, 7));
                withBig.add(1, TestData.telemetryWithNote(SCHEMA, new java.util.Random(1), "big", 1, 30_000));
                List<byte[]> fits = records(5, 8);
                RecordingCallback big = append(appender, withBig);
                RecordingCallback fine = append(appender, fits);
                big.assertExactlyOne(RecordingCallback.INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ZERO);
                fine.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(200));
                List<byte[]> expected = AvroReference.expectedPayloads(SCHEMA, fits);
                // One connection keeps order: what the failed pack published would arrive first.
                sub.assertCount(fits.size(), Duration.ofSeconds(10));
                Payloads.assertSameMultiset("the pack that fits, nothing of the other", expected, sub.payloads());
                broker.assertConnectedOnce(clientId);
            } finally {
                appender.close();
            }
        }
    }

    /**
     * An MQTT 5 broker that says its packet limit closes no connection over a message within it, so a QoS 0 record
     * far larger than those it took is answered at its write, as any QoS 0 record: here it was received, the broker
     * restarted at once, and its pack was answered onSuccess, once. (Before: it waited two seconds to outlive the
     * connection, as under MQTT 3.1.1, failed with the restart though received, and Kaa sent it again.)
     */
    @Test
    void mqtt5QoS0RecordsWithinTheAnnouncedLimitAreAnsweredAtTheirWrite() throws Exception {
        try (Mosquitto broker = Mosquitto.anonymous().extraConfig("max_packet_size 200000")) {
            broker.start();
            String topic = "mps0/" + UUID.randomUUID();
            LogAppender appender = KaaNode.load("announced limit", KaaNode.config(mqtt5(KaaNode.brokerConfig(
                    broker.port(), topic, 0))));
            try (Subscriber sub = Subscriber.subscribe(broker.port(), topic, 1)) {
                append(appender, records(3, 1)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                // Outlived by the connection, with the next write: the records the broker took, for QoS 0.
                Thread.sleep(2_500);
                append(appender, records(3, 2)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                RecordingCallback large = append(appender, List.of(TestData.telemetryWithNote(SCHEMA,
                        new java.util.Random(3), "large", 1, 30_000)));
                sub.assertCount(7, Duration.ofSeconds(10));
                // Answered at its write, not once the connection outlived it by 2 s.
                large.awaitFirst(Duration.ofMillis(500));
                broker.restart();
                large.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(500));
            } finally {
                appender.close();
            }
        }
    }

    /**
     * An MQTT 3.1.1 broker says nothing of its packet limit (Mosquitto's {@code max_packet_size}; EMQX 1 MB, AWS IoT
     * 128 KB) and closes the connection at a larger message without a reason. Two appenders share one connection
     * with a fixed client id: one endpoint's pack with a record of 30 KB of JSON fails with the connection twice, sent
     * again as Kaa does, then {@code onInternalError} before any of it is written; the other appender's packs, sent
     * again when they were caught in a reset, all reach a subscriber. The broker sees the one client id throughout,
     * three connections at most, and JMX counts no takeover. (Before: every attempt reset the shared connection, and
     * two resets were taken for another node with the id, which moved the appender to another id for good.)
     *
     * <p>At QoS 0 too, which nothing acknowledges: a message far larger than any the broker took is answered once the
     * connection outlived it, so the pack fails with the close, and Kaa sends it again. (Before: answered at its
     * write, confirmed though the broker dropped it, and every such record reset the connection.)
     *
     * <p>And under MQTT 5 with Mosquitto's {@code message_size_limit}, which its CONNACK does not announce: it
     * acknowledges the larger message with reason 0x95, which MQTT 5 does not allow in a PUBACK, and the MQTT client
     * fails the connection at it. (Before: every such pack reset the shared connection, without end.)
     */
    @ParameterizedTest(name = "{0} with {1}, endpoint at QoS {2}")
    @CsvSource({"MQTT_3_1_1, max_packet_size, 1", "MQTT_3_1_1, max_packet_size, 0", "MQTT_5, message_size_limit, 1"})
    void messagesOverAnUnannouncedPacketLimitFailTheirPackOnly(String version, String setting, int qos)
            throws Exception {
        try (Mosquitto broker = Mosquitto.anonymous().extraConfig(setting + " 20000")) {
            broker.start();
            String topic = "limit/" + UUID.randomUUID();
            String clientId = "limit-" + UUID.randomUUID().toString().substring(0, 8);
            LogAppender endpoint = sharingAs(broker, clientId, "limit endpoint", topic + "/endpoint", qos, version);
            LogAppender others = sharingAs(broker, clientId, "limit others", topic + "/others", 1, version);
            try (Subscriber sub = Subscriber.subscribe(broker.port(), topic + "/others", 1)) {
                append(others, records(5, 1)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                // The other appender's records, by id: all it appended, and those of its packs answered onSuccess.
                java.util.Set<String> appended = new java.util.HashSet<>(ids(5, 1));
                java.util.Set<String> confirmed = new java.util.HashSet<>(ids(5, 1));
                List<byte[]> withBig = new ArrayList<>(records(3, 2));
                withBig.add(1, TestData.telemetryWithNote(SCHEMA, new java.util.Random(3), "big", 1, 30_000));
                List<String> attempts = new ArrayList<>();
                for (int attempt = 0; attempt < 4 && !attempts.contains(RecordingCallback.INTERNAL_ERROR); attempt++) {
                    RecordingCallback big = append(endpoint, withBig);
                    // Another endpoint's pack around each attempt, sent again until delivered.
                    RecordingCallback other = append(others, records(5, 10 + attempt));
                    appended.addAll(ids(5, 10 + attempt));
                    attempts.add(big.awaitFirst(Duration.ofSeconds(10)).method);
                    big.assertOnlyOne(attempts.get(attempt));
                    for (int resend = 0; !SUCCESS.equals(other.awaitFirst(Duration.ofSeconds(10)).method); resend++) {
                        assertEquals(CONNECTION_ERROR, other.awaitFirst(Duration.ZERO).method);
                        assertTrue(resend < 2, "the other appender's pack failed three times");
                        other = append(others, records(5, 10 + attempt));
                    }
                    confirmed.addAll(ids(5, 10 + attempt));
                }
                assertEquals(List.of(CONNECTION_ERROR, CONNECTION_ERROR, RecordingCallback.INTERNAL_ERROR), attempts,
                        "the large pack's answers");
                // From now on the connection stays up: every pack of the other appender at its first attempt.
                List<RecordingCallback> after = new ArrayList<>();
                for (int pack = 0; pack < 10; pack++) {
                    after.add(append(others, records(5, 100 + pack)));
                    appended.addAll(ids(5, 100 + pack));
                    confirmed.addAll(ids(5, 100 + pack));
                    if (pack == 4) {
                        append(endpoint, withBig).assertExactlyOne(RecordingCallback.INTERNAL_ERROR,
                                Duration.ofSeconds(10), Duration.ZERO);
                    }
                }
                for (RecordingCallback cb : after) {
                    cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                }
                // Each confirmed record arrived, whatever its resent copies did, and nothing nobody appended.
                sub.awaitCount(confirmed.size(), Duration.ofSeconds(10));
                java.util.Set<String> got = new java.util.HashSet<>();
                for (long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                        !got.containsAll(confirmed) && System.nanoTime() < deadline;
                        RecordingCallback.sleep(Duration.ofMillis(50))) {
                    sub.payloads().forEach(p -> got.add(Payloads.idOf(p)));
                }
                java.util.Set<String> missing = new java.util.TreeSet<>(confirmed);
                missing.removeAll(got);
                assertTrue(missing.isEmpty(), "confirmed and never received: " + missing);
                java.util.Set<String> stray = new java.util.TreeSet<>(got);
                stray.removeAll(appended);
                assertTrue(stray.isEmpty(), "received and never appended: " + stray);
                String log = broker.log();
                int connects = log.split(" as " + clientId + " ", -1).length - 1;
                assertTrue(connects >= 1 && connects <= 3, connects + " connections:\n" + broker.logTail(200));
                assertFalse(log.contains(" as " + clientId + "-"), "the client id moved:\n" + broker.logTail(200));
                javax.management.MBeanServer server = java.lang.management.ManagementFactory.getPlatformMBeanServer();
                for (String name : List.of("limit endpoint", "limit others")) {
                    javax.management.ObjectName bean = server.queryNames(new javax.management.ObjectName(
                            "org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="
                                    + javax.management.ObjectName.quote(name) + ",*"), null).iterator().next();
                    assertEquals(0L, server.getAttribute(bean, "Takeovers"), name);
                }
            } finally {
                endpoint.close();
                others.close();
            }
        }
    }

    /**
     * The same broker, and an endpoint whose large record differs at each pack (its length here), so that no message is
     * ever at two closes and no limit is learned: after three closes at its messages, the endpoint's packs with
     * records that large fail {@code onInternalError} before any of it is written, and the connection the other
     * appender shares stays up. (Before: each of its packs reset the shared connection, without end.)
     */
    @Test
    void mqtt311AnEndpointChangingItsOversizedRecordsCostsThreeCloses() throws Exception {
        try (Mosquitto broker = Mosquitto.anonymous().extraConfig("max_packet_size 20000")) {
            broker.start();
            String topic = "changing/" + UUID.randomUUID();
            String clientId = "changing-" + UUID.randomUUID().toString().substring(0, 8);
            LogAppender endpoint = sharingAs(broker, clientId, "changing endpoint", topic + "/endpoint", 1);
            LogAppender others = sharingAs(broker, clientId, "changing others", topic + "/others", 1);
            try (Subscriber sub = Subscriber.subscribe(broker.port(), topic + "/others", 1)) {
                List<String> attempts = new ArrayList<>();
                List<byte[]> delivered = new ArrayList<>();
                for (int attempt = 0; attempt < 5; attempt++) {
                    // Each on a connection that took the other appender's pack.
                    append(others, records(5, 20 + attempt)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10),
                            Duration.ZERO);
                    delivered.addAll(records(5, 20 + attempt));
                    List<byte[]> withBig = new ArrayList<>(records(2, 30 + attempt));
                    withBig.add(1, TestData.telemetryWithNote(SCHEMA, new java.util.Random(3), "big", 1,
                            30_000 + 100 * attempt));
                    attempts.add(append(endpoint, withBig).awaitFirst(Duration.ofSeconds(10)).method);
                }
                assertEquals(List.of(CONNECTION_ERROR, CONNECTION_ERROR, CONNECTION_ERROR,
                        RecordingCallback.INTERNAL_ERROR, RecordingCallback.INTERNAL_ERROR), attempts,
                        broker.logTail(100));
                append(others, records(5, 40)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                delivered.addAll(records(5, 40));
                sub.awaitCount(delivered.size(), Duration.ofSeconds(10));
                Thread.sleep(500); // time for a duplicate to show
                Payloads.assertSameMultiset("the other appender's records, each once",
                        AvroReference.expectedPayloads(SCHEMA, delivered), sub.payloads());
                String log = broker.log();
                int connects = log.split(" as " + clientId + " ", -1).length - 1;
                assertEquals(4, connects, broker.logTail(200));
            } finally {
                endpoint.close();
                others.close();
            }
        }
    }

    /**
     * The same broker, and a topic made of a record field: one endpoint sends a record too large for the broker to a
     * topic other endpoints use and the connection has not carried yet, as Kaa sends a pack again. Its two closes
     * are blamed on that topic, for that endpoint only: its next pack fails {@code onRemoteError} unpublished, and
     * the other endpoints' records to the topic are delivered. (Before: the topic was refused to every endpoint for
     * five minutes, so one device's record stopped every other device's on that topic.)
     */
    @Test
    void mqtt311OneEndpointsOversizedRecordGetsASharedTopicRefusedToItOnly() throws Exception {
        try (Mosquitto broker = Mosquitto.anonymous().extraConfig("max_packet_size 20000")) {
            broker.start();
            String base = "shared/" + UUID.randomUUID();
            Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), base + "/{event.deviceId}", 1);
            LogAppender appender = KaaNode.load("shared topic", KaaNode.config(cfg));
            try (Subscriber sub = Subscriber.subscribe(broker.port(), base + "/site-7", 1)) {
                List<String> attacker = new ArrayList<>();
                for (int attempt = 0; attempt < 3; attempt++) {
                    // Another endpoint's record first: the connection has taken one.
                    endpointPack(appender, "victim", "warm", 0, attempt)
                            .assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                    attacker.add(endpointPack(appender, "attacker", "site-7", 30_000, 10 + attempt)
                            .awaitFirst(Duration.ofSeconds(10)).method);
                }
                assertEquals(List.of(CONNECTION_ERROR, CONNECTION_ERROR, REMOTE_ERROR), attacker, broker.logTail(50));
                endpointPack(appender, "victim", "site-7", 0, 20)
                        .assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                endpointPack(appender, "third", "site-7", 0, 21)
                        .assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                sub.assertCount(2, Duration.ofSeconds(10));
            } finally {
                appender.close();
            }
        }
    }

    /** A pack of one telemetry record of endpoint {@code key}, for device {@code device}, with a note that long. */
    private static RecordingCallback endpointPack(LogAppender appender, String key, String device, int noteChars,
            int seed) {
        org.apache.avro.generic.GenericRecord r = TestData.telemetry(SCHEMA, new java.util.Random(seed), "s" + seed,
                seed);
        r.put("deviceId", device);
        r.put("note", String.join("", Collections.nCopies(noteChars, "x")));
        RecordingCallback cb = new RecordingCallback();
        appender.doAppend(KaaNode.pack(key, TELEMETRY, 3, List.of(AvroReference.binary(SCHEMA, r))), cb);
        return cb;
    }

    /**
     * A broker that takes QoS 1 at most and keeps no retained messages says so in its MQTT 5 CONNACK (Mosquitto's
     * {@code max_qos} and {@code retain_available}), and closes the connection of a client that publishes past them.
     * Three appenders with one broker configuration share one connection: the packs of the one publishing at QoS 2,
     * and of the one retaining, are refused ({@code onRemoteError}), and the third's are delivered, round after
     * round, over a connection never reset. (Before: those publishes reached the broker, which closed the shared
     * connection, and the third appender's packs failed with it.)
     */
    @Test
    void mqtt5PublishesPastWhatTheBrokerGrantsFailTheirPackOnly() {
        try (Mosquitto broker = Mosquitto.anonymous().extraConfig("max_qos 1", "retain_available false")) {
            broker.start();
            String topic = "grants/" + UUID.randomUUID();
            String clientId = "grants-" + UUID.randomUUID().toString().substring(0, 8);
            Map<String, Object> base = mqtt5(KaaNode.brokerConfig(broker.port(), topic, 1));
            base.put("clientId", clientId);
            Map<String, Object> qos2 = new java.util.HashMap<>(base);
            qos2.put("qos", 2);
            Map<String, Object> retained = new java.util.HashMap<>(base);
            retained.put("retain", true);
            LogAppender fine = KaaNode.load("grants fine", KaaNode.config(base));
            LogAppender high = KaaNode.load("grants qos 2", KaaNode.config(qos2));
            LogAppender kept = KaaNode.load("grants retained", KaaNode.config(retained));
            try (Subscriber sub = Subscriber.subscribe(broker.port(), topic, 1)) {
                List<byte[]> expected = new ArrayList<>();
                for (int round = 0; round < 3; round++) {
                    RecordingCallback refusedQos = append(high, records(3, round));
                    RecordingCallback refusedRetain = append(kept, records(3, round));
                    RecordingCallback delivered = append(fine, records(5, round));
                    expected.addAll(AvroReference.expectedPayloads(SCHEMA, records(5, round)));
                    refusedQos.assertExactlyOne(REMOTE_ERROR, Duration.ofSeconds(10), Duration.ZERO);
                    refusedRetain.assertExactlyOne(REMOTE_ERROR, Duration.ofSeconds(10), Duration.ZERO);
                    delivered.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(100));
                }
                // One topic for all three: a refused record that got through would show as a duplicate.
                Payloads.assertSameMultiset("the appender within the grants", expected,
                        sub.assertCount(expected.size(), Duration.ofSeconds(10)));
                broker.assertConnectedOnce(clientId);
            } finally {
                fine.close();
                high.close();
                kept.close();
            }
        }
    }

    /**
     * A broker that keeps no retained messages refuses every CONNECT carrying the status topic's last will, which is
     * retained, and the log line says to remove statusTopic; the same broker takes the appender without one (above).
     * MQTT 5 says so in the CONNACK (0x9A): packs fail with onRemoteError. MQTT 3.1.1 has no CONNACK code for it, and
     * Mosquitto closes the connection before any CONNACK: packs fail with onConnectionError at their deadline (the
     * broker is not refusing records), and the line names the last will beside ssl.
     */
    @ParameterizedTest
    @CsvSource({"MQTT_5, onRemoteError, 'reason 0x9A, retain not supported'", "MQTT_3_1_1, onConnectionError, closed before any CONNACK"})
    void brokerWithoutRetainRefusesTheStatusWillAndTheLogSaysWhatToChange(String version, String answer, String said) {
        try (Mosquitto broker = Mosquitto.anonymous().extraConfig("retain_available false")) {
            broker.start();
            try (ChildNode node = ChildNode.start()) {
                Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), "will/" + UUID.randomUUID(), 1);
                cfg.put("mqttVersion", version);
                cfg.put("statusTopic", "kaa/status/{hostname}");
                cfg.put("deliveryTimeoutSeconds", 2);
                node.load("will", cfg);
                node.append("will", "p1", 1, 3);
                node.assertExactlyOne("p1", answer, Duration.ofSeconds(10), Duration.ofMillis(300));
                List<String> problems = node.appenderLogLines("WARN|ERROR");
                assertTrue(problems.stream().anyMatch(l -> l.contains(said) && l.contains("remove statusTopic")),
                        version + ": no line names the refusal and what to change:\n" + String.join("\n", problems)
                                + "\n" + node.diagnostics());
            }
        }
    }

    /**
     * rumqttc 0.25's MQTT 5 client keeps counting every QoS 2 message the broker refuses at PUBREC in flight, and stops
     * sending once they fill the broker's receive maximum (Mosquitto: 20). One endpoint's records to a topic the ACL
     * denies, three times that many, are refused while an appender sharing the connection has a pack in flight: the
     * appender gives each slot back, so that pack and the next are delivered, on the one connection. (Before: it
     * reconnected at every 10 refusals, and the packs in flight failed with it.)
     */
    @Test
    void mqtt5RefusedQos2MessagesDoNotStallTheirConnection() throws IOException {
        try (Mosquitto broker = Mosquitto.anonymous()) {
            Path acl = Files.writeString(broker.dir().resolve("acl"), "topic readwrite allowed/#\n");
            broker.extraConfig("acl_file " + acl.toAbsolutePath());
            broker.start();
            String clientId = "it-shared-" + UUID.randomUUID().toString().substring(0, 8);
            // A topic of each record's own, so that every one reaches the broker: the appender fails a pack to a topic
            // refused lately unpublished.
            Map<String, Object> deniedConfig = mqtt5(KaaNode.brokerConfig(broker.port(), "denied/{event.id}", 2));
            deniedConfig.put("clientId", clientId);
            Map<String, Object> allowedConfig = mqtt5(KaaNode.brokerConfig(broker.port(), "allowed/x", 2));
            allowedConfig.put("clientId", clientId);
            LogAppender denied = KaaNode.load("denied", KaaNode.config(deniedConfig));
            LogAppender allowed = KaaNode.load("allowed", KaaNode.config(allowedConfig));
            try (Subscriber sub = Subscriber.subscribe(broker.port(), "allowed/x", 2)) {
                RecordingCallback during = append(allowed, records(200, 30));
                for (int pack = 0; pack < 6; pack++) {
                    RecordingCallback cb = append(denied, records(10, 10 + pack));
                    // The first is refused at its first message. Once three of the endpoint's topics are refused,
                    // its packs fail unpublished (onRemoteError); one submitted while the refusals before were
                    // still coming in can have had messages handed to the client by then, and is answered as lost
                    // (onConnectionError), for Kaa to send again.
                    String answer = cb.awaitFirst(Duration.ofSeconds(10)).method;
                    assertTrue(answer.equals(REMOTE_ERROR) || (pack > 0 && answer.equals(CONNECTION_ERROR)),
                            "pack " + pack + ": " + answer);
                    cb.assertOnlyOne(answer);
                }
                during.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                append(allowed, records(5, 20)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10),
                        Duration.ofMillis(300));
                assertEquals(205, sub.awaitCount(205, Duration.ofSeconds(10)).size());
                broker.assertConnectedOnce(clientId);
            } finally {
                denied.close();
                allowed.close();
            }
        }
    }

    /**
     * With no client subscribed to the topic, Mosquitto 2.0.11 answers an MQTT 5 QoS 1 publish with PUBACK 0x10 ("no
     * matching subscribers"; its PUBREC at QoS 2 says success): the broker took the message, so the pack is
     * delivered, as before any dashboard subscribes. (Failed with onRemoteError when 0x10 was taken for a refusal.)
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void mqtt5PacksToATopicNobodySubscribesToAreDelivered(int qos) {
        try (Mosquitto broker = Mosquitto.startAnonymous()) {
            String topic = "nobody/" + UUID.randomUUID();
            LogAppender appender = KaaNode.load("v5-nobody", KaaNode.config(mqtt5(KaaNode.brokerConfig(broker.port(),
                    topic, qos))));
            try {
                append(appender, records(3, 11)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                append(appender, records(2, 12)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
            } finally {
                appender.close();
            }
        }
    }

    /**
     * MQTT 5 messages carry their content type, their expiry, and the pack's Kaa header as user properties; a
     * one-record message also its index in the pack and the FNV-1a digest of its record's bytes, the same whenever the
     * endpoint uploads the record again, by which consumers drop copies. A message of a whole pack (grouping PACK)
     * carries no index or digest.
     */
    @Test
    void mqtt5MessagesCarryContentTypeExpiryAndKaaUserProperties() throws Exception {
        try (Mosquitto broker = Mosquitto.startAnonymous()) {
            String topic = "v5/" + UUID.randomUUID();
            Process sub = subscribeV5(broker, topic, 3);
            Map<String, Object> cfg = mqtt5(KaaNode.brokerConfig(broker.port(), topic, 1));
            cfg.put("messageExpirySeconds", 600);
            LogAppender appender = KaaNode.load("v5", KaaNode.config(cfg));
            List<byte[]> records = records(2, 3);
            long before = System.currentTimeMillis();
            try {
                append(appender, records).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
            } finally {
                appender.close();
            }
            long after = System.currentTimeMillis();
            cfg.put("grouping", new GenericData.EnumSymbol(KaaNode.configSchema().getField("grouping").schema(),
                    "PACK"));
            LogAppender packs = KaaNode.load("v5-pack", KaaNode.config(cfg));
            try {
                append(packs, records).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
            } finally {
                packs.close();
            }
            List<String> messages = messagesV5(sub);
            assertEquals(3, messages.size(), messages + "\n" + broker.logTail(40));
            Pattern p = Pattern.compile("MSG\\|application/json\\|(\\d+)\\|(.*)\\|([\\[{].*)");
            for (int i = 0; i < 3; i++) {
                Matcher m = p.matcher(messages.get(i));
                assertTrue(m.matches(), messages.get(i));
                long expiry = Long.parseLong(m.group(1));
                // The configured 600 s, less the moments the message spent in the broker.
                assertTrue(expiry >= 590 && expiry <= 600, "expiry " + expiry);
                String props = m.group(2);
                String key = KaaNode.pack(TELEMETRY, 3, List.of()).getEndpointKey();
                assertTrue(props.contains("endpointKeyHash:" + key), props);
                assertTrue(props.contains("applicationToken:" + KaaNode.APPLICATION_TOKEN), props);
                assertTrue(props.contains("logSchemaVersion:3"), props);
                Matcher stamp = Pattern.compile("timestamp:(\\d+)").matcher(props);
                assertTrue(stamp.find(), props);
                long timestamp = Long.parseLong(stamp.group(1));
                if (i == 2) {
                    assertFalse(props.contains("recordIndex") || props.contains("recordDigest"), props);
                    continue;
                }
                assertTrue(timestamp >= before && timestamp <= after, timestamp + " not in " + before + ".." + after);
                assertTrue(props.contains("recordIndex:" + i), props);
                assertTrue(props.contains(String.format("recordDigest:%016x", fnv1a(records.get(i)))), props);
                assertEquals(new String(AvroReference.expectedPayload(SCHEMA, records.get(i)), StandardCharsets.UTF_8),
                        m.group(3));
            }
        }
    }

    /** 64-bit FNV-1a, written from its definition. */
    private static long fnv1a(byte[] bytes) {
        long hash = 0xcbf29ce484222325L;
        for (byte b : bytes) {
            hash = (hash ^ (b & 0xff)) * 0x100000001b3L;
        }
        return hash;
    }

    /**
     * MQTT 5 carries the pack's endpoint key as a user property, and Mosquitto closes the connection of a client that
     * sends text MQTT forbids (a NUL) or that it refuses (control characters): a key holding them is sent with them
     * replaced by {@code _}, as in topics, and one too long for an MQTT string fails its own pack. Neither resets
     * the connection the node's appenders share. (Before: the first cost a close at every pack, which Kaa sends
     * again; the second was written with its length cut to 16 bits, a malformed packet.)
     */
    @Test
    void mqtt5EndpointKeysMqttCannotCarryNeverResetTheConnection() throws Exception {
        try (Mosquitto broker = Mosquitto.startAnonymous()) {
            String topic = "v5/" + UUID.randomUUID();
            Map<String, Object> cfg = mqtt5(KaaNode.brokerConfig(broker.port(), topic, 1));
            LogAppender appender = KaaNode.load("v5-keys", KaaNode.config(cfg));
            Process sub = subscribeV5(broker, topic, 4);
            try {
                RecordingCallback odd = new RecordingCallback();
                appender.doAppend(KaaNode.pack("key\n\u0000\u0007\u009f", TELEMETRY, 3, records(2, 40)), odd);
                odd.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                RecordingCallback huge = new RecordingCallback();
                appender.doAppend(KaaNode.pack(String.join("", Collections.nCopies(70_000, "k")), TELEMETRY, 3,
                        records(2, 41)), huge);
                huge.assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ZERO);
                append(appender, records(2, 42)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
            } finally {
                appender.close();
            }
            List<String> messages = messagesV5(sub);
            assertEquals(4, messages.size(), messages + "\n" + broker.logTail(40));
            for (int i = 0; i < 2; i++) {
                assertTrue(messages.get(i).contains("endpointKeyHash:key____ "), messages.get(i));
            }
            broker.assertConnectedOnce(String.valueOf(cfg.get("clientId")));
        }
    }

    /**
     * With MQTT 5 the status messages carry their format's content type, and so does the last will the broker sends
     * for them when the node dies (before, the will had none, so a consumer choosing its parser by content type could
     * not read the one message that says a node is gone).
     */
    @ParameterizedTest
    @CsvSource({"JSON, application/json", "TEXT, text/plain"})
    void mqtt5StatusMessagesAndTheWillCarryTheirContentType(String format, String contentType) throws Exception {
        try (Mosquitto broker = Mosquitto.startAnonymous()) {
            String status = "status/" + UUID.randomUUID();
            Map<String, Object> cfg = mqtt5(KaaNode.brokerConfig(broker.port(), "data/x", 1));
            cfg.put("statusTopic", status);
            cfg.put("statusFormat", new GenericData.EnumSymbol(
                    KaaNode.configSchema().getField("statusFormat").schema(), format));
            cfg.put("keepAliveSeconds", 5);
            Process sub;
            // The child JVM first: the subscriber's 20 s run from here to the will.
            try (ChildNode child = ChildNode.start(); Subscriber online = Subscriber.subscribe(broker.port(), status,
                    1)) {
                sub = subscribeV5(broker, status, 2);
                child.load("status-" + format, cfg);
                online.awaitCount(1, Duration.ofSeconds(10));
                child.kill();
            }
            List<String> messages = messagesV5(sub);
            assertEquals(2, messages.size(), messages + "\n" + broker.logTail(40));
            assertTrue(messages.get(0).startsWith("MSG|" + contentType + "|") && messages.get(0).contains("online"),
                    messages.get(0));
            assertTrue(messages.get(1).startsWith("MSG|" + contentType + "|") && messages.get(1).contains("offline"),
                    "the last will: " + messages.get(1));
        }
    }

    /**
     * The status message (statusFormat JSON, the form default) names the node: status, host, pid, instance (drawn at
     * the node's start: nodes with one host name and pid differ there), and since (UTC, when the connection was made
     * or closed; null in the last will, which the broker sends when nobody can stamp it).
     */
    @Test
    void statusTopicSaysOnlineOfflineAndTheWillCoversACrash() throws Exception {
        try (Mosquitto broker = Mosquitto.startAnonymous()) {
            String status = "status/" + UUID.randomUUID();
            Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), "data/x", 1);
            cfg.put("statusTopic", status);
            String pid = String.valueOf(ProcessHandle.current().pid());
            String host;
            String instance;
            try (Subscriber sub = Subscriber.subscribe(broker.port(), status, 1)) {
                LogAppender appender = KaaNode.load("live", KaaNode.config(cfg));
                JsonNode online = json(sub.awaitCount(1, Duration.ofSeconds(10)).get(0));
                assertEquals("online", online.get("status").getTextValue(), online.toString());
                host = online.get("host").getTextValue();
                assertFalse(host.isEmpty());
                assertEquals(pid, online.get("pid").toString());
                instance = online.get("instance").getTextValue();
                assertTrue(instance.matches("[0-9a-f]{8}"), online.toString());
                assertTrue(online.get("since").getTextValue().matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ"),
                        online.toString());
                appender.close();
                JsonNode offline = json(sub.awaitCount(2, Duration.ofSeconds(10)).get(1));
                assertEquals("offline", offline.get("status").getTextValue(), offline.toString());
                assertEquals(pid, offline.get("pid").toString());
                assertEquals(instance, offline.get("instance").getTextValue());
                assertTrue(offline.get("since").isTextual(), offline.toString());
            }
            // A node that dies without closing: the broker publishes the will.
            cfg.put("keepAliveSeconds", 2);
            try (ChildNode child = ChildNode.start(); Subscriber sub = Subscriber.subscribe(broker.port(), status, 1)) {
                // The retained "offline" of the first appender arrives first.
                sub.awaitCount(1, Duration.ofSeconds(10));
                child.load("crashing", cfg);
                JsonNode online = json(sub.awaitCount(2, Duration.ofSeconds(10)).get(1));
                assertEquals("online", online.get("status").getTextValue(), online.toString());
                assertEquals(host, online.get("host").getTextValue(), "one machine, one host name");
                String childPid = online.get("pid").toString();
                assertNotEquals(pid, childPid, "the child node's own pid");
                String childInstance = online.get("instance").getTextValue();
                assertNotEquals(instance, childInstance, "the child node's own instance");
                child.kill();
                JsonNode will = json(sub.awaitCount(3, Duration.ofSeconds(15)).get(2));
                assertEquals("offline", will.get("status").getTextValue(), "the last will after the node died: " + will);
                assertEquals(childPid, will.get("pid").toString());
                assertEquals(childInstance, will.get("instance").getTextValue());
                assertTrue(will.get("since").isNull(), will.toString());
            }
        }
    }

    /**
     * An appender edited in the admin to another client id, its statusTopic kept: the node closes it and at once
     * creates it again. The new connection says 'online' at once, while the old one drains a pack whose ack the
     * broker has not sent yet (held at a proxy here) and says 'offline' as it goes, after. The retained status must
     * end 'online': before, it stayed 'offline' while the new connection ran.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void anEditedAppendersStatusEndsOnlineAfterItsPredecessorWent() throws Exception {
        GatedProxy.HeldAcks held = new GatedProxy.HeldAcks();
        try (Mosquitto broker = Mosquitto.startAnonymous();
                GatedProxy proxy = GatedProxy.start(broker.port(), held);
                Subscriber sub = Subscriber.subscribe(broker.port(), "status/edited", 1)) {
            Map<String, Object> before = KaaNode.brokerConfig(proxy.port(), "data/edited", 1);
            before.put("statusTopic", "status/edited");
            before.put("clientId", "edited-before");
            LogAppender first = KaaNode.load("edited", KaaNode.config(before));
            String schema = TestData.schemaText("telemetry.avsc");
            RecordingCallback inFlight = RecordingCallback.append(first, KaaNode.pack(schema, 1,
                    ChildNodeMain.records(3, 2)), "in flight at the edit");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (proxy.acksWaitedFor() == 0 && System.nanoTime() < deadline) {
                RecordingCallback.sleep(Duration.ofMillis(10));
            }
            // The first held ack is the status message's; the pack's queue behind it.
            assertTrue(proxy.acksWaitedFor() > 0, "acks are held: " + proxy.stats());
            assertEquals(List.of(), inFlight.calls(), "the pack is in flight at the edit");
            first.close();
            Map<String, Object> after = KaaNode.brokerConfig(broker.port(), "data/edited", 1);
            after.put("statusTopic", "status/edited");
            after.put("clientId", "edited-after");
            LogAppender second = KaaNode.load("edited", KaaNode.config(after));
            // Both connections' 'online' reach the broker: the proxy holds acks only.
            assertEquals("online", json(sub.awaitCount(2, Duration.ofSeconds(10)).get(1)).get("status")
                    .getTextValue());
            held.release();
            inFlight.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
            List<byte[]> said = sub.awaitCount(4, Duration.ofSeconds(15));
            List<String> words = new ArrayList<>();
            for (byte[] b : said) {
                words.add(json(b).get("status").getTextValue());
            }
            assertEquals("offline", words.get(2), "the first connection says 'offline' as it goes: " + words);
            assertEquals("online", words.get(words.size() - 1), "the status ends 'online': " + words);
            second.close();
        }
    }

    /**
     * An idle appender edited in the admin with its connection settings kept (its topic changed here): the node
     * closes it and, after reading it from its database, creates it again, which takes over the connection. The broker
     * sees one connection and the status says 'online' once, no 'offline' between; the new topic gets the records.
     * (Before: the connection closed at once and was made again, and the status said 'offline', then 'online'.) The
     * last close still says 'offline'.
     */
    @Test
    void anIdleAppenderEditedWithItsConnectionSettingsKeepsItsConnection() throws Exception {
        try (Mosquitto broker = Mosquitto.startAnonymous()) {
            String status = "status/" + UUID.randomUUID();
            Map<String, Object> before = KaaNode.brokerConfig(broker.port(), "data/" + UUID.randomUUID(), 1);
            before.put("statusTopic", status);
            String clientId = (String) before.get("clientId");
            Map<String, Object> after = new HashMap<>(before);
            after.put("mqtttopic", "data/" + UUID.randomUUID());
            try (Subscriber sub = Subscriber.subscribe(broker.port(), status, 1);
                    Subscriber data = Subscriber.subscribe(broker.port(), (String) after.get("mqtttopic"), 1)) {
                LogAppender first = KaaNode.load("idle edit", KaaNode.config(before));
                assertEquals("online", json(sub.awaitCount(1, Duration.ofSeconds(10)).get(0)).get("status")
                        .getTextValue());
                first.close();
                Thread.sleep(300); // the node's database read
                LogAppender second = KaaNode.load("idle edit", KaaNode.config(after));
                try {
                    append(second, records(3, 1)).assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                    data.assertCount(3, Duration.ofSeconds(10));
                    Thread.sleep(3_000); // past the first appender's hold on the connection
                    List<String> words = new ArrayList<>();
                    for (byte[] b : sub.payloads()) {
                        words.add(json(b).get("status").getTextValue());
                    }
                    assertEquals(List.of("online"), words, "the status through the edit");
                    broker.assertConnectedOnce(clientId);
                } finally {
                    second.close();
                }
                assertEquals("offline", json(sub.awaitCount(2, Duration.ofSeconds(10)).get(1)).get("status")
                        .getTextValue());
            }
        }
    }

    /** statusFormat TEXT: the bare words earlier builds published, for consumers that compare with them. */
    @Test
    void statusFormatTextKeepsTheBareWords() {
        try (Mosquitto broker = Mosquitto.startAnonymous()) {
            String status = "status/" + UUID.randomUUID();
            Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), "data/x", 1);
            cfg.put("statusTopic", status);
            cfg.put("statusFormat", new GenericData.EnumSymbol(
                    KaaNode.configSchema().getField("statusFormat").schema(), "TEXT"));
            try (Subscriber sub = Subscriber.subscribe(broker.port(), status, 1)) {
                LogAppender appender = KaaNode.load("live-text", KaaNode.config(cfg));
                assertEquals("online", text(sub.awaitCount(1, Duration.ofSeconds(10)).get(0)));
                appender.close();
                assertEquals("offline", text(sub.awaitCount(2, Duration.ofSeconds(10)).get(1)));
            }
        }
    }

    private static JsonNode json(byte[] b) throws IOException {
        return new ObjectMapper().readTree(text(b));
    }

    private static String text(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    @Test
    void failoverBrokerTakesOverWhenTheFirstIsDown() {
        try (Mosquitto second = Mosquitto.startAnonymous()) {
            String topic = "fo/" + UUID.randomUUID();
            Map<String, Object> cfg = KaaNode.brokerConfig(Mosquitto.freeLoopbackPort(), topic, 1);
            cfg.put("brokers", "127.0.0.1:" + second.port());
            cfg.put("deliveryTimeoutSeconds", 10);
            LogAppender appender = KaaNode.load("failover", KaaNode.config(cfg));
            try (Subscriber sub = Subscriber.subscribe(second.port(), topic, 1)) {
                append(appender, records(5, 4)).assertExactlyOne(SUCCESS, Duration.ofSeconds(15), Duration.ZERO);
                assertEquals(5, sub.awaitCount(5, Duration.ofSeconds(10)).size());
            } finally {
                appender.close();
            }
        }
    }

    @Test
    void severalConnectionsKeepEachEndpointsOrder() {
        // Debug lines name the client of each publish the broker receives.
        try (Mosquitto broker = Mosquitto.anonymous().extraConfig("log_type debug")) {
            broker.start();
            String topic = "pool/" + UUID.randomUUID();
            String clientId = "pool-" + UUID.randomUUID().toString().substring(0, 6);
            Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), topic, 1);
            cfg.put("clientId", clientId);
            cfg.put("connectionsPerBroker", 3);
            LogAppender appender = KaaNode.load("pool", KaaNode.config(cfg));
            int endpoints = 6;
            int packsEach = 10;
            try (Subscriber sub = Subscriber.subscribe(broker.port(), topic, 1)) {
                List<RecordingCallback> callbacks = new ArrayList<>();
                for (int pack = 0; pack < packsEach; pack++) {
                    for (int e = 0; e < endpoints; e++) {
                        List<byte[]> recs = new ArrayList<>();
                        for (int r = 0; r < 5; r++) {
                            recs.add(AvroReference.binary(SCHEMA, TestData.telemetry(SCHEMA, new java.util.Random(r),
                                    "ep" + e + "-" + (pack * 5 + r), pack * 5 + r)));
                        }
                        RecordingCallback cb = new RecordingCallback();
                        appender.doAppend(KaaNode.pack("endpoint-key-" + e, TELEMETRY, 3, recs), cb);
                        callbacks.add(cb);
                    }
                }
                for (RecordingCallback cb : callbacks) {
                    cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(15), Duration.ZERO);
                }
                List<byte[]> got = sub.awaitCount(endpoints * packsEach * 5, Duration.ofSeconds(15));
                assertEquals(endpoints * packsEach * 5, got.size());
                // Per endpoint, the records arrive in the order they were appended.
                int[] last = new int[endpoints];
                java.util.Arrays.fill(last, -1);
                Pattern id = Pattern.compile("\"id\":\"ep(\\d+)-(\\d+)\"");
                for (byte[] m : got) {
                    Matcher matcher = id.matcher(text(m));
                    assertTrue(matcher.find(), text(m));
                    int e = Integer.parseInt(matcher.group(1));
                    int seq = Integer.parseInt(matcher.group(2));
                    assertEquals(last[e] + 1, seq, "endpoint " + e + " out of order");
                    last[e] = seq;
                }
                String log = broker.log();
                int carrying = 0;
                for (int i = 0; i < 3; i++) {
                    assertTrue(log.contains(" as " + clientId + "-" + i + " "), "connection " + i + " made");
                    carrying += log.contains("Received PUBLISH from " + clientId + "-" + i + " ") ? 1 : 0;
                }
                // Else the order above would hold trivially, on one connection.
                assertTrue(carrying >= 2, "the endpoints' packs went out on " + carrying + " connection(s)");
            } finally {
                appender.close();
            }
        }
    }
}

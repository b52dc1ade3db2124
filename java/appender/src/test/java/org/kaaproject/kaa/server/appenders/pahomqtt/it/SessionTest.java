package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.apache.avro.generic.GenericData;
import org.eclipse.paho.client.mqttv3.IMqttToken;
import org.eclipse.paho.client.mqttv3.MqttClient;
import org.eclipse.paho.client.mqttv3.MqttConnectOptions;
import org.eclipse.paho.client.mqttv3.MqttException;
import org.eclipse.paho.client.mqttv3.persist.MemoryPersistence;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * Sessions against a real Mosquitto. MQTT 5: with cleanSession off the appender sends sessionExpirySeconds in CONNECT,
 * so the broker keeps its session after a connection ends (and ends it at once with 0); and across connections cut
 * under it, every record of every pack answered onSuccess reaches a persistent subscriber. MQTT 3.1.1: a session that
 * another client with the appender's id left holding a subscription stops no delivery, and goes.
 */
class SessionTest {

    private static final String TELEMETRY = TestData.schemaText("telemetry.avsc");
    private static final Duration WAIT = Duration.ofSeconds(20);

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    private static Map<String, Object> persistentMqtt5(String clientId, String topic, int qos, int expiry) {
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, qos);
        cfg.put("clientId", clientId);
        cfg.put("cleanSession", false);
        cfg.put("mqttVersion", new GenericData.EnumSymbol(KaaNode.configSchema().getField("mqttVersion").schema(),
                "MQTT_5"));
        cfg.put("sessionExpirySeconds", expiry);
        cfg.put("deliveryTimeoutSeconds", 10);
        return cfg;
    }

    /** Whether the broker still holds a session for this client id: CONNACK's session-present flag to a new client. */
    private static boolean sessionPresent(String clientId) throws MqttException {
        MqttClient probe = new MqttClient("tcp://127.0.0.1:" + BROKER.port(), clientId, new MemoryPersistence());
        try {
            MqttConnectOptions o = new MqttConnectOptions();
            o.setCleanSession(false);
            o.setConnectionTimeout(10);
            o.setMqttVersion(MqttConnectOptions.MQTT_VERSION_3_1_1);
            IMqttToken token = connectWithResult(probe, o);
            boolean present = token.getSessionPresent();
            // Leave nothing behind: the probe's own persistent session ends with a clean connect.
            probe.disconnect(2_000);
            o.setCleanSession(true);
            probe.connect(o);
            probe.disconnect(2_000);
            return present;
        } finally {
            probe.close(true);
        }
    }

    /**
     * Once more when the TCP connect itself failed (a "Socket closed" thrown inside {@code Socket.connect}, seen once
     * in a full run on a busy machine): no CONNECT was sent, so the broker's sessions are as they were. A failure
     * after the socket was open is not tried again: the CONNECT may have made a session of its own.
     */
    private static IMqttToken connectWithResult(MqttClient probe, MqttConnectOptions o) throws MqttException {
        try {
            return probe.connectWithResult(o);
        } catch (MqttException e) {
            boolean inTcpConnect = e.getCause() instanceof java.net.SocketException
                    && java.util.Arrays.stream(e.getCause().getStackTrace()).anyMatch(
                            f -> f.getClassName().equals("java.net.Socket") && f.getMethodName().equals("connect"));
            if (!inTcpConnect) {
                throw e;
            }
            RecordingCallback.sleep(java.time.Duration.ofMillis(200));
            return probe.connectWithResult(o);
        }
    }

    @ParameterizedTest(name = "sessionExpirySeconds {0}: session kept {1}")
    @CsvSource({"3600, true", "0, false"})
    void sessionExpiryDecidesWhetherTheBrokerKeepsTheSession(int expiry, boolean kept) throws Exception {
        String clientId = "it-session-" + UUID.randomUUID().toString().substring(0, 8);
        String topic = "kaa/it/session/" + UUID.randomUUID();
        LogAppender a = BROKER.load("session " + expiry, persistentMqtt5(clientId, topic, 1, expiry));
        RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, ChildNodeMain.records(1, 3)), "session " + expiry)
                .assertExactlyOne(SUCCESS, WAIT, Duration.ZERO);
        BROKER.closeAppenders();
        BROKER.broker().awaitDisconnected(clientId);
        assertEquals(kept, sessionPresent(clientId), "broker kept the session after DISCONNECT\n"
                + BROKER.broker().logTail(10));
    }

    /**
     * The appender's connection is cut (through an HTTP CONNECT proxy whose tunnels are dropped) again and again while
     * packs flow; it reconnects to its own session. Packs in flight at a cut may fail (Kaa would send them again);
     * every record of every pack answered onSuccess is at the persistent subscriber. Under MQTT 3.1.1 too, where the
     * appender numbers the messages itself and the resumed session is the broker's for good.
     */
    @ParameterizedTest(name = "{0}")
    // QoS 1 only: a QoS 2 publish the broker stored but whose PUBREC was lost with the connection keeps its packet id
    // in the resumed session, and the appender does not replay it; when that id is used again Mosquitto refuses the
    // new message (the pack answers onRemoteError; seen in about one run in two). README, Sessions, says so.
    @ValueSource(strings = {"MQTT_3_1_1", "MQTT_5"})
    void everyConfirmedRecordArrivesAcrossReconnects(String version) throws Exception {
        int qos = 1;
        String clientId = "it-session-" + UUID.randomUUID().toString().substring(0, 8);
        String topic = "kaa/it/session/" + UUID.randomUUID();
        try (HttpConnectProxy proxy = HttpConnectProxy.open();
                DurableSubscriber sub = DurableSubscriber.connect(BROKER.port(), topic, qos)) {
            Map<String, Object> cfg = persistentMqtt5(clientId, topic, qos, 3600);
            cfg.put("mqttVersion", new GenericData.EnumSymbol(KaaNode.configSchema().getField("mqttVersion").schema(),
                    version));
            cfg.put("proxyHost", "127.0.0.1");
            cfg.put("proxyPort", proxy.port());
            LogAppender a = BROKER.load("session " + version, cfg);
            List<byte[]> confirmed = new ArrayList<>();
            int failed = 0;
            int[] delivered = new int[6];
            int seed = (int) (System.nanoTime() & 0x7fffffff);
            for (int round = 0; round < delivered.length; round++) {
                List<RecordingCallback> callbacks = new ArrayList<>();
                List<List<byte[]>> packs = new ArrayList<>();
                for (int p = 0; p < 4; p++) {
                    List<byte[]> recs = ChildNodeMain.records(seed++, 50);
                    packs.add(recs);
                    callbacks.add(RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, recs), "r" + round + "p" + p));
                    if (p == 1) {
                        proxy.dropTunnels();
                    }
                }
                for (int p = 0; p < packs.size(); p++) {
                    RecordingCallback.Call c = callbacks.get(p).awaitFirstOrNull(WAIT);
                    assertNotNull(c, "no answer for " + callbacks.get(p).label());
                    if (c.method.equals(SUCCESS)) {
                        confirmed.addAll(packs.get(p));
                        delivered[round]++;
                    } else {
                        assertEquals(CONNECTION_ERROR, c.method, callbacks.get(p).toString());
                        failed++;
                    }
                }
            }
            List<byte[]> expected = AvroReference.expectedPayloads(AvroReference.parse(TELEMETRY), confirmed);
            long deadline = System.nanoTime() + WAIT.toNanos();
            List<String> missing = new ArrayList<>();
            for (byte[] e : expected) {
                if (!sub.await(e, deadline, () -> false)) {
                    missing.add(Payloads.idOf(e));
                }
            }
            assertTrue(missing.isEmpty(), missing.size() + " records of confirmed packs missing, e.g. "
                    + missing.subList(0, Math.min(5, missing.size())));
            // A cut while the appender is still reconnecting finds no tunnel: 6 and 7 tunnels were seen.
            assertTrue(proxy.requests().size() >= 4, "the appender reconnected after the cuts: "
                    + proxy.requests().size());
            for (int round = 0; round < delivered.length; round++) {
                assertTrue(delivered[round] > 0, "packs confirmed in every round, on the session resumed after the "
                        + "cut before it: " + java.util.Arrays.toString(delivered));
            }
            System.out.printf("session %s QoS %d: %d tunnels, %d records confirmed, %d packs failed%n", version, qos,
                    proxy.requests().size(), confirmed.size(), failed);
            BROKER.closeAppenders();
            BROKER.broker().awaitDisconnected(clientId);
            assertTrue(sessionPresent(clientId), "the session outlived the appender's connections");
        }
    }

    /**
     * Leaves, under {@code clientId}, an MQTT 3.1.1 session holding a subscription the appender never makes (another
     * client used its id), and queued for it a message of {@code bytes} bytes.
     */
    private static void leaveForeignSession(String clientId, int bytes) throws MqttException {
        String foreign = "it/foreign/" + UUID.randomUUID();
        MqttClient other = new MqttClient("tcp://127.0.0.1:" + BROKER.port(), clientId, new MemoryPersistence());
        MqttConnectOptions o = new MqttConnectOptions();
        o.setCleanSession(false);
        o.setMqttVersion(MqttConnectOptions.MQTT_VERSION_3_1_1);
        other.connect(o);
        other.subscribe(foreign, 1);
        other.disconnect(2_000);
        other.close(true);
        MqttClient pub = new MqttClient("tcp://127.0.0.1:" + BROKER.port(), MqttClient.generateClientId(),
                new MemoryPersistence());
        pub.connect();
        pub.publish(foreign, new byte[bytes], 1, false);
        pub.disconnect(2_000);
        pub.close(true);
    }

    /** An MQTT 3.1.1 appender with cleanSession off. */
    private static Map<String, Object> persistentMqtt311(String clientId, String topic) {
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        cfg.put("clientId", clientId);
        cfg.put("cleanSession", false);
        cfg.put("deliveryTimeoutSeconds", 10);
        return cfg;
    }

    /**
     * Sends a pack until it is answered onSuccess, as Kaa sends a failed one again, at most three times; asserts it
     * was within two.
     */
    private static void appendUntilDelivered(LogAppender a, List<byte[]> recs, String label) {
        List<String> answers = new ArrayList<>();
        for (int attempt = 0; attempt < 3 && !answers.contains(SUCCESS); attempt++) {
            RecordingCallback.Call c = RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, recs), label + " "
                    + attempt).awaitFirstOrNull(WAIT);
            answers.add(c == null ? "none" : c.method);
        }
        assertEquals(SUCCESS, answers.get(answers.size() - 1), label + ": " + answers + "\n"
                + BROKER.broker().logTail(10));
        assertTrue(answers.size() <= 2, label + ": " + answers);
    }

    /** The clean session flags of the connections the broker logged for {@code clientId}, in order: "c0", "c1". */
    private static List<String> cleanFlags(String clientId) {
        List<String> flags = new ArrayList<>();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile(" as " + java.util.regex.Pattern.quote(clientId)
                + " \\(p\\d, (c\\d)").matcher(BROKER.broker().logTail(2000));
        while (m.find()) {
            flags.add(m.group(1));
        }
        return flags;
    }

    /**
     * Two appenders of one node with one client id, the first started with cleanSession on, the second with it off:
     * the clean one moves to an id of its own, the session takes the id that names it, and both deliver. Before, the
     * second did not start (it did only when it started first).
     */
    @org.junit.jupiter.api.Test
    void aSessionTakesItsIdFromACleanAppenderOfTheSameNode() throws Exception {
        String clientId = "it-mixed-" + UUID.randomUUID().toString().substring(0, 8);
        String topic = "kaa/it/session/" + UUID.randomUUID();
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Map<String, Object> cleanCfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
            cleanCfg.put("clientId", clientId);
            LogAppender clean = BROKER.load("mixed clean", cleanCfg);
            List<byte[]> recs = ChildNodeMain.records(7, 3);
            appendUntilDelivered(clean, recs, "clean, alone");
            LogAppender lasting = BROKER.load("mixed lasting", persistentMqtt311(clientId, topic));
            appendUntilDelivered(lasting, recs, "lasting");
            appendUntilDelivered(clean, recs, "clean, moved");
            sub.assertCount(3 * recs.size(), WAIT);
        }
        BROKER.closeAppenders();
        assertEquals(List.of("c1", "c0"), cleanFlags(clientId),
                "under the id: the clean appender's connection, then the session's only\n"
                        + BROKER.broker().logTail(20));
    }

    /**
     * Queued in such a session, a message larger than the appender reads (64 KiB). MQTT 3.1.1 cannot tell the broker
     * that limit, and the broker sends the message at every connect: before, every connection failed with it, and
     * every pack.
     */
    @org.junit.jupiter.api.Test
    void aForeignMessageTooLargeToReadInTheSessionDoesNotStopDelivery() throws Exception {
        String clientId = "it-session-" + UUID.randomUUID().toString().substring(0, 8);
        leaveForeignSession(clientId, 100 * 1024);
        assertDeliveredThenClean(clientId, "foreign large");
    }

    /**
     * An MQTT 3.1.1 appender with cleanSession off under {@code clientId} delivers a pack, within two tries (one
     * written on the first connection, before what the session holds came, fails with it), and its last connection
     * started clean.
     */
    private static void assertDeliveredThenClean(String clientId, String label) {
        String topic = "kaa/it/session/" + UUID.randomUUID();
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            LogAppender a = BROKER.load(label, persistentMqtt311(clientId, topic));
            List<byte[]> recs = ChildNodeMain.records(7, 3);
            appendUntilDelivered(a, recs, label);
            sub.assertCount(recs.size(), WAIT);
        }
        BROKER.closeAppenders();
        List<String> flags = cleanFlags(clientId);
        assertEquals("c1", flags.get(flags.size() - 1), "the appender's last connection started clean: " + flags);
    }

    /**
     * Queued in such a session, a small message: the appender reads and drops it, delivers its packs, and starts the
     * next connection clean, so that the foreign subscription goes.
     */
    @org.junit.jupiter.api.Test
    void aForeignSubscriptionInTheSessionGoesAtTheNextConnection() throws Exception {
        String clientId = "it-session-" + UUID.randomUUID().toString().substring(0, 8);
        String topic = "kaa/it/session/" + UUID.randomUUID();
        leaveForeignSession(clientId, 1024);
        try (HttpConnectProxy proxy = HttpConnectProxy.open();
                Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Map<String, Object> cfg = persistentMqtt311(clientId, topic);
            cfg.put("proxyHost", "127.0.0.1");
            cfg.put("proxyPort", proxy.port());
            LogAppender a = BROKER.load("foreign small", cfg);
            List<byte[]> first = ChildNodeMain.records(11, 3);
            RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, first), "foreign small")
                    .assertExactlyOne(SUCCESS, WAIT, Duration.ZERO);
            proxy.dropTunnels();
            List<byte[]> second = ChildNodeMain.records(12, 3);
            appendUntilDelivered(a, second, "foreign small, reconnected");
            sub.assertCount(first.size() + second.size(), WAIT);
        }
        BROKER.closeAppenders();
        // The other client's connection, the appender's resuming the session, and its next starting clean.
        assertEquals(java.util.Arrays.asList("c0", "c0", "c1"), cleanFlags(clientId));
    }

    /**
     * Leaves, under {@code clientId}, an MQTT 3.1.1 session in the middle of a QoS 2 delivery to another client that
     * used the id: the broker sent it PUBREL and waits for PUBCOMP, and at the session's next connect it sends the
     * PUBREL again. A raw client, since MQTT clients answer PUBREL at once.
     */
    private static void leaveReleasePending(String clientId) throws Exception {
        String foreign = "it/foreign/" + UUID.randomUUID();
        try (java.net.Socket s = new java.net.Socket(java.net.InetAddress.getLoopbackAddress(), BROKER.port())) {
            s.setSoTimeout(10_000);
            java.io.DataInputStream in = new java.io.DataInputStream(s.getInputStream());
            java.io.OutputStream out = s.getOutputStream();
            // CONNECT: protocol "MQTT" level 4, clean session off, keep-alive 60 s.
            java.io.ByteArrayOutputStream connect = new java.io.ByteArrayOutputStream();
            connect.write(new byte[] {0, 4, 'M', 'Q', 'T', 'T', 4, 0, 0, 60});
            mqttString(connect, clientId);
            sendPacket(out, 0x10, connect.toByteArray());
            readPacket(in, 0x20);
            java.io.ByteArrayOutputStream subscribe = new java.io.ByteArrayOutputStream();
            subscribe.write(new byte[] {0, 1});
            mqttString(subscribe, foreign);
            subscribe.write(2);
            sendPacket(out, 0x82, subscribe.toByteArray());
            readPacket(in, 0x90);
            MqttClient pub = new MqttClient("tcp://127.0.0.1:" + BROKER.port(), MqttClient.generateClientId(),
                    new MemoryPersistence());
            pub.connect();
            pub.publish(foreign, new byte[] {1}, 2, false);
            pub.disconnect(2_000);
            pub.close(true);
            byte[] publish = readPacket(in, 0x34);
            int topicLength = ((publish[0] & 0xff) << 8) | (publish[1] & 0xff);
            sendPacket(out, 0x50, new byte[] {publish[2 + topicLength], publish[3 + topicLength]});
            readPacket(in, 0x62);
        } // closed without PUBCOMP
    }

    private static void mqttString(java.io.ByteArrayOutputStream out, String text) {
        byte[] bytes = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        out.write(bytes.length >> 8);
        out.write(bytes.length & 0xff);
        out.write(bytes, 0, bytes.length);
    }

    private static void sendPacket(java.io.OutputStream out, int first, byte[] body) throws java.io.IOException {
        assertTrue(body.length < 128, "a one-byte remaining length");
        out.write(first);
        out.write(body.length);
        out.write(body);
        out.flush();
    }

    /** The body of the next packet, which must have first byte {@code first}. */
    private static byte[] readPacket(java.io.DataInputStream in, int first) throws java.io.IOException {
        int got = in.readUnsignedByte();
        int length = 0;
        for (int shift = 0, b = 0x80; (b & 0x80) != 0; shift += 7) {
            b = in.readUnsignedByte();
            length |= (b & 0x7f) << shift;
        }
        byte[] body = new byte[length];
        in.readFully(body);
        assertEquals(Integer.toHexString(first), Integer.toHexString(got), "the broker's packet");
        return body;
    }

    /**
     * A session that another client with the appender's id left half-way through a QoS 2 delivery: the broker sends
     * the appender that delivery's PUBREL at every connect, for a packet id its connection never had, and the MQTT
     * client fails the connection. Before, every connection and every pack failed with it.
     */
    @org.junit.jupiter.api.Test
    void aReleaseTheSessionHoldsForAnotherClientDoesNotStopDelivery() throws Exception {
        String clientId = "it-session-" + UUID.randomUUID().toString().substring(0, 8);
        leaveReleasePending(clientId);
        assertDeliveredThenClean(clientId, "foreign release");
    }
}

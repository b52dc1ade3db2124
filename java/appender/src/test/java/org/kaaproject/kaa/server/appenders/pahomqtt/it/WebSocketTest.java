package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.apache.avro.generic.GenericData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * MQTT over WebSockets against a real broker with WebSocket listeners (Moquette; Debian's Mosquitto has none):
 * {@code ws://} and {@code wss://} (ssl on with transport WEBSOCKET), the same TLS settings as over TCP (CA,
 * verification with the host name, client certificate), records byte-exact at a real subscriber at QoS 0, 1 and 2.
 */
class WebSocketTest {

    private static final Duration SUCCESS_WAIT = Duration.ofSeconds(20);
    private static final Duration FAILURE_WAIT = Duration.ofSeconds(3 + 3);
    private static final Duration GRACE = Duration.ofMillis(700);
    private static final String TELEMETRY = TestData.schemaText("telemetry.avsc");

    private static TestPki pki;
    private static TestPki.Ca ca;
    private static TestPki.Ca otherCa;
    private static Moquette broker;
    private final List<LogAppender> appenders = new ArrayList<>();

    @BeforeAll
    static void startBroker() {
        pki = TestPki.create();
        ca = pki.rootCa("kaa-it-ws-root");
        otherCa = pki.rootCa("kaa-it-ws-other-root");
        broker = Moquette.startTls(ca.localhostServer(), null);
    }

    @AfterAll
    static void stopBroker() {
        if (broker != null) {
            broker.close();
        }
        if (pki != null) {
            pki.close();
        }
    }

    @AfterEach
    void closeAppenders() {
        for (LogAppender a : appenders) {
            a.close();
        }
        appenders.clear();
    }

    /** Overrides for an appender over WebSocket (wss with a CA when {@code caPem} is non-null) to a fresh topic. */
    static Map<String, Object> websocket(String host, int port, int qos, String caPem) {
        Map<String, Object> cfg = KaaNode.brokerConfig(port, "kaa/it/ws/" + UUID.randomUUID(), qos);
        cfg.put("host", host);
        cfg.put("transport", new GenericData.EnumSymbol(KaaNode.configSchema().getField("transport").schema(),
                "WEBSOCKET"));
        cfg.put("webSocketPath", Moquette.PATH);
        cfg.put("deliveryTimeoutSeconds", 15);
        if (caPem != null) {
            cfg.put("ssl", true);
            cfg.put("verifySslCert", true);
            cfg.put("caCertificate", caPem);
        }
        return cfg;
    }

    private LogAppender load(String label, Map<String, Object> cfg) {
        LogAppender a = KaaNode.load(label, KaaNode.config(cfg));
        appenders.add(a);
        return a;
    }

    /**
     * A pack of {@code n} records through an appender with {@code cfg}: exactly one onSuccess, and a subscriber on
     * the broker's TCP listener holds every record's payload byte for byte.
     */
    private void assertDelivers(Map<String, Object> cfg, int n, String label) {
        String topic = (String) cfg.get("mqtttopic");
        int qos = (Integer) cfg.get("qos");
        try (Subscriber sub = Subscriber.subscribe(broker.tcpPort(), topic, Math.max(1, qos))) {
            LogAppender a = load(label, cfg);
            List<byte[]> recs = ChildNodeMain.records((int) (System.nanoTime() & 0x7fffffff), n);
            RecordingCallback cb = RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, recs), label);
            RecordingCallback.Call first = cb.awaitFirstOrNull(SUCCESS_WAIT);
            assertNotNull(first, label + ": no answer within " + SUCCESS_WAIT);
            assertEquals(SUCCESS, first.method, label + ": " + cb);
            List<byte[]> expected = AvroReference.expectedPayloads(AvroReference.parse(TELEMETRY), recs);
            List<byte[]> got = sub.awaitCount(expected.size(), SUCCESS_WAIT);
            RecordingCallback.sleep(GRACE);
            cb.assertOnlyOne(SUCCESS);
            Payloads.assertSameMultiset(label, expected, sub.payloads());
            assertEquals(expected.size(), got.size(), label);
        }
    }

    /** One pack answered onConnectionError (deadline 3 s), nothing at the subscriber. */
    private void assertConnectionError(Map<String, Object> cfg, String label) {
        cfg.put("deliveryTimeoutSeconds", 3);
        try (Subscriber sub = Subscriber.subscribe(broker.tcpPort(), (String) cfg.get("mqtttopic"), 1)) {
            LogAppender a = load(label, cfg);
            RecordingCallback cb = RecordingCallback.append(a,
                    KaaNode.pack(TELEMETRY, 1, ChildNodeMain.records(7, 3)), label);
            RecordingCallback.Call first = cb.awaitFirstOrNull(FAILURE_WAIT);
            assertNotNull(first, label + ": no answer within " + FAILURE_WAIT);
            assertEquals(CONNECTION_ERROR, first.method, label + ": " + cb);
            RecordingCallback.sleep(GRACE);
            cb.assertOnlyOne(CONNECTION_ERROR);
            assertEquals(0, sub.count(), label + ": records reached the broker");
        }
    }

    @ParameterizedTest(name = "ws://, QoS {0}")
    @ValueSource(ints = {0, 1, 2})
    void plainWebSocketDeliversByteExact(int qos) {
        assertDelivers(websocket("127.0.0.1", broker.wsPort(), qos, null), 25, "ws QoS " + qos);
    }

    /** Verified against the test CA, host name included (the certificate names localhost and 127.0.0.1). */
    @ParameterizedTest(name = "wss://, QoS {0}")
    @ValueSource(ints = {0, 1, 2})
    void webSocketOverTlsDeliversByteExact(int qos) {
        assertDelivers(websocket("localhost", broker.wssPort(), qos, ca.certPem()), 25, "wss QoS " + qos);
    }

    /** A pack as one message of some kilobytes: several WebSocket frames' worth through the same stream. */
    @Test
    void onePackAsOneLargeMessageOverWss() {
        Map<String, Object> cfg = websocket("127.0.0.1", broker.wssPort(), 1, ca.certPem());
        cfg.put("grouping", new GenericData.EnumSymbol(KaaNode.configSchema().getField("grouping").schema(), "PACK"));
        String topic = (String) cfg.get("mqtttopic");
        try (Subscriber sub = Subscriber.subscribe(broker.tcpPort(), topic, 1)) {
            LogAppender a = load("wss pack", cfg);
            List<byte[]> recs = ChildNodeMain.records(11, 200);
            RecordingCallback cb = RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, recs), "wss pack");
            cb.assertExactlyOne(SUCCESS, SUCCESS_WAIT, GRACE);
            List<byte[]> got = sub.awaitCount(1, SUCCESS_WAIT);
            assertEquals(1, got.size());
            StringBuilder array = new StringBuilder("[");
            for (byte[] p : AvroReference.expectedPayloads(AvroReference.parse(TELEMETRY), recs)) {
                array.append(array.length() > 1 ? "," : "").append(new String(p, java.nio.charset.StandardCharsets.UTF_8));
            }
            String expected = array.append(']').toString();
            assertEquals(expected, new String(got.get(0), java.nio.charset.StandardCharsets.UTF_8));
        }
    }

    /** wss with verification checks the chain: another CA is a connection error, never a fallback to ws. */
    @Test
    void wssWithAnotherCaIsAConnectionError() {
        assertConnectionError(websocket("localhost", broker.wssPort(), 1, otherCa.certPem()), "wss, other CA");
    }

    /** Plain ws to the TLS listener: the handshake cannot work; a connection error. */
    @Test
    void plainWebSocketToTheTlsListenerIsAConnectionError() {
        assertConnectionError(websocket("127.0.0.1", broker.wssPort(), 1, null), "ws to wss port");
    }

    /** The path is part of the address: the broker answers another path with an HTTP error. */
    @Test
    void wrongPathIsAConnectionError() {
        Map<String, Object> cfg = websocket("127.0.0.1", broker.wsPort(), 1, null);
        cfg.put("webSocketPath", "/not-mqtt");
        assertConnectionError(cfg, "ws, wrong path");
    }

    /** Mutual TLS over wss: the client certificate and key of the TLS fields, as over TCP. */
    @Test
    void clientCertificateOverWss() {
        TestPki.Issued client = ca.client("kaa-it-ws-client", TestPki.KeyType.EC_P256);
        try (Moquette mutual = Moquette.startTls(ca.localhostServer(), ca)) {
            Map<String, Object> cfg = websocket("localhost", mutual.wssPort(), 1, ca.certPem());
            cfg.put("clientCertificate", client.chainPem());
            cfg.put("clientPrivateKey", client.keyPem());
            String topic = (String) cfg.get("mqtttopic");
            try (Subscriber sub = Subscriber.subscribe(mutual.tcpPort(), topic, 1)) {
                LogAppender a = load("wss client cert", cfg);
                List<byte[]> recs = ChildNodeMain.records(5, 5);
                RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, recs), "wss client cert")
                        .assertExactlyOne(SUCCESS, SUCCESS_WAIT, GRACE);
                Payloads.assertSameMultiset("wss client cert",
                        AvroReference.expectedPayloads(AvroReference.parse(TELEMETRY), recs),
                        sub.awaitCount(recs.size(), SUCCESS_WAIT));
            }
            Map<String, Object> without = websocket("localhost", mutual.wssPort(), 1, ca.certPem());
            without.put("deliveryTimeoutSeconds", 3);
            LogAppender a = load("wss without client cert", without);
            RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, ChildNodeMain.records(6, 2)), "no client cert")
                    .assertExactlyOne(CONNECTION_ERROR, FAILURE_WAIT, GRACE);
            closeAppenders();
        }
    }
}

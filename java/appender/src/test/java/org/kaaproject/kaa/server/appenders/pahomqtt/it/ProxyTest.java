package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.REMOTE_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * Through an HTTP CONNECT proxy ({@link HttpConnectProxy}, written for the tests): plain TCP and TLS to a real
 * Mosquitto, WebSocket over TLS to a real Moquette, with and without proxy credentials. Records arrive byte-exact and
 * the proxy saw the tunnel. A proxy refusing the credentials (407) is answered onRemoteError, like a broker refusing
 * the MQTT credentials: retrying cannot help until the configuration changes. A proxy that cannot reach the broker
 * (502), or that is not there, is a connection error.
 */
class ProxyTest {

    private static final Duration SUCCESS_WAIT = Duration.ofSeconds(20);
    private static final Duration FAILURE_WAIT = Duration.ofSeconds(3 + 3);
    private static final Duration GRACE = Duration.ofMillis(700);
    private static final String TELEMETRY = TestData.schemaText("telemetry.avsc");

    private static TestPki pki;
    private static TestPki.Ca ca;

    /** TLS on {@code port()}, plain on {@code plainPort()}. */
    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.withTls(() -> {
        pki = TestPki.create();
        ca = pki.rootCa("kaa-it-proxy-root");
        TestPki.Issued server = ca.localhostServer();
        return new Mosquitto.Tls(ca.cert, server.chain, server.key);
    });

    @AfterAll
    static void removeCertificates() {
        if (pki != null) {
            pki.close();
        }
    }

    private static Map<String, Object> viaProxy(Map<String, Object> cfg, HttpConnectProxy proxy, String user,
            String password) {
        cfg.put("proxyHost", "127.0.0.1");
        cfg.put("proxyPort", proxy.port());
        cfg.put("proxyUsername", user == null ? "" : user);
        cfg.put("proxyPassword", password == null ? "" : password);
        cfg.put("deliveryTimeoutSeconds", 15);
        return cfg;
    }

    private static Map<String, Object> plain(int port) {
        return KaaNode.brokerConfig(port, "kaa/it/proxy/" + UUID.randomUUID(), 1);
    }

    private static Map<String, Object> tls(int port) {
        Map<String, Object> cfg = plain(port);
        cfg.put("host", "localhost");
        cfg.put("ssl", true);
        cfg.put("verifySslCert", true);
        cfg.put("caCertificate", ca.certPem());
        return cfg;
    }

    /** One pack through {@code cfg}: exactly one onSuccess, every record byte-exact at a subscriber on subPort. */
    private static void assertDelivers(int subPort, Map<String, Object> cfg, String label) {
        try (Subscriber sub = Subscriber.subscribe(subPort, (String) cfg.get("mqtttopic"), 1)) {
            LogAppender a = BROKER.load(label, cfg);
            List<byte[]> recs = ChildNodeMain.records((int) (System.nanoTime() & 0x7fffffff), 9);
            RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, recs), label)
                    .assertExactlyOne(SUCCESS, SUCCESS_WAIT, GRACE);
            Payloads.assertSameMultiset(label, AvroReference.expectedPayloads(AvroReference.parse(TELEMETRY), recs),
                    sub.awaitCount(recs.size(), SUCCESS_WAIT));
        }
    }

    private static void assertAnswered(String expected, Map<String, Object> cfg, String label) {
        cfg.put("deliveryTimeoutSeconds", 3);
        try (Subscriber sub = Subscriber.subscribe(BROKER.broker().plainPort(), (String) cfg.get("mqtttopic"), 1)) {
            LogAppender a = BROKER.load(label, cfg);
            RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, ChildNodeMain.records(3, 3)), label)
                    .assertExactlyOne(expected, FAILURE_WAIT, GRACE);
            assertEquals(0, sub.count(), label + ": records reached the broker");
        }
    }

    @Test
    void plainTcpThroughAnOpenProxy() {
        try (HttpConnectProxy proxy = HttpConnectProxy.open()) {
            int port = BROKER.broker().plainPort();
            assertDelivers(port, viaProxy(plain(port), proxy, null, null), "tcp via proxy");
            assertEquals("CONNECT 127.0.0.1:" + port + " HTTP/1.1", proxy.requests().get(0));
            assertEquals("200", proxy.answers().get(0));
        }
    }

    /** TLS inside the tunnel, verified against the broker's host name (not the proxy's). */
    @Test
    void tlsThroughAProxyWithCredentials() {
        try (HttpConnectProxy proxy = HttpConnectProxy.withCredentials("kaa", "proxy-pass")) {
            int port = BROKER.broker().port();
            assertDelivers(BROKER.broker().plainPort(), viaProxy(tls(port), proxy, "kaa", "proxy-pass"),
                    "tls via proxy");
            assertEquals("CONNECT localhost:" + port + " HTTP/1.1", proxy.requests().get(0));
            assertEquals("200", proxy.answers().get(0));
        }
    }

    @Test
    void webSocketOverTlsThroughAProxyWithCredentials() {
        try (Moquette moquette = Moquette.startTls(ca.localhostServer(), null);
                HttpConnectProxy proxy = HttpConnectProxy.withCredentials("kaa", "proxy-pass")) {
            Map<String, Object> cfg = WebSocketTest.websocket("localhost", moquette.wssPort(), 1, ca.certPem());
            assertDelivers(moquette.tcpPort(), viaProxy(cfg, proxy, "kaa", "proxy-pass"), "wss via proxy");
            assertEquals("CONNECT localhost:" + moquette.wssPort() + " HTTP/1.1", proxy.requests().get(0));
            BROKER.closeAppenders();
        }
    }

    @Test
    void wrongProxyPasswordIsARemoteError() {
        try (HttpConnectProxy proxy = HttpConnectProxy.withCredentials("kaa", "proxy-pass")) {
            int port = BROKER.broker().plainPort();
            assertAnswered(REMOTE_ERROR, viaProxy(plain(port), proxy, "kaa", "wrong"), "wrong proxy password");
            assertTrue(proxy.answers().contains("407"), proxy.answers().toString());
            assertAnswered(REMOTE_ERROR, viaProxy(plain(port), proxy, null, null), "no proxy credentials");
        }
    }

    @Test
    void proxyThatCannotReachTheBrokerIsAConnectionError() {
        try (HttpConnectProxy proxy = HttpConnectProxy.open()) {
            assertAnswered(CONNECTION_ERROR, viaProxy(plain(Mosquitto.freeLoopbackPort()), proxy, null, null),
                    "proxy answers 502");
            assertTrue(proxy.answers().contains("502"), proxy.answers().toString());
        }
    }

    @Test
    void proxyThatIsNotThereIsAConnectionError() {
        Map<String, Object> cfg = plain(BROKER.broker().plainPort());
        cfg.put("proxyHost", "127.0.0.1");
        cfg.put("proxyPort", Mosquitto.freeLoopbackPort());
        assertAnswered(CONNECTION_ERROR, cfg, "no proxy");
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * TLS against a real Mosquitto with a TLS listener and certificates made at test time ({@link TestPki}): server
 * verification (CA, chain, host name), verification off, mutual TLS, the wrong protocol on either side, and ALPN
 * and SNI as a TLS-terminating proxy sees them. Appenders are driven as the Kaa node drives them; subscribers read
 * from the same broker's plain listener. What the appender logs is checked in {@link TlsLoggingTest}.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TlsTest {

    /** The deadline the failure tests give the appender; the answer must come within it (plus scheduling slack). */
    private static final int DEADLINE_SECONDS = 3;
    private static final Duration FAILURE_WAIT = Duration.ofSeconds(DEADLINE_SECONDS + 2);
    private static final Duration SUCCESS_WAIT = Duration.ofSeconds(20);
    private static final Duration GRACE = Duration.ofMillis(700);

    private static final String TELEMETRY = TestData.schemaText("telemetry.avsc");

    private static TestPki pki;
    private static TestPki.Ca ca;
    private static TestPki.Ca otherCa;
    private static TestPki.Issued server;

    /** TLS listener with the usual server certificate (SAN localhost, 127.0.0.1), no client certificate needed. */
    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.withTls(TlsTest::makeCertificates);

    /** The CAs and the server certificate, made when the class's broker starts. */
    private static Mosquitto.Tls makeCertificates() {
        pki = TestPki.create();
        ca = pki.rootCa("kaa-it-root");
        otherCa = pki.rootCa("kaa-it-other-root");
        server = ca.localhostServer();
        return new Mosquitto.Tls(ca.cert, server.chain, server.key);
    }

    @AfterAll
    static void removeCertificates() {
        if (pki != null) {
            pki.close();
        }
    }

    private static Mosquitto broker() {
        return BROKER.broker();
    }

    // ------------------------------------------------------------------------------------------ helpers

    /** Overrides for an appender with TLS on, publishing to a fresh topic at QoS 1. */
    private static Map<String, Object> tls(String host, int port, boolean verify, String caPem) {
        Map<String, Object> cfg = KaaNode.brokerConfig(port, "kaa/it/tls/" + UUID.randomUUID(), 1);
        cfg.put("host", host);
        cfg.put("ssl", true);
        cfg.put("verifySslCert", verify);
        cfg.put("caCertificate", caPem);
        cfg.put("deliveryTimeoutSeconds", 15);
        return cfg;
    }

    private static LogAppender load(String name, Map<String, Object> cfg) {
        return BROKER.load(name, cfg);
    }

    private static List<byte[]> records(int n) {
        return ChildNodeMain.records((int) (System.nanoTime() & 0x7fffffff), n);
    }

    private static RecordingCallback append(LogAppender a, List<byte[]> recs, String label) {
        return RecordingCallback.append(a, KaaNode.pack(TELEMETRY, 1, recs), label);
    }

    private static List<byte[]> expected(List<byte[]> recs) {
        return AvroReference.expectedPayloads(AvroReference.parse(TELEMETRY), recs);
    }

    /**
     * Loads an appender with {@code cfg} (its topic subscribed on {@code b}'s plain listener), appends a pack and
     * asserts onSuccess, exactly once, and the records byte-exact at the subscriber.
     */
    private void assertDelivers(Mosquitto b, Map<String, Object> cfg, String label) {
        String topic = (String) cfg.get("mqtttopic");
        int qos = (Integer) cfg.get("qos");
        try (Subscriber sub = Subscriber.subscribe(b.plainPort(), topic, Math.max(1, qos))) {
            LogAppender a = load(label, cfg);
            List<byte[]> recs = records(7);
            RecordingCallback cb = append(a, recs, label);
            RecordingCallback.Call first = cb.awaitFirstOrNull(SUCCESS_WAIT);
            assertNotNull(first, label + ": no answer within " + SUCCESS_WAIT + "\n" + b.logTail(20));
            assertEquals(SUCCESS, first.method, label + ": " + cb + "\n" + b.logTail(20));
            RecordingCallback.sleep(GRACE);
            cb.assertOnlyOne(SUCCESS);
            sub.awaitCount(recs.size(), Duration.ofSeconds(10));
            Payloads.assertSameMultiset(label, expected(recs), sub.payloads());
        }
    }

    /**
     * Loads an appender with {@code cfg} (deadline {@value #DEADLINE_SECONDS} s), appends a pack and asserts
     * onConnectionError, exactly once, within the deadline, and nothing at the subscriber.
     */
    private RecordingCallback assertConnectionError(Mosquitto b, Map<String, Object> cfg, String label) {
        cfg.put("deliveryTimeoutSeconds", DEADLINE_SECONDS);
        String topic = (String) cfg.get("mqtttopic");
        try (Subscriber sub = b == null ? null : Subscriber.subscribe(b.plainPort(), topic, 1)) {
            LogAppender a = load(label, cfg);
            RecordingCallback cb = append(a, records(3), label);
            RecordingCallback.Call first = cb.awaitFirstOrNull(FAILURE_WAIT);
            assertNotNull(first, label + ": no answer within " + FAILURE_WAIT + " (deadline " + DEADLINE_SECONDS
                    + " s): the appender hangs" + (b == null ? "" : "\n" + b.logTail(20)));
            assertEquals(CONNECTION_ERROR, first.method, label + ": " + cb + (b == null ? "" : "\n" + b.logTail(20)));
            RecordingCallback.sleep(GRACE);
            cb.assertOnlyOne(CONNECTION_ERROR);
            if (sub != null) {
                assertEquals(0, sub.count(), label + ": records reached the broker");
            }
            return cb;
        }
    }

    // ------------------------------------------------------------------------------------------ 1. right CA

    @ParameterizedTest(name = "host {0}, QoS {1}")
    @CsvSource({"127.0.0.1, 0", "127.0.0.1, 1", "127.0.0.1, 2", "localhost, 1"})
    void verifiedWithTheRightCaDeliversByteExact(String host, int qos) {
        Map<String, Object> cfg = tls(host, broker().port(), true, ca.certPem());
        cfg.put("qos", qos);
        assertDelivers(broker(), cfg, "right CA, " + host + ", QoS " + qos);
    }

    @Test
    void caCertificateMayHoldSeveralCas() {
        assertDelivers(broker(), tls("localhost", broker().port(), true, otherCa.certPem() + "\n" + ca.certPem()),
                "CA bundle, the right CA second");
    }

    @Test
    void serverChainThroughAnIntermediateVerifiesAgainstTheRoot() {
        TestPki.Ca inter = ca.intermediate("kaa-it-intermediate");
        TestPki.Issued leaf = inter.localhostServer();
        try (Mosquitto b = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, leaf.chain, leaf.key))) {
            assertDelivers(b, tls("localhost", b.port(), true, ca.certPem()), "chain via intermediate");
        }
    }

    @Test
    void rsaServerCertificate() {
        TestPki.Issued rsa = ca.server("localhost", List.of("localhost"), List.of("127.0.0.1"), TestPki.KeyType.RSA_2048);
        try (Mosquitto b = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, rsa.chain, rsa.key))) {
            assertDelivers(b, tls("127.0.0.1", b.port(), true, ca.certPem()), "RSA server key");
        }
    }

    // ------------------------------------------------------------------------------------------ 2. wrong CA

    @Test
    void verifiedWithAnotherCaIsAConnectionError() {
        assertConnectionError(broker(), tls("127.0.0.1", broker().port(), true, otherCa.certPem()), "other CA");
    }

    /** "" means the system's roots, which do not hold the test CA: not "trust anything". */
    @Test
    void verifiedWithTheSystemRootsRejectsAPrivateCa() {
        assertConnectionError(broker(), tls("localhost", broker().port(), true, ""), "system roots");
    }

    /** Trusting the intermediate's issuer is needed; a server sending only its leaf cannot be chained. */
    @Test
    void leafWithoutItsIntermediateDoesNotVerify() {
        TestPki.Ca inter = ca.intermediate("kaa-it-intermediate-missing");
        TestPki.Issued leaf = inter.localhostServer();
        try (Mosquitto b = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, leaf.cert, leaf.key))) {
            assertConnectionError(b, tls("localhost", b.port(), true, ca.certPem()), "missing intermediate");
        }
    }

    // ------------------------------------------------------------------------------------------ 3. verify off

    @ParameterizedTest(name = "verification off, {0}")
    @ValueSource(strings = {"other CA", "no CA"})
    void verificationOffDeliversOverTls(String which) {
        String caPem = which.equals("no CA") ? "" : otherCa.certPem();
        assertDelivers(broker(), tls("127.0.0.1", broker().port(), false, caPem), "verify off, " + which);
    }

    /** Off means off: the host name is not checked either. */
    @Test
    void verificationOffSkipsTheHostNameToo() {
        TestPki.Issued ipOnly = ca.server("kaa-it-ip-only", List.of(), List.of("127.0.0.1"));
        try (Mosquitto b = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, ipOnly.chain, ipOnly.key))) {
            assertDelivers(b, tls("localhost", b.port(), false, otherCa.certPem()), "verify off, name not in SAN");
        }
    }

    /**
     * Appenders with the same broker, credentials and client id share a connection. One that verifies must not
     * ride on a connection another appender made without verification: its own check would have failed.
     */
    @Test
    void aVerifyingAppenderNeverUsesAnUnverifiedConnection() {
        Map<String, Object> loose = tls("127.0.0.1", broker().port(), false, otherCa.certPem());
        assertDelivers(broker(), loose, "unverified first");
        Map<String, Object> strict = tls("127.0.0.1", broker().port(), true, otherCa.certPem());
        strict.put("clientId", loose.get("clientId"));
        strict.put("mqtttopic", loose.get("mqtttopic"));
        strict.put("deliveryTimeoutSeconds", DEADLINE_SECONDS);
        try (Subscriber sub = Subscriber.subscribe(broker().plainPort(), (String) strict.get("mqtttopic"), 1)) {
            LogAppender a = load("verifying, same identity", strict);
            RecordingCallback cb = append(a, records(3), "verifying, same identity");
            RecordingCallback.Call first = cb.awaitFirst(FAILURE_WAIT);
            assertNotEquals(SUCCESS, first.method, "delivered over a connection that was never verified: " + cb);
            RecordingCallback.sleep(GRACE);
            assertEquals(0, sub.count(), "records of the verifying appender reached the broker unverified");
            cb.assertOnlyOne(CONNECTION_ERROR);
        }
    }

    // ------------------------------------------------------------------------------------------ 4. host name

    @Test
    void hostNameNotInTheSanIsAConnectionError() {
        TestPki.Issued ipOnly = ca.server("kaa-it-ip-only", List.of(), List.of("127.0.0.1"));
        try (Mosquitto b = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, ipOnly.chain, ipOnly.key))) {
            assertConnectionError(b, tls("localhost", b.port(), true, ca.certPem()), "localhost, SAN IP only");
            // The same certificate, chain and CA are fine for the address that is in the SAN.
            assertDelivers(b, tls("127.0.0.1", b.port(), true, ca.certPem()), "127.0.0.1, SAN IP only");
        }
    }

    @Test
    void ipAddressNotInTheSanIsAConnectionError() {
        TestPki.Issued dnsOnly = ca.server("kaa-it-dns-only", List.of("localhost"), List.of());
        try (Mosquitto b = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, dnsOnly.chain, dnsOnly.key))) {
            assertConnectionError(b, tls("127.0.0.1", b.port(), true, ca.certPem()), "127.0.0.1, SAN DNS only");
            assertDelivers(b, tls("localhost", b.port(), true, ca.certPem()), "localhost, SAN DNS only");
        }
    }

    /** A subject CN is not a host name when the certificate has a SAN (RFC 6125; browsers, rustls). */
    @Test
    void commonNameDoesNotStandInForTheSan() {
        TestPki.Issued cnOnly = ca.server("localhost", List.of("not-localhost.example"), List.of("127.0.0.1"));
        try (Mosquitto b = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, cnOnly.chain, cnOnly.key))) {
            assertConnectionError(b, tls("localhost", b.port(), true, ca.certPem()), "CN=localhost, not in SAN");
        }
    }

    // ------------------------------------------------------------------------------------------ 5. mutual TLS

    private static Mosquitto mutualBroker() {
        return Mosquitto.startTls(new Mosquitto.Tls(ca.cert, server.chain, server.key).requireCertificate(true)
                .useIdentityAsUsername(true));
    }

    @ParameterizedTest(name = "{0} key, {1}")
    @CsvSource({"EC_P256, PKCS8", "EC_P256, TRADITIONAL", "RSA_2048, PKCS8", "RSA_2048, TRADITIONAL"})
    void mutualTlsWithClientCertificateAndKeyDelivers(TestPki.KeyType type, String keyForm) {
        TestPki.Issued client = ca.client("kaa-node-" + type + "-" + keyForm, type);
        try (Mosquitto b = mutualBroker()) {
            Map<String, Object> cfg = tls("localhost", b.port(), true, ca.certPem());
            cfg.put("clientCertificate", client.chainPem());
            cfg.put("clientPrivateKey", keyForm.equals("PKCS8") ? client.keyPem() : client.traditionalKeyPem());
            assertDelivers(b, cfg, "client cert " + type + ", key " + keyForm);
        }
    }

    @Test
    void mutualTlsClientChainThroughAnIntermediate() {
        TestPki.Ca inter = ca.intermediate("kaa-it-client-intermediate");
        TestPki.Issued client = inter.client("kaa-node-via-intermediate", TestPki.KeyType.EC_P256);
        try (Mosquitto b = mutualBroker()) {
            Map<String, Object> cfg = tls("127.0.0.1", b.port(), true, ca.certPem());
            cfg.put("clientCertificate", client.chainPem());
            cfg.put("clientPrivateKey", client.keyPem());
            assertDelivers(b, cfg, "client chain via intermediate");
        }
    }

    @Test
    void mutualTlsWithoutClientCertificateIsAConnectionError() {
        try (Mosquitto b = mutualBroker()) {
            assertConnectionError(b, tls("localhost", b.port(), true, ca.certPem()), "no client certificate");
        }
    }

    @Test
    void mutualTlsWithAClientCertificateFromAnotherCaIsAConnectionError() {
        TestPki.Issued stranger = otherCa.client("stranger", TestPki.KeyType.EC_P256);
        try (Mosquitto b = mutualBroker()) {
            Map<String, Object> cfg = tls("localhost", b.port(), true, ca.certPem());
            cfg.put("clientCertificate", stranger.chainPem());
            cfg.put("clientPrivateKey", stranger.keyPem());
            assertConnectionError(b, cfg, "client certificate from another CA");
        }
    }

    // ------------------------------------------------------------------------------------------ 6. wrong protocol

    @Test
    void tlsToAPlainListenerIsAConnectionErrorNotAHang() {
        assertConnectionError(broker(), tls("127.0.0.1", broker().plainPort(), true, ca.certPem()), "TLS to plain port");
    }

    @Test
    void plainMqttToTheTlsListenerIsAConnectionErrorNotAHang() {
        Map<String, Object> cfg = tls("127.0.0.1", broker().port(), false, "");
        cfg.put("ssl", false);
        assertConnectionError(broker(), cfg, "plain MQTT to TLS port");
    }

    /** A peer that accepts TCP and never answers the ClientHello: the deadline still holds. */
    @Test
    void silentPeerDuringTheHandshakeIsAConnectionErrorWithinTheDeadline() throws IOException {
        try (ServerSocket silent = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
            List<Socket> held = new CopyOnWriteArrayList<>();
            Thread acceptor = new Thread(() -> {
                try {
                    while (true) {
                        held.add(silent.accept());
                    }
                } catch (IOException e) {
                    // closed
                }
            }, "silent-peer");
            acceptor.setDaemon(true);
            acceptor.start();
            try {
                assertConnectionError(null, tls("127.0.0.1", silent.getLocalPort(), true, ca.certPem()),
                        "silent peer");
            } finally {
                for (Socket s : held) {
                    s.close();
                }
            }
        }
    }

    /** TLS settings that pass as PEM but cannot make a TLS client (see {@link #unusableTlsSettingsNeverFallBackToPlainText}). */
    static Map<String, Object> unusableTls(String which) {
        Map<String, Object> m = new java.util.HashMap<>();
        switch (which) {
            case "CA PEM block that is not a certificate":
                m.put("caCertificate", "-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----\n");
                break;
            case "client key of another certificate": {
                TestPki.Issued a = ca.client("kaa-node-a", TestPki.KeyType.EC_P256);
                TestPki.Issued b = ca.client("kaa-node-b", TestPki.KeyType.EC_P256);
                m.put("caCertificate", ca.certPem());
                m.put("clientCertificate", a.chainPem());
                m.put("clientPrivateKey", b.keyPem());
                break;
            }
            case "client key on a curve the TLS library cannot sign with (P-521)": {
                TestPki.Issued c = ca.client("kaa-node-p521", TestPki.KeyType.EC_P521);
                m.put("caCertificate", ca.certPem());
                m.put("clientCertificate", c.chainPem());
                m.put("clientPrivateKey", c.keyPem());
                break;
            }
            default:
                throw new IllegalArgumentException(which);
        }
        return m;
    }

    /**
     * ssl on must never mean plain text, whatever is wrong with the TLS settings. Settings whose PEM reads fine but
     * which cannot make a TLS client must stop the appender (or at least keep it from connecting), never make it
     * connect without TLS: that would send the MQTT CONNECT, password included, and every record in clear. A
     * listener records the first bytes of every connection made to it.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"CA PEM block that is not a certificate", "client key of another certificate",
        "client key on a curve the TLS library cannot sign with (P-521)"})
    void unusableTlsSettingsNeverFallBackToPlainText(String which) {
        String password = "pw-" + UUID.randomUUID();
        try (PlainTextSniffer sniffer = PlainTextSniffer.start()) {
            Map<String, Object> cfg = tls("127.0.0.1", sniffer.port(), true, "");
            cfg.putAll(unusableTls(which));
            cfg.put("username", "kaa-node");
            cfg.put("password", password);
            cfg.put("deliveryTimeoutSeconds", DEADLINE_SECONDS);
            LogAppender a = load(which, cfg);
            RecordingCallback cb = append(a, records(2), which);
            RecordingCallback.Call first = cb.awaitFirst(FAILURE_WAIT);
            RecordingCallback.sleep(Duration.ofMillis(1500));
            a.close();
            List<String> plain = sniffer.nonTls(password);
            assertEquals(List.of(), plain, "ssl is on, yet the appender connected without TLS (" + sniffer.connections()
                    + " connection(s); pack answered " + first.method + ")");
            assertNotEquals(SUCCESS, first.method);
        }
    }

    // ------------------------------------------------------------------------------------------ 7. ALPN and SNI

    private TlsProxy.Handshake throughProxy(String host, String alpn, String label) {
        try (TlsProxy proxy = TlsProxy.start(server, broker().plainPort())) {
            Map<String, Object> cfg = tls(host, proxy.port(), true, ca.certPem());
            cfg.put("alpnProtocols", alpn);
            assertDelivers(broker(), cfg, label);
            TlsProxy.Handshake h = proxy.awaitHandshake(Duration.ofSeconds(5));
            assertNotNull(h, "the proxy saw no completed handshake; failures: " + proxy.failures());
            assertEquals(1, proxy.handshakes().size(), "one connection: " + proxy.handshakes());
            return h;
        }
    }

    @Test
    void offersExactlyTheConfiguredAlpnProtocolsAndSendsSni() {
        TlsProxy.Handshake h = throughProxy("localhost", "mqtt,x-kaa-it/1", "ALPN two, host localhost");
        assertEquals(List.of("mqtt", "x-kaa-it/1"), h.alpnOffered, "ALPN offered: " + h);
        assertEquals("mqtt", h.negotiatedAlpn, h.toString());
        assertEquals(List.of("localhost"), h.sniHostNames, "SNI: " + h);
    }

    @Test
    void singleAlpnProtocol() {
        TlsProxy.Handshake h = throughProxy("localhost", "x-amzn-mqtt-ca", "ALPN one");
        assertEquals(List.of("x-amzn-mqtt-ca"), h.alpnOffered, "ALPN offered: " + h);
        assertEquals(List.of("localhost"), h.sniHostNames, "SNI: " + h);
    }

    @Test
    void noAlpnConfiguredMeansNoAlpnExtension() {
        TlsProxy.Handshake h = throughProxy("localhost", "", "no ALPN");
        assertNull(h.alpnOffered, "an ALPN extension was sent: " + h);
        assertEquals(List.of("localhost"), h.sniHostNames, "SNI: " + h);
    }

    /** RFC 6066: "Literal IPv4 and IPv6 addresses are not permitted in HostName". */
    @Test
    void noSniForAnIpAddress() {
        TlsProxy.Handshake h = throughProxy("127.0.0.1", "mqtt", "IP host");
        assertEquals(List.of(), h.sniRaw, "SNI sent for an IP address: " + h);
        assertEquals(List.of("mqtt"), h.alpnOffered, "ALPN offered: " + h);
    }
}

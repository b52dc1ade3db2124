package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

import org.eclipse.paho.client.mqttv3.MqttClient;
import org.eclipse.paho.client.mqttv3.MqttConnectOptions;
import org.eclipse.paho.client.mqttv3.MqttException;
import org.eclipse.paho.client.mqttv3.persist.MemoryPersistence;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Checks the TLS test harness itself with no appender involved (PKI made with openssl, Mosquitto's TLS listener,
 * the ALPN/SNI proxy, the child-JVM node), using Paho and plain JSSE as the clients, so that a TLS test failure
 * can be trusted to be the appender's.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TlsHarnessTest {

    private static TestPki pki;
    private static TestPki.Ca ca;
    private static TestPki.Ca otherCa;
    private static TestPki.Issued server;

    @BeforeAll
    static void makePki() {
        pki = TestPki.create();
        ca = pki.rootCa("kaa-it-root");
        otherCa = pki.rootCa("kaa-it-other-root");
        server = ca.localhostServer();
    }

    @AfterAll
    static void removePki() {
        if (pki != null) {
            pki.close();
        }
    }

    private static List<String> san(X509Certificate c) throws CertificateParsingException {
        List<String> out = new ArrayList<>();
        Collection<List<?>> all = c.getSubjectAlternativeNames();
        if (all != null) {
            for (List<?> e : all) {
                out.add((((Integer) e.get(0)) == 2 ? "DNS:" : ((Integer) e.get(0)) == 7 ? "IP:" : e.get(0) + ":")
                        + e.get(1));
            }
        }
        return out;
    }

    @Test
    void pkiMakesCertificatesThatChainAndNameWhatTheySay() throws Exception {
        assertEquals(List.of("DNS:localhost", "IP:127.0.0.1"), san(server.x509()));
        assertTrue(pki.opensslVerifies(ca, server, "sslserver"), "server cert chains to its CA");
        assertFalse(pki.opensslVerifies(otherCa, server, "sslserver"), "and not to the other CA");
        assertTrue(server.x509().getBasicConstraints() < 0, "leaf is not a CA");
        assertTrue(ca.x509().getBasicConstraints() >= 0, "CA is a CA");

        TestPki.Issued ipOnly = ca.server("localhost", List.of(), List.of("127.0.0.1"));
        assertEquals(List.of("IP:127.0.0.1"), san(ipOnly.x509()), "CN=localhost, but no DNS name in the SAN");

        TestPki.Ca inter = ca.intermediate("kaa-it-intermediate");
        TestPki.Issued viaInter = inter.localhostServer();
        assertEquals(2, TestPki.certificates(viaInter.chainPem()).size(), "leaf + intermediate");
        assertTrue(pki.opensslVerifies(ca, viaInter, "sslserver"));

        TestPki.Issued clientEc = ca.client("kaa-node-ec", TestPki.KeyType.EC_P256);
        TestPki.Issued clientRsa = ca.client("kaa-node-rsa", TestPki.KeyType.RSA_2048);
        assertTrue(pki.opensslVerifies(ca, clientEc, "sslclient"));
        assertTrue(pki.opensslVerifies(ca, clientRsa, "sslclient"));
        assertTrue(clientEc.keyPem().contains("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
        assertTrue(clientEc.traditionalKeyPem().contains("-----BEGIN EC PRIVATE KEY-----"), "SEC1");
        assertTrue(clientRsa.keyPem().contains("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
        assertTrue(clientRsa.traditionalKeyPem().contains("-----BEGIN RSA PRIVATE KEY-----"), "PKCS#1");
        assertEquals("RSA", clientRsa.x509().getPublicKey().getAlgorithm());
        assertEquals("EC", clientEc.x509().getPublicKey().getAlgorithm());
    }

    static MqttClient pahoConnect(String uri, SSLContext ctx) throws MqttException {
        MqttClient c = new MqttClient(uri, "it-tls-" + UUID.randomUUID(), new MemoryPersistence());
        c.setTimeToWait(10_000);
        MqttConnectOptions o = new MqttConnectOptions();
        o.setCleanSession(true);
        o.setConnectionTimeout(10);
        o.setMqttVersion(MqttConnectOptions.MQTT_VERSION_3_1_1);
        if (ctx != null) {
            o.setSocketFactory(ctx.getSocketFactory());
            o.setHttpsHostnameVerificationEnabled(true);
        }
        try {
            c.connect(o);
        } catch (MqttException e) {
            c.close(true);
            throw e;
        }
        return c;
    }

    /** Connects, then disconnects cleanly; throws only if the connection failed. */
    static void connectAndClose(String uri, SSLContext ctx) throws MqttException {
        MqttClient c = pahoConnect(uri, ctx);
        try {
            c.disconnect(5_000);
        } catch (MqttException e) {
            c.disconnectForcibly(0, 0);
        }
        c.close(true);
    }

    static void publishAndClose(MqttClient c, String topic, String text) throws MqttException {
        try {
            c.publish(topic, text.getBytes(StandardCharsets.UTF_8), 1, false);
            c.disconnect(5_000);
        } finally {
            c.close(true);
        }
    }

    @Test
    void pahoPublishesOverTheTlsListenerWithTheRightCaOnly() throws Exception {
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, server.chain, server.key))) {
            assertTrue(broker.isTls());
            assertTrue(broker.plainPort() > 0 && broker.plainPort() != broker.port());
            String topic = "kaa/it/tls-harness/" + UUID.randomUUID();
            try (Subscriber sub = Subscriber.subscribe(broker.plainPort(), topic, 1)) {
                publishAndClose(pahoConnect("ssl://127.0.0.1:" + broker.port(), ca.clientContext()), topic, "by-ip");
                publishAndClose(pahoConnect("ssl://localhost:" + broker.port(), ca.clientContext()), topic, "by-name");
                List<byte[]> got = sub.awaitCount(2, Duration.ofSeconds(10));
                assertEquals(2, got.size(), broker.logTail(20));
                assertArrayEquals("by-ip".getBytes(StandardCharsets.UTF_8), got.get(0));
                assertArrayEquals("by-name".getBytes(StandardCharsets.UTF_8), got.get(1));
            }
            assertThrows(MqttException.class,
                    () -> connectAndClose("ssl://127.0.0.1:" + broker.port(), otherCa.clientContext()),
                    "a client trusting another CA must not connect");
            assertThrows(MqttException.class, () -> connectAndClose("tcp://127.0.0.1:" + broker.port(), null),
                    "the TLS listener must not speak plain MQTT");
        }
    }

    /**
     * The certificates the appender's host name tests use fail the JDK's check too. (The JDK, following RFC 2818,
     * still falls back to the CN when the SAN has no DNS name at all, so the CN here is not a host name.)
     */
    @Test
    void hostNameCheckFailsForANameNotInTheSan() throws Exception {
        TestPki.Issued ipOnly = ca.server("kaa-it-ip-only", List.of(), List.of("127.0.0.1"));
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, ipOnly.chain, ipOnly.key))) {
            connectAndClose("ssl://127.0.0.1:" + broker.port(), ca.clientContext());
            assertThrows(MqttException.class,
                    () -> connectAndClose("ssl://localhost:" + broker.port(), ca.clientContext()),
                    "localhost is not in the SAN");
        }
        TestPki.Issued dnsOnly = ca.server("kaa-it-dns-only", List.of("localhost"), List.of());
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, dnsOnly.chain, dnsOnly.key))) {
            connectAndClose("ssl://localhost:" + broker.port(), ca.clientContext());
            assertThrows(MqttException.class,
                    () -> connectAndClose("ssl://127.0.0.1:" + broker.port(), ca.clientContext()),
                    "127.0.0.1 is not in the SAN");
        }
    }

    @Test
    void serverChainWithAnIntermediateVerifiesAgainstTheRoot() throws Exception {
        TestPki.Ca inter = ca.intermediate("kaa-it-intermediate-2");
        TestPki.Issued viaInter = inter.localhostServer();
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, viaInter.chain, viaInter.key))) {
            connectAndClose("ssl://localhost:" + broker.port(), ca.clientContext());
        }
    }

    @Test
    void mutualTlsBrokerWantsAClientCertificateFromItsCa() throws Exception {
        TestPki.Issued clientEc = ca.client("kaa-node-ec", TestPki.KeyType.EC_P256);
        TestPki.Issued clientRsa = ca.client("kaa-node-rsa", TestPki.KeyType.RSA_2048);
        TestPki.Issued stranger = otherCa.client("stranger", TestPki.KeyType.EC_P256);
        Mosquitto.Tls tls = new Mosquitto.Tls(ca.cert, server.chain, server.key).requireCertificate(true)
                .useIdentityAsUsername(true);
        try (Mosquitto broker = Mosquitto.startTls(tls)) {
            String topic = "kaa/it/tls-harness/" + UUID.randomUUID();
            try (Subscriber sub = Subscriber.subscribe(broker.plainPort(), topic, 1)) {
                publishAndClose(pahoConnect("ssl://127.0.0.1:" + broker.port(), ca.clientContext(clientEc)), topic, "ec");
                publishAndClose(pahoConnect("ssl://127.0.0.1:" + broker.port(), ca.clientContext(clientRsa)), topic,
                        "rsa");
                assertEquals(2, sub.awaitCount(2, Duration.ofSeconds(10)).size(), broker.logTail(20));
            }
            // With TLS 1.3 the client may only learn of the refusal after its handshake, at CONNECT.
            assertThrows(MqttException.class,
                    () -> connectAndClose("ssl://127.0.0.1:" + broker.port(), ca.clientContext()),
                    "no client certificate");
            assertThrows(MqttException.class,
                    () -> connectAndClose("ssl://127.0.0.1:" + broker.port(), ca.clientContext(stranger)),
                    "client certificate from another CA");
        }
    }

    /** A minimal MQTT 3.1.1 CONNECT (clean session, keep-alive 30 s) and its CONNACK, over a raw socket. */
    private static void mqttConnect(SSLSocket s) throws IOException {
        byte[] id = ("raw-" + UUID.randomUUID().toString().substring(0, 8)).getBytes(StandardCharsets.US_ASCII);
        int remaining = 10 + 2 + id.length;
        OutputStream out = s.getOutputStream();
        byte[] head = {0x10, (byte) remaining, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, (byte) id.length};
        out.write(head);
        out.write(id);
        out.flush();
        byte[] connack = new byte[4];
        new DataInputStream(s.getInputStream()).readFully(connack);
        assertArrayEquals(new byte[] {0x20, 0x02, 0x00, 0x00}, connack, "CONNACK, accepted");
    }

    private static SSLSocket jsseClient(int port, String sni, String... alpn) throws IOException {
        SSLSocket s = (SSLSocket) ca.clientContext().getSocketFactory().createSocket();
        s.setSoTimeout(10_000);
        SSLParameters p = s.getSSLParameters();
        p.setEndpointIdentificationAlgorithm("HTTPS");
        if (sni != null) {
            p.setServerNames(List.of(new SNIHostName(sni)));
        } else {
            p.setServerNames(List.of());
        }
        p.setApplicationProtocols(alpn);
        s.setSSLParameters(p);
        s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 5_000);
        s.startHandshake();
        return s;
    }

    @Test
    void proxyRecordsAlpnAndSniAndForwardsMqtt() throws Exception {
        try (Mosquitto broker = Mosquitto.startAnonymous();
                TlsProxy proxy = TlsProxy.start(server, broker.plainPort())) {
            try (SSLSocket s = jsseClient(proxy.port(), "localhost", "mqtt", "x-kaa-it/1")) {
                mqttConnect(s);
            }
            TlsProxy.Handshake h = proxy.awaitHandshake(Duration.ofSeconds(5));
            assertNotNull(h, "handshake recorded; failures: " + proxy.failures());
            assertEquals(List.of("mqtt", "x-kaa-it/1"), h.alpnOffered, h.toString());
            assertEquals(List.of("localhost"), h.sniHostNames, h.toString());
            assertEquals("mqtt", h.negotiatedAlpn);
        }
        try (Mosquitto broker = Mosquitto.startAnonymous();
                TlsProxy proxy = TlsProxy.start(server, broker.plainPort())) {
            try (SSLSocket s = jsseClient(proxy.port(), null)) {
                mqttConnect(s);
            }
            TlsProxy.Handshake h = proxy.awaitHandshake(Duration.ofSeconds(5));
            assertNotNull(h, "handshake recorded; failures: " + proxy.failures());
            assertNull(h.alpnOffered, "no ALPN extension: " + h);
            assertEquals(List.of(), h.sniHostNames, h.toString());
        }
    }

    @Test
    void childNodeRunsAndReportsItsLog() {
        try (ChildNode child = ChildNode.start()) {
            child.mark("hello from the parent");
            assertTrue(child.logLines("INFO").stream().anyMatch(l -> l.contains("MARK hello from the parent")),
                    child.diagnostics());
            assertEquals(0, child.exit(Duration.ofSeconds(20)), child.diagnostics());
        }
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;

/**
 * TLS as an operator sees it in the node's log: the appender runs in a child JVM ({@link ChildNode}) whose SLF4J
 * output is read back. A failed verification is logged with its reason; verification off is warned about once;
 * unreadable PEM stops the appender at init with the field named, and its packs fail as internal errors, never a
 * crash; key material never reaches the log.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TlsLoggingTest {

    private static final int DEADLINE_SECONDS = 3;
    private static final Duration FAILURE_WAIT = Duration.ofSeconds(DEADLINE_SECONDS + 2);
    private static final Duration SUCCESS_WAIT = Duration.ofSeconds(20);
    private static final Duration GRACE = Duration.ofMillis(700);

    private static TestPki pki;
    private static TestPki.Ca ca;
    private static TestPki.Ca otherCa;
    private static TestPki.Issued server;
    private static TestPki.Issued client;

    @BeforeAll
    static void setUp() {
        pki = TestPki.create();
        ca = pki.rootCa("kaa-it-root");
        otherCa = pki.rootCa("kaa-it-other-root");
        server = ca.localhostServer();
        client = ca.client("kaa-node", TestPki.KeyType.EC_P256);
    }

    @AfterAll
    static void tearDown() {
        if (pki != null) {
            pki.close();
        }
    }

    private static Map<String, Object> tls(String host, int port, boolean verify, String caPem) {
        Map<String, Object> cfg = KaaNode.brokerConfig(port, "kaa/it/tls-log/" + UUID.randomUUID(), 1);
        cfg.put("host", host);
        cfg.put("ssl", true);
        cfg.put("verifySslCert", verify);
        cfg.put("caCertificate", caPem);
        cfg.put("deliveryTimeoutSeconds", DEADLINE_SECONDS);
        return cfg;
    }

    private static List<byte[]> expected(List<byte[]> recs) {
        return AvroReference.expectedPayloads(AvroReference.parse(TestData.schemaText(ChildNodeMain.TELEMETRY)), recs);
    }

    /** The cases, {field(s) the log must name (regex), overrides...} by name, on a TLS configuration for this broker. */
    private static Map<String, ChildNode.Refused> refused(Map<String, Object[]> cases, int port, String caPem) {
        Map<String, ChildNode.Refused> out = new LinkedHashMap<>();
        for (Map.Entry<String, Object[]> c : cases.entrySet()) {
            Object[] v = c.getValue();
            Map<String, Object> cfg = tls("localhost", port, true, caPem);
            for (int i = 1; i < v.length; i += 2) {
                cfg.put((String) v[i], v[i + 1]);
            }
            out.put(c.getKey(), new ChildNode.Refused(cfg, (String) v[0]));
        }
        return out;
    }

    private static final Pattern WARN_OR_ERROR = Pattern.compile("^\\S+ \\[[^\\]]*\\] (WARN|ERROR) .*");

    private static List<String> appenderProblems(List<String> lines) {
        return lines.stream().filter(l -> WARN_OR_ERROR.matcher(l).matches())
                .filter(l -> ChildNode.APPENDER_LOGGER.matcher(l).find()).collect(Collectors.toList());
    }

    // ------------------------------------------------------------------------------- 2. why verification failed

    /**
     * ssl on against a port that answers the ClientHello with what is not TLS (a WebSocket or HTTP listener's
     * "HTTP/1.1 400"): the WARN says to check it is the broker's TLS port, where rustls's "received corrupt message of
     * type InvalidContentType" said nothing of what to look at.
     */
    @Test
    void aPortAnsweringWithoutTlsIsNamedInTheLog() throws Exception {
        try (java.net.ServerSocket http = new java.net.ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress());
                ChildNode node = ChildNode.start()) {
            Thread answering = new Thread(() -> {
                while (!http.isClosed()) {
                    try (java.net.Socket s = http.accept()) {
                        s.getInputStream().read(new byte[512]);
                        s.getOutputStream().write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
                                .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
                    } catch (java.io.IOException e) {
                        // closed with the test, or the client went away
                    }
                }
            }, "http-400");
            answering.setDaemon(true);
            answering.start();
            Map<String, Object> cfg = tls("127.0.0.1", http.getLocalPort(), true, ca.certPem());
            cfg.put("deliveryTimeoutSeconds", DEADLINE_SECONDS);
            node.load("not-tls", cfg);
            node.append("not-tls", "not-tls", 1, 2);
            node.assertExactlyOne("not-tls", CONNECTION_ERROR, FAILURE_WAIT, GRACE);
            assertTrue(node.appenderLogLines("WARN").stream().anyMatch(l -> l.contains("cannot connect to 127.0.0.1:"
                    + http.getLocalPort()) && l.contains("(what answered is not TLS: check that this is the broker's TLS "
                    + "port; a plain MQTT or HTTP listener answers so)")), node.diagnostics());
        }
    }

    /**
     * ssl set the wrong way for the port: Mosquitto resets the socket at a plain CONNECT on its TLS listener, and at a
     * ClientHello on its plain one. The WARN says which setting that points to, under MQTT 3.1.1 and 5. Connection
     * refused (nothing listens) gets no such hint.
     */
    @Test
    void sslSetTheWrongWayForThePortIsNamedInTheLog() {
        int closedPort = Mosquitto.freeLoopbackPort();
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, server.chain, server.key));
                ChildNode node = ChildNode.start()) {
            // Six appenders, each on a connection of its own, their packs in flight at once.
            List<String> names = new ArrayList<>();
            for (String version : new String[] {"MQTT_3_1_1", "MQTT_5"}) {
                for (int port : new int[] {broker.port(), broker.plainPort(), closedPort}) {
                    Map<String, Object> cfg = port == broker.plainPort() ? tls("127.0.0.1", port, true, ca.certPem())
                            : KaaNode.brokerConfig(port, "kaa/it/tls-log/plain", 1);
                    cfg.put("mqttVersion", version);
                    cfg.put("deliveryTimeoutSeconds", DEADLINE_SECONDS);
                    String name = "wrong-" + version + "-" + port;
                    node.load(name, cfg);
                    node.append(name, name, 1, 2);
                    names.add(name);
                }
            }
            for (String name : names) {
                node.assertExactlyOne(name, CONNECTION_ERROR, FAILURE_WAIT, GRACE);
            }
            List<String> warnings = node.appenderLogLines("WARN");
            Map<Integer, String> hints = Map.of(broker.port(), "(closed before any CONNACK: if 127.0.0.1:"
                    + broker.port() + " is a TLS port, turn ssl on)", broker.plainPort(),
                    "closed during the TLS handshake; if this port speaks plain MQTT, turn ssl off");
            hints.forEach((port, hint) -> assertEquals(2, warnings.stream().filter(l -> l.contains(
                    "cannot connect to 127.0.0.1:" + port + " ") && l.contains(hint)).count(),
                    "one WARN with the hint per MQTT version:\n" + node.diagnostics()));
            List<String> refused = warnings.stream().filter(l -> l.contains("cannot connect to 127.0.0.1:" + closedPort))
                    .collect(Collectors.toList());
            assertEquals(2, refused.size(), "connection refused is logged:\n" + node.diagnostics());
            assertFalse(refused.stream().anyMatch(l -> l.contains("turn ssl")), refused.toString());
        }
    }

    /**
     * A broker whose certificate expired is reported once, though every attempt fails: rustls puts the time of
     * verification into its error ("certificate expired: verification time … ({n} seconds ago)"), so attempts a
     * second apart differ. Seconds of retries, one WARN.
     */
    @Test
    void anExpiredBrokerCertificateIsReportedOnce() throws InterruptedException {
        TestPki.Issued expired = ca.server("localhost", List.of("localhost"), List.of("127.0.0.1"),
                TestPki.KeyType.EC_P256, 0);
        Thread.sleep(2000); // valid up to the second it was issued, inclusive
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, expired.chain, expired.key));
                ChildNode node = ChildNode.start("debug")) {
            node.load("stale-broker", tls("localhost", broker.port(), true, ca.certPem()));
            node.append("stale-broker", "stale", 1, 2);
            node.assertExactlyOne("stale", CONNECTION_ERROR, FAILURE_WAIT, GRACE);
            Thread.sleep(3000);
            String attempt = "cannot connect to localhost:" + broker.port();
            List<String> attempts = node.appenderLogLines("DEBUG|WARN").stream().filter(l -> l.contains(attempt)
                    && l.contains("expired")).collect(Collectors.toList());
            long warned = attempts.stream().filter(l -> l.contains(" WARN ")).count();
            assertTrue(attempts.size() >= 4 && warned == 1, warned + " WARN lines in " + attempts.size()
                    + " attempts:\n" + String.join("\n", attempts));
            // The dates as dates, not as rustls's seconds since 1970.
            String day = "\\d{4}-\\d\\d-\\d\\d";
            String warn = attempts.stream().filter(l -> l.contains(" WARN ")).findFirst().orElse("");
            assertTrue(warn.matches(".*expired " + day + "T\\d\\d:\\d\\d:\\d\\dZ; this node's date is " + day + "\\).*"),
                    warn);
        }
    }

    /**
     * A client certificate past its notAfter: a WARN at init gives the date (the broker's alert does not), and the
     * broker, which requires client certificates, refuses the handshake. A valid one gets no such line.
     */
    @Test
    void clientCertificateDatesAreWarnedOfAtInitAndNamedWhenTheHandshakeFails() {
        TestPki.Issued expired = ca.client("kaa-node-expired", TestPki.KeyType.EC_P256, -1);
        TestPki.Issued expiring = ca.client("kaa-node-expiring", TestPki.KeyType.EC_P256, 10);
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, server.chain, server.key)
                .requireCertificate(true));
                ChildNode node = ChildNode.start()) {
            int closedPort = Mosquitto.freeLoopbackPort();
            Object[][] cases = {{"expired", expired, broker.port(), CONNECTION_ERROR},
                {"expiring", expiring, broker.port(), SUCCESS}, {"valid", client, broker.port(), SUCCESS},
                {"nobody-there", expired, closedPort, CONNECTION_ERROR}};
            Map<String, String> clientIds = new LinkedHashMap<>();
            for (Object[] c : cases) {
                String name = (String) c[0];
                TestPki.Issued cert = (TestPki.Issued) c[1];
                Map<String, Object> cfg = tls("localhost", (Integer) c[2], true, ca.certPem());
                cfg.put("clientCertificate", cert.chainPem());
                cfg.put("clientPrivateKey", cert.keyPem());
                clientIds.put(name, (String) cfg.get("clientId"));
                node.load(name, cfg);
                node.append(name, name, 1, 2);
                node.assertExactlyOne(name, (String) c[3], SUCCESS_WAIT, GRACE);
            }
            List<String> dated = node.appenderLogLines("WARN").stream().filter(l -> l.contains("clientCertificate"))
                    .collect(Collectors.toList());
            String diagnostics = String.join("\n", dated) + "\n" + node.diagnostics();
            // At init, once per appender whose certificate is out of its dates or expires within 30 days.
            assertEquals(1, dated.stream().filter(l -> l.contains("'expired'") && l.contains(
                    "clientCertificate expired on " + notAfter(expired))).count(), "at init\n" + diagnostics);
            assertEquals(1, dated.stream().filter(l -> l.contains("'expiring'") && l.contains(
                    "clientCertificate expires on " + notAfter(expiring) + " (its notAfter), in 9 days")).count(),
                    "30 days ahead\n" + diagnostics);
            assertTrue(dated.stream().noneMatch(l -> l.contains("'valid'")), "90 days left: nothing\n" + diagnostics);
            // The broker's alert, with the date; a port nobody listens on is no matter of the certificate.
            assertTrue(dated.stream().anyMatch(l -> l.contains("'" + clientIds.get("expired") + "'")
                    && l.contains("CertificateExpired") && l.contains("(clientCertificate expired on "
                            + notAfter(expired))), "the broker's alert, with the date\n" + diagnostics);
            assertTrue(node.appenderLogLines("WARN").stream().anyMatch(l -> l.contains("'"
                    + clientIds.get("nobody-there") + "'") && l.contains("Connection refused")), diagnostics);
            assertTrue(dated.stream().noneMatch(l -> l.contains("'" + clientIds.get("nobody-there") + "'")),
                    "a refused TCP connect names no certificate\n" + diagnostics);
            // The broker's, issued for 3 days, has its validity ahead: not a renewal late.
            assertTrue(node.appenderLogLines("WARN").stream().noneMatch(l -> l.contains("the broker's certificate")),
                    diagnostics);
        }
    }

    /**
     * The broker's certificate near its end (issued 60 days ago, 10 days left: its renewal is late): a WARN says so,
     * with the date, once a day, while packs are delivered. A certificate with its validity ahead gets no such line
     * (the other tests' brokers, whose certificates are issued for 3 days, see above).
     */
    @Test
    void aBrokerCertificateNearItsEndIsWarnedOf() {
        TestPki.Issued due = ca.localhostServerIssued(60, 10);
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, due.chain, due.key));
                ChildNode node = ChildNode.start()) {
            node.load("renewal-due", tls("localhost", broker.port(), true, ca.certPem()));
            node.append("renewal-due", "due-1", 1, 2);
            node.assertExactlyOne("due-1", SUCCESS, SUCCESS_WAIT, GRACE);
            // A second handshake, on the connection made anew: not said again the same day.
            broker.restart();
            node.append("renewal-due", "due-2", 1, 2);
            node.assertExactlyOne("due-2", SUCCESS, SUCCESS_WAIT, GRACE);
            List<String> warned = node.appenderLogLines("WARN").stream()
                    .filter(l -> l.contains("the broker's certificate")).collect(Collectors.toList());
            assertEquals(1, warned.size(), warned + "\n" + node.diagnostics());
            // 10 days less the moments since it was issued, in whole days: 10 within its second, 9 after.
            assertTrue(warned.get(0).matches(".* the broker's certificate for 'localhost' expires on "
                    + Pattern.quote(notAfter(due)) + " \\(its notAfter\\), in (9|10) days: from then on the TLS "
                    + "handshake with the broker fails, and every pack with it; have the certificate renewed before"),
                    warned.get(0));
        }
    }

    /** A certificate's notAfter as the log writes it. */
    private static String notAfter(TestPki.Issued cert) {
        return cert.x509().getNotAfter().toInstant().toString().replace('T', ' ').replace("Z", " UTC");
    }

    @Test
    void unknownIssuerIsAConnectionErrorAndTheLogSaysWhy() {
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, server.chain, server.key));
                ChildNode node = ChildNode.start()) {
            Map<String, Object> cfg = tls("127.0.0.1", broker.port(), true, otherCa.certPem());
            try (Subscriber sub = Subscriber.subscribe(broker.plainPort(), (String) cfg.get("mqtttopic"), 1)) {
                node.mark("unknown-issuer");
                node.load("wrong-ca", cfg);
                node.append("wrong-ca", "p1", 1, 3);
                node.assertExactlyOne("p1", CONNECTION_ERROR, FAILURE_WAIT, GRACE);
                assertEquals(0, sub.count(), "nothing delivered");
            }
            List<String> problems = appenderProblems(node.log().lines().collect(Collectors.toList()));
            Pattern issuer = Pattern.compile("(?i)unknown.?issuer"); // rustls: UnknownIssuer
            assertTrue(problems.stream().anyMatch(l -> l.toLowerCase().contains("certificate") && issuer.matcher(l).find()
                    && l.contains("put the CA that did in caCertificate")),
                    "no WARN/ERROR line of the appender names the certificate problem (unknown issuer) and the field; "
                            + "its WARN/ERROR lines:\n" + String.join("\n", problems) + "\n" + node.diagnostics());
            System.out.println("[unknown issuer] appender WARN/ERROR lines in ~" + (DEADLINE_SECONDS + 1) + " s: "
                    + problems.size() + "\n  " + String.join("\n  ", problems));
            assertTrue(node.isAlive());
        }
    }

    @Test
    void hostNameMismatchIsLoggedWithTheReason() {
        TestPki.Issued ipOnly = ca.server("kaa-it-ip-only", List.of(), List.of("127.0.0.1"));
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, ipOnly.chain, ipOnly.key));
                ChildNode node = ChildNode.start()) {
            node.load("wrong-name", tls("localhost", broker.port(), true, ca.certPem()));
            node.append("wrong-name", "p1", 1, 3);
            node.assertExactlyOne("p1", CONNECTION_ERROR, FAILURE_WAIT, GRACE);
            List<String> problems = appenderProblems(node.log().lines().collect(Collectors.toList()));
            Pattern name = Pattern.compile("(?i)not ?valid ?for ?name"); // rustls: NotValidForName
            assertTrue(problems.stream().anyMatch(l -> l.toLowerCase().contains("certificate") && name.matcher(l).find()),
                    "no WARN/ERROR line of the appender says the certificate is not valid for the host name; "
                            + "its WARN/ERROR lines:\n" + String.join("\n", problems) + "\n" + node.diagnostics());
        }
    }

    /**
     * A broker certificate issued the way mosquitto-tls(7) shows ({@code openssl x509 -req} without {@code -extfile}) is
     * X.509 v1, which Mosquitto serves and rustls refuses: the WARN says so and what to issue instead, where rustls
     * alone says "Other(OtherError(UnsupportedCertVersion))".
     */
    @Test
    void aBrokerCertificateOfX509V1IsNamedInTheLog() {
        TestPki.Issued v1 = ca.clientV1("localhost", TestPki.KeyType.EC_P256);
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, v1.chain, v1.key));
                ChildNode node = ChildNode.start()) {
            node.load("v1-broker", tls("localhost", broker.port(), true, ca.certPem()));
            node.append("v1-broker", "p1", 1, 3);
            node.assertExactlyOne("p1", CONNECTION_ERROR, FAILURE_WAIT, GRACE);
            List<String> problems = appenderProblems(node.log().lines().collect(Collectors.toList()));
            assertTrue(problems.stream().anyMatch(l -> l.contains("is X.509 v1") && l.contains("subjectAltName")),
                    "no WARN/ERROR line of the appender names the v1 certificate; its WARN/ERROR lines:\n"
                            + String.join("\n", problems) + "\n" + node.diagnostics());
        }
    }

    /**
     * A broker serving a CA's certificate as its own (OpenSSL's {@code req -x509} makes one so by default), with that
     * certificate as {@code caCertificate}: rustls takes a server's certificate only, and the WARN says what to issue
     * instead, where rustls alone says "Other(OtherError(CaUsedAsEndEntity))".
     */
    @Test
    void aBrokerServingACaCertificateIsNamedInTheLog() {
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, ca.cert, ca.key));
                ChildNode node = ChildNode.start()) {
            node.load("ca-as-server", tls("localhost", broker.port(), true, ca.certPem()));
            node.append("ca-as-server", "p1", 1, 3);
            node.assertExactlyOne("p1", CONNECTION_ERROR, FAILURE_WAIT, GRACE);
            List<String> problems = appenderProblems(node.log().lines().collect(Collectors.toList()));
            assertTrue(problems.stream().anyMatch(l -> l.contains("shows a CA's certificate as its own")
                    && l.contains("verifySslCert off")),
                    "no WARN/ERROR line of the appender names the CA certificate served; its WARN/ERROR lines:\n"
                            + String.join("\n", problems) + "\n" + node.diagnostics());
        }
    }

    // ------------------------------------------------------------------------------- 3. verification off: one WARN

    @Test
    void verificationOffDeliversAndWarnsOnceAcrossPacksAndReconnects() {
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, server.chain, server.key));
                ChildNode node = ChildNode.start()) {
            Map<String, Object> cfg = tls("127.0.0.1", broker.port(), false, otherCa.certPem());
            cfg.put("deliveryTimeoutSeconds", 10);
            String topic = (String) cfg.get("mqtttopic");
            try (Subscriber sub = Subscriber.subscribe(broker.plainPort(), topic, 1)) {
                node.load("unverified", cfg);
                node.append("unverified", "p1", 11, 4);
                node.assertExactlyOne("p1", SUCCESS, SUCCESS_WAIT, Duration.ZERO);
                node.append("unverified", "p2", 12, 5);
                node.assertExactlyOne("p2", SUCCESS, SUCCESS_WAIT, Duration.ZERO);
                sub.awaitCount(9, Duration.ofSeconds(10));
                List<byte[]> recs = new ArrayList<>(ChildNodeMain.records(11, 4));
                recs.addAll(ChildNodeMain.records(12, 5));
                Payloads.assertSameMultiset("verification off", expected(recs), sub.payloads());
            }

            // The broker restarts: the appender reconnects (a new TLS handshake, still unverified).
            broker.restart();
            String answer = null;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
            int attempt = 0;
            try (Subscriber sub = Subscriber.subscribe(broker.plainPort(), topic, 1)) {
                while (!SUCCESS.equals(answer) && System.nanoTime() < deadline) {
                    String label = "p3-" + attempt++;
                    node.append("unverified", label, 13, 2);
                    answer = node.awaitFirst(label, SUCCESS_WAIT);
                }
                assertEquals(SUCCESS, answer, "no pack delivered after the broker restart\n" + node.diagnostics());
                assertTrue(sub.awaitCount(2, Duration.ofSeconds(10)).size() >= 2, "delivered after the restart");
            }
            node.append("unverified", "p4", 14, 1);
            node.assertExactlyOne("p4", SUCCESS, SUCCESS_WAIT, Duration.ZERO);

            List<String> warnings = node.appenderLogLines("WARN").stream()
                    .filter(l -> Pattern.compile("(?i)(verif|insecure|certificate)").matcher(l).find())
                    .collect(Collectors.toList());
            // One WARN that the connection does not verify, and (this appender gives a CA) one at init that the CA
            // is not used; neither repeats.
            long notVerifying = warnings.stream().filter(l -> l.contains("does not verify")).count();
            long unusedCa = warnings.stream().filter(l -> l.contains("caCertificate is set but verifySslCert is off"))
                    .count();
            assertTrue(notVerifying == 1 && unusedCa == 1 && warnings.size() == 2,
                    "expected exactly one WARN about verification being off and one about the unused CA, over "
                    + (3 + attempt) + " packs and a reconnect; got:\n" + String.join("\n", warnings) + "\n"
                    + node.diagnostics());
            assertEquals(0, node.exit(Duration.ofSeconds(30)), node.diagnostics());
        }
    }

    /** With verification on there is nothing to warn about. */
    @Test
    void verificationOnDoesNotWarn() {
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, server.chain, server.key));
                ChildNode node = ChildNode.start()) {
            node.load("verified", tls("localhost", broker.port(), true, ca.certPem()));
            node.append("verified", "p1", 21, 3);
            node.assertExactlyOne("p1", SUCCESS, SUCCESS_WAIT, Duration.ZERO);
            List<String> problems = appenderProblems(node.log().lines().collect(Collectors.toList()));
            assertEquals(List.of(), problems, "WARN/ERROR lines for a healthy verified TLS appender");
        }
    }

    // ------------------------------------------------------------------------------- 8. unreadable PEM

    private static String corruptBase64(String pem) {
        String[] lines = pem.split("\n");
        // A line in the middle of the body: replace a run of base64 with characters outside the alphabet.
        int i = lines.length / 2;
        String l = lines[i];
        lines[i] = l.substring(0, 4) + "*!%&" + l.substring(8);
        return String.join("\n", lines) + "\n";
    }

    /** Snippets of a key's base64 body, any of which in the log would leak key material. */
    private static List<String> keySnippets(String pem) {
        String body = pem.replaceAll("-----[^-]+-----", "").replaceAll("\\s", "");
        List<String> out = new ArrayList<>();
        for (int i = 0; i + 16 <= body.length(); i += 16) {
            out.add(body.substring(i, i + 16));
        }
        return out;
    }

    @Test
    void unreadablePemStopsTheAppenderWithTheFieldNamedAndPacksFailInternally() {
        String caPem = ca.certPem();
        String certPem = client.chainPem();
        String keyPem = client.keyPem();
        // name -> {field(s) the log must name (regex), overrides...}
        Map<String, Object[]> cases = new LinkedHashMap<>();
        cases.put("ca-garbage", new Object[] {"caCertificate", "caCertificate", "this is not a certificate"});
        cases.put("ca-bad-base64", new Object[] {"caCertificate", "caCertificate", corruptBase64(caPem)});
        cases.put("ca-not-der", new Object[] {"caCertificate", "caCertificate",
            "-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----\n"});
        cases.put("ca-truncated", new Object[] {"caCertificate", "caCertificate",
            caPem.substring(0, caPem.length() / 2)});
        cases.put("cert-garbage", new Object[] {"clientCertificate", "clientCertificate", "not a certificate",
            "clientPrivateKey", keyPem});
        cases.put("cert-bad-base64", new Object[] {"clientCertificate", "clientCertificate", corruptBase64(certPem),
            "clientPrivateKey", keyPem});
        cases.put("key-garbage", new Object[] {"clientPrivateKey", "clientCertificate", certPem,
            "clientPrivateKey", "not a key"});
        cases.put("key-bad-base64", new Object[] {"clientPrivateKey", "clientCertificate", certPem,
            "clientPrivateKey", corruptBase64(keyPem)});
        cases.put("key-is-a-certificate", new Object[] {"clientPrivateKey", "clientCertificate", certPem,
            "clientPrivateKey", certPem});
        cases.put("key-encrypted", new Object[] {"clientPrivateKey': is encrypted", "clientCertificate", certPem,
            "clientPrivateKey", client.encryptedKeyPem(false)});
        cases.put("key-encrypted-traditional", new Object[] {"clientPrivateKey': is encrypted", "clientCertificate",
            certPem, "clientPrivateKey", client.encryptedKeyPem(true)});
        cases.put("cert-without-key", new Object[] {"clientCertificate|clientPrivateKey", "clientCertificate", certPem});
        cases.put("key-without-cert", new Object[] {"clientCertificate|clientPrivateKey", "clientPrivateKey", keyPem});

        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, server.chain, server.key));
                ChildNode node = ChildNode.start("debug")) {
            // Control: the same child, broker and CA with a valid client certificate and key deliver.
            node.mark("case-valid");
            Map<String, Object> good = tls("localhost", broker.port(), true, caPem);
            good.put("clientCertificate", certPem);
            good.put("clientPrivateKey", keyPem);
            good.put("deliveryTimeoutSeconds", 10);
            node.load("valid", good);
            node.append("valid", "valid-p", 31, 2);
            node.assertExactlyOne("valid-p", SUCCESS, SUCCESS_WAIT, Duration.ZERO);

            List<String> failures = new ArrayList<>(node.refusalProblems(refused(cases, broker.port(), caPem),
                    Duration.ofSeconds(5)));
            String log = node.log();
            for (String snippet : keySnippets(keyPem)) {
                if (log.contains(snippet)) {
                    failures.add("the log contains private key material ('" + snippet + "')");
                    break;
                }
            }
            assertTrue(node.isAlive(), "the node JVM died\n" + node.diagnostics());
            if (!failures.isEmpty()) {
                fail(failures.size() + " problem(s):\n  " + String.join("\n  ", failures) + "\n" + node.diagnostics());
            }
            assertFalse(log.contains("panicked"), "a panic in the log\n" + node.diagnostics());
            assertEquals(0, node.exit(Duration.ofSeconds(30)), node.diagnostics());
        }
    }

    // ------------------------------------------------------------------------------- TLS settings that cannot work

    /**
     * Settings whose PEM texts read fine but which cannot make a TLS client (a key that is not the certificate's,
     * a key the TLS library cannot sign with, an X.509 v1 client certificate) are as wrong as unreadable PEM and can be told at init: the appender
     * should not start, name the field, and fail packs as internal errors (not as connection errors Kaa retries
     * forever).
     */
    @Test
    void unusableClientCertificateAndKeyAreRefusedAtInit() {
        TestPki.Issued other = ca.client("kaa-node-other", TestPki.KeyType.EC_P256);
        TestPki.Issued p521 = ca.client("kaa-node-p521", TestPki.KeyType.EC_P521);
        Map<String, Object[]> cases = new LinkedHashMap<>();
        cases.put("key-of-another-cert", new Object[] {"clientPrivateKey.*is not the key of clientCertificate",
            "clientCertificate", client.chainPem(), "clientPrivateKey", other.keyPem()});
        cases.put("p521-key", new Object[] {"clientPrivateKey.*ECDSA keys on P-256 or P-384", "clientCertificate",
            p521.chainPem(), "clientPrivateKey", p521.keyPem()});
        // Base64 that is no certificate: named as the certificate's fault, not the key's.
        String noCertificate = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END CERTIFICATE-----\n";
        cases.put("no-certificate", new Object[] {"clientCertificate.*not a certificate rustls can read",
            "clientCertificate", noCertificate, "clientPrivateKey", client.keyPem()});
        TestPki.Issued v1 = ca.clientV1("kaa-node-v1", TestPki.KeyType.EC_P256);
        cases.put("x509-v1", new Object[] {"clientCertificate.*X\\.509 v1", "clientCertificate", v1.chainPem(),
            "clientPrivateKey", v1.keyPem()});
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, server.chain, server.key));
                ChildNode node = ChildNode.start()) {
            List<String> failures = node.refusalProblems(refused(cases, broker.port(), ca.certPem()), FAILURE_WAIT);
            assertTrue(node.isAlive(), "the node JVM died\n" + node.diagnostics());
            if (!failures.isEmpty()) {
                fail(failures.size() + " problem(s):\n  " + String.join("\n  ", failures) + "\n" + node.diagnostics());
            }
        }
    }

    // ------------------------------------------------------------------------------- the system's root store

    /**
     * Environment for a child whose "system" root store is exactly {@code bundle}: SSL_CERT_FILE names it and
     * SSL_CERT_DIR an empty directory (rustls-native-certs, like OpenSSL, reads both when set, and the machine's
     * environment may already set SSL_CERT_DIR=/etc/ssl/certs).
     */
    private static Map<String, String> systemRoots(java.nio.file.Path bundle) throws java.io.IOException {
        java.nio.file.Path emptyDir = pki.dir().resolve("empty-cert-dir");
        java.nio.file.Files.createDirectories(emptyDir);
        return Map.of("SSL_CERT_FILE", bundle.toString(), "SSL_CERT_DIR", emptyDir.toString());
    }

    /**
     * caCertificate "" means the system's roots. The child's system store is made to hold only the test CA
     * (SSL_CERT_FILE, which OpenSSL and rustls-native-certs honour), so a verified connection succeeds through it.
     */
    @Test
    void emptyCaCertificateUsesTheSystemRootStore() throws Exception {
        try (Mosquitto broker = Mosquitto.startTls(new Mosquitto.Tls(ca.cert, server.chain, server.key));
                ChildNode node = ChildNode.start("info", systemRoots(ca.cert))) {
            Map<String, Object> cfg = tls("localhost", broker.port(), true, "");
            cfg.put("deliveryTimeoutSeconds", 10);
            try (Subscriber sub = Subscriber.subscribe(broker.plainPort(), (String) cfg.get("mqtttopic"), 1)) {
                node.load("system-roots", cfg);
                node.append("system-roots", "p1", 61, 3);
                node.assertExactlyOne("p1", SUCCESS, SUCCESS_WAIT, GRACE);
                sub.awaitCount(3, Duration.ofSeconds(10));
                Payloads.assertSameMultiset("system roots", expected(ChildNodeMain.records(61, 3)), sub.payloads());
            }
        }
    }

    /**
     * SSL_CERT_FILE naming a file the node does not have (a typo, a path missing in the container) with
     * caCertificate "": the appender does not start, and its error says why the system's roots are missing, with the
     * path, rather than only that there are none.
     */
    @Test
    void aSystemRootStoreThatCannotBeReadSaysWhy() throws Exception {
        java.nio.file.Path absent = pki.dir().resolve("absent-" + UUID.randomUUID() + ".pem");
        try (ChildNode node = ChildNode.start("info", systemRoots(absent))) {
            Map<String, Object> cfg = tls("127.0.0.1", Mosquitto.freeLoopbackPort(), true, "");
            Map<String, ChildNode.Refused> cases = Map.of("absent-roots", new ChildNode.Refused(cfg,
                    "caCertificate.*no root certificates.*" + Pattern.quote(absent.toString())
                            + ".*SSL_CERT_FILE"));
            List<String> failures = node.refusalProblems(cases, FAILURE_WAIT);
            assertEquals(List.of(), failures, node.diagnostics());
        }
    }

    /**
     * A node without system roots (no ca-certificates package) and caCertificate "": there is nothing to verify
     * against. The appender must not connect without TLS instead (the CONNECT, password included, in clear).
     */
    @Test
    void noSystemRootsNeverMeansPlainText() throws Exception {
        java.nio.file.Path empty = pki.dir().resolve("no-roots.pem");
        java.nio.file.Files.write(empty, new byte[0]);
        String password = "pw-" + UUID.randomUUID();
        try (PlainTextSniffer sniffer = PlainTextSniffer.start();
                ChildNode node = ChildNode.start("info", systemRoots(empty))) {
            Map<String, Object> cfg = tls("127.0.0.1", sniffer.port(), true, "");
            cfg.put("username", "kaa-node");
            cfg.put("password", password);
            node.load("no-roots", cfg);
            node.append("no-roots", "p1", 71, 2);
            String first = node.awaitFirst("p1", FAILURE_WAIT);
            RecordingCallback.sleep(Duration.ofMillis(1500));
            List<String> plain = sniffer.nonTls(password);
            assertEquals(List.of(), plain, "ssl is on, yet the appender connected without TLS ("
                    + sniffer.connections() + " connection(s); pack answered " + first + ")\n" + node.diagnostics());
            assertTrue(first != null && !first.equals(SUCCESS), "pack answered " + first);
        }
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * Failure classes the node must be able to tell apart, beyond those covered elsewhere (a refused password is a
 * remote error: {@code AuthTest}; a closed port is a connection error: {@code EndToEndTest}): brokers that cannot
 * be reached in other ways are connection errors, each answered exactly once, by the pack's deadline, never by an
 * exception out of {@code init} or {@code doAppend}. Everything stays on loopback; the unresolvable name is refused by the
 * C library itself, before any name server is asked.
 */
class FailureClassesTest {

    private static final int TIMEOUT_S = 3;
    /** How long a test waits for an answer at most: a bound on the wait, not on the appender. */
    private static final Duration ANSWER_WAIT = Duration.ofSeconds(TIMEOUT_S + 10);

    private static List<byte[]> records(Schema schema, String prefix, int n) {
        return TestData.telemetryBinaries(schema, new Random(prefix.hashCode()), n, i -> prefix + "-" + i);
    }

    /**
     * Appends three packs at once and a fourth after the first three were answered (the appender must keep
     * trying, not settle into another answer); each must be answered onConnectionError exactly once, from another
     * thread and only after its doAppend returned: nothing but the pack's deadline can answer it here, so an
     * answer seen before doAppend returned means doAppend waited for the outcome.
     */
    private static void assertConnectionErrorsByTheDeadline(String what, Map<String, Object> cfg) {
        assertConnectionErrorsByTheDeadline(what, cfg, () -> { });
    }

    /** As above; {@code beforeAppending} runs between init and the first doAppend. */
    private static void assertConnectionErrorsByTheDeadline(String what, Map<String, Object> cfg,
            Runnable beforeAppending) {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        cfg.put("deliveryTimeoutSeconds", TIMEOUT_S);
        LogAppender appender = assertDoesNotThrow(() -> KaaNode.load(what, KaaNode.config(cfg)),
                what + ": init must not fail (the node would drop the appender)");
        try {
            beforeAppending.run();
            List<RecordingCallback> cbs = new ArrayList<>();
            for (int p = 0; p < 3; p++) {
                cbs.add(append(appender, logSchema, records(schema, what + p, 4), what + ", pack " + p));
            }
            for (RecordingCallback cb : cbs) {
                cb.awaitFirst(ANSWER_WAIT);
            }
            cbs.add(append(appender, logSchema, records(schema, what + "later", 2), what + ", a later pack"));
            cbs.get(3).awaitFirst(ANSWER_WAIT);
            RecordingCallback.sleep(Duration.ofMillis(500));
            for (RecordingCallback cb : cbs) {
                cb.assertOnlyOne(CONNECTION_ERROR);
                cb.assertAnsweredOnlyAfterAppendReturned();
                cb.assertAnsweredBy(Duration.ofSeconds(TIMEOUT_S));
                System.out.printf("%s: %s after %.0f ms%n", cb.label(), cb.calls().get(0).method,
                        cb.millisToFirst());
            }
        } finally {
            assertDoesNotThrow(appender::close, what + ": close()");
        }
    }

    private static RecordingCallback append(LogAppender a, String logSchema, List<byte[]> recs, String label) {
        return RecordingCallback.append(a, KaaNode.pack(logSchema, 1, recs), label);
    }

    private static String topic() {
        return "kaa/it/failure/" + UUID.randomUUID().toString().substring(0, 8);
    }

    /**
     * A host name that cannot be resolved: the connection never starts. Its first label is longer than DNS allows
     * (63 bytes), so the C library refuses it without asking a name server: the test sends nothing off the machine.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void unresolvableHostIsAConnectionError() {
        Map<String, Object> cfg = KaaNode.brokerConfig(1883, topic(), 1);
        cfg.put("host", String.join("", java.util.Collections.nCopies(64, "a")) + ".invalid");
        assertConnectionErrorsByTheDeadline("unresolvable host", cfg);
    }

    /**
     * A peer that accepts the TCP connection and then says nothing (a hung broker, a half-open firewall): no CONNACK
     * ever comes. The appender's own connect timeout is longer than the delivery deadline; the deadline must win.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void silentPeerIsAConnectionError() throws IOException {
        try (Peer peer = new Peer(null)) {
            Map<String, Object> cfg = KaaNode.brokerConfig(peer.port(), topic(), 1);
            // Longer than the test waits for an answer: an answer it sees comes from the pack's deadline, and
            // every doAppend runs while the one connect attempt is open and can never finish.
            cfg.put("connectTimeoutSeconds", 600);
            assertConnectionErrorsByTheDeadline("silent peer", cfg, () -> {
                long deadline = System.nanoTime() + ANSWER_WAIT.toNanos();
                while (peer.connections() == 0 && System.nanoTime() < deadline) {
                    RecordingCallback.sleep(Duration.ofMillis(10));
                }
                assertEquals(1, peer.connections(), "one connect attempt, open, before the packs come");
            });
        }
    }

    /**
     * A peer that answers the CONNECT with something that is not MQTT (here an HTTP error, as from a proxy or a
     * web server on the wrong port) and hangs up. Not a refusal with an MQTT return code, so not a remote error.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void peerSpeakingAnotherProtocolIsAConnectionError() throws IOException {
        byte[] http = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .getBytes(StandardCharsets.US_ASCII);
        try (Peer peer = new Peer(http)) {
            assertConnectionErrorsByTheDeadline("peer speaking HTTP", KaaNode.brokerConfig(peer.port(), topic(), 1));
            assertTrue(peer.connections() > 0, "the appender never even connected to the HTTP peer");
        }
    }

    /**
     * A broker that stops reading (Mosquitto paused with SIGSTOP: a hung broker, a stalled path) while the appender
     * publishes at QoS 0, which waits for no ack. Its socket's buffers fill and every write waits. The appender must
     * notice, answer every pack by its deadline, and move to the failover broker, where the next pack is delivered.
     * (Before: the connection's writer waited for ever, the appender stayed connected to the paused broker and never
     * failed over.)
     */
    @ParameterizedTest
    @ValueSource(strings = {"MQTT_3_1_1", "MQTT_5"})
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void aBrokerThatStopsReadingIsLeftForTheFailoverBroker(String version) {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        try (Mosquitto hung = Mosquitto.startAnonymous(); Mosquitto second = Mosquitto.startAnonymous()) {
            String topic = topic();
            Map<String, Object> cfg = KaaNode.brokerConfig(hung.port(), topic, 0);
            cfg.put("mqttVersion", new GenericData.EnumSymbol(KaaNode.configSchema().getField("mqttVersion").schema(),
                    version));
            cfg.put("brokers", "127.0.0.1:" + second.port());
            cfg.put("deliveryTimeoutSeconds", TIMEOUT_S);
            cfg.put("connectTimeoutSeconds", 2);
            cfg.put("keepAliveSeconds", 60);
            LogAppender appender = KaaNode.load("hung " + version, KaaNode.config(cfg));
            try (Subscriber sub = Subscriber.subscribe(second.port(), topic, 0)) {
                append(appender, logSchema, records(schema, "before", 2), "before")
                        .assertExactlyOne(RecordingCallback.SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                hung.pause();
                // A steady stream, about 16 MB of 4 KiB records: more than loopback's socket buffers hold.
                List<RecordingCallback> cbs = new ArrayList<>();
                for (int p = 0; p < 400; p++) {
                    RecordingCallback.sleep(Duration.ofMillis(2));
                    List<byte[]> big = new ArrayList<>();
                    Random rnd = new Random(p);
                    for (int i = 0; i < 10; i++) {
                        big.add(TestData.telemetryWithNote(schema, rnd, "hung-" + p + "-" + i, i, 4096));
                    }
                    cbs.add(append(appender, logSchema, big, "paused broker, pack " + p));
                }
                for (RecordingCallback cb : cbs) {
                    cb.awaitFirst(ANSWER_WAIT);
                    assertEquals(1, cb.calls().size(), cb.label() + ": " + cb.calls());
                    cb.assertAnsweredBy(Duration.ofSeconds(TIMEOUT_S));
                }
                assertTrue(cbs.stream().anyMatch(cb -> cb.calls().get(0).method.equals(CONNECTION_ERROR)),
                        "the buffers never filled: no pack waited");
                // Failing over takes a connect timeout at the paused broker, which accepts TCP and answers nothing.
                RecordingCallback after = null;
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
                do {
                    after = append(appender, logSchema, records(schema, "after", 2), "after");
                    after.awaitFirst(ANSWER_WAIT);
                } while (!RecordingCallback.SUCCESS.equals(after.calls().get(0).method) && System.nanoTime() < deadline);
                after.assertOnlyOne(RecordingCallback.SUCCESS);
                // Both records of the pack delivered there arrive (records of the paused broker's packs may come too).
                java.util.Set<String> arrived = new java.util.HashSet<>();
                for (long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10); !arrived.containsAll(List.of(
                        "after-0", "after-1")) && System.nanoTime() < until; RecordingCallback.sleep(Duration.ofMillis(
                                50))) {
                    sub.payloads().forEach(m -> arrived.add(Payloads.idOf(m)));
                }
                assertTrue(arrived.containsAll(List.of("after-0", "after-1")), "delivered on the failover broker: "
                        + arrived);
                // Nothing of the packs answered onConnectionError follows them there: Kaa sends those again. (A pack
                // still waiting at the failover may finish there: at QoS 0, its records written on either.) Judged
                // over all that came, a while after.
                RecordingCallback.sleep(Duration.ofSeconds(1));
                for (byte[] m : sub.payloads()) {
                    String id = String.valueOf(Payloads.idOf(m));
                    if (id.startsWith("hung-")) {
                        RecordingCallback cb = cbs.get(Integer.parseInt(id.split("-")[1]));
                        assertEquals(RecordingCallback.SUCCESS, cb.calls().get(0).method, "on the failover broker: "
                                + id + ", of " + cb.label() + ", answered " + cb.calls());
                    } else {
                        assertTrue(id.startsWith("after-"), "on the failover broker: " + id);
                    }
                }
            } finally {
                hung.resume();
                appender.close();
            }
        }
    }

    /** A TCP listener on loopback that either keeps every connection open in silence or answers and closes. */
    private static final class Peer implements AutoCloseable {
        private final ServerSocket server;
        private final List<Socket> held = new CopyOnWriteArrayList<>();
        private final Thread acceptor;
        private volatile int connections;

        Peer(byte[] answer) throws IOException {
            server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            acceptor = new Thread(() -> {
                while (!server.isClosed()) {
                    try {
                        Socket s = server.accept();
                        connections++;
                        if (answer == null) {
                            held.add(s);
                        } else {
                            try (Socket c = s; InputStream in = c.getInputStream(); OutputStream out = c.getOutputStream()) {
                                c.setSoTimeout(2_000);
                                in.read(new byte[256]);
                                out.write(answer);
                                out.flush();
                            } catch (IOException e) {
                                // the appender gave up first
                            }
                        }
                    } catch (IOException e) {
                        return;
                    }
                }
            }, "peer-" + server.getLocalPort());
            acceptor.setDaemon(true);
            acceptor.start();
        }

        int port() {
            return server.getLocalPort();
        }

        int connections() {
            return connections;
        }

        @Override
        public void close() throws IOException {
            server.close();
            for (Socket s : held) {
                s.close();
            }
            try {
                acceptor.join(2_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            assertEquals(false, acceptor.isAlive(), "peer acceptor still running");
        }
    }
}

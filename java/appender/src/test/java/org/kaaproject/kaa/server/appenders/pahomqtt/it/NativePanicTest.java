package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.INTERNAL_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;

/**
 * Nothing in native code may take the node down: a panic at a JNI entry point ({@code init}'s, {@code doAppend}'s,
 * {@code close}'s, a JMX read's), in the callback dispatcher, or in a connection's driver, its recovery or its close,
 * is caught there, answered and logged, and the node goes on appending. No bug of the shipped library can be set off
 * at will, so these child nodes load the same library built with panics on request ({@code src/fault.rs}, the
 * {@code fault-injection} feature; Maven builds it into {@code target/debug}), each place panicking as many times as
 * {@code KAA_MQTT_APPENDER_FAULTS} asks. The child JVM runs with {@code -Xcheck:jni}, which reports any JNI misuse on
 * the way out of a panic.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class NativePanicTest {

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    private static ChildNode childWithFaults(String faults) {
        String library = System.getProperty("it.faultInjectionLibrary");
        assertNotNull(library, "it.faultInjectionLibrary is not set (the pom sets it for Maven's test runs)");
        assertTrue(Files.isRegularFile(Paths.get(library)), library + " is missing: Maven's cargo-build-fault-injection "
                + "builds it (cargo build --lib --features fault-injection)");
        return ChildNode.start("info", Map.of("KAA_MQTT_APPENDER_FAULTS", faults),
                List.of("-Dkaa.mqtt.appender.library=" + library));
    }

    private static Map<String, Object> config(String topic, String clientId) {
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        cfg.put("clientId", clientId);
        return cfg;
    }

    /**
     * The appender's ERROR lines naming the fault injected at {@code place}. Found anywhere in a line: the Rust panic
     * hook writes the panic to the same stderr in pieces, and one may come before a logger's line on its own line.
     */
    private static List<String> errorsAt(ChildNode child, String place) {
        return child.log().lines().filter(l -> l.contains(" ERROR ") && ChildNode.APPENDER_LOGGER.matcher(l).find()
                && l.contains("injected fault at " + place)).collect(Collectors.toList());
    }

    private static void assertLogged(ChildNode child, String place, String says) {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (errorsAt(child, place).stream().noneMatch(l -> l.contains(says)) && System.nanoTime() < until) {
            RecordingCallback.sleep(Duration.ofMillis(50));
        }
        assertTrue(errorsAt(child, place).stream().anyMatch(l -> l.contains(says)), "an ERROR saying '" + says
                + "' for the panic at " + place + " (is the library built with the fault-injection feature?)\n"
                + child.diagnostics());
    }

    /** How many of the records of pack {@code seed} the subscriber got, once it has all 3 or 10 s passed. */
    private static long recordsOf(Subscriber sub, int seed) {
        String id = "child-" + seed + "-";
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (true) {
            long got = sub.payloads().stream().filter(p -> new String(p, StandardCharsets.UTF_8).contains(id)).count();
            if (got >= 3 || System.nanoTime() > until) {
                return got;
            }
            RecordingCallback.sleep(Duration.ofMillis(50));
        }
    }

    /**
     * A panic in {@code init}'s native call, in {@code doAppend}'s, in a JMX read and in {@code close}: each becomes
     * what the node expects of a broken call (a failed start, an {@code onInternalError}, a failed read, a close that
     * returns), each is logged, and the next call of the same kind works. The close that panicked still lets the
     * connection go: the broker sees it leave, and a new appender with the same client id delivers.
     */
    @Test
    void aPanicAtAnEntryPointFailsThatCallOnly() {
        String topic = "kaa/it/panic/entry";
        String clientId = "panic-entry-" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = config(topic, clientId);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1);
                ChildNode child = childWithFaults("open:1,append:1,attributes:1,close:1")) {
            child.load("a", cfg); // fails the test if init throws
            assertLogged(child, "open", "cannot start; its log packs will fail");
            child.append("a", "before-start", 1, 3);
            child.assertExactlyOne("before-start", INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ofMillis(200));

            child.reinit("a", cfg);
            child.append("a", "panics", 2, 3);
            child.assertExactlyOne("panics", INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ofMillis(200));
            assertLogged(child, "append", "panic in kaa-mqtt-appender native code");
            child.append("a", "after", 3, 3);
            child.assertExactlyOne("after", SUCCESS, Duration.ofSeconds(30), Duration.ZERO);
            sub.assertCount(3, Duration.ofSeconds(10));

            String failed = child.metric("a", "Reconnects");
            assertTrue(failed.contains("injected fault at attributes"), "the first JMX read fails: " + failed);
            assertLogged(child, "attributes", "panic in kaa-mqtt-appender native code");
            assertEquals("0", child.metric("a", "Reconnects"), "the next read works");

            child.closeAppender("a"); // fails the test if close throws
            assertLogged(child, "close", "panic in kaa-mqtt-appender native code");
            assertTrue(child.log().lines().anyMatch(l -> l.contains(" WARN ") && l.contains(
                    "PahoMqtt appender 'a': releasing its native side failed")), child.diagnostics());
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!BROKER.broker().log().contains("Client " + clientId + " disconnected") && System.nanoTime() < until) {
                RecordingCallback.sleep(Duration.ofMillis(50));
            }
            assertTrue(BROKER.broker().log().contains("Client " + clientId + " disconnected"),
                    "the connection of the appender whose close panicked is closed:\n" + BROKER.broker().log());

            child.load("b", cfg);
            child.append("b", "successor", 4, 3);
            child.assertExactlyOne("successor", SUCCESS, Duration.ofSeconds(30), Duration.ZERO);
            assertEquals(6, sub.assertCount(6, Duration.ofSeconds(10)).size());
            assertEquals(0, child.exit(Duration.ofSeconds(30)));
        }
    }

    /**
     * Panics off the node's threads: in a connection's driver and then in its recovery before any pack (it connects
     * again), in its driver with a pack in flight (that pack fails {@code onConnectionError}, for Kaa to send again,
     * and it connects again), in the callback dispatcher while it answers a pack (three times: the first pack is
     * answered by its last try, which calls the callback and nothing else, the second by its second try; each once),
     * and as the connection closes (a successor with its client id, which waits for the old one to finish, connects
     * as soon as the old one is gone).
     */
    @Test
    void aPanicInTheDispatcherOrAConnectionsTaskIsSurvived() {
        String topic = "kaa/it/panic/tasks";
        String clientId = "panic-tasks-" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = config(topic, clientId);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1);
                ChildNode child = childWithFaults(
                        "event-loop:1,recover:1,written:1,deliver:3,connection-close:1")) {
            child.load("a", cfg);
            child.append("a", "in-flight", 1, 3);
            child.assertExactlyOne("in-flight", CONNECTION_ERROR, Duration.ofSeconds(30), Duration.ofMillis(200));
            child.append("a", "first", 2, 3);
            child.assertExactlyOne("first", SUCCESS, Duration.ofSeconds(30), Duration.ofMillis(200));
            child.append("a", "second", 3, 3);
            child.assertExactlyOne("second", SUCCESS, Duration.ofSeconds(30), Duration.ofMillis(200));
            assertLogged(child, "event-loop", "panic in the event loop of the connection to");
            assertLogged(child, "recover", "panic while recovering the connection to");
            assertLogged(child, "written", "its packs in flight fail (onConnectionError) and it connects anew");
            // The first answer panicked twice (its last try gave it), the second once (its second try gave it).
            assertEquals(2, errorsAt(child, "deliver").stream().filter(l -> l.contains(
                    "panic in the callback dispatcher: ")).count(), child.diagnostics());
            assertEquals(1, errorsAt(child, "deliver").stream().filter(l -> l.contains(
                    "panic in the callback dispatcher (run again): ")).count(), child.diagnostics());

            child.closeAppender("a");
            // Another keep-alive: a connection of its own, with the same client id.
            Map<String, Object> successor = config(topic, clientId);
            successor.put("keepAliveSeconds", 7);
            child.load("b", successor);
            assertLogged(child, "connection-close", "panic while closing the connection to");
            child.append("b", "successor", 4, 3);
            child.assertExactlyOne("successor", SUCCESS, Duration.ofSeconds(30), Duration.ZERO);
            // Had the panic kept the old connection from saying it finished, the successor would wait for it up to
            // the old one's connect timeout and close grace (about 14 s more).
            long waited = child.millisToFirst("successor");
            assertTrue(waited < 8000, "the successor answered " + waited + " ms after its pack came");
            // What the in-flight pack had written may arrive too, so a count of messages says little: each
            // delivered pack arrives whole.
            for (int seed = 2; seed <= 4; seed++) {
                assertEquals(3, recordsOf(sub, seed), "the records of seed " + seed);
            }
            assertEquals(0, child.exit(Duration.ofSeconds(30)));
        }
    }
}

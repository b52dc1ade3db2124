package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.INTERNAL_ERROR;

import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;

/**
 * A setting out of its range keeps the appender from starting, as an operator sees it in the node's log (a child JVM,
 * {@link ChildNode#refusalProblems}): init logs an error naming the field, and every pack is answered
 * onInternalError. The TLS fields' cases are in {@link TlsLoggingTest}. A bound within its range that the node's
 * memory cannot hold starts, with a WARN. No broker is needed: nothing connects.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class InvalidSettingsTest {

    /**
     * maxInflight (the newest plugin's field) takes 0 (automatic) to 65535, MQTT's packet identifiers. Outside that
     * the appender does not start; its bounds start (their packs fail as connection errors only because no broker
     * listens), with nothing logged about maxInflight.
     */
    @Test
    void maxInflightOutsideZeroTo65535IsRefusedWithTheFieldNamed() {
        int closedPort = Mosquitto.freeLoopbackPort();
        Map<String, ChildNode.Refused> cases = new LinkedHashMap<>();
        for (int value : new int[] {-1, 65_536, 70_000}) {
            Map<String, Object> cfg = KaaNode.brokerConfig(closedPort, "kaa/it/invalid", 1);
            cfg.put("maxInflight", value);
            cases.put("maxInflight=" + value, new ChildNode.Refused(cfg, "maxInflight"));
        }
        try (ChildNode node = ChildNode.start()) {
            List<String> failures = node.refusalProblems(cases, Duration.ofSeconds(5));
            for (int bound : new int[] {0, 65_535}) {
                String name = "bound-" + bound;
                Map<String, Object> cfg = KaaNode.brokerConfig(closedPort, "kaa/it/invalid", 1);
                cfg.put("maxInflight", bound);
                cfg.put("deliveryTimeoutSeconds", 1);
                node.load(name, cfg);
                node.append(name, name + "-p", 7, 2);
                node.assertExactlyOne(name + "-p", CONNECTION_ERROR, Duration.ofSeconds(10), Duration.ofMillis(200));
            }
            if (!failures.isEmpty()) {
                fail(failures.size() + " problem(s):\n  " + String.join("\n  ", failures) + "\n" + node.diagnostics());
            }
            assertEquals(cases.size(), node.appenderLogLines("ERROR").stream().filter(l -> l.contains("maxInflight"))
                    .count(), "one error per refused case, none for the bounds\n" + node.diagnostics());
            assertTrue(node.isAlive(), "the node JVM died\n" + node.diagnostics());
        }
    }

    /**
     * What goes into CONNECT as MQTT text must be text a broker takes: Mosquitto 2.0.11 closes a connection whose
     * CONNECT has a tab in its client id or a line break in its user name, without a CONNACK ("disconnected due to
     * protocol error"), so every connect failed and every pack waited out its deadline, with nothing naming the field.
     * Such values come in through the REST API, or pasted into the form: init refuses them, naming the field (in the
     * original's records too: {@code config.rs}'s unit tests).
     */
    @Test
    void connectTextsABrokerRefusesAreRefusedWithTheFieldNamed() {
        int closedPort = Mosquitto.freeLoopbackPort();
        Map<String, ChildNode.Refused> cases = new LinkedHashMap<>();
        Map<String, Object> id = KaaNode.brokerConfig(closedPort, "kaa/it/invalid", 1);
        id.put("clientId", "kaa\tnode");
        cases.put("clientId-tab", new ChildNode.Refused(id, "clientId"));
        Map<String, Object> user = KaaNode.brokerConfig(closedPort, "kaa/it/invalid", 1);
        user.put("username", "kaa\nuser");
        user.put("password", "secret");
        cases.put("username-line-break", new ChildNode.Refused(user, "username"));
        try (ChildNode node = ChildNode.start()) {
            List<String> failures = node.refusalProblems(cases, Duration.ofSeconds(5));
            if (!failures.isEmpty()) {
                fail(failures.size() + " problem(s):\n  " + String.join("\n  ", failures) + "\n" + node.diagnostics());
            }
            assertTrue(node.appenderLogLines("ERROR").stream().anyMatch(l -> l.contains("'kaa\\tnode' holds a control "
                    + "character")), "the id shown, its tab escaped\n" + node.diagnostics());
            assertTrue(node.log().lines().noneMatch(l -> l.contains("secret")), node.diagnostics());
        }
    }

    /**
     * maxPendingRecords near its most (2,000,000,000 messages of 4 KiB: 7.5 TiB) is more memory than any node
     * has, so a broker away for long would end with the kernel killing the node rather than packs failing at the
     * bound: the appender starts and works, and one WARN at init says how much, against what, and to what value to
     * lower it. A bound of 1,000 (3.9 MiB, less than any machine running a JVM) says nothing.
     */
    @Test
    void aPendingBoundPastTheNodesMemoryIsAWarning() {
        try (ChildNode node = ChildNode.start()) {
            for (int bound : new int[] {2_000_000_000, 1_000}) {
                String name = "pending-" + bound;
                Map<String, Object> cfg = KaaNode.brokerConfig(Mosquitto.freeLoopbackPort(), "kaa/it/invalid", 1);
                cfg.put("maxPendingRecords", bound);
                cfg.put("deliveryTimeoutSeconds", 1);
                node.load(name, cfg);
                node.append(name, name + "-p", 7, 2);
                node.assertExactlyOne(name + "-p", CONNECTION_ERROR, Duration.ofSeconds(10), Duration.ofMillis(200));
            }
            List<String> said = node.appenderLogLines("WARN").stream().filter(l -> l.contains("maxPendingRecords"))
                    .collect(Collectors.toList());
            assertEquals(1, said.size(), "one WARN, for the huge bound only\n" + node.diagnostics());
            for (String part : new String[] {"'pending-2000000000'", "maxPendingRecords 2000000000 lets a broker that "
                    + "is away make this appender hold up to 7.5 TiB of messages", "the node may use (",
                    "lower maxPendingRecords to "}) {
                assertTrue(said.get(0).contains(part), part + " in " + said.get(0));
            }
            assertTrue(node.appenderLogLines("ERROR").isEmpty(), "nothing refused\n" + node.diagnostics());
        }
    }

    /**
     * Two applications' appenders with one broker and the default client id share a connection, which counts both
     * appenders' messages against the bound of the appender whose pack comes: the one that joins with another
     * maxPendingRecords is told so at init, naming the others and their bounds. One with the same bound is not.
     */
    @Test
    void anAppenderJoiningAConnectionOfAnotherPendingBoundIsWarned() {
        try (ChildNode node = ChildNode.start()) {
            Map<String, Object> cfg = KaaNode.brokerConfig(Mosquitto.freeLoopbackPort(), "kaa/it/shared-bound", 1);
            cfg.put("maxPendingRecords", 1_000);
            cfg.put("deliveryTimeoutSeconds", 1);
            node.load("bound-first", cfg);
            node.load("bound-same", cfg);
            cfg.put("maxPendingRecords", 50_000);
            node.load("bound-other", cfg);
            // Native lines reach the log through the thread that answers packs, in order: once a pack appended
            // after the loads is answered, every line of the loads is there.
            node.append("bound-other", "after-loads", 7, 2);
            node.assertExactlyOne("after-loads", CONNECTION_ERROR, Duration.ofSeconds(10), Duration.ofMillis(200));
            List<String> said = node.appenderLogLines("WARN").stream().filter(l -> l.contains("is not that of the appenders it shares"))
                    .collect(Collectors.toList());
            assertEquals(1, said.size(), "one WARN, for the other bound only\n" + node.diagnostics());
            for (String part : new String[] {"'bound-other'", "its maxPendingRecords (50000) is not that of the "
                    + "appenders it shares connections with: 'bound-first' (1000), 'bound-same' (1000);",
                    "an appender with a smaller bound has its packs fail once the connection holds that bound"}) {
                assertTrue(said.get(0).contains(part), part + " in " + said.get(0));
            }
        }
    }

    /**
     * The init error is logged once, and a node log rotates: packs that keep failing for it log it again, at the
     * first of them and then at most once a minute, with how many failed. Three packs in a row: one such WARN. An init
     * again that fails for another reason is its own error: its first pack says it at once, counting from that init.
     */
    @Test
    void packsOfAnAppenderThatDidNotStartRepeatWhy() {
        Map<String, Object> cfg = notStarting();
        try (ChildNode node = ChildNode.start()) {
            node.load("not-started", cfg);
            for (int p = 0; p < 3; p++) {
                answeredInternalError(node, "p" + p, p);
            }
            List<String> reminders = reminders(node);
            assertEquals(1, reminders.size(), "one reminder for three packs\n" + node.diagnostics());
            assertTrue(reminders.get(0).contains("maxInflight") && reminders.get(0).contains(
                    "; 1 log pack(s) answered onInternalError"), reminders.get(0));
            assertEquals(1, node.appenderLogLines("ERROR").size(), "the init error once\n" + node.diagnostics());

            cfg.put("maxInflight", 0);
            cfg.put("maxPendingRecords", 0);
            node.reinit("not-started", cfg);
            answeredInternalError(node, "again", 3);
            reminders = reminders(node);
            assertEquals(2, reminders.size(), "the second init's error at its first pack\n" + node.diagnostics());
            assertTrue(reminders.get(1).contains("maxPendingRecords") && reminders.get(1).contains(
                    "; 1 log pack(s) answered onInternalError"), reminders.get(1));
        }
    }

    /**
     * A node's callback that throws, on every pack of an appender that did not start (which answers them itself), is
     * said once at WARN, not once a pack.
     */
    @Test
    void aCallbackThatThrowsOnEveryPackOfAnAppenderThatDidNotStartIsSaidOnce() {
        Map<String, Object> cfg = notStarting();
        try (ChildNode node = ChildNode.start()) {
            node.load("not-started", cfg);
            for (int p = 0; p < 3; p++) {
                answeredInternalError(node, "throws-" + p, p);
            }
            assertEquals(1, node.appenderLogLines("WARN").stream().filter(l -> l.contains("the node's callback threw")
                    && l.contains("callback-bomb throws-0")).count(), node.diagnostics());
            assertTrue(node.appenderLogLines("WARN").stream().noneMatch(l -> l.contains("callback-bomb throws-1")),
                    node.diagnostics());
        }
    }

    /** Closed, an appender that did not start is no longer said to be not running: the node removed it. */
    @Test
    void aClosedAppenderThatDidNotStartIsNotRemindedOf() {
        Map<String, Object> cfg = notStarting();
        try (ChildNode node = ChildNode.start()) {
            node.load("not-started", cfg);
            node.closeAppender("not-started");
            answeredInternalError(node, "after-close", 1);
            assertEquals(List.of(), reminders(node), node.diagnostics());
        }
    }

    /** A configuration that keeps the appender from starting: maxInflight -1. */
    private static Map<String, Object> notStarting() {
        Map<String, Object> cfg = KaaNode.brokerConfig(Mosquitto.freeLoopbackPort(), "kaa/it/invalid", 1);
        cfg.put("maxInflight", -1);
        return cfg;
    }

    /**
     * Appends a pack of two records ({@code tag}, made from {@code seed}) to "not-started": answered onInternalError,
     * once.
     */
    private static void answeredInternalError(ChildNode node, String tag, int seed) {
        node.append("not-started", tag, seed, 2);
        node.assertExactlyOne(tag, INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ZERO);
    }

    private static List<String> reminders(ChildNode node) {
        return node.appenderLogLines("WARN").stream().filter(l -> l.contains("'not-started'") && l.contains(
                "is not running, as it could not start")).collect(Collectors.toList());
    }

    /**
     * An appender that did not start answers its packs itself; a Kaa callback that throws there does not get out of
     * doAppend, where the node would answer the pack a second time (APPENDER_INTERNAL_ERROR).
     */
    @Test
    void aThrowingCallbackOfAnAppenderThatDidNotStartIsAnsweredOnce() {
        Map<String, Object> cfg = notStarting();
        LogAppender appender = KaaNode.load("not-started-throwing", KaaNode.config(cfg));
        AtomicInteger answers = new AtomicInteger();
        AtomicInteger internal = new AtomicInteger();
        LogDeliveryCallback throwing = new LogDeliveryCallback() {
            @Override
            public void onSuccess() {
                answers.incrementAndGet();
            }

            @Override
            public void onInternalError() {
                answers.incrementAndGet();
                internal.incrementAndGet();
                throw new IllegalStateException("the node's callback throws");
            }

            @Override
            public void onConnectionError() {
                answers.incrementAndGet();
            }

            @Override
            public void onRemoteError() {
                answers.incrementAndGet();
            }
        };
        try {
            assertDoesNotThrow(() -> appender.doAppend(KaaNode.pack(TestData.schemaText("simple.avsc"), 1, List.of(
                    new byte[] {0})), throwing));
            RecordingCallback.sleep(Duration.ofMillis(500)); // time for a second answer to show
            assertEquals(1, answers.get(), "answered once");
            assertEquals(1, internal.get(), "onInternalError");
        } finally {
            appender.close();
        }
    }
}

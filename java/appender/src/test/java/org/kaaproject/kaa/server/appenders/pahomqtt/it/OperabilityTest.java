package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.CONNECTION_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.INTERNAL_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import javax.management.MBeanServer;
import javax.management.ObjectName;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.data.BaseLogEventPack;

/** What operators see: the JMX bean of each appender, and the log lines in the node's SLF4J. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class OperabilityTest {

    /** The native connection module's SLF4J logger. */
    private static final String CONNECTION_LOGGER =
            "org.kaaproject.kaa.server.appenders.pahomqtt.native.kaa_mqtt_appender.connection";

    private static final String TELEMETRY = TestData.schemaText("telemetry.avsc");

    private static List<byte[]> records(int n, int seed) {
        return TestData.telemetryBinaries(AvroReference.parse(TELEMETRY), new Random(seed), n,
                i -> "ops-" + seed + "-" + i);
    }

    private static Set<ObjectName> beans(MBeanServer server, String appenderName) throws Exception {
        return server.queryNames(new ObjectName("org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="
                + ObjectName.quote(appenderName) + ",*"), null);
    }

    /**
     * A pack counts once Kaa's callback for it has returned, a moment after a test sees it called: waits (5 s at
     * most) for none to be in flight, which the test then asserts with the counts.
     */
    private static void awaitNoneInFlight(MBeanServer server, ObjectName name) throws Exception {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!Long.valueOf(0).equals(server.getAttribute(name, "PacksInFlight")) && System.nanoTime() < until) {
            Thread.sleep(10);
        }
    }

    @Test
    void jmxBeanCountsWhatHappensAndGoesAwayAtClose() throws Exception {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        try (Mosquitto broker = Mosquitto.startAnonymous()) {
            Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), "ops/jmx", 1);
            cfg.put("deliveryTimeoutSeconds", 2);
            LogAppender appender = KaaNode.load("jmx \"probe\"", KaaNode.config(cfg));
            try {
                Set<ObjectName> names = beans(server, "jmx \"probe\"");
                assertEquals(1, names.size(), "one bean registered at init: " + names);
                ObjectName name = names.iterator().next();
                for (int i = 0; i < 5; i++) {
                    RecordingCallback cb = new RecordingCallback("ok-" + i);
                    appender.doAppend(KaaNode.pack(TELEMETRY, 1, records(20, i)), cb);
                    cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
                }
                RecordingCallback bad = new RecordingCallback("bad");
                appender.doAppend(KaaNode.pack(TELEMETRY, 1, List.of(new byte[] {1, 2, 3})), bad);
                bad.awaitFirst(Duration.ofSeconds(10));
                awaitNoneInFlight(server, name);
                assertEquals(5L, server.getAttribute(name, "PacksDelivered"));
                assertEquals(100L, server.getAttribute(name, "RecordsDelivered"));
                assertEquals(1L, server.getAttribute(name, "PacksFailedInternal"));
                assertEquals(0L, server.getAttribute(name, "PacksInFlight"));
                assertEquals(true, server.getAttribute(name, "Connected"));
                double p50 = (Double) server.getAttribute(name, "AnswerLatencyP50Millis");
                double p99 = (Double) server.getAttribute(name, "AnswerLatencyP99Millis");
                assertTrue(p50 > 0 && p50 <= p99, "p50 " + p50 + ", p99 " + p99);
                // Within the appender's first minute, the recent figures cover every pack too.
                assertEquals(p50, server.getAttribute(name, "RecentAnswerLatencyP50Millis"));
                assertEquals(p99, server.getAttribute(name, "RecentAnswerLatencyP99Millis"));
                // A JMX client reading every attribute at once (as jconsole does) gets them all, typed.
                String[] all = java.util.Arrays.stream(server.getMBeanInfo(name).getAttributes())
                        .map(javax.management.MBeanAttributeInfo::getName).toArray(String[]::new);
                assertEquals(List.of("PacksDelivered", "PacksFailedConnection", "PacksFailedRemote",
                        "PacksFailedInternal", "RecordsDelivered", "RecordsFailed", "PacksInFlight",
                        "RecordsAwaitingBroker", "Reconnects", "Connected", "AnswerLatencyP50Millis",
                        "AnswerLatencyP99Millis", "RecentAnswerLatencyP50Millis", "RecentAnswerLatencyP99Millis",
                        "Takeovers"), List.of(all));
                javax.management.AttributeList values = server.getAttributes(name, all);
                assertEquals(all.length, values.size());
                assertEquals(5L, values.asList().get(0).getValue());
                assertEquals(0L, server.getAttribute(name, "Takeovers"));
                // Each attribute says its type, as a JMX console shows it; unknown names are not found.
                Map<String, String> types = new java.util.HashMap<>();
                for (javax.management.MBeanAttributeInfo a : server.getMBeanInfo(name).getAttributes()) {
                    assertTrue(a.isReadable() && !a.isWritable(), a.getName());
                    assertEquals(a.getName().equals("Connected"), a.isIs(), a.getName());
                    types.put(a.getName(), a.getType());
                }
                assertEquals("long", types.get("PacksDelivered"));
                assertEquals("boolean", types.get("Connected"));
                assertEquals("double", types.get("AnswerLatencyP99Millis"));
                assertThrows(javax.management.AttributeNotFoundException.class,
                        () -> server.getAttribute(name, "NoSuchFigure"));
                assertEquals(1, server.getAttributes(name, new String[] {"NoSuchFigure", "Reconnects"}).size());

                // The broker goes away: the bean shows it, and the failed pack.
                broker.kill();
                RecordingCallback lost = new RecordingCallback("lost");
                appender.doAppend(KaaNode.pack(TELEMETRY, 1, records(3, 99)), lost);
                lost.assertExactlyOne(CONNECTION_ERROR, Duration.ofSeconds(15), Duration.ZERO);
                awaitNoneInFlight(server, name);
                assertEquals(false, server.getAttribute(name, "Connected"));
                assertEquals(1L, server.getAttribute(name, "PacksFailedConnection"));
                assertEquals(4L, server.getAttribute(name, "RecordsFailed"), "1 undecodable + 3 lost");
                broker.start();
                RecordingCallback back;
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                do {
                    back = new RecordingCallback("back");
                    appender.doAppend(KaaNode.pack(TELEMETRY, 1, records(1, 7)), back);
                } while (!SUCCESS.equals(back.awaitFirst(Duration.ofSeconds(15)).method) && System.nanoTime() < deadline);
                assertEquals(SUCCESS, back.calls().get(0).method, "delivered again once the broker is back");
                assertEquals(1L, server.getAttribute(name, "Reconnects"));
            } finally {
                appender.close();
            }
            assertTrue(beans(server, "jmx \"probe\"").isEmpty(), "bean unregistered at close");
        }
    }

    /**
     * A pack with a null event is answered by the native side, like any pack it cannot publish, so the bean counts it.
     * (Before: the Java plugin answered it itself, and PacksFailedInternal stayed 0.)
     */
    @Test
    void aPackWithANullEventIsCountedInPacksFailedInternal() throws Exception {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        try (Mosquitto broker = Mosquitto.startAnonymous()) {
            LogAppender appender = KaaNode.load("jmx null event", KaaNode.config(KaaNode.brokerConfig(broker.port(),
                    "ops/null-event", 1)));
            try {
                ObjectName name = beans(server, "jmx null event").iterator().next();
                BaseLogEventPack pack = KaaNode.pack(TELEMETRY, 1, records(2, 5));
                pack.getEvents().add(1, null);
                RecordingCallback cb = new RecordingCallback("null event");
                appender.doAppend(pack, cb);
                cb.assertExactlyOne(INTERNAL_ERROR, Duration.ofSeconds(10), Duration.ZERO);
                awaitNoneInFlight(server, name);
                assertEquals(1L, server.getAttribute(name, "PacksFailedInternal"));
                assertEquals(3L, server.getAttribute(name, "RecordsFailed"));
            } finally {
                appender.close();
            }
        }
    }

    /**
     * An appender with credentials and a one-second summary interval appends packs for a few seconds in a child JVM
     * logging everything (TRACE), whose log is then read back. The child returns from main without System.exit, so
     * it also shows that the appender leaves no thread that keeps a JVM alive.
     */
    @Test
    void logsReachSlf4jWithSummariesAndNoSecrets() throws InterruptedException {
        String password = "pa55-" + Long.toHexString(new Random().nextLong());
        try (Mosquitto broker = Mosquitto.withCredentials("operator", password)) {
            broker.start();
            // Everything the native side logs, down to rumqttc's packet traces.
            try (ChildNode node = ChildNode.start("trace")) {
                Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), "probe/logs", 1);
                cfg.put("username", "operator");
                cfg.put("password", password);
                cfg.put("statsIntervalSeconds", 1);
                node.load("probe", cfg);
                long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(3500);
                int packs = 0;
                while (System.nanoTime() < end) {
                    String label = "probe-" + packs;
                    node.append("probe", label, packs, 10);
                    assertEquals(SUCCESS, node.awaitFirst(label, Duration.ofSeconds(10)), label);
                    packs++;
                    Thread.sleep(50);
                }
                int exitCode = node.returnFromMain(Duration.ofSeconds(60));
                String log = node.log();
                assertEquals(0, exitCode, log);
                String nativeLogger = "org.kaaproject.kaa.server.appenders.pahomqtt.native.kaa_mqtt_appender.";
                assertTrue(log.contains(nativeLogger + "connection - connected to 127.0.0.1:" + broker.port()),
                        "native INFO line in SLF4J:\n" + log);
                assertTrue(log.matches("(?s).*" + nativeLogger.replace(".", "\\.")
                        + "appender - appender 'probe': [1-9]\\d* records in [1-9]\\d* packs delivered.*"),
                        "periodic summary line:\n" + log);
                assertTrue(log.contains("org.kaaproject.kaa.server.appenders.pahomqtt.native.rumqttc"),
                        "other crates' records are forwarded too");
                assertEquals(1, node.appenderLogLines("INFO").stream().filter(l -> l.contains("PahoMqtt appender "
                        + "'probe' (") && l.endsWith(") closed")).count(), "the close said once, at INFO:\n" + log);
                assertFalse(log.contains(password), "the password appears in the log:\n" + log);
                assertFalse(node.stdout().contains(password), "the password appears on stdout:\n" + node.stdout());
            }
        }
    }

    /**
     * What a broker sends reaches the node's log as one line of ours, cut short: a broker answering CONNECT with a
     * message whose topic holds line breaks and a forged log line, 60 KB in all, made the MQTT client's error (which
     * holds that topic whole) a WARN of 60 KB at every connect, starting a line of the broker's own.
     */
    @Test
    void textFromABrokerIsLoggedOnOneLineCutShort() throws Exception {
        String forged = "00:00:00.000 [forged] ERROR forged.logger - forged line";
        try (ScriptedBroker broker = new ScriptedBroker(ScriptedBroker.Mode.PUBLISH_FIRST);
                ChildNode node = ChildNode.start()) {
            broker.firstTopic("t\n" + forged + "\n" + "x".repeat(60_000));
            node.load("a", KaaNode.brokerConfig(broker.port(), "kaa/it/forged", 1));
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            // The connect's WARN, not any: the dispatcher writes native lines after the connect that made them, and
            // a small machine's init WARN on the default maxPendingRecords comes first.
            while ((broker.clientIds().size() < 2
                    || node.appenderLogLines("WARN|ERROR").stream().noneMatch(l -> l.endsWith("; retrying")))
                    && System.nanoTime() < until) {
                Thread.sleep(50);
            }
            assertTrue(broker.clientIds().size() >= 2, "connected again: " + broker.clientIds());
            List<String> lines = node.log().lines().collect(Collectors.toList());
            assertTrue(lines.stream().noneMatch(l -> l.startsWith(forged)), node.diagnostics());
            assertTrue(lines.stream().allMatch(l -> l.length() < 5_000), "a line of "
                    + lines.stream().mapToInt(String::length).max().orElse(0) + " characters");
            assertTrue(node.appenderLogLines("WARN|ERROR").stream().anyMatch(l -> l.contains("\\n" + forged)
                    && l.contains(" bytes left out ...] ") && l.endsWith("; retrying")),
                    "the broker's text, escaped and cut in the middle, our line's end kept\n" + node.diagnostics());
        }
    }

    /**
     * Kaa's callback is called from native code with no Java of ours around it: one that throws is logged as a WARN
     * with its exception, and the packs after it are still answered. A callback that throws every time is logged ten
     * times a minute, not once per pack: twelve such packs, ten WARN lines.
     */
    @Test
    void aCallbackThatThrowsIsLoggedAndLaterPacksAreAnswered() throws InterruptedException {
        try (Mosquitto broker = Mosquitto.startAnonymous(); ChildNode node = ChildNode.start("info")) {
            node.load("thrower", KaaNode.brokerConfig(broker.port(), "ops/throws", 1));
            for (int i = 1; i <= 12; i++) {
                node.append("thrower", "throws-" + i, i, 5);
                node.assertExactlyOne("throws-" + i, SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(100));
            }
            node.append("thrower", "after-1", 20, 5);
            node.assertExactlyOne("after-1", SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
            String log = node.log();
            List<String> threw = node.appenderLogLines("WARN").stream().filter(l -> l.contains(
                    "Kaa's onSuccess callback threw")).collect(Collectors.toList());
            assertEquals(10, threw.size(), "the throwing callback is a WARN, ten a minute:\n" + node.diagnostics());
            assertTrue(threw.get(9).contains("left out for the rest of the minute"), threw.get(9));
            assertTrue(log.contains("java.lang.IllegalStateException: callback-bomb throws-1"),
                    "with its exception:\n" + node.diagnostics());
        }
    }

    /**
     * One thread answers every pack of every appender, so one Kaa callback that blocks holds all the answers. They
     * queue behind it only so long: once the answer in hand waited over 10 s, a new pack is answered
     * onConnectionError at once, on the thread that appended it, instead of queueing without bound (each queued
     * answer keeps Kaa's callback alive). Packs appended before still get their answers once the callback returns,
     * later ones go the usual way again, and one WARN says what happened, also that a callback threw (logged then, on
     * Kaa's thread, it would go through the logging that may be what holds the answers). JMX counts a pack answered when Kaa's
     * callback has its answer, so the held ones show in flight, and their wait in the latency. (Before: every pack
     * queued, and a million of them grew the node by 150 MiB while nothing was answered; JMX counted an answer when it
     * was queued, and showed nothing in flight and a p99 of microseconds while Kaa waited.)
     */
    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void aBlockedCallbackHoldsTheAnswersBackOnlySoLong() throws InterruptedException {
        try (Mosquitto broker = Mosquitto.startAnonymous(); ChildNode node = ChildNode.start("info")) {
            node.load("held", KaaNode.brokerConfig(broker.port(), "ops/held", 1));
            node.append("held", "blocks-1", 1, 2);
            assertEquals(SUCCESS, node.awaitFirst("blocks-1", Duration.ofSeconds(10)), node.diagnostics());
            long held = System.nanoTime();
            node.append("held", "queued", 2, 2);
            // Late answers past 10 s: the one in hand was queued when its pack was acknowledged.
            Thread.sleep(Math.max(0, TimeUnit.SECONDS.toMillis(11) - (System.nanoTime() - held) / 1_000_000));
            assertEquals(List.of(), node.calls("queued"), "the pack before waits behind the blocked callback");
            // JMX tells what Kaa has: neither answer reached it.
            assertEquals("2", node.metric("held", "PacksInFlight"), "packs whose callbacks have not returned");
            assertEquals("0", node.metric("held", "PacksDelivered"), "none answered yet");
            node.append("held", "late", 3, 2);
            assertEquals(CONNECTION_ERROR, node.awaitFirst("late", Duration.ZERO),
                    "answered before doAppend returned\n" + node.diagnostics());
            assertEquals("main", node.callThread("late"), "on the thread that appended it");
            // A callback that throws there stays inside doAppend (the node would answer the pack again).
            node.append("held", "throws-late", 5, 2);
            assertEquals(CONNECTION_ERROR, node.awaitFirst("throws-late", Duration.ZERO), node.diagnostics());
            node.unblock();
            node.assertExactlyOne("queued", SUCCESS, Duration.ofSeconds(10), Duration.ZERO);
            // Its callback seen is not its job done: the dispatcher holds the late job until the callback returns
            // and the metrics count it, and a pack appended before that is still turned away.
            long caughtUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!"0".equals(node.metric("held", "PacksInFlight")) && System.nanoTime() < caughtUp) {
                Thread.sleep(50);
            }
            Thread.sleep(100);
            node.append("held", "after", 4, 2);
            node.assertExactlyOne("after", SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(300));
            assertEquals("kaa-mqtt-callbacks", node.callThread("after"), "from the dispatcher again");
            node.assertExactlyOne("late", CONNECTION_ERROR, Duration.ZERO, Duration.ZERO);
            node.assertExactlyOne("throws-late", CONNECTION_ERROR, Duration.ZERO, Duration.ZERO);
            assertEquals("2", node.metric("held", "PacksFailedConnection"), "counted as every answer is");
            assertEquals("0", node.metric("held", "PacksInFlight"), "all answered");
            assertEquals("3", node.metric("held", "PacksDelivered"), "once their callbacks returned");
            assertTrue(Double.parseDouble(node.metric("held", "AnswerLatencyP99Millis")) >= 10_000,
                    "the held answers' wait is in the latency");
            // Said by the dispatcher once it has caught up, after the callback that showed it had.
            awaitNativeLine(node, "WARN", "answers to Kaa were over 10 s late", 10);
            assertTrue(node.appenderLogLines("WARN").stream().anyMatch(l -> l.contains("answers to Kaa were over 10 s "
                    + "late") && l.contains("2 packs were answered onConnectionError at once")
                    && l.contains("(1 of their callbacks threw)")),
                    "one WARN says so:\n" + node.diagnostics());
        }
    }

    /**
     * The native side follows the node's SLF4J level at run time, not only the level it found when the library
     * loaded. A child node at INFO runs an appender whose broker is unreachable: the first failed connect is a WARN,
     * every repeat of it a DEBUG line that INFO hides. The native loggers are then set to DEBUG in the running child
     * (as logback does on a node when its configuration changes), and the repeats must appear in the log.
     */
    @Test
    void nativeLogLevelFollowsSlf4jAtRunTime() throws InterruptedException {
        int closedPort = Mosquitto.freeLoopbackPort();
        try (ChildNode node = failingToConnect("level-probe", closedPort)) {
            assertTrue(node.appenderLogLines("WARN").stream().anyMatch(l -> l.contains("cannot connect to 127.0.0.1:"
                    + closedPort)), "the first failed connect is a WARN:\n" + node.diagnostics());
            // Retries back off from 100 ms: within 2 s several more fail, each a DEBUG line at DEBUG.
            Thread.sleep(2000);
            assertEquals(List.of(), node.appenderLogLines("DEBUG"), "at INFO no native DEBUG line");

            node.setNativeLevel("debug");
            // Reconnect attempts back off up to 10 s; the level is read again every few seconds.
            awaitNativeLine(node, "DEBUG", CONNECTION_LOGGER, 40);
            List<String> debug = node.appenderLogLines("DEBUG");
            assertTrue(debug.stream().anyMatch(l -> l.contains(CONNECTION_LOGGER + " - cannot connect to 127.0.0.1:"
                    + closedPort)), "native DEBUG lines after the level changed at run time:\n" + node.diagnostics());
        }
    }

    /**
     * A level set on one native module's logger alone reaches native code: DEBUG on
     * {@code ...native.kaa_mqtt_appender.connection} in a child node at INFO shows that module's DEBUG lines (the
     * repeats of a failed connect), and no other native logger's. Before, only the prefix logger's level was read,
     * and the module's DEBUG lines were dropped before SLF4J saw them.
     */
    @Test
    void aLevelSetOnOneNativeModuleReachesIt() throws InterruptedException {
        int closedPort = Mosquitto.freeLoopbackPort();
        try (ChildNode node = failingToConnect("module-level", closedPort)) {
            node.setNativeLevel("debug", CONNECTION_LOGGER);
            awaitNativeLine(node, "DEBUG", CONNECTION_LOGGER, 40);
            List<String> debug = node.appenderLogLines("DEBUG");
            assertTrue(debug.stream().anyMatch(l -> l.contains(CONNECTION_LOGGER + " - cannot connect to 127.0.0.1:"
                    + closedPort)), "the module's DEBUG lines:\n" + node.diagnostics());
            assertEquals(List.of(), debug.stream().filter(l -> !l.contains(CONNECTION_LOGGER + " - "))
                    .collect(java.util.stream.Collectors.toList()), "only that module's DEBUG lines");
        }
    }

    /**
     * A child node at INFO running appender {@code name} against {@code closedPort}, where nothing listens, once its
     * first failed connect is logged (a WARN; the repeats are DEBUG).
     */
    private static ChildNode failingToConnect(String name, int closedPort) throws InterruptedException {
        ChildNode node = ChildNode.start("info");
        try {
            node.load(name, KaaNode.brokerConfig(closedPort, "ops/" + name, 1));
            awaitNativeLine(node, "WARN", CONNECTION_LOGGER, 30);
            return node;
        } catch (RuntimeException | Error | InterruptedException e) {
            node.close();
            throw e;
        }
    }

    /** Waits up to {@code seconds} for a line of {@code level} from {@code logger} in the child's log. */
    private static void awaitNativeLine(ChildNode node, String level, String logger, int seconds)
            throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (node.appenderLogLines(level).stream().noneMatch(l -> l.contains(logger))
                && System.nanoTime() < deadline) {
            Thread.sleep(100);
        }
    }
}

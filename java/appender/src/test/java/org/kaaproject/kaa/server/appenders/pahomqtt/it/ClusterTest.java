package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.apache.avro.Schema;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * A Kaa cluster: every node loads the same appender configuration and talks to the same broker, and a broker closes
 * the older of two connections with one client id. Each node here is a JVM of its own ({@link ChildNode}), loading
 * the appender as a node does, all of them with one stored configuration and one Mosquitto.
 *
 * <p>Every pack of every node must be confirmed, and the subscriber must count every record exactly once (by
 * content): a pack failed by a takeover would be sent again by Kaa and could show twice. The broker's own log counts
 * the takeovers ("already connected, closing old connection"): with one fixed client id in every node, each node
 * may be pushed out once (the appender then moves to an id of its own); with the form default, which names the
 * node, never.
 */
@Timeout(300)
class ClusterTest {

    private static final Pattern TAKEOVER = Pattern.compile("Client (\\S+) already connected, closing old connection");
    private static final int PACKS_PER_NODE = 150;
    private static final int RECORDS_PER_PACK = 20;

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    static Stream<Arguments> clusters() {
        return Stream.of(
                Arguments.of("2 nodes, the original appender's stored configuration (DefaultClient-ID)", 2, true),
                Arguments.of("3 nodes, the original appender's stored configuration (DefaultClient-ID)", 3, true),
                Arguments.of("2 nodes, the form's default client id", 2, false));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("clusters")
    void everyNodeDeliversEveryPackWithOneConfiguration(String label, int nodes, boolean original) {
        String topic = "kaa/it/cluster/" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = new HashMap<>();
        cfg.put("host", "127.0.0.1");
        cfg.put("port", BROKER.port());
        cfg.put("qos", 1);
        cfg.put("mqtttopic", topic);
        String formDefault = KaaNode.configSchema().getField("clientId").getJsonProp("by_default").getTextValue();
        assertTrue(formDefault.contains("{hostname}") && formDefault.contains("{pid}"), formDefault);
        // The ids the broker sees start with this.
        String clientId = original ? "DefaultClient-ID" : formDefault.substring(0, formDefault.indexOf('{'));
        int takeoversBefore = takeovers(clientId).size();

        if (!original) {
            // One retained status per node, not one all nodes overwrite.
            cfg.put("statusTopic", topic + "-status/{hostname}/{pid}");
        }
        List<ChildNode> cluster = new ArrayList<>();
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1);
                Subscriber status = Subscriber.subscribe(BROKER.port(), topic + "-status/#", 1)) {
            for (int n = 0; n < nodes; n++) {
                cluster.add(ChildNode.start());
            }
            // One after the other, as nodes of a cluster come up.
            for (ChildNode node : cluster) {
                if (original) {
                    node.loadOriginal("cluster", cfg);
                } else {
                    node.load("cluster", cfg);
                }
            }
            awaitSettled(cluster, "cluster");
            Schema schema = AvroReference.parse(TestData.schemaText(ChildNodeMain.TELEMETRY));
            List<byte[]> expected = new ArrayList<>();
            List<String> packs = new ArrayList<>();
            for (int p = 0; p < PACKS_PER_NODE; p++) {
                for (int n = 0; n < nodes; n++) {
                    int seed = n * 100_000 + p;
                    String pack = "n" + n + "-p" + p;
                    cluster.get(n).append("cluster", pack, seed, RECORDS_PER_PACK);
                    packs.add(pack);
                    expected.addAll(AvroReference.expectedPayloads(schema, ChildNodeMain.records(seed,
                            RECORDS_PER_PACK)));
                }
            }
            for (String pack : packs) {
                ChildNode node = cluster.get(Integer.parseInt(pack.substring(1, pack.indexOf('-'))));
                node.assertExactlyOne(pack, SUCCESS, Duration.ofSeconds(60), Duration.ZERO);
            }
            sub.awaitCount(expected.size(), Duration.ofSeconds(30));
            RecordingCallback.sleep(Duration.ofMillis(500));
            assertNull(sub.connectionLost(), "the test subscriber lost its connection");
            Payloads.assertSameMultiset(label, expected, sub.payloads());

            List<String> takeovers = takeovers(clientId).subList(takeoversBefore, takeovers(clientId).size());
            List<String> switched = new ArrayList<>();
            for (ChildNode node : cluster) {
                for (String line : node.appenderLogLines("WARN|ERROR")) {
                    if (line.contains("another client connected with the same client id")) {
                        switched.add(line);
                    }
                }
            }
            System.out.println(label + ": broker takeovers " + takeovers.size() + ", nodes that moved to an id of "
                    + "their own " + switched.size());
            if (original) {
                // The fault is there: the second node's connect pushed the first out.
                assertTrue(takeovers.size() >= 1, "no takeover happened: the test shows nothing");
                assertTrue(takeovers.size() <= nodes, label + ": at most one takeover per node, the broker logged "
                        + takeovers + "\n" + BROKER.broker().logTail(40));
                assertTrue(switched.size() <= nodes - 1, "nodes that moved to an id of their own: " + switched);
            } else {
                assertEquals(List.of(), takeovers, label + ": ids that name the node are never taken over");
                assertEquals(List.of(), switched, label);
                Map<String, String> online = new HashMap<>();
                for (Subscriber.Received m : status.messages()) {
                    online.put(m.topic, new String(m.payload, java.nio.charset.StandardCharsets.UTF_8));
                }
                assertEquals(nodes, online.size(), "a status topic per node: " + online);
                // The form's status format, JSON naming the node: the pids differ.
                assertTrue(online.values().stream().allMatch(v -> v.startsWith("{\"status\":\"online\"")),
                        online.toString());
                assertEquals(nodes, online.values().stream().map(v -> v.replaceAll(".*\"pid\":(\\d+).*", "$1"))
                        .distinct().count(), online.toString());
            }
        } finally {
            for (ChildNode node : cluster) {
                node.close();
            }
        }
    }

    /**
     * Until every node's appender has been connected for a second on end. With the original's fixed id the nodes push
     * each other out while they settle, and a pack in flight on a connection pushed out fails with onConnectionError,
     * which Kaa sends again (the join test below shows that); the packs of this test are appended once they settled.
     */
    private static void awaitSettled(List<ChildNode> cluster, String appender) {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        long settledSince = System.nanoTime();
        while (System.nanoTime() - settledSince < Duration.ofSeconds(1).toNanos()) {
            assertTrue(System.nanoTime() < deadline, "the nodes never stayed connected for a second");
            if (!cluster.stream().allMatch(n -> "true".equals(n.metric(appender, "Connected")))) {
                settledSince = System.nanoTime();
            }
            RecordingCallback.sleep(Duration.ofMillis(100));
        }
    }

    /**
     * A node joins a cluster whose first node has been connected for longer than the takeover window and is
     * publishing, with one fixed client id and clean session. The broker gives no reason (MQTT 3.1.1; Mosquitto
     * 2.0.11 sends none with MQTT 5 either), so the first node sees a lost connection and takes the id back at once,
     * and the newcomer, pushed out within moments of connecting, moves to an id of its own. Packs in flight on a
     * dropped connection fail with onConnectionError and, sent again as Kaa does, are delivered; the fight ends after
     * at most two takeovers of each node, which JMX counts: a close right after a publish counts only when the next
     * connection ends the same way (it may be a broker's silent refusal of that publish), so a node pushed out after
     * it published is pushed out twice.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("versions")
    void aNodeJoiningABusyClusterCostsEachPackAtMostTwoRetries(String version) {
        String clientId = "it-join-" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), "kaa/it/join/" + clientId, 1);
        cfg.put("clientId", clientId);
        cfg.put("mqttVersion", version);
        Schema schema = AvroReference.parse(TestData.schemaText(ChildNodeMain.TELEMETRY));
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), (String) cfg.get("mqtttopic"), 1);
                ChildNode first = ChildNode.start();
                ChildNode second = ChildNode.start()) {
            ChildNode[] nodes = {first, second};
            first.load("join", cfg);
            List<byte[]> expected = new ArrayList<>();
            Map<String, int[]> packs = new LinkedHashMap<>();
            int seed = 0;
            // The first node alone, then long enough that its connection is no longer young.
            for (; seed < 40; seed++) {
                first.append("join", "a" + seed, seed, RECORDS_PER_PACK);
                packs.put("a" + seed, new int[] {0, seed});
            }
            RecordingCallback.sleep(Duration.ofSeconds(4));
            // The first node keeps publishing while the second comes up.
            Thread busy = new Thread(() -> {
                for (int s = 40; s < 100; s++) {
                    first.append("join", "a" + s, s, RECORDS_PER_PACK);
                    RecordingCallback.sleep(Duration.ofMillis(10));
                }
            }, "first-node-appends");
            for (int s = 40; s < 100; s++) {
                packs.put("a" + s, new int[] {0, s});
            }
            busy.start();
            RecordingCallback.sleep(Duration.ofMillis(200));
            second.load("join", cfg);
            for (seed = 100; seed < 140; seed++) {
                second.append("join", "b" + seed, seed, RECORDS_PER_PACK);
                packs.put("b" + seed, new int[] {1, seed});
            }
            try {
                busy.join(60_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            for (int s = 0; s < seed; s++) {
                expected.addAll(AvroReference.expectedPayloads(schema, ChildNodeMain.records(s, RECORDS_PER_PACK)));
            }
            // Kaa sends a pack again when it was not confirmed; up to three attempts (two takeovers at most).
            int resent = 0;
            Map<String, ChildNode> appended = new LinkedHashMap<>();
            for (Map.Entry<String, int[]> p : packs.entrySet()) {
                ChildNode node = nodes[p.getValue()[0]];
                String label = p.getKey();
                for (int attempt = 1;; attempt++) {
                    String answer = node.awaitFirst(label, Duration.ofSeconds(60));
                    appended.put(label, node);
                    if (SUCCESS.equals(answer)) {
                        break;
                    }
                    assertEquals(RecordingCallback.CONNECTION_ERROR, answer, label);
                    assertTrue(attempt < 3, label + " failed " + attempt + " times");
                    resent++;
                    label = p.getKey() + "-again" + attempt;
                    node.append("join", label, p.getValue()[1], RECORDS_PER_PACK);
                }
            }
            sub.awaitCount(expected.size(), Duration.ofSeconds(30));
            RecordingCallback.sleep(Duration.ofMillis(500));
            // Exactly one answer each, a second one had time to show.
            appended.forEach((label, node) -> assertEquals(1, node.calls(label).size(), label + ": "
                    + node.calls(label)));
            Map<String, Integer> want = Payloads.counts(expected);
            Map<String, Integer> got = Payloads.counts(sub.payloads());
            assertEquals(want.keySet(), got.keySet(), "every record reached the subscriber");
            int duplicates = sub.payloads().size() - expected.size();
            assertTrue(duplicates <= resent * RECORDS_PER_PACK, duplicates + " duplicates from " + resent
                    + " packs sent again");

            List<String> takeovers = takeovers(clientId);
            long counted = Long.parseLong(first.metric("join", "Takeovers"))
                    + Long.parseLong(second.metric("join", "Takeovers"));
            System.out.println(version + ", a node joins a busy one: broker takeovers " + takeovers.size()
                    + ", counted in JMX " + counted + ", packs sent again " + resent + ", duplicates " + duplicates);
            assertTrue(takeovers.size() >= 1 && takeovers.size() <= 4, "takeovers " + takeovers);
            assertTrue(counted >= 1 && counted <= takeovers.size(), "JMX Takeovers " + counted + " for " + takeovers);
        }
    }

    static Stream<Arguments> persistentIds() {
        return Stream.of(Arguments.of("", "for example 'kaa-{hostname}'"),
                Arguments.of("-{hostname}", "give each node a host name of its own"));
    }

    static Stream<String> versions() {
        return Stream.of("MQTT_3_1_1", "MQTT_5");
    }

    /**
     * With cleanSession off the id names a session the broker keeps, so the appender must not change it: two nodes
     * with one such id log an ERROR naming the cause and the fix, and back off instead of pushing each other out ten
     * times a second (measured without the backoff: 33 takeovers in 2 s). With {hostname} in the id already (the
     * two child nodes share this machine's host name, as containers given one hostname do), the fix named is a host
     * name of each node's own, not the placeholder it has.
     */
    @ParameterizedTest
    @MethodSource("persistentIds")
    void persistentSessionsWithOneIdBackOffAndSaySo(String placeholder, String fix) {
        String clientId = "it-persistent-" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), "kaa/it/persistent/" + clientId, 1);
        cfg.put("clientId", clientId + placeholder);
        cfg.put("cleanSession", false);
        try (ChildNode first = ChildNode.start(); ChildNode second = ChildNode.start()) {
            first.load("persistent", cfg);
            second.load("persistent", cfg);
            RecordingCallback.sleep(Duration.ofSeconds(10));
            List<String> takeovers = takeovers(clientId);
            long counted = Long.parseLong(first.metric("persistent", "Takeovers"))
                    + Long.parseLong(second.metric("persistent", "Takeovers"));
            List<String> errors = new ArrayList<>(first.appenderLogLines("ERROR"));
            errors.addAll(second.appenderLogLines("ERROR"));
            System.out.println("cleanSession off, one id, 10 s: broker takeovers " + takeovers.size()
                    + ", counted in JMX " + counted + ", ERROR lines " + errors.size());
            assertTrue(takeovers.size() >= 1 && takeovers.size() <= 20, "takeovers in 10 s: " + takeovers.size());
            assertTrue(counted >= 1, "JMX Takeovers");
            assertTrue(!errors.isEmpty() && errors.size() <= 2, "one ERROR per node at most: " + errors);
            assertTrue(errors.get(0).contains("cleanSession off") && errors.get(0).contains(fix), errors.get(0));
            String id = Pattern.compile("as '([^']*)'").matcher(errors.get(0)).results().findFirst()
                    .map(r -> r.group(1)).orElse("");
            assertTrue(placeholder.isEmpty() ? id.equals(clientId) : id.matches(clientId + "-[^{}]+"),
                    "the id stays the configured one: " + id);
        }
    }

    /**
     * Editing an appender in the admin closes it and creates it again with the new configuration, at once. The new
     * connection must not reach the broker before the old one has said goodbye, or the broker drops one of them
     * (measured before: one pack in ten failed with onConnectionError in 300 cycles).
     */
    @Test
    void recreatingAnAppenderNeverPushesItsOwnConnectionOut() {
        String clientId = "it-recreate-" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), "kaa/it/recreate/" + clientId, 1);
        cfg.put("clientId", clientId);
        String logSchema = TestData.schemaText(ChildNodeMain.TELEMETRY);
        List<String> answers = new ArrayList<>();
        for (int cycle = 0; cycle < 300; cycle++) {
            LogAppender appender = KaaNode.load("recreate", KaaNode.config(cfg));
            try {
                if (cycle % 30 == 0) {
                    RecordingCallback cb = RecordingCallback.append(appender,
                            KaaNode.pack(logSchema, 1, ChildNodeMain.records(cycle, 5)), "cycle " + cycle);
                    answers.add(cb.awaitFirst(Duration.ofSeconds(30)).method);
                }
            } finally {
                appender.close();
            }
        }
        assertEquals(10, answers.size());
        assertTrue(answers.stream().allMatch(SUCCESS::equals), "every pack delivered: " + answers);
        assertEquals(List.of(), takeovers(clientId), "the broker never had two connections with one id");
    }

    /** The broker's takeover lines for client ids starting with this. */
    private static List<String> takeovers(String clientId) {
        List<String> found = new ArrayList<>();
        Matcher m = TAKEOVER.matcher(BROKER.broker().log());
        while (m.find()) {
            if (m.group(1).startsWith(clientId)) {
                found.add(m.group());
            }
        }
        return found;
    }
}

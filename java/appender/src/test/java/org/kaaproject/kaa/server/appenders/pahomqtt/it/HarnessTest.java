package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.eclipse.paho.client.mqttv3.MqttClient;
import org.eclipse.paho.client.mqttv3.MqttConnectOptions;
import org.eclipse.paho.client.mqttv3.MqttException;
import org.eclipse.paho.client.mqttv3.persist.MemoryPersistence;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Checks the test harness itself (broker process control, subscriber, Avro reference), with no appender involved,
 * so that an end-to-end failure can be trusted to be the appender's.
 */
class HarnessTest {

    private static boolean accepts(int port) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 500);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static void publish(int port, String topic, int qos, List<byte[]> payloads, String user, String pw)
            throws MqttException {
        MqttClient c = new MqttClient("tcp://127.0.0.1:" + port, "it-pub-" + UUID.randomUUID(), new MemoryPersistence());
        try {
            MqttConnectOptions o = new MqttConnectOptions();
            o.setMaxInflight(1000);
            if (user != null) {
                o.setUserName(user);
                o.setPassword(pw.toCharArray());
            }
            c.connect(o);
            for (byte[] p : payloads) {
                c.publish(topic, p, qos, false);
            }
            c.disconnect(5000);
        } finally {
            c.close();
        }
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void brokerStartsKillsAndRestartsOnTheSamePort() throws Exception {
        try (Mosquitto m = Mosquitto.anonymous()) {
            m.start();
            int port = m.port();
            assertTrue(m.isRunning() && accepts(port));
            String topic = "kaa/it/harness/" + UUID.randomUUID();
            try (Subscriber sub = Subscriber.subscribe(port, topic, 1)) {
                publish(port, topic, 1, List.of("one".getBytes(StandardCharsets.UTF_8)), null, null);
                assertEquals(1, sub.awaitCount(1, Duration.ofSeconds(10)).size());
            }
            m.kill();
            assertFalse(m.isRunning());
            assertFalse(accepts(port), "nothing listens after kill()");
            m.restart();
            assertEquals(port, m.port());
            assertTrue(accepts(port), "listening again on the same port");
            m.stop();
            assertFalse(accepts(port), "nothing listens after stop()");
            m.start();
            assertTrue(accepts(port));
        }
        assertTrue(Mosquitto.liveProcesses().isEmpty(), "close() leaves no broker process behind");
    }

    /** The broker must not drop messages for a subscriber that is briefly behind (max_queued_messages). */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void subscriberGetsEveryMessageOfABurst() throws Exception {
        try (Mosquitto m = Mosquitto.startAnonymous()) {
            for (int qos = 0; qos <= 2; qos++) {
                String topic = "kaa/it/harness/burst" + qos;
                List<byte[]> payloads = new ArrayList<>();
                for (int i = 0; i < 3000; i++) {
                    payloads.add(("{\"id\":\"" + i + "\",\"pad\":\"" + "x".repeat(200) + "\"}")
                            .getBytes(StandardCharsets.UTF_8));
                }
                try (Subscriber sub = Subscriber.subscribe(m.port(), topic, qos)) {
                    publish(m.port(), topic, qos, payloads, null, null);
                    sub.awaitCount(payloads.size(), Duration.ofSeconds(20));
                    Thread.sleep(200);
                    Payloads.assertSameMultiset("harness burst qos " + qos, payloads, sub.payloads());
                }
            }
        }
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void passwordBrokerAcceptsOnlyItsUser() throws Exception {
        try (Mosquitto m = Mosquitto.withCredentials("u1", "p w")) {
            m.start();
            String topic = "kaa/it/harness/auth";
            try (Subscriber sub = Subscriber.subscribe(m.port(), topic, 1, "u1", "p w")) {
                publish(m.port(), topic, 1, List.of(new byte[] {1}), "u1", "p w");
                assertEquals(1, sub.awaitCount(1, Duration.ofSeconds(10)).size());
            }
            MqttException e = assertThrows(MqttException.class,
                    () -> publish(m.port(), topic, 1, List.of(new byte[] {1}), "u1", "bad"));
            // MQTT 3.1.1 CONNACK 4 (bad user name or password) or 5 (not authorised): Mosquitto answers 5
            assertTrue(e.getReasonCode() == MqttException.REASON_CODE_FAILED_AUTHENTICATION
                    || e.getReasonCode() == MqttException.REASON_CODE_NOT_AUTHORIZED, e.toString());
        }
    }

    /** The reference is Avro 1.7.5's Avro-JSON: unions wrapped by branch name, bytes as ISO-8859-1 code points. */
    @Test
    void avroReferenceWritesAvroJson() throws Exception {
        Schema schema = AvroReference.parse(TestData.schemaText("simple.avsc"));
        GenericRecord r = new GenericData.Record(schema);
        r.put("id", "x\"é");
        r.put("level", new GenericData.EnumSymbol(schema.getField("level").schema(), "B"));
        r.put("note", "n");
        r.put("value", -3);
        byte[] bin = AvroReference.binary(schema, r);
        assertEquals("{\"id\":\"x\\\"é\",\"level\":\"B\",\"note\":{\"string\":\"n\"},\"value\":-3}",
                new String(AvroReference.kaaJson(schema, bin), StandardCharsets.UTF_8));
        r.put("note", null);
        assertEquals("{\"id\":\"x\\\"é\",\"level\":\"B\",\"note\":null,\"value\":-3}",
                new String(AvroReference.kaaJson(schema, AvroReference.binary(schema, r)), StandardCharsets.UTF_8));

        Schema tel = AvroReference.parse(TestData.schemaText("telemetry.avsc"));
        GenericRecord t = TestData.telemetry(tel, new java.util.Random(1), "t", 1);
        t.put("blob", ByteBuffer.wrap(new byte[] {0, (byte) 0xe9, 0x41}));
        t.put("counters", Map.of());
        String json = new String(AvroReference.kaaJson(tel, AvroReference.binary(tel, t)), StandardCharsets.UTF_8);
        assertTrue(json.endsWith("\"counters\":{},\"samples\":" + json.substring(json.indexOf("\"samples\":") + 10,
                json.indexOf(",\"blob\"")) + ",\"blob\":\"\\u0000éA\"}"), json);

        Schema empty = AvroReference.parse(TestData.schemaText("empty.avsc"));
        byte[] none = AvroReference.binary(empty, new GenericData.Record(empty));
        assertArrayEquals(new byte[0], AvroReference.kaaJson(empty, none));
        assertArrayEquals("{}".getBytes(StandardCharsets.UTF_8), AvroReference.expectedPayload(empty, none));
    }

    @Test
    void defaultConfigHasEveryFormDefault() throws Exception {
        Schema schema = KaaNode.configSchema();
        GenericRecord rec = AvroReference.decode(schema, KaaNode.config(Map.of("port", 1234)));
        assertEquals("localhost", rec.get("host").toString());
        assertEquals(1234, rec.get("port"));
        assertEquals(null, rec.get("username"));
        assertEquals("home/kaa/topic", rec.get("mqtttopic").toString());
    }
}

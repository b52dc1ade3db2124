package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericRecord;
import org.codehaus.jackson.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * Appender records stored by the ORIGINAL PahoMQTT appender keep working in the node: their raw configuration is
 * the Avro binary of the original's nine-field record (schemas/original-PahoMqttConfig.avsc, checked here against
 * the documented record), their type name is the original's label "PahoMQTT", and their appender class name the
 * original's, which is now the legacy plugin's ({@link KaaNode#LEGACY_APPENDER_CLASS}). The node builds the appender
 * from such a record by class name; it must start, publish to the configured topic at the configured QoS (above 2
 * meaning 2, the original form's default being 3), and confirm. What the admin does with those records:
 * {@link AdminUpgradeTest}.
 */
class OriginalConfigTest {

    private static final Duration GRACE = Duration.ofMillis(500);

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    /**
     * The test resource is the record the API notes describe (field order, types, union branch order and form
     * defaults), so the bytes below are the bytes the original stored: the union's branch order decides the
     * index written for a null username.
     */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void originalSchemaResourceIsTheDocumentedRecord() {
        Schema s = OriginalAppender.schema();
        assertEquals("org.kaaproject.kaa.server.appenders.pahomqtt.config.gen.PahoMqttConfig", s.getFullName());
        String[][] fields = {{"host", "\"string\"", "\"localhost\""}, {"port", "\"int\"", "1883"},
            {"ssl", "\"boolean\"", "false"}, {"verifySslCert", "\"boolean\"", "false"},
            {"username", "[\"string\",\"null\"]", null}, {"password", "[\"string\",\"null\"]", null},
            {"qos", "\"int\"", "3"}, {"clientId", "\"string\"", "\"DefaultClient-ID\""},
            {"mqtttopic", "\"string\"", "\"home/kaa/topic\""}};
        assertEquals(fields.length, s.getFields().size(), "nine fields");
        for (int i = 0; i < fields.length; i++) {
            Schema.Field f = s.getFields().get(i);
            assertEquals(fields[i][0], f.name(), "field " + i);
            assertEquals(fields[i][1], f.schema().toString(), "type of " + f.name());
            JsonNode d = f.getJsonProp("by_default");
            assertEquals(fields[i][2], d == null ? null : d.toString(), "form default of " + f.name());
        }
        assertEquals("password", s.getField("password").getProp("inputType"));
        // A null username/password is union branch 1 of ["string","null"]: these are the bytes the original stored.
        byte[] expected = AvroBinary.start().writeString("localhost").writeInt(1883).writeBoolean(false)
                .writeBoolean(false).writeInt(1).writeInt(1).writeInt(3).writeString("DefaultClient-ID")
                .writeString("home/kaa/topic").bytes();
        assertArrayEquals(expected, AvroReference.binary(s, OriginalAppender.record()));
    }

    static Stream<Arguments> storedConfigurations() {
        String unique = UUID.randomUUID().toString().substring(0, 8);
        return Stream.of(
                // Everything as the original form left it, only the port moved to the test broker.
                Arguments.of("the original form's defaults (localhost, qos 3, no credentials, DefaultClient-ID, "
                        + "home/kaa/topic)", null, null, null, 3, 2),
                Arguments.of("qos 0", "127.0.0.1", "legacy-q0-" + unique, "kaa/it/legacy/q0/" + unique, 0, 0),
                Arguments.of("qos 1", "127.0.0.1", "legacy-q1-" + unique, "kaa/it/legacy/q1/" + unique, 1, 1),
                Arguments.of("qos 2", "127.0.0.1", "legacy-q2-" + unique, "kaa/it/legacy/q2/" + unique, 2, 2),
                Arguments.of("qos 100", "127.0.0.1", "legacy-q100-" + unique, "kaa/it/legacy/q100/" + unique, 100, 2));
    }

    /**
     * The stored bytes are a record of the legacy plugin's schema, and NOT of the full plugin's (its added fields are
     * missing); the appender built from them by the original's class name starts, publishes every record to the
     * stored topic at the stored QoS (capped at 2) byte for byte as Kaa encodes it, not retained, and confirms the
     * pack once.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("storedConfigurations")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void configurationStoredByTheOriginalAppenderStillWorks(String label, String host, String clientId, String topic,
            int storedQos, int publishedQos) {
        GenericRecord cfg = OriginalAppender.record("port", BROKER.port());
        if (host != null) {
            cfg.put("host", host);
            cfg.put("clientId", clientId);
            cfg.put("mqtttopic", topic);
        }
        cfg.put("qos", storedQos);
        String expectedTopic = cfg.get("mqtttopic").toString();
        byte[] raw = AvroReference.binary(OriginalAppender.schema(), cfg);
        assertFalse(AvroReference.undecodable(KaaNode.configSchema(KaaNode.LEGACY_CONFIG_CLASS), raw),
                "the stored bytes are a record of the legacy plugin's schema");
        assertTrue(AvroReference.undecodable(KaaNode.configSchema(), raw),
                "the stored bytes are not a record of the full plugin's schema (the node reads them all the same)");

        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        List<byte[]> bins = TestData.telemetryBinaries(schema, new Random(storedQos), 12,
                i -> "legacy-q" + storedQos + "-r" + i);
        List<byte[]> expected = AvroReference.expectedPayloads(schema, bins);
        // Subscribed at QoS 2, the subscriber gets each message at the QoS it was published with.
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), expectedTopic, 2)) {
            LogAppender appender = BROKER.load(OriginalAppender.stored("legacy-" + storedQos, raw));
            RecordingCallback cb = new RecordingCallback(label);
            cb.appendStarting();
            appender.doAppend(KaaNode.pack(logSchema, 1, bins), cb);
            cb.appendReturned();
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(30), GRACE);
            sub.awaitCount(bins.size(), Duration.ofSeconds(10));
            RecordingCallback.sleep(GRACE);
            assertNull(sub.connectionLost(), "the test subscriber lost its connection");
            for (Subscriber.Received m : sub.messages()) {
                assertEquals(expectedTopic, m.topic, "topic");
                assertEquals(publishedQos, m.qos, label + ": stored qos " + storedQos + " publishes at QoS "
                        + publishedQos);
                assertFalse(m.retained, "not retained");
            }
            Payloads.assertSameMultiset(label, expected, sub.payloads());
        }
    }

    /**
     * The original never used TLS (its {@code ssl} was a to-do), so an appender it stored with {@code ssl} ticked has
     * always published in plain text to a plain listener: after the upgrade it still does, and is confirmed.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void anSslTickTheOriginalNeverHonouredKeepsPublishingInPlainText() {
        String topic = "kaa/it/legacy/ssl/" + UUID.randomUUID().toString().substring(0, 8);
        byte[] raw = AvroReference.binary(OriginalAppender.schema(), OriginalAppender.record("host", "127.0.0.1",
                "port", BROKER.port(), "ssl", true, "verifySslCert", true, "qos", 1, "clientId",
                "legacy-ssl-" + UUID.randomUUID().toString().substring(0, 8), "mqtttopic", topic));
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        List<byte[]> bins = TestData.telemetryBinaries(schema, new Random(7), 5, i -> "legacy-ssl-r" + i);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            LogAppender appender = BROKER.load(OriginalAppender.stored("legacy-ssl", raw));
            RecordingCallback cb = new RecordingCallback("ssl ticked in the original's record");
            appender.doAppend(KaaNode.pack(logSchema, 1, bins), cb);
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(30), GRACE);
            sub.awaitCount(bins.size(), Duration.ofSeconds(10));
            Payloads.assertSameMultiset("plain text, as before", AvroReference.expectedPayloads(schema, bins),
                    sub.payloads());
        }
    }

    /**
     * The original used its topic and client id literally, and MQTT allows braces in both: a record it stored with
     * a brace that is none of our placeholders still publishes to exactly that topic, connecting with exactly that
     * client id (where our newer types would refuse such a placeholder as a typo).
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void bracesTheOriginalTookLiterallyStayInTheTopicAndClientId() {
        String topic = "plant/{line}/logs";
        String clientId = "kaa-{node-7}";
        byte[] raw = OriginalAppender.bytes("host", "127.0.0.1", "port", BROKER.port(), "qos", 1, "clientId",
                clientId, "mqtttopic", topic);
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        List<byte[]> bins = TestData.telemetryBinaries(schema, new Random(11), 3, i -> "legacy-braces-r" + i);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            LogAppender appender = BROKER.load(OriginalAppender.stored("legacy-braces", raw));
            RecordingCallback cb = new RecordingCallback("braces in the original's topic and client id");
            appender.doAppend(KaaNode.pack(logSchema, 1, bins), cb);
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(30), GRACE);
            sub.awaitCount(bins.size(), Duration.ofSeconds(10));
            for (Subscriber.Received m : sub.messages()) {
                assertEquals(topic, m.topic, "the topic as the original published it");
            }
            Payloads.assertSameMultiset("literal topic", AvroReference.expectedPayloads(schema, bins),
                    sub.payloads());
            BROKER.broker().assertConnectedOnce(clientId);
        }
    }

    /** A stored configuration with credentials (union branch 0 for username and password) against a broker that
     *  requires them. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void storedCredentialsAreUsed() {
        String user = "kaa-legacy";
        String password = "p\u00e4ss w\u00f6rd";
        try (Mosquitto secured = Mosquitto.withCredentials(user, password)) {
            secured.start();
            String topic = "kaa/it/legacy/auth/" + UUID.randomUUID().toString().substring(0, 8);
            byte[] raw = AvroReference.binary(OriginalAppender.schema(), OriginalAppender.record("host", "127.0.0.1", "port",
                    secured.port(), "username", user, "password", password, "qos", 1, "clientId",
                    "legacy-auth-" + UUID.randomUUID().toString().substring(0, 8), "mqtttopic", topic));
            String logSchema = TestData.schemaText("telemetry.avsc");
            Schema schema = AvroReference.parse(logSchema);
            List<byte[]> bins = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                bins.add(AvroReference.binary(schema, TestData.telemetry(schema, new Random(i), "legacy-auth-r" + i,
                        i)));
            }
            List<byte[]> expected = AvroReference.expectedPayloads(schema, bins);
            try (Subscriber sub = Subscriber.subscribe(secured.port(), topic, 1, user, password)) {
                LogAppender appender = BROKER.load(OriginalAppender.stored("legacy-auth", raw));
                RecordingCallback cb = new RecordingCallback("pack with stored credentials");
                appender.doAppend(KaaNode.pack(logSchema, 1, bins), cb);
                cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(30), GRACE);
                sub.awaitCount(bins.size(), Duration.ofSeconds(10));
                RecordingCallback.sleep(GRACE);
                Payloads.assertSameMultiset("stored credentials", expected, sub.payloads());
            }
            // Before the broker it talks to goes away.
            BROKER.closeAppenders();
        }
    }
}

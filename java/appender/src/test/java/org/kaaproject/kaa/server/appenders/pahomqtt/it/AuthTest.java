package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.REMOTE_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.avro.Schema;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/** A broker that requires a user name and password (password file made with mosquitto_passwd). */
class AuthTest {

    private static final String USER = "kaa-node";
    private static final String PASSWORD = "s3cret pass-word";

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.withCredentials(USER, PASSWORD);

    private static List<byte[]> records(Schema schema, int n) {
        return TestData.telemetryBinaries(schema, new Random(n), n, i -> "auth-" + UUID.randomUUID());
    }

    private static RecordingCallback append(LogAppender a, String logSchema, List<byte[]> recs, String label) {
        return RecordingCallback.append(a, KaaNode.pack(logSchema, 1, recs), label);
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void rightCredentialsDeliver() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = "kaa/it/auth/" + UUID.randomUUID();
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        cfg.put("username", USER);
        cfg.put("password", PASSWORD);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1, USER, PASSWORD)) {
            LogAppender a = BROKER.load("auth-ok", cfg);
            List<byte[]> recs = records(schema, 5);
            RecordingCallback cb = append(a, logSchema, recs, "pack with the right password");
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ofMillis(500));
            sub.awaitCount(recs.size(), Duration.ofSeconds(10));
            Payloads.assertSameMultiset("authenticated", AvroReference.expectedPayloads(schema, recs), sub.payloads());
        }
    }

    /** Design: the broker refusing the connection (not authorised) is a remote error, not a connection error. */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void wrongPasswordIsARemoteError() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), "kaa/it/auth/" + UUID.randomUUID(), 1);
        cfg.put("username", USER);
        cfg.put("password", "wrong");
        cfg.put("deliveryTimeoutSeconds", 3);
        LogAppender a = BROKER.load("auth-wrong", cfg);
        RecordingCallback cb = append(a, logSchema, records(schema, 3), "pack with a wrong password");
        cb.assertExactlyOne(REMOTE_ERROR, Duration.ofSeconds(3 + 8), Duration.ofSeconds(1));
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void noCredentialsIsARemoteError() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), "kaa/it/auth/" + UUID.randomUUID(), 1);
        cfg.put("deliveryTimeoutSeconds", 3);
        LogAppender a = BROKER.load("auth-none", cfg);
        RecordingCallback cb = append(a, logSchema, records(schema, 3), "pack without credentials");
        cb.assertExactlyOne(REMOTE_ERROR, Duration.ofSeconds(3 + 8), Duration.ofSeconds(1));
    }

    /**
     * The node's log names the broker's refusal as the MQTT specification does, code and words, which is what the
     * broker's own log and documentation say: not as the MQTT client's Rust types print it ("NotAuthorized").
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"MQTT_3_1_1, 'return code 5, not authorized'", "MQTT_5, 'reason 0x87, not authorized'"})
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aRefusalIsLoggedInTheSpecificationsWords(String version, String said) {
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), "kaa/it/auth/" + UUID.randomUUID(), 1);
        cfg.put("username", USER);
        cfg.put("password", "wrong");
        cfg.put("mqttVersion", version);
        cfg.put("deliveryTimeoutSeconds", 3);
        try (ChildNode node = ChildNode.start()) {
            node.load("refused", cfg);
            node.append("refused", "p", 1, 3);
            node.assertExactlyOne("p", REMOTE_ERROR, Duration.ofSeconds(3 + 8), Duration.ZERO);
            List<String> lines = node.appenderLogLines("WARN|ERROR");
            assertTrue(lines.stream().anyMatch(l -> l.endsWith("refused the connection: " + said)),
                    "the refusal in the specification's words\n" + node.diagnostics());
        }
    }
}

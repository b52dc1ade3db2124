package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.REMOTE_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/** A broker that requires a user name and password (password file made with mosquitto_passwd). */
class AuthTest {

    private static final String USER = "kaa-node";
    private static final String PASSWORD = "s3cret pass-word";

    private static Mosquitto broker;
    private final List<LogAppender> appenders = new ArrayList<>();

    @BeforeAll
    static void start() {
        broker = Mosquitto.withCredentials(USER, PASSWORD);
        broker.start();
    }

    @AfterAll
    static void stop() {
        if (broker != null) {
            broker.close();
        }
    }

    @AfterEach
    void closeAppenders() {
        for (LogAppender a : appenders) {
            try {
                a.close();
            } catch (RuntimeException e) {
                System.err.println("close() threw: " + e);
            }
        }
        appenders.clear();
    }

    private LogAppender load(String name, Map<String, Object> cfg) {
        LogAppender a = assertDoesNotThrow(() -> KaaNode.load(name, KaaNode.config(cfg)), "init");
        appenders.add(a);
        return a;
    }

    private static List<byte[]> records(Schema schema, int n) {
        List<byte[]> out = new ArrayList<>();
        Random rnd = new Random(n);
        for (int i = 0; i < n; i++) {
            GenericRecord r = TestData.telemetry(schema, rnd, "auth-" + UUID.randomUUID(), i);
            out.add(AvroReference.binary(schema, r));
        }
        return out;
    }

    private static RecordingCallback append(LogAppender a, String logSchema, List<byte[]> recs, String label) {
        RecordingCallback cb = new RecordingCallback(label);
        cb.appendStarting();
        assertDoesNotThrow(() -> a.doAppend(KaaNode.pack(logSchema, 1, recs), cb), label + ": doAppend threw");
        cb.appendReturned();
        return cb;
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void rightCredentialsDeliver() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = "kaa/it/auth/" + UUID.randomUUID();
        Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), topic, 1);
        cfg.put("username", USER);
        cfg.put("password", PASSWORD);
        try (Subscriber sub = Subscriber.subscribe(broker.port(), topic, 1, USER, PASSWORD)) {
            LogAppender a = load("auth-ok", cfg);
            List<byte[]> recs = records(schema, 5);
            RecordingCallback cb = append(a, logSchema, recs, "pack with the right password");
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(20), Duration.ofMillis(500));
            sub.awaitCount(recs.size(), Duration.ofSeconds(10));
            List<byte[]> expected = new ArrayList<>();
            for (byte[] r : recs) {
                expected.add(AvroReference.expectedPayload(schema, r));
            }
            Payloads.assertSameMultiset("authenticated", expected, sub.payloads());
        }
    }

    /** Design: the broker refusing the connection (not authorised) is a remote error, not a connection error. */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void wrongPasswordIsARemoteError() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), "kaa/it/auth/" + UUID.randomUUID(), 1);
        cfg.put("username", USER);
        cfg.put("password", "wrong");
        cfg.put("deliveryTimeoutSeconds", 3);
        LogAppender a = load("auth-wrong", cfg);
        RecordingCallback cb = append(a, logSchema, records(schema, 3), "pack with a wrong password");
        cb.assertExactlyOne(REMOTE_ERROR, Duration.ofSeconds(3 + 8), Duration.ofSeconds(1));
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void noCredentialsIsARemoteError() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        Map<String, Object> cfg = KaaNode.brokerConfig(broker.port(), "kaa/it/auth/" + UUID.randomUUID(), 1);
        cfg.put("deliveryTimeoutSeconds", 3);
        LogAppender a = load("auth-none", cfg);
        RecordingCallback cb = append(a, logSchema, records(schema, 3), "pack without credentials");
        cb.assertExactlyOne(REMOTE_ERROR, Duration.ofSeconds(3 + 8), Duration.ofSeconds(1));
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.append;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.avro.Schema;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * A real Mosquitto behind a slow link ({@link SlowLink}: the appender's bytes cross at 1.3 MB/s, the broker's acks at
 * once): a healthy broker, a connection that must stay up.
 */
class SlowLinkTest {

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    /**
     * Large records queue seconds of writing ahead of each keep-alive ping, longer than the keep-alive period, while
     * the broker acknowledges every record as it reads it. The acks prove the link alive: every pack is delivered
     * over the one connection. (Before: the MQTT client failed the connection for a ping whose answer could not yet
     * have come, "Last pingreq isn't acked", every keep-alive or two, and with it every pack in flight; Kaa sent them
     * again, which queued the same writing again.)
     */
    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void acksKeepAConnectionAliveWhileItsPingWaitsBehindLargeRecords() {
        String logSchema = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(logSchema);
        String topic = "kaa/it/slow-link/" + UUID.randomUUID();
        try (SlowLink link = SlowLink.to(BROKER.port());
                Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Map<String, Object> cfg = KaaNode.brokerConfig(link.port(), topic, 1);
            cfg.put("keepAliveSeconds", 2);
            cfg.put("connectTimeoutSeconds", 2);
            cfg.put("deliveryTimeoutSeconds", 60);
            LogAppender appender = BROKER.load("slow-link", cfg);
            Random rnd = new Random(17);
            List<RecordingCallback> packs = new ArrayList<>();
            // 40 records of 200 KB: 8 MB, six seconds of the link.
            for (int p = 0; p < 40; p++) {
                packs.add(append(appender, KaaNode.pack(logSchema, 1,
                        List.of(TestData.telemetryWithNote(schema, rnd, "slow-" + p, p, 200_000))), "pack " + p));
            }
            for (RecordingCallback pack : packs) {
                pack.assertExactlyOne(SUCCESS, Duration.ofSeconds(60), Duration.ZERO);
            }
            sub.assertCount(packs.size(), Duration.ofSeconds(20));
            assertEquals(1, link.accepted(), "connections the appender made through the link");
        }
    }
}

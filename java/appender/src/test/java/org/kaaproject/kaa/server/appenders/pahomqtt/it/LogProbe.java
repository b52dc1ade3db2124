package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.avro.Schema;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;

/**
 * Run in a child JVM by {@link OperabilityTest}, so that its whole log output can be read: an appender with
 * credentials and a one-second summary interval appends packs for a few seconds, then closes.
 * Arguments: port, username, password.
 */
public final class LogProbe {

    private LogProbe() {
    }

    public static void main(String[] args) throws Exception {
        Map<String, Object> cfg = KaaNode.brokerConfig(Integer.parseInt(args[0]), "probe/logs", 1);
        cfg.put("username", args[1]);
        cfg.put("password", args[2]);
        cfg.put("statsIntervalSeconds", 1);
        String schemaText = TestData.schemaText("telemetry.avsc");
        Schema schema = AvroReference.parse(schemaText);
        Random rnd = new Random(1);
        LogAppender appender = KaaNode.load("probe", KaaNode.config(cfg));
        long end = System.currentTimeMillis() + 3500;
        int packs = 0;
        while (System.currentTimeMillis() < end) {
            List<byte[]> records = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                records.add(AvroReference.binary(schema, TestData.telemetry(schema, rnd, "probe-" + packs, i)));
            }
            CountDownLatch answered = new CountDownLatch(1);
            appender.doAppend(KaaNode.pack(schemaText, 1, records), new LogDeliveryCallback() {
                @Override
                public void onSuccess() {
                    answered.countDown();
                }

                @Override
                public void onInternalError() {
                    answered.countDown();
                }

                @Override
                public void onConnectionError() {
                    answered.countDown();
                }

                @Override
                public void onRemoteError() {
                    answered.countDown();
                }
            });
            answered.await(10, TimeUnit.SECONDS);
            packs++;
            Thread.sleep(50);
        }
        appender.close();
        System.out.println("probe done: " + packs + " packs");
    }
}

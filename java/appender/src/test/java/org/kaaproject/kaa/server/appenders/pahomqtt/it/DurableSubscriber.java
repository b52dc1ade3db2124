package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

import org.eclipse.paho.client.mqttv3.IMqttDeliveryToken;
import org.eclipse.paho.client.mqttv3.MqttCallback;
import org.eclipse.paho.client.mqttv3.MqttClient;
import org.eclipse.paho.client.mqttv3.MqttConnectOptions;
import org.eclipse.paho.client.mqttv3.MqttException;
import org.eclipse.paho.client.mqttv3.MqttMessage;
import org.eclipse.paho.client.mqttv3.persist.MemoryPersistence;

/**
 * A subscriber (Eclipse Paho) that outlives broker restarts: a fixed client id with clean session off, so a
 * broker that kept its state would hand over what was queued while it was away; and {@link #reconnect} for a
 * broker that did not (a restarted Mosquitto with persistence off knows neither the session nor the subscription,
 * so the subscription is made again). It remembers every distinct payload it received, across connections, and
 * serves as the {@link GatedProxy.Witness} of what reached a subscriber. Thread-safe; every wait is bounded.
 */
public final class DurableSubscriber implements AutoCloseable, GatedProxy.Witness {

    private final String serverUri;
    private final String clientId;
    private final MqttConnectOptions options;
    private final MqttCallback callback;
    private volatile MqttClient client;
    private final String topic;
    private final int qos;
    /** Payloads as ISO-8859-1 strings (one char per byte): distinct payloads received so far. */
    private final Set<String> seen = new HashSet<>();
    private final AtomicLong messages = new AtomicLong();
    private final AtomicInteger connectionsLost = new AtomicInteger();

    private DurableSubscriber(int port, String topic, int qos) throws MqttException {
        this.topic = topic;
        this.qos = qos;
        this.serverUri = "tcp://127.0.0.1:" + port;
        this.clientId = "it-durable-" + UUID.randomUUID().toString().substring(0, 8);
        this.callback = new MqttCallback() {
            @Override
            public void connectionLost(Throwable cause) {
                connectionsLost.incrementAndGet();
            }

            @Override
            public void messageArrived(String t, MqttMessage message) {
                String key = new String(message.getPayload(), StandardCharsets.ISO_8859_1);
                messages.incrementAndGet();
                synchronized (seen) {
                    seen.add(key);
                    seen.notifyAll();
                }
            }

            @Override
            public void deliveryComplete(IMqttDeliveryToken token) {
            }
        };
        options = new MqttConnectOptions();
        options.setCleanSession(false);
        options.setAutomaticReconnect(false);
        options.setConnectionTimeout(10);
        options.setKeepAliveInterval(30);
        options.setMqttVersion(MqttConnectOptions.MQTT_VERSION_3_1_1);
        MqttClient c = newClient();
        try {
            c.connect(options);
            c.subscribe(topic, qos);
        } catch (MqttException e) {
            discard(c);
            throw e;
        }
        client = c;
    }

    /** A Paho client object for our client id; a new one for every connection (see {@link #reconnect}). */
    private MqttClient newClient() throws MqttException {
        MqttClient c = new MqttClient(serverUri, clientId, new MemoryPersistence());
        c.setTimeToWait(5_000);
        c.setCallback(callback);
        return c;
    }

    private static void discard(MqttClient c) {
        try {
            c.disconnectForcibly(0, 500);
        } catch (MqttException | RuntimeException e) {
            // it is dead anyway
        }
        try {
            c.close(true);
        } catch (MqttException | RuntimeException e) {
            // ignore
        }
    }

    /** Connects (clean session off) and subscribes; returns after the SUBACK. */
    public static DurableSubscriber connect(int port, String topic, int qos) {
        try {
            return new DurableSubscriber(port, topic, qos);
        } catch (MqttException e) {
            throw new IllegalStateException("subscriber could not connect/subscribe to " + topic + " on port " + port
                    + ": " + e, e);
        }
    }

    /**
     * After the broker restarted: connects again with the same client id (clean session off) and subscribes again,
     * returning after the SUBACK, so nothing published from then on can be missed. First gives the old connection
     * a moment to notice the broker's death and hand over what it had already received (Paho notices only when its
     * receiver thread reads the end of the stream, late when it is behind on a backlog). Each attempt uses a new
     * Paho client object with the same id: one whose connect timed out can stay "connecting" for good (32110).
     * At most {@code timeout} in all.
     */
    public void reconnect(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        long noticeBy = System.nanoTime() + Math.min(timeout.toNanos() / 4, Duration.ofSeconds(2).toNanos());
        MqttClient old = client;
        while (old.isConnected() && System.nanoTime() < noticeBy) {
            RecordingCallback.sleep(Duration.ofMillis(10));
        }
        discard(old);
        Exception last = null;
        while (System.nanoTime() < deadline) {
            MqttClient c = null;
            try {
                c = newClient();
                c.connect(options);
                c.subscribe(topic, qos);
                client = c;
                return;
            } catch (MqttException e) {
                last = e;
                if (c != null) {
                    discard(c);
                }
                RecordingCallback.sleep(Duration.ofMillis(100));
            }
        }
        throw new IllegalStateException("subscriber could not reconnect within " + timeout + ": " + last, last);
    }

    public boolean isConnected() {
        return client.isConnected();
    }

    /** Whether this payload has been received (on any connection). */
    @Override
    public boolean has(byte[] payload) {
        String key = new String(payload, StandardCharsets.ISO_8859_1);
        synchronized (seen) {
            return seen.contains(key);
        }
    }

    /**
     * Waits until the payload has been received, {@code giveUp} says to stop waiting (checked at least every 20 ms),
     * or the deadline passed. Returns whether it was received.
     */
    @Override
    public boolean await(byte[] payload, long deadlineNanos, BooleanSupplier giveUp) {
        String key = new String(payload, StandardCharsets.ISO_8859_1);
        synchronized (seen) {
            while (!seen.contains(key)) {
                long left = deadlineNanos - System.nanoTime();
                if (left <= 0 || giveUp.getAsBoolean()) {
                    return false;
                }
                try {
                    seen.wait(Math.max(1, Math.min(20, left / 1_000_000)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
            return true;
        }
    }

    /** A copy of the distinct payloads received, as ISO-8859-1 strings. */
    public Set<String> payloadKeys() {
        synchronized (seen) {
            return new HashSet<>(seen);
        }
    }

    /** Messages received, duplicates included. */
    public long messages() {
        return messages.get();
    }

    public int connectionsLost() {
        return connectionsLost.get();
    }

    @Override
    public void close() {
        MqttClient c = client;
        try {
            if (c.isConnected()) {
                c.disconnect(2_000);
            }
        } catch (MqttException e) {
            // best effort
        }
        discard(c);
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.eclipse.paho.client.mqttv3.IMqttDeliveryToken;
import org.eclipse.paho.client.mqttv3.MqttCallback;
import org.eclipse.paho.client.mqttv3.MqttClient;
import org.eclipse.paho.client.mqttv3.MqttConnectOptions;
import org.eclipse.paho.client.mqttv3.MqttException;
import org.eclipse.paho.client.mqttv3.MqttMessage;
import org.eclipse.paho.client.mqttv3.persist.MemoryPersistence;

/**
 * A real MQTT subscriber (Eclipse Paho, the client the original appender used) that collects every message on
 * one topic. Thread-safe; every wait is bounded.
 */
public final class Subscriber implements AutoCloseable {

    /** One received message. */
    public static final class Received {
        public final String topic;
        public final byte[] payload;
        public final int qos;
        public final boolean retained;
        public final boolean duplicate;

        Received(String topic, MqttMessage m) {
            this.topic = topic;
            this.payload = m.getPayload();
            this.qos = m.getQos();
            this.retained = m.isRetained();
            this.duplicate = m.isDuplicate();
        }
    }

    private final MqttClient client;
    private final String topic;
    private final List<Received> messages = new ArrayList<>();
    private volatile Throwable connectionLost;

    private Subscriber(int port, String topic, int qos, String username, String password) throws MqttException {
        this.topic = topic;
        this.client = new MqttClient("tcp://127.0.0.1:" + port, "it-sub-" + UUID.randomUUID(), new MemoryPersistence());
        client.setTimeToWait(10_000);
        client.setCallback(new MqttCallback() {
            @Override
            public void connectionLost(Throwable cause) {
                connectionLost = cause;
            }

            @Override
            public void messageArrived(String t, MqttMessage message) {
                Received r = new Received(t, message);
                synchronized (messages) {
                    messages.add(r);
                    messages.notifyAll();
                }
            }

            @Override
            public void deliveryComplete(IMqttDeliveryToken token) {
            }
        });
        MqttConnectOptions o = new MqttConnectOptions();
        o.setCleanSession(true);
        o.setAutomaticReconnect(false);
        o.setConnectionTimeout(10);
        o.setKeepAliveInterval(30);
        o.setMqttVersion(MqttConnectOptions.MQTT_VERSION_3_1_1);
        if (username != null) {
            o.setUserName(username);
            o.setPassword(password.toCharArray());
        }
        client.connect(o);
        // Synchronous: returns after SUBACK, so nothing published afterwards can be missed.
        client.subscribe(topic, qos);
    }

    public static Subscriber subscribe(int port, String topic, int qos) {
        return subscribe(port, topic, qos, null, null);
    }

    public static Subscriber subscribe(int port, String topic, int qos, String username, String password) {
        // A broker started a moment before may drop the first connection at once (Moquette did, once, on a busy
        // machine): that, and only that, is tried again, for a few seconds.
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (true) {
            try {
                return new Subscriber(port, topic, qos, username, password);
            } catch (MqttException e) {
                if (e.getReasonCode() != MqttException.REASON_CODE_CONNECTION_LOST || System.nanoTime() > until) {
                    throw new IllegalStateException("subscriber could not connect/subscribe to " + topic + " on port "
                            + port + ": " + e, e);
                }
                try {
                    Thread.sleep(200);
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException(interrupted);
                }
            }
        }
    }

    public String topic() {
        return topic;
    }

    /**
     * Waits until at least n messages arrived or the timeout passed; returns the payloads received so far. It asserts
     * nothing: where n must arrive, {@link #assertCount} says so.
     */
    public List<byte[]> awaitCount(int n, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (messages) {
            while (messages.size() < n) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    break;
                }
                try {
                    messages.wait(Math.max(1, left / 1_000_000));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            return payloadsLocked();
        }
    }

    /**
     * Waits as {@link #awaitCount} does and fails unless at least n messages arrived: a wait alone lets a test pass
     * with nothing received. Returns the payloads received so far.
     */
    public List<byte[]> assertCount(int n, Duration timeout) {
        List<byte[]> got = awaitCount(n, timeout);
        if (got.size() < n) {
            fail("expected at least " + n + " messages on " + topic + " within " + timeout + ", received "
                    + got.size() + (connectionLost == null ? "" : "; the subscriber lost its connection: "
                            + connectionLost));
        }
        return got;
    }

    /** Payloads received so far. */
    public List<byte[]> payloads() {
        synchronized (messages) {
            return payloadsLocked();
        }
    }

    /** Everything received so far, with QoS and flags. */
    public List<Received> messages() {
        synchronized (messages) {
            return new ArrayList<>(messages);
        }
    }

    public int count() {
        synchronized (messages) {
            return messages.size();
        }
    }

    /** Non-null if the subscriber's own connection dropped (which would make its counts meaningless). */
    public Throwable connectionLost() {
        return connectionLost;
    }

    private List<byte[]> payloadsLocked() {
        List<byte[]> out = new ArrayList<>(messages.size());
        for (Received r : messages) {
            out.add(r.payload);
        }
        return out;
    }

    @Override
    public void close() {
        try {
            if (client.isConnected()) {
                client.disconnect(2_000);
            }
        } catch (MqttException e) {
            // ignore: best effort
        }
        try {
            client.disconnectForcibly(0, 0);
        } catch (MqttException e) {
            // ignore
        }
        try {
            client.close(true);
        } catch (MqttException e) {
            // ignore
        }
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import java.lang.management.ManagementFactory;

import javax.management.JMException;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The JMX view of one appender: each read takes a fresh snapshot from the native library. */
final class AppenderMetrics implements PahoMqttAppenderMXBean {

    private static final Logger LOG = LoggerFactory.getLogger(AppenderMetrics.class);

    /** Supplies {@code NativeAppender.metrics} of the open handle, or null once closed. */
    interface Source {
        long[] read();
    }

    private final Source source;
    private final ObjectName name;
    /** The last figures read, kept so a closed appender still shows where it ended. */
    private volatile long[] last = new long[13];

    private AppenderMetrics(Source source, ObjectName name) {
        this.source = source;
        this.name = name;
    }

    /** Registers the bean; a failure to register is logged, never fatal to the appender. */
    static AppenderMetrics register(String appenderName, String appenderId, Source source) {
        try {
            ObjectName name = new ObjectName("org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="
                    + ObjectName.quote(String.valueOf(appenderName)) + ",id=" + ObjectName.quote(String.valueOf(appenderId)));
            AppenderMetrics metrics = new AppenderMetrics(source, name);
            MBeanServer server = ManagementFactory.getPlatformMBeanServer();
            if (server.isRegistered(name)) {
                server.unregisterMBean(name);
            }
            server.registerMBean(metrics, name);
            return metrics;
        } catch (JMException | RuntimeException e) {
            LOG.warn("PahoMqtt appender '{}': metrics not registered with JMX: {}", appenderName, e.toString());
            return null;
        }
    }

    void unregister() {
        try {
            ManagementFactory.getPlatformMBeanServer().unregisterMBean(name);
        } catch (JMException | RuntimeException e) {
            LOG.debug("metrics bean {} already gone: {}", name, e.toString());
        }
    }

    private long get(int i) {
        long[] now = source.read();
        if (now != null) {
            last = now;
        }
        return last[i];
    }

    @Override
    public long getPacksDelivered() {
        return get(0);
    }

    @Override
    public long getPacksFailedConnection() {
        return get(1);
    }

    @Override
    public long getPacksFailedRemote() {
        return get(2);
    }

    @Override
    public long getPacksFailedInternal() {
        return get(3);
    }

    @Override
    public long getRecordsDelivered() {
        return get(4);
    }

    @Override
    public long getRecordsFailed() {
        return get(5);
    }

    @Override
    public long getPacksInFlight() {
        return get(6);
    }

    @Override
    public long getRecordsAwaitingBroker() {
        return get(7);
    }

    @Override
    public long getReconnects() {
        return get(8);
    }

    @Override
    public boolean isConnected() {
        return get(9) != 0;
    }

    @Override
    public double getAnswerLatencyP50Millis() {
        return get(10) / 1000.0;
    }

    @Override
    public double getAnswerLatencyP99Millis() {
        return get(11) / 1000.0;
    }

    @Override
    public long getTakeovers() {
        return get(12);
    }
}

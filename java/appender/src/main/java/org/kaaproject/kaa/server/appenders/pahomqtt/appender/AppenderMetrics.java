package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import java.lang.management.ManagementFactory;

import javax.management.Attribute;
import javax.management.AttributeList;
import javax.management.AttributeNotFoundException;
import javax.management.DynamicMBean;
import javax.management.JMException;
import javax.management.MBeanAttributeInfo;
import javax.management.MBeanInfo;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One appender's delivery figures over JMX, registered as
 * {@code org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name=<appender name>,id=<appender id>}
 * while the appender is open. Counters run from {@code init}; latencies are from {@code doAppend} to the pack's
 * answer, over all packs so far. A JMX read of any number of attributes takes one snapshot from the native library.
 */
final class AppenderMetrics implements DynamicMBean {

    private static final Logger LOG = LoggerFactory.getLogger(AppenderMetrics.class);

    /** The attributes, in the order of the values {@code NativeAppender.metrics} returns ({@code Snapshot::to_array}). */
    private enum Figure {
        PacksDelivered("Packs answered onSuccess"),
        PacksFailedConnection("Packs answered onConnectionError"),
        PacksFailedRemote("Packs answered onRemoteError"),
        PacksFailedInternal("Packs answered onInternalError"),
        RecordsDelivered("Records of packs answered onSuccess"),
        RecordsFailed("Records of packs answered with an error"),
        PacksInFlight("Packs handed over and not answered yet"),
        RecordsAwaitingBroker("Records accepted by the connection and not yet confirmed by the broker (shared "
                + "connection's total)"),
        Reconnects("Connections made again after one was lost"),
        Connected("Whether every connection of the appender is up", Boolean.TYPE),
        AnswerLatencyP50Millis("Median time from doAppend to the pack's answer, ms", Double.TYPE),
        AnswerLatencyP99Millis("99th percentile of the time from doAppend to the pack's answer, ms", Double.TYPE),
        Takeovers("Connections the broker closed because another client connected with the same client id (a Kaa "
                + "cluster whose nodes share one fixed id): said by an MQTT 5 broker, or inferred from a close "
                + "within seconds of being accepted");

        final String description;
        final Class<?> type;

        Figure(String description) {
            this(description, Long.TYPE);
        }

        Figure(String description, Class<?> type) {
            this.description = description;
            this.type = type;
        }

        /** The native value (latencies in microseconds) as the attribute's type. */
        Object of(long value) {
            if (type == Boolean.TYPE) {
                return value != 0;
            }
            return type == Double.TYPE ? value / 1000.0 : (Object) value;
        }
    }

    private static final MBeanInfo INFO = info();

    /** Supplies {@code NativeAppender.metrics} of the open handle, or null once closed. */
    interface Source {
        long[] read();
    }

    private final Source source;
    private final ObjectName name;
    /** The last figures read, kept so a closed appender still shows where it ended. */
    private volatile long[] last = new long[Figure.values().length];

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

    private long[] snapshot() {
        long[] now = source.read();
        if (now != null && now.length == last.length) {
            last = now;
        }
        return last;
    }

    private static Figure figure(String attribute) throws AttributeNotFoundException {
        for (Figure f : Figure.values()) {
            if (f.name().equals(attribute)) {
                return f;
            }
        }
        throw new AttributeNotFoundException(attribute);
    }

    @Override
    public Object getAttribute(String attribute) throws AttributeNotFoundException {
        Figure f = figure(attribute);
        return f.of(snapshot()[f.ordinal()]);
    }

    @Override
    public AttributeList getAttributes(String[] attributes) {
        long[] values = snapshot();
        AttributeList list = new AttributeList();
        for (String a : attributes) {
            try {
                Figure f = figure(a);
                list.add(new Attribute(a, f.of(values[f.ordinal()])));
            } catch (AttributeNotFoundException e) {
                // JMX leaves unknown names out of the answer.
            }
        }
        return list;
    }

    @Override
    public void setAttribute(Attribute attribute) throws AttributeNotFoundException {
        throw new AttributeNotFoundException(attribute.getName() + " is read-only");
    }

    @Override
    public AttributeList setAttributes(AttributeList attributes) {
        return new AttributeList();
    }

    @Override
    public Object invoke(String actionName, Object[] params, String[] signature) {
        throw new UnsupportedOperationException("no operations");
    }

    @Override
    public MBeanInfo getMBeanInfo() {
        return INFO;
    }

    private static MBeanInfo info() {
        Figure[] figures = Figure.values();
        MBeanAttributeInfo[] attributes = new MBeanAttributeInfo[figures.length];
        for (Figure f : figures) {
            attributes[f.ordinal()] = new MBeanAttributeInfo(f.name(), f.type.getName(), f.description, true, false,
                    f.type == Boolean.TYPE);
        }
        return new MBeanInfo(AppenderMetrics.class.getName(), "Delivery figures of one PahoMqtt log appender",
                attributes, null, null, null);
    }
}

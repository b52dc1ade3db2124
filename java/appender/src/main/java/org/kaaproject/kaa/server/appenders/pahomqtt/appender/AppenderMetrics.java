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

    /** Supplies {@code NativeAppender.metrics} of the open handle, or null once closed. */
    interface Source {
        long[] read();
    }

    /**
     * Name, type and description of each figure, three strings each, in the order of the values: declared once, in
     * the library ({@code metrics::FIGURES}). Read when the first bean registers, once the library is loaded.
     */
    private static volatile String[] figures;
    private static volatile MBeanInfo info;

    private final Source source;
    private final ObjectName name;
    /** The last figures read, kept so a closed appender still shows where it ended. */
    private volatile long[] last;

    private AppenderMetrics(Source source, ObjectName name) {
        this.source = source;
        this.name = name;
        this.last = new long[figures.length / 3];
    }

    /** Registers the bean; a failure to register is logged, never fatal to the appender. */
    static AppenderMetrics register(String appenderName, String appenderId, Source source) {
        try {
            ObjectName name = new ObjectName("org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="
                    + ObjectName.quote(String.valueOf(appenderName)) + ",id=" + ObjectName.quote(String.valueOf(appenderId)));
            describe();
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

    /** The attribute's value, converted by its type (see {@code metrics::FIGURES}). */
    private static Object value(long[] values, String attribute) throws AttributeNotFoundException {
        for (int i = 0; i < values.length; i++) {
            if (figures[3 * i].equals(attribute)) {
                String type = figures[3 * i + 1];
                return type.equals("boolean") ? (Object) (values[i] != 0)
                        : type.equals("double") ? (Object) (values[i] / 1000.0) : (Object) values[i];
            }
        }
        throw new AttributeNotFoundException(attribute);
    }

    @Override
    public Object getAttribute(String attribute) throws AttributeNotFoundException {
        return value(snapshot(), attribute);
    }

    @Override
    public AttributeList getAttributes(String[] attributes) {
        long[] values = snapshot();
        AttributeList list = new AttributeList();
        for (String a : attributes) {
            try {
                list.add(new Attribute(a, value(values, a)));
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
        return info;
    }

    private static synchronized void describe() {
        if (info != null) {
            return;
        }
        String[] read = NativeAppender.metricFigures();
        MBeanAttributeInfo[] attributes = new MBeanAttributeInfo[read.length / 3];
        for (int i = 0; i < attributes.length; i++) {
            attributes[i] = new MBeanAttributeInfo(read[3 * i], read[3 * i + 1], read[3 * i + 2], true, false,
                    read[3 * i + 1].equals("boolean"));
        }
        figures = read;
        info = new MBeanInfo(AppenderMetrics.class.getName(), "Delivery figures of one PahoMqtt log appender",
                attributes, null, null, null);
    }
}

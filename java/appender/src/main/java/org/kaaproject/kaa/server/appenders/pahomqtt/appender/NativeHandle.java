package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import java.lang.management.ManagementFactory;
import java.lang.ref.PhantomReference;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantReadWriteLock;

import javax.management.Attribute;
import javax.management.AttributeList;
import javax.management.AttributeNotFoundException;
import javax.management.DynamicMBean;
import javax.management.JMException;
import javax.management.MBeanAttributeInfo;
import javax.management.MBeanInfo;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What one {@code init} opened: the native appender's handle, released exactly once (by {@code close}, by a second
 * {@code init}, or when the appender object is dropped without either), and its delivery figures over JMX while it is
 * open, as
 * {@code org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name=<appender name>,id=<appender id>}.
 *
 * <p>It is a phantom reference to its appender and refers to nothing else of it (the JMX server holds the handle, not
 * the appender), so a dropped appender becomes unreachable and the next appender call releases what it left open: its
 * connection and its bean. Java 8 has no {@code Cleaner}, and the plugin starts no thread of its own for this.
 *
 * <p>The figures are declared once, in the library ({@code metrics::FIGURES}). Counters run from {@code init};
 * latencies are from {@code doAppend} to the pack's answer, over all packs so far. A JMX read of any number of
 * attributes takes one snapshot from the library.
 */
final class NativeHandle extends PhantomReference<NativeLogAppender> implements DynamicMBean {

    private static final Logger LOG = LoggerFactory.getLogger(NativeHandle.class);

    private static final ReferenceQueue<NativeLogAppender> DROPPED = new ReferenceQueue<>();
    /** A phantom reference must stay reachable itself until it is enqueued or cleared. */
    private static final Set<NativeHandle> OPEN = ConcurrentHashMap.newKeySet();

    /**
     * Name, type and description of each figure, three strings each, in the order of the values; read from the library
     * when the first handle opens.
     */
    private static volatile String[] figures;
    private static volatile MBeanInfo info;

    /** Appends and JMX reads share the read side; release takes the write side, so no call outlives the handle. */
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** The native handle; 0 once released. Read under {@link #lock}. */
    private long value;
    private final String appenderName;
    /** Where the bean is registered; null if it is not. */
    private volatile ObjectName bean;
    /** The last figures read, kept so a read racing with the release still gets where the appender ended. */
    private volatile long[] last;

    private NativeHandle(NativeLogAppender appender, long value, String appenderName) {
        super(appender, DROPPED);
        this.value = value;
        this.appenderName = appenderName;
    }

    /** Takes charge of an opened native handle for {@code appender}, and registers its JMX bean. */
    static NativeHandle open(NativeLogAppender appender, long value, String appenderName, String appenderId) {
        NativeHandle handle = new NativeHandle(appender, value, appenderName);
        OPEN.add(handle);
        handle.register(appenderId);
        return handle;
    }

    /** {@link NativeAppender#append} unless released; returns whether the pack was handed over. */
    boolean append(String schemaId, int schemaVersion, String schema, byte[][] records, String endpointKey,
            LogDeliveryCallback callback) {
        lock.readLock().lock();
        try {
            if (value != 0) {
                NativeAppender.append(value, schemaId, schemaVersion, schema, records, endpointKey, callback);
            }
            return value != 0;
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * Closes the native appender (its packs in flight are answered) and unregisters the bean; later calls do
     * nothing.
     *
     * @return whether this call released it
     */
    boolean release() {
        long closing;
        lock.writeLock().lock();
        try {
            closing = value;
            value = 0;
            if (closing != 0) {
                NativeAppender.close(closing);
            }
        } finally {
            lock.writeLock().unlock();
        }
        OPEN.remove(this);
        clear();
        ObjectName name = bean;
        bean = null;
        if (name != null) {
            try {
                ManagementFactory.getPlatformMBeanServer().unregisterMBean(name);
            } catch (JMException | RuntimeException e) {
                LOG.debug("metrics bean {} already gone: {}", name, e.toString());
            }
        }
        return closing != 0;
    }

    /** Releases what appenders dropped without {@code close} left open. Cheap when there is nothing to do. */
    static void releaseDropped() {
        for (Reference<? extends NativeLogAppender> r = DROPPED.poll(); r != null; r = DROPPED.poll()) {
            NativeHandle handle = (NativeHandle) r;
            if (handle.release()) {
                LOG.warn("PahoMqtt appender '{}' was dropped without close(); its connection and JMX bean are "
                        + "released now", handle.appenderName);
            }
        }
    }

    /** A failure to register is logged, never fatal to the appender. */
    private void register(String appenderId) {
        try {
            ObjectName name = new ObjectName("org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="
                    + ObjectName.quote(appenderName) + ",id=" + ObjectName.quote(appenderId));
            describe();
            last = new long[figures.length / 3];
            MBeanServer server = ManagementFactory.getPlatformMBeanServer();
            if (server.isRegistered(name)) {
                server.unregisterMBean(name);
            }
            server.registerMBean(this, name);
            bean = name;
        } catch (JMException | RuntimeException e) {
            LOG.warn("PahoMqtt appender '{}': metrics not registered with JMX: {}", appenderName, e.toString());
        }
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
        info = new MBeanInfo(NativeHandle.class.getName(), "Delivery figures of one PahoMqtt log appender",
                attributes, null, null, null);
    }

    private long[] snapshot() {
        lock.readLock().lock();
        try {
            long[] now = value == 0 ? null : NativeAppender.metrics(value);
            if (now != null && now.length == last.length) {
                last = now;
            }
            return last;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** The attribute's value, converted by its type (see {@code metrics::FIGURES}). */
    private static Object typed(long[] values, String attribute) throws AttributeNotFoundException {
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
        return typed(snapshot(), attribute);
    }

    @Override
    public AttributeList getAttributes(String[] attributes) {
        long[] values = snapshot();
        AttributeList list = new AttributeList();
        for (String a : attributes) {
            try {
                list.add(new Attribute(a, typed(values, a)));
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
}

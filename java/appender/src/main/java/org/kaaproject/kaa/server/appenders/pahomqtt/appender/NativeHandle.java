package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import java.lang.management.ManagementFactory;
import java.lang.ref.PhantomReference;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import javax.management.Attribute;
import javax.management.AttributeList;
import javax.management.AttributeNotFoundException;
import javax.management.DynamicMBean;
import javax.management.JMException;
import javax.management.MBeanException;
import javax.management.MBeanInfo;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What one {@code init} opened: the native appender's handle, closed exactly once (by {@code close}, by a second
 * {@code init}, or when the appender object is dropped without either), and its delivery figures over JMX while it is
 * open, as (names quoted)
 * {@code org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="<appender name>",id="<appender id>"}.
 *
 * <p>It is a phantom reference to its appender and refers to nothing else of it (the JMX server holds the handle, not
 * the appender), so a dropped appender becomes unreachable and the next appender call closes what it left open: its
 * connection and its bean. Java 8 has no {@code Cleaner}, and the plugin starts no thread of its own for this.
 *
 * <p>The handle is only a number: the library keeps the appenders, so a call racing with {@code close} is safe
 * without a lock here. The attributes, their types and their values come from the library, one snapshot per JMX read.
 */
final class NativeHandle extends PhantomReference<NativeLogAppender> implements DynamicMBean {

    private static final Logger LOG = LoggerFactory.getLogger(NativeHandle.class);

    private static final ReferenceQueue<NativeLogAppender> DROPPED = new ReferenceQueue<>();
    /** A phantom reference must stay reachable itself until it is enqueued or cleared. */
    private static final Set<NativeHandle> OPEN = ConcurrentHashMap.newKeySet();
    /**
     * Whose bean each name is: an appender made again under the same name and id takes the name over, and the one
     * it replaced, released later (dropped without close), must leave its successor's bean alone. Its lock also
     * guards the first build of {@link #info}.
     */
    private static final Map<ObjectName, NativeHandle> BEANS = new HashMap<>();

    private static volatile MBeanInfo info;

    /** For {@link NativeAppender}'s calls; closed ones find nothing. */
    final long value;
    private final String appenderName;
    /** The bean's name, once it is known; null after release. */
    private volatile ObjectName bean;

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

    /**
     * Closes the native appender (its packs in flight are answered) and unregisters the bean; later calls do nothing.
     * Never throws: the node's {@code close}, and an {@code init} that releases what the last one opened, must not.
     *
     * @return whether this call closed it
     */
    boolean release() {
        try {
            return NativeAppender.close(value);
        } catch (RuntimeException e) {
            // A panic the library caught (and logged as an ERROR): its handle is gone from the library either way.
            LOG.warn("PahoMqtt appender '{}': releasing its native side failed: {}", appenderName, e.toString());
            return false;
        } finally {
            OPEN.remove(this);
            clear();
            ObjectName name = bean;
            bean = null;
            // With the map, as one step: a successor registering meanwhile keeps its bean.
            synchronized (BEANS) {
                if (name != null && BEANS.remove(name, this)) {
                    try {
                        ManagementFactory.getPlatformMBeanServer().unregisterMBean(name);
                    } catch (JMException | RuntimeException e) {
                        LOG.debug("metrics bean {} already gone: {}", name, e.toString());
                    }
                }
            }
        }
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
            bean = name;
            MBeanServer server = ManagementFactory.getPlatformMBeanServer();
            synchronized (BEANS) {
                if (info == null) {
                    info = new MBeanInfo(NativeHandle.class.getName(), "Delivery figures of one PahoMqtt log appender",
                            NativeAppender.attributeInfo(), null, null, null);
                }
                BEANS.put(name, this);
                if (server.isRegistered(name)) {
                    server.unregisterMBean(name);
                }
                server.registerMBean(this, name);
            }
        } catch (JMException | RuntimeException e) {
            LOG.warn("PahoMqtt appender '{}': metrics not registered with JMX: {}", appenderName, e.toString());
        }
    }

    @Override
    public Object getAttribute(String attribute) throws AttributeNotFoundException, MBeanException {
        Object[] values = NativeAppender.attributes(value, new String[] {attribute});
        if (values == null) { // read while close unregisters the bean
            throw new MBeanException(new IllegalStateException("PahoMqtt appender '" + appenderName + "' is closed"));
        }
        if (values[0] == null) {
            throw new AttributeNotFoundException(attribute);
        }
        return values[0];
    }

    @Override
    public AttributeList getAttributes(String[] attributes) {
        Object[] values = NativeAppender.attributes(value, attributes);
        AttributeList list = new AttributeList();
        for (int i = 0; values != null && i < values.length; i++) {
            if (values[i] != null) { // JMX leaves out what cannot be read: unknown names, all once closed
                list.add(new Attribute(attributes[i], values[i]));
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

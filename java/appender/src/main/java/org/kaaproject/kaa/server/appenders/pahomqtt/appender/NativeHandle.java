package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import java.lang.ref.PhantomReference;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.concurrent.locks.ReentrantReadWriteLock;

import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What one {@code init} opened: the native appender's handle and its JMX bean, released exactly once, by
 * {@code close}, by a second {@code init}, or when the appender object is dropped without either. Nothing here
 * refers to the appender object (the JMX bean reads through this), so a dropped appender becomes unreachable and
 * its phantom reference lets the next appender call release what it left open: its connection and its bean. Java 8
 * has no {@code Cleaner}, and the plugin starts no thread of its own for this.
 */
final class NativeHandle {

    private static final Logger LOG = LoggerFactory.getLogger(NativeHandle.class);

    private static final ReferenceQueue<NativeLogAppender> DROPPED = new ReferenceQueue<>();
    /** The phantom references must stay reachable themselves until they are enqueued or cleared. */
    private static final Set<Owner> OWNED = Collections.synchronizedSet(Collections.newSetFromMap(
            new IdentityHashMap<Owner, Boolean>()));

    /** Appends share the read side; release takes the write side, so no call outlives the handle. */
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** The native handle; 0 once released. Read under {@link #lock}. */
    private long value;
    private final String appenderName;
    private final Owner owner;
    private volatile AppenderMetrics metrics;

    private static final class Owner extends PhantomReference<NativeLogAppender> {
        final NativeHandle handle;

        Owner(NativeLogAppender appender, NativeHandle handle) {
            super(appender, DROPPED);
            this.handle = handle;
        }
    }

    private NativeHandle(NativeLogAppender appender, long value, String appenderName) {
        this.value = value;
        this.appenderName = appenderName;
        this.owner = new Owner(appender, this);
        OWNED.add(owner);
    }

    /** Takes charge of an opened native handle for {@code appender}, and registers its JMX bean. */
    static NativeHandle open(NativeLogAppender appender, long value, String appenderName, String appenderId) {
        NativeHandle handle = new NativeHandle(appender, value, appenderName);
        handle.metrics = AppenderMetrics.register(appenderName, appenderId, handle::readMetrics);
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

    private long[] readMetrics() {
        lock.readLock().lock();
        try {
            return value == 0 ? null : NativeAppender.metrics(value);
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
        OWNED.remove(owner);
        owner.clear();
        AppenderMetrics bean = metrics;
        metrics = null;
        if (bean != null) {
            bean.unregister();
        }
        return closing != 0;
    }

    /** Releases what appenders dropped without {@code close} left open. Cheap when there is nothing to do. */
    static void releaseDropped() {
        for (Reference<? extends NativeLogAppender> r = DROPPED.poll(); r != null; r = DROPPED.poll()) {
            NativeHandle handle = ((Owner) r).handle;
            if (handle.release()) {
                LOG.warn("PahoMqtt appender '{}' was dropped without close(); its connection and JMX bean are "
                        + "released now", handle.appenderName);
            }
        }
    }
}

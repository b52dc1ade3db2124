package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import javax.management.MBeanAttributeInfo;

import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;

/** Every entry point into the Rust library ({@code src/bridge.rs}). */
final class NativeAppender {

    /**
     * The bridge's interface version; {@code src/bridge.rs} returns the same from {@link #abiVersion}. Bump both
     * whenever a native signature changes: a jar and a library of different builds are then refused at load
     * instead of calling each other with the wrong arguments.
     */
    static final int ABI_VERSION = 9;

    private NativeAppender() {
    }

    static native int abiVersion();

    /**
     * Decodes the raw Avro configuration and joins (or opens) the pooled connection.
     *
     * @param generation the plugin generation whose schema the configuration is stored in (0: the original's)
     * @param headerFields names of the {@code LogHeaderStructureDto} fields the record header carries
     * @return a handle for {@link #append}, {@link #close} and {@link #attributes}, never 0
     * @throws IllegalArgumentException naming the invalid configuration field
     */
    static native long open(byte[] rawConfiguration, int generation, String appenderName, String applicationToken,
            String[] headerFields);

    /**
     * Hands one pack over as Kaa gave it, without waiting on the network: each event's data (a null event as null,
     * a null list as null) and the log schema's id, version and text (null without a schema); the library checks
     * them. The library calls the callback exactly once, from its dispatcher thread; while that thread's answers are
     * more than 10 s late, on the calling thread, before this returns.
     */
    static native void append(long handle, String logSchemaId, int logSchemaVersion, String logSchema,
            byte[][] records, String endpointKey, LogDeliveryCallback callback);

    /**
     * Forgets the handle without waiting: packs still in flight get their answer from the broker or, after
     * {@code closeTimeoutSeconds}, fail. Later calls with it find nothing: {@link #append} answers
     * {@code onInternalError}.
     *
     * @return whether the handle was open, true for exactly one call
     */
    static native boolean close(long handle);

    /** The JMX bean's attributes, read-only, declared once in the library ({@code metrics::FIGURES}). */
    static native MBeanAttributeInfo[] attributeInfo();

    /**
     * The named attributes of an open appender, boxed by type (null for an unknown name), from one snapshot; null once
     * the handle is closed.
     */
    static native Object[] attributes(long handle, String[] names);
}

package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;

/** Every entry point into the Rust library ({@code src/bridge.rs}). */
final class NativeAppender {

    /**
     * The bridge's interface version; {@code src/bridge.rs} returns the same from {@link #abiVersion}. Bump both
     * whenever a native signature changes: a jar and a library of different builds are then refused at load
     * instead of calling each other with the wrong arguments.
     */
    static final int ABI_VERSION = 7;

    private NativeAppender() {
    }

    static native int abiVersion();

    /**
     * Decodes the raw Avro configuration and joins (or opens) the pooled connection.
     *
     * @param headerFields names of the {@code LogHeaderStructureDto} fields the record header carries
     * @return a handle for {@link #append} and {@link #close}, never 0
     * @throws IllegalArgumentException naming the invalid configuration field
     */
    static native long open(byte[] rawConfiguration, String appenderName, String applicationToken,
            String[] headerFields);

    /**
     * Hands one pack over as Kaa gave it, without waiting on the network: each event's data (a null event as null,
     * a null list as null) and the log schema's id, version and text (null without a schema); the library checks
     * them. The library calls the callback exactly once, from its dispatcher thread.
     */
    static native void append(long handle, String logSchemaId, int logSchemaVersion, String logSchema,
            byte[][] records, String endpointKey, LogDeliveryCallback callback);

    /** Answers every pack still in flight and releases the handle; the handle is invalid after. */
    static native void close(long handle);

    /** Name, type and description of each of {@link #metrics}' values, three strings each. */
    static native String[] metricFigures();

    /**
     * The appender's counters, in {@link #metricFigures}' order.
     *
     * @throws IllegalStateException for a closed handle
     */
    static native long[] metrics(long handle);
}

package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.common.dto.logs.LogHeaderStructureDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.config.BundledSchemaPluginConfig;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;
import org.kaaproject.kaa.server.common.log.shared.appender.LogEvent;
import org.kaaproject.kaa.server.common.log.shared.appender.LogEventPack;
import org.kaaproject.kaa.server.common.log.shared.appender.LogSchema;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The body of every appender plugin ({@link PahoMQTTLogAppender} for appenders stored with the original's nine
 * settings, {@link MqttLogAppender}, {@link MqttLogAppenderV2} and {@link MqttLogAppenderV3} for the generations of
 * the full settings). It keeps no state of its own beyond a handle and its generation: each pack
 * is handed to the Rust library, which decodes it, publishes every record and answers the callback once the broker
 * has confirmed them (or failed). {@code doAppend} never waits on the network.
 *
 * <p>Each plugin passes the raw configuration through unchanged, with the number of its generation, which tells the
 * native core how the bytes are laid out (the original's is 0). The node instantiates the concrete classes by name;
 * no stored record names this one.
 */
public abstract class NativeLogAppender implements LogAppender {

    static {
        BundledSchemaPluginConfig.checkForOtherCopies();
    }

    /** Named after the concrete class, so a node's logging configuration can tell the plugins apart. */
    private final Logger log = LoggerFactory.getLogger(getClass());

    /** Which plugin generation's schema the configurations of this class are stored in. */
    private final int generation;

    /** How often, at most, packs failing for a failed {@code init} repeat its error: the log that had it rotates. */
    private static final long REMINDER_NANOS = TimeUnit.MINUTES.toNanos(1);

    /** What {@code init} opened; null before it and after {@code close}. */
    private volatile NativeHandle handle;
    /** Why the last {@code init} failed; null if it did not, and after {@code close}. */
    private volatile String startFailure;
    /** When its error may be said again ({@code System.nanoTime}), and the packs it failed since it was last said. */
    private final AtomicLong nextReminder = new AtomicLong();
    private final AtomicLong failedUnsaid = new AtomicLong();
    /** A node's callback threw while this appender answered a pack itself. */
    private final AtomicBoolean callbackThrew = new AtomicBoolean();

    private String name;
    private String appenderId;
    private String applicationToken;
    private int minLogSchemaVersion;
    private int maxLogSchemaVersion;
    private boolean confirmDelivery = true;

    protected NativeLogAppender(int generation) {
        this.generation = generation;
    }

    @Override
    public void setName(String name) {
        this.name = name;
    }

    @Override
    public String getName() {
        return name;
    }

    @Override
    public void setAppenderId(String appenderId) {
        this.appenderId = appenderId;
    }

    @Override
    public String getAppenderId() {
        return appenderId;
    }

    @Override
    public void setApplicationToken(String applicationToken) {
        this.applicationToken = applicationToken;
    }

    /**
     * Never throws: with a missing library or an invalid configuration the error is logged
     * and every pack is answered {@code onInternalError}, as the node expects of a broken appender (the error is
     * logged again with them, at most once a minute).
     * A second {@code init} releases what the first opened.
     */
    @Override
    public void init(LogAppenderDto dto) {
        if (release()) {
            log.warn("PahoMqtt appender '{}' ({}) initialised again: the first configuration's connection is "
                    + "released", name, appenderId);
        }
        minLogSchemaVersion = dto.getMinLogSchemaVersion();
        maxLogSchemaVersion = dto.getMaxLogSchemaVersion();
        confirmDelivery = dto.isConfirmDelivery();
        try {
            String library = NativeLibrary.load();
            List<LogHeaderStructureDto> structure = dto.getHeaderStructure();
            String[] headerFields = structure == null ? new String[0]
                    : structure.stream().map(LogHeaderStructureDto::name).toArray(String[]::new);
            long opened = NativeAppender.open(dto.getRawConfiguration(), generation, String.valueOf(name),
                    String.valueOf(applicationToken), headerFields);
            handle = NativeHandle.open(this, opened, String.valueOf(name), String.valueOf(appenderId));
            log.info("PahoMqtt appender '{}' ({}) of application {} started (native library: {})", name, appenderId,
                    applicationToken, library);
        } catch (UnsatisfiedLinkError | RuntimeException e) {
            String why = e.getMessage() != null ? e.getMessage() : e.toString();
            log.error("PahoMqtt appender '{}' ({}) cannot start; its log packs will fail: {}", name, appenderId, why);
            nextReminder.set(System.nanoTime());
            failedUnsaid.set(0);
            startFailure = why;
        }
    }

    /** Hands the pack over as it is; the native side checks it, so every answer is counted the same way. */
    @Override
    public void doAppend(LogEventPack pack, LogDeliveryCallback callback) {
        NativeHandle.releaseDropped();
        NativeHandle opened = handle;
        if (opened == null) {
            try {
                callback.onInternalError(); // no native appender: before init succeeded, or after close
            } catch (RuntimeException e) {
                // Thrown on, the node would answer the pack a second time. Said at WARN once per appender.
                String said = "PahoMqtt appender '{}' ({}): the node's callback threw: {}";
                if (callbackThrew.compareAndSet(false, true)) {
                    log.warn(said, name, appenderId, e.toString());
                } else {
                    log.debug(said, name, appenderId, e.toString());
                }
            }
            remindWhyNotStarted();
            return;
        }
        List<LogEvent> events = pack.getEvents();
        byte[][] records = events == null ? null : new byte[events.size()][];
        for (int i = 0; records != null && i < records.length; i++) {
            LogEvent event = events.get(i);
            records[i] = event == null ? null : event.getLogData();
        }
        LogSchema schema = pack.getLogSchema();
        NativeAppender.append(opened.value, schema == null ? null : schema.getId(), schema == null ? 0
                : schema.getVersion(), schema == null ? null : schema.getSchema(), records, pack.getEndpointKey(),
                callback);
    }

    @Override
    public boolean isSchemaVersionSupported(int version) {
        return version >= minLogSchemaVersion && version <= maxLogSchemaVersion;
    }

    @Override
    public boolean isDeliveryConfirmationRequired() {
        return confirmDelivery;
    }

    /**
     * Returns at once; later packs are answered {@code onInternalError}. Packs still in flight keep waiting for the
     * broker's acks up to {@code closeTimeoutSeconds} (in native code, on its own runtime), then fail as connection
     * errors.
     */
    @Override
    public void close() {
        if (release()) {
            log.info("PahoMqtt appender '{}' ({}) closed", name, appenderId);
        }
    }

    /** After a failed {@code init}, its error again with the packs it failed: at the first, then once a minute. */
    private void remindWhyNotStarted() {
        String failure = startFailure;
        if (failure == null) {
            return;
        }
        failedUnsaid.incrementAndGet();
        long now = System.nanoTime();
        long due = nextReminder.get();
        if (now - due >= 0 && nextReminder.compareAndSet(due, now + REMINDER_NANOS)) {
            log.warn("PahoMqtt appender '{}' ({}) is not running, as it could not start: {}; {} log pack(s) answered "
                    + "onInternalError since that was last logged (repeated at most once a minute while packs come)",
                    name, appenderId, failure, failedUnsaid.getAndSet(0));
        }
    }

    /** Releases what the last {@code init} opened (and what dropped appenders left); whether there was something. */
    private boolean release() {
        startFailure = null;
        NativeHandle.releaseDropped();
        NativeHandle opened = handle;
        handle = null;
        return opened != null && opened.release();
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Forwards records of the Rust {@code log} facade to SLF4J, so they land in the node's log
 * files. A Rust module {@code kaa_mqtt_appender::connection} logs as
 * {@code org.kaaproject.kaa.server.appenders.pahomqtt.native.kaa_mqtt_appender.connection}.
 */
@CalledFromNative
final class NativeLog {

    static final String PREFIX = "org.kaaproject.kaa.server.appenders.pahomqtt.native";

    private static final ConcurrentMap<String, Logger> LOGGERS = new ConcurrentHashMap<>();

    private NativeLog() {
    }

    /**
     * The most detailed level enabled for native loggers, in the library's numbering. Read when the library loads,
     * then again every few seconds by the native dispatcher thread, so a level changed at run time (logback's scan
     * of its configuration, JMX) reaches native code.
     */
    @CalledFromNative
    static int level() {
        Logger root = LoggerFactory.getLogger(PREFIX);
        if (root.isTraceEnabled()) {
            return 5;
        }
        if (root.isDebugEnabled()) {
            return 4;
        }
        if (root.isInfoEnabled()) {
            return 3;
        }
        if (root.isWarnEnabled()) {
            return 2;
        }
        return root.isErrorEnabled() ? 1 : 0;
    }

    /** Levels as Rust's {@code log::Level}: 1 error, 2 warn, 3 info, 4 debug, 5 trace. */
    @CalledFromNative
    static void log(int level, String target, String message) {
        try {
            Logger logger = LOGGERS.get(target);
            if (logger == null) {
                logger = LoggerFactory.getLogger(PREFIX + "." + target.replace("::", "."));
                LOGGERS.putIfAbsent(target, logger);
            }
            switch (level) {
                case 1:
                    logger.error(message);
                    break;
                case 2:
                    logger.warn(message);
                    break;
                case 3:
                    logger.info(message);
                    break;
                case 4:
                    logger.debug(message);
                    break;
                default:
                    logger.trace(message);
                    break;
            }
        } catch (Throwable ignored) {
            // Logging must never fail the dispatcher thread.
        }
    }
}

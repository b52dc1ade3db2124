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
        int level = 5;
        while (level > 0 && !at(root, level, null)) {
            level--;
        }
        return level;
    }

    @CalledFromNative
    static void log(int level, String target, String message) {
        try {
            Logger logger = LOGGERS.computeIfAbsent(target,
                    t -> LoggerFactory.getLogger(PREFIX + "." + t.replace("::", ".")));
            at(logger, level, message);
        } catch (Throwable ignored) {
            // Logging must never fail the dispatcher thread.
        }
    }

    /**
     * The one mapping of the library's level numbers onto SLF4J (declared in Rust as {@code bridge::LEVELS}: 1 error,
     * 2 warn, 3 info, 4 debug, 5 trace): logs {@code message} at {@code level} unless it is null, and tells whether
     * that level is enabled.
     */
    private static boolean at(Logger logger, int level, String message) {
        switch (level) {
            case 1:
                if (message != null) {
                    logger.error(message);
                }
                return logger.isErrorEnabled();
            case 2:
                if (message != null) {
                    logger.warn(message);
                }
                return logger.isWarnEnabled();
            case 3:
                if (message != null) {
                    logger.info(message);
                }
                return logger.isInfoEnabled();
            case 4:
                if (message != null) {
                    logger.debug(message);
                }
                return logger.isDebugEnabled();
            default:
                if (message != null) {
                    logger.trace(message);
                }
                return logger.isTraceEnabled();
        }
    }
}

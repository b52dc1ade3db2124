package org.kaaproject.kaa.server.common.log.shared.appender;

/** Mirrors Kaa 0.9.0's {@code LogDeliveryErrorCode} (compile-time stand-in). */
public enum LogDeliveryErrorCode {
    NO_APPENDERS_CONFIGURED,
    APPENDER_INTERNAL_ERROR,
    REMOTE_CONNECTION_ERROR,
    REMOTE_INTERNAL_ERROR
}

package org.kaaproject.kaa.server.common.log.shared.appender;

import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;

/** Mirrors Kaa 0.9.0's {@code LogAppender} (compile-time stand-in). */
public interface LogAppender {

    void setName(String name);

    String getName();

    void setAppenderId(String appenderId);

    String getAppenderId();

    void setApplicationToken(String applicationToken);

    void init(LogAppenderDto appender);

    void doAppend(LogEventPack logEventPack, LogDeliveryCallback listener);

    boolean isSchemaVersionSupported(int version);

    boolean isDeliveryConfirmationRequired();

    void close();
}

package org.kaaproject.kaa.server.common.log.shared.appender;

import org.apache.avro.specific.SpecificRecordBase;
import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;

/** Mirrors Kaa 0.9.0's {@code AbstractLogAppender} (compile-time stand-in). */
public abstract class AbstractLogAppender<T extends SpecificRecordBase> implements LogAppender {

    private String name;
    private String appenderId;
    private String applicationToken;

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

    public String getApplicationToken() {
        return applicationToken;
    }

    @Override
    public abstract void init(LogAppenderDto appender);

    @Override
    public abstract void doAppend(LogEventPack logEventPack, LogDeliveryCallback listener);

    @Override
    public abstract boolean isSchemaVersionSupported(int version);

    @Override
    public abstract boolean isDeliveryConfirmationRequired();

    @Override
    public abstract void close();
}

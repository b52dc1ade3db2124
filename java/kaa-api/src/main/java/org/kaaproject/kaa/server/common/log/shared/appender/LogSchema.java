package org.kaaproject.kaa.server.common.log.shared.appender;

import org.kaaproject.kaa.common.dto.logs.LogSchemaDto;

/** Mirrors Kaa 0.9.0's {@code LogSchema} (compile-time stand-in). */
public final class LogSchema {

    private final LogSchemaDto logSchemaDto;

    public LogSchema(LogSchemaDto logSchemaDto) {
        this.logSchemaDto = logSchemaDto;
    }

    public String getId() {
        return logSchemaDto.getId();
    }

    public String getApplicationId() {
        return logSchemaDto.getApplicationId();
    }

    public String getSchema() {
        return logSchemaDto.getSchema();
    }

    public int getVersion() {
        return logSchemaDto.getVersion();
    }
}

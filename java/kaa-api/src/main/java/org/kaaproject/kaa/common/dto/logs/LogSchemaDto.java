package org.kaaproject.kaa.common.dto.logs;

import org.kaaproject.kaa.common.dto.AbstractSchemaDto;

/** Mirrors Kaa 0.9.0's {@code LogSchemaDto} (compile-time stand-in). */
public class LogSchemaDto extends AbstractSchemaDto {

    private static final long serialVersionUID = 1L;

    public LogSchemaDto() {
    }
}

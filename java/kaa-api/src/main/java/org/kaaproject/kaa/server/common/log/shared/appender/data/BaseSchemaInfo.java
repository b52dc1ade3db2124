package org.kaaproject.kaa.server.common.log.shared.appender.data;

/** Mirrors Kaa 0.9.0's {@code BaseSchemaInfo} (compile-time stand-in). */
public class BaseSchemaInfo {

    private final String schemaId;
    private final String schema;

    public BaseSchemaInfo(String schemaId, String schema) {
        this.schemaId = schemaId;
        this.schema = schema;
    }

    public String getSchemaId() {
        return schemaId;
    }

    public String getSchema() {
        return schema;
    }
}

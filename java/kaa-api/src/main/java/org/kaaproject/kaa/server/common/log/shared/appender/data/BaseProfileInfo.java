package org.kaaproject.kaa.server.common.log.shared.appender.data;

/** Mirrors Kaa 0.9.0's {@code BaseProfileInfo} (compile-time stand-in). */
public class BaseProfileInfo implements ProfileInfo {

    private final BaseSchemaInfo schemaInfo;
    private final String body;

    public BaseProfileInfo(BaseSchemaInfo schemaInfo, String body) {
        this.schemaInfo = schemaInfo;
        this.body = body;
    }

    @Override
    public String getSchemaId() {
        return schemaInfo.getSchemaId();
    }

    @Override
    public String getSchema() {
        return schemaInfo.getSchema();
    }

    @Override
    public String getBody() {
        return body;
    }
}

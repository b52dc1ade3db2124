package org.kaaproject.kaa.common.dto;

/** Mirrors Kaa 0.9.0's {@code AbstractSchemaDto} (compile-time stand-in). */
public abstract class AbstractSchemaDto extends VersionDto {

    private static final long serialVersionUID = 1L;

    private String applicationId;
    private String schema;
    private String name;
    private String description;

    public AbstractSchemaDto() {
    }

    public String getApplicationId() {
        return applicationId;
    }

    public void setApplicationId(String applicationId) {
        this.applicationId = applicationId;
    }

    public String getSchema() {
        return schema;
    }

    public void setSchema(String schema) {
        this.schema = schema;
    }

    public String getName() {
        return name;
    }

    public void setName(String name) {
        this.name = name;
    }

    public String getDescription() {
        return description;
    }

    public void setDescription(String description) {
        this.description = description;
    }
}

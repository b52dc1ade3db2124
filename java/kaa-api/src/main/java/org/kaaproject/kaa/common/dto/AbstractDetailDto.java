package org.kaaproject.kaa.common.dto;

import java.io.Serializable;

/** Mirrors Kaa 0.9.0's {@code AbstractDetailDto} (compile-time stand-in). */
public abstract class AbstractDetailDto implements Serializable {

    private static final long serialVersionUID = 1L;

    private String name;
    private String description;
    private String createdUsername;
    private long createdTime;

    public AbstractDetailDto() {
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

    public String getCreatedUsername() {
        return createdUsername;
    }

    public void setCreatedUsername(String createdUsername) {
        this.createdUsername = createdUsername;
    }

    public long getCreatedTime() {
        return createdTime;
    }

    public void setCreatedTime(long createdTime) {
        this.createdTime = createdTime;
    }
}

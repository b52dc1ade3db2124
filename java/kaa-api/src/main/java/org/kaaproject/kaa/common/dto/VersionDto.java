package org.kaaproject.kaa.common.dto;

import java.io.Serializable;

/** Mirrors Kaa 0.9.0's {@code VersionDto} (compile-time stand-in). */
public class VersionDto implements HasId, Serializable, Comparable<VersionDto> {

    private static final long serialVersionUID = 1L;

    private String id;
    private int version;

    public VersionDto() {
    }

    @Override
    public String getId() {
        return id;
    }

    @Override
    public void setId(String id) {
        this.id = id;
    }

    public int getVersion() {
        return version;
    }

    public void setVersion(int version) {
        this.version = version;
    }

    @Override
    public int compareTo(VersionDto other) {
        return Integer.compare(version, other.version);
    }
}

package org.kaaproject.kaa.common.dto.logs;

/** Mirrors Kaa 0.9.0's {@code LogHeaderStructureDto} (compile-time stand-in). */
public enum LogHeaderStructureDto {
    KEYHASH("keyhash"),
    VERSION("version"),
    TIMESTAMP("timestamp"),
    TOKEN("token"),
    LSVERSION("lsversion");

    private final String value;

    LogHeaderStructureDto(String value) {
        this.value = value;
    }

    public String getValue() {
        return value;
    }
}

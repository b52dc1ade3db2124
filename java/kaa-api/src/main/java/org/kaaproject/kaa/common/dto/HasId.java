package org.kaaproject.kaa.common.dto;

/** Mirrors Kaa 0.9.0's {@code HasId} (compile-time stand-in). */
public interface HasId {

    String getId();

    void setId(String id);
}

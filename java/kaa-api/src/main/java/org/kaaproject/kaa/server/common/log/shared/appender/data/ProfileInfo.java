package org.kaaproject.kaa.server.common.log.shared.appender.data;

/** Mirrors Kaa 0.9.0's {@code ProfileInfo} (compile-time stand-in). */
public interface ProfileInfo {

    String getSchemaId();

    String getSchema();

    String getBody();
}

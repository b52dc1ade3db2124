package org.kaaproject.kaa.server.common.plugin;

/** Mirrors Kaa 0.9.0's {@code PluginType} (compile-time stand-in). */
public enum PluginType {
    LOG_APPENDER,
    USER_VERIFIER
}

package org.kaaproject.kaa.server.common.plugin;

import org.apache.avro.Schema;

/** Mirrors Kaa 0.9.0's {@code PluginConfig} (compile-time stand-in). */
public interface PluginConfig {

    String getPluginTypeName();

    String getPluginClassName();

    Schema getPluginConfigSchema();
}

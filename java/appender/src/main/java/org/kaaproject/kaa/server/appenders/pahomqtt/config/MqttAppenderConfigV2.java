package org.kaaproject.kaa.server.appenders.pahomqtt.config;

import org.kaaproject.kaa.server.common.plugin.KaaPluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginType;

/**
 * The plugin for new appenders, type "PahoMqtt": the second generation of the full settings
 * ({@code MqttAppenderConfigV2.avsc}: every field of {@link MqttAppenderConfig}, the first generation, in its order,
 * then {@code maxInflight}). A generation is a plugin of its own because a released schema cannot grow (see
 * {@link BundledSchemaPluginConfig}); this one is frozen too, now that it is released.
 */
@KaaPluginConfig(pluginType = PluginType.LOG_APPENDER)
public class MqttAppenderConfigV2 extends BundledSchemaPluginConfig {

    public MqttAppenderConfigV2() {
        super("PahoMqtt", "org.kaaproject.kaa.server.appenders.pahomqtt.appender.MqttLogAppenderV2",
                "MqttAppenderConfigV2.avsc");
    }
}

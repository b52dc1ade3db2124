package org.kaaproject.kaa.server.appenders.pahomqtt.config;

import org.kaaproject.kaa.server.common.plugin.KaaPluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginType;

/**
 * The full plugin, type "PahoMqtt": every setting ({@code MqttAppenderConfig.avsc}, which starts with the original's
 * nine fields in its order). Its schema is frozen once released (see {@link BundledSchemaPluginConfig}).
 */
@KaaPluginConfig(pluginType = PluginType.LOG_APPENDER)
public class MqttAppenderConfig extends BundledSchemaPluginConfig {

    public MqttAppenderConfig() {
        super("PahoMqtt", "org.kaaproject.kaa.server.appenders.pahomqtt.appender.MqttLogAppender",
                "MqttAppenderConfig.avsc");
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.config;

import org.kaaproject.kaa.server.common.plugin.KaaPluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginType;

/**
 * The legacy plugin, type "PahoMQTT (original settings)": the original PahoMQTT appender's config class name and
 * appender class name, and exactly its nine-field configuration record ({@code PahoMqttConfig.avsc}), so the Kaa
 * admin opens, shows and saves every appender the original stored. It is there for those appenders; new ones use
 * {@link MqttAppenderConfigV3}. Its schema is frozen (see {@link BundledSchemaPluginConfig}).
 */
@KaaPluginConfig(pluginType = PluginType.LOG_APPENDER)
public class PahoMQTTAppenderConfig extends BundledSchemaPluginConfig {

    public PahoMQTTAppenderConfig() {
        super("PahoMQTT (original settings)",
                "org.kaaproject.kaa.server.appenders.pahomqtt.appender.PahoMQTTLogAppender", "PahoMqttConfig.avsc");
    }
}

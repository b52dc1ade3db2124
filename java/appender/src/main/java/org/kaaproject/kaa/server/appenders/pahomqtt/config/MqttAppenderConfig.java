package org.kaaproject.kaa.server.appenders.pahomqtt.config;

import org.kaaproject.kaa.server.common.plugin.KaaPluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginType;

/**
 * The first generation of the full settings, type "PahoMqtt (v1 settings)" ({@code MqttAppenderConfig.avsc}, which
 * starts with the original's nine fields in its order), for the appenders stored with it; new appenders use
 * {@link MqttAppenderConfigV3}, whose settings are these and more. It was labelled "PahoMqtt" until V2: the label
 * is only a label, the admin finds the plugin of a stored appender by its appender class name, which stays. Its
 * schema is frozen (see {@link BundledSchemaPluginConfig}).
 */
@KaaPluginConfig(pluginType = PluginType.LOG_APPENDER)
public class MqttAppenderConfig extends BundledSchemaPluginConfig {

    public MqttAppenderConfig() {
        super("PahoMqtt (v1 settings)", "org.kaaproject.kaa.server.appenders.pahomqtt.appender.MqttLogAppender",
                "MqttAppenderConfig.avsc");
    }
}

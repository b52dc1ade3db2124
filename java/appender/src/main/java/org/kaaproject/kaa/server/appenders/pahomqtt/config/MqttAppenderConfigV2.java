package org.kaaproject.kaa.server.appenders.pahomqtt.config;

import org.kaaproject.kaa.server.common.plugin.KaaPluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginType;

/**
 * The second generation of the full settings, type "PahoMqtt (v2 settings)" ({@code MqttAppenderConfigV2.avsc}: every
 * field of {@link MqttAppenderConfig}, the first generation, in its order, then {@code maxInflight}), for the appenders
 * stored with it; new appenders use {@link MqttAppenderConfigV3}. It was labelled "PahoMqtt" until then. Its schema is
 * frozen (see {@link BundledSchemaPluginConfig}).
 */
@KaaPluginConfig(pluginType = PluginType.LOG_APPENDER)
public class MqttAppenderConfigV2 extends BundledSchemaPluginConfig {

    public MqttAppenderConfigV2() {
        super("PahoMqtt (v2 settings)", "org.kaaproject.kaa.server.appenders.pahomqtt.appender.MqttLogAppenderV2",
                "MqttAppenderConfigV2.avsc");
    }
}

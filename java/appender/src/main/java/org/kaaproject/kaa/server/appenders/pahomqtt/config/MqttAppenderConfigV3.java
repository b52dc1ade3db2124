package org.kaaproject.kaa.server.appenders.pahomqtt.config;

import org.kaaproject.kaa.server.common.plugin.KaaPluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginType;

/**
 * The plugin for new appenders, type "PahoMqtt": the third generation of the full settings
 * ({@code MqttAppenderConfigV3.avsc}: the fields of {@link MqttAppenderConfigV2}, in its order, with the texts that may
 * be empty optional). The admin's form takes an empty plain string field as invalid and will not save it, so the
 * earlier generations' empty texts (TLS, failover brokers, status topic, proxy) had to be filled in. Its schema is
 * frozen (see {@link BundledSchemaPluginConfig}).
 */
@KaaPluginConfig(pluginType = PluginType.LOG_APPENDER)
public class MqttAppenderConfigV3 extends BundledSchemaPluginConfig {

    public MqttAppenderConfigV3() {
        super("PahoMqtt", "org.kaaproject.kaa.server.appenders.pahomqtt.appender.MqttLogAppenderV3",
                "MqttAppenderConfigV3.avsc");
    }
}

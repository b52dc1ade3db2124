package org.kaaproject.kaa.server.appenders.pahomqtt.config;

import java.io.IOException;
import java.io.InputStream;

import org.apache.avro.Schema;
import org.kaaproject.kaa.server.common.plugin.KaaPluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginType;

/**
 * Makes the appender known to Kaa's admin service, which scans
 * {@code org.kaaproject.kaa.server.appenders} for this annotation. The class name is the
 * original PahoMQTT appender's, so stored appender records keep pointing at it.
 */
@KaaPluginConfig(pluginType = PluginType.LOG_APPENDER)
public class PahoMQTTAppenderConfig implements PluginConfig {

    static final String SCHEMA_RESOURCE = "PahoMqttConfig.avsc";

    private static final Schema SCHEMA = loadSchema();

    @Override
    public String getPluginTypeName() {
        return "PahoMqtt";
    }

    @Override
    public String getPluginClassName() {
        return "org.kaaproject.kaa.server.appenders.pahomqtt.appender.PahoMQTTLogAppender";
    }

    @Override
    public Schema getPluginConfigSchema() {
        return SCHEMA;
    }

    private static Schema loadSchema() {
        try (InputStream in = PahoMQTTAppenderConfig.class.getResourceAsStream(SCHEMA_RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException("resource " + SCHEMA_RESOURCE + " is missing from the appender jar");
            }
            return new Schema.Parser().parse(in);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + SCHEMA_RESOURCE, e);
        }
    }
}

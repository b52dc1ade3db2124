package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.util.Map;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;

/**
 * What the ORIGINAL PahoMQTT appender left in Kaa's database: appender records with its type name and class name,
 * whose raw configuration is the Avro binary of its nine-field record (schemas/original-PahoMqttConfig.avsc).
 */
public final class OriginalConfig {

    /** The original's type name (the admin UI label) and appender class name, as its stored records hold them. */
    public static final String TYPE_NAME = "PahoMQTT";
    public static final String APPENDER_CLASS = "org.kaaproject.kaa.server.appenders.pahomqtt.appender.PahoMQTTLogAppender";

    private OriginalConfig() {
    }

    public static Schema schema() {
        return AvroReference.parse(TestData.schemaText("original-PahoMqttConfig.avsc"));
    }

    /** The record the original's admin form stored: its form defaults, then these values. */
    public static GenericRecord record(Map<String, Object> values) {
        GenericRecord cfg = new GenericData.Record(schema());
        cfg.put("host", "localhost");
        cfg.put("port", 1883);
        cfg.put("ssl", false);
        cfg.put("verifySslCert", false);
        cfg.put("username", null);
        cfg.put("password", null);
        cfg.put("qos", 3);
        cfg.put("clientId", "DefaultClient-ID");
        cfg.put("mqtttopic", "home/kaa/topic");
        values.forEach(cfg::put);
        return cfg;
    }

    /** The appender record as the original left it: its label and class name, the nine-field raw config. */
    public static LogAppenderDto storedByTheOriginal(String name, Map<String, Object> values) {
        LogAppenderDto dto = KaaNode.appenderDto(name, AvroReference.binary(schema(), record(values)));
        dto.setPluginTypeName(TYPE_NAME);
        dto.setPluginClassName(APPENDER_CLASS);
        return dto;
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;

/**
 * What the ORIGINAL PahoMQTT appender left in Kaa's database: appender records labelled "PahoMQTT", naming its
 * appender class (ours keeps that name, {@link KaaNode#LEGACY_APPENDER_CLASS}), whose raw configuration is the Avro
 * binary (Avro 1.7.5) of its nine-field record, schemas/original-PahoMqttConfig.avsc (checked against the documented
 * record by {@link OriginalConfigTest}).
 */
final class OriginalAppender {

    /** The type name (admin UI label) the original stored in its appender records. */
    static final String TYPE_NAME = "PahoMQTT";

    private OriginalAppender() {
    }

    static Schema schema() {
        return AvroReference.parse(TestData.schemaText("original-PahoMqttConfig.avsc"));
    }

    /** The record the original's admin form stored: its form defaults, then the given field, value pairs. */
    static GenericRecord record(Object... fieldsAndValues) {
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
        for (int i = 0; i < fieldsAndValues.length; i += 2) {
            cfg.put((String) fieldsAndValues[i], fieldsAndValues[i + 1]);
        }
        return cfg;
    }

    /** The raw configuration the original stored for {@link #record}. */
    static byte[] bytes(Object... fieldsAndValues) {
        return AvroReference.binary(schema(), record(fieldsAndValues));
    }

    /** The appender record as the original left it: its label, its appender class name, this raw configuration. */
    static LogAppenderDto stored(String name, byte[] raw) {
        LogAppenderDto dto = KaaNode.appenderDto(KaaNode.LEGACY_CONFIG_CLASS, name, raw);
        dto.setPluginTypeName(TYPE_NAME);
        dto.setPluginClassName(KaaNode.LEGACY_APPENDER_CLASS);
        return dto;
    }
}

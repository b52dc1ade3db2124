package org.kaaproject.kaa.server.appenders.pahomqtt.replay;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.codehaus.jackson.JsonNode;
import org.kaaproject.kaa.common.dto.EndpointProfileDataDto;
import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.common.dto.logs.LogHeaderStructureDto;
import org.kaaproject.kaa.common.dto.logs.LogSchemaDto;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogEvent;
import org.kaaproject.kaa.server.common.log.shared.appender.LogSchema;
import org.kaaproject.kaa.server.common.log.shared.appender.data.BaseLogEventPack;
import org.kaaproject.kaa.server.common.plugin.PluginConfig;

/**
 * Drives the appender the way a Kaa 0.9.0 node does: everything the plugin is known by is a class NAME (a
 * string), resolved by reflection at run time, exactly like the admin service and the log actor do it. The
 * test code never links against the appender's classes.
 */
public final class KaaNode {

    /**
     * The newest plugin's config class (type "PahoMqtt", every setting: the third generation), one of those the
     * admin service discovers by their @KaaPluginConfig annotation: what an appender created in the admin today is
     * stored with, and what this class builds unless told otherwise.
     */
    public static final String CONFIG_CLASS =
            "org.kaaproject.kaa.server.appenders.pahomqtt.config.MqttAppenderConfigV3";
    /** The newest plugin's appender class. */
    public static final String APPENDER_CLASS =
            "org.kaaproject.kaa.server.appenders.pahomqtt.appender.MqttLogAppenderV3";
    /**
     * The second generation of the full settings (type "PahoMqtt (v2 settings)", labelled "PahoMqtt" until the third
     * came), kept for the appenders stored with it: the first generation's fields and maxInflight, every text a plain
     * string.
     */
    public static final String V2_CONFIG_CLASS =
            "org.kaaproject.kaa.server.appenders.pahomqtt.config.MqttAppenderConfigV2";
    /** The second full generation's appender class, which its stored appenders name. */
    public static final String V2_APPENDER_CLASS =
            "org.kaaproject.kaa.server.appenders.pahomqtt.appender.MqttLogAppenderV2";
    /**
     * The first generation of the full settings (type "PahoMqtt (v1 settings)", labelled "PahoMqtt" until the second
     * came), kept for the appenders stored with it: its schema ends with closeTimeoutSeconds.
     */
    public static final String V1_CONFIG_CLASS =
            "org.kaaproject.kaa.server.appenders.pahomqtt.config.MqttAppenderConfig";
    /** The first full generation's appender class, which its stored appenders name. */
    public static final String V1_APPENDER_CLASS =
            "org.kaaproject.kaa.server.appenders.pahomqtt.appender.MqttLogAppender";
    /**
     * The legacy plugin's config class (type "PahoMQTT (original settings)"): the original PahoMQTT appender's class
     * name, with exactly its nine-field schema.
     */
    public static final String LEGACY_CONFIG_CLASS =
            "org.kaaproject.kaa.server.appenders.pahomqtt.config.PahoMQTTAppenderConfig";
    /** The original PahoMQTT appender's class name; every appender record it stored names it. */
    public static final String LEGACY_APPENDER_CLASS =
            "org.kaaproject.kaa.server.appenders.pahomqtt.appender.PahoMQTTLogAppender";

    public static final String APPLICATION_TOKEN = "12345678901234567890";
    public static final String APPLICATION_ID = "1";
    /** The endpoint key hash of the packs {@link #pack(String, int, List)} makes. */
    public static final String ENDPOINT_KEY = "2y8L4jWQbHSlPbUZ3mPBQ1TU3ds=";

    private static final AtomicInteger IDS = new AtomicInteger(100);
    /** Kaa stores each version of an application's log schema once: one id for every pack of it. */
    private static final Map<String, String> LOG_SCHEMA_IDS = new ConcurrentHashMap<>();

    private KaaNode() {
    }

    /** The admin service's view of the newest plugin: {@link #pluginConfig(String)} of {@link #CONFIG_CLASS}. */
    public static PluginConfig pluginConfig() {
        return pluginConfig(CONFIG_CLASS);
    }

    /** The admin service's view: instantiate the config class by name with its no-arg constructor. */
    public static PluginConfig pluginConfig(String configClass) {
        try {
            @SuppressWarnings("deprecation")
            Object o = Class.forName(configClass).newInstance();
            return (PluginConfig) o;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot instantiate " + configClass + ": " + e, e);
        }
    }

    /** The newest plugin's config schema as the admin UI gets it. */
    public static Schema configSchema() {
        return configSchema(CONFIG_CLASS);
    }

    /** The config schema of this plugin as the admin UI gets it. */
    public static Schema configSchema(String configClass) {
        return pluginConfig(configClass).getPluginConfigSchema();
    }

    /** The stored appender record of the newest plugin the node builds an appender from. */
    public static LogAppenderDto appenderDto(String name, byte[] rawConfig) {
        return appenderDto(CONFIG_CLASS, name, rawConfig);
    }

    /** The stored appender record the node builds an appender from, created with the plugin of this config class. */
    public static LogAppenderDto appenderDto(String configClass, String name, byte[] rawConfig) {
        PluginConfig pc = pluginConfig(configClass);
        LogAppenderDto dto = new LogAppenderDto();
        dto.setId(String.valueOf(IDS.incrementAndGet()));
        dto.setName(name);
        dto.setDescription("integration test appender " + name);
        dto.setApplicationId(APPLICATION_ID);
        dto.setApplicationToken(APPLICATION_TOKEN);
        dto.setTenantId("1");
        dto.setMinLogSchemaVersion(1);
        dto.setMaxLogSchemaVersion(Integer.MAX_VALUE);
        dto.setPluginTypeName(pc.getPluginTypeName());
        dto.setPluginClassName(pc.getPluginClassName());
        dto.setHeaderStructure(Arrays.asList(LogHeaderStructureDto.KEYHASH, LogHeaderStructureDto.VERSION,
                LogHeaderStructureDto.TIMESTAMP, LogHeaderStructureDto.TOKEN, LogHeaderStructureDto.LSVERSION));
        dto.setConfirmDelivery(true);
        dto.setCreatedUsername("admin");
        dto.setCreatedTime(System.currentTimeMillis());
        dto.setRawConfiguration(rawConfig);
        return dto;
    }

    /**
     * The node's sequence for an appender of the newest plugin: {@code Class.forName(dto.getPluginClassName())
     * .newInstance()}, then setName, setAppenderId, setApplicationToken, init(dto).
     */
    public static LogAppender load(String name, byte[] rawConfig) {
        return load(appenderDto(name, rawConfig));
    }

    /** {@link #load(String, byte[])} for an appender of the plugin of this config class. */
    public static LogAppender load(String configClass, String name, byte[] rawConfig) {
        return load(appenderDto(configClass, name, rawConfig));
    }

    public static LogAppender load(LogAppenderDto dto) {
        LogAppender appender;
        try {
            @SuppressWarnings("deprecation")
            Object o = Class.forName(dto.getPluginClassName()).newInstance();
            appender = (LogAppender) o;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot instantiate " + dto.getPluginClassName() + ": " + e, e);
        }
        appender.setName(dto.getName());
        appender.setAppenderId(dto.getId());
        appender.setApplicationToken(dto.getApplicationToken());
        appender.init(dto);
        return appender;
    }

    /** {@link #config(String, Map)} of the newest plugin. */
    public static byte[] config(Map<String, Object> overrides) {
        return config(CONFIG_CLASS, overrides);
    }

    /**
     * The raw configuration the admin UI stores for an appender of the plugin of this config class: the Avro binary
     * (Avro 1.7.5) of a record of its config schema with every field at its form default ("by_default"; none: null)
     * and then the given overrides applied.
     */
    public static byte[] config(String configClass, Map<String, Object> overrides) {
        Schema schema = configSchema(configClass);
        GenericRecord rec = new GenericData.Record(schema);
        for (Schema.Field f : schema.getFields()) {
            rec.put(f.name(), formDefault(f));
        }
        for (Map.Entry<String, Object> e : overrides.entrySet()) {
            if (schema.getField(e.getKey()) == null) {
                throw new IllegalArgumentException("config schema has no field " + e.getKey() + ": " + schema);
            }
            rec.put(e.getKey(), e.getValue());
        }
        return encode(schema, rec);
    }

    /** Typical test overrides: loopback broker on the given port, a unique client id, the given topic and QoS. */
    public static Map<String, Object> brokerConfig(int port, String topic, int qos) {
        Map<String, Object> m = new HashMap<>();
        m.put("host", "127.0.0.1");
        m.put("port", port);
        m.put("qos", qos);
        m.put("mqtttopic", topic);
        m.put("clientId", "it-" + UUID.randomUUID().toString().substring(0, 8));
        return m;
    }

    static byte[] encode(Schema schema, GenericRecord rec) {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            BinaryEncoder enc = EncoderFactory.get().binaryEncoder(out, null);
            new GenericDatumWriter<GenericRecord>(schema).write(rec, enc);
            enc.flush();
            return out.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Object formDefault(Schema.Field f) {
        JsonNode d = f.getJsonProp("by_default");
        Schema t = f.schema();
        if (d == null || d.isNull()) {
            if (t.getType() == Schema.Type.UNION) {
                for (Schema branch : t.getTypes()) {
                    if (branch.getType() == Schema.Type.NULL) {
                        return null;
                    }
                }
            }
            throw new IllegalStateException("config field " + f.name() + " has no by_default and is not nullable");
        }
        if (t.getType() == Schema.Type.UNION) {
            t = t.getTypes().get(0).getType() == Schema.Type.NULL && t.getTypes().size() > 1 ? t.getTypes().get(1)
                    : t.getTypes().get(0);
        }
        switch (t.getType()) {
            case STRING:
                return d.getTextValue();
            case INT:
                return d.getIntValue();
            case LONG:
                return d.getLongValue();
            case BOOLEAN:
                return d.getBooleanValue();
            case DOUBLE:
                return d.getDoubleValue();
            case ENUM:
                return new GenericData.EnumSymbol(t, d.getTextValue());
            default:
                throw new IllegalStateException("no form default handling for field " + f.name() + " of type " + t);
        }
    }

    /**
     * A pack as the log actor hands it over: endpoint profile, creation time, log schema (JSON text and version)
     * and one LogEvent per record, each holding the Avro binary of that record. Packs of one schema text and version
     * carry one log schema id, as a node's do. All from one endpoint.
     */
    public static BaseLogEventPack pack(String logSchemaJson, int schemaVersion, List<byte[]> records) {
        return pack(ENDPOINT_KEY, logSchemaJson, schemaVersion, records);
    }

    /** The same, from the endpoint {@code endpointKey} names. */
    public static BaseLogEventPack pack(String endpointKey, String logSchemaJson, int schemaVersion,
            List<byte[]> records) {
        EndpointProfileDataDto profile = new EndpointProfileDataDto("ep-" + IDS.incrementAndGet(), endpointKey, 1,
                "{}", 1, "{}");
        List<LogEvent> events = new ArrayList<>(records.size());
        for (byte[] r : records) {
            LogEvent e = new LogEvent();
            e.setLogData(r);
            events.add(e);
        }
        BaseLogEventPack pack = new BaseLogEventPack(profile, System.currentTimeMillis(), schemaVersion, events);
        LogSchemaDto dto = new LogSchemaDto();
        dto.setId(LOG_SCHEMA_IDS.computeIfAbsent(schemaVersion + "\n" + logSchemaJson,
                k -> String.valueOf(IDS.incrementAndGet())));
        dto.setApplicationId(APPLICATION_ID);
        dto.setName("log schema v" + schemaVersion);
        dto.setSchema(logSchemaJson);
        dto.setVersion(schemaVersion);
        pack.setLogSchema(new LogSchema(dto));
        pack.setUserId("user-1");
        return pack;
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.codehaus.jackson.JsonNode;
import org.codehaus.jackson.map.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.plugin.PluginConfig;

/**
 * Upgrading in place, seen from Kaa 0.9.0's admin service, which decodes an appender's stored configuration with
 * the schema of the plugin its appender class name belongs to, through {@code GenericAvroConverter}
 * ({@link AdminConverter}): Avro's binary decoder gives a missing trailing field no default, it throws. So each
 * plugin's schema must read exactly the bytes stored under its class name: the legacy plugin (the original's class
 * names) has the original's nine-field record, and each generation of the full settings is a plugin of its own under
 * new class names ({@link ReleasedPlugin}), of which no earlier plugin stored anything. Each case ends where it
 * matters: the appender started from those bytes delivers to a real Mosquitto.
 */
class AdminUpgradeTest {

    private static final Duration GRACE = Duration.ofMillis(500);
    private static final ObjectMapper JSON = new ObjectMapper();

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    private static Schema legacySchema() {
        return KaaNode.configSchema(KaaNode.LEGACY_CONFIG_CLASS);
    }

    /** A pack of telemetry records, the payloads Kaa's converter makes of them, and the log schema's text. */
    private static final class Pack {
        final String logSchema = TestData.schemaText("telemetry.avsc");
        final List<byte[]> records;
        final List<byte[]> expected;

        Pack(int seed, int n) {
            Schema schema = AvroReference.parse(logSchema);
            records = TestData.telemetryBinaries(schema, new Random(seed), n, i -> "admin-" + seed + "-r" + i);
            expected = AvroReference.expectedPayloads(schema, records);
        }
    }

    /** Appends the pack, asserts onSuccess (once), and returns what the subscriber got once n messages came. */
    private static List<Subscriber.Received> deliver(LogAppender appender, Pack pack, Subscriber sub, int n,
            String label) {
        RecordingCallback cb = RecordingCallback.append(appender, KaaNode.pack(pack.logSchema, 1, pack.records),
                label);
        cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(30), GRACE);
        sub.awaitCount(n, Duration.ofSeconds(10));
        RecordingCallback.sleep(GRACE);
        assertNull(sub.connectionLost(), "the test subscriber lost its connection");
        List<Subscriber.Received> got = sub.messages();
        assertEquals(n, got.size(), label + ": messages received");
        return got;
    }

    // ------------------------------------------------------------------------------------------- (a) original's bytes

    /**
     * The bytes the original stored under the legacy plugin's class name (made here with Avro 1.7.5 from the
     * original's schema) open in the admin with the legacy plugin's schema, field for field; their JSON view (the
     * REST API, the list of an application's appenders included) works and shows the values; saving them unchanged,
     * from the form or from JSON, writes the same bytes; saving an edit writes bytes the original's own schema still
     * reads (a rollback to the original jar would open them too).
     */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void whatTheOriginalStoredOpensShowsAndSavesInTheAdmin() throws IOException {
        PluginConfig legacy = KaaNode.pluginConfig(KaaNode.LEGACY_CONFIG_CLASS);
        assertEquals(KaaNode.LEGACY_APPENDER_CLASS, legacy.getPluginClassName(),
                "the class name the original's appender records name, by which the admin picks the schema");
        Schema schema = legacy.getPluginConfigSchema();
        byte[] raw = OriginalAppender.bytes("host", "mqtt.example.org", "port", 8883, "qos", 3, "mqtttopic",
                "plant/7/logs");

        GenericRecord opened = AdminConverter.decodeBinary(schema, raw);
        GenericRecord stored = OriginalAppender.record("host", "mqtt.example.org", "port", 8883, "qos", 3,
                "mqtttopic", "plant/7/logs");
        for (Schema.Field f : OriginalAppender.schema().getFields()) {
            assertEquals(String.valueOf(stored.get(f.name())), String.valueOf(opened.get(f.name())), f.name());
        }

        String json = AdminConverter.toJson(raw, schema.toString());
        assertEquals("{\"host\":\"mqtt.example.org\",\"port\":8883,\"ssl\":false,\"verifySslCert\":false,"
                + "\"username\":null,\"password\":null,\"qos\":3,\"clientId\":\"DefaultClient-ID\","
                + "\"mqtttopic\":\"plant/7/logs\"}", json, "the JSON view");

        assertArrayEquals(raw, AvroReference.binary(schema, opened), "saved from the form unchanged");
        assertArrayEquals(raw, AdminConverter.toRawData(json, schema.toString()), "saved from JSON unchanged");

        opened.put("qos", 1);
        opened.put("mqtttopic", "plant/7/logs/v2");
        opened.put("username", "operator");
        byte[] edited = AvroReference.binary(schema, opened);
        GenericRecord reread = AdminConverter.decodeBinary(OriginalAppender.schema(), edited);
        assertEquals(1, reread.get("qos"));
        assertEquals("plant/7/logs/v2", reread.get("mqtttopic").toString());
        assertEquals("operator", reread.get("username").toString());
        assertTrue(AdminConverter.toJson(edited, schema.toString()).contains("\"username\":{\"string\":\"operator\"}"));
    }

    /**
     * The full settings' class names are new: no appender record of the original names them, so the admin never
     * reads the original's bytes with a full schema. (The admin keys plugins by appender class name.)
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {KaaNode.V1_CONFIG_CLASS, KaaNode.V2_CONFIG_CLASS, KaaNode.CONFIG_CLASS})
    void theOriginalStoredNothingUnderTheFullPluginsClassNames(String configClass) {
        PluginConfig full = KaaNode.pluginConfig(configClass);
        assertNotEquals(KaaNode.LEGACY_APPENDER_CLASS, full.getPluginClassName());
    }

    // ------------------------------------------------------------------------------------------- (b) form defaults

    /**
     * A new appender of any plugin as the admin makes it: a record of every field's form default ({@code
     * by_default}; optional fields null) encodes, opens again, and its JSON view shows exactly those defaults and
     * saves back to the same bytes. The form saves it with the port moved to the test broker (the one edit an
     * operator makes here) and, in v1 and v2, whose form refuses an empty plain string, each of the nine texts
     * whose default is empty filled with a single space, as an operator must: the appender started from those bytes
     * delivers a pack to {@code localhost}, topic {@code home/kaa/topic}, at the form's QoS (the legacy form's 3
     * means 2), and answers onSuccess.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {KaaNode.LEGACY_CONFIG_CLASS, KaaNode.V1_CONFIG_CLASS, KaaNode.V2_CONFIG_CLASS,
            KaaNode.CONFIG_CLASS})
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aRecordOfTheFormDefaultsEncodesDecodesShowsAndDelivers(String configClass) throws IOException {
        Schema schema = KaaNode.configSchema(configClass);
        byte[] defaults = KaaNode.config(configClass, Map.of());
        GenericRecord opened = AdminConverter.decodeBinary(schema, defaults);
        assertArrayEquals(defaults, AvroReference.binary(schema, opened), "encode(decode(bytes))");

        String json = AdminConverter.toJson(defaults, schema.toString());
        JsonNode view = JSON.readTree(json);
        assertEquals(schema.getFields().size(), view.size(), "every field in the JSON view: " + json);
        for (Schema.Field f : schema.getFields()) {
            JsonNode formDefault = f.getJsonProp("by_default");
            JsonNode shown = view.get(f.name());
            if (formDefault == null) {
                assertTrue(shown.isNull(), f.name() + " is optional and empty: " + json);
            } else {
                assertEquals(formDefault, shown, f.name() + " shows its form default: " + json);
            }
        }
        assertArrayEquals(defaults, AdminConverter.toRawData(json, schema.toString()), "saved from JSON");

        opened.put("port", BROKER.port());
        int filled = 0;
        for (Schema.Field f : schema.getFields()) {
            JsonNode formDefault = f.getJsonProp("by_default");
            if (f.schema().getType() == Schema.Type.STRING && formDefault != null && formDefault.asText().isEmpty()) {
                opened.put(f.name(), " ");
                filled++;
            }
        }
        boolean plainTexts = configClass.equals(KaaNode.V1_CONFIG_CLASS)
                || configClass.equals(KaaNode.V2_CONFIG_CLASS);
        assertEquals(plainTexts ? 9 : 0, filled, "empty plain texts the form will not save");
        byte[] saved = AvroReference.binary(schema, opened);
        LogAppenderDto dto = KaaNode.appenderDto(configClass, "form-defaults", saved);
        assertEquals(KaaNode.pluginConfig(configClass).getPluginClassName(), dto.getPluginClassName());
        int publishedQos = Math.min(2, (Integer) opened.get("qos"));
        Pack pack = new Pack(8, 8);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), "home/kaa/topic", 2)) {
            LogAppender appender = BROKER.load(dto);
            List<Subscriber.Received> got = deliver(appender, pack, sub, pack.records.size(), configClass);
            List<byte[]> payloads = new ArrayList<>();
            for (Subscriber.Received m : got) {
                assertEquals("home/kaa/topic", m.topic);
                assertEquals(publishedQos, m.qos, "the form's QoS");
                payloads.add(m.payload);
            }
            Payloads.assertSameMultiset(configClass, pack.expected, payloads);
        }
    }

    // ------------------------------------------------------------------------------------------- (c) why new plugins

    /** Every earlier plugin with every later one, oldest first. */
    static Stream<Arguments> earlierAndLater() {
        List<Arguments> pairs = new ArrayList<>();
        ReleasedPlugin[] all = ReleasedPlugin.values();
        for (int i = 0; i < all.length; i++) {
            for (int j = i + 1; j < all.length; j++) {
                pairs.add(Arguments.of(all[i], all[j]));
            }
        }
        return pairs.stream();
    }

    /**
     * The failure a new plugin for new settings avoids: what a plugin stored (the original's bytes, or a full
     * generation's form defaults) read with a later plugin's schema, as the admin would if that schema had replaced
     * the earlier one under the same class name (as in this project's earlier builds), ends before the first field
     * the later one added. Avro's binary decoder does not default it: {@code EOFException}, so the admin could not
     * open the appender, and {@code toJson}, which the REST list of an application's appenders runs for each of them,
     * throws. The node itself reads them either way (its decoder defaults absent trailing fields). Where the later one
     * made a text optional (v3), the bytes are not even read that far: they are malformed for it.
     */
    @ParameterizedTest(name = "{0} read as {1}")
    @MethodSource("earlierAndLater")
    void whatAnEarlierPluginStoredCannotBeReadWithALaterSchema(ReleasedPlugin earlier,
            ReleasedPlugin later) {
        byte[] raw = earlier == ReleasedPlugin.ORIGINAL_SETTINGS ? OriginalAppender.bytes()
                : KaaNode.config(earlier.configClass, Map.of());
        Schema schema = KaaNode.configSchema(later.configClass);
        List<Schema.Field> before = KaaNode.configSchema(earlier.configClass).getFields();
        boolean sameTypes = before.stream().allMatch(f -> f.schema().equals(schema.getField(f.name()).schema()));
        Exception read = assertThrows(Exception.class, () -> AdminConverter.decodeBinary(schema, raw));
        RuntimeException e = assertThrows(RuntimeException.class, () -> AdminConverter.toJson(raw, schema.toString()));
        if (sameTypes) {
            assertInstanceOf(EOFException.class, read);
            assertInstanceOf(EOFException.class, e.getCause(), "GenericAvroConverter.toJson wraps the EOFException");
        }
    }

    // ------------------------------------------------------------------------------------------- (d) earlier builds

    /**
     * The record earlier builds stored: the first full generation's first 28 fields (the fields after them came later;
     * every text a plain string).
     */
    private static Schema earlierBuildsSchema() {
        Schema full = KaaNode.configSchema(KaaNode.V1_CONFIG_CLASS);
        List<Schema.Field> fields = new ArrayList<>();
        for (Schema.Field f : full.getFields().subList(0, 28)) {
            fields.add(new Schema.Field(f.name(), f.schema(), f.doc(), f.defaultValue()));
        }
        Schema earlier = Schema.createRecord(full.getName(), full.getDoc(), full.getNamespace(), false);
        earlier.setFields(fields);
        return earlier;
    }

    /** Those 28 fields at the form defaults with these overrides, in Avro binary, as an earlier build stored them. */
    private static byte[] earlierBuildsRecord(Map<String, Object> overrides) throws IOException {
        GenericRecord full = AdminConverter.decodeBinary(KaaNode.configSchema(KaaNode.V1_CONFIG_CLASS),
                KaaNode.config(KaaNode.V1_CONFIG_CLASS, overrides));
        Schema schema = earlierBuildsSchema();
        GenericRecord earlier = new GenericData.Record(schema);
        for (Schema.Field f : schema.getFields()) {
            earlier.put(f.name(), full.get(f.name()));
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
        new GenericDatumWriter<GenericRecord>(schema).write(earlier, encoder);
        encoder.flush();
        return out.toByteArray();
    }

    /**
     * What this project's earlier builds stored: the full 28-field record, under the original's class name. The
     * admin now opens them with the nine-field schema (the first nine fields right, the bytes after them ignored)
     * and shows nine fields; the node started from them still applies every setting (here grouping PACK: the
     * subscriber gets one message, the pack's records as a JSON array). Saving such an appender in the admin writes
     * the nine fields only (a prefix of the old bytes), so its other settings go back to their defaults: the node
     * then publishes one message per record. The README says so.
     */
    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void earlierBuildsRecordsShowNineFieldsAndKeepTheirSettingsUntilSaved() throws IOException {
        String topic = "kaa/it/admin/earlier/" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> overrides = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        overrides.put("grouping", new GenericData.EnumSymbol(KaaNode.configSchema().getField("grouping").schema(),
                "PACK"));
        byte[] earlier = earlierBuildsRecord(overrides);
        assertEquals(28, AdminConverter.decodeBinary(earlierBuildsSchema(), earlier).getSchema().getFields().size(),
                "the earlier builds' record: 28 fields");

        Schema legacy = legacySchema();
        GenericRecord opened = AdminConverter.decodeBinary(legacy, earlier);
        for (String field : List.of("host", "port", "qos", "clientId", "mqtttopic")) {
            assertEquals(String.valueOf(overrides.get(field)), String.valueOf(opened.get(field)), field);
        }
        assertEquals(false, opened.get("ssl"));
        assertNull(opened.get("username"));
        String json = AdminConverter.toJson(earlier, legacy.toString());
        assertEquals(9, JSON.readTree(json).size(), "nine fields shown: " + json);
        assertFalse(json.contains("grouping"), json);

        LogAppenderDto dto = KaaNode.appenderDto(KaaNode.LEGACY_CONFIG_CLASS, "earlier-build", earlier);
        dto.setPluginTypeName("PahoMqtt"); // the label the earlier builds stored
        assertEquals(KaaNode.LEGACY_APPENDER_CLASS, dto.getPluginClassName());
        Pack pack = new Pack(16, 6);
        List<String> events = new ArrayList<>();
        for (byte[] e : pack.expected) {
            events.add(new String(e, StandardCharsets.UTF_8));
        }
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            List<Subscriber.Received> got = deliver(BROKER.load(dto), pack, sub, 1, "earlier build's record");
            assertEquals("[" + String.join(",", events) + "]", new String(got.get(0).payload, StandardCharsets.UTF_8),
                    "grouping PACK, a setting after the ninth field, still applies");
        }
        BROKER.closeAppenders();

        byte[] resaved = AvroReference.binary(legacy, opened);
        assertTrue(resaved.length < earlier.length, "the admin writes the nine fields only");
        assertArrayEquals(Arrays.copyOf(earlier, resaved.length), resaved, "a prefix of the earlier bytes");
        dto.setRawConfiguration(resaved);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            List<Subscriber.Received> got = deliver(BROKER.load(dto), pack, sub, pack.records.size(),
                    "saved in the admin");
            List<byte[]> payloads = new ArrayList<>();
            for (Subscriber.Received m : got) {
                payloads.add(m.payload);
            }
            Payloads.assertSameMultiset("grouping back to its default, RECORD", pack.expected, payloads);
        }
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.io.ByteArrayOutputStream;
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
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.io.JsonEncoder;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.common.dto.logs.LogHeaderStructureDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * The payload formats and groupings beyond the original's, each checked against what Avro
 * 1.7.5 makes of the same records, and the record header checked against what Kaa's
 * AbstractLogAppender fills for every header structure.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class PayloadFormatTest {

    /** Kaa's RecordHeader schema, as in Kaa 0.9.0. */
    private static final Schema RECORD_HEADER = new Schema.Parser().parse("{\"type\":\"record\",\"name\":\"RecordHeader\","
            + "\"namespace\":\"org.kaaproject.kaa.server.common.log.shared.avro.gen\",\"fields\":["
            + "{\"name\":\"endpointKeyHash\",\"type\":[{\"type\":\"string\",\"avro.java.string\":\"String\"},\"null\"]},"
            + "{\"name\":\"applicationToken\",\"type\":[{\"type\":\"string\",\"avro.java.string\":\"String\"},\"null\"]},"
            + "{\"name\":\"headerVersion\",\"type\":[\"int\",\"null\"]},{\"name\":\"timestamp\",\"type\":[\"long\",\"null\"]},"
            + "{\"name\":\"logSchemaVersion\",\"type\":[\"int\",\"null\"]}]}");
    private static final Pattern TIMESTAMP = Pattern.compile("\"timestamp\":\\{\"long\":(\\d+)\\}");
    private static final int SCHEMA_VERSION = 7;

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    private static String logSchemaText;
    private static Schema logSchema;

    @BeforeAll
    static void parseLogSchema() {
        logSchemaText = TestData.schemaText("telemetry.avsc");
        logSchema = AvroReference.parse(logSchemaText);
    }

    private static List<byte[]> records(int n) {
        return TestData.telemetryBinaries(logSchema, new Random(n * 31L), n, i -> "fmt-" + i);
    }

    /** Publishes one pack with the given format, grouping and header structure; returns what a subscriber got. */
    private static List<byte[]> publish(String format, String grouping, List<LogHeaderStructureDto> header,
            List<byte[]> records, int expectedMessages) {
        String topic = "fmt/" + UUID.randomUUID();
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        Schema configSchema = KaaNode.configSchema();
        cfg.put("payloadFormat", new GenericData.EnumSymbol(configSchema.getField("payloadFormat").schema(), format));
        cfg.put("grouping", new GenericData.EnumSymbol(configSchema.getField("grouping").schema(), grouping));
        LogAppenderDto dto = KaaNode.appenderDto("fmt", KaaNode.config(cfg));
        dto.setHeaderStructure(header);
        LogAppender appender = KaaNode.load(dto);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            RecordingCallback cb = new RecordingCallback(format + "/" + grouping);
            appender.doAppend(KaaNode.pack(logSchemaText, SCHEMA_VERSION, records), cb);
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(200));
            List<byte[]> got = sub.awaitCount(expectedMessages, Duration.ofSeconds(10));
            assertEquals(expectedMessages, got.size(), "messages received");
            return got;
        } finally {
            appender.close();
        }
    }

    private static String utf8(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    /** Kaa's header, as AbstractLogAppender fills it and its converter writes it (Avro 1.7.5 JSON). */
    private static String kaaHeader(List<LogHeaderStructureDto> structure, long timestamp) throws IOException {
        GenericRecord h = new GenericData.Record(RECORD_HEADER);
        for (LogHeaderStructureDto field : structure) {
            switch (field) {
                case KEYHASH:
                    h.put("endpointKeyHash", KaaNode.pack(logSchemaText, SCHEMA_VERSION, List.of()).getEndpointKey());
                    break;
                case TIMESTAMP:
                    h.put("timestamp", timestamp);
                    break;
                case TOKEN:
                    h.put("applicationToken", KaaNode.APPLICATION_TOKEN);
                    break;
                case VERSION:
                    h.put("headerVersion", 1);
                    break;
                case LSVERSION:
                    h.put("logSchemaVersion", SCHEMA_VERSION);
                    break;
                default:
                    throw new IllegalStateException(field.toString());
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        JsonEncoder enc = EncoderFactory.get().jsonEncoder(RECORD_HEADER, out);
        new GenericDatumWriter<GenericRecord>(RECORD_HEADER).write(h, enc);
        enc.flush();
        return utf8(out.toByteArray());
    }

    @Test
    void everyHeaderStructureMatchesWhatKaaFills() throws IOException {
        List<byte[]> records = records(1);
        LogHeaderStructureDto[] all = LogHeaderStructureDto.values();
        for (int mask = 0; mask < 1 << all.length; mask++) {
            List<LogHeaderStructureDto> structure = new ArrayList<>();
            for (int i = 0; i < all.length; i++) {
                if ((mask & 1 << i) != 0) {
                    structure.add(all[i]);
                }
            }
            long before = System.currentTimeMillis();
            String got = utf8(publish("JSON_WITH_HEADER", "RECORD", structure, records, 1).get(0));
            long after = System.currentTimeMillis();
            long timestamp = 0;
            Matcher m = TIMESTAMP.matcher(got);
            if (structure.contains(LogHeaderStructureDto.TIMESTAMP)) {
                assertTrue(m.find(), "no timestamp in " + got);
                timestamp = Long.parseLong(m.group(1));
                assertTrue(timestamp >= before && timestamp <= after,
                        "timestamp " + timestamp + " not taken at append time [" + before + ", " + after + "]");
            }
            String event = utf8(AvroReference.expectedPayload(logSchema, records.get(0)));
            assertEquals("{\"header\":" + kaaHeader(structure, timestamp) + ",\"event\":" + event + "}", got,
                    "header structure " + structure);
        }
    }

    @Test
    void packGroupingPublishesOneMessagePerPack() throws IOException {
        List<byte[]> records = records(25);
        List<String> events = new ArrayList<>();
        for (byte[] r : records) {
            events.add(utf8(AvroReference.expectedPayload(logSchema, r)));
        }
        String json = utf8(publish("AVRO_JSON", "PACK", List.of(), records, 1).get(0));
        assertEquals("[" + String.join(",", events) + "]", json);

        String withHeader = utf8(publish("JSON_WITH_HEADER", "PACK", List.of(LogHeaderStructureDto.TOKEN), records, 1)
                .get(0));
        assertEquals("{\"header\":" + kaaHeader(List.of(LogHeaderStructureDto.TOKEN), 0) + ",\"events\":["
                + String.join(",", events) + "]}", withHeader);

        // AVRO_BINARY per pack is an Avro array of the records: Avro 1.7.5 reads it back.
        byte[] binary = publish("AVRO_BINARY", "PACK", List.of(), records, 1).get(0);
        Schema array = Schema.createArray(logSchema);
        List<?> decoded = new GenericDatumReader<List<?>>(array).read(null,
                DecoderFactory.get().binaryDecoder(binary, null));
        assertEquals(records.size(), decoded.size());
        for (int i = 0; i < records.size(); i++) {
            // Compared as records: re-encoding would reorder map entries (Java HashMap order).
            assertEquals(AvroReference.decode(logSchema, records.get(i)), decoded.get(i), "record " + i);
        }
    }

    @Test
    void binaryRecordsArePublishedAsUploaded() {
        List<byte[]> records = records(10);
        List<byte[]> got = publish("AVRO_BINARY", "RECORD", List.of(), records, records.size());
        Payloads.assertSameMultiset("AVRO_BINARY", records, got);
    }

    @Test
    void plainJsonUnwrapsUnionsAndEncodesBytesAsBase64() {
        Schema schema = AvroReference.parse("{\"type\":\"record\",\"name\":\"P\",\"namespace\":\"n\",\"fields\":["
                + "{\"name\":\"note\",\"type\":[\"null\",\"string\"]},{\"name\":\"v\",\"type\":[\"null\",\"double\"]},"
                + "{\"name\":\"blob\",\"type\":\"bytes\"}]}");
        GenericRecord r = new GenericData.Record(schema);
        r.put("note", "hi");
        r.put("v", 2.5);
        r.put("blob", java.nio.ByteBuffer.wrap(new byte[] {(byte) 0xfb, (byte) 0xff, 0, 'a'}));
        String topic = "fmt/" + UUID.randomUUID();
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
        cfg.put("payloadFormat", new GenericData.EnumSymbol(KaaNode.configSchema().getField("payloadFormat").schema(),
                "JSON"));
        LogAppender appender = KaaNode.load("plain", KaaNode.config(cfg));
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            RecordingCallback cb = new RecordingCallback("plain");
            appender.doAppend(KaaNode.pack(schema.toString(), 1, Arrays.asList(AvroReference.binary(schema, r))), cb);
            cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(10), Duration.ofMillis(200));
            assertEquals("{\"note\":\"hi\",\"v\":2.5,\"blob\":\"+/8AYQ==\"}",
                    utf8(sub.awaitCount(1, Duration.ofSeconds(10)).get(0)));
        } finally {
            appender.close();
        }
    }
}

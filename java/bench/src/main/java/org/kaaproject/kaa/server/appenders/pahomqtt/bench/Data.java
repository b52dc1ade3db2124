package org.kaaproject.kaa.server.appenders.pahomqtt.bench;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.io.JsonEncoder;

/**
 * The benchmark's records, made once and shared by every mode through files in one directory:
 * {@code telemetry.avsc} (the log schema), {@code records.bin} (Avro binary, what endpoints upload) and
 * {@code payloads.bin} (Avro 1.7.5's JsonEncoder text of each, what the original appender published). Both
 * {@code .bin} files hold each record as a 4-byte big-endian length and its bytes; the Rust examples read the
 * same files.
 */
final class Data {

    static final String SCHEMA_FILE = "telemetry.avsc";
    static final String RECORDS_FILE = "records.bin";
    static final String PAYLOADS_FILE = "payloads.bin";

    private static final String[] SITES = {"berlin-3", "lyon-1", "austin-7", "osaka-2", "porto-4", "oslo-1"};
    private static final String[] FIRMWARE = {"1.4.2", "1.4.3", "1.5.0-rc1", "1.3.9"};
    private static final String[] MESSAGES = {"door opened", "threshold exceeded: temperature",
        "battery low", "sensor recalibrated", "link quality degraded"};

    private Data() {
    }

    static String schemaText() {
        try (InputStream in = Data.class.getResourceAsStream("/bench-telemetry.avsc")) {
            return new String(readAll(in), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Writes the three files for {@code count} records made from {@code seed}; returns a summary line. With
     * {@code recordBytes} above 0 each record's Avro JSON is made about that long (within a tag
     * entry's 36 bytes) by a longer {@code samples} array (a waveform: its doubles take about as many bytes in
     * JSON as in Avro binary) and more {@code tags} (strings: about 10% more in JSON), half of the growth each.
     * Large records of real telemetry are such arrays and maps, not longer field names.
     */
    static String generate(Path dir, int count, long seed, int recordBytes) throws IOException {
        Files.createDirectories(dir);
        String text = schemaText();
        Schema schema = new Schema.Parser().parse(text);
        Files.write(dir.resolve(SCHEMA_FILE), text.getBytes(StandardCharsets.UTF_8));
        Random rnd = new Random(seed);
        Schema status = schema.getField("status").schema();
        GenericDatumWriter<GenericRecord> writer = new GenericDatumWriter<>(schema);
        List<byte[]> records = new ArrayList<>(count);
        long binaryBytes = 0;
        long jsonBytes = 0;
        long t0 = 1732650000000L;
        for (int i = 0; i < count; i++) {
            GenericRecord r = new GenericData.Record(schema);
            int device = rnd.nextInt(5000);
            r.put("deviceId", String.format("dev-%05d-%08x", device, device * 2654435761L & 0xffffffffL));
            r.put("seq", 100000L + i);
            long ts = t0 + i * 250L + rnd.nextInt(250);
            r.put("timestampMs", ts);
            r.put("receivedMs", ts + 20 + rnd.nextInt(400));
            // Sensor readings: a few rounded like most firmware sends them, one at full precision.
            r.put("temperature", 15 + rnd.nextDouble() * 15);
            r.put("humidity", Math.round((30 + rnd.nextDouble() * 50) * 10) / 10.0);
            r.put("pressure", Math.round((990 + rnd.nextDouble() * 40) * 100) / 100.0);
            r.put("batteryVolts", Math.round((3.3 + rnd.nextDouble() * 0.9) * 1000) / 1000.0);
            r.put("rssi", -40 - rnd.nextInt(60));
            int s = rnd.nextInt(100);
            r.put("status", new GenericData.EnumSymbol(status, s < 85 ? "OK" : s < 95 ? "WARN" : s < 99 ? "FAIL"
                    : "MAINTENANCE"));
            r.put("message", rnd.nextInt(10) < 3 ? MESSAGES[rnd.nextInt(MESSAGES.length)] : null);
            Map<String, String> tags = new HashMap<>();
            tags.put("site", SITES[rnd.nextInt(SITES.length)]);
            tags.put("fw", FIRMWARE[rnd.nextInt(FIRMWARE.length)]);
            r.put("tags", tags);
            List<Double> samples = new ArrayList<>();
            for (int k = 0; k < 4; k++) {
                samples.add(Math.round(rnd.nextGaussian() * 1000) / 100.0);
            }
            r.put("samples", samples);
            if (recordBytes > 0) {
                grow(r, recordBytes, rnd, writer, schema);
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            BinaryEncoder enc = EncoderFactory.get().binaryEncoder(out, null);
            writer.write(r, enc);
            enc.flush();
            records.add(out.toByteArray());
            binaryBytes += out.size();
        }
        JavaDecoder decoder = new JavaDecoder(schema);
        List<byte[]> payloads = new ArrayList<>(count);
        for (byte[] rec : records) {
            byte[] json = decoder.toJson(rec);
            payloads.add(json);
            jsonBytes += json.length;
        }
        writeFrames(dir.resolve(RECORDS_FILE), records);
        writeFrames(dir.resolve(PAYLOADS_FILE), payloads);
        return String.format("%d records: %.0f bytes Avro binary, %.0f bytes Avro JSON on average", count,
                (double) binaryBytes / count, (double) jsonBytes / count);
    }

    /** Characters of a tag key ("x00000") and value: each tag entry takes 36 bytes of Avro JSON. */
    private static final int TAG_KEY_CHARS = 6;
    private static final int TAG_VALUE_CHARS = 24;
    private static final int TAG_JSON_BYTES = 1 + TAG_KEY_CHARS + 3 + TAG_VALUE_CHARS + 2;

    /** Makes the record's Avro JSON about {@code target} bytes long: half the growth samples, half tags. */
    @SuppressWarnings("unchecked")
    private static void grow(GenericRecord r, int target, Random rnd, GenericDatumWriter<GenericRecord> writer,
            Schema schema) throws IOException {
        JavaDecoder json = new JavaDecoder(schema);
        int extra = target - json.encode(r).length;
        List<Double> samples = (List<Double>) r.get("samples");
        // About 6.5 bytes of JSON per sample ("-12.34,"), as made above.
        for (int k = 0, n = Math.max(0, extra / 2 / 6); k < n; k++) {
            samples.add(Math.round(rnd.nextGaussian() * 1000) / 100.0);
        }
        Map<String, String> tags = (Map<String, String>) r.get("tags");
        int left = target - json.encode(r).length;
        char[] value = new char[TAG_VALUE_CHARS];
        for (int k = 0, n = Math.max(0, left / TAG_JSON_BYTES); k < n; k++) {
            for (int c = 0; c < value.length; c++) {
                value[c] = Character.forDigit(rnd.nextInt(16), 16);
            }
            tags.put(String.format("x%05d", k), new String(value));
        }
    }

    /**
     * Avro 1.7.5 binary to Avro-JSON the way Kaa's GenericAvroConverter does it (decodeBinary with a reused
     * BinaryDecoder, then encodeToJsonBytes with a fresh JsonEncoder per record). Not thread-safe.
     */
    static final class JavaDecoder {
        private final Schema schema;
        private final GenericDatumReader<GenericRecord> reader;
        private final GenericDatumWriter<GenericRecord> writer;
        private BinaryDecoder binaryDecoder;

        JavaDecoder(Schema schema) {
            this.schema = schema;
            this.reader = new GenericDatumReader<>(schema);
            this.writer = new GenericDatumWriter<>(schema);
        }

        GenericRecord decode(byte[] data) throws IOException {
            binaryDecoder = DecoderFactory.get().binaryDecoder(data, binaryDecoder);
            return reader.read(null, binaryDecoder);
        }

        byte[] encode(GenericRecord record) throws IOException {
            ByteArrayOutputStream baos = new ByteArrayOutputStream();
            JsonEncoder json = EncoderFactory.get().jsonEncoder(schema, baos);
            writer.write(record, json);
            json.flush();
            baos.flush();
            return baos.toByteArray();
        }

        byte[] toJson(byte[] data) throws IOException {
            return encode(decode(data));
        }
    }

    static List<byte[]> readFrames(Path file) throws IOException {
        List<byte[]> frames = new ArrayList<>();
        try (DataInputStream in = new DataInputStream(new java.io.BufferedInputStream(Files.newInputStream(file)))) {
            while (true) {
                int len;
                try {
                    len = in.readInt();
                } catch (java.io.EOFException end) {
                    return frames;
                }
                byte[] b = new byte[len];
                in.readFully(b);
                frames.add(b);
            }
        }
    }

    static void writeFrames(Path file, List<byte[]> frames) throws IOException {
        try (OutputStream raw = Files.newOutputStream(file);
                DataOutputStream out = new DataOutputStream(new java.io.BufferedOutputStream(raw))) {
            for (byte[] f : frames) {
                out.writeInt(f.length);
                out.write(f);
            }
        }
    }

    private static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        for (int n; (n = in.read(buf)) > 0;) {
            out.write(buf, 0, n);
        }
        return out.toByteArray();
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.IntFunction;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;

/** Log schemas (test resources under /schemas) and record generators. */
public final class TestData {

    private TestData() {
    }

    /** A schema resource's JSON text, as the admin stores a log schema. */
    public static String schemaText(String resource) {
        try (InputStream in = TestData.class.getResourceAsStream("/schemas/" + resource)) {
            if (in == null) {
                throw new IllegalStateException("missing test resource /schemas/" + resource);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static final String[] DEVICE_SUFFIX = {"", "", "", " café", " température ✓", " 日本語", " \"quoted\"",
        " back\\slash", " tab\there", " new\nline", " 😀"};
    private static final String[] COUNTER_KEYS = {"rx", "tx", "err", "drop", "retry", "reboots", "q", "batteryLow"};
    private static final String[] STATUS = {"OK", "WARN", "FAIL"};

    /**
     * {@code n} telemetry records in Avro binary, made one after the other from {@code rnd}; record {@code i} has
     * the id {@code id.apply(i)} and the sequence number {@code i}.
     */
    public static List<byte[]> telemetryBinaries(Schema s, Random rnd, int n, IntFunction<String> id) {
        List<byte[]> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(AvroReference.binary(s, telemetry(s, rnd, id.apply(i), i)));
        }
        return out;
    }

    /** A telemetry record in Avro binary whose note is {@code noteChars} characters long. */
    public static byte[] telemetryWithNote(Schema s, Random rnd, String id, int seq, int noteChars) {
        GenericRecord r = telemetry(s, rnd, id, seq);
        char[] note = new char[noteChars];
        java.util.Arrays.fill(note, 'x');
        r.put("note", new String(note));
        return AvroReference.binary(s, r);
    }

    /** One telemetry record (schemas/telemetry.avsc), deterministic for a given Random state. */
    public static GenericRecord telemetry(Schema s, Random rnd, String id, int seq) {
        GenericRecord r = new GenericData.Record(s);
        r.put("id", id);
        r.put("deviceId", "sensor-" + rnd.nextInt(64) + DEVICE_SUFFIX[rnd.nextInt(DEVICE_SUFFIX.length)]);
        r.put("seq", rnd.nextInt(10) == 0 ? -seq : seq);
        r.put("timestampMs", 1_700_000_000_000L + (rnd.nextLong() & 0xFFFFFFFFFL));
        double t;
        switch (rnd.nextInt(4)) {
            case 0:
                t = Math.round((-40 + rnd.nextDouble() * 125) * 10) / 10.0; // sensor resolution 0.1
                break;
            case 1:
                t = Math.floor(rnd.nextDouble() * 50); // whole degrees: Java prints 21.0
                break;
            default:
                t = -40 + rnd.nextDouble() * 125; // computed values, full precision
        }
        r.put("temperature", t);
        r.put("online", rnd.nextBoolean());
        r.put("note", rnd.nextInt(3) == 0 ? null : "note " + rnd.nextInt(1000));
        r.put("status", new GenericData.EnumSymbol(s.getField("status").schema(), STATUS[rnd.nextInt(STATUS.length)]));
        Map<String, Integer> counters = new LinkedHashMap<>();
        int nc = rnd.nextInt(COUNTER_KEYS.length + 1);
        for (int i = 0; i < nc; i++) {
            counters.put(COUNTER_KEYS[i], rnd.nextInt(3) == 0 ? rnd.nextInt() : rnd.nextInt(1000));
        }
        r.put("counters", counters);
        int ns = rnd.nextInt(6);
        List<Float> samples = new ArrayList<>(ns);
        for (int i = 0; i < ns; i++) {
            samples.add(rnd.nextBoolean() ? rnd.nextFloat() * 100 - 50 : Math.round(rnd.nextFloat() * 1000) / 4f);
        }
        r.put("samples", samples);
        byte[] blob = new byte[rnd.nextInt(24)];
        rnd.nextBytes(blob);
        r.put("blob", ByteBuffer.wrap(blob));
        return r;
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.io.JsonEncoder;

/**
 * Reference encodings made with Avro 1.7.5, the version on a Kaa 0.9.0 node's class path: the record bytes an
 * endpoint uploads, and the Avro-JSON text Kaa's own converter (GenericAvroConverter.encodeToJson) makes of them,
 * which is what the original PahoMQTT appender published.
 */
public final class AvroReference {

    private AvroReference() {
    }

    public static Schema parse(String json) {
        return new Schema.Parser().parse(json);
    }

    /** The Avro binary encoding of one record, as an endpoint's LogEvent carries it. */
    public static byte[] binary(Schema schema, GenericRecord record) {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            BinaryEncoder enc = EncoderFactory.get().binaryEncoder(out, null);
            new GenericDatumWriter<GenericRecord>(schema).write(record, enc);
            enc.flush();
            return out.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Decodes one record the way Kaa does (GenericDatumReader with the log schema as writer and reader schema). */
    public static GenericRecord decode(Schema schema, byte[] binary) throws IOException {
        GenericDatumReader<GenericRecord> reader = new GenericDatumReader<>(schema);
        return reader.read(null, DecoderFactory.get().binaryDecoder(binary, null));
    }

    /**
     * Exactly the bytes Avro 1.7.5's JsonEncoder writes for the record: decode with GenericDatumReader, write with
     * GenericDatumWriter to {@code EncoderFactory.get().jsonEncoder(schema, baos)}, flush. For a record with no
     * fields this is empty.
     */
    public static byte[] kaaJson(Schema schema, byte[] binary) {
        try {
            GenericRecord rec = decode(schema, binary);
            ByteArrayOutputStream baos = new ByteArrayOutputStream();
            JsonEncoder enc = EncoderFactory.get().jsonEncoder(schema, baos);
            new GenericDatumWriter<GenericRecord>(schema).write(rec, enc);
            enc.flush();
            baos.flush();
            return baos.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** What the appender must publish for the record: {@link #kaaJson}, except {@code {}} where that is empty. */
    public static byte[] expectedPayload(Schema schema, byte[] binary) {
        byte[] json = kaaJson(schema, binary);
        return json.length == 0 ? "{}".getBytes(StandardCharsets.UTF_8) : json;
    }

    /** {@link #expectedPayload} for each record, in order. */
    public static List<byte[]> expectedPayloads(Schema schema, List<byte[]> binaries) {
        List<byte[]> out = new ArrayList<>(binaries.size());
        for (byte[] b : binaries) {
            out.add(expectedPayload(schema, b));
        }
        return out;
    }

    /**
     * Jackson 1.9 (under Avro 1.7.5's JsonEncoder) writes doubles and floats with Double/Float.toString. A Kaa 0.9.0
     * node runs Java 8, whose toString is the pre-JDK-19 algorithm (JDK-4511638: sometimes longer than the shortest
     * representation, e.g. 1.0E23 prints as 9.999999999999999E22). JDK 19+ prints the shortest form, so a reference
     * computed there is not what the node publishes for those values. True when this JVM prints like Java 8.
     */
    public static boolean jvmFormatsNumbersLikeJava8() {
        return Double.toString(1.0E23).equals("9.999999999999999E22")
                && Float.toString(Float.MIN_NORMAL).equals("1.17549435E-38");
    }

    static final String NUMBER_FORMAT_NOTE = jvmFormatsNumbersLikeJava8() ? ""
            : "\n  NOTE: this JVM (" + Runtime.version() + ") formats doubles/floats with the JDK 19+ algorithm, not "
                    + "Java 8's: reference texts with such numbers may not be what a Kaa node publishes.";

    /** Whether Avro 1.7.5 fails to decode these bytes as one record of the schema. */
    public static boolean undecodable(Schema schema, byte[] binary) {
        try {
            decode(schema, binary);
            return false;
        } catch (Exception | Error e) {
            return true;
        }
    }
}

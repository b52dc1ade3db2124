package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.io.JsonEncoder;

/**
 * What Kaa 0.9.0's admin service does with an appender's stored configuration, step for step as its
 * {@code org.kaaproject.kaa.common.avro.GenericAvroConverter} does it, with the node's Avro 1.7.5 (Kaa's own jars
 * are on no registry this build reaches, so the steps are written out here):
 * <ul>
 * <li>open for editing ({@code setPluginFormConfigurationFromRaw}) and every REST view, the list of an
 * application's appenders included ({@code setPluginJsonConfigurationFromRaw}): {@link #decodeBinary}, a
 * {@code GenericDatumReader<GenericRecord>(schema)} over {@code DecoderFactory.get().binaryDecoder(raw, null)},
 * the plugin's schema as both writer and reader schema, so a missing trailing field is an {@code EOFException}
 * (no defaulting) and bytes after the last field are ignored; {@link #toJson} writes that record with a
 * {@code JsonEncoder} and turns an {@code IOException} into a {@code RuntimeException};</li>
 * <li>save: the record written with a {@code GenericDatumWriter} to a binary encoder ({@link AvroReference#binary}); from the
 * JSON view (REST), {@link #toRawData}: read with a {@code JsonDecoder}, then that.</li>
 * </ul>
 */
final class AdminConverter {

    private AdminConverter() {
    }

    static GenericRecord decodeBinary(Schema schema, byte[] raw) throws IOException {
        return new GenericDatumReader<GenericRecord>(schema).read(null,
                DecoderFactory.get().binaryDecoder(raw, null));
    }

    /** GenericAvroConverter.toJson(raw, schema text): the JSON view the admin's REST API serves. */
    static String toJson(byte[] raw, String schemaText) {
        Schema schema = new Schema.Parser().parse(schemaText);
        try {
            GenericRecord record = decodeBinary(schema, raw);
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            JsonEncoder enc = EncoderFactory.get().jsonEncoder(schema, out);
            new GenericDatumWriter<GenericRecord>(schema).write(record, enc);
            enc.flush();
            return new String(out.toByteArray(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    /** GenericAvroConverter.toRawData(json, schema text): what saving a JSON configuration stores. */
    static byte[] toRawData(String json, String schemaText) {
        Schema schema = new Schema.Parser().parse(schemaText);
        try {
            GenericRecord record = new GenericDatumReader<GenericRecord>(schema).read(null,
                    DecoderFactory.get().jsonDecoder(schema, json));
            return AvroReference.binary(schema, record);
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }
}

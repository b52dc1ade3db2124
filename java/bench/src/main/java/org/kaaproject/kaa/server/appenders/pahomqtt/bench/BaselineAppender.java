package org.kaaproject.kaa.server.appenders.pahomqtt.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.specific.SpecificRecordBase;
import org.eclipse.paho.client.mqttv3.MqttClient;
import org.eclipse.paho.client.mqttv3.MqttConnectOptions;
import org.eclipse.paho.client.mqttv3.MqttException;
import org.eclipse.paho.client.mqttv3.MqttMessage;
import org.eclipse.paho.client.mqttv3.persist.MemoryPersistence;
import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.common.dto.logs.LogHeaderStructureDto;
import org.kaaproject.kaa.server.common.log.shared.appender.AbstractLogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;
import org.kaaproject.kaa.server.common.log.shared.appender.LogEvent;
import org.kaaproject.kaa.server.common.log.shared.appender.LogEventPack;

/**
 * The benchmark's baseline: an appender that works the way the original PahoMQTT appender did. That one extends
 * Kaa's AbstractLogAppender, which turns every record of a pack into Avro-JSON in Java (GenericAvroConverter:
 * GenericDatumReader, then a fresh JsonEncoder per record, and the same for the record header), and then
 * publishes the records one by one with a synchronous Paho {@code MqttClient} inside {@code doAppend}, so the
 * caller waits for each record's ack; {@code onSuccess} after the last one.
 *
 * <p>Left out, to the baseline's advantage: the original logged every record at INFO level (twice). Its
 * converter cache was a plain HashMap; here it is per thread, since the benchmark calls one instance from
 * several threads. Lives only in the benchmark module; never shipped.
 */
public class BaselineAppender extends AbstractLogAppender<SpecificRecordBase> {

    /** The original appender's configuration record: our stored configurations start with these nine fields. */
    private static final String ORIGINAL_CONFIG_SCHEMA = "{\"type\":\"record\",\"name\":\"PahoMqttConfig\","
            + "\"namespace\":\"org.kaaproject.kaa.server.appenders.pahomqtt.config.gen\",\"fields\":["
            + "{\"name\":\"host\",\"type\":\"string\"},{\"name\":\"port\",\"type\":\"int\"},"
            + "{\"name\":\"ssl\",\"type\":\"boolean\"},{\"name\":\"verifySslCert\",\"type\":\"boolean\"},"
            + "{\"name\":\"username\",\"type\":[\"string\",\"null\"]},"
            + "{\"name\":\"password\",\"type\":[\"string\",\"null\"]},{\"name\":\"qos\",\"type\":\"int\"},"
            + "{\"name\":\"clientId\",\"type\":\"string\"},{\"name\":\"mqtttopic\",\"type\":\"string\"}]}";

    /** Kaa's RecordHeader, which AbstractLogAppender converts to JSON for every record. */
    private static final String RECORD_HEADER_SCHEMA = "{\"type\":\"record\",\"name\":\"RecordHeader\","
            + "\"namespace\":\"org.kaaproject.kaa.server.common.log.shared.avro.gen\",\"fields\":["
            + "{\"name\":\"endpointKeyHash\",\"type\":[{\"type\":\"string\",\"avro.java.string\":\"String\"},\"null\"]},"
            + "{\"name\":\"applicationToken\",\"type\":[{\"type\":\"string\",\"avro.java.string\":\"String\"},\"null\"]},"
            + "{\"name\":\"headerVersion\",\"type\":[\"int\",\"null\"]},"
            + "{\"name\":\"timestamp\",\"type\":[\"long\",\"null\"]},"
            + "{\"name\":\"logSchemaVersion\",\"type\":[\"int\",\"null\"]}]}";

    private static final Schema HEADER_SCHEMA = new Schema.Parser().parse(RECORD_HEADER_SCHEMA);

    /** Why packs failed, with counts: the benchmark reports it. */
    final Map<String, AtomicLong> failures = new ConcurrentHashMap<>();

    private final ThreadLocal<Map<String, Data.JavaDecoder>> converters = ThreadLocal.withInitial(HashMap::new);

    private List<LogHeaderStructureDto> header;
    private int minSchemaVersion;
    private int maxSchemaVersion;
    private boolean confirmDelivery;

    private MqttClient client;
    private MqttConnectOptions options;
    private String topic;
    private int qos;
    private volatile boolean closed;

    @Override
    public void init(LogAppenderDto dto) {
        header = dto.getHeaderStructure();
        minSchemaVersion = dto.getMinLogSchemaVersion();
        maxSchemaVersion = dto.getMaxLogSchemaVersion();
        confirmDelivery = dto.isConfirmDelivery();
        try {
            Schema schema = new Schema.Parser().parse(ORIGINAL_CONFIG_SCHEMA);
            GenericRecord config = new GenericDatumReader<GenericRecord>(schema).read(null,
                    DecoderFactory.get().binaryDecoder(dto.getRawConfiguration(), null));
            topic = config.get("mqtttopic").toString();
            qos = Math.min(2, (Integer) config.get("qos"));
            String broker = "tcp://" + config.get("host") + ":" + config.get("port");
            client = new MqttClient(broker, config.get("clientId").toString(), new MemoryPersistence());
            client.setTimeToWait(30_000); // the original waited forever; the benchmark's loops are bounded
            options = new MqttConnectOptions();
            options.setCleanSession(true);
            options.setMqttVersion(MqttConnectOptions.MQTT_VERSION_3_1_1);
            Object user = config.get("username");
            if (user != null && user.toString().length() > 0) {
                options.setUserName(user.toString());
                Object password = config.get("password");
                if (password != null) {
                    options.setPassword(password.toString().toCharArray());
                }
            }
            client.connect(options);
        } catch (IOException | MqttException e) {
            throw new IllegalStateException("baseline appender cannot start: " + e, e);
        }
    }

    @Override
    public void doAppend(LogEventPack pack, LogDeliveryCallback callback) {
        if (closed) {
            callback.onInternalError();
            return;
        }
        try {
            // AbstractLogAppender.generateLogEvent: every record (and the header) to JSON, first.
            GenericRecord recordHeader = header(pack);
            Data.JavaDecoder events = converter(pack.getLogSchema().getSchema());
            Data.JavaDecoder headers = converter(RECORD_HEADER_SCHEMA);
            List<String> jsonEvents = new ArrayList<>(pack.getEvents().size());
            for (LogEvent event : pack.getEvents()) {
                if (event == null || event.getLogData() == null) {
                    continue;
                }
                GenericRecord decoded = events.decode(event.getLogData());
                String jsonHeader = new String(headers.encode(recordHeader), StandardCharsets.UTF_8);
                String jsonEvent = new String(events.encode(decoded), StandardCharsets.UTF_8);
                if (jsonHeader.isEmpty()) {
                    throw new IllegalStateException("header encoding failed");
                }
                jsonEvents.add(jsonEvent);
            }
            // LogEventPahoMQTTDao.publish: one synchronous publish per record.
            for (String json : jsonEvents) {
                MqttMessage message = new MqttMessage(json.getBytes("UTF-8"));
                message.setQos(qos);
                if (!client.isConnected()) {
                    client.connect(options);
                }
                client.publish(topic, message);
            }
            callback.onSuccess();
        } catch (Exception e) {
            // What the original answered for any failure, broker down included.
            failures.computeIfAbsent(String.valueOf(e), k -> new AtomicLong()).incrementAndGet();
            callback.onInternalError();
        }
    }

    private Data.JavaDecoder converter(String schema) {
        Map<String, Data.JavaDecoder> cache = converters.get();
        Data.JavaDecoder c = cache.get(schema);
        if (c == null) {
            c = new Data.JavaDecoder(new Schema.Parser().parse(schema));
            cache.put(schema, c);
        }
        return c;
    }

    private GenericRecord header(LogEventPack pack) {
        GenericRecord h = new GenericData.Record(HEADER_SCHEMA);
        if (header != null) {
            for (LogHeaderStructureDto field : header) {
                switch (field) {
                    case KEYHASH:
                        h.put("endpointKeyHash", pack.getEndpointKey());
                        break;
                    case TIMESTAMP:
                        h.put("timestamp", System.currentTimeMillis());
                        break;
                    case TOKEN:
                        h.put("applicationToken", getApplicationToken());
                        break;
                    case VERSION:
                        h.put("headerVersion", 1);
                        break;
                    case LSVERSION:
                        h.put("logSchemaVersion", pack.getLogSchema().getVersion());
                        break;
                    default:
                        break;
                }
            }
        }
        return h;
    }

    @Override
    public boolean isSchemaVersionSupported(int version) {
        return minSchemaVersion <= version && version <= maxSchemaVersion;
    }

    @Override
    public boolean isDeliveryConfirmationRequired() {
        return confirmDelivery;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            if (client.isConnected()) {
                client.disconnect(2000);
            }
            client.close();
        } catch (MqttException e) {
            // best effort
        }
    }
}

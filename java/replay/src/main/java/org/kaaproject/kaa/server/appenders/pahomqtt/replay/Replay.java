package org.kaaproject.kaa.server.appenders.pahomqtt.replay;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.io.DecoderFactory;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;

/**
 * Pushes log records through the appender exactly as a Kaa node would and prints the delivery
 * result of each pack. Records come from a built-in sample (Kaa's sample logging schema) or
 * from a user's {@code .avsc} plus a file of records in Avro's JSON encoding, one per line.
 * Exits 0 when every pack was confirmed by the broker, 1 otherwise, 2 on bad arguments.
 *
 * <p>With {@code --config}, the appender is built from every setting of the newest plugin given as JSON
 * ({@link ConfigJson}); {@code --print-default-config} prints a commented starting point.
 *
 * <p>With {@code --stored}, the appenders are built from stored configurations instead of the options (of any
 * plugin: {@link KaaNode#CONFIG_CLASS}, {@link KaaNode#V2_CONFIG_CLASS}, {@link KaaNode#V1_CONFIG_CLASS} or
 * {@link KaaNode#LEGACY_CONFIG_CLASS}), as
 * a node builds the appenders of an application, and every pack goes to each of them.
 */
public final class Replay {

    private static final String USAGE = String.join("\n",
            "usage: replay [options]",
            "  --host H               broker host (127.0.0.1)",
            "  --port P               broker port (1883)",
            "  --topic T              topic (kaa/demo/logs)",
            "  --qos Q                0, 1 or 2 (1)",
            "  --client-id C          MQTT client id (kaa-replay)",
            "  --username U --password W",
            "  --schema F.avsc        log schema; with --records",
            "  --records F.json       one record per line, Avro JSON encoding",
            "  --packs N              packs of the built-in sample (3)",
            "  --pack-size M          records per pack (5)",
            "  --timeout S            delivery timeout per pack, seconds (10)",
            "  --config FILE          every setting of the appender (type PahoMqtt) as JSON, the record the admin UI",
            "                         edits: TLS, MQTT 5, formats, grouping, WebSocket, proxy, ...; fields left out",
            "                         take their default. The broker options above are not used with it",
            "  --print-default-config print a commented starting point for --config (every field at its default)",
            "  --stored CLASS=FILE    an appender as Kaa stored it: the config class of its plugin (type) and a file",
            "                         with its raw configuration (Avro binary); may be repeated. Each pack goes to",
            "                         every stored appender, and the broker options above are not used; --timeout",
            "                         is then only how long to wait for each answer (default 35)");

    private Replay() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 1 && args[0].equals("--print-default-config")) {
            System.out.print(ConfigJson.template(KaaNode.configSchema()));
            return;
        }
        Map<String, String> opts = new HashMap<>();
        List<String> stored = new ArrayList<>();
        try {
            parse(args, opts, stored);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage() + "\n" + USAGE);
            System.exit(2);
            return;
        }
        boolean delivered;
        try {
            delivered = run(opts, stored);
        } catch (IllegalArgumentException e) {
            // A configuration file that does not fit the schema: say which field, no stack trace.
            System.err.println("replay: " + e.getMessage());
            System.exit(2);
            return;
        }
        System.exit(delivered ? 0 : 1);
    }

    /** Options by name into {@code opts}; each {@code --stored} (it may be repeated) into {@code stored}, in order. */
    private static void parse(String[] args, Map<String, String> opts, List<String> stored) {
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("bad argument: " + args[i]);
            }
            String name = args[i].substring(2);
            String value = args[++i];
            if (name.equals("stored")) {
                if (value.indexOf('=') <= 0) {
                    throw new IllegalArgumentException("--stored takes CONFIG_CLASS=FILE, not " + value);
                }
                stored.add(value);
            } else {
                opts.put(name, value);
            }
        }
        if (opts.containsKey("schema") != opts.containsKey("records")) {
            throw new IllegalArgumentException("--schema and --records go together");
        }
        if (opts.containsKey("config")) {
            for (String broker : new String[] {"host", "port", "topic", "qos", "client-id", "username", "password"}) {
                if (opts.containsKey(broker)) {
                    throw new IllegalArgumentException("--" + broker + " is a setting of --config's file");
                }
            }
            if (!stored.isEmpty()) {
                throw new IllegalArgumentException("--config and --stored do not go together");
            }
        }
    }

    private static boolean run(Map<String, String> opts, List<String> stored) throws Exception {
        String schemaText = opts.containsKey("schema")
                ? new String(Files.readAllBytes(Paths.get(opts.get("schema"))), StandardCharsets.UTF_8)
                : sampleSchema();
        Schema schema = new Schema.Parser().parse(schemaText);
        List<byte[]> records = opts.containsKey("records")
                ? readRecords(schema, opts.get("records"))
                : sampleRecords(schema, intOpt(opts, "packs", 3) * intOpt(opts, "pack-size", 5));
        int packSize = opts.containsKey("records") ? Math.max(1, records.size()) : intOpt(opts, "pack-size", 5);

        Map<String, LogAppender> appenders = new LinkedHashMap<>();
        int waitSeconds;
        try {
            if (!stored.isEmpty()) {
                for (String classAndFile : stored) {
                    int eq = classAndFile.indexOf('=');
                    String file = classAndFile.substring(eq + 1);
                    // Named after its file, so the output and the log tell the stored appenders apart.
                    String name = Paths.get(file).getFileName().toString();
                    if (appenders.containsKey(name)) {
                        throw new IllegalArgumentException("two --stored files named " + name);
                    }
                    appenders.put(name, KaaNode.load(classAndFile.substring(0, eq), name,
                            Files.readAllBytes(Paths.get(file))));
                }
                waitSeconds = intOpt(opts, "timeout", 35);
            } else if (opts.containsKey("config")) {
                String json = new String(Files.readAllBytes(Paths.get(opts.get("config"))), StandardCharsets.UTF_8);
                Map<String, Object> config = ConfigJson.read(KaaNode.configSchema(), json);
                Object timeout = config.get("deliveryTimeoutSeconds");
                appenders.put("replay", KaaNode.load("replay", KaaNode.config(config)));
                waitSeconds = intOpt(opts, "timeout", (timeout instanceof Integer ? (Integer) timeout : 30) + 5);
            } else {
                Map<String, Object> config = new HashMap<>();
                config.put("host", opts.getOrDefault("host", "127.0.0.1"));
                config.put("port", intOpt(opts, "port", 1883));
                config.put("mqtttopic", opts.getOrDefault("topic", "kaa/demo/logs"));
                config.put("qos", intOpt(opts, "qos", 1));
                config.put("clientId", opts.getOrDefault("client-id", "kaa-replay"));
                config.put("username", opts.get("username"));
                config.put("password", opts.get("password"));
                config.put("deliveryTimeoutSeconds", intOpt(opts, "timeout", 10));
                appenders.put("replay", KaaNode.load("replay", KaaNode.config(config)));
                waitSeconds = intOpt(opts, "timeout", 10) + 5;
            }
            boolean allDelivered = true;
            int packNo = 0;
            for (int from = 0; from < records.size(); from += packSize) {
                List<byte[]> packRecords = records.subList(from, Math.min(records.size(), from + packSize));
                packNo++;
                for (Map.Entry<String, LogAppender> a : appenders.entrySet()) {
                    String outcome = appendAndWait(a.getValue(), schemaText, packRecords, waitSeconds);
                    if (!stored.isEmpty()) {
                        System.out.printf("appender '%s': pack %d: %d records -> %s%n", a.getKey(), packNo,
                                packRecords.size(), outcome);
                    } else {
                        System.out.printf("pack %d: %d records -> %s%n", packNo, packRecords.size(), outcome);
                    }
                    allDelivered &= outcome.equals("onSuccess");
                }
            }
            return allDelivered;
        } finally {
            for (LogAppender a : appenders.values()) {
                a.close();
            }
        }
    }

    private static String appendAndWait(LogAppender appender, String schemaText, List<byte[]> records,
            int waitSeconds) throws InterruptedException {
        CountDownLatch answered = new CountDownLatch(1);
        AtomicReference<String> outcome = new AtomicReference<>();
        LogDeliveryCallback callback = new LogDeliveryCallback() {
            private void answer(String what) {
                outcome.compareAndSet(null, what);
                answered.countDown();
            }

            @Override
            public void onSuccess() {
                answer("onSuccess");
            }

            @Override
            public void onInternalError() {
                answer("onInternalError");
            }

            @Override
            public void onConnectionError() {
                answer("onConnectionError");
            }

            @Override
            public void onRemoteError() {
                answer("onRemoteError");
            }
        };
        appender.doAppend(KaaNode.pack(schemaText, 1, records), callback);
        if (!answered.await(waitSeconds, TimeUnit.SECONDS)) {
            return "no answer within " + waitSeconds + " s";
        }
        return outcome.get();
    }

    private static String sampleSchema() throws IOException {
        try (InputStream in = Replay.class.getResourceAsStream("/sample-log.avsc")) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[4096];
            for (int n; (n = in.read(buf)) > 0;) {
                out.write(buf, 0, n);
            }
            return new String(out.toByteArray(), StandardCharsets.UTF_8);
        }
    }

    private static List<byte[]> sampleRecords(Schema schema, int count) throws IOException {
        String[] levels = {"KAA_INFO", "KAA_WARN", "KAA_DEBUG"};
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            lines.add(String.format("{\"level\":\"%s\",\"tag\":\"sensor-%d\",\"message\":\"temperature %.1f C\","
                    + "\"timeStamp\":%d}", levels[i % levels.length], i % 4, 20.0 + i * 0.5, 1700000000000L + i));
        }
        return toBinary(schema, lines);
    }

    private static List<byte[]> readRecords(Schema schema, String file) throws IOException {
        List<String> lines = new ArrayList<>();
        for (String line : Files.readAllLines(Paths.get(file), StandardCharsets.UTF_8)) {
            if (!line.trim().isEmpty()) {
                lines.add(line);
            }
        }
        return toBinary(schema, lines);
    }

    /** Avro JSON text to the Avro binary an endpoint uploads, with Avro 1.7.5 as on the node. */
    private static List<byte[]> toBinary(Schema schema, List<String> jsonRecords) throws IOException {
        GenericDatumReader<Object> reader = new GenericDatumReader<>(schema);
        GenericDatumWriter<Object> writer = new GenericDatumWriter<>(schema);
        List<byte[]> out = new ArrayList<>();
        for (String json : jsonRecords) {
            Object datum = reader.read(null, DecoderFactory.get().jsonDecoder(schema, json));
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(bytes, null);
            writer.write(datum, encoder);
            encoder.flush();
            out.add(bytes.toByteArray());
        }
        return out;
    }

    private static int intOpt(Map<String, String> opts, String name, int fallback) {
        String v = opts.get(name);
        try {
            return v == null ? fallback : Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " takes a number, not " + v);
        }
    }
}

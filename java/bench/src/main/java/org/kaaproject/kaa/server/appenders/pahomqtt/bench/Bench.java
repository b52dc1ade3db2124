package org.kaaproject.kaa.server.appenders.pahomqtt.bench;

import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.avro.Schema;
import org.codehaus.jackson.map.ObjectMapper;

/**
 * The benchmark's Java side; {@code scripts/bench} runs each mode in its own JVM (so each peak RSS is that
 * mode's alone) and assembles the table with {@code report}.
 *
 * <pre>
 * gen     --dir D [--count 10000] [--seed 1] [--record-bytes B]   make the records every mode uses (B: Avro JSON
 *                                                            of about B bytes each, for the large-record rows)
 * append  --appender ours|baseline --dir D --port P --topic T --qos Q --result F
 *         [--records N] [--warmup W] [--threads 4] [--pack-size 100] [--inflight-packs 64]
 *         [--max-pending 100000] [--max-seconds 60] [--report-every N] [--grouping RECORD|PACK]
 *         [--rate R]                                         R records/s at most (packs started on a schedule)
 *         [--max-inflight N] [--mqtt-version 3.1.1|5]         ours' maxInflight and MQTT version
 * deadbroker --dir D --result F [--max-pending 20000] [--pack-size 100] [--overflow-packs 20]
 *                                                            native memory per message held for a broker that is away
 * decode  --dir D --result F [--seconds 5] [--warmup-seconds 3]   Avro 1.7.5 decoding, one thread
 * combine --out F --results F1,F2,...                     node JVMs run side by side as one cluster: one result
 * report  --runs D --out F [--broker "mosquitto 2.0.11"] [--command "..."]
 * </pre>
 */
public final class Bench {

    private static final ObjectMapper JSON = new ObjectMapper();

    private Bench() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: Bench gen|append|deadbroker|decode|combine|report [--option value ...]");
            System.exit(2);
        }
        Map<String, String> opts = parse(Arrays.copyOfRange(args, 1, args.length));
        switch (args[0]) {
            case "gen":
                System.out.println(Data.generate(Paths.get(need(opts, "dir")), intOpt(opts, "count", 10_000),
                        longOpt(opts, "seed", 1), intOpt(opts, "record-bytes", 0)));
                break;
            case "append":
                Map<String, Object> result;
                try {
                    result = new AppendDriver(opts).run();
                } catch (RuntimeException e) {
                    result = new LinkedHashMap<>();
                    result.put("mode", opts.get("appender"));
                    result.put("qos", intOpt(opts, "qos", 1));
                    result.put("confirmed", 0);
                    result.put("confirmed_messages", 0);
                    result.put("error", e.toString());
                    e.printStackTrace();
                }
                write(Paths.get(need(opts, "result")), result);
                // Paho's and the appender's threads must not keep the JVM: the run is over.
                System.exit(result.get("error") == null ? 0 : 1);
                break;
            case "deadbroker":
                Map<String, Object> dead;
                try {
                    dead = new DeadBroker(opts).run();
                } catch (RuntimeException e) {
                    dead = new LinkedHashMap<>();
                    dead.put("mode", "deadbroker");
                    dead.put("error", e.toString());
                    e.printStackTrace();
                }
                write(Paths.get(need(opts, "result")), dead);
                System.exit(dead.get("error") == null ? 0 : 1);
                break;
            case "decode":
                write(Paths.get(need(opts, "result")), decode(opts));
                break;
            case "combine":
                write(Paths.get(need(opts, "out")), combine(need(opts, "results").split(",")));
                break;
            case "report":
                System.exit(Report.run(opts) ? 0 : 1);
                break;
            default:
                System.err.println("unknown command " + args[0]);
                System.exit(2);
        }
    }

    /** Avro 1.7.5 binary to Avro-JSON on one thread, as Kaa's converter does it, over the benchmark's records. */
    private static Map<String, Object> decode(Map<String, String> opts) throws IOException {
        Path dir = Paths.get(need(opts, "dir"));
        Schema schema = new Schema.Parser().parse(dir.resolve(Data.SCHEMA_FILE).toFile());
        List<byte[]> records = Data.readFrames(dir.resolve(Data.RECORDS_FILE));
        List<byte[]> expect = Data.readFrames(dir.resolve(Data.PAYLOADS_FILE));
        Data.JavaDecoder decoder = new Data.JavaDecoder(schema);
        int mismatches = 0;
        for (int i = 0; i < records.size(); i++) {
            if (!Arrays.equals(decoder.toJson(records.get(i)), expect.get(i))) {
                mismatches++;
            }
        }
        double warm = Double.parseDouble(opts.getOrDefault("warmup-seconds", "3"));
        double secs = Double.parseDouble(opts.getOrDefault("seconds", "5"));
        timed(decoder, records, warm);
        long[] nAndNanos = timed(decoder, records, secs);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("mode", "decode-java");
        r.put("records", nAndNanos[0]);
        r.put("seconds", nAndNanos[1] / 1e9);
        r.put("records_per_s", nAndNanos[0] / (nAndNanos[1] / 1e9));
        r.put("distinct_records", records.size());
        r.put("mismatches_vs_avro_1_7_5", mismatches);
        r.put("peak_rss_kib", procStatusKib("VmHWM"));
        r.put("jvm_max_heap_mib", Runtime.getRuntime().maxMemory() / (1024 * 1024));
        r.put("error", null);
        return r;
    }

    /**
     * The runs of several node JVMs that published side by side (one configuration, one broker) as one result:
     * counts summed, records/s their records over the longer measured phase, latencies and memory the worse node's.
     */
    private static Map<String, Object> combine(String[] files) throws IOException {
        List<Map<String, Object>> nodes = new ArrayList<>();
        for (String f : files) {
            nodes.add(read(new File(f)));
        }
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("mode", "ours-" + nodes.size() + "nodes");
        r.put("qos", nodes.get(0).get("qos"));
        for (String key : new String[] {"records", "confirmed", "confirmed_messages", "failed_packs",
            "double_answers", "unanswered_packs", "takeovers", "write_calls", "measured_messages"}) {
            r.put(key, nodes.stream().mapToLong(n -> (long) Report.num(n.get(key))).sum());
        }
        r.put("cpu_seconds", nodes.stream().mapToDouble(n -> Report.num(n.get("cpu_seconds"))).sum());
        double seconds = nodes.stream().mapToDouble(n -> Report.num(n.get("seconds"))).max().orElse(0);
        long records = ((Number) r.get("records")).longValue();
        r.put("seconds", seconds);
        r.put("records_per_s", seconds > 0 ? records / seconds : 0.0);
        for (String key : new String[] {"p50_ms", "p99_ms", "do_append_p50_ms", "do_append_p99_ms", "peak_rss_kib"}) {
            r.put(key, nodes.stream().mapToDouble(n -> Report.num(n.get(key))).max().orElse(0));
        }
        r.put("cpu_us_per_record", records > 0 ? Report.num(r.get("cpu_seconds")) * 1e6 / records : null);
        Map<String, Object> failures = new LinkedHashMap<>();
        for (Map<String, Object> n : nodes) {
            @SuppressWarnings("unchecked")
            Map<String, Object> f = (Map<String, Object>) n.get("failures");
            if (f != null) {
                f.forEach((k, v) -> failures.merge(k, v, (a, b) -> ((Number) a).longValue() + ((Number) b).longValue()));
            }
        }
        r.put("failures", failures);
        r.put("complete", nodes.stream().allMatch(n -> Boolean.TRUE.equals(n.get("complete"))));
        r.put("error", nodes.stream().map(n -> n.get("error")).filter(e -> e != null).findFirst().orElse(null));
        r.put("nodes", nodes);
        return r;
    }

    static long sink;

    private static long[] timed(Data.JavaDecoder decoder, List<byte[]> records, double seconds) throws IOException {
        long start = System.nanoTime();
        long limit = (long) (seconds * 1e9);
        long passes = 0;
        long bytes = 0;
        while (passes == 0 || System.nanoTime() - start < limit) {
            for (byte[] r : records) {
                bytes += decoder.toJson(r).length;
            }
            passes++;
        }
        sink += bytes;
        return new long[] {passes * records.size(), System.nanoTime() - start};
    }

    static Map<String, String> parse(String[] args) {
        Map<String, String> opts = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("bad argument: " + args[i]);
            }
            opts.put(args[i].substring(2), args[++i]);
        }
        return opts;
    }

    static String need(Map<String, String> opts, String key) {
        String v = opts.get(key);
        if (v == null) {
            throw new IllegalArgumentException("--" + key + " is required");
        }
        return v;
    }

    static int intOpt(Map<String, String> opts, String key, int fallback) {
        return (int) longOpt(opts, key, fallback);
    }

    static long longOpt(Map<String, String> opts, String key, long fallback) {
        String v = opts.get(key);
        try {
            return v == null ? fallback : Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + key + " takes a number, not " + v);
        }
    }

    /** A {@code kB} line of /proc/self/status (VmHWM: peak resident set, VmRSS: current), in KiB; 0 if absent. */
    static long procStatusKib(String field) {
        try {
            for (String line : Files.readAllLines(Paths.get("/proc/self/status"), StandardCharsets.UTF_8)) {
                if (line.startsWith(field + ":")) {
                    return Long.parseLong(line.substring(field.length() + 1).trim().split("\\s+")[0]);
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux
        }
        return 0;
    }

    /**
     * A counter of /proc/self/io ({@code syscw}: write system calls so far, write and writev on sockets, pipes,
     * eventfds and files alike; {@code syscr}: reads); -1 if absent.
     */
    static long procIo(String field) {
        try {
            for (String line : Files.readAllLines(Paths.get("/proc/self/io"), StandardCharsets.UTF_8)) {
                if (line.startsWith(field + ":")) {
                    return Long.parseLong(line.substring(field.length() + 1).trim());
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux, or no task I/O accounting
        }
        return -1;
    }

    /** User plus system CPU time of this process so far, in seconds (all threads; /proc/self/stat). */
    static double procCpuSeconds() {
        try {
            String stat = new String(Files.readAllBytes(Paths.get("/proc/self/stat")), StandardCharsets.UTF_8);
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split("\\s+");
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
            return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / (double) CLOCK_TICKS;
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    /** USER_HZ: 100 on every Linux this runs on. */
    private static final int CLOCK_TICKS = 100;

    static String pid() {
        String name = ManagementFactory.getRuntimeMXBean().getName();
        int at = name.indexOf('@');
        return at > 0 ? name.substring(0, at) : name;
    }

    static void write(Path file, Object value) throws IOException {
        Files.write(file, (JSON.writeValueAsString(value) + "\n").getBytes(StandardCharsets.UTF_8));
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> read(File file) throws IOException {
        return JSON.readValue(file, LinkedHashMap.class);
    }

    static String pretty(Object value) throws IOException {
        return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(value);
    }

    static List<String> words(String s) {
        List<String> out = new ArrayList<>();
        for (String w : s.trim().split("[\\s,]+")) {
            if (!w.isEmpty()) {
                out.add(w);
            }
        }
        return out;
    }
}

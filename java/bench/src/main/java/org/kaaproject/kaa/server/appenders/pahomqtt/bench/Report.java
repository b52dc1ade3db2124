package org.kaaproject.kaa.server.appenders.pahomqtt.bench;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Assembles the per-run result files of one {@code scripts/bench} run into the table it prints and the JSON
 * it writes. A run's files: {@code <mode>-q<qos>-r<n>.json} (the publisher's own result, n counting the repeats),
 * {@code .sub.json} (what the subscriber received) and {@code .broker.json} beside it; {@code decode-rust-r<n>.json},
 * {@code decode-java.json}. Each mode's row shows its median run.
 * Returns false when a run failed, lost or duplicated messages, or did not complete.
 */
final class Report {

    /**
     * File name prefixes of the publisher runs; "ours-pack" is ours with one message per pack, "ours-half" ours
     * paced at half of its rate and "ceiling-half" the bare publisher at that pace, "-4k" and "-64k" the rows of
     * records of about 4 and 64 KiB, "-mqtt5" those speaking MQTT 5.
     */
    private static final String[] MODES = {"ceiling", "ours", "baseline", "ours-pack", "ours-2nodes", "ours-half",
        "ceiling-half", "ceiling-4k", "ours-4k", "ceiling-64k", "ours-64k", "ceiling-mqtt5", "ours-mqtt5"};

    private Report() {
    }

    static boolean run(Map<String, String> opts) throws IOException {
        File runs = new File(Bench.need(opts, "runs"));
        List<Map<String, Object>> rows = new ArrayList<>();
        Map<String, Object> raw = new LinkedHashMap<>();
        List<String> problems = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        // Rust decoding alone, one run per round: the median stands for it, as for the publishers. A round whose
        // run left no result is left out, and the row's run count shows it.
        List<Map<String, Object>> decodeRuns = new ArrayList<>();
        String[] listed = runs.list((dir, name) -> name.matches("decode-rust-r[0-9]+\\.json"));
        List<String> decodeFiles = listed == null ? new ArrayList<>() : new ArrayList<>(Arrays.asList(listed));
        Collections.sort(decodeFiles);
        for (String file : decodeFiles) {
            Map<String, Object> r = Bench.read(new File(runs, file));
            decodeRuns.add(r);
            raw.put(file.substring(0, file.length() - ".json".length()), r);
        }
        Map<String, Object> rust = median(decodeRuns);
        for (int qos = 0; qos <= 2; qos++) {
            // Each mode's runs, and the run with the median rate, which stands for the mode in the table.
            Map<String, List<Map<String, Object>>> runsByMode = new LinkedHashMap<>();
            Map<String, Map<String, Object>> byMode = new LinkedHashMap<>();
            for (String mode : MODES) {
                List<Map<String, Object>> repeats = new ArrayList<>();
                for (int rep = 1; new File(runs, mode + "-q" + qos + "-r" + rep + ".json").isFile(); rep++) {
                    String name = mode + "-q" + qos + "-r" + rep;
                    Map<String, Object> r = Bench.read(new File(runs, name + ".json"));
                    r.put("subscriber", readIf(new File(runs, name + ".sub.json")));
                    r.put("broker", readIf(new File(runs, name + ".broker.json")));
                    repeats.add(r);
                    raw.put(name, r);
                }
                if (!repeats.isEmpty()) {
                    runsByMode.put(mode, repeats);
                    byMode.put(mode, median(repeats));
                }
            }
            for (Map.Entry<String, List<Map<String, Object>>> e : runsByMode.entrySet()) {
                rows.add(row(e.getKey(), qos, e.getValue(), byMode, rust, problems, notes));
            }
        }
        Map<String, Object> java = readIf(new File(runs, "decode-java.json"));
        if (rust != null) {
            rows.add(decodeRow("decode-rust", rust, decodeRuns, java, problems));
        }
        if (java != null) {
            raw.put("decode-java", java);
            rows.add(decodeRow("decode-java", java, Collections.singletonList(java), null, problems));
        }

        String table = table(rows);
        System.out.println(table);
        String cpu = cpuTable(rows);
        if (!cpu.isEmpty()) {
            System.out.println();
            System.out.println(cpu);
        }
        Map<String, Object> dead = readIf(new File(runs, "deadbroker.json"));
        if (dead != null) {
            raw.put("deadbroker", dead);
            System.out.println();
            System.out.println(deadBroker(dead, problems, notes));
        }
        Map<String, Object> decodeInfo = rust != null ? rust : java;
        if (decodeInfo != null && decodeInfo.get("payload_bytes_avg") != null) {
            System.out.printf(Locale.ROOT, "records: %s distinct, %.0f bytes Avro binary, %.0f bytes Avro JSON on average%n",
                    decodeInfo.get("distinct_records"), num(decodeInfo.get("binary_bytes_avg")),
                    num(decodeInfo.get("payload_bytes_avg")));
        }
        for (String n : notes) {
            System.out.println("note: " + n);
        }
        if (problems.isEmpty()) {
            System.out.println("ours and ceiling: every run complete, no pack failed, messages received = messages confirmed");
        } else {
            System.out.println("PROBLEMS:");
            for (String p : problems) {
                System.out.println("  " + p);
            }
        }

        Map<String, Object> out = new LinkedHashMap<>();
        out.put("generated_at", Instant.now().toString());
        out.put("command", opts.get("command"));
        out.put("machine", machine(opts));
        out.put("columns", "mode, qos, records/s (the median run's), MB/s (of payload), runs: min - max, ours/baseline, "
                + "ours/ceiling (of the medians; -4k, -64k and -mqtt5 rows against the ceiling of the same kind), p50 ms, "
                + "p99 ms, peak RSS MiB, confirmed msgs, received msgs (the median run's)");
        out.put("rows", rows);
        out.put("cpu_table", cpu);
        out.put("dead_broker", dead);
        out.put("problems", problems);
        out.put("notes", notes);
        out.put("load_average", opts.get("load"));
        out.put("table", table);
        out.put("runs", raw);
        String outFile = Bench.need(opts, "out");
        Files.write(Paths.get(outFile), (Bench.pretty(out) + "\n").getBytes(StandardCharsets.UTF_8));
        System.out.println("written: " + outFile);
        return problems.isEmpty();
    }

    /** The run with the median rate (the lower of the two middle ones); null for none. */
    private static Map<String, Object> median(List<Map<String, Object>> runs) {
        if (runs.isEmpty()) {
            return null;
        }
        List<Map<String, Object>> byRate = new ArrayList<>(runs);
        byRate.sort((a, b) -> Double.compare(num(a.get("records_per_s")), num(b.get("records_per_s"))));
        return byRate.get((byRate.size() - 1) / 2);
    }

    /**
     * The row of one mode at one QoS: its median run's figures, the range of its rates; every run checked.
     * {@code decode} is Rust decoding alone (the median run), the yardstick of "ours-pack".
     */
    private static Map<String, Object> row(String mode, int qos, List<Map<String, Object>> repeats,
            Map<String, Map<String, Object>> byMode, Map<String, Object> decode, List<String> problems,
            List<String> notes) {
        for (int i = 0; i < repeats.size(); i++) {
            check(mode + " qos " + qos + (repeats.size() > 1 ? " run " + (i + 1) : ""), mode.equals("baseline"),
                    repeats.get(i), problems, notes);
        }
        Map<String, Object> r = byMode.get(mode);
        Map<String, Object> row = new LinkedHashMap<>();
        row.put("mode", mode);
        row.put("qos", qos);
        double rate = num(r.get("records_per_s"));
        row.put("records_per_s", rate);
        row.put("runs", repeats.size());
        row.put("records_per_s_min", repeats.stream().mapToDouble(x -> num(x.get("records_per_s"))).min().orElse(0));
        row.put("records_per_s_max", repeats.stream().mapToDouble(x -> num(x.get("records_per_s"))).max().orElse(0));
        Double vsBaseline = null;
        Double vsCeiling = null;
        if (mode.equals("ours")) {
            vsBaseline = ratio(rate, byMode.get("baseline"));
            vsCeiling = ratio(rate, byMode.get("ceiling"));
        } else if (mode.startsWith("ours-") && (mode.endsWith("k") || mode.endsWith("-mqtt5"))) {
            vsCeiling = ratio(rate, byMode.get("ceiling-" + mode.substring("ours-".length())));
        }
        row.put("ours_over_baseline", vsBaseline);
        row.put("ours_over_ceiling", vsCeiling);
        row.put("p50_ms", r.get("p50_ms"));
        row.put("p99_ms", r.get("p99_ms"));
        row.put("peak_rss_mib", r.get("peak_rss_kib") == null ? null : num(r.get("peak_rss_kib")) / 1024.0);
        // Records for the per-record figures; messages (one per pack in "ours-pack") for the subscriber's count.
        long confirmed = (long) num(r.get("confirmed"));
        long confirmedMessages = (long) num(r.get("confirmed_messages"));
        row.put("confirmed_messages", confirmedMessages);
        @SuppressWarnings("unchecked")
        Map<String, Object> sub = (Map<String, Object>) r.get("subscriber");
        row.put("received_messages", sub == null ? null : (long) num(sub.get("received")));
        // Payload bytes per record, as the subscriber received them (warm-up included, like "confirmed").
        Double bytesPerRecord = sub == null || confirmed == 0 || sub.get("bytes") == null ? null
                : num(sub.get("bytes")) / confirmed;
        row.put("payload_bytes_per_record", bytesPerRecord);
        row.put("mb_per_s", bytesPerRecord == null ? null : rate * bytesPerRecord / 1e6);
        double measuredMb = bytesPerRecord == null ? 0 : num(r.get("records")) * bytesPerRecord / 1e6;
        row.put("cpu_ms_per_mb", measuredMb > 0 && r.get("cpu_seconds") != null
                ? num(r.get("cpu_seconds")) * 1e3 / measuredMb : null);
        // The publisher's write system calls per message of the measured phase (/proc/<pid>/io syscw).
        row.put("writes_per_message", r.get("write_calls") == null || num(r.get("measured_messages")) == 0 ? null
                : num(r.get("write_calls")) / num(r.get("measured_messages")));
        row.put("subscriber_cpu_us_per_record", sub == null || confirmed == 0 || sub.get("cpu_seconds") == null ? null
                : num(sub.get("cpu_seconds")) * 1e6 / confirmed);
        row.put("failed_packs", r.get("failed_packs"));
        row.put("takeovers", r.get("takeovers"));
        Double vsDecode = mode.equals("ours-pack") ? ratio(rate, decode) : null;
        if (vsDecode != null) {
            // Decoding is most of a pack's work: the rate that travels between machines is this ratio.
            row.put("ours_over_decode", vsDecode);
            notes.add(String.format(Locale.ROOT, "ours-pack qos %d: %.2fx Rust decoding alone on one thread "
                    + "(medians of this run: %.0f against %.0f records/s)", qos, vsDecode, rate,
                    num(decode.get("records_per_s"))));
        }
        if (mode.equals("ours-2nodes")) {
            notes.add(String.format(Locale.ROOT, "ours-2nodes qos %d: two node JVMs with one configuration (one fixed "
                    + "client id) on one broker, %.0f records/s together, %s failed packs, %s client id takeovers",
                    qos, rate, r.get("failed_packs"), r.get("takeovers")));
        }
        if (r.get("paced_records_per_s") != null) {
            row.put("paced_records_per_s", r.get("paced_records_per_s"));
            row.put("max_behind_schedule_ms", r.get("max_behind_schedule_ms"));
            String note = String.format(Locale.ROOT, "%s qos %d: packs started at %.0f records/s (half of ours' "
                    + "median rate so far); start to answer p50 %.2f ms, p99 %.2f ms; packs at most %.1f ms behind "
                    + "their schedule", mode, qos, num(r.get("paced_records_per_s")), num(r.get("p50_ms")),
                    num(r.get("p99_ms")), num(r.get("max_behind_schedule_ms")));
            Map<String, Object> bare = mode.equals("ours-half") ? byMode.get("ceiling-half") : null;
            if (bare != null && num(bare.get("p99_ms")) > 0) {
                // What the broker and subscriber allow at this load, measured in the same run.
                row.put("p99_over_ceiling", num(r.get("p99_ms")) / num(bare.get("p99_ms")));
                note += String.format(Locale.ROOT, "; %.2fx the bare publisher's p99 at the same pace",
                        num(r.get("p99_ms")) / num(bare.get("p99_ms")));
            }
            notes.add(note);
        }
        // CPU per record, robust where rates are not (a shared machine): the publisher's process over the
        // measured phase; the broker and the subscriber over the whole run (warm-up included).
        row.put("cpu_us_per_record", r.get("cpu_us_per_record"));
        row.put("do_append_p50_ms", r.get("do_append_p50_ms"));
        row.put("do_append_p99_ms", r.get("do_append_p99_ms"));
        @SuppressWarnings("unchecked")
        Map<String, Object> broker = (Map<String, Object>) r.get("broker");
        row.put("broker_cpu_us_per_record", broker == null || confirmed == 0 ? null
                : num(broker.get("broker_cpu_seconds")) * 1e6 / confirmed);
        // Mosquitto reads every packet in two to four calls, its acks and the subscriber's included, however
        // the publisher writes: a cost per message no publisher can remove.
        row.put("broker_reads_per_message", broker == null || confirmedMessages == 0 ? null
                : num(broker.get("broker_read_calls")) / confirmedMessages);
        row.put("records", r.get("records"));
        row.put("seconds", r.get("seconds"));
        return row;
    }

    /** What must hold for every run: no error, no failed or twice-answered pack, every confirmed message received. */
    private static void check(String name, boolean baseline, Map<String, Object> r, List<String> problems,
            List<String> notes) {
        if (r.get("error") != null) {
            problems.add(name + ": " + r.get("error"));
        }
        if (num(r.get("failed_packs")) > 0) {
            // The original appender failed packs under load; the baseline reproduces that, it is a finding.
            (baseline ? notes : problems).add(name + ": " + fmt(num(r.get("failed_packs"))) + " packs failed "
                    + r.get("failures") + (r.get("failure_reasons") != null ? " " + r.get("failure_reasons") : ""));
        }
        if (num(r.get("double_answers")) > 0) {
            problems.add(name + ": " + r.get("double_answers") + " packs answered twice");
        }
        if (Boolean.FALSE.equals(r.get("complete"))) {
            problems.add(name + ": did not complete within --max-seconds (or packs unanswered: "
                    + r.get("unanswered_packs") + "); its rate covers what was confirmed");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> sub = (Map<String, Object>) r.get("subscriber");
        if (sub == null) {
            problems.add(name + ": no subscriber result");
            return;
        }
        if (sub.get("error") != null) {
            problems.add(name + ": subscriber: " + sub.get("error"));
        }
        long confirmedMessages = (long) num(r.get("confirmed_messages"));
        long received = (long) num(sub.get("received"));
        if (received != confirmedMessages) {
            String what = name + ": subscriber received " + fmt(received) + " messages, publisher confirmed "
                    + fmt(confirmedMessages);
            if (baseline && received > confirmedMessages && num(r.get("failed_packs")) > 0) {
                notes.add(what + " (records of failed packs reached the broker)");
            } else {
                problems.add(what);
            }
        }
    }

    /** {@code r} is the median of {@code runs}. */
    private static Map<String, Object> decodeRow(String mode, Map<String, Object> r, List<Map<String, Object>> runs,
            Map<String, Object> java, List<String> problems) {
        Map<String, Object> row = new LinkedHashMap<>();
        row.put("mode", mode);
        row.put("qos", null);
        double rate = num(r.get("records_per_s"));
        row.put("records_per_s", rate);
        row.put("runs", runs.size());
        row.put("records_per_s_min", runs.stream().mapToDouble(x -> num(x.get("records_per_s"))).min().orElse(0));
        row.put("records_per_s_max", runs.stream().mapToDouble(x -> num(x.get("records_per_s"))).max().orElse(0));
        row.put("ours_over_baseline", ratio(rate, java));
        row.put("ours_over_ceiling", null);
        row.put("p50_ms", null);
        row.put("p99_ms", null);
        row.put("peak_rss_mib", r.get("peak_rss_kib") == null ? null : num(r.get("peak_rss_kib")) / 1024.0);
        row.put("confirmed_messages", null);
        row.put("received_messages", null);
        for (Map<String, Object> run : runs) {
            if (run.get("error") != null) {
                problems.add(mode + ": " + run.get("error"));
            }
        }
        return row;
    }

    private static Double ratio(double rate, Map<String, Object> other) {
        if (other == null) {
            return null;
        }
        double o = num(other.get("records_per_s"));
        return o > 0 ? rate / o : null;
    }

    private static String table(List<Map<String, Object>> rows) {
        String[] head = {"mode", "qos", "records/s", "MB/s", "runs: min - max", "ours/baseline", "ours/ceiling", "p50 ms",
            "p99 ms", "peak RSS MiB", "confirmed msgs", "received msgs"};
        List<String[]> cells = new ArrayList<>();
        cells.add(head);
        for (Map<String, Object> r : rows) {
            cells.add(new String[] {
                String.valueOf(r.get("mode")),
                r.get("qos") == null ? "-" : String.valueOf(r.get("qos")),
                fmt(num(r.get("records_per_s"))),
                r.get("mb_per_s") == null ? "-" : String.format(Locale.ROOT, "%.1f", num(r.get("mb_per_s"))),
                r.get("runs") == null ? "-" : r.get("runs") + ": " + fmt(num(r.get("records_per_s_min"))) + " - "
                        + fmt(num(r.get("records_per_s_max"))),
                r.get("ours_over_baseline") == null ? "-" : String.format(Locale.ROOT, "%.2f", num(r.get("ours_over_baseline"))),
                r.get("ours_over_ceiling") == null ? "-" : String.format(Locale.ROOT, "%.2f", num(r.get("ours_over_ceiling"))),
                r.get("p50_ms") == null ? "-" : String.format(Locale.ROOT, "%.1f", num(r.get("p50_ms"))),
                r.get("p99_ms") == null ? "-" : String.format(Locale.ROOT, "%.1f", num(r.get("p99_ms"))),
                r.get("peak_rss_mib") == null ? "-" : String.format(Locale.ROOT, "%.0f", num(r.get("peak_rss_mib"))),
                r.get("confirmed_messages") == null ? "-" : fmt(num(r.get("confirmed_messages"))),
                r.get("received_messages") == null ? "-" : fmt(num(r.get("received_messages"))),
            });
        }
        return align(cells, true);
    }

    /** Cells in columns: the first left-aligned, the others right-aligned; a rule under the head if asked. */
    private static String align(List<String[]> cells, boolean rule) {
        int[] width = new int[cells.get(0).length];
        for (String[] c : cells) {
            for (int i = 0; i < c.length; i++) {
                width[i] = Math.max(width[i], c[i].length());
            }
        }
        StringBuilder sb = new StringBuilder();
        for (int k = 0; k < cells.size(); k++) {
            String[] c = cells.get(k);
            for (int i = 0; i < c.length; i++) {
                String pad = repeat(' ', width[i] - c[i].length());
                sb.append(i == 0 ? c[i] + pad : pad + c[i]).append(i + 1 < c.length ? "  " : "");
            }
            sb.append('\n');
            if (k == 0 && rule) {
                int total = 0;
                for (int w : width) {
                    total += w + 2;
                }
                sb.append(repeat('-', total - 2)).append('\n');
            }
        }
        return sb.toString().replaceAll("\n$", "");
    }

    /**
     * Per record: CPU µs of the publisher process, the broker, the subscriber; the publisher's CPU ms per MB of
     * payload; the broker's read calls and the publisher's write calls per message; how long doAppend holds the
     * caller.
     */
    private static String cpuTable(List<Map<String, Object>> rows) {
        List<String[]> cells = new ArrayList<>();
        cells.add(new String[] {"", "", "CPU µs per record:", "", "", "publisher CPU", "broker reads",
            "publisher writes", "doAppend holds the caller"});
        cells.add(new String[] {"mode", "qos", "publisher", "broker", "subscriber", "ms per MB", "per msg", "per msg",
            "p50 / p99 ms"});
        for (Map<String, Object> r : rows) {
            if (r.get("cpu_us_per_record") == null || r.get("qos") == null) {
                continue;
            }
            Object call50 = r.get("do_append_p50_ms");
            Object call99 = r.get("do_append_p99_ms");
            cells.add(new String[] {
                String.valueOf(r.get("mode")),
                String.valueOf(r.get("qos")),
                String.format(Locale.ROOT, "%.1f", num(r.get("cpu_us_per_record"))),
                String.format(Locale.ROOT, "%.1f", num(r.get("broker_cpu_us_per_record"))),
                String.format(Locale.ROOT, "%.1f", num(r.get("subscriber_cpu_us_per_record"))),
                r.get("cpu_ms_per_mb") == null ? "-" : String.format(Locale.ROOT, "%.1f", num(r.get("cpu_ms_per_mb"))),
                String.format(Locale.ROOT, "%.1f", num(r.get("broker_reads_per_message"))),
                r.get("writes_per_message") == null ? "-"
                        : String.format(Locale.ROOT, "%.2f", num(r.get("writes_per_message"))),
                call50 == null ? "-" : String.format(Locale.ROOT, "%.3f / %.3f", num(call50), num(call99)),
            });
        }
        return cells.size() == 2 ? "" : align(cells, false);
    }

    /** The dead-broker measurement: memory per message held for a broker that is away, and what follows. */
    private static String deadBroker(Map<String, Object> d, List<String> problems, List<String> notes) {
        if (d.get("error") != null) {
            problems.add("deadbroker: " + d.get("error"));
            return "dead broker: failed: " + d.get("error");
        }
        long maxPending = (long) num(d.get("max_pending_records"));
        long held = (long) num(d.get("held_full"));
        double perMessage = num(d.get("bytes_per_held_message"));
        double payload = num(d.get("payload_bytes_avg"));
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "dead broker (QoS 1, nothing listening on the port; maxPendingRecords %,d, "
                + "packs of %d records of %.0f bytes Avro JSON, %.0f bytes Avro binary):%n", maxPending,
                (long) num(d.get("pack_size")), payload, num(d.get("binary_bytes_avg"))));
        sb.append(String.format(Locale.ROOT, "  %,d messages held: RSS %.1f -> %.1f MiB (+%.1f MiB), outside the Java "
                + "heap %.1f -> %.1f MiB (heap committed %.0f MiB, pre-touched)%n", held,
                num(d.get("rss_baseline_kib")) / 1024, num(d.get("rss_full_kib")) / 1024,
                num(d.get("rss_growth_kib")) / 1024, num(d.get("native_baseline_kib")) / 1024,
                num(d.get("native_full_kib")) / 1024, num(d.get("heap_committed_full_kib")) / 1024));
        sb.append(String.format(Locale.ROOT, "  %,.0f bytes per held message (%.2f x its payload): bound %.0f MiB at "
                + "maxPendingRecords %,d, %.0f MiB at the default 100,000%n", perMessage, perMessage / Math.max(1, payload),
                num(d.get("bound_at_max_pending_mib")), maxPending, num(d.get("bound_at_default_max_pending_mib"))));
        sb.append(String.format(Locale.ROOT, "  then %d packs more: %d answered onConnectionError, doAppend at most "
                + "%.2f ms, answered at most %.2f ms after the call began; RSS %+.1f MiB; after close %.1f MiB",
                (long) num(d.get("overflow_packs")), (long) num(d.get("overflow_connection_errors")),
                num(d.get("overflow_do_append_max_ms")), num(d.get("overflow_answer_max_ms")),
                num(d.get("overflow_rss_growth_kib")) / 1024, num(d.get("rss_after_close_kib")) / 1024));
        if (held != maxPending) {
            problems.add("deadbroker: the appender held " + held + " messages, not maxPendingRecords " + maxPending);
        }
        if (num(d.get("answered_while_filling")) > 0) {
            problems.add("deadbroker: " + fmt(num(d.get("answered_while_filling"))) + " packs answered while the "
                    + "appender was below its bound");
        }
        if (num(d.get("overflow_connection_errors")) != num(d.get("overflow_packs"))) {
            problems.add("deadbroker: " + fmt(num(d.get("overflow_packs"))) + " packs past the bound, "
                    + fmt(num(d.get("overflow_connection_errors"))) + " answered onConnectionError");
        }
        // Past the bound nothing may be kept: a few hundred KiB is the allocator's and the JVM's noise.
        if (num(d.get("overflow_rss_growth_kib")) > 1024) {
            problems.add(String.format(Locale.ROOT, "deadbroker: RSS grew %.1f MiB while packs past the bound were "
                    + "refused", num(d.get("overflow_rss_growth_kib")) / 1024));
        }
        if (perMessage > 2 * payload + 1024) {
            notes.add(String.format(Locale.ROOT, "deadbroker: a held message takes %,.0f bytes, over twice its "
                    + "payload (%.0f bytes) plus 1 KiB", perMessage, payload));
        }
        return sb.toString();
    }

    private static Map<String, Object> machine(Map<String, String> opts) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("cpus", Runtime.getRuntime().availableProcessors());
        String cpu = null;
        try {
            for (String line : Files.readAllLines(Paths.get("/proc/cpuinfo"), StandardCharsets.UTF_8)) {
                if (line.startsWith("model name")) {
                    cpu = line.substring(line.indexOf(':') + 1).trim();
                    break;
                }
            }
        } catch (IOException e) {
            // not Linux
        }
        m.put("cpu", cpu);
        m.put("os", System.getProperty("os.name") + " " + System.getProperty("os.version"));
        m.put("java", System.getProperty("java.vm.name") + " " + System.getProperty("java.version"));
        m.put("broker", opts.get("broker"));
        return m;
    }

    private static Map<String, Object> readIf(File f) throws IOException {
        return f.isFile() ? Bench.read(f) : null;
    }

    static double num(Object o) {
        return o instanceof Number ? ((Number) o).doubleValue() : 0;
    }

    private static String fmt(double v) {
        return String.format(Locale.ROOT, "%,.0f", v);
    }

    private static String repeat(char c, int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            sb.append(c);
        }
        return sb.toString();
    }
}

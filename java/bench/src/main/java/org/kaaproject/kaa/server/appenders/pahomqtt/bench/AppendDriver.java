package org.kaaproject.kaa.server.appenders.pahomqtt.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

import javax.management.JMException;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;
import org.kaaproject.kaa.server.common.log.shared.appender.data.BaseLogEventPack;

/**
 * Drives one appender the way a Kaa node with many endpoints does: {@code threads} threads call
 * {@code doAppend} with packs of {@code packSize} records and go on without waiting for the callback, while a
 * semaphore keeps at most {@code inflightPacks} packs unanswered (a node's many endpoints each wait for their
 * own answer; the appender's {@code maxPendingRecords} must stay above packs x size or packs fail fast).
 *
 * <p>The appender is loaded by class name and initialised with raw Avro configuration bytes, as the node does:
 * ours ({@link KaaNode#APPENDER_CLASS}) or the baseline ({@link BaselineAppender}). A warm-up phase (same
 * topic, its records counted in {@code confirmed}) lets the JIT compile both before the measured phase.
 */
final class AppendDriver {

    /** Distinct packs each thread cycles through (built once: building packs is the node's cost, not ours). */
    private static final int RING = 16;
    private static final int DELIVERY_TIMEOUT_S = 30;

    private final Map<String, String> opts;
    private final String mode;
    private final int threads;
    private final int packSize;
    private final int inflightPacks;
    private final int maxSeconds;
    private final long reportEvery;
    /** One message per pack (grouping PACK, ours only) instead of one per record. */
    private final boolean onePerPack;
    /** Records per second the measured phase appends at, at most (packs started on a schedule); 0: unpaced. */
    private final double rate;
    /** MQTT 5 instead of 3.1.1 (ours only: the original's way knows 3.1.1 alone). */
    private final boolean mqtt5;

    private LogAppender appender;
    private BaseLogEventPack[][] rings;
    private long nextReport;
    private long lastReportNanos;
    private long lastReportRecords;

    AppendDriver(Map<String, String> opts) {
        this.opts = opts;
        this.mode = Bench.need(opts, "appender");
        if (!mode.equals("ours") && !mode.equals("baseline")) {
            throw new IllegalArgumentException("--appender is ours or baseline, not " + mode);
        }
        this.threads = Bench.intOpt(opts, "threads", 4);
        this.packSize = Bench.intOpt(opts, "pack-size", 100);
        this.inflightPacks = Bench.intOpt(opts, "inflight-packs", 64);
        this.maxSeconds = Bench.intOpt(opts, "max-seconds", 60);
        this.reportEvery = Bench.longOpt(opts, "report-every", 0);
        String grouping = opts.getOrDefault("grouping", "RECORD");
        if (!grouping.equals("RECORD") && !grouping.equals("PACK")) {
            throw new IllegalArgumentException("--grouping is RECORD or PACK, not " + grouping);
        }
        if (grouping.equals("PACK") && !mode.equals("ours")) {
            throw new IllegalArgumentException("--grouping PACK is for --appender ours only");
        }
        this.onePerPack = grouping.equals("PACK");
        String version = opts.getOrDefault("mqtt-version", "3.1.1");
        if (!version.equals("3.1.1") && !version.equals("5")) {
            throw new IllegalArgumentException("--mqtt-version is 3.1.1 or 5, not " + version);
        }
        this.mqtt5 = version.equals("5");
        if (mqtt5 && !mode.equals("ours")) {
            throw new IllegalArgumentException("--mqtt-version 5 is for --appender ours only");
        }
        this.rate = Double.parseDouble(opts.getOrDefault("rate", "0"));
        if (!(rate >= 0) || Double.isInfinite(rate)) {
            throw new IllegalArgumentException("--rate takes records per second, not " + opts.get("rate"));
        }
    }

    /** A symbol of one of the configuration's enums. */
    private static org.apache.avro.generic.GenericData.EnumSymbol symbol(String field, String name) {
        return new org.apache.avro.generic.GenericData.EnumSymbol(KaaNode.configSchema().getField(field).schema(),
                name);
    }

    /** Runs the warm-up and the measured phase; returns the result record. */
    Map<String, Object> run() throws IOException, InterruptedException {
        Path dir = Paths.get(Bench.need(opts, "dir"));
        String schemaText = new String(Files.readAllBytes(dir.resolve(Data.SCHEMA_FILE)), StandardCharsets.UTF_8);
        List<byte[]> records = Data.readFrames(dir.resolve(Data.RECORDS_FILE));
        int qos = Bench.intOpt(opts, "qos", 1);
        long count = Bench.longOpt(opts, "records", 100_000);
        long warmup = Bench.longOpt(opts, "warmup", 0);

        Map<String, Object> config = KaaNode.brokerConfig(Bench.intOpt(opts, "port", 1883), Bench.need(opts, "topic"),
                qos);
        // --client-id: one fixed id for several node JVMs with one configuration (a Kaa cluster).
        config.put("clientId", opts.getOrDefault("client-id", "bench-" + mode + "-" + Bench.pid()));
        config.put("deliveryTimeoutSeconds", DELIVERY_TIMEOUT_S);
        config.put("maxPendingRecords", Bench.intOpt(opts, "max-pending", 100_000));
        // --max-inflight: one window for QoS 1 and 2, as an MQTT 5 broker's receive maximum gives.
        int maxInflight = Bench.intOpt(opts, "max-inflight", 0);
        if (maxInflight > 0) {
            config.put("maxInflight", maxInflight);
        }
        if (onePerPack) {
            config.put("grouping", symbol("grouping", "PACK"));
        }
        if (mqtt5) {
            config.put("mqttVersion", symbol("mqttVersion", "MQTT_5"));
        }
        LogAppenderDto dto = KaaNode.appenderDto("bench-" + mode, KaaNode.config(config));
        if (mode.equals("baseline")) {
            dto.setPluginClassName(BaselineAppender.class.getName());
        }
        appender = KaaNode.load(dto);

        rings = new BaseLogEventPack[threads][RING];
        for (int t = 0; t < threads; t++) {
            for (int j = 0; j < RING; j++) {
                List<byte[]> packRecords = new ArrayList<>(packSize);
                int base = (t * RING + j) * packSize;
                for (int i = 0; i < packSize; i++) {
                    packRecords.add(records.get((base + i) % records.size()));
                }
                rings[t][j] = KaaNode.pack(schemaText, 1, packRecords);
            }
        }

        Phase warm = new Phase(packsFor(warmup), 0);
        warm.run();
        Phase measured = new Phase(packsFor(count), rate);
        nextReport = 0; // a first line before any record: the process with the appender loaded
        lastReportNanos = System.nanoTime();
        lastReportRecords = 0;
        report(measured);
        double cpuBefore = Bench.procCpuSeconds();
        long writesBefore = Bench.procIo("syscw");
        measured.run();
        double cpu = Bench.procCpuSeconds() - cpuBefore;
        long writesAfter = Bench.procIo("syscw");
        long peakRss = Bench.procStatusKib("VmHWM");
        Object takeovers = mode.equals("ours") ? jmx("bench-" + mode, "Takeovers") : null;
        appender.close();

        long[] ok = measured.successLatencies();
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("mode", mode);
        r.put("qos", qos);
        long confirmedMeasured = measured.confirmedRecords.sum();
        double seconds = measured.seconds();
        r.put("records", confirmedMeasured);
        r.put("seconds", seconds);
        r.put("records_per_s", seconds > 0 ? confirmedMeasured / seconds : 0.0);
        r.put("p50_ms", percentileMs(ok, 50));
        r.put("p99_ms", percentileMs(ok, 99));
        long[] calls = measured.callTimes();
        r.put("do_append_p50_ms", percentileMs(calls, 50));
        r.put("do_append_p99_ms", percentileMs(calls, 99));
        r.put("peak_rss_kib", peakRss);
        r.put("cpu_seconds", cpu);
        r.put("cpu_us_per_record", confirmedMeasured > 0 ? cpu * 1e6 / confirmedMeasured : null);
        // Every write system call of the process during the measured phase (the sockets' and the eventfd
        // wake-ups of the appender's I/O threads alike), and the messages it published meanwhile.
        r.put("write_calls", writesBefore < 0 || writesAfter < 0 ? null : writesAfter - writesBefore);
        r.put("measured_messages", onePerPack ? measured.confirmedPacks.sum() : confirmedMeasured);
        if (rate > 0) {
            r.put("paced_records_per_s", rate);
            r.put("max_behind_schedule_ms", measured.maxLag.get() / 1e6);
        }
        r.put("warmup_records", warm.confirmedRecords.sum());
        r.put("grouping", onePerPack ? "PACK" : "RECORD");
        r.put("mqtt_version", mqtt5 ? "5" : "3.1.1");
        r.put("confirmed", warm.confirmedRecords.sum() + confirmedMeasured);
        // What the subscriber must have received.
        r.put("confirmed_messages", onePerPack ? warm.confirmedPacks.sum() + measured.confirmedPacks.sum()
                : warm.confirmedRecords.sum() + confirmedMeasured);
        long failed = warm.failedPacks() + measured.failedPacks();
        r.put("failed_packs", failed);
        r.put("takeovers", takeovers);
        Map<String, Object> failures = new LinkedHashMap<>();
        failures.put("onConnectionError", warm.connectionErrors.get() + measured.connectionErrors.get());
        failures.put("onRemoteError", warm.remoteErrors.get() + measured.remoteErrors.get());
        failures.put("onInternalError", warm.internalErrors.get() + measured.internalErrors.get());
        failures.put("thrown", warm.thrown.get() + measured.thrown.get());
        r.put("failures", failures);
        if (appender instanceof BaselineAppender) {
            r.put("failure_reasons", ((BaselineAppender) appender).failures);
        }
        r.put("double_answers", warm.doubleAnswers.get() + measured.doubleAnswers.get());
        r.put("unanswered_packs", warm.unanswered() + measured.unanswered());
        r.put("complete", warm.complete() && measured.complete());
        r.put("max_answer_gap_ms", Math.max(warm.maxGap.get(), measured.maxGap.get()) / 1e6);
        r.put("threads", threads);
        r.put("pack_size", packSize);
        r.put("inflight_packs", inflightPacks);
        r.put("jvm_max_heap_mib", Runtime.getRuntime().maxMemory() / (1024 * 1024));
        r.put("error", null);
        return r;
    }

    /** The appender's JMX attribute, as an operator's JMX client reads it; null when there is none. */
    private static Object jmx(String appenderName, String attribute) {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        try {
            for (ObjectName bean : server.queryNames(new ObjectName("org.kaaproject.kaa.server.appenders.pahomqtt:"
                    + "type=PahoMqttAppender,name=" + ObjectName.quote(appenderName) + ",*"), null)) {
                return server.getAttribute(bean, attribute);
            }
        } catch (JMException e) {
            return null;
        }
        return null;
    }

    private int packsFor(long records) {
        return (int) Math.min(Integer.MAX_VALUE - 1, (records + packSize - 1) / packSize);
    }

    private static double percentileMs(long[] sorted, double p) {
        if (sorted.length == 0) {
            return 0;
        }
        int rank = (int) Math.ceil(p / 100.0 * sorted.length);
        return sorted[Math.max(1, Math.min(sorted.length, rank)) - 1] / 1e6;
    }

    /** One batch of packs pushed through the appender by {@code threads} threads. */
    private final class Phase {
        final int packs;
        final long[] latencyNs;
        /** How long each doAppend call kept the calling (node's) thread. */
        final long[] callNs;
        final Semaphore permits = new Semaphore(inflightPacks);
        final AtomicLong nextPack = new AtomicLong();
        final AtomicLong appended = new AtomicLong();
        final AtomicLong answered = new AtomicLong();
        final LongAdder confirmedRecords = new LongAdder();
        final LongAdder confirmedPacks = new LongAdder();
        final AtomicLong firstAppend = new AtomicLong(Long.MAX_VALUE);
        final AtomicLong lastAnswer = new AtomicLong(Long.MIN_VALUE);
        final AtomicLong connectionErrors = new AtomicLong();
        final AtomicLong remoteErrors = new AtomicLong();
        final AtomicLong internalErrors = new AtomicLong();
        final AtomicLong thrown = new AtomicLong();
        final AtomicLong doubleAnswers = new AtomicLong();
        /** The longest time between two answers: a stall shows here, not in the rate. */
        final AtomicLong maxGap = new AtomicLong();
        /** Paced: the nanoseconds between two packs' scheduled starts (0: unpaced), and the latest start. */
        final double nanosPerPack;
        final AtomicLong maxLag = new AtomicLong();
        volatile long scheduleStart;
        volatile boolean stopped;

        Phase(int packs, double recordsPerSecond) {
            this.packs = packs;
            this.nanosPerPack = recordsPerSecond > 0 ? packSize * 1e9 / recordsPerSecond : 0;
            this.latencyNs = new long[packs];
            this.callNs = new long[packs];
        }

        void run() throws InterruptedException {
            if (packs == 0) {
                return;
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(maxSeconds);
            scheduleStart = System.nanoTime();
            Thread[] workers = new Thread[threads];
            for (int t = 0; t < threads; t++) {
                final BaseLogEventPack[] ring = rings[t];
                workers[t] = new Thread(() -> work(ring, deadline), "kaa-log-actor-" + t);
                workers[t].start();
            }
            // Every wait bounded: appends stop at the deadline, answers are awaited for the
            // appender's delivery timeout and a margin beyond it.
            long answersBy = deadline + TimeUnit.SECONDS.toNanos(DELIVERY_TIMEOUT_S + 10);
            while (System.nanoTime() < answersBy) {
                boolean appending = false;
                for (Thread w : workers) {
                    appending |= w.isAlive();
                }
                report(this);
                if (!appending && answered.get() >= appended.get()) {
                    break;
                }
                Thread.sleep(20);
            }
            stopped = true;
            for (Thread w : workers) {
                w.join(TimeUnit.SECONDS.toMillis(5));
            }
        }

        private void work(BaseLogEventPack[] ring, long deadline) {
            long i = 0;
            while (!stopped) {
                long p = nextPack.getAndIncrement();
                if (p >= packs) {
                    return;
                }
                if (nanosPerPack > 0 && !waitForSchedule(p, deadline)) {
                    stopped = true;
                    return;
                }
                boolean permitted = false;
                try {
                    while (!permitted && !stopped && System.nanoTime() < deadline) {
                        permitted = permits.tryAcquire(100, TimeUnit.MILLISECONDS);
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                if (!permitted) {
                    stopped = true; // the deadline passed: stop appending, keep what was answered
                    return;
                }
                BaseLogEventPack pack = ring[(int) (i++ % ring.length)];
                long t0 = System.nanoTime();
                if (nanosPerPack > 0) {
                    maxLag.accumulateAndGet(t0 - scheduleStart - (long) (p * nanosPerPack), Math::max);
                }
                firstAppend.accumulateAndGet(t0, Math::min);
                appended.incrementAndGet();
                try {
                    appender.doAppend(pack, new Answer(this, (int) p, t0, pack.getEvents().size()));
                    callNs[(int) p] = Math.max(1, System.nanoTime() - t0);
                } catch (RuntimeException e) {
                    // The node answers a throwing appender itself (APPENDER_INTERNAL_ERROR).
                    thrown.incrementAndGet();
                    answered.incrementAndGet();
                    permits.release();
                }
            }
        }

        /**
         * Paced: waits until pack {@code p}'s scheduled start (bounded by the deadline; false when that passed).
         * A pack that is late (the appender or the permits held it up) goes at once.
         */
        private boolean waitForSchedule(long p, long deadline) {
            long at = scheduleStart + (long) (p * nanosPerPack);
            for (long now = System.nanoTime(); now < at; now = System.nanoTime()) {
                if (stopped || now >= deadline) {
                    return false;
                }
                java.util.concurrent.locks.LockSupport.parkNanos(Math.min(at - now, 100_000_000L));
            }
            return true;
        }

        long failedPacks() {
            return connectionErrors.get() + remoteErrors.get() + internalErrors.get() + thrown.get();
        }

        long unanswered() {
            return Math.max(0, appended.get() - answered.get());
        }

        boolean complete() {
            return appended.get() == packs && unanswered() == 0;
        }

        double seconds() {
            long first = firstAppend.get();
            long last = lastAnswer.get();
            return first == Long.MAX_VALUE || last <= first ? 0 : (last - first) / 1e9;
        }

        long[] callTimes() {
            long[] c = Arrays.stream(callNs).filter(v -> v > 0).toArray();
            Arrays.sort(c);
            return c;
        }

        long[] successLatencies() {
            long[] ok = Arrays.stream(latencyNs).filter(v -> v > 0).toArray();
            Arrays.sort(ok);
            return ok;
        }
    }

    /** The LogDeliveryCallback of one pack: counts its answer (and any second answer, which is a bug). */
    private static final class Answer implements LogDeliveryCallback {
        private final Phase phase;
        private final int packNo;
        private final long t0;
        private final int size;
        private final AtomicBoolean done = new AtomicBoolean();

        Answer(Phase phase, int packNo, long t0, int size) {
            this.phase = phase;
            this.packNo = packNo;
            this.t0 = t0;
            this.size = size;
        }

        private boolean first() {
            if (done.compareAndSet(false, true)) {
                return true;
            }
            phase.doubleAnswers.incrementAndGet();
            return false;
        }

        private void finish() {
            long now = System.nanoTime();
            long previous = phase.lastAnswer.getAndAccumulate(now, Math::max);
            if (previous != Long.MIN_VALUE) {
                phase.maxGap.accumulateAndGet(now - previous, Math::max);
            }
            phase.answered.incrementAndGet();
            phase.permits.release();
        }

        @Override
        public void onSuccess() {
            if (first()) {
                phase.latencyNs[packNo] = Math.max(1, System.nanoTime() - t0);
                phase.confirmedRecords.add(size);
                phase.confirmedPacks.increment();
                finish();
            }
        }

        @Override
        public void onConnectionError() {
            if (first()) {
                phase.connectionErrors.incrementAndGet();
                finish();
            }
        }

        @Override
        public void onRemoteError() {
            if (first()) {
                phase.remoteErrors.incrementAndGet();
                finish();
            }
        }

        @Override
        public void onInternalError() {
            if (first()) {
                phase.internalErrors.incrementAndGet();
                finish();
            }
        }
    }

    /** Soak mode: a line per {@code reportEvery} records confirmed, with the process's memory. */
    private void report(Phase phase) {
        if (reportEvery <= 0) {
            return;
        }
        long confirmed = phase.confirmedRecords.sum();
        if (confirmed < nextReport) {
            return;
        }
        long now = System.nanoTime();
        double interval = (now - lastReportNanos) / 1e9;
        double rate = interval > 0 ? (confirmed - lastReportRecords) / interval : 0;
        Runtime rt = Runtime.getRuntime();
        System.out.printf("%,13d records confirmed  %,9.0f records/s  RSS %7.1f MiB  peak RSS %7.1f MiB  "
                + "Java heap used %6.1f of %6.1f MiB  failed packs %d%n", confirmed, rate,
                Bench.procStatusKib("VmRSS") / 1024.0, Bench.procStatusKib("VmHWM") / 1024.0,
                (rt.totalMemory() - rt.freeMemory()) / 1048576.0, rt.totalMemory() / 1048576.0,
                phase.failedPacks());
        System.out.flush();
        lastReportNanos = now;
        lastReportRecords = confirmed;
        while (nextReport <= confirmed) {
            nextReport += reportEvery;
        }
    }
}

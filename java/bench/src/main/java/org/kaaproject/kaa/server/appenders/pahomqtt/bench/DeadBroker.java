package org.kaaproject.kaa.server.appenders.pahomqtt.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import javax.management.JMException;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;
import org.kaaproject.kaa.server.common.log.shared.appender.data.BaseLogEventPack;

/**
 * Native memory while the broker is away: ours points at a loopback port nothing listens on, and packs are
 * appended (one thread, QoS 1, one message per record, 16 endpoints in turn) until the appender holds
 * {@code maxPendingRecords} messages; the growth of the process's resident memory from a baseline (the appender
 * loaded and holding one pack) to that point, per message held, is what each held message costs. The JVM runs with its heap pre-touched
 * ({@code -Xms} = {@code -Xmx}, {@code -XX:+AlwaysPreTouch}), so that growth is memory outside the Java heap.
 * Then further packs are appended: each must be answered {@code onConnectionError} at once, and memory must not
 * grow. Finally the appender is closed (close timeout 0: what it holds is answered at once) and the memory read
 * again.
 *
 * <pre>
 * deadbroker --dir D --result F [--max-pending 20000] [--pack-size 100] [--overflow-packs 20]
 *            [--max-seconds 120]
 * </pre>
 */
final class DeadBroker {

    private static final String NAME = "bench-deadbroker";
    /** The first pack's one-time costs (schema parsed, I/O threads' arenas) belong to the baseline. */
    private static final int BASELINE_PACKS = 1;

    private final Map<String, String> opts;
    private final AtomicLong answered = new AtomicLong();
    private final AtomicLong connectionErrors = new AtomicLong();
    private final AtomicLong otherAnswers = new AtomicLong();

    DeadBroker(Map<String, String> opts) {
        this.opts = opts;
    }

    Map<String, Object> run() throws IOException, InterruptedException {
        Path dir = Paths.get(Bench.need(opts, "dir"));
        String schemaText = new String(Files.readAllBytes(dir.resolve(Data.SCHEMA_FILE)), StandardCharsets.UTF_8);
        List<byte[]> records = Data.readFrames(dir.resolve(Data.RECORDS_FILE));
        List<byte[]> payloads = Data.readFrames(dir.resolve(Data.PAYLOADS_FILE));
        int maxPending = Bench.intOpt(opts, "max-pending", 20_000);
        int packSize = Bench.intOpt(opts, "pack-size", 100);
        int overflowPacks = Bench.intOpt(opts, "overflow-packs", 20);
        long limit = TimeUnit.SECONDS.toNanos(Bench.intOpt(opts, "max-seconds", 120));
        long started = System.nanoTime();
        if (packSize < 1 || maxPending < packSize * (BASELINE_PACKS + 1)) {
            throw new IllegalArgumentException("--max-pending must hold at least two packs of --pack-size");
        }

        int port = closedPort();
        Map<String, Object> config = KaaNode.brokerConfig(port, "bench/deadbroker", 1);
        config.put("clientId", "bench-deadbroker-" + Bench.pid());
        config.put("maxPendingRecords", maxPending);
        // Nothing may expire while the packs are appended and measured; close answers them at once.
        config.put("deliveryTimeoutSeconds", 3600);
        config.put("closeTimeoutSeconds", 0);
        LogAppenderDto dto = KaaNode.appenderDto(NAME, KaaNode.config(config));
        LogAppender appender = KaaNode.load(dto);

        // A few distinct packs, appended again and again: the Java heap holds them once.
        List<BaseLogEventPack> ring = new ArrayList<>();
        long payloadBytes = 0;
        long binaryBytes = 0;
        for (int j = 0; j < 16; j++) {
            List<byte[]> packRecords = new ArrayList<>(packSize);
            for (int i = 0; i < packSize; i++) {
                int k = (j * packSize + i) % records.size();
                packRecords.add(records.get(k));
                payloadBytes += payloads.get(k).length;
                binaryBytes += records.get(k).length;
            }
            // An endpoint of its own: one endpoint's packs may hold half of the bound only.
            ring.add(KaaNode.pack("dead-broker-endpoint-" + j, schemaText, 1, packRecords));
        }
        double payloadAvg = (double) payloadBytes / (16L * packSize);
        double binaryAvg = (double) binaryBytes / (16L * packSize);

        int appended = 0;
        for (; appended < BASELINE_PACKS; appended++) {
            appender.doAppend(ring.get(appended % ring.size()), new Answer());
        }
        Thread.sleep(500); // the I/O threads' first connect attempts, their allocations
        long heldBefore = held();
        long rssBefore = Bench.procStatusKib("VmRSS");
        long heapBefore = Runtime.getRuntime().totalMemory();

        // Fill up to the bound: every message of these packs is held, none answered.
        int fillPacks = maxPending / packSize - BASELINE_PACKS;
        long fillStart = System.nanoTime();
        for (int i = 0; i < fillPacks && System.nanoTime() - started < limit; i++, appended++) {
            appender.doAppend(ring.get(appended % ring.size()), new Answer());
        }
        double fillSeconds = (System.nanoTime() - fillStart) / 1e9;
        Thread.sleep(500);
        long heldFull = held();
        long answeredWhileFilling = answered.get();
        long rssFull = Bench.procStatusKib("VmRSS");
        long heapFull = Runtime.getRuntime().totalMemory();

        // Past the bound: every further pack fails fast, and nothing grows.
        long[] callNs = new long[overflowPacks];
        long[] answerNs = new long[overflowPacks];
        long connectionErrorsBefore = connectionErrors.get();
        for (int i = 0; i < overflowPacks && System.nanoTime() - started < limit; i++, appended++) {
            Answer answer = new Answer();
            long t0 = System.nanoTime();
            appender.doAppend(ring.get(appended % ring.size()), answer);
            callNs[i] = System.nanoTime() - t0;
            answerNs[i] = answer.await(t0, Math.max(0, limit - (System.nanoTime() - started)));
        }
        long overflowConnectionErrors = connectionErrors.get() - connectionErrorsBefore;
        Thread.sleep(500);
        long rssOverflow = Bench.procStatusKib("VmRSS");
        long heldOverflow = held();

        appender.close();
        long closeBy = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (answered.get() < appended && System.nanoTime() < closeBy) {
            Thread.sleep(20);
        }
        Thread.sleep(1000); // the drain's last sweep, the connection's close
        long rssClosed = Bench.procStatusKib("VmRSS");

        long messages = heldFull - heldBefore;
        double perMessage = messages > 0 ? (rssFull - rssBefore) * 1024.0 / messages : 0;
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("mode", "deadbroker");
        r.put("qos", 1);
        r.put("dead_port", port);
        r.put("max_pending_records", maxPending);
        r.put("pack_size", packSize);
        r.put("payload_bytes_avg", payloadAvg);
        r.put("binary_bytes_avg", binaryAvg);
        r.put("held_baseline", heldBefore);
        r.put("held_full", heldFull);
        r.put("held_after_overflow", heldOverflow);
        r.put("fill_seconds", fillSeconds);
        r.put("answered_while_filling", answeredWhileFilling);
        r.put("rss_baseline_kib", rssBefore);
        r.put("rss_full_kib", rssFull);
        r.put("rss_after_overflow_kib", rssOverflow);
        r.put("rss_after_close_kib", rssClosed);
        r.put("heap_committed_baseline_kib", heapBefore / 1024);
        r.put("heap_committed_full_kib", heapFull / 1024);
        r.put("native_baseline_kib", rssBefore - heapBefore / 1024);
        r.put("native_full_kib", rssFull - heapFull / 1024);
        r.put("rss_growth_kib", rssFull - rssBefore);
        r.put("bytes_per_held_message", perMessage);
        r.put("bytes_per_held_message_over_payload", payloadAvg > 0 ? perMessage / payloadAvg : null);
        r.put("bound_at_max_pending_mib", perMessage * maxPending / 1048576.0);
        r.put("bound_at_default_max_pending_mib", perMessage * 100_000 / 1048576.0);
        r.put("overflow_packs", overflowPacks);
        r.put("overflow_connection_errors", overflowConnectionErrors);
        r.put("overflow_rss_growth_kib", rssOverflow - rssFull);
        r.put("overflow_do_append_max_ms", max(callNs) / 1e6);
        r.put("overflow_answer_max_ms", max(answerNs) / 1e6);
        r.put("overflow_unanswered", java.util.Arrays.stream(answerNs).filter(v -> v < 0).count());
        r.put("peak_rss_kib", Bench.procStatusKib("VmHWM"));
        r.put("jvm_max_heap_mib", Runtime.getRuntime().maxMemory() / (1024 * 1024));
        r.put("answered_after_close", answered.get());
        r.put("appended_packs", appended);
        r.put("other_answers", otherAnswers.get());
        r.put("error", null);
        return r;
    }

    /** A loopback port nothing listens on: bound by the system, then let go. */
    private static int closedPort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /** Messages the appender holds for the broker (its JMX attribute RecordsAwaitingBroker); -1 if unreadable. */
    private static long held() {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        try {
            for (ObjectName bean : server.queryNames(new ObjectName("org.kaaproject.kaa.server.appenders.pahomqtt:"
                    + "type=PahoMqttAppender,name=" + ObjectName.quote(NAME) + ",*"), null)) {
                return ((Number) server.getAttribute(bean, "RecordsAwaitingBroker")).longValue();
            }
        } catch (JMException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    private static long max(long[] values) {
        long m = 0;
        for (long v : values) {
            m = Math.max(m, v);
        }
        return m;
    }

    /** Counts the pack's answer; {@link #await} waits (bounded) for it. */
    private final class Answer implements LogDeliveryCallback {
        private final CountDownLatch done = new CountDownLatch(1);
        private volatile long answeredAt;

        /** Nanoseconds from {@code t0} to the answer, or -1 if none came within {@code limitNs} (5 s at most). */
        long await(long t0, long limitNs) throws InterruptedException {
            boolean came = done.await(Math.min(limitNs, TimeUnit.SECONDS.toNanos(5)), TimeUnit.NANOSECONDS);
            return came ? answeredAt - t0 : -1;
        }

        private void answer(boolean connectionError) {
            answeredAt = System.nanoTime();
            (connectionError ? connectionErrors : otherAnswers).incrementAndGet();
            answered.incrementAndGet();
            done.countDown();
        }

        @Override
        public void onSuccess() {
            answer(false);
        }

        @Override
        public void onConnectionError() {
            answer(true);
        }

        @Override
        public void onRemoteError() {
            answer(false);
        }

        @Override
        public void onInternalError() {
            answer(false);
        }
    }
}

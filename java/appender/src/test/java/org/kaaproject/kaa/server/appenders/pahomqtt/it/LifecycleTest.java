package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.INTERNAL_ERROR;
import static org.kaaproject.kaa.server.appenders.pahomqtt.it.RecordingCallback.SUCCESS;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

import javax.management.AttributeList;
import javax.management.InstanceNotFoundException;
import javax.management.MBeanException;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * What an appender opens is released whatever the node does with it: a second {@code init} releases the first
 * one's connection and JMX bean, and an appender the node drops without {@code close} (a bug in a node or a test
 * harness) does not keep its connection and bean for the life of the process. The broker's log shows the
 * connection's DISCONNECT.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class LifecycleTest {

    private static final String TELEMETRY = TestData.schemaText(ChildNodeMain.TELEMETRY);

    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    private static Set<ObjectName> beans(String appenderName) throws Exception {
        return ManagementFactory.getPlatformMBeanServer().queryNames(new ObjectName(
                "org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="
                        + ObjectName.quote(appenderName) + ",*"), null);
    }

    private static Map<String, Object> config(String clientId) {
        Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), "kaa/it/lifecycle/" + clientId, 1);
        cfg.put("clientId", clientId);
        return cfg;
    }

    private static void delivers(LogAppender appender, String label) {
        RecordingCallback cb = RecordingCallback.append(appender, KaaNode.pack(TELEMETRY, 1, ChildNodeMain.records(1,
                3)), label);
        cb.assertExactlyOne(SUCCESS, Duration.ofSeconds(30), Duration.ZERO);
    }

    private static boolean disconnected(String clientId) {
        return BROKER.broker().log().contains("Client " + clientId + " disconnected.");
    }

    /**
     * The node gives an appender only packs of the log schema versions its record allows, and waits for its answer
     * only when the record asks for confirmation: both come from the stored appender record, as the original's did,
     * also for an appender whose settings keep it from starting (before a second init changes them).
     */
    @Test
    void schemaVersionsAndDeliveryConfirmationAreTheStoredRecords() {
        String name = "versions-" + UUID.randomUUID().toString().substring(0, 8);
        Map<String, Object> broken = config(name);
        broken.put("maxInflight", -1);
        for (Map<String, Object> cfg : List.of(config(name), broken)) {
            LogAppenderDto dto = KaaNode.appenderDto(name, KaaNode.config(cfg));
            dto.setMinLogSchemaVersion(2);
            dto.setMaxLogSchemaVersion(4);
            dto.setConfirmDelivery(false);
            LogAppender appender = KaaNode.load(dto);
            try {
                List<Boolean> taken = new ArrayList<>();
                for (int version = 0; version <= 5; version++) {
                    taken.add(appender.isSchemaVersionSupported(version));
                }
                assertEquals(List.of(false, false, true, true, true, false), taken, "versions 0 to 5");
                assertEquals(false, appender.isDeliveryConfirmationRequired());
                dto.setMinLogSchemaVersion(1);
                dto.setMaxLogSchemaVersion(Integer.MAX_VALUE);
                dto.setConfirmDelivery(true);
                appender.init(dto);
                assertTrue(appender.isSchemaVersionSupported(1));
                assertTrue(appender.isSchemaVersionSupported(Integer.MAX_VALUE));
                assertTrue(appender.isDeliveryConfirmationRequired(), "after the second init");
            } finally {
                appender.close();
            }
        }
    }

    @Test
    void secondInitReleasesTheFirst() throws Exception {
        String name = "twice-" + UUID.randomUUID().toString().substring(0, 8);
        String first = name + "-a";
        String second = name + "-b";
        LogAppenderDto dto = KaaNode.appenderDto(name, KaaNode.config(config(first)));
        LogAppender appender = BROKER.load(dto);
        delivers(appender, "first configuration");
        appender.init(KaaNode.appenderDto(name, KaaNode.config(config(second))));
        delivers(appender, "second configuration");
        assertEquals(1, beans(name).size(), "one JMX bean");
        BROKER.broker().awaitDisconnected(first);
        assertTrue(!disconnected(second), "the second one is still up");
    }

    /**
     * What the node's log says of an appender initialised a second time (the first configuration's connection goes)
     * and of one dropped without close (its connection and JMX bean are released at the next appender call): one
     * WARN each, naming it.
     */
    @Test
    void aSecondInitAndADroppedAppenderAreOneWarningEach() {
        String name = "warned-" + UUID.randomUUID().toString().substring(0, 8);
        try (ChildNode node = ChildNode.start()) {
            node.load(name, config(name + "-a"));
            node.reinit(name, config(name + "-b"));
            node.load("live-" + name, config("live-" + name));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            for (int n = 0; !dropSaid(node) && System.nanoTime() < deadline; n++) {
                node.drop(name);
                // Any appender call releases what dropped appenders left.
                node.append("live-" + name, "live-" + n, n, 1);
            }
            // (Not the memory WARN a small host gives the default maxPendingRecords.)
            List<String> warned = node.appenderLogLines("WARN").stream().filter(l -> l.contains("'" + name + "'")
                    && !l.contains("maxPendingRecords")).collect(Collectors.toList());
            assertEquals(2, warned.size(), node.diagnostics());
            assertTrue(warned.get(0).contains("initialised again: the first configuration's connection is released"),
                    warned.get(0));
            assertTrue(warned.get(1).contains("was dropped without close(); its connection and JMX bean are released "
                    + "now"), warned.get(1));
        }
    }

    private static boolean dropSaid(ChildNode node) {
        return node.appenderLogLines("WARN").stream().anyMatch(l -> l.contains("was dropped without close()"));
    }

    /**
     * Any appender call releases what appenders dropped without close left: a live appender's pack, and an init or a
     * close, for a node whose appenders are only edited or removed, with no packs coming. (The appender made and
     * closed there cannot start: it opens nothing of its own.)
     */
    @Test
    void appenderDroppedWithoutCloseIsReleased() throws Exception {
        String live = "live-" + UUID.randomUUID().toString().substring(0, 8);
        LogAppender appender = BROKER.load(live, config(live));
        releasedBy(() -> delivers(appender, "a live appender's pack"));
        Map<String, Object> notStarting = config("not-starting-" + live);
        notStarting.put("maxInflight", -1);
        releasedBy(() -> KaaNode.load("not-starting-" + live, KaaNode.config(notStarting)).close());
    }

    /** Drops an appender without close, then makes {@code calls} until its bean and connection are released. */
    private static void releasedBy(Runnable calls) throws Exception {
        String name = "dropped-" + UUID.randomUUID().toString().substring(0, 8);
        LogAppender dropped = KaaNode.load(name, KaaNode.config(config(name)));
        delivers(dropped, "before it is dropped");
        assertEquals(1, beans(name).size());
        dropped = null;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!beans(name).isEmpty() && System.nanoTime() < deadline) {
            System.gc();
            calls.run();
            RecordingCallback.sleep(Duration.ofMillis(20));
        }
        assertEquals(Set.of(), beans(name), "the dropped appender's JMX bean is unregistered");
        BROKER.broker().awaitDisconnected(name);
    }

    /**
     * An appender made again under the same name and id while the one it replaces was dropped without close: the
     * new one's JMX bean stays when the dropped one is released. (Before: the dropped one unregistered the name it
     * had, by then the new appender's bean.)
     */
    @Test
    void aDroppedAppenderLeavesItsSuccessorsBean() throws Exception {
        String name = "succeeded-" + UUID.randomUUID().toString().substring(0, 8);
        LogAppenderDto first = KaaNode.appenderDto(name, KaaNode.config(config(name)));
        LogAppender dropped = KaaNode.load(first);
        delivers(dropped, "before it is dropped");
        java.lang.ref.WeakReference<LogAppender> gone = new java.lang.ref.WeakReference<>(dropped);
        dropped = null;
        // The same appender record, edited: its own connection (another client id), the same name and id.
        LogAppenderDto edited = KaaNode.appenderDto(name, KaaNode.config(config(name + "-edited")));
        edited.setId(first.getId());
        LogAppender successor = BROKER.load(edited);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (gone.get() != null && System.nanoTime() < deadline) {
            System.gc();
            RecordingCallback.sleep(Duration.ofMillis(20));
        }
        assertTrue(gone.get() == null, "the dropped appender was collected");
        // The next appender call releases what the dropped one left: its connection, not the bean.
        deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!disconnected(name) && System.nanoTime() < deadline) {
            System.gc();
            delivers(successor, "the successor's pack");
        }
        assertTrue(disconnected(name), "the dropped appender's connection said goodbye\n"
                + BROKER.broker().logTail(20));
        assertEquals(1, beans(name).size(), "the successor's bean is still registered");
        ObjectName bean = beans(name).iterator().next();
        assertTrue((Long) ManagementFactory.getPlatformMBeanServer().getAttribute(bean, "PacksDelivered") > 0);
    }

    /**
     * The node may close an appender while its threads still append and a JMX client reads the bean. Every pack gets
     * exactly one answer (delivered before the close, failed after it), every read an answer or a "closed" error, and
     * the JVM survives: a handle closed under a call finds nothing, never freed memory. The reader keeps reading
     * from before the close until after it returned, so reads meet the close; from then on every read finds the
     * bean gone. Any other failure of a read (a native error, a runtime exception) fails the test.
     */
    @Test
    void closeRacingWithAppendsAndJmxReadsAnswersEveryPackOnce() throws Exception {
        String name = "race-" + UUID.randomUUID().toString().substring(0, 8);
        LogAppender appender = KaaNode.load(name, KaaNode.config(config(name)));
        ObjectName bean = beans(name).iterator().next();
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        List<RecordingCallback> callbacks = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch started = new CountDownLatch(3);
        AtomicBoolean closed = new AtomicBoolean();
        AtomicBoolean closeReturned = new AtomicBoolean();
        AtomicInteger reads = new AtomicInteger();
        AtomicInteger closedAnswers = new AtomicInteger();
        AtomicInteger readsAfterClose = new AtomicInteger();
        // The first ten unexpected failures of reads, for the message.
        List<String> unexpected = new java.util.concurrent.CopyOnWriteArrayList<>() {
            @Override
            public boolean add(String e) {
                return size() < 10 && super.add(e);
            }
        };
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 3; t++) {
            int thread = t;
            threads.add(new Thread(() -> {
                started.countDown();
                // Bounded: 300 packs per thread, half of them after the close.
                for (int i = 0; i < 300; i++) {
                    RecordingCallback cb = new RecordingCallback("thread " + thread + " pack " + i);
                    callbacks.add(cb);
                    appender.doAppend(KaaNode.pack(TELEMETRY, 1, ChildNodeMain.records(2, i)), cb);
                    if (i == 150) {
                        closed.set(true);
                    }
                }
            }));
        }
        // Until close has returned, and 100 reads more: bounded by the close, which the test makes.
        threads.add(new Thread(() -> {
            while (true) {
                boolean after = closeReturned.get();
                if (after && readsAfterClose.get() >= 100) {
                    return;
                }
                try {
                    AttributeList both = server.getAttributes(bean, new String[] {"PacksDelivered", "Connected"});
                    server.getAttribute(bean, "RecordsDelivered");
                    if (after) {
                        unexpected.add("a read answered after close returned: the bean is still registered");
                    } else if (both.size() != 2) {
                        unexpected.add("getAttributes answered " + both + " while getAttribute answered");
                    }
                    reads.incrementAndGet();
                } catch (InstanceNotFoundException e) {
                    closedAnswers.incrementAndGet(); // unregistered by close
                } catch (MBeanException e) {
                    // Closed between the lookup and the read: the bean says so.
                    if (after || !(e.getCause() instanceof IllegalStateException)
                            || !String.valueOf(e.getCause().getMessage()).endsWith("is closed")) {
                        unexpected.add((after ? "after close returned: " : "") + e + " caused by " + e.getCause());
                    } else {
                        closedAnswers.incrementAndGet();
                    }
                } catch (Exception | Error e) {
                    unexpected.add(e.toString() + (e.getCause() == null ? "" : " caused by " + e.getCause()));
                }
                if (after) {
                    readsAfterClose.incrementAndGet();
                }
            }
        }));
        threads.forEach(Thread::start);
        started.await();
        while (!closed.get()) {
            Thread.yield();
        }
        appender.close();
        closeReturned.set(true);
        for (Thread t : threads) {
            t.join(TimeUnit.SECONDS.toMillis(60));
            assertTrue(!t.isAlive(), "a thread of the test is still running");
        }
        assertEquals(900, callbacks.size());
        Map<String, Integer> answers = new java.util.TreeMap<>();
        for (RecordingCallback cb : callbacks) {
            answers.merge(cb.awaitFirst(Duration.ofSeconds(30)).method, 1, Integer::sum);
        }
        RecordingCallback.sleep(Duration.ofMillis(500)); // time for a second answer to show
        for (RecordingCallback cb : callbacks) {
            assertEquals(1, cb.calls().size(), cb.toString());
        }
        assertTrue(answers.getOrDefault(SUCCESS, 0) > 0 && answers.getOrDefault(INTERNAL_ERROR, 0) > 0,
                "packs before the close delivered, after it refused: " + answers);
        assertEquals(List.of(), unexpected, "reads may only be answered, or find the appender closed or its bean "
                + "gone");
        assertTrue(reads.get() > 0, "the bean answered reads while open");
        assertTrue(readsAfterClose.get() >= 100 && closedAnswers.get() >= readsAfterClose.get(),
                "reads went on after close returned, each finding the bean gone: " + readsAfterClose + " after, "
                        + closedAnswers + " found it closed or gone");
        assertEquals(Set.of(), beans(name), "bean unregistered");
    }
}

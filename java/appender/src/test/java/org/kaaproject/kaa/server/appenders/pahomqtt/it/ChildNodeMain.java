package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.avro.generic.GenericData;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;

/**
 * The main class of a child JVM driven by {@link ChildNode}: it plays the Kaa node for appenders whose whole log
 * output (SLF4J simple, on stderr) the parent test wants to read. Commands come one per line on stdin; answers
 * go to stdout as lines starting with {@code @@ }:
 * <pre>
 * load NAME CONFIG_FILE         -> "@@ LOADED NAME" | "@@ INIT_THREW NAME exception"
 * loadOriginal NAME CONFIG_FILE -> the same, from the record the ORIGINAL appender stored: the nine-field config
 *                                  (the file's values over the original form's defaults) under its class name
 * append NAME LABEL SEED COUNT  -> "@@ APPENDED LABEL" | "@@ APPEND_THREW LABEL exception", then one
 *                                  "@@ CALL LABEL METHOD MILLIS THREAD" per callback call, whenever it comes; with a
 *                                  LABEL starting "throws-", each call then throws ("callback-bomb LABEL"); with
 *                                  one starting "blocks-", each call then blocks until "unblock"; with one
 *                                  starting "holed-", the pack's last event has no data
 * unblock                       -> releases the calls blocked so far and later, "@@ UNBLOCKED"
 * reinit NAME CONFIG_FILE TOKEN -> init again on the loaded appender NAME, as the node never does but the API
 *                                  allows: "@@ REINITED TOKEN" | "@@ REINIT_THREW TOKEN exception"
 * close NAME                    -> "@@ CLOSED NAME" | "@@ CLOSE_THREW NAME exception"; NAME stays loaded, as a
 *                                  node's appender can still get a pack that was on its way
 * drop NAME TOKEN               -> forgets NAME without close (as a node that loses an appender would), then asks
 *                                  for a garbage collection, "@@ DROPPED TOKEN"
 * metric NAME ATTRIBUTE         -> "@@ METRIC NAME ATTRIBUTE value": the appender's JMX attribute, read through the
 *                                  platform MBean server as an operator's JMX client would
 * mark TEXT                     -> logs TEXT at INFO (to find places in the log), "@@ MARKED"
 * level LEVEL                  -> sets the level of the appender's native loggers (all of them, made already or
 *                                  not) to LEVEL (trace, debug, info, warn, error) at run time, "@@ LEVEL LEVEL"
 * exit                          -> closes every appender, "@@ BYE", exits 0
 * return                        -> closes every appender, "@@ RETURNING", returns from main without System.exit:
 *                                  the JVM then ends only if no non-daemon thread is left behind
 * </pre>
 * The records of a pack are {@link #records(int, int)}, so the parent can compute the expected payloads. The JVM
 * halts by itself after {@code it.child.maxSeconds} (default 180), so none outlives a broken test.
 */
public final class ChildNodeMain {

    public static final String TELEMETRY = "telemetry.avsc";

    private static final PrintStream OUT = System.out;
    private static final Map<String, LogAppender> APPENDERS = new LinkedHashMap<>();
    private static final CountDownLatch UNBLOCK = new CountDownLatch(1);

    private ChildNodeMain() {
    }

    /** The records of a pack: telemetry records, deterministic for (seed, count). */
    public static List<byte[]> records(int seed, int count) {
        return TestData.telemetryBinaries(AvroReference.parse(TestData.schemaText(TELEMETRY)), new Random(seed), count,
                i -> "child-" + seed + "-" + i);
    }

    static synchronized void say(String line) {
        OUT.println("@@ " + line);
        OUT.flush();
    }

    /**
     * A config map as text, one field a line: name, TAB, type (s string, i int, b boolean, n null), TAB, the value
     * in base64 (PEM text has newlines).
     */
    public static String encodeConfig(Map<String, Object> cfg) {
        StringBuilder sb = new StringBuilder();
        Base64.Encoder b64 = Base64.getEncoder();
        for (Map.Entry<String, Object> e : cfg.entrySet()) {
            Object v = e.getValue();
            String type;
            if (v == null) {
                type = "n";
            } else if (v instanceof String) {
                type = "s";
            } else if (v instanceof Integer) {
                type = "i";
            } else if (v instanceof Boolean) {
                type = "b";
            } else if (v instanceof GenericData.EnumSymbol) {
                type = "e";
            } else {
                throw new IllegalArgumentException("config value of type " + v.getClass() + " for " + e.getKey());
            }
            sb.append(e.getKey()).append('\t').append(type).append('\t')
                    .append(b64.encodeToString(String.valueOf(v).getBytes(StandardCharsets.UTF_8))).append('\n');
        }
        return sb.toString();
    }

    /** The configuration a command's file holds ({@link #encodeConfig}). */
    private static Map<String, Object> readConfig(String file) throws java.io.IOException {
        return decodeConfig(Files.readAllLines(Paths.get(file), StandardCharsets.UTF_8));
    }

    static Map<String, Object> decodeConfig(List<String> lines) {
        Map<String, Object> cfg = new HashMap<>();
        for (String line : lines) {
            if (line.isEmpty()) {
                continue;
            }
            String[] f = line.split("\t", -1);
            String v = new String(Base64.getDecoder().decode(f[2]), StandardCharsets.UTF_8);
            switch (f[1]) {
                case "n":
                    cfg.put(f[0], null);
                    break;
                case "s":
                    cfg.put(f[0], v);
                    break;
                case "i":
                    cfg.put(f[0], Integer.valueOf(v));
                    break;
                case "b":
                    cfg.put(f[0], Boolean.valueOf(v));
                    break;
                case "e":
                    cfg.put(f[0], new GenericData.EnumSymbol(KaaNode.configSchema().getField(f[0]).schema(), v));
                    break;
                default:
                    throw new IllegalArgumentException(line);
            }
        }
        return cfg;
    }

    /** The loggers the native side logs through ({@code bridge::LOGGER_PREFIX}). */
    static final String NATIVE_LOGGERS = "org.kaaproject.kaa.server.appenders.pahomqtt.native";

    /**
     * Changes the level of the native loggers at run time, as an operator does on a node: Kaa's logback rereads its
     * configuration while the node runs, or takes a new level through JMX. slf4j-simple, the binding of these tests,
     * fixes a logger's level when it makes the logger and has no API to change it, so this plays logback's part by
     * hand: the level field of {@code logger} and of every logger below it made so far, and the system property from
     * which slf4j-simple computes the level of those made later. The appender sees only what any binding shows it:
     * the answers of {@code isDebugEnabled()} and the like.
     */
    static void setNativeLevel(String level, String logger) throws ReflectiveOperationException {
        System.setProperty("org.slf4j.simpleLogger.log." + logger, level);
        Class<?> simple = Class.forName("org.slf4j.impl.SimpleLogger");
        java.lang.reflect.Field constant = simple.getDeclaredField("LOG_LEVEL_" + level.toUpperCase(java.util.Locale.ROOT));
        constant.setAccessible(true);
        int value = constant.getInt(null);
        java.lang.reflect.Field current = simple.getDeclaredField("currentLogLevel");
        current.setAccessible(true);
        org.slf4j.ILoggerFactory factory = org.slf4j.LoggerFactory.getILoggerFactory();
        java.lang.reflect.Field made = factory.getClass().getDeclaredField("loggerMap");
        made.setAccessible(true);
        // The native side asks the prefix logger itself for the level: make sure it exists.
        org.slf4j.LoggerFactory.getLogger(NATIVE_LOGGERS);
        for (Map.Entry<?, ?> e : ((Map<?, ?>) made.get(factory)).entrySet()) {
            String name = (String) e.getKey();
            if (name.equals(logger) || name.startsWith(logger + ".")) {
                current.setInt(e.getValue(), value);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        long maxSeconds = Long.getLong("it.child.maxSeconds", 180);
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(maxSeconds * 1000);
            } catch (InterruptedException e) {
                return;
            }
            System.err.println("child node: max lifetime of " + maxSeconds + " s reached, halting");
            Runtime.getRuntime().halt(3);
        }, "child-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        String schemaText = TestData.schemaText(TELEMETRY);
        org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(ChildNodeMain.class);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        boolean returning = false;
        while (!returning && (line = in.readLine()) != null) {
            String[] c = line.trim().split(" ", 2);
            String[] a = c.length > 1 ? c[1].split(" ") : new String[0];
            switch (c[0]) {
                case "load": {
                    String name = a[0];
                    try {
                        Map<String, Object> cfg = readConfig(a[1]);
                        LogAppender appender = KaaNode.load(name, KaaNode.config(cfg));
                        APPENDERS.put(name, appender);
                        say("LOADED " + name);
                    } catch (Throwable t) {
                        say("INIT_THREW " + name + " " + oneLine(t));
                    }
                    break;
                }
                case "loadOriginal": {
                    String name = a[0];
                    try {
                        Map<String, Object> cfg = readConfig(a[1]);
                        Object[] values = cfg.entrySet().stream().flatMap(e -> java.util.stream.Stream.of(e.getKey(),
                                e.getValue())).toArray();
                        APPENDERS.put(name, KaaNode.load(OriginalAppender.stored(name, OriginalAppender.bytes(values))));
                        say("LOADED " + name);
                    } catch (Throwable t) {
                        say("INIT_THREW " + name + " " + oneLine(t));
                    }
                    break;
                }
                case "append": {
                    String name = a[0];
                    String label = a[1];
                    int seed = Integer.parseInt(a[2]);
                    int count = Integer.parseInt(a[3]);
                    LogAppender appender = APPENDERS.get(name);
                    long start = System.nanoTime();
                    LogDeliveryCallback cb = new LogDeliveryCallback() {
                        private void call(String method) {
                            say("CALL " + label + " " + method + " " + (System.nanoTime() - start) / 1_000_000 + " "
                                    + Thread.currentThread().getName());
                            if (label.startsWith("throws-")) {
                                throw new IllegalStateException("callback-bomb " + label);
                            }
                            if (label.startsWith("blocks-")) {
                                try {
                                    UNBLOCK.await(120, TimeUnit.SECONDS);
                                } catch (InterruptedException e) {
                                    Thread.currentThread().interrupt();
                                }
                            }
                        }

                        @Override
                        public void onSuccess() {
                            call(RecordingCallback.SUCCESS);
                        }

                        @Override
                        public void onInternalError() {
                            call(RecordingCallback.INTERNAL_ERROR);
                        }

                        @Override
                        public void onConnectionError() {
                            call(RecordingCallback.CONNECTION_ERROR);
                        }

                        @Override
                        public void onRemoteError() {
                            call(RecordingCallback.REMOTE_ERROR);
                        }
                    };
                    List<byte[]> records = records(seed, count);
                    if (label.startsWith("holed-")) {
                        records.set(count - 1, null);
                    }
                    try {
                        appender.doAppend(KaaNode.pack(schemaText, 1, records), cb);
                        say("APPENDED " + label);
                    } catch (Throwable t) {
                        say("APPEND_THREW " + label + " " + oneLine(t));
                    }
                    break;
                }
                case "reinit": {
                    String name = a[0];
                    try {
                        Map<String, Object> cfg = readConfig(a[1]);
                        APPENDERS.get(name).init(KaaNode.appenderDto(name, KaaNode.config(cfg)));
                        say("REINITED " + a[2]);
                    } catch (Throwable t) {
                        say("REINIT_THREW " + a[2] + " " + oneLine(t));
                    }
                    break;
                }
                case "drop": {
                    APPENDERS.remove(a[0]);
                    System.gc();
                    say("DROPPED " + a[1]);
                    break;
                }
                case "close": {
                    LogAppender appender = APPENDERS.get(a[0]);
                    try {
                        if (appender != null) {
                            appender.close();
                        }
                        say("CLOSED " + a[0]);
                    } catch (Throwable t) {
                        say("CLOSE_THREW " + a[0] + " " + oneLine(t));
                    }
                    break;
                }
                case "metric": {
                    javax.management.MBeanServer server = java.lang.management.ManagementFactory
                            .getPlatformMBeanServer();
                    Object value = null;
                    try {
                        for (javax.management.ObjectName bean : server.queryNames(new javax.management.ObjectName(
                                "org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name="
                                        + javax.management.ObjectName.quote(a[0]) + ",*"), null)) {
                            value = server.getAttribute(bean, a[1]);
                        }
                    } catch (Exception e) {
                        value = oneLine(e);
                    }
                    say("METRIC " + a[0] + " " + a[1] + " " + value);
                    break;
                }
                case "level":
                    try {
                        setNativeLevel(a[0], a.length > 1 ? a[1] : NATIVE_LOGGERS);
                        say("LEVEL " + a[0]);
                    } catch (Throwable t) {
                        say("LEVEL_FAILED " + oneLine(t));
                    }
                    break;
                case "unblock":
                    UNBLOCK.countDown();
                    say("UNBLOCKED");
                    break;
                case "mark":
                    log.info("MARK {}", c.length > 1 ? c[1] : "");
                    say("MARKED");
                    break;
                case "exit":
                    closeAll();
                    say("BYE");
                    System.exit(0);
                    break;
                case "return":
                    closeAll();
                    say("RETURNING");
                    returning = true;
                    break;
                default:
                    say("UNKNOWN " + line);
            }
        }
        if (returning) {
            // As a node's main does when it is done: no System.exit, so a non-daemon thread (the native side's
            // dispatcher, say) would keep this JVM alive, and the parent's bounded wait for its exit fails.
            return;
        }
        // stdin closed: the parent is gone.
        closeAll();
        System.exit(0);
    }

    private static void closeAll() {
        for (LogAppender appender : APPENDERS.values()) {
            appender.close();
        }
        APPENDERS.clear();
    }

    private static String oneLine(Throwable t) {
        return String.valueOf(t).replace('\n', ' ').replace('\r', ' ');
    }
}

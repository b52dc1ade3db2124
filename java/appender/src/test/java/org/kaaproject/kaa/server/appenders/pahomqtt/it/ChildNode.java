package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * A Kaa node in a child JVM ({@link ChildNodeMain}), so a test can read everything the appender logs through
 * SLF4J (slf4j-simple writes to the child's stderr, which goes to a file here). Every wait is bounded; the child
 * halts by itself after a few minutes in any case.
 */
public final class ChildNode implements AutoCloseable {

    /** The loggers the appender logs through: its Java class and the native side's forwarded targets. */
    public static final Pattern APPENDER_LOGGER = Pattern.compile(
            "org\\.kaaproject\\.kaa\\.server\\.appenders\\.pahomqtt\\.(appender\\.|native\\.kaa_mqtt_appender)");

    /** What -Xcheck:jni says of a JNI call made wrongly (a warning, or an error it then aborts the JVM for). */
    private static final Pattern JNI_MISUSE = Pattern.compile("in native method|JNI local refs|JNI global refs");

    private final Process process;
    private final Writer stdin;
    private final Path dir;
    private final Path stderr;
    private final List<String> answers = new ArrayList<>();
    /** Makes the answers of commands that can repeat (reinit, drop) each call's own. */
    private final AtomicInteger tokens = new AtomicInteger();
    private final StringBuilder stdout = new StringBuilder();
    private final Thread reader;

    private ChildNode(String logLevel, Map<String, String> env, List<String> jvmOptions) throws IOException {
        dir = Files.createTempDirectory("kaa-mqtt-it-child-");
        stderr = dir.resolve("stderr.log");
        Path java = Paths.get(System.getProperty("java.home"), "bin", "java");
        // The JVM checks every JNI call the library makes: one that would corrupt the node's JVM in production is
        // reported (see close).
        List<String> command = new ArrayList<>(List.of(java.toString(), "-Xcheck:jni", "-cp",
                System.getProperty("java.class.path"), "-Dorg.slf4j.simpleLogger.defaultLogLevel=" + logLevel));
        command.addAll(jvmOptions);
        command.add(ChildNodeMain.class.getName());
        ProcessBuilder pb = new ProcessBuilder(command).redirectError(stderr.toFile());
        pb.environment().putAll(env);
        process = pb.start();
        stdin = new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
        reader = new Thread(this::readLoop, "child-node-stdout");
        reader.setDaemon(true);
        reader.start();
    }

    /** A child node logging at INFO (the node's usual level). */
    public static ChildNode start() {
        return start("info");
    }

    public static ChildNode start(String logLevel) {
        return start(logLevel, Map.of());
    }

    /** With extra environment variables (e.g. SSL_CERT_FILE, which decides the system's root store). */
    public static ChildNode start(String logLevel, Map<String, String> env) {
        return start(logLevel, env, List.of());
    }

    /** With extra JVM options too (e.g. {@code -Dkaa.mqtt.appender.library=}, the library to load). */
    public static ChildNode start(String logLevel, Map<String, String> env, List<String> jvmOptions) {
        try {
            return new ChildNode(logLevel, env, jvmOptions);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start the child JVM", e);
        }
    }

    private void readLoop() {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(),
                StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                synchronized (answers) {
                    stdout.append(line).append('\n');
                    if (line.startsWith("@@ ")) {
                        answers.add(line.substring(3));
                        answers.notifyAll();
                    }
                }
            }
        } catch (IOException e) {
            // process ended
        } finally {
            synchronized (answers) {
                answers.notifyAll();
            }
        }
    }

    private void send(String command) {
        try {
            stdin.write(command + "\n");
            stdin.flush();
        } catch (IOException e) {
            fail("child JVM no longer reads commands (" + e + "); alive: " + process.isAlive() + "\n" + diagnostics());
        }
    }

    /** The first answer line starting with {@code prefix} (any of them), waiting at most {@code timeout}. */
    private String await(Duration timeout, String... prefixes) {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (answers) {
            while (true) {
                for (String a : answers) {
                    for (String p : prefixes) {
                        if (a.startsWith(p)) {
                            return a;
                        }
                    }
                }
                long left = deadline - System.nanoTime();
                if (left <= 0 || (!process.isAlive() && !reader.isAlive())) {
                    return null;
                }
                try {
                    answers.wait(Math.max(1, Math.min(200, left / 1_000_000)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return null;
                }
            }
        }
    }

    /** Loads an appender with these config overrides (KaaNode.config in the child). Fails the test if init threw. */
    public void load(String name, Map<String, Object> cfg) {
        load("load", name, cfg);
    }

    /** Loads an appender stored by the original appender: its nine-field config with these values. */
    public void loadOriginal(String name, Map<String, Object> cfg) {
        load("loadOriginal", name, cfg);
    }

    /** Calls init again on the loaded appender {@code name}, with this configuration. */
    public void reinit(String name, Map<String, Object> cfg) {
        String token = name + "-" + tokens.incrementAndGet();
        send("reinit " + name + " " + configFile(name, cfg) + " " + token);
        String a = await(Duration.ofSeconds(30), "REINITED " + token, "REINIT_THREW " + token + " ");
        if (a == null || a.startsWith("REINIT_THREW")) {
            fail("child: init again of " + name + ": " + a + "\n" + diagnostics());
        }
    }

    /** Forgets the appender {@code name} without close, and asks the child for a garbage collection. */
    public void drop(String name) {
        String token = name + "-" + tokens.incrementAndGet();
        send("drop " + name + " " + token);
        if (await(Duration.ofSeconds(30), "DROPPED " + token) == null) {
            fail("child: drop of " + name + " did not return within 30 s\n" + diagnostics());
        }
    }

    /** Writes {@code cfg} to a file of the child's directory, for a command to read. */
    private Path configFile(String name, Map<String, Object> cfg) {
        Path file = dir.resolve("cfg-" + name.replaceAll("[^A-Za-z0-9_.-]", "_") + ".txt");
        try {
            Files.write(file, ChildNodeMain.encodeConfig(cfg).getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return file;
    }

    private void load(String command, String name, Map<String, Object> cfg) {
        send(command + " " + name + " " + configFile(name, cfg));
        String a = await(Duration.ofSeconds(30), "LOADED " + name, "INIT_THREW " + name + " ");
        if (a == null) {
            fail("child: no answer to load " + name + "\n" + diagnostics());
        }
        if (a.startsWith("INIT_THREW")) {
            fail("child: init of " + name + " threw: " + a + "\n" + diagnostics());
        }
    }

    /** Appends {@link ChildNodeMain#records(int, int)}(seed, count) as a pack labelled {@code label}. */
    public void append(String name, String label, int seed, int count) {
        send("append " + name + " " + label + " " + seed + " " + count);
        String a = await(Duration.ofSeconds(30), "APPENDED " + label, "APPEND_THREW " + label + " ");
        if (a == null) {
            fail("child: doAppend of " + label + " did not return within 30 s\n" + diagnostics());
        }
        if (a.startsWith("APPEND_THREW")) {
            fail("child: doAppend threw: " + a + "\n" + diagnostics());
        }
    }

    /** The callback methods called so far for this pack, in order. */
    public List<String> calls(String label) {
        String prefix = "CALL " + label + " ";
        synchronized (answers) {
            return answers.stream().filter(a -> a.startsWith(prefix)).map(a -> a.substring(prefix.length()).split(" ")[0])
                    .collect(Collectors.toList());
        }
    }

    /** The thread of this pack's first callback (null if none yet). */
    public String callThread(String label) {
        String a = await(Duration.ZERO, "CALL " + label + " ");
        return a == null ? null : a.split(" ")[4];
    }

    /** Releases the callbacks of "blocks-" packs. */
    public void unblock() {
        send("unblock");
        if (await(Duration.ofSeconds(10), "UNBLOCKED") == null) {
            fail("child: no answer to unblock\n" + diagnostics());
        }
    }

    /** The milliseconds from doAppend to the first callback of this pack (-1 if none yet). */
    public long millisToFirst(String label) {
        String a = await(Duration.ZERO, "CALL " + label + " ");
        return a == null ? -1 : Long.parseLong(a.split(" ")[3]);
    }

    /** The first callback method of this pack, or null if none within the timeout. */
    public String awaitFirst(String label, Duration timeout) {
        String a = await(timeout, "CALL " + label + " ");
        return a == null ? null : a.split(" ")[2];
    }

    /**
     * Waits for the first callback (at most {@code timeout}), then {@code grace} more, and asserts exactly one call,
     * {@code expected}.
     */
    public void assertExactlyOne(String label, String expected, Duration timeout, Duration grace) {
        String first = awaitFirst(label, timeout);
        if (first == null) {
            fail(label + ": no callback within " + timeout + "\n" + diagnostics());
        }
        RecordingCallback.sleep(grace);
        List<String> all = calls(label);
        if (all.size() != 1 || !all.get(0).equals(expected)) {
            fail(label + ": expected exactly one " + expected + ", got " + all + "\n" + diagnostics());
        }
    }

    /** A configuration the appender must refuse at init, and what its error must name (a regex: the field). */
    public static final class Refused {
        final Map<String, Object> config;
        final Pattern names;

        public Refused(Map<String, Object> config, String namesRegex) {
            this.config = config;
            this.names = Pattern.compile(namesRegex);
        }
    }

    /**
     * Settings that cannot work must keep the appender from starting, as an operator sees it: each case is loaded
     * under its own name (after a MARK of its own) and one pack appended to it. Returns what went wrong, empty when
     * nothing: a pack not answered exactly one onInternalError within {@code wait} (a connection error would make Kaa
     * resend it forever), or no WARN/ERROR line of the appender, between the case's MARK and the next, naming what the
     * case says.
     */
    public List<String> refusalProblems(Map<String, Refused> cases, Duration wait) {
        for (Map.Entry<String, Refused> c : cases.entrySet()) {
            mark("case-" + c.getKey());
            load(c.getKey(), c.getValue().config); // fails the test if init throws
            append(c.getKey(), c.getKey() + "-p", 41, 2);
        }
        List<String> failures = new ArrayList<>();
        for (String name : cases.keySet()) {
            if (awaitFirst(name + "-p", wait) == null) {
                failures.add(name + ": no answer within " + wait);
            }
        }
        RecordingCallback.sleep(Duration.ofMillis(200));
        for (String name : cases.keySet()) {
            List<String> calls = calls(name + "-p");
            if (!calls.isEmpty() && !List.of(RecordingCallback.INTERNAL_ERROR).equals(calls)) {
                failures.add(name + ": expected exactly one " + RecordingCallback.INTERNAL_ERROR + ", got " + calls);
            }
        }
        Pattern problem = levelLine("WARN|ERROR");
        List<String> lines = log().lines().collect(Collectors.toList());
        for (Map.Entry<String, Refused> c : cases.entrySet()) {
            List<String> problems = new ArrayList<>();
            boolean in = false;
            for (String l : lines) {
                if (l.contains(" MARK ")) {
                    in = l.endsWith(" MARK case-" + c.getKey());
                } else if (in && problem.matcher(l).matches() && APPENDER_LOGGER.matcher(l).find()) {
                    problems.add(l);
                }
            }
            if (problems.stream().noneMatch(l -> c.getValue().names.matcher(l).find())) {
                failures.add(c.getKey() + ": no WARN/ERROR line of the appender names " + c.getValue().names
                        + "; its WARN/ERROR lines for this case: " + problems);
            }
        }
        return failures;
    }

    /** The appender's JMX attribute in the child, as text ("null" if it has no such bean). */
    public String metric(String name, String attribute) {
        String prefix = "METRIC " + name + " " + attribute + " ";
        synchronized (answers) {
            answers.removeIf(a -> a.startsWith(prefix));
        }
        send("metric " + name + " " + attribute);
        String a = await(Duration.ofSeconds(10), prefix);
        if (a == null) {
            fail("child: no answer to metric\n" + diagnostics());
        }
        return a.substring(prefix.length());
    }

    /** Logs a marker line in the child (to split its log into phases). */
    public void mark(String text) {
        answersClearMarked();
        send("mark " + text);
        if (await(Duration.ofSeconds(10), "MARKED") == null) {
            fail("child: no answer to mark\n" + diagnostics());
        }
    }

    /** Sets the level of the native loggers in the child at run time (see {@link ChildNodeMain#setNativeLevel}). */
    public void setNativeLevel(String level) {
        setNativeLevel(level, ChildNodeMain.NATIVE_LOGGERS);
    }

    /** Sets the level of one native logger and those below it in the child at run time. */
    public void setNativeLevel(String level, String logger) {
        send("level " + level + " " + logger);
        String a = await(Duration.ofSeconds(10), "LEVEL " + level, "LEVEL_FAILED");
        if (a == null || a.startsWith("LEVEL_FAILED")) {
            fail("child: cannot set the native log level: " + a + "\n" + diagnostics());
        }
    }

    private void answersClearMarked() {
        synchronized (answers) {
            answers.removeIf(a -> a.equals("MARKED"));
        }
    }

    public void closeAppender(String name) {
        send("close " + name);
        String a = await(Duration.ofSeconds(30), "CLOSED " + name, "CLOSE_THREW " + name + " ");
        if (a == null) {
            fail("child: close of " + name + " did not return within 30 s\n" + diagnostics());
        }
        if (a.startsWith("CLOSE_THREW")) {
            fail("child: close of " + name + " threw: " + a + "\n" + diagnostics());
        }
    }

    /** SIGKILL: the node dies without closing anything, as in a crash. */
    public void kill() {
        process.destroyForcibly();
        try {
            process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** Everything the child logged so far (its stderr). */
    public String log() {
        try {
            return new String(Files.readAllBytes(stderr), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(cannot read child log: " + e + ")";
        }
    }

    /** The child's log lines at one of these levels (slf4j-simple: "time [thread] LEVEL logger - message"). */
    public List<String> logLines(String levelRegex) {
        Pattern p = levelLine(levelRegex);
        return log().lines().filter(l -> p.matcher(l).matches()).collect(Collectors.toList());
    }

    /** A log line at one of these levels (slf4j-simple: "time [thread] LEVEL logger - message"). */
    private static Pattern levelLine(String levelRegex) {
        return Pattern.compile("^\\S+ \\[[^\\]]*\\] (" + levelRegex + ") .*");
    }

    /** Lines from the appender's own loggers (Java class and native side), at the given levels. */
    public List<String> appenderLogLines(String levelRegex) {
        return logLines(levelRegex).stream().filter(l -> APPENDER_LOGGER.matcher(l).find())
                .collect(Collectors.toList());
    }

    /** Child stdout and the tail of its log, for failure messages. */
    public String diagnostics() {
        String log = log();
        List<String> lines = log.lines().collect(Collectors.toList());
        String tail = String.join("\n", lines.subList(Math.max(0, lines.size() - 80), lines.size()));
        String out;
        synchronized (answers) {
            out = stdout.toString();
        }
        return "--- child stdout ---\n" + out + "--- child log (last 80 lines of " + stderr + ") ---\n" + tail
                + "\n--- child " + (process.isAlive() ? "alive" : "exited with " + process.exitValue()) + " ---";
    }

    /**
     * Asks the child to close its appenders and exit; returns its exit code (fails the test if it did not exit on
     * its own within the timeout, e.g. hung in close).
     */
    public int exit(Duration timeout) {
        send("exit");
        try {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                fail("child JVM did not exit within " + timeout + " after 'exit'\n" + diagnostics());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail("interrupted");
        }
        return process.exitValue();
    }

    /**
     * Asks the child to close its appenders and return from {@code main} without {@code System.exit}; returns its
     * exit code. Fails the test if the child does not answer, or if its JVM does not then exit by itself within
     * {@code timeout}: a non-daemon thread left behind (the native dispatcher, say) keeps a JVM alive after its main
     * returned, as it would keep a node's JVM from shutting down.
     */
    public int returnFromMain(Duration timeout) {
        send("return");
        if (await(Duration.ofSeconds(30), "RETURNING") == null) {
            fail("child: no answer to 'return' (closing its appenders) within 30 s\n" + diagnostics());
        }
        try {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                fail("child JVM did not exit by itself within " + timeout + " after main returned (a non-daemon "
                        + "thread is left)\n" + diagnostics());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail("interrupted");
        }
        return process.exitValue();
    }

    /** Everything the child wrote to stdout so far (its answers). */
    public String stdout() {
        synchronized (answers) {
            return stdout.toString();
        }
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            try {
                stdin.write("exit\n");
                stdin.flush();
            } catch (IOException e) {
                // gone
            }
            try {
                if (!process.waitFor(10, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    process.waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
        // HotSpot writes these to stdout, the JVM's own abort to stderr.
        List<String> misuse = (stdout() + log()).lines().filter(JNI_MISUSE.asPredicate())
                .collect(Collectors.toList());
        if (!Boolean.getBoolean("it.keepBrokerDirs")) {
            TempDirs.delete(dir);
        }
        if (!misuse.isEmpty()) {
            fail("-Xcheck:jni reported misuse of JNI in the child node:\n" + String.join("\n", misuse));
        }
    }
}

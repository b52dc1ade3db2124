package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * A real HiveMQ CE 2025.5 broker in a JVM of its own (module {@code java/hivemq}, whose {@code HiveMqBroker} lets
 * every client in): a second MQTT 5 broker beside Mosquitto, which keeps to the specification strictly. One plain
 * TCP listener on a free loopback port, persistence in memory, no usage statistics (they would call a server on the
 * internet). It reports each connection and each close it makes on its standard output; it stops when closed, or
 * when the test JVM ends (its standard input closes).
 */
public final class HiveMq implements AutoCloseable {

    private final Path home;
    private final int port;
    private final Process process;
    private final List<String> events = new ArrayList<>();
    private final java.util.ArrayDeque<String> log = new java.util.ArrayDeque<>();
    private final CountDownLatch ready = new CountDownLatch(1);

    private HiveMq(int receiveMaximum, String deniedPrefix) throws IOException, InterruptedException {
        String classPath = System.getProperty("it.hivemqClassPath");
        Path lib = classPath == null ? null : Path.of(classPath.split(java.io.File.pathSeparator)[0]).getParent();
        if (lib == null || !Files.isDirectory(lib)) {
            throw new IllegalStateException("HiveMQ's jars are not built (it.hivemqClassPath: " + classPath + "): run "
                    + "the tests with Maven from the repository root, which builds java/hivemq before them");
        }
        home = Files.createTempDirectory("kaa-it-hivemq");
        port = Mosquitto.freeLoopbackPort();
        Files.createDirectories(home.resolve("conf"));
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("extensions"));
        Files.writeString(home.resolve("conf/config.xml"), "<?xml version=\"1.0\"?>\n<hivemq>\n"
                + "  <listeners><tcp-listener><port>" + port + "</port><bind-address>127.0.0.1</bind-address>"
                + "</tcp-listener></listeners>\n"
                + "  <mqtt><receive-maximum><server-receive-maximum>" + receiveMaximum
                + "</server-receive-maximum></receive-maximum></mqtt>\n"
                + "  <persistence><mode>in-memory</mode></persistence>\n"
                + "  <anonymous-usage-statistics><enabled>false</enabled></anonymous-usage-statistics>\n"
                + "</hivemq>\n");
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "-Xmx256m", "-cp", classPath,
                "org.kaaproject.kaa.server.appenders.pahomqtt.hivemq.HiveMqBroker", home.toString()));
        if (deniedPrefix != null) {
            command.add(deniedPrefix);
        }
        process = new ProcessBuilder(command).redirectError(home.resolve("hivemq.err").toFile()).start();
        Thread reader = new Thread(this::readEvents, "hivemq-events");
        reader.setDaemon(true);
        reader.start();
        if (!ready.await(60, TimeUnit.SECONDS) || !process.isAlive()) {
            String why = "HiveMQ did not start within 60 s (exit status "
                    + (process.isAlive() ? "none: still running" : String.valueOf(process.exitValue())) + "):\n"
                    + logTail();
            close();
            throw new IllegalStateException(why);
        }
    }

    /** A broker announcing this receive maximum to MQTT 5 clients (HiveMQ's default is 10). */
    public static HiveMq start(int receiveMaximum) throws IOException, InterruptedException {
        return new HiveMq(receiveMaximum, null);
    }

    /** The same, refusing every publish to a topic that starts with {@code prefix} (not authorised, 0x87). */
    public static HiveMq startDenying(int receiveMaximum, String prefix) throws IOException, InterruptedException {
        return new HiveMq(receiveMaximum, prefix);
    }

    private void readEvents() {
        try (BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(),
                StandardCharsets.UTF_8))) {
            for (String line = out.readLine(); line != null; line = out.readLine()) {
                if (line.equals("READY")) {
                    ready.countDown();
                } else if (line.startsWith("CONNECT ") || line.startsWith("SERVER-DISCONNECT ")) {
                    synchronized (events) {
                        events.add(line);
                        events.notifyAll();
                    }
                } else {
                    // HiveMQ's own log, which it writes to standard output: the end of it, for failure messages.
                    synchronized (log) {
                        log.addLast(line);
                        if (log.size() > 40) {
                            log.removeFirst();
                        }
                    }
                }
            }
        } catch (IOException e) {
            // the broker ended
        } finally {
            ready.countDown(); // a broker that ended before it was ready fails its start at once
        }
    }

    public int port() {
        return port;
    }

    /** What the broker reported so far: {@code CONNECT <client id>}, {@code SERVER-DISCONNECT <client id> <reason>}. */
    public List<String> events() {
        synchronized (events) {
            return new ArrayList<>(events);
        }
    }

    /** Waits until the client has connected {@code n} times; false if it did not within the timeout. */
    public boolean awaitConnects(String clientId, int n, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (events) {
            while (events.stream().filter(e -> e.equals("CONNECT " + clientId)).count() < n) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                events.wait(Math.max(1, left / 1_000_000));
            }
            return true;
        }
    }

    /** The client connected once and the broker never closed its connection. */
    public void assertConnectedOnce(String clientId) {
        List<String> mine = events().stream().filter(e -> e.split(" ")[1].equals(clientId))
                .collect(Collectors.toList());
        assertEquals(List.of("CONNECT " + clientId), mine, "one connection, never closed by HiveMQ: " + events());
    }

    /** The end of HiveMQ's log (its standard output) and of its standard error. */
    public String logTail() {
        StringBuilder sb = new StringBuilder();
        synchronized (log) {
            log.forEach(line -> sb.append(line).append('\n'));
        }
        try {
            List<String> lines = Files.readAllLines(home.resolve("hivemq.err"), StandardCharsets.UTF_8);
            sb.append("--- standard error ---\n")
                    .append(String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size())));
        } catch (IOException e) {
            sb.append("(no standard error: ").append(e).append(')');
        }
        return sb.toString();
    }

    @Override
    public void close() throws IOException, InterruptedException {
        process.getOutputStream().close();
        if (!process.waitFor(20, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
        TempDirs.delete(home);
    }

    @Override
    public String toString() {
        return "HiveMQ[127.0.0.1:" + port + "]";
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.IOException;
import java.util.Arrays;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * A real Mosquitto broker, run as a child process on a free loopback port with its own configuration in a
 * temporary directory. Nothing leaves the machine: the listener is bound to 127.0.0.1 only.
 *
 * <p>Every started process is also registered with a JVM shutdown hook, so no broker outlives the test JVM
 * even when a test forgets {@link #close()}.
 */
public final class Mosquitto implements AutoCloseable {

    public static final String MOSQUITTO = System.getProperty("it.mosquitto", "/usr/sbin/mosquitto");
    public static final String MOSQUITTO_PASSWD = System.getProperty("it.mosquitto_passwd", "mosquitto_passwd");

    private static final Duration START_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(5);

    /** Every broker process this JVM started and has not yet seen die. */
    private static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (Process p : LIVE) {
                p.destroyForcibly();
            }
        }, "mosquitto-reaper"));
    }

    private final Path dir;
    private final Path conf;
    private final Path log;
    private final Path stdout;
    private final int port;
    private final String username;
    private final String password;
    /** Null for a plain broker. */
    private final Tls tls;
    /** The plain listener of a TLS broker (-1 if it has none); {@link #port} for a plain broker. */
    private final int plainPort;
    private Process process;
    /** Between {@link #pause} and {@link #resume}. */
    private boolean paused;
    /** Lines a test adds to the broker's configuration (e.g. an ACL file). */
    private final List<String> extra = new ArrayList<>();

    /**
     * A TLS listener's settings (Mosquitto's {@code cafile}, {@code certfile}, {@code keyfile},
     * {@code require_certificate}, {@code use_identity_as_username}), and whether the broker also gets a plain
     * listener on a second loopback port (on by default: the tests' subscribers use it).
     */
    public static final class Tls {
        final Path cafile;
        final Path certfile;
        final Path keyfile;
        boolean requireCertificate;
        boolean useIdentityAsUsername;
        boolean plainListener = true;

        /**
         * @param cafile CAs the broker accepts client certificates from (PEM); may be null when no client
         *               certificate is required
         * @param certfile the server certificate, optionally followed by its intermediates (PEM)
         * @param keyfile its private key (PEM)
         */
        public Tls(Path cafile, Path certfile, Path keyfile) {
            this.cafile = cafile;
            this.certfile = certfile;
            this.keyfile = keyfile;
        }

        /** {@code require_certificate true}: clients must present a certificate issued by {@code cafile}. */
        public Tls requireCertificate(boolean on) {
            this.requireCertificate = on;
            return this;
        }

        /** {@code use_identity_as_username true}: the client certificate's CN becomes the MQTT user name. */
        public Tls useIdentityAsUsername(boolean on) {
            this.useIdentityAsUsername = on;
            return this;
        }

        /** Whether the broker also listens in plain text on {@link Mosquitto#plainPort()} (default: yes). */
        public Tls plainListener(boolean on) {
            this.plainListener = on;
            return this;
        }
    }

    private Mosquitto(String username, String password) {
        this(username, password, null);
    }

    private Mosquitto(String username, String password, Tls tls) {
        try {
            this.dir = Files.createTempDirectory("kaa-mqtt-it-mosquitto-");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        this.conf = dir.resolve("mosquitto.conf");
        this.log = dir.resolve("mosquitto.log");
        this.stdout = dir.resolve("mosquitto.stdout");
        this.port = freeLoopbackPort();
        this.username = username;
        this.password = password;
        this.tls = tls;
        this.plainPort = tls == null ? port : tls.plainListener ? freeLoopbackPort() : -1;
    }

    /** A broker that accepts anonymous clients. Not started yet. */
    public static Mosquitto anonymous() {
        return new Mosquitto(null, null);
    }

    /** A broker that only accepts this user (password file made with mosquitto_passwd). Not started yet. */
    public static Mosquitto withCredentials(String username, String password) {
        return new Mosquitto(username, password);
    }

    /**
     * An anonymous broker whose {@link #port()} is a TLS listener with these settings, and (unless turned off)
     * with a plain listener on {@link #plainPort()}. Not started yet.
     */
    public static Mosquitto withTls(Tls tls) {
        if (tls == null) {
            throw new IllegalArgumentException("tls");
        }
        return new Mosquitto(null, null, tls);
    }

    /** Convenience: {@link #withTls}, started. */
    public static Mosquitto startTls(Tls tls) {
        Mosquitto m = withTls(tls);
        m.start();
        return m;
    }

    /** Convenience: an anonymous broker, started. */
    public static Mosquitto startAnonymous() {
        Mosquitto m = anonymous();
        m.start();
        return m;
    }

    /**
     * A port that was free on loopback a moment ago (nothing listens on it once this returns). Also used by
     * tests that want a port where no broker is.
     */
    public static int freeLoopbackPort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            s.setReuseAddress(true);
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The broker's (first) listener: TLS for a broker made by {@link #withTls}, plain otherwise. */
    public int port() {
        return port;
    }

    /** A plain-text listener: {@link #port()} for a plain broker, the second listener of a TLS broker (or -1). */
    public int plainPort() {
        return plainPort;
    }

    public boolean isTls() {
        return tls != null;
    }

    /** Adds configuration lines, taking effect at the next start. */
    public synchronized Mosquitto extraConfig(String... lines) {
        extra.addAll(Arrays.asList(lines));
        return this;
    }

    public Path dir() {
        return dir;
    }

    public synchronized boolean isRunning() {
        return process != null && process.isAlive();
    }

    public synchronized void start() {
        if (isRunning()) {
            throw new IllegalStateException("mosquitto already running on port " + port);
        }
        try {
            writeConfig();
            ProcessBuilder pb = new ProcessBuilder(MOSQUITTO, "-c", conf.toString())
                    .directory(dir.toFile())
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(stdout.toFile()));
            process = pb.start();
            LIVE.add(process);
            Process p = process;
            p.onExit().thenRun(() -> LIVE.remove(p));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + MOSQUITTO, e);
        }
        awaitListening();
    }

    /** Graceful stop (SIGTERM), escalating to SIGKILL if it does not exit in time. */
    public synchronized void stop() {
        if (process == null) {
            return;
        }
        resume();
        Process p = process;
        process = null;
        p.destroy();
        try {
            if (!p.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                p.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
        } finally {
            LIVE.remove(p);
        }
    }

    /** SIGKILL: the broker dies without a word to its clients (the kernel still closes its sockets). */
    public synchronized void kill() {
        if (process == null) {
            return;
        }
        paused = false; // SIGKILL ends a stopped process too
        Process p = process;
        process = null;
        p.destroyForcibly();
        try {
            p.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            LIVE.remove(p);
        }
    }

    /**
     * SIGSTOP: the broker stays, its sockets open, and reads nothing more (a hung broker, a stalled path): the
     * kernel still accepts connections and fills the socket buffers, then writers wait. {@link #close} resumes it.
     */
    public synchronized void pause() {
        signal("-STOP");
        paused = true;
    }

    /** SIGCONT after {@link #pause}. */
    public synchronized void resume() {
        if (paused) {
            signal("-CONT");
            paused = false;
        }
    }

    private void signal(String which) {
        if (process == null) {
            throw new IllegalStateException("mosquitto is not running");
        }
        try {
            Process kill = new ProcessBuilder("kill", which, Long.toString(process.pid())).inheritIO().start();
            if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
                throw new IllegalStateException("kill " + which + " of mosquitto failed");
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** Stops (gracefully) if running, then starts again on the same port. */
    public synchronized void restart() {
        stop();
        start();
    }

    /**
     * Always kills; never throws. Removes the temporary directory (config, password file, log) unless the system
     * property it.keepBrokerDirs is true.
     */
    @Override
    public synchronized void close() {
        kill();
        if (!Boolean.getBoolean("it.keepBrokerDirs")) {
            TempDirs.delete(dir);
        }
    }

    /** The broker's whole log file so far. */
    public String log() {
        try {
            return new String(Files.readAllBytes(log), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(cannot read " + log + ": " + e + ")";
        }
    }

    /**
     * Waits, 10 s at most, for the broker to log the DISCONNECT of this client id: a closed appender's connection stays
     * up a moment (2 s at least, for Kaa's edits) before it says goodbye.
     */
    public void awaitDisconnected(String clientId) {
        String line = "Client " + clientId + " disconnected.";
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(10);
        while (!log().contains(line) && System.nanoTime() < deadline) {
            RecordingCallback.sleep(java.time.Duration.ofMillis(50));
        }
        org.junit.jupiter.api.Assertions.assertTrue(log().contains(line), clientId + "'s connection said goodbye\n"
                + logTail(20));
    }

    /** The broker's log shows one connection of this client id: the appender's was never reset. */
    public void assertConnectedOnce(String clientId) {
        String log = logTail(2000);
        int connects = log.split(Pattern.quote(" as " + clientId + " "), -1).length - 1;
        org.junit.jupiter.api.Assertions.assertEquals(1, connects, "one connection, never reset:\n" + log);
    }

    /** The last lines of the broker's log file and of its stdout/stderr, for failure messages. */
    public String logTail(int lines) {
        StringBuilder sb = new StringBuilder();
        sb.append("--- ").append(log).append(" (last ").append(lines).append(" lines) ---\n");
        sb.append(tail(log, lines));
        sb.append("--- ").append(stdout).append(" ---\n");
        sb.append(tail(stdout, lines));
        return sb.toString();
    }

    @Override
    public String toString() {
        String listeners = tls == null ? "" : " (TLS" + (tls.requireCertificate ? ", client certificate" : "")
                + (plainPort > 0 ? ", plain on " + plainPort : "") + ")";
        return "Mosquitto[127.0.0.1:" + port + listeners + (username != null ? ", user " + username : "") + ", "
                + dir + "]";
    }

    private void writeConfig() throws IOException {
        List<String> lines = new ArrayList<>();
        // Run as root, mosquitto drops to the 'mosquitto' user, which cannot write into our private temp dir.
        // 'user' is only used when started as root; naming ourselves keeps the privileges we have.
        lines.add("user " + System.getProperty("user.name"));
        lines.add("listener " + port + " 127.0.0.1");
        if (tls != null) {
            // Options that follow a listener line apply to that listener.
            if (tls.cafile != null) {
                lines.add("cafile " + tls.cafile.toAbsolutePath());
            }
            lines.add("certfile " + tls.certfile.toAbsolutePath());
            lines.add("keyfile " + tls.keyfile.toAbsolutePath());
            lines.add("require_certificate " + tls.requireCertificate);
            if (tls.useIdentityAsUsername) {
                lines.add("use_identity_as_username true");
            }
            if (plainPort > 0) {
                lines.add("listener " + plainPort + " 127.0.0.1");
            }
        }
        lines.add("persistence false");
        lines.add("log_dest file " + log);
        lines.add("log_type error");
        lines.add("log_type warning");
        lines.add("log_type notice");
        lines.add("log_type information");
        lines.add("connection_messages true");
        // The default (1000) drops messages, QoS 0 and QoS > 0 alike, for a subscriber whose queue is longer than
        // that. A test that counts what a subscriber got must not lose messages in the broker.
        lines.add("max_queued_messages 1000000");
        lines.addAll(extra);
        if (username != null) {
            Path pw = dir.resolve("passwd");
            if (!Files.exists(pw)) {
                runChecked(List.of(MOSQUITTO_PASSWD, "-b", "-c", pw.toString(), username, password));
            }
            lines.add("allow_anonymous false");
            lines.add("password_file " + pw);
        } else {
            lines.add("allow_anonymous true");
        }
        Files.write(conf, lines, StandardCharsets.UTF_8);
    }

    private void awaitListening() {
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        awaitListening(port, deadline);
        if (plainPort > 0 && plainPort != port) {
            awaitListening(plainPort, deadline);
        }
    }

    private void awaitListening(int port, long deadline) {
        IOException last = null;
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                Process p = process;
                process = null;
                LIVE.remove(p);
                throw new IllegalStateException("mosquitto exited with " + p.exitValue() + " before listening on "
                        + port + "\n" + logTail(30));
            }
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 200);
                return;
            } catch (IOException e) {
                last = e;
            }
            sleep(50);
        }
        kill();
        throw new IllegalStateException("mosquitto did not accept TCP on 127.0.0.1:" + port + " within "
                + START_TIMEOUT + " (last error: " + last + ")\n" + logTail(30));
    }

    private static void runChecked(List<String> cmd) throws IOException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        try {
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException("timed out: " + cmd);
            }
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (p.exitValue() != 0) {
                throw new IOException(cmd + " exited with " + p.exitValue() + ": " + out);
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException("interrupted: " + cmd, e);
        }
    }

    private static String tail(Path file, int lines) {
        try {
            if (!Files.exists(file)) {
                return "(no file)\n";
            }
            List<String> all = Files.readAllLines(file, StandardCharsets.ISO_8859_1);
            List<String> last = all.subList(Math.max(0, all.size() - lines), all.size());
            return String.join("\n", last) + "\n";
        } catch (IOException e) {
            return "(cannot read: " + e + ")\n";
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }

    /** For diagnostics: how many broker processes this JVM currently owns. */
    static List<Process> liveProcesses() {
        return Collections.unmodifiableList(new ArrayList<>(LIVE));
    }
}

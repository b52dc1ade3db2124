package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;

/**
 * The install the README describes, started the way a Kaa node starts: the built jar and .so copied side by side
 * into an empty directory with a node's own libraries (Kaa API, Avro 1.7.5 and its dependencies, slf4j-api and
 * slf4j-simple 1.7.7) and the replay tool, which plays the node (loads the appender by class name, init with raw
 * Avro config bytes, doAppend with BaseLogEventPack); then a fresh JVM {@code java -cp "<dir>/*" <main>} with no
 * java.library.path, no kaa.mqtt.appender.library and no LD_LIBRARY_PATH, publishing to a test Mosquitto.
 *
 * <p>Where the library was loaded from is read from the child JVM's own log of shared library loads
 * ({@code -Xlog:os=info} to a file, JDK 9+): the appender does not log it (NativeLibrary.load() returns the place
 * and NativeLogAppender.init drops it). Neither that option nor {@code -Djava.io.tmpdir} (a private directory, so
 * an extracted copy can be seen) changes where the appender looks.
 */
class InstallLayoutIT {

    private static final String MAIN = "org.kaaproject.kaa.server.appenders.pahomqtt.replay.Replay";
    private static final Pattern LOADED = Pattern.compile("shared library load of (.*) was successful");
    private static final Pattern ATTEMPTED = Pattern.compile("attempting shared library load of (.*)$");

    /** The broker only: the appenders run in the child JVMs. */
    @RegisterExtension
    static final BrokerExtension BROKER = BrokerExtension.anonymous();

    private final List<Path> dirs = new ArrayList<>();

    @AfterEach
    void removeDirectories() {
        if (Boolean.getBoolean("it.keepInstallDirs")) {
            System.out.println("kept: " + dirs);
            return;
        }
        dirs.forEach(TempDirs::delete);
        dirs.clear();
    }

    // ------------------------------------------------------------------------------------------------ layout

    private Path newDir(String prefix) throws IOException {
        Path d = Files.createTempDirectory(prefix).toRealPath();
        dirs.add(d);
        return d;
    }

    /** An empty directory, then the node's libraries, the replay tool and the appender jar (and .so) copied in. */
    private Path libDir(boolean withLibrary) throws IOException {
        Path lib = newDir("kaa-node-lib-");
        for (Path jar : NodeLayout.nodeLibJars()) {
            Files.copy(jar, lib.resolve(jar.getFileName()));
        }
        Files.copy(NodeLayout.replayJar(), lib.resolve(NodeLayout.replayJar().getFileName()));
        Files.copy(NodeLayout.appenderJar(), lib.resolve("kaa-mqtt-appender-0.1.0.jar"));
        if (withLibrary) {
            Files.copy(NodeLayout.nativeLibrary(), lib.resolve(NodeLayout.FILE_NAME));
        }
        return lib;
    }

    /** What one run of the child JVM left. */
    private static final class Run {
        int exit;
        String stdout;
        String stderr;
        List<String> osLog;
        Path work;

        List<String> loaded() {
            return matches(LOADED);
        }

        List<String> attempted() {
            return matches(ATTEMPTED);
        }

        private List<String> matches(Pattern p) {
            List<String> out = new ArrayList<>();
            for (String line : osLog) {
                Matcher m = p.matcher(line);
                if (m.find() && m.group(1).contains("kaa_mqtt_appender")) {
                    out.add(m.group(1).trim());
                }
            }
            return out;
        }

        List<String> stderrLines(String level) {
            return Stream.of(stderr.split("\n")).filter(l -> l.contains(" " + level + " ")).collect(
                    Collectors.toList());
        }

        String describe() {
            return "exit " + exit + "\n--- stdout ---\n" + stdout + "--- stderr ---\n" + stderr
                    + "--- library loads (-Xlog:os) ---\n" + String.join("\n", matches(Pattern.compile(
                            "library load of (.*)")));
        }
    }

    /**
     * {@code java -cp "<lib>/*" [options] Replay args}, in a fresh working directory, with an environment that adds
     * no library path and no JVM options; stdout and stderr to files; at most 90 s.
     */
    private Run runNode(Path lib, List<String> options, List<String> args) throws Exception {
        Path work = newDir("kaa-node-work-");
        Process p = startNode(work, lib, options, args);
        try {
            if (!p.waitFor(90, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
                fail("the node JVM did not exit within 90 s\n" + read(work.resolve("stderr.txt")));
            }
        } finally {
            if (p.isAlive()) {
                p.destroyForcibly();
            }
        }
        Run r = new Run();
        r.exit = p.exitValue();
        r.stdout = read(work.resolve("stdout.txt"));
        r.stderr = read(work.resolve("stderr.txt"));
        Path osLog = work.resolve("jvm-os.log");
        // ISO-8859-1: the JVM logs bytes of a failed load that are no UTF-8; what is matched is ASCII.
        r.osLog = Files.exists(osLog) ? Files.readAllLines(osLog, StandardCharsets.ISO_8859_1) : List.of();
        r.work = work;
        System.out.println("node JVM: " + p.info().commandLine().orElse("?") + "\n" + r.describe());
        return r;
    }

    /** Starts the node JVM of {@link #runNode} in {@code work}. */
    private static Process startNode(Path work, Path lib, List<String> options, List<String> args) throws IOException {
        Path tmp = Files.createDirectory(work.resolve("tmp"));
        List<String> cmd = new ArrayList<>();
        cmd.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-cp");
        cmd.add(lib + "/*");
        cmd.add("-Xlog:os=info:file=" + work.resolve("jvm-os.log"));
        cmd.add("-Djava.io.tmpdir=" + tmp);
        cmd.addAll(options);
        cmd.add(MAIN);
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(work.toFile())
                .redirectOutput(work.resolve("stdout.txt").toFile())
                .redirectError(work.resolve("stderr.txt").toFile());
        Map<String, String> env = pb.environment();
        for (String v : new String[] {"LD_LIBRARY_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
            "CLASSPATH"}) {
            env.remove(v);
        }
        return pb.start();
    }

    private static String read(Path p) throws IOException {
        return Files.exists(p) ? new String(Files.readAllBytes(p), StandardCharsets.UTF_8) : "";
    }

    private static void assertNoCrash(Run r) throws IOException {
        try (Stream<Path> s = Files.list(r.work)) {
            List<Path> crashLogs = s.filter(p -> p.getFileName().toString().startsWith("hs_err_pid")).collect(
                    Collectors.toList());
            assertEquals(List.of(), crashLogs, "JVM crash logs\n" + r.describe());
        }
        assertFalse(r.stdout.contains("A fatal error has been detected") || r.stderr.contains(
                "A fatal error has been detected"), r.describe());
        assertFalse(r.stderr.contains("Exception in thread"), "uncaught exception\n" + r.describe());
    }

    /** The node ran its one pack of {@code records} records to onSuccess, exited 0, and logged no ERROR. */
    private static void assertDeliveredWithoutError(Run r, int records) throws IOException {
        assertNoCrash(r);
        assertEquals(0, r.exit, r.describe());
        assertTrue(r.stdout.contains("pack 1: " + records + " records -> onSuccess"), r.describe());
        assertEquals(List.of(), r.stderrLines("ERROR"), "no error logged\n" + r.describe());
    }

    /** Records as the replay tool reads them (Avro JSON, one a line) and what must be published for each. */
    private static final class Records {
        final Path schemaFile;
        final Path recordsFile;
        final List<byte[]> expected = new ArrayList<>();

        Records(Path dir, int n, long seed) throws IOException {
            String schemaText = TestData.schemaText("telemetry.avsc");
            Schema schema = AvroReference.parse(schemaText);
            schemaFile = dir.resolve("telemetry.avsc");
            Files.write(schemaFile, schemaText.getBytes(StandardCharsets.UTF_8));
            List<String> lines = new ArrayList<>();
            Random rnd = new Random(seed);
            for (int i = 0; i < n; i++) {
                byte[] bin = AvroReference.binary(schema, TestData.telemetry(schema, rnd, "install-" + seed + "-r" + i,
                        i));
                String json = new String(AvroReference.kaaJson(schema, bin), StandardCharsets.UTF_8);
                assertFalse(json.contains("\n"), "one record a line");
                lines.add(json);
                // The replay tool turns each line into the Avro binary an endpoint uploads, as here.
                expected.add(AvroReference.expectedPayload(schema, toBinary(schema, json)));
            }
            recordsFile = dir.resolve("records.json");
            Files.write(recordsFile, lines, StandardCharsets.UTF_8);
        }

        private static byte[] toBinary(Schema schema, String json) throws IOException {
            Object datum = new GenericDatumReader<Object>(schema).read(null, DecoderFactory.get().jsonDecoder(schema,
                    json));
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            BinaryEncoder enc = EncoderFactory.get().binaryEncoder(out, null);
            new GenericDatumWriter<Object>(schema).write(datum, enc);
            enc.flush();
            return out.toByteArray();
        }
    }

    private static List<String> replayArgs(String topic, Records records) {
        return List.of("--host", "127.0.0.1", "--port", String.valueOf(BROKER.port()), "--topic", topic, "--qos", "1",
                "--client-id", "install-" + UUID.randomUUID().toString().substring(0, 8), "--timeout", "10",
                "--schema", records.schemaFile.toString(), "--records", records.recordsFile.toString());
    }

    /** Everything of ours under {@code dir}: library files and extraction directories, at any depth. */
    private static List<String> libraryFilesIn(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(p -> !p.equals(dir)).map(p -> dir.relativize(p).toString())
                    .filter(n -> n.contains("kaa_mqtt_appender") || n.contains("kaa-mqtt-appender")).collect(
                            Collectors.toList());
        }
    }

    // ------------------------------------------------------------------------------------------------ tests

    /**
     * README "Install into a Kaa node": jar and .so side by side in lib/. The appender loads the .so from that
     * directory (not an extracted copy, not java.library.path), publishes every record and the pack is confirmed.
     */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void jarAndLibrarySideBySideWorkWithTheNodesStartCommand() throws Exception {
        Path lib = libDir(true);
        Records records = new Records(newDir("kaa-node-data-"), 20, 1);
        String topic = "kaa/it/install/beside/" + UUID.randomUUID().toString().substring(0, 8);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Run r = runNode(lib, List.of(), replayArgs(topic, records));
            assertNoCrash(r);
            assertEquals(0, r.exit, "Replay exits 0 when every pack was confirmed\n" + r.describe());
            assertTrue(r.stdout.contains("pack 1: 20 records -> onSuccess"), r.describe());
            assertTrue(r.stderr.contains("PahoMqtt appender 'replay'") && r.stderr.contains("started"),
                    "the appender's start-up line\n" + r.describe());
            assertEquals(List.of(), r.stderrLines("ERROR"), "no error logged\n" + r.describe());
            assertFalse(r.stderr.contains("is not the library this jar was built with"), "one build\n" + r.describe());
            assertEquals(List.of(lib.resolve(NodeLayout.FILE_NAME).toString()), r.loaded(),
                    "the library is loaded once, from the directory of the jar\n" + r.describe());
            assertEquals(List.of(), libraryFilesIn(r.work.resolve("tmp")), "no extracted copy");

            sub.awaitCount(records.expected.size(), Duration.ofSeconds(10));
            RecordingCallback.sleep(Duration.ofMillis(500));
            assertNull(sub.connectionLost(), "the test subscriber lost its connection");
            Payloads.assertSameMultiset("published from the node layout", records.expected, sub.payloads());
        }
    }

    /**
     * README "Upgrading from the original PahoMQTT appender": its jar must go. One left in lib/ beside this one (here
     * a second copy of this jar under another file name, which carries the same class names as the original's) is one
     * ERROR naming both jars, since the node's {@code java -cp "$LIB/*"} takes each class from whichever comes first
     * and the appenders the original stored could still run its code. The appender still works.
     */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void aSecondJarWithThePluginsClassesIsAnErrorNamingBoth() throws Exception {
        Path lib = libDir(true);
        Files.copy(NodeLayout.appenderJar(), lib.resolve("pahomqtt-appender-0.9.0.jar"));
        Records records = new Records(newDir("kaa-node-data-"), 5, 3);
        String topic = "kaa/it/install/two-jars/" + UUID.randomUUID().toString().substring(0, 8);
        Run r = runNode(lib, List.of(), replayArgs(topic, records));
        assertNoCrash(r);
        assertEquals(0, r.exit, "the appender still delivers\n" + r.describe());
        List<String> errors = r.stderrLines("ERROR");
        assertEquals(1, errors.size(), "one error\n" + r.describe());
        assertTrue(errors.get(0).contains("are in 2 jars on the class path")
                && errors.get(0).contains(lib.resolve("pahomqtt-appender-0.9.0.jar").toString())
                && errors.get(0).contains(lib.resolve("kaa-mqtt-appender-0.1.0.jar").toString()), errors.get(0));
        assertFalse(errors.get(0).contains("jar:") || errors.get(0).contains("!/"), "the jars' paths, not URLs: "
                + errors.get(0));
    }

    /**
     * The load error says "restart the node: it is tried once per process", and so it is: a library put in place
     * after a load failed is not loaded by the next appender's init (each try would extract and log again). Here in
     * a class loader of its own over the node's class path, as the plugin's statics are per loader.
     */
    @Test
    void aFailedLoadIsNotTriedAgainInTheProcess() throws Exception {
        Path library = newDir("kaa-node-late-").resolve(NodeLayout.FILE_NAME);
        String property = "kaa.mqtt.appender.library";
        String before = System.getProperty(property);
        System.setProperty(property, library.toString());
        try (java.net.URLClassLoader node = NodeLayout.nodeClassLoader()) {
            java.lang.reflect.Method load = node.loadClass("org.kaaproject.kaa.server.appenders.pahomqtt.appender."
                    + "NativeLibrary").getDeclaredMethod("load");
            load.setAccessible(true);
            String first = loadError(load);
            assertTrue(first.contains(library + " (no such file)") && first.contains("tried once per process"), first);
            Files.copy(NodeLayout.nativeLibrary(), library);
            assertEquals(first, loadError(load), "the same error, nothing tried again");
        } finally {
            if (before == null) {
                System.clearProperty(property);
            } else {
                System.setProperty(property, before);
            }
        }
    }

    /** What {@code NativeLibrary.load} throws. */
    private static String loadError(java.lang.reflect.Method load) throws IllegalAccessException {
        try {
            return "loaded: " + load.invoke(null);
        } catch (java.lang.reflect.InvocationTargetException e) {
            assertTrue(e.getCause() instanceof UnsatisfiedLinkError, e.getCause().toString());
            return e.getCause().getMessage();
        }
    }

    /**
     * README "Install": the jar and the .so of one build. A library from another build beside the jar (here this
     * build's with one byte more, which loads and runs the same) is still the one loaded, with a WARN that it is not
     * the copy the jar carries; the library of the jar's own build gives no such line (the test above).
     */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void aLibraryOfAnotherBuildBesideTheJarIsAWarning() throws Exception {
        Path lib = libDir(true);
        Files.write(lib.resolve(NodeLayout.FILE_NAME), new byte[] {0}, java.nio.file.StandardOpenOption.APPEND);
        Records records = new Records(newDir("kaa-node-data-"), 5, 4);
        String topic = "kaa/it/install/other-build/" + UUID.randomUUID().toString().substring(0, 8);
        Run r = runNode(lib, List.of(), replayArgs(topic, records));
        assertNoCrash(r);
        assertEquals(0, r.exit, "it still delivers\n" + r.describe());
        assertEquals(List.of(lib.resolve(NodeLayout.FILE_NAME).toString()), r.loaded(), r.describe());
        List<String> warned = r.stderrLines("WARN").stream().filter(l -> l.contains("is not the library this jar was "
                + "built with")).collect(Collectors.toList());
        assertEquals(1, warned.size(), r.describe());
        assertTrue(warned.get(0).contains(lib.resolve(NodeLayout.FILE_NAME).toString()), warned.get(0));
    }

    /**
     * Builds a stand-in {@code libkaa_mqtt_appender.so} at {@code library} from Rust {@code source}, with the rustc
     * of the toolchain that builds the project.
     */
    private void buildStandIn(Path library, String source) throws Exception {
        Path dir = newDir("kaa-node-stand-in-");
        Path file = dir.resolve("stand_in.rs");
        Files.write(file, source.getBytes(StandardCharsets.UTF_8));
        Path said = dir.resolve("rustc.txt");
        Process rustc = new ProcessBuilder("rustc", "--edition", "2021", "--crate-type", "cdylib", "-o",
                library.toString(), file.toString()).redirectErrorStream(true).redirectOutput(said.toFile()).start();
        if (!rustc.waitFor(120, TimeUnit.SECONDS)) {
            rustc.destroyForcibly();
            fail("rustc did not finish within 120 s: " + read(said));
        }
        assertEquals(0, rustc.exitValue(), "rustc: " + read(said));
    }

    /**
     * Runs the node with an appender that cannot start: its three packs of two records are each answered
     * onInternalError, nothing is published, one ERROR is logged, and the JVM exits on its own (Replay's exit code
     * 1: not every pack confirmed), without a crash. Returns the run.
     */
    private Run runNotStarting(Path lib, List<String> options, String name) throws Exception {
        String topic = "kaa/it/install/" + name + "/" + UUID.randomUUID().toString().substring(0, 8);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Run r = runNode(lib, options, List.of("--host", "127.0.0.1", "--port", String.valueOf(BROKER.port()),
                    "--topic", topic, "--packs", "3", "--pack-size", "2", "--client-id", "install-" + name + "-"
                            + UUID.randomUUID().toString().substring(0, 8)));
            assertNoCrash(r);
            assertEquals(1, r.exit, "Replay's exit code when packs were not confirmed\n" + r.describe());
            for (int p = 1; p <= 3; p++) {
                assertTrue(r.stdout.contains("pack " + p + ": 2 records -> onInternalError"), r.describe());
            }
            assertFalse(r.stdout.contains("onSuccess"), r.describe());
            assertEquals(1, r.stderrLines("ERROR").size(), "one error logged\n" + r.describe());
            RecordingCallback.sleep(Duration.ofMillis(500));
            assertEquals(0, sub.count(), "nothing published");
            return r;
        }
    }

    /**
     * README "Install": a library whose native interface is not the jar's (an older or newer build's .so left beside
     * the jar) is refused at load, not called with the wrong arguments: init logs one ERROR naming the library and
     * both interface versions ("unknown" for a library without the version call), every pack is answered
     * onInternalError, nothing is published, and the node runs on; the copy the jar carries is not tried instead.
     * The library is a stand-in built here: the version call alone, or nothing at all.
     */
    @ParameterizedTest(name = "interface {0}")
    @ValueSource(strings = {"1", "1000", "unknown"})
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void aLibraryOfAnotherInterfaceVersionIsRefused(String version) throws Exception {
        Path lib = libDir(false);
        Path library = lib.resolve(NodeLayout.FILE_NAME);
        buildStandIn(library, version.equals("unknown") ? "" : "#[no_mangle]\npub extern \"system\" fn "
                + "Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_abiVersion("
                + "_env: *mut u8, _class: *mut u8) -> i32 {\n    " + version + "\n}\n");
        Run r = runNotStarting(lib, List.of(), "other-interface");
        assertEquals(List.of(library.toString()), r.loaded(), "only the library beside the jar was loaded\n"
                + r.describe());
        String error = r.stderrLines("ERROR").get(0);
        assertTrue(error.contains(library.toString()) && error.contains("is from another build")
                && error.contains("(interface " + version + ", this jar needs "), error);
    }

    /**
     * A library beside the jar that does not load (here one whose JNI_OnLoad fails, as an older build's may against
     * this jar's classes; on a machine with an older C library, one built without zig) leaves the appender to the
     * copy the jar carries, which publishes; one WARN names the library beside the jar, why it did not load, and
     * what runs instead, so the operator replaces it.
     */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void aLibraryBesideTheJarThatDoesNotLoadIsAWarning() throws Exception {
        Path lib = libDir(false);
        Path library = lib.resolve(NodeLayout.FILE_NAME);
        buildStandIn(library, "#[no_mangle]\npub extern \"system\" fn JNI_OnLoad(_vm: *mut u8, _reserved: *mut u8) "
                + "-> i32 {\n    -1\n}\n");
        Records records = new Records(newDir("kaa-node-data-"), 5, 6);
        String topic = "kaa/it/install/unloadable/" + UUID.randomUUID().toString().substring(0, 8);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Run r = runNode(lib, List.of(), replayArgs(topic, records));
            assertNoCrash(r);
            assertEquals(0, r.exit, "the jar's own copy delivers\n" + r.describe());
            // The stand-in maps (its JNI_OnLoad fails after), then the copy the jar carries, extracted.
            List<String> loads = r.loaded();
            assertEquals(2, loads.size(), r.describe());
            assertEquals(library.toString(), loads.get(0), r.describe());
            assertTrue(loads.get(1).startsWith(r.work.resolve("tmp").toString()), "then the extracted copy\n"
                    + r.describe());
            List<String> warned = r.stderrLines("WARN").stream().filter(l -> l.contains(library.toString()))
                    .collect(Collectors.toList());
            assertEquals(1, warned.size(), r.describe());
            assertTrue(warned.get(0).contains("could not be loaded") && warned.get(0).contains("JNI")
                    && warned.get(0).contains("the jar's /native/"), warned.get(0));
            sub.awaitCount(records.expected.size(), Duration.ofSeconds(10));
            Payloads.assertSameMultiset("published by the jar's copy", records.expected, sub.payloads());
        }
    }

    /**
     * Only the jar in lib/ (no .so beside it): the appender extracts the copy it carries into a directory of its own
     * under java.io.tmpdir, loads that and publishes; the copy is deleted once loaded, so nothing is left behind.
     */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void jarAloneExtractsTheLibraryItCarries() throws Exception {
        Path lib = libDir(false);
        Records records = new Records(newDir("kaa-node-data-"), 12, 2);
        String topic = "kaa/it/install/jar-only/" + UUID.randomUUID().toString().substring(0, 8);
        Path extractTo = newDir("kaa-node-extract-");
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Run r = runNode(lib, List.of("-Dkaa.mqtt.appender.extractDir=" + extractTo), replayArgs(topic, records));
            assertDeliveredWithoutError(r, 12);
            List<String> loaded = r.loaded();
            assertEquals(1, loaded.size(), "loaded once\n" + r.describe());
            Path from = Paths.get(loaded.get(0));
            assertEquals(extractTo, from.getParent().getParent(), "an extracted copy in a directory of its own\n"
                    + r.describe());
            assertTrue(from.getParent().getFileName().toString().matches("kaa-mqtt-appender-\\d+"), from.toString());
            assertEquals(NodeLayout.FILE_NAME, from.getFileName().toString());
            assertEquals(List.of(), libraryFilesIn(extractTo), "no copy left");
            assertFalse(r.attempted().contains(lib.resolve(NodeLayout.FILE_NAME).toString()), r.describe());

            sub.awaitCount(records.expected.size(), Duration.ofSeconds(10));
            RecordingCallback.sleep(Duration.ofMillis(500));
            Payloads.assertSameMultiset("published with the extracted library", records.expected, sub.payloads());
        }
    }

    /**
     * The extracted copy is gone while the node still runs, not only when it exits: a node that is killed (or
     * crashes) leaves no copy in the temporary directory. Its pack waits on a broker that never answers.
     */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void aKilledNodeLeavesNoExtractedCopy() throws Exception {
        Path lib = libDir(false);
        Records records = new Records(newDir("kaa-node-data-"), 3, 1);
        Path extractTo = newDir("kaa-node-extract-");
        Path work = newDir("kaa-node-work-");
        int nobody;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            nobody = s.getLocalPort();
        }
        List<String> args = new ArrayList<>(replayArgs("kaa/it/install/killed", records));
        args.set(args.indexOf("--port") + 1, String.valueOf(nobody));
        args.set(args.indexOf("--timeout") + 1, "60");
        Process p = startNode(work, lib, List.of("-Dkaa.mqtt.appender.extractDir=" + extractTo), args);
        try {
            Path stderr = work.resolve("stderr.txt");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!read(stderr).contains("started (native library:") && p.isAlive() && System.nanoTime() < deadline) {
                RecordingCallback.sleep(Duration.ofMillis(100));
            }
            assertTrue(p.isAlive() && read(stderr).contains(extractTo.toString()), "the node runs, with the "
                    + "library extracted\n" + read(stderr));
            assertEquals(List.of(), libraryFilesIn(extractTo), "no copy while the node runs");
        } finally {
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
        }
        assertEquals(List.of(), libraryFilesIn(extractTo), "no copy after the node was killed");
    }

    /**
     * A temporary directory on a file system mounted noexec (a common hardening) cannot hold a library to load: the
     * node keeps running, the one error names the directory and the property that moves the copy elsewhere, and
     * packs fail onInternalError. Needs root to mount a tmpfs; elsewhere the test is skipped.
     */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void noexecExtractDirectoryNamesThePropertyToSet() throws Exception {
        Path lib = libDir(false);
        Path mount = newDir("kaa-node-noexec-");
        Process m = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "noexec,size=32m", "tmpfs", mount.toString())
                .redirectErrorStream(true).start();
        boolean mounted = m.waitFor(20, TimeUnit.SECONDS) && m.exitValue() == 0;
        org.junit.jupiter.api.Assumptions.assumeTrue(mounted, "cannot mount a noexec tmpfs here (not root?)");
        try {
            String topic = "kaa/it/install/noexec/" + UUID.randomUUID().toString().substring(0, 8);
            Run r = runNode(lib, List.of("-Dkaa.mqtt.appender.extractDir=" + mount), List.of("--host", "127.0.0.1",
                    "--port", String.valueOf(BROKER.port()), "--topic", topic, "--packs", "2", "--pack-size", "2",
                    "--client-id", "install-noexec-" + UUID.randomUUID().toString().substring(0, 8)));
            assertNoCrash(r);
            assertEquals(1, r.exit, "Replay's exit code when packs were not confirmed\n" + r.describe());
            assertTrue(r.stdout.contains("pack 1: 2 records -> onInternalError"), r.describe());
            List<String> errors = r.stderrLines("ERROR");
            assertEquals(1, errors.size(), "one error logged\n" + r.describe());
            assertTrue(errors.get(0).contains("noexec") && errors.get(0).contains("kaa.mqtt.appender.extractDir")
                    && errors.get(0).contains(mount.toString()), errors.get(0));
        } finally {
            new ProcessBuilder("umount", mount.toString()).start().waitFor(20, TimeUnit.SECONDS);
        }
    }

    /**
     * README "Upgrading from the original PahoMQTT appender": a node with the jar and .so side by side and one stored
     * appender of each plugin, as the node builds them from Kaa's database: a legacy one from the nine-field bytes the
     * original stored (class {@code PahoMQTTLogAppender}), one of each generation of the full settings (classes
     * {@code MqttLogAppender}, {@code MqttLogAppenderV2} and the newest, {@code MqttLogAppenderV3}), each from its
     * form's defaults plus the operator's values. Every pack goes through all four; each answers onSuccess, and each
     * appender's subscriber receives every record, from one library loaded once.
     */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void nodeWithEveryPluginPublishesThroughAStoredAppenderOfEachKind() throws Exception {
        Path lib = libDir(true);
        Path data = newDir("kaa-node-data-");
        Records records = new Records(data, 15, 3);
        String unique = UUID.randomUUID().toString().substring(0, 8);
        // Appender (file) name -> its topic; the stored configuration is written to data/<name>.
        Map<String, String> topics = new LinkedHashMap<>();
        List<String> stored = new ArrayList<>();
        topics.put("legacy-appender", "kaa/it/install/legacy/" + unique);
        Files.write(data.resolve("legacy-appender"), OriginalAppender.bytes("host", "127.0.0.1", "port",
                BROKER.port(), "qos", 1, "clientId", "install-legacy-" + unique, "mqtttopic",
                topics.get("legacy-appender")));
        stored.addAll(List.of("--stored", KaaNode.LEGACY_CONFIG_CLASS + "=" + data.resolve("legacy-appender")));
        for (String[] full : new String[][] {{"v1-appender", KaaNode.V1_CONFIG_CLASS}, {"v2-appender",
            KaaNode.V2_CONFIG_CLASS}, {"v3-appender", KaaNode.CONFIG_CLASS}}) {
            String topic = "kaa/it/install/" + full[0] + "/" + unique;
            topics.put(full[0], topic);
            Map<String, Object> cfg = KaaNode.brokerConfig(BROKER.port(), topic, 1);
            cfg.put("deliveryTimeoutSeconds", 10);
            Files.write(data.resolve(full[0]), KaaNode.config(full[1], cfg));
            stored.addAll(List.of("--stored", full[1] + "=" + data.resolve(full[0])));
        }

        Map<String, Subscriber> subs = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, String> t : topics.entrySet()) {
                subs.put(t.getKey(), Subscriber.subscribe(BROKER.port(), t.getValue(), 1));
            }
            List<String> args = new ArrayList<>(List.of("--schema", records.schemaFile.toString(), "--records",
                    records.recordsFile.toString(), "--timeout", "20"));
            args.addAll(stored);
            Run r = runNode(lib, List.of(), args);
            assertNoCrash(r);
            assertEquals(0, r.exit, "Replay exits 0 when every pack was confirmed\n" + r.describe());
            for (String name : topics.keySet()) {
                assertTrue(r.stdout.contains("appender '" + name + "': pack 1: 15 records -> onSuccess"),
                        r.describe());
                assertTrue(r.stderr.contains("PahoMqtt appender '" + name + "'"), name + " started\n" + r.describe());
            }
            for (String appenderClass : List.of("PahoMQTTLogAppender", "MqttLogAppender", "MqttLogAppenderV2",
                    "MqttLogAppenderV3")) {
                assertTrue(r.stderr.contains("appender." + appenderClass + " - "),
                        "each plugin's appender class logs under its own name: " + appenderClass + "\n"
                                + r.describe());
            }
            assertEquals(List.of(), r.stderrLines("ERROR"), "no error logged\n" + r.describe());
            assertEquals(List.of(lib.resolve(NodeLayout.FILE_NAME).toString()), r.loaded(),
                    "one library, loaded once, from the directory of the jar, for every plugin\n" + r.describe());

            for (Subscriber sub : subs.values()) {
                sub.awaitCount(records.expected.size(), Duration.ofSeconds(10));
            }
            RecordingCallback.sleep(Duration.ofMillis(500));
            for (Map.Entry<String, Subscriber> sub : subs.entrySet()) {
                assertNull(sub.getValue().connectionLost(), sub.getKey() + "'s subscriber lost its connection");
                Payloads.assertSameMultiset("through " + sub.getKey(), records.expected, sub.getValue().payloads());
            }
        } finally {
            for (Subscriber sub : subs.values()) {
                sub.close();
            }
        }
    }

    /**
     * README "Install into a Kaa node": {@code -Dkaa.mqtt.appender.library=/path/to/libkaa_mqtt_appender.so} loads the
     * library from there, and from there only (not the one beside the jar, no extracted copy); the appender works.
     */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void theLibraryThePropertyNamesIsTheOneLoaded() throws Exception {
        Path lib = libDir(true);
        Path elsewhere = newDir("kaa-node-elsewhere-").resolve(NodeLayout.FILE_NAME);
        Files.copy(NodeLayout.nativeLibrary(), elsewhere);
        Records records = new Records(newDir("kaa-node-data-"), 7, 1);
        String topic = "kaa/it/install/property/" + UUID.randomUUID().toString().substring(0, 8);
        try (Subscriber sub = Subscriber.subscribe(BROKER.port(), topic, 1)) {
            Run r = runNode(lib, List.of("-Dkaa.mqtt.appender.library=" + elsewhere), replayArgs(topic, records));
            assertDeliveredWithoutError(r, 7);
            // The replay tool's maxPendingRecords may pass half a small host's memory: that WARN is no matter here.
            assertEquals(List.of(), r.stderrLines("WARN").stream().filter(l -> !l.contains("maxPendingRecords"))
                    .collect(Collectors.toList()), "no warning\n" + r.describe());
            assertEquals(List.of(elsewhere.toString()), r.loaded(), "loaded once, from there\n" + r.describe());
            assertFalse(r.attempted().contains(lib.resolve(NodeLayout.FILE_NAME).toString()), r.describe());
            assertEquals(List.of(), libraryFilesIn(r.work.resolve("tmp")), "no extracted copy");

            sub.awaitCount(records.expected.size(), Duration.ofSeconds(10));
            RecordingCallback.sleep(Duration.ofMillis(500));
            Payloads.assertSameMultiset("published with the library the property names", records.expected,
                    sub.payloads());
        }
    }

    /**
     * {@code -Dkaa.mqtt.appender.library} naming a missing file, or a file that is not a library: only that place is
     * tried (the .so beside the jar is not used), init logs ONE error naming it, every pack is answered
     * onInternalError, nothing is published, and the JVM exits on its own (Replay's exit code 1: not every pack
     * confirmed), without a crash.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"/nonexistent", "not-a-library"})
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void brokenLibraryPropertyFailsPacksNotTheNode(String which) throws Exception {
        Path lib = libDir(true);
        String path = which;
        if (which.equals("not-a-library")) {
            Path bogus = newDir("kaa-node-bogus-").resolve(NodeLayout.FILE_NAME);
            Files.write(bogus, "this is not an ELF file\n".repeat(200).getBytes(StandardCharsets.UTF_8));
            path = bogus.toString();
        }
        Run r = runNotStarting(lib, List.of("-Dkaa.mqtt.appender.library=" + path), "broken");
        String error = r.stderrLines("ERROR").get(0);
        assertTrue(error.contains(path), "the error names where the appender looked: " + error);
        assertTrue(error.contains("kaa.mqtt.appender.library"), "and how to point it elsewhere: " + error);
        assertEquals(List.of(), r.loaded(), "the library is not loaded from anywhere else\n" + r.describe());
    }
}

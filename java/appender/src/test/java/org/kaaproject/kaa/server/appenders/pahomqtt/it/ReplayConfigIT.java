package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.codehaus.jackson.map.ObjectMapper;
import org.codehaus.jackson.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.ConfigJson;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;

/**
 * The replay tool as a user runs it ({@code java -cp "lib/*" ... Replay}, the built jars and .so side by side), with
 * {@code --config} holding the whole configuration as JSON: here TLS with a CA and verification, WebSocket, QoS 2 and
 * plain JSON payloads, against a real broker's wss listener (Moquette). And {@code --print-default-config}: its output
 * read back with {@code --config} gives exactly the form defaults.
 */
class ReplayConfigIT {

    private static final String MAIN = "org.kaaproject.kaa.server.appenders.pahomqtt.replay.Replay";
    private static TestPki pki;
    private static TestPki.Ca ca;
    private static Moquette broker;
    private static Path lib;

    @BeforeAll
    static void setUp() throws IOException {
        pki = TestPki.create();
        ca = pki.rootCa("kaa-it-replay-root");
        broker = Moquette.startTls(ca.localhostServer(), null);
        lib = Files.createTempDirectory("kaa-it-replay-lib");
        for (Path jar : NodeLayout.nodeLibJars()) {
            Files.copy(jar, lib.resolve(jar.getFileName()));
        }
        Files.copy(NodeLayout.replayJar(), lib.resolve(NodeLayout.replayJar().getFileName()));
        Files.copy(NodeLayout.appenderJar(), lib.resolve("kaa-mqtt-appender-0.1.0.jar"));
        Files.copy(NodeLayout.nativeLibrary(), lib.resolve(NodeLayout.FILE_NAME));
    }

    @AfterAll
    static void tearDown() throws IOException {
        if (broker != null) {
            broker.close();
        }
        if (pki != null) {
            pki.close();
        }
        if (lib != null) {
            TempDirs.delete(lib);
        }
    }

    /** Runs the replay tool with these arguments (at most 90 s); returns exit code, stdout and stderr. */
    private static String[] replay(List<String> args) throws Exception {
        Path out = Files.createTempFile(lib, "stdout", ".txt");
        Path err = Files.createTempFile(lib, "stderr", ".txt");
        List<String> cmd = new ArrayList<>(List.of(Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", lib + "/*", MAIN));
        cmd.addAll(args);
        Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        if (!p.waitFor(90, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
            fail("the replay tool did not exit within 90 s: " + cmd);
        }
        return new String[] {String.valueOf(p.exitValue()), Files.readString(out), Files.readString(err)};
    }

    @Test
    void configFileWithTlsOverWebSocketDelivers() throws Exception {
        String topic = "kaa/it/replay/" + UUID.randomUUID();
        ObjectNode cfg = new ObjectMapper().createObjectNode();
        cfg.put("host", "localhost");
        cfg.put("port", broker.wssPort());
        cfg.put("ssl", true);
        cfg.put("verifySslCert", true);
        cfg.put("caCertificate", ca.certPem());
        cfg.put("transport", "WEBSOCKET");
        cfg.put("webSocketPath", Moquette.PATH);
        cfg.put("qos", 2);
        cfg.put("mqtttopic", topic);
        cfg.put("payloadFormat", "JSON");
        cfg.put("deliveryTimeoutSeconds", 20);
        Path file = lib.resolve("config.json");
        Files.writeString(file, "// written by ReplayConfigIT\n" + cfg + "\n");
        try (Subscriber sub = Subscriber.subscribe(broker.tcpPort(), topic, 2)) {
            String[] r = replay(List.of("--config", file.toString(), "--packs", "3", "--pack-size", "5"));
            String describe = "exit " + r[0] + "\n--- stdout\n" + r[1] + "--- stderr\n" + r[2];
            assertEquals("0", r[0], describe);
            assertEquals(3, r[1].split("-> onSuccess", -1).length - 1, describe);
            List<byte[]> got = sub.awaitCount(15, Duration.ofSeconds(20));
            assertEquals(15, got.size(), describe);
            String first = new String(got.get(0), StandardCharsets.UTF_8);
            assertTrue(first.startsWith("{\"level\":\"KAA_INFO\""), "plain JSON payload: " + first);
        }
    }

    @Test
    void defaultConfigTemplateReadsBackAsTheFormDefaults() throws Exception {
        String[] r = replay(List.of("--print-default-config"));
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("// Transport (TCP, WEBSOCKET)"), r[1]);
        Map<String, Object> read = ConfigJson.read(KaaNode.configSchema(), r[1]);
        assertEquals(KaaNode.configSchema().getFields().size(), read.size(), "every field, in the template");
        assertArrayEquals(KaaNode.config(Map.of()), KaaNode.config(read), "the template is the form's defaults");
    }

    @Test
    void aWrongFieldIsNamed() throws Exception {
        Path file = lib.resolve("bad.json");
        Files.writeString(file, "{\"transport\": \"CARRIER_PIGEON\"}");
        String[] r = replay(List.of("--config", file.toString()));
        assertEquals("2", r[0], r[1] + r[2]);
        assertTrue(r[2].contains("field 'transport' takes one of [TCP, WEBSOCKET]"), r[2]);
    }
}

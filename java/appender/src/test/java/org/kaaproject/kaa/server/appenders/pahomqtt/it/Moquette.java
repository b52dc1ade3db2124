package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.util.Properties;

import io.moquette.broker.Server;
import io.moquette.broker.config.MemoryConfig;
import io.moquette.broker.security.IAuthorizatorPolicy;
import io.moquette.broker.subscriptions.Topic;

/**
 * A real Moquette 0.17 broker in the test JVM, for what Debian's Mosquitto 2.0.11 cannot do: MQTT over WebSockets.
 * Listeners on free loopback ports: plain TCP (for the tests' Paho subscribers), WebSocket ({@code ws://}) and, with
 * a server certificate, WebSocket over TLS ({@code wss://}), both at {@link #PATH}. MQTT 3.1.1 (Moquette 0.17 has no
 * MQTT 5), anonymous clients, no persistence, no telemetry (it would call a server on the internet).
 */
public final class Moquette implements AutoCloseable {

    public static final String PATH = "/mqtt";

    private final Server server = new Server();
    private final Path dir;
    private final int tcpPort;
    private final int wsPort;
    private final int wssPort;

    private Moquette(TestPki.Issued tlsServer, TestPki.Ca clientCa) {
        this(tlsServer, clientCa, null);
    }

    private Moquette(TestPki.Issued tlsServer, TestPki.Ca clientCa, String deniedPrefix) {
        try {
            dir = Files.createTempDirectory("kaa-it-moquette");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        tcpPort = Mosquitto.freeLoopbackPort();
        wsPort = Mosquitto.freeLoopbackPort();
        wssPort = tlsServer == null ? -1 : Mosquitto.freeLoopbackPort();
        Properties p = new Properties();
        p.setProperty("host", "127.0.0.1");
        p.setProperty("port", String.valueOf(tcpPort));
        p.setProperty("websocket_port", String.valueOf(wsPort));
        p.setProperty("websocket_path", PATH);
        p.setProperty("allow_anonymous", "true");
        p.setProperty("persistence_enabled", "false");
        p.setProperty("data_path", dir.toString());
        p.setProperty("telemetry_enabled", "false");
        p.setProperty("use_metrics", "false");
        p.setProperty("use_bugsnag", "false");
        // Its default (8092 bytes) is smaller than a pack of the tests' records as one message.
        p.setProperty("netty.mqtt.message_size", String.valueOf(1 << 20));
        p.setProperty("immediate_buffer_flush", "true");
        if (tlsServer != null) {
            Path store = dir.resolve("server.p12");
            writeKeyStore(tlsServer, clientCa, store);
            p.setProperty("secure_websocket_port", String.valueOf(wssPort));
            p.setProperty("jks_path", store.toString());
            p.setProperty("key_store_type", "pkcs12");
            p.setProperty("key_store_password", new String(TestPki.STORE_PASSWORD));
            p.setProperty("key_manager_password", new String(TestPki.STORE_PASSWORD));
            // Moquette trusts for client certificates what its key store holds: the CA added there.
            p.setProperty("need_client_auth", String.valueOf(clientCa != null));
        }
        try {
            if (deniedPrefix == null) {
                server.startServer(new MemoryConfig(p));
            } else {
                server.startServer(new MemoryConfig(p), null, null, null, new IAuthorizatorPolicy() {
                    @Override
                    public boolean canWrite(Topic topic, String user, String client) {
                        return !topic.toString().startsWith(deniedPrefix);
                    }

                    @Override
                    public boolean canRead(Topic topic, String user, String client) {
                        return true;
                    }
                });
            }
        } catch (IOException e) {
            TempDirs.delete(dir);
            throw new UncheckedIOException("Moquette did not start: " + e, e);
        }
    }

    /** Plain TCP and WebSocket listeners. */
    public static Moquette start() {
        return new Moquette(null, null);
    }

    /** Plain TCP and WebSocket listeners; publishing to topics that start with {@code deniedPrefix} is denied. */
    public static Moquette startDenying(String deniedPrefix) {
        return new Moquette(null, null, deniedPrefix);
    }

    /**
     * Also a WebSocket-over-TLS listener presenting {@code server} (key and chain); with {@code clientCa} non-null it
     * asks every client for a certificate issued by that CA.
     */
    public static Moquette startTls(TestPki.Issued server, TestPki.Ca clientCa) {
        return new Moquette(server, clientCa);
    }

    /** The plain MQTT listener, for subscribers. */
    public int tcpPort() {
        return tcpPort;
    }

    public int wsPort() {
        return wsPort;
    }

    public int wssPort() {
        if (wssPort < 0) {
            throw new IllegalStateException("started without TLS");
        }
        return wssPort;
    }

    private static void writeKeyStore(TestPki.Issued server, TestPki.Ca clientCa, Path file) {
        try (OutputStream out = Files.newOutputStream(file)) {
            KeyStore ks = server.keyStore();
            if (clientCa != null) {
                ks.setCertificateEntry("client-ca", clientCa.x509());
            }
            ks.store(out, TestPki.STORE_PASSWORD);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void close() {
        server.stopServer();
        TempDirs.delete(dir);
    }

    @Override
    public String toString() {
        return "Moquette[tcp " + tcpPort + ", ws " + wsPort + (wssPort < 0 ? "" : ", wss " + wssPort) + "]";
    }
}

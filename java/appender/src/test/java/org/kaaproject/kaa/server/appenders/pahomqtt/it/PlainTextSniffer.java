package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A loopback listener that records the first bytes (up to 512, within 2 s) of every connection made to it and
 * answers nothing. A TLS connection starts with a handshake record (0x16); an MQTT CONNECT starts with 0x10. Used
 * to prove that an appender with {@code ssl} on never speaks plain text, whatever is wrong with its TLS settings.
 */
public final class PlainTextSniffer implements AutoCloseable {

    private final ServerSocket server;
    private final List<byte[]> received = new CopyOnWriteArrayList<>();

    private PlainTextSniffer() throws IOException {
        server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread acceptor = new Thread(this::acceptLoop, "plain-text-sniffer-" + server.getLocalPort());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    public static PlainTextSniffer start() {
        try {
            return new PlainTextSniffer();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    public int port() {
        return server.getLocalPort();
    }

    private void acceptLoop() {
        try {
            while (true) {
                Socket s = server.accept();
                Thread t = new Thread(() -> read(s), "plain-text-sniffer-conn");
                t.setDaemon(true);
                t.start();
            }
        } catch (IOException e) {
            // closed
        }
    }

    private void read(Socket s) {
        byte[] buf = new byte[512];
        int n = 0;
        try (Socket sock = s) {
            sock.setSoTimeout(2_000);
            int r;
            while (n < buf.length && (r = sock.getInputStream().read(buf, n, buf.length - n)) > 0) {
                n += r;
            }
        } catch (IOException e) {
            // timeout or reset: keep what came
        }
        received.add(Arrays.copyOf(buf, n));
    }

    /** How many connections were made so far. */
    public int connections() {
        return received.size();
    }

    /**
     * A description of every connection whose first byte was not a TLS handshake record, noting whether it was an
     * MQTT CONNECT and whether {@code secret} (e.g. the password) was in it in clear. Empty when all was TLS.
     */
    public List<String> nonTls(String secret) {
        List<String> out = new ArrayList<>();
        for (byte[] first : received) {
            if (first.length > 0 && first[0] != 0x16) {
                String text = new String(first, StandardCharsets.ISO_8859_1);
                out.add(first.length + " bytes, first 0x" + Integer.toHexString(first[0] & 0xff)
                        + (first[0] == 0x10 ? " (an MQTT CONNECT)" : "")
                        + (secret != null && text.contains(secret) ? ", with the password in clear" : "") + ": "
                        + text.replaceAll("[^\\x20-\\x7e]", "."));
            }
        }
        return out;
    }

    @Override
    public void close() {
        try {
            server.close();
        } catch (IOException e) {
            // ignore
        }
    }
}

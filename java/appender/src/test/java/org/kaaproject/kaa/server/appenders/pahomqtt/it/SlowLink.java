package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A slow link on loopback between the appender and a broker: what the appender sends crosses at about 1.3 MB/s
 * (64 KiB every 50 ms, through a small receive buffer, so little waits unseen in the kernel), what the broker sends
 * back crosses at once. A WAN or a busy uplink to the broker looks like this.
 */
final class SlowLink implements AutoCloseable {

    private static final int CHUNK = 64 * 1024;
    private static final long PAUSE_MILLIS = 50;

    private final int brokerPort;
    private final ServerSocket server;
    private final AtomicInteger accepted = new AtomicInteger();
    private final Set<Socket> open = ConcurrentHashMap.newKeySet();

    private SlowLink(int brokerPort) throws IOException {
        this.brokerPort = brokerPort;
        this.server = new ServerSocket();
        server.setReceiveBufferSize(CHUNK); // before bind: accepted sockets take it, window scale included
        server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        Thread acceptor = new Thread(this::acceptLoop, "slow-link-" + server.getLocalPort());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    static SlowLink to(int brokerPort) {
        try {
            return new SlowLink(brokerPort);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    int port() {
        return server.getLocalPort();
    }

    /** Connections the appender made through the link. */
    int accepted() {
        return accepted.get();
    }

    private void acceptLoop() {
        while (!server.isClosed()) {
            try {
                Socket client = server.accept();
                accepted.incrementAndGet();
                Socket broker = new Socket(InetAddress.getLoopbackAddress(), brokerPort);
                open.add(client);
                open.add(broker);
                start("slow-link-up", () -> Sockets.pump(client, broker, CHUNK, PAUSE_MILLIS));
                start("slow-link-down", () -> Sockets.pump(broker, client));
            } catch (IOException e) {
                // closed, or the broker is not there: the appender sees its connection end
            }
        }
    }

    private static void start(String name, Runnable r) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        t.start();
    }

    @Override
    public void close() {
        try {
            server.close();
        } catch (IOException e) {
            // already closed
        }
        open.forEach(Sockets::closeQuietly);
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import javax.net.ssl.ExtendedSSLSession;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SNIServerName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;

/**
 * A small TLS-terminating proxy on a free loopback port, in front of a plain MQTT listener: it does the TLS
 * handshake with its server certificate, records what the client offered (ALPN protocol names, SNI host names),
 * then pipes the decrypted bytes to the target port and back. Mosquitto never looks at ALPN and SNI, so this is
 * where a test sees them.
 *
 * <p>The proxy selects the first ALPN protocol the client offered (a client that offers ALPN may expect one to be
 * chosen). A client that sends no ALPN extension gets none.
 */
public final class TlsProxy implements AutoCloseable {

    /** What one client sent in its handshake. */
    public static final class Handshake {
        /** The ALPN protocol names offered, in order; null when the client sent no ALPN extension. */
        public final List<String> alpnOffered;
        /** The SNI host names the client sent (empty when it sent none). */
        public final List<String> sniHostNames;
        /** Every SNI entry, whatever its type, as text (for diagnostics). */
        public final List<String> sniRaw;
        public final String protocol;
        public final String cipherSuite;
        public final String negotiatedAlpn;

        Handshake(List<String> alpnOffered, List<String> sniHostNames, List<String> sniRaw, String protocol,
                String cipherSuite, String negotiatedAlpn) {
            this.alpnOffered = alpnOffered;
            this.sniHostNames = sniHostNames;
            this.sniRaw = sniRaw;
            this.protocol = protocol;
            this.cipherSuite = cipherSuite;
            this.negotiatedAlpn = negotiatedAlpn;
        }

        @Override
        public String toString() {
            return "Handshake[ALPN offered " + alpnOffered + ", SNI " + sniRaw + ", " + protocol + ", " + cipherSuite
                    + ", ALPN selected '" + negotiatedAlpn + "']";
        }
    }

    private final SSLServerSocket server;
    private final int targetPort;
    private final List<Handshake> handshakes = new ArrayList<>();
    private final List<String> failures = new ArrayList<>();
    private final Set<Socket> open = ConcurrentHashMap.newKeySet();
    private final Thread acceptor;
    private volatile boolean closed;

    private TlsProxy(SSLContext context, int targetPort) throws IOException {
        this.targetPort = targetPort;
        this.server = (SSLServerSocket) context.getServerSocketFactory()
                .createServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.acceptor = new Thread(this::acceptLoop, "tls-proxy-accept-" + server.getLocalPort());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** A started proxy presenting {@code serverCert}, forwarding to the plain listener on 127.0.0.1:targetPort. */
    public static TlsProxy start(TestPki.Issued serverCert, int targetPort) {
        try {
            return new TlsProxy(TestPki.serverContext(serverCert), targetPort);
        } catch (IOException e) {
            throw new IllegalStateException("cannot start the TLS proxy", e);
        }
    }

    public int port() {
        return server.getLocalPort();
    }

    /** Every completed handshake so far. */
    public List<Handshake> handshakes() {
        synchronized (handshakes) {
            return new ArrayList<>(handshakes);
        }
    }

    /** Handshakes that failed (for diagnostics). */
    public List<String> failures() {
        synchronized (handshakes) {
            return new ArrayList<>(failures);
        }
    }

    /** The first completed handshake, or null if none completed within the timeout. */
    public Handshake awaitHandshake(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (handshakes) {
            while (handshakes.isEmpty()) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return null;
                }
                try {
                    handshakes.wait(Math.max(1, left / 1_000_000));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return null;
                }
            }
            return handshakes.get(0);
        }
    }

    private void acceptLoop() {
        while (!closed) {
            Socket s;
            try {
                s = server.accept();
            } catch (IOException e) {
                if (!closed) {
                    synchronized (handshakes) {
                        failures.add("accept: " + e);
                    }
                }
                return;
            }
            open.add(s);
            Thread t = new Thread(() -> serve((SSLSocket) s), "tls-proxy-conn-" + s.getPort());
            t.setDaemon(true);
            t.start();
        }
    }

    private void serve(SSLSocket client) {
        List<String> offered = Collections.synchronizedList(new ArrayList<>());
        boolean[] alpnSeen = new boolean[1];
        Socket upstream = null;
        try {
            client.setSoTimeout(15_000);
            client.setHandshakeApplicationProtocolSelector((sock, protocols) -> {
                // Only called when the ClientHello carries an ALPN extension.
                alpnSeen[0] = true;
                offered.addAll(protocols);
                return protocols.isEmpty() ? "" : protocols.get(0);
            });
            client.startHandshake();
            SSLSession session = client.getSession();
            List<String> hostNames = new ArrayList<>();
            List<String> raw = new ArrayList<>();
            if (session instanceof ExtendedSSLSession) {
                for (SNIServerName n : ((ExtendedSSLSession) session).getRequestedServerNames()) {
                    if (n instanceof SNIHostName) {
                        hostNames.add(((SNIHostName) n).getAsciiName());
                        raw.add("host_name:" + ((SNIHostName) n).getAsciiName());
                    } else {
                        raw.add(n.toString());
                    }
                }
            }
            Handshake h = new Handshake(alpnSeen[0] ? new ArrayList<>(offered) : null, hostNames, raw,
                    session.getProtocol(), session.getCipherSuite(), client.getApplicationProtocol());
            synchronized (handshakes) {
                handshakes.add(h);
                handshakes.notifyAll();
            }
            client.setSoTimeout(0);
            upstream = new Socket();
            open.add(upstream);
            upstream.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), targetPort), 5_000);
            Socket up = upstream;
            Thread back = new Thread(() -> Sockets.pump(up, client), "tls-proxy-back-" + client.getPort());
            back.setDaemon(true);
            back.start();
            Sockets.pump(client, upstream);
        } catch (IOException | RuntimeException e) {
            if (!closed) {
                synchronized (handshakes) {
                    failures.add(e.toString());
                }
            }
            closeQuietly(client);
            closeQuietly(upstream);
        }
    }

    /** Copies until EOF or error, then closes both ends (so the other direction ends too). */
    private void closeQuietly(Socket s) {
        if (s == null) {
            return;
        }
        open.remove(s);
        try {
            s.close();
        } catch (IOException e) {
            // ignore
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException e) {
            // ignore
        }
        for (Socket s : open) {
            closeQuietly(s);
        }
        try {
            acceptor.join(2_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String toString() {
        return "TlsProxy[127.0.0.1:" + port() + " -> 127.0.0.1:" + targetPort + "]";
    }
}

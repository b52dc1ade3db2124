package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A small HTTP CONNECT proxy on loopback, as corporate proxies behave: it reads {@code CONNECT host:port HTTP/1.1}
 * and its headers, checks {@code Proxy-Authorization: Basic ...} when it has credentials (407 Proxy Authentication
 * Required otherwise), opens the tunnel (200) and copies bytes both ways until either side closes. It only tunnels
 * to loopback; a target it cannot reach is answered 502. Every request line it got is kept, for the tests.
 */
public final class HttpConnectProxy implements AutoCloseable {

    private final ServerSocket server;
    private final String expectedAuthorization;
    private final List<String> requests = new CopyOnWriteArrayList<>();
    private final List<String> answers = new CopyOnWriteArrayList<>();
    private final Set<Socket> sockets = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    private HttpConnectProxy(String username, String password) {
        this.expectedAuthorization = username == null ? null
                : "Basic " + Base64.getEncoder().encodeToString(
                        (username + ":" + password).getBytes(StandardCharsets.UTF_8));
        try {
            server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Thread acceptor = new Thread(this::accept, "it-http-proxy-" + server.getLocalPort());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** A proxy that tunnels for anyone. */
    public static HttpConnectProxy open() {
        return new HttpConnectProxy(null, null);
    }

    /** A proxy that tunnels only with these basic-authentication credentials. */
    public static HttpConnectProxy withCredentials(String username, String password) {
        return new HttpConnectProxy(username, password);
    }

    public int port() {
        return server.getLocalPort();
    }

    /** Every CONNECT request line received ({@code CONNECT host:port HTTP/1.1}), in order. */
    public List<String> requests() {
        return new ArrayList<>(requests);
    }

    /** The status code of every answer given (200, 407, 502, ...), in order. */
    public List<String> answers() {
        return new ArrayList<>(answers);
    }

    /** Closes every open tunnel (both its sockets), as a proxy restarting would; new tunnels are made as before. */
    public void dropTunnels() {
        for (Socket s : sockets) {
            Sockets.closeQuietly(s);
            sockets.remove(s);
        }
    }

    private void accept() {
        while (!closed) {
            try {
                Socket client = server.accept();
                sockets.add(client);
                Thread t = new Thread(() -> serve(client), "it-http-proxy-conn");
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                return;
            }
        }
    }

    private void serve(Socket client) {
        try {
            InputStream in = client.getInputStream();
            OutputStream out = client.getOutputStream();
            List<String> head = readHead(in);
            if (head.isEmpty()) {
                client.close();
                return;
            }
            String requestLine = head.get(0);
            requests.add(requestLine);
            String[] parts = requestLine.split(" ");
            if (parts.length != 3 || !parts[0].equals("CONNECT")) {
                answer(out, "400 Bad Request");
                client.close();
                return;
            }
            if (expectedAuthorization != null && !expectedAuthorization.equals(header(head, "Proxy-Authorization"))) {
                answer(out, "407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"kaa-it\"");
                client.close();
                return;
            }
            int colon = parts[1].lastIndexOf(':');
            String host = parts[1].substring(0, colon);
            int port = Integer.parseInt(parts[1].substring(colon + 1));
            Socket upstream = new Socket();
            try {
                InetAddress address = InetAddress.getByName(host);
                if (!address.isLoopbackAddress()) {
                    throw new IOException("only loopback targets");
                }
                upstream.connect(new InetSocketAddress(address, port), 5_000);
            } catch (IOException e) {
                upstream.close();
                answer(out, "502 Bad Gateway");
                client.close();
                return;
            }
            sockets.add(upstream);
            answer(out, "200 Connection Established");
            Thread back = new Thread(() -> Sockets.pump(upstream, client), "it-http-proxy-back");
            back.setDaemon(true);
            back.start();
            Sockets.pump(client, upstream);
        } catch (IOException e) {
            Sockets.closeQuietly(client);
        }
    }

    private void answer(OutputStream out, String statusAndHeaders) throws IOException {
        answers.add(statusAndHeaders.substring(0, 3));
        out.write(("HTTP/1.1 " + statusAndHeaders + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.flush();
    }

    /** The request line and headers, up to the empty line; read byte by byte so no tunnel byte is consumed. */
    private static List<String> readHead(InputStream in) throws IOException {
        List<String> lines = new ArrayList<>();
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int total = 0;
        for (int b; (b = in.read()) >= 0;) {
            if (++total > 16_384) {
                throw new IOException("request head too long");
            }
            if (b == '\n') {
                String text = line.toString(StandardCharsets.ISO_8859_1.name()).replaceAll("\r$", "");
                line.reset();
                if (text.isEmpty()) {
                    return lines;
                }
                lines.add(text);
            } else {
                line.write(b);
            }
        }
        return new ArrayList<>();
    }

    private static String header(List<String> head, String name) {
        for (String h : head.subList(1, head.size())) {
            int colon = h.indexOf(':');
            if (colon > 0 && h.substring(0, colon).trim().equalsIgnoreCase(name)) {
                return h.substring(colon + 1).trim();
            }
        }
        return null;
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException e) {
            // ignore
        }
        for (Socket s : sockets) {
            Sockets.closeQuietly(s);
        }
    }
}

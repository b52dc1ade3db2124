package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;

/** What the test proxies share: relaying one direction of a connection, and closing without fuss. */
final class Sockets {

    private Sockets() {
    }

    /** Copies {@code from} to {@code to} until either side ends, then closes both. */
    static void pump(Socket from, Socket to) {
        pump(from, to, 16 * 1024, 0);
    }

    /** As {@link #pump(Socket, Socket)}, in reads of {@code chunk} bytes at most, each followed by a pause. */
    static void pump(Socket from, Socket to, int chunk, long pauseMillis) {
        byte[] buf = new byte[chunk];
        try {
            InputStream in = from.getInputStream();
            OutputStream out = to.getOutputStream();
            for (int n; (n = in.read(buf)) >= 0;) {
                out.write(buf, 0, n);
                out.flush();
                if (pauseMillis > 0) {
                    Thread.sleep(pauseMillis);
                }
            }
        } catch (IOException e) {
            // one side is gone
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            closeQuietly(from);
            closeQuietly(to);
        }
    }

    static void closeQuietly(Socket s) {
        if (s == null) {
            return;
        }
        try {
            s.close();
        } catch (IOException e) {
            // already gone
        }
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

/**
 * A TCP proxy on loopback between the appender and a broker, for tests that kill the broker.
 *
 * <p><b>The gate.</b> While the gate is shut, every new client connection is reset at once (the appender sees a
 * refused connection and retries later); connections made earlier are left alone. A test shuts the gate, kills and
 * restarts the broker, lets its subscriber subscribe again, and only then opens the gate: the appender cannot
 * publish into a restarted broker that has no subscriber yet, which would lose messages for reasons that are not
 * the appender's.
 *
 * <p><b>The ack witness (optional).</b> The proxy reads the MQTT 3.1.1 packets going through it. It remembers the
 * payload of each QoS 1/2 PUBLISH by packet id, and holds each PUBACK (QoS 1) or PUBCOMP (QoS 2) coming back from
 * the broker until the {@link Witness} (the test's subscriber) has received that payload. If the broker dies before
 * that, the ack and everything after it are dropped and the client connection is reset: to the appender it looks
 * exactly like a broker that died a moment before acking. So every ack the appender sees stands for a record a
 * subscriber holds, and "every record of a pack reported delivered is at the subscriber" tests the appender alone.
 * (Why a broker can ack a record and then lose it: see {@code ChaosTest}.)
 */
public final class GatedProxy implements AutoCloseable {

    /** Who can tell whether a payload reached a subscriber. */
    public interface Witness {
        boolean has(byte[] payload);

        /** Waits until the payload is there, {@code giveUp} is true, or the deadline passed; whether it is there. */
        boolean await(byte[] payload, long deadlineNanos, BooleanSupplier giveUp);
    }

    /** Holds every ack until {@link #release} (or the proxy's own bound of 10 s passes). */
    public static final class HeldAcks implements Witness {
        private final CountDownLatch released = new CountDownLatch(1);

        public void release() {
            released.countDown();
        }

        @Override
        public boolean has(byte[] payload) {
            return released.getCount() == 0;
        }

        @Override
        public boolean await(byte[] payload, long deadlineNanos, BooleanSupplier giveUp) {
            try {
                return released.await(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
    }

    /** How long a held ack waits for its record while the broker is alive. */
    private static final long HOLD_MAX_NANOS = TimeUnit.SECONDS.toNanos(10);
    /**
     * After the broker's connection ended, how much longer a held ack waits: what the broker wrote to the
     * subscriber's socket before it died may still be on its way through Paho.
     */
    private static final long AFTER_BROKER_GONE_NANOS = TimeUnit.MILLISECONDS.toNanos(500);

    private static final int PUBLISH = 3;
    private static final int PUBACK = 4;
    private static final int PUBREC = 5;
    private static final int PUBCOMP = 7;

    private final ServerSocket server;
    private final int brokerPort;
    private final Witness witness;
    private final Thread acceptor;
    private final Set<Link> links = ConcurrentHashMap.newKeySet();
    private volatile boolean open = true;
    private volatile boolean closed;

    private final AtomicLong accepted = new AtomicLong();
    private final AtomicLong refused = new AtomicLong();
    private final AtomicLong brokerUnreachable = new AtomicLong();
    private final AtomicLong acksForwarded = new AtomicLong();
    private final AtomicLong acksWaitedFor = new AtomicLong();
    private final AtomicLong acksWithheld = new AtomicLong();
    private final AtomicLong acksUnmatched = new AtomicLong();

    private GatedProxy(int brokerPort, Witness witness) throws IOException {
        this.brokerPort = brokerPort;
        this.witness = witness;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.acceptor = new Thread(this::acceptLoop, "gated-proxy-accept-" + server.getLocalPort());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** A proxy to the broker on 127.0.0.1:brokerPort; with a witness, acks wait for the subscriber. Gate open. */
    public static GatedProxy start(int brokerPort, Witness witness) {
        try {
            return new GatedProxy(brokerPort, witness);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public int port() {
        return server.getLocalPort();
    }

    /** New client connections are reset from now on. */
    public void shut() {
        open = false;
    }

    /** New client connections go through to the broker again. */
    public void open() {
        open = true;
    }

    public long accepted() {
        return accepted.get();
    }

    /** Client connections reset because the gate was shut. */
    public long refused() {
        return refused.get();
    }

    /** Client connections closed because the broker did not accept the proxy's connection. */
    public long brokerUnreachable() {
        return brokerUnreachable.get();
    }

    /** PUBACK/PUBCOMP forwarded to the client. */
    public long acksForwarded() {
        return acksForwarded.get();
    }

    /** Acks that had to wait because the witness did not have the record yet when they came. */
    public long acksWaitedFor() {
        return acksWaitedFor.get();
    }

    /** Acks dropped because the record never reached the witness before the broker died. */
    public long acksWithheld() {
        return acksWithheld.get();
    }

    /** Acks for a packet id the proxy saw no PUBLISH for (forwarded as they are). */
    public long acksUnmatched() {
        return acksUnmatched.get();
    }

    public String stats() {
        return "proxy: " + accepted + " connections, " + refused + " refused at the shut gate, " + brokerUnreachable
                + " without a broker; acks " + acksForwarded + " forwarded (" + acksWaitedFor
                + " waited for the subscriber), " + acksWithheld + " withheld, " + acksUnmatched + " unmatched";
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException e) {
            // ignore
        }
        for (Link l : links) {
            l.shutDown(true);
        }
        try {
            acceptor.join(2_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void acceptLoop() {
        while (!closed) {
            Socket client;
            try {
                client = server.accept();
            } catch (IOException e) {
                if (closed) {
                    return;
                }
                continue;
            }
            if (!open) {
                refused.incrementAndGet();
                reset(client);
                continue;
            }
            Socket broker = new Socket();
            try {
                broker.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), brokerPort), 2_000);
            } catch (IOException e) {
                brokerUnreachable.incrementAndGet();
                reset(client);
                Sockets.closeQuietly(broker);
                continue;
            }
            accepted.incrementAndGet();
            try {
                Link link = new Link(client, broker);
                links.add(link);
                link.start();
            } catch (IOException e) {
                reset(client);
                Sockets.closeQuietly(broker);
            }
        }
    }

    private static void reset(Socket s) {
        try {
            s.setSoLinger(true, 0);
        } catch (IOException e) {
            // ignore
        }
        Sockets.closeQuietly(s);
    }

    /** One MQTT packet, whole: fixed header, remaining length, body. */
    private static final class Frame {
        static final Frame END = new Frame(new byte[0], 0);
        final byte[] bytes;
        /** Where the variable header starts. */
        final int body;

        Frame(byte[] bytes, int body) {
            this.bytes = bytes;
            this.body = body;
        }

        int type() {
            return (bytes[0] & 0xFF) >>> 4;
        }

        int qos() {
            return (bytes[0] >>> 1) & 3;
        }

        int u16(int at) {
            return ((bytes[at] & 0xFF) << 8) | (bytes[at + 1] & 0xFF);
        }

        /** For PUBACK, PUBREC, PUBREL, PUBCOMP. */
        int ackId() {
            return u16(body);
        }

        /** For a QoS 1/2 PUBLISH. */
        int publishId() {
            return u16(body + 2 + u16(body));
        }

        byte[] publishPayload() {
            int from = body + 2 + u16(body) + (qos() > 0 ? 2 : 0);
            return Arrays.copyOfRange(bytes, from, bytes.length);
        }

        /** Null at a clean end of stream. */
        static Frame read(DataInputStream in) throws IOException {
            int first = in.read();
            if (first < 0) {
                return null;
            }
            byte[] header = new byte[5];
            header[0] = (byte) first;
            int length = 0;
            int n = 1;
            int shift = 0;
            int b;
            do {
                b = in.read();
                if (b < 0) {
                    throw new EOFException("stream ended inside a fixed header");
                }
                if (n == 5) {
                    throw new IOException("malformed remaining length");
                }
                header[n++] = (byte) b;
                length |= (b & 0x7F) << shift;
                shift += 7;
            } while ((b & 0x80) != 0);
            byte[] bytes = Arrays.copyOf(header, n + length);
            in.readFully(bytes, n, length);
            return new Frame(bytes, n);
        }
    }

    /** One proxied connection: client → broker pump, broker → queue reader, queue → client forwarder. */
    private final class Link {
        private final Socket client;
        private final Socket broker;
        private final DataInputStream fromClient;
        private final OutputStream toBroker;
        private final DataInputStream fromBroker;
        private final OutputStream toClient;
        private final BlockingQueue<Frame> down = new LinkedBlockingQueue<>();
        /** QoS 1 publishes waiting for PUBACK, QoS 2 publishes waiting for PUBREC, by packet id. */
        private final Map<Integer, byte[]> unacked = new ConcurrentHashMap<>();
        /** QoS 2 publishes past PUBREC, waiting for PUBCOMP. */
        private final Map<Integer, byte[]> released = new ConcurrentHashMap<>();
        private final AtomicBoolean ended = new AtomicBoolean();
        private volatile long brokerGoneAt;

        Link(Socket client, Socket broker) throws IOException {
            this.client = client;
            this.broker = broker;
            client.setTcpNoDelay(true);
            broker.setTcpNoDelay(true);
            fromClient = new DataInputStream(new BufferedInputStream(client.getInputStream(), 1 << 16));
            toBroker = new BufferedOutputStream(broker.getOutputStream(), 1 << 16);
            fromBroker = new DataInputStream(new BufferedInputStream(broker.getInputStream(), 1 << 16));
            toClient = new BufferedOutputStream(client.getOutputStream(), 1 << 16);
        }

        void start() {
            String id = client.getPort() + "";
            thread(this::up, "gated-proxy-up-" + id);
            thread(this::readBroker, "gated-proxy-broker-" + id);
            thread(this::forward, "gated-proxy-down-" + id);
        }

        private void thread(Runnable r, String name) {
            Thread t = new Thread(r, name);
            t.setDaemon(true);
            t.start();
        }

        /** Client → broker, packet by packet, noting what each QoS 1/2 PUBLISH carried. */
        private void up() {
            try {
                Frame f;
                while ((f = Frame.read(fromClient)) != null) {
                    if (witness != null && f.type() == PUBLISH && f.qos() > 0) {
                        // Noted before the broker can see it, so its ack always finds it here.
                        unacked.put(f.publishId(), f.publishPayload());
                    }
                    toBroker.write(f.bytes);
                    if (fromClient.available() == 0) {
                        toBroker.flush();
                    }
                }
            } catch (IOException e) {
                // either side went away
            }
            // Ends the broker side only: what the broker sent before is still forwarded, then the forwarder
            // closes the client side, in that order, as the kernel would for a broker that died.
            Sockets.closeQuietly(broker);
        }

        /** Broker → queue: reading never waits on the witness, so the broker's end is seen when it comes. */
        private void readBroker() {
            try {
                Frame f;
                while ((f = Frame.read(fromBroker)) != null) {
                    down.add(f);
                }
            } catch (IOException e) {
                // the broker died or the link is being torn down
            }
            brokerGoneAt = System.nanoTime();
            down.add(Frame.END);
        }

        /** Queue → client, holding each PUBACK/PUBCOMP until the witness has its record. */
        private void forward() {
            try {
                while (true) {
                    Frame f = down.poll(1, TimeUnit.SECONDS);
                    if (f == null) {
                        if (ended.get()) {
                            return;
                        }
                        continue;
                    }
                    if (f == Frame.END) {
                        break;
                    }
                    if (witness != null && !release(f)) {
                        acksWithheld.incrementAndGet();
                        shutDown(true);
                        return;
                    }
                    toClient.write(f.bytes);
                    if (down.isEmpty()) {
                        toClient.flush();
                    }
                }
                toClient.flush();
            } catch (IOException e) {
                // the client went away
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            shutDown(false);
        }

        /** Whether this packet may go to the client now (after waiting for the witness, for an ack). */
        private boolean release(Frame f) {
            byte[] payload;
            switch (f.type()) {
                case PUBACK:
                    payload = unacked.remove(f.ackId());
                    break;
                case PUBREC:
                    payload = unacked.remove(f.ackId());
                    if (payload != null) {
                        released.put(f.ackId(), payload);
                    }
                    return true;
                case PUBCOMP:
                    payload = released.remove(f.ackId());
                    break;
                default:
                    return true;
            }
            if (payload == null) {
                acksUnmatched.incrementAndGet();
                return true;
            }
            if (!witness.has(payload)) {
                acksWaitedFor.incrementAndGet();
                long deadline = System.nanoTime() + HOLD_MAX_NANOS;
                boolean there = witness.await(payload, deadline, () -> {
                    long gone = brokerGoneAt;
                    return gone != 0 && System.nanoTime() - gone > AFTER_BROKER_GONE_NANOS;
                });
                if (!there) {
                    return false;
                }
            }
            acksForwarded.incrementAndGet();
            return true;
        }

        /** Closes both sides; {@code abort} resets the client connection instead of closing it in order. */
        void shutDown(boolean abort) {
            if (!ended.compareAndSet(false, true)) {
                return;
            }
            if (abort) {
                reset(client);
            } else {
                Sockets.closeQuietly(client);
            }
            Sockets.closeQuietly(broker);
            links.remove(this);
        }
    }
}

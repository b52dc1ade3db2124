package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.AbstractMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A fake MQTT broker on loopback for faults Mosquitto cannot show: it speaks just enough MQTT 3.1.1 and 5 for a
 * publisher (CONNECT, PUBLISH, PUBREL, PINGREQ, DISCONNECT) and answers publishes as its {@link Mode} says. Only for
 * tests that need a broker misbehaving on cue; everything else runs against a real Mosquitto.
 */
final class ScriptedBroker implements AutoCloseable {

    enum Mode {
        /** Acknowledges every publish (PUBACK; PUBREC, then PUBCOMP on PUBREL). */
        ACK,
        /** Answers CONNECT and pings, and acknowledges nothing: a stalled broker. */
        SILENT,
        /**
         * Holds back each publish's final ack (PUBACK; for QoS 2 the PUBCOMP, after a PUBREC at once) until
         * {@link #releaseHeld()}: what the client has in flight is then what it published.
         */
        HOLD,
        /**
         * MQTT 5: refuses every publish (PUBACK or PUBREC with reason 135, not authorised) and closes the connection
         * in the same breath, so the refusal and the end of the stream reach the client in one read.
         */
        REFUSE_AND_CLOSE,
        /**
         * MQTT 3.1.1: answers CONNECT with a message to {@link #firstTopic(String)} instead of a CONNACK, which the
         * client takes for a failed connect (and the text of its error holds the message's topic whole).
         */
        PUBLISH_FIRST
    }

    private final ServerSocket server;
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();
    private final AtomicInteger connections = new AtomicInteger();
    private final AtomicInteger publishes = new AtomicInteger();
    /** The client id of each CONNECT, in order. */
    private final List<String> clientIds = new CopyOnWriteArrayList<>();
    /** Final acks held back in {@link Mode#HOLD}, with the stream each goes to. */
    private final List<Map.Entry<OutputStream, byte[]>> held = new CopyOnWriteArrayList<>();
    private final int receiveMaximum;
    private volatile Mode mode;
    private volatile String firstTopic = "unasked";

    ScriptedBroker(Mode mode) throws IOException {
        this(mode, 0);
    }

    /** {@code receiveMaximum} above 0: announced in the MQTT 5 CONNACK. */
    ScriptedBroker(Mode mode, int receiveMaximum) throws IOException {
        this.mode = mode;
        this.receiveMaximum = receiveMaximum;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread acceptor = new Thread(this::accept, "scripted-broker");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    int port() {
        return server.getLocalPort();
    }

    void mode(Mode mode) {
        this.mode = mode;
    }

    /** The topic of the message {@link Mode#PUBLISH_FIRST} answers CONNECT with. */
    void firstTopic(String topic) {
        this.firstTopic = topic;
    }

    /** Connections accepted (CONNECT answered) so far. */
    int connections() {
        return connections.get();
    }

    int publishes() {
        return publishes.get();
    }

    /** The client ids the CONNECTs so far carried, in order. */
    List<String> clientIds() {
        return clientIds;
    }

    /** Sends the acks {@link Mode#HOLD} held back. */
    void releaseHeld() throws IOException {
        for (Map.Entry<OutputStream, byte[]> ack : held) {
            held.remove(ack);
            send(ack.getKey(), ack.getValue());
        }
    }

    private static void send(OutputStream out, byte[] packet) throws IOException {
        synchronized (out) {
            out.write(packet);
            out.flush();
        }
    }

    private void accept() {
        while (!server.isClosed()) {
            try {
                Socket socket = server.accept();
                sockets.add(socket);
                Thread t = new Thread(() -> serve(socket), "scripted-broker-conn");
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                return;
            }
        }
    }

    private void serve(Socket socket) {
        try (Socket s = socket) {
            DataInputStream in = new DataInputStream(s.getInputStream());
            OutputStream out = s.getOutputStream();
            boolean v5 = false;
            while (true) {
                int first = in.readUnsignedByte();
                byte[] body = new byte[remainingLength(in)];
                in.readFully(body);
                int type = first >> 4;
                switch (type) {
                    case 1: // CONNECT: 2-byte name length, "MQTT", level
                        v5 = body[6] == 5;
                        clientIds.add(clientId(body, v5));
                        if (mode == Mode.PUBLISH_FIRST) {
                            send(out, publish(firstTopic));
                        } else if (!v5) {
                            send(out, new byte[] {0x20, 2, 0, 0});
                        } else if (receiveMaximum > 0) { // property 0x21, two bytes
                            send(out, new byte[] {0x20, 6, 0, 0, 3, 0x21, (byte) (receiveMaximum >> 8),
                                (byte) receiveMaximum});
                        } else {
                            send(out, new byte[] {0x20, 3, 0, 0, 0});
                        }
                        connections.incrementAndGet();
                        break;
                    case 3: { // PUBLISH
                        int qos = (first >> 1) & 3;
                        publishes.incrementAndGet();
                        if (qos == 0) {
                            break;
                        }
                        int topicLength = ((body[0] & 0xff) << 8) | (body[1] & 0xff);
                        byte hi = body[2 + topicLength];
                        byte lo = body[3 + topicLength];
                        int ack = qos == 1 ? 0x40 : 0x50;
                        Mode now = mode;
                        if (now == Mode.ACK || (now == Mode.HOLD && qos == 2)) {
                            send(out, new byte[] {(byte) ack, 2, hi, lo});
                        } else if (now == Mode.HOLD) {
                            held.add(new AbstractMap.SimpleEntry<>(out, new byte[] {(byte) ack, 2, hi, lo}));
                        } else if (now == Mode.REFUSE_AND_CLOSE) {
                            send(out, new byte[] {(byte) ack, 3, hi, lo, (byte) 0x87});
                            s.shutdownOutput();
                            return;
                        }
                        break;
                    }
                    case 6: // PUBREL
                        if (mode == Mode.ACK) {
                            send(out, new byte[] {0x70, 2, body[0], body[1]});
                        } else if (mode == Mode.HOLD) {
                            held.add(new AbstractMap.SimpleEntry<>(out, new byte[] {0x70, 2, body[0], body[1]}));
                        }
                        break;
                    case 12: // PINGREQ
                        send(out, new byte[] {(byte) 0xd0, 0});
                        break;
                    case 14: // DISCONNECT
                        return;
                    default:
                        break;
                }
            }
        } catch (EOFException e) {
            // the client went away
        } catch (IOException e) {
            // closed by close() or by the client
        }
    }

    /** An MQTT 3.1.1 QoS 0 PUBLISH to {@code topic}, of one byte. */
    private static byte[] publish(String topic) {
        byte[] name = topic.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        java.io.ByteArrayOutputStream packet = new java.io.ByteArrayOutputStream();
        packet.write(0x30);
        int remaining = 2 + name.length + 1;
        do {
            int b = remaining & 0x7f;
            remaining >>>= 7;
            packet.write(remaining > 0 ? b | 0x80 : b);
        } while (remaining > 0);
        packet.write(name.length >> 8);
        packet.write(name.length & 0xff);
        packet.write(name, 0, name.length);
        packet.write('x');
        return packet.toByteArray();
    }

    /** A CONNECT's client id: after the name, level, flags, keep-alive and (MQTT 5) the properties. */
    private static String clientId(byte[] connect, boolean v5) {
        int at = 10;
        if (v5) {
            int length = 0;
            int shift = 0;
            int b;
            do {
                b = connect[at++] & 0xff;
                length |= (b & 0x7f) << shift;
                shift += 7;
            } while ((b & 0x80) != 0);
            at += length;
        }
        int n = ((connect[at] & 0xff) << 8) | (connect[at + 1] & 0xff);
        return new String(connect, at + 2, n, java.nio.charset.StandardCharsets.UTF_8);
    }

    private static int remainingLength(DataInputStream in) throws IOException {
        int value = 0;
        for (int shift = 0; shift < 28; shift += 7) {
            int b = in.readUnsignedByte();
            value |= (b & 0x7f) << shift;
            if ((b & 0x80) == 0) {
                return value;
            }
        }
        throw new IOException("malformed remaining length");
    }

    @Override
    public void close() throws IOException {
        server.close();
        for (Socket s : sockets) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
    }
}

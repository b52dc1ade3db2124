package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * Writes Avro binary by hand, for the inputs Avro 1.7.5's own writer never produces but its reader accepts: arrays
 * and maps in several blocks (including the negative-count form that carries the block's byte size), duplicate map
 * keys, over-long varints, raw float/double bit patterns and malformed UTF-8. Every such datum is checked against
 * Avro 1.7.5's reader by the tests that use it (the reference decodes it), so this class cannot invent a format.
 */
final class AvroBinary {

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    static AvroBinary start() {
        return new AvroBinary();
    }

    byte[] bytes() {
        return out.toByteArray();
    }

    /** Zig-zag varint, as Avro writes int and long. */
    AvroBinary writeLong(long v) {
        long n = (v << 1) ^ (v >> 63);
        while ((n & ~0x7FL) != 0) {
            out.write((int) ((n & 0x7F) | 0x80));
            n >>>= 7;
        }
        out.write((int) n);
        return this;
    }

    AvroBinary writeInt(int v) {
        return writeLong(v);
    }

    /** Raw bytes, e.g. a hand-made varint. */
    AvroBinary raw(int... bytes) {
        for (int b : bytes) {
            out.write(b);
        }
        return this;
    }

    AvroBinary raw(byte[] bytes) {
        out.write(bytes, 0, bytes.length);
        return this;
    }

    AvroBinary writeBytes(byte[] b) {
        writeLong(b.length);
        return raw(b);
    }

    AvroBinary writeString(String s) {
        return writeBytes(s.getBytes(StandardCharsets.UTF_8));
    }

    AvroBinary writeFloatBits(int bits) {
        for (int i = 0; i < 4; i++) {
            out.write((bits >>> (8 * i)) & 0xFF);
        }
        return this;
    }

    AvroBinary writeDoubleBits(long bits) {
        for (int i = 0; i < 8; i++) {
            out.write((int) ((bits >>> (8 * i)) & 0xFF));
        }
        return this;
    }

    AvroBinary writeBoolean(boolean b) {
        out.write(b ? 1 : 0);
        return this;
    }

    /** An empty array or map: the terminating zero block. */
    AvroBinary writeEmptyBlocks() {
        return writeLong(0);
    }

    /** How one item (array) or value (map) is written. */
    interface ItemWriter<T> {
        void write(AvroBinary b, T item);
    }

    /**
     * An array whose items go out in blocks of the given sizes (their sum must be the item count); a negative size
     * writes that block in the form {@code -count, byteSize, items}.
     */
    <T> AvroBinary writeArrayBlocks(List<T> items, int[] blockSizes, ItemWriter<T> itemWriter) {
        int i = 0;
        for (int size : blockSizes) {
            int count = Math.abs(size);
            AvroBinary block = new AvroBinary();
            for (int k = 0; k < count; k++) {
                itemWriter.write(block, items.get(i++));
            }
            writeBlockHeader(size, block);
        }
        if (i != items.size()) {
            throw new IllegalArgumentException("blocks cover " + i + " of " + items.size() + " items");
        }
        return writeLong(0);
    }

    /**
     * A map whose entries (keys as raw UTF-8 bytes, possibly malformed, possibly repeated) go out in blocks of the
     * given sizes; negative sizes as in {@link #writeArrayBlocks}.
     */
    <V> AvroBinary writeMapBlocks(List<Map.Entry<byte[], V>> entries, int[] blockSizes, ItemWriter<V> valueWriter) {
        int i = 0;
        for (int size : blockSizes) {
            int count = Math.abs(size);
            AvroBinary block = new AvroBinary();
            for (int k = 0; k < count; k++) {
                Map.Entry<byte[], V> e = entries.get(i++);
                block.writeBytes(e.getKey());
                valueWriter.write(block, e.getValue());
            }
            writeBlockHeader(size, block);
        }
        if (i != entries.size()) {
            throw new IllegalArgumentException("blocks cover " + i + " of " + entries.size() + " entries");
        }
        return writeLong(0);
    }

    private void writeBlockHeader(int size, AvroBinary block) {
        byte[] body = block.bytes();
        if (size < 0) {
            writeLong(size);
            writeLong(body.length);
        } else {
            writeLong(size);
        }
        raw(body);
    }
}

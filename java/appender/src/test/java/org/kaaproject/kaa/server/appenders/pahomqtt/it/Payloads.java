package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Byte-exact comparison of published payloads against reference payloads, with readable failure messages. */
public final class Payloads {

    private static final Pattern ID = Pattern.compile("\"id\":\"([^\"\\\\]*)\"");

    private Payloads() {
    }

    /** A lossless String key for a byte array (ISO-8859-1 maps every byte to one char). */
    static String key(byte[] b) {
        return new String(b, StandardCharsets.ISO_8859_1);
    }

    static String utf8(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    /** The value of the record's "id" field in a JSON payload, or null. */
    public static String idOf(byte[] payload) {
        Matcher m = ID.matcher(utf8(payload));
        return m.find() ? m.group(1) : null;
    }

    static Map<String, Integer> counts(List<byte[]> list) {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (byte[] b : list) {
            m.merge(key(b), 1, Integer::sum);
        }
        return m;
    }

    /**
     * Asserts that {@code actual} holds exactly the payloads of {@code expected}, each as often, compared byte for
     * byte. On failure tells how many are missing and unexpected and shows the first mismatch, paired by the
     * record's "id" field where possible, with the first differing position.
     */
    public static void assertSameMultiset(String context, List<byte[]> expected, List<byte[]> actual) {
        Map<String, Integer> exp = counts(expected);
        Map<String, Integer> act = counts(actual);
        List<String> missing = new ArrayList<>();
        List<String> unexpected = new ArrayList<>();
        int missingCount = 0;
        int unexpectedCount = 0;
        for (Map.Entry<String, Integer> e : exp.entrySet()) {
            int d = e.getValue() - act.getOrDefault(e.getKey(), 0);
            if (d > 0) {
                missing.add(e.getKey());
                missingCount += d;
            }
        }
        for (Map.Entry<String, Integer> e : act.entrySet()) {
            int d = e.getValue() - exp.getOrDefault(e.getKey(), 0);
            if (d > 0) {
                unexpected.add(e.getKey());
                unexpectedCount += d;
            }
        }
        if (missing.isEmpty() && unexpected.isEmpty()) {
            return;
        }
        StringBuilder sb = new StringBuilder();
        sb.append(context).append(": received payloads differ from the Avro 1.7.5 reference.\n");
        sb.append("  expected ").append(expected.size()).append(" payloads, received ").append(actual.size())
                .append("; missing ").append(missingCount).append(", unexpected ").append(unexpectedCount)
                .append('\n');
        Map<String, String> expectedById = new HashMap<>();
        for (byte[] b : expected) {
            String id = idOf(b);
            if (id != null) {
                expectedById.put(id, key(b));
            }
        }
        if (!unexpected.isEmpty()) {
            String u = unexpected.get(0);
            byte[] ub = u.getBytes(StandardCharsets.ISO_8859_1);
            String id = idOf(ub);
            String pair = id == null ? null : expectedById.get(id);
            if (pair == null && !missing.isEmpty()) {
                pair = missing.get(0);
            }
            sb.append("  first unexpected (received):\n    ").append(show(ub)).append('\n');
            if (pair != null) {
                byte[] pb = pair.getBytes(StandardCharsets.ISO_8859_1);
                sb.append("  its reference").append(id != null && expectedById.containsKey(id) ? " (same id " + id + ")"
                        : " (first missing)").append(":\n    ").append(show(pb)).append('\n');
                sb.append("  ").append(firstDifference(pb, ub)).append('\n');
            }
            sb.append(differenceSummary(expectedById, unexpected));
        } else {
            sb.append("  first missing (never received):\n    ")
                    .append(show(missing.get(0).getBytes(StandardCharsets.ISO_8859_1))).append('\n');
        }
        sb.append(AvroReference.NUMBER_FORMAT_NOTE);
        fail(sb.toString());
    }

    private static final Pattern FIELD = Pattern.compile("\"([A-Za-z_][A-Za-z0-9_]*)\":");

    /**
     * For every unexpected payload whose reference could be found by id: the JSON field where the two first differ,
     * counted, with one short example each, so one kind of difference does not hide another.
     */
    static String differenceSummary(Map<String, String> expectedById, List<String> unexpected) {
        Map<String, Integer> byField = new TreeMap<>();
        Map<String, String> example = new HashMap<>();
        int unpaired = 0;
        for (String u : unexpected) {
            byte[] ub = u.getBytes(StandardCharsets.ISO_8859_1);
            String id = idOf(ub);
            String e = id == null ? null : expectedById.get(id);
            if (e == null) {
                unpaired++;
                continue;
            }
            byte[] eb = e.getBytes(StandardCharsets.ISO_8859_1);
            int i = 0;
            while (i < eb.length && i < ub.length && eb[i] == ub[i]) {
                i++;
            }
            Matcher m = FIELD.matcher(utf8(slice(eb, 0, i)));
            String field = "(start)";
            while (m.find()) {
                field = m.group(1);
            }
            byField.merge(field, 1, Integer::sum);
            example.putIfAbsent(field, "expected ..." + utf8(slice(eb, Math.max(0, i - 12), i + 28)) + "... got ..."
                    + utf8(slice(ub, Math.max(0, i - 12), i + 28)) + "...");
        }
        StringBuilder sb = new StringBuilder("  where received payloads first differ from their reference (JSON field: count):\n");
        for (Map.Entry<String, Integer> f : byField.entrySet()) {
            sb.append("    ").append(f.getKey()).append(": ").append(f.getValue()).append("   e.g. ")
                    .append(example.get(f.getKey()).replace("\n", "\\n")).append('\n');
        }
        if (unpaired > 0) {
            sb.append("    (").append(unpaired).append(" unexpected payloads with no reference of the same id)\n");
        }
        return sb.toString();
    }

    /** Where two byte arrays first differ, with a little context of each. */
    public static String firstDifference(byte[] expected, byte[] actual) {
        int n = Math.min(expected.length, actual.length);
        int i = 0;
        while (i < n && expected[i] == actual[i]) {
            i++;
        }
        if (i == n && expected.length == actual.length) {
            return "identical";
        }
        int from = Math.max(0, i - 20);
        return "first difference at byte " + i + " (expected length " + expected.length + ", actual "
                + actual.length + "): expected ..." + show(slice(expected, from, i + 30)) + "... actual ..."
                + show(slice(actual, from, i + 30)) + "...";
    }

    private static byte[] slice(byte[] b, int from, int to) {
        to = Math.min(to, b.length);
        from = Math.min(from, to);
        byte[] out = new byte[to - from];
        System.arraycopy(b, from, out, 0, out.length);
        return out;
    }

    /** The payload as UTF-8 text in quotes, with bytes that are not printable ASCII also shown escaped. */
    public static String show(byte[] b) {
        String s = utf8(b);
        StringBuilder sb = new StringBuilder("\"");
        boolean special = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c == 0x7f) {
                sb.append(String.format("<U+%04X>", (int) c));
                special = true;
            } else {
                sb.append(c);
                if (c > 0x7f) {
                    special = true;
                }
            }
        }
        sb.append('"');
        if (special || s.length() == 0) {
            sb.append(" [").append(b.length).append(" bytes: ");
            for (int i = 0; i < Math.min(b.length, 400); i++) {
                sb.append(String.format("%02x", b[i] & 0xff));
            }
            if (b.length > 400) {
                sb.append("...");
            }
            sb.append(']');
        }
        return sb.toString();
    }
}

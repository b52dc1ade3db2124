package org.kaaproject.kaa.server.appenders.pahomqtt.replay;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.codehaus.jackson.JsonNode;
import org.codehaus.jackson.JsonParser;
import org.codehaus.jackson.map.ObjectMapper;

/**
 * The appender's configuration as JSON: the record the admin UI edits, one key per field of the plugin's config
 * schema, so every setting can be tried with the replay tool before touching a node. Fields left out take their form
 * default, as in a form the user did not touch. Values are plain JSON: text, numbers, true/false, an enum's symbol as
 * text, null for an empty optional field (Avro's JSON form of a union, {@code {"string": "x"}}, is taken too).
 * {@code //} and {@code /* *}{@code /} comments are allowed, so {@link #template} can explain each field.
 */
public final class ConfigJson {

    private ConfigJson() {
    }

    /** The overrides {@link KaaNode#config(String, Map)} takes, from this JSON text; a wrong key or type names it. */
    public static Map<String, Object> read(Schema schema, String json) {
        JsonNode root;
        try {
            ObjectMapper mapper = new ObjectMapper();
            mapper.configure(JsonParser.Feature.ALLOW_COMMENTS, true);
            root = mapper.readTree(json);
        } catch (IOException e) {
            throw new IllegalArgumentException("the configuration is not JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException("the configuration must be a JSON object, one key per field");
        }
        Map<String, Object> out = new HashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.getFields(); it.hasNext();) {
            Map.Entry<String, JsonNode> e = it.next();
            Schema.Field f = schema.getField(e.getKey());
            if (f == null) {
                throw new IllegalArgumentException("unknown field '" + e.getKey() + "'; the fields are " + names(schema));
            }
            out.put(f.name(), value(f, f.schema(), e.getValue()));
        }
        return out;
    }

    private static Object value(Schema.Field f, Schema t, JsonNode n) {
        if (t.getType() == Schema.Type.UNION) {
            Schema nonNull = null;
            boolean nullable = false;
            for (Schema b : t.getTypes()) {
                if (b.getType() == Schema.Type.NULL) {
                    nullable = true;
                } else if (nonNull == null) {
                    nonNull = b;
                }
            }
            if (n.isNull()) {
                if (!nullable) {
                    throw wrong(f, "a value", n);
                }
                return null;
            }
            if (n.isObject() && n.size() == 1 && nonNull != null && n.get(nonNull.getName()) != null) {
                n = n.get(nonNull.getName());
            }
            return value(f, nonNull, n);
        }
        switch (t.getType()) {
            case STRING:
                if (!n.isTextual()) {
                    throw wrong(f, "text", n);
                }
                return n.getTextValue();
            case INT:
                if (!n.isInt()) {
                    throw wrong(f, "a whole number", n);
                }
                return n.getIntValue();
            case LONG:
                if (!n.isIntegralNumber()) {
                    throw wrong(f, "a whole number", n);
                }
                return n.getLongValue();
            case BOOLEAN:
                if (!n.isBoolean()) {
                    throw wrong(f, "true or false", n);
                }
                return n.getBooleanValue();
            case DOUBLE:
                if (!n.isNumber()) {
                    throw wrong(f, "a number", n);
                }
                return n.getDoubleValue();
            case ENUM:
                if (!n.isTextual() || !t.getEnumSymbols().contains(n.getTextValue())) {
                    throw wrong(f, "one of " + t.getEnumSymbols(), n);
                }
                return new GenericData.EnumSymbol(t, n.getTextValue());
            default:
                throw new IllegalArgumentException("field '" + f.name() + "' of type " + t + " is not supported");
        }
    }

    private static IllegalArgumentException wrong(Schema.Field f, String expected, JsonNode got) {
        return new IllegalArgumentException("field '" + f.name() + "' takes " + expected + ", not " + got);
    }

    private static List<String> names(Schema schema) {
        List<String> names = new ArrayList<>();
        for (Schema.Field f : schema.getFields()) {
            names.add(f.name());
        }
        return names;
    }

    /**
     * A starting point: every field at its form default, each under a comment with the form's label (and an enum's
     * symbols), in the schema's order. {@link #read} of it gives the form defaults.
     */
    public static String template(Schema schema) {
        StringBuilder out = new StringBuilder();
        out.append("// The appender's configuration (").append(schema.getName()).append("), as the admin UI edits it.\n");
        out.append("// Every field is at its default; keep the ones you change (the others take their default).\n");
        out.append("{\n");
        List<Schema.Field> fields = schema.getFields();
        for (int i = 0; i < fields.size(); i++) {
            Schema.Field f = fields.get(i);
            JsonNode label = f.getJsonProp("displayName");
            out.append("  // ").append(label == null ? f.name() : label.getTextValue());
            Schema t = f.schema();
            if (t.getType() == Schema.Type.ENUM) {
                out.append(" (").append(String.join(", ", t.getEnumSymbols())).append(')');
            }
            out.append('\n');
            JsonNode d = f.getJsonProp("by_default");
            String value = d == null ? "null" : d.toString();
            out.append("  \"").append(f.name()).append("\": ").append(value).append(i + 1 < fields.size() ? "," : "")
                    .append('\n');
        }
        return out.append("}\n").toString();
    }
}

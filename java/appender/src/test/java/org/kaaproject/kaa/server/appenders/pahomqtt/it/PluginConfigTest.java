package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.lang.reflect.Modifier;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.codehaus.jackson.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.plugin.KaaPluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginType;

/**
 * What the admin service sees when it discovers the plugins ({@link ReleasedPlugin}), all by class name, as Kaa does
 * it: the legacy one (the original's class names, exactly its nine-field schema, for the appenders it stored) and the
 * generations of the full settings, each a plugin of its own.
 */
@Timeout(30)
class PluginConfigTest {

    /** Config class, type name (the admin UI's label), appender class, bundled schema resource. */
    static Stream<Arguments> plugins() {
        return Stream.of(ReleasedPlugin.values())
                .map(p -> Arguments.of(p.configClass, p.typeName, p.appenderClass, p.schemaResource));
    }

    @ParameterizedTest(name = "{1}")
    @MethodSource("plugins")
    void configClassIsDiscoverableAsALogAppender(String configClass) throws Exception {
        Class<?> c = Class.forName(configClass);
        assertTrue(c.getName().startsWith("org.kaaproject.kaa.server.appenders."),
                "the admin service scans org.kaaproject.kaa.server.appenders");
        KaaPluginConfig a = c.getDeclaredAnnotation(KaaPluginConfig.class);
        assertNotNull(a, "@KaaPluginConfig (runtime retention) on " + c.getName() + " itself: it is not @Inherited");
        assertEquals(PluginType.LOG_APPENDER, a.pluginType());
        assertTrue(Modifier.isPublic(c.getModifiers()) && !Modifier.isAbstract(c.getModifiers()));
        assertTrue(Modifier.isPublic(c.getConstructor().getModifiers()), "public no-arg constructor");
        assertTrue(PluginConfig.class.isAssignableFrom(c), "implements PluginConfig");
        // The shared base is no plugin of its own: abstract and not annotated.
        Class<?> base = c.getSuperclass();
        assertTrue(Modifier.isAbstract(base.getModifiers()), base.getName());
        assertNull(base.getDeclaredAnnotation(KaaPluginConfig.class), base.getName());
    }

    @ParameterizedTest(name = "{1}")
    @MethodSource("plugins")
    void configClassNamesTheAppenderAndItsSchema(String configClass, String typeName, String appenderClass,
            String resource) throws Exception {
        PluginConfig pc = KaaNode.pluginConfig(configClass);
        assertEquals(typeName, pc.getPluginTypeName());
        assertEquals(appenderClass, pc.getPluginClassName());
        Schema schema = pc.getPluginConfigSchema();
        assertNotNull(schema);
        try (InputStream in = getClass().getResourceAsStream("/" + ReleasedPlugin.SCHEMA_DIR + resource)) {
            assertNotNull(in, "bundled " + resource);
            Schema bundled = new Schema.Parser().parse(in);
            assertEquals(bundled, schema, "getPluginConfigSchema() is the bundled .avsc");
            assertEquals(bundled.toString(), schema.toString(), "including the form attributes");
        }
        assertEquals(Schema.Type.RECORD, schema.getType());
        for (Schema.Field f : schema.getFields()) {
            assertNotNull(f.getProp("displayName"), "form label of " + f.name());
        }
        // The form builder needs every non-optional field to have a default; KaaNode.config() relies on that too.
        KaaNode.config(configClass, Map.of());
    }

    /**
     * The legacy plugin's schema is exactly the original's record (full name, field names, types, order and form
     * defaults), so the admin decodes every configuration the original stored, and writes what the original wrote.
     */
    @Test
    void legacySchemaIsExactlyTheOriginalRecord() {
        Schema legacy = KaaNode.configSchema(KaaNode.LEGACY_CONFIG_CLASS);
        Schema original = OriginalAppender.schema();
        assertEquals(original.getFullName(), legacy.getFullName(), "record full name");
        assertEquals(original.getFields().size(), legacy.getFields().size(), "nine fields, no more");
        for (int i = 0; i < original.getFields().size(); i++) {
            Schema.Field o = original.getFields().get(i);
            Schema.Field l = legacy.getFields().get(i);
            assertEquals(o.name(), l.name(), "field " + i);
            assertEquals(o.schema(), l.schema(), "type of " + o.name());
            assertEquals(o.getJsonProp("by_default"), l.getJsonProp("by_default"), "form default of " + o.name());
            assertEquals(o.getJsonProp("optional"), l.getJsonProp("optional"), "optional " + o.name());
        }
        assertEquals("password", legacy.getField("password").getProp("inputType"));
        // Avro's own view: the same Parsing Canonical Form (names, types, order), so either reads what the other wrote.
        assertEquals(SchemaNormalization.toParsingForm(original), SchemaNormalization.toParsingForm(legacy));
    }

    /**
     * Each generation's schema starts with the previous one's fields (names and types, in order; a plain string may
     * become optional), the first with the original's nine, so the native core reads every plugin's configurations
     * with one decoder, told only whether texts are optional; each is its own record, in the same namespace, and each
     * field it adds has a form default.
     */
    @Test
    void eachGenerationStartsWithThePreviousOnesFields() {
        Schema previous = OriginalAppender.schema();
        Set<String> names = new HashSet<>();
        for (ReleasedPlugin p : ReleasedPlugin.values()) {
            Schema cur = KaaNode.configSchema(p.configClass);
            assertEquals("org.kaaproject.kaa.server.appenders.pahomqtt.config.gen", cur.getNamespace(), p.name());
            assertTrue(names.add(cur.getFullName()), "a record name of its own: " + cur.getFullName());
            List<Schema.Field> fields = cur.getFields();
            List<Schema.Field> before = previous.getFields();
            assertEquals(p.fields, fields.size(), "the settings " + p.name() + " is released with");
            for (int i = 0; i < before.size(); i++) {
                assertEquals(before.get(i).name(), fields.get(i).name(), p.name() + " field " + i);
                Schema was = before.get(i).schema();
                Schema is = fields.get(i).schema();
                assertTrue(was.equals(is) || was.getType() == Schema.Type.STRING && is.equals(optional(was)),
                        p.name() + " type of field " + before.get(i).name() + ": " + was + " then " + is);
            }
            for (int i = before.size(); i < fields.size(); i++) {
                JsonNode d = fields.get(i).getJsonProp("by_default");
                assertNotNull(d, p.name() + "'s new field " + fields.get(i).name() + " has a form default");
            }
            previous = cur;
        }
    }

    private static Schema optional(Schema type) {
        return Schema.createUnion(List.of(type, Schema.create(Schema.Type.NULL)));
    }

    /**
     * The admin's form (avro-ui) takes a field as optional only when its type is a union with null, and will not save
     * a required one without a value, a string one without text. So every required field of a plugin for new
     * appenders has a form default, a non-empty one for text: a new appender's form can be saved as it opens, and
     * every text that may be left empty is optional. (v1 and v2 broke this with nine empty texts, which is why v3
     * exists; their stored appenders keep them.)
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(value = ReleasedPlugin.class, names = {"ORIGINAL_SETTINGS", "V3"})
    void theFormSavesAsItOpens(ReleasedPlugin p) {
        assertEquals(ReleasedPlugin.V3, ReleasedPlugin.newest(), "the newest plugin is checked");
        for (Schema.Field f : KaaNode.configSchema(p.configClass).getFields()) {
            if (f.schema().getType() == Schema.Type.UNION
                    && f.schema().getTypes().contains(Schema.create(Schema.Type.NULL))) {
                continue;
            }
            JsonNode d = f.getJsonProp("by_default");
            assertTrue(d != null && !d.isNull(), p + "'s required " + f.name() + " has a form default");
            if (f.schema().getType() == Schema.Type.STRING) {
                assertFalse(d.getTextValue().isEmpty(), p + "'s required text " + f.name() + " is not empty");
            }
        }
    }

    /**
     * The form attributes the admin's form (avro-ui) reads as it draws a field: an enum's {@code displayNames} by
     * symbol index (a shorter array throws in the admin and the form never opens), its {@code by_default} among its
     * symbols, and {@code inputType} only as a masked input. The frozen-schema fingerprint leaves these attributes
     * out, so nothing else would catch a label list edited out of step.
     */
    @ParameterizedTest(name = "{1}")
    @MethodSource("plugins")
    void theFormAttributesFitTheirFields(String configClass) {
        for (Schema.Field f : KaaNode.configSchema(configClass).getFields()) {
            Schema type = f.schema();
            if (type.getType() == Schema.Type.UNION) {
                type = type.getTypes().get(0);
            }
            JsonNode input = f.getJsonProp("inputType");
            assertTrue(input == null || "password".equals(input.getTextValue()), f.name() + " inputType " + input);
            if (type.getType() != Schema.Type.ENUM) {
                continue;
            }
            JsonNode labels = f.getJsonProp("displayNames");
            assertNotNull(labels, f.name() + " has displayNames");
            assertEquals(type.getEnumSymbols().size(), labels.size(), f.name() + ": a label for each symbol");
            JsonNode d = f.getJsonProp("by_default");
            assertTrue(d != null && type.getEnumSymbols().contains(d.getTextValue()),
                    f.name() + "'s form default " + d + " is one of " + type.getEnumSymbols());
        }
    }

    /**
     * New appenders of the full settings verify the broker's certificate unless the operator turns it off; the legacy
     * form keeps the original's default (it is the original's record), and stored configurations keep the value they
     * hold, since the default lives only in the form.
     */
    @ParameterizedTest(name = "{1}")
    @MethodSource("plugins")
    void theFullFormsVerifyCertificatesByDefault(String configClass) {
        assertEquals(String.valueOf(!configClass.equals(KaaNode.LEGACY_CONFIG_CLASS)), KaaNode.configSchema(configClass)
                .getField("verifySslCert").getJsonProp("by_default").toString());
    }

    /**
     * A released plugin's schema is frozen: the admin decodes every configuration stored with it using the schema of
     * the day, with no defaults for missing fields, so adding a field breaks every appender stored before, and
     * removing, reordering or retyping one misreads them. The Parsing Canonical Form (names, types, order; not the
     * form attributes, which may change) is pinned here. If this fails, add a new plugin for the new settings and
     * leave the released ones as they are (README, "Adding a setting").
     */
    @Test
    void releasedSchemasAreFrozen() {
        Map<String, String> released = Map.of(
                KaaNode.LEGACY_CONFIG_CLASS, "a8fa5d5c54475632",
                KaaNode.V1_CONFIG_CLASS, "c18ddbee1e8bbd8",
                KaaNode.V2_CONFIG_CLASS, "96628465be77ab56",
                KaaNode.CONFIG_CLASS, "4f25242c96416cf");
        assertEquals(ReleasedPlugin.values().length, released.size(), "every released plugin pinned");
        for (Map.Entry<String, String> e : released.entrySet()) {
            Schema schema = KaaNode.configSchema(e.getKey());
            assertEquals(e.getValue(), Long.toHexString(SchemaNormalization.parsingFingerprint64(schema)),
                    "the released schema of " + e.getKey() + " changed; it must not (see this test's comment): "
                            + SchemaNormalization.toParsingForm(schema));
        }
    }

    /**
     * Each plugin names its own appender class, which the node instantiates; all are the one shared body (no
     * behaviour of their own), so they cannot drift apart.
     */
    @ParameterizedTest(name = "{1}")
    @MethodSource("plugins")
    void appenderClassIsWhatTheNodeInstantiates(String configClass, String typeName, String appenderClass)
            throws Exception {
        Class<?> c = Class.forName(appenderClass);
        assertTrue(LogAppender.class.isAssignableFrom(c), "implements LogAppender");
        assertTrue(Modifier.isPublic(c.getModifiers()) && !Modifier.isAbstract(c.getModifiers()));
        assertTrue(Modifier.isPublic(c.getConstructor().getModifiers()), "public no-arg constructor");
        assertEquals(0, c.getDeclaredMethods().length, appenderClass + " adds no behaviour");
        assertEquals(0, c.getDeclaredFields().length, appenderClass + " adds no state");
        assertEquals("org.kaaproject.kaa.server.appenders.pahomqtt.appender.NativeLogAppender",
                c.getSuperclass().getName());
    }

    @Test
    void thePluginsAreDistinct() {
        // The admin keys plugins by appender class name; the type name is the label an operator picks from.
        Set<String> appenderClasses = new HashSet<>();
        Set<String> typeNames = new HashSet<>();
        Set<Schema> schemas = new HashSet<>();
        for (ReleasedPlugin p : ReleasedPlugin.values()) {
            PluginConfig pc = KaaNode.pluginConfig(p.configClass);
            assertTrue(appenderClasses.add(pc.getPluginClassName()), pc.getPluginClassName());
            assertTrue(typeNames.add(pc.getPluginTypeName()), pc.getPluginTypeName());
            assertTrue(schemas.add(pc.getPluginConfigSchema()), p.name());
        }
        assertEquals(KaaNode.CONFIG_CLASS, ReleasedPlugin.newest().configClass, "new appenders get the newest");
    }
}

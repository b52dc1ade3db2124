package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.lang.reflect.Modifier;
import java.util.List;

import org.apache.avro.Schema;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.plugin.KaaPluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginType;

/** What the admin service sees when it discovers the plugin: all by class name, as Kaa does it. */
@Timeout(30)
class PluginConfigTest {

    @Test
    void configClassIsDiscoverableAsALogAppender() throws Exception {
        Class<?> c = Class.forName(KaaNode.CONFIG_CLASS);
        assertTrue(c.getName().startsWith("org.kaaproject.kaa.server.appenders."),
                "the admin service scans org.kaaproject.kaa.server.appenders");
        KaaPluginConfig a = c.getAnnotation(KaaPluginConfig.class);
        assertNotNull(a, "@KaaPluginConfig (runtime retention) on " + c.getName());
        assertEquals(PluginType.LOG_APPENDER, a.pluginType());
        assertTrue(Modifier.isPublic(c.getModifiers()) && !Modifier.isAbstract(c.getModifiers()));
        assertTrue(Modifier.isPublic(c.getConstructor().getModifiers()), "public no-arg constructor");
        assertTrue(PluginConfig.class.isAssignableFrom(c), "implements PluginConfig");
    }

    @Test
    void configClassNamesTheAppenderAndItsSchema() throws Exception {
        PluginConfig pc = KaaNode.pluginConfig();
        assertEquals("PahoMqtt", pc.getPluginTypeName());
        assertEquals(KaaNode.APPENDER_CLASS, pc.getPluginClassName(),
                "the original appender's class name, so stored appender records keep working");
        Schema schema = pc.getPluginConfigSchema();
        assertNotNull(schema);
        try (InputStream in = getClass().getResourceAsStream(
                "/org/kaaproject/kaa/server/appenders/pahomqtt/config/PahoMqttConfig.avsc")) {
            assertNotNull(in, "bundled PahoMqttConfig.avsc");
            Schema bundled = new Schema.Parser().parse(in);
            assertEquals(bundled, schema, "getPluginConfigSchema() is the bundled .avsc");
            assertEquals(bundled.toString(), schema.toString(), "including the form attributes");
        }
        assertEquals(Schema.Type.RECORD, schema.getType());
    }

    @Test
    void configSchemaStartsWithTheOriginalNineFields() {
        Schema current = KaaNode.configSchema();
        Schema original = AvroReference.parse(TestData.schemaText("original-PahoMqttConfig.avsc"));
        assertEquals(original.getFullName(), current.getFullName(), "record full name");
        List<Schema.Field> cur = current.getFields();
        List<Schema.Field> orig = original.getFields();
        assertTrue(cur.size() >= orig.size());
        for (int i = 0; i < orig.size(); i++) {
            assertEquals(orig.get(i).name(), cur.get(i).name(), "field " + i);
            assertEquals(orig.get(i).schema(), cur.get(i).schema(), "type of field " + orig.get(i).name());
        }
        for (int i = orig.size(); i < cur.size(); i++) {
            assertNotNull(cur.get(i).getJsonProp("by_default"), "new field " + cur.get(i).name() + " has a form default");
        }
        // The form builder needs every non-optional field to have a default; KaaNode.config() relies on that too.
        KaaNode.config(java.util.Map.of());
    }

    @Test
    void appenderClassIsWhatTheNodeInstantiates() throws Exception {
        Class<?> c = Class.forName(KaaNode.APPENDER_CLASS);
        assertTrue(LogAppender.class.isAssignableFrom(c), "implements LogAppender");
        assertTrue(Modifier.isPublic(c.getModifiers()) && !Modifier.isAbstract(c.getModifiers()));
        assertTrue(Modifier.isPublic(c.getConstructor().getModifiers()), "public no-arg constructor");
    }
}

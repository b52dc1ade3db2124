package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.lang.annotation.Annotation;
import java.lang.reflect.Method;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.jar.JarFile;

import org.apache.avro.Schema;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.plugin.KaaPluginConfig;
import org.kaaproject.kaa.server.common.plugin.PluginConfig;
import org.springframework.beans.factory.config.BeanDefinition;
import org.springframework.context.annotation.ClassPathScanningCandidateComponentProvider;
import org.springframework.core.io.DefaultResourceLoader;
import org.springframework.core.type.filter.AnnotationTypeFilter;

/**
 * Discovery as Kaa 0.9.0's admin service does it at start-up, with the Spring version a node runs (4.2.5): a
 * {@code ClassPathScanningCandidateComponentProvider(false)} with an {@code AnnotationTypeFilter(KaaPluginConfig)}
 * over the packages {@code org.kaaproject.kaa.server.appenders} and {@code ...verifiers}, then each candidate
 * instantiated by name with its no-arg constructor and asked for its type name, class name and config schema.
 *
 * <p>It finds exactly the released plugins ({@link ReleasedPlugin}): the legacy one (the original's config and
 * appender class names, its nine-field schema, for the appenders the original stored) and the generations of the
 * full settings, the newest for new appenders. The annotation sits on each concrete class: it is not
 * {@code @Inherited}, and Spring takes only concrete, independent classes.
 *
 * <p>The scan runs over the PACKAGED jar (this test runs after {@code package}), in a class loader that holds only
 * the jar and a node's libraries, as a node's class path does. It cannot see this test's own classes, which Spring
 * 4.2's ASM could not read (Java 17 class files) and which a node never has.
 */
@Timeout(60)
class PluginDiscoveryIT {

    /** What each plugin must tell the admin, by config class name. */
    private static final Map<String, ReleasedPlugin> EXPECTED = new HashMap<>();

    static {
        for (ReleasedPlugin p : ReleasedPlugin.values()) {
            EXPECTED.put(p.configClass, p);
        }
    }

    @Test
    void adminServiceScanFindsExactlyOurConfigClassesInThePackagedJar() throws Exception {
        try (URLClassLoader node = NodeLayout.nodeClassLoader()) {
            ClassPathScanningCandidateComponentProvider scanner =
                    new ClassPathScanningCandidateComponentProvider(false);
            scanner.setResourceLoader(new DefaultResourceLoader(node));
            scanner.addIncludeFilter(new AnnotationTypeFilter(KaaPluginConfig.class));

            List<String> appenders = beanClassNames(scanner.findCandidateComponents(
                    "org.kaaproject.kaa.server.appenders"));
            assertEquals(new TreeSet<>(EXPECTED.keySet()), new TreeSet<>(appenders),
                    "the admin service's scan of org.kaaproject.kaa.server.appenders");
            assertEquals(ReleasedPlugin.values().length, appenders.size(), "each found once: " + appenders);
            assertEquals(List.of(), beanClassNames(scanner.findCandidateComponents(
                    "org.kaaproject.kaa.server.verifiers")), "nothing of ours among the user verifiers");

            for (String name : appenders) {
                assertDiscoveredPluginWorks(node, name);
            }
        }
    }

    private static List<String> beanClassNames(Set<BeanDefinition> found) {
        List<String> names = new ArrayList<>();
        for (BeanDefinition b : found) {
            names.add(b.getBeanClassName());
        }
        return names;
    }

    /** What the admin service does with a candidate, everything by name and through the node's own classes. */
    @SuppressWarnings("unchecked")
    private static void assertDiscoveredPluginWorks(URLClassLoader node, String className) throws Exception {
        Class<?> configClass = Class.forName(className, true, node);
        assertSame(node, configClass.getClassLoader(), "loaded by the node's class loader");
        assertEquals(NodeLayout.appenderJar(), NodeLayout.codeSource(configClass), "from the packaged jar");

        Class<? extends Annotation> kaaPluginConfig = (Class<? extends Annotation>) node.loadClass(
                KaaPluginConfig.class.getName());
        Annotation annotation = configClass.getAnnotation(kaaPluginConfig);
        assertNotNull(annotation, "@KaaPluginConfig on " + className);
        assertEquals("LOG_APPENDER", ((Enum<?>) kaaPluginConfig.getMethod("pluginType").invoke(annotation)).name());

        Object config = configClass.getDeclaredConstructor().newInstance();
        Class<?> pluginConfig = node.loadClass(PluginConfig.class.getName());
        assertTrue(pluginConfig.isInstance(config), className + " implements the node's PluginConfig");
        Method typeName = pluginConfig.getMethod("getPluginTypeName");
        Method pluginClassName = pluginConfig.getMethod("getPluginClassName");
        Method configSchema = pluginConfig.getMethod("getPluginConfigSchema");

        ReleasedPlugin expected = EXPECTED.get(className);
        assertEquals(expected.typeName, typeName.invoke(config), "the type name the admin UI lists");

        String appenderClassName = (String) pluginClassName.invoke(config);
        assertEquals(expected.appenderClass, appenderClassName, "the appender class of " + className);
        Class<?> appenderClass = Class.forName(appenderClassName, true, node);
        assertTrue(node.loadClass(LogAppender.class.getName()).isAssignableFrom(appenderClass),
                appenderClassName + " is a LogAppender of the node's API");
        assertEquals(NodeLayout.appenderJar(), NodeLayout.codeSource(appenderClass), "from the packaged jar");
        appenderClass.getConstructor(); // Class.forName(...).newInstance() needs it

        Object schema = configSchema.invoke(config);
        assertNotNull(schema, "getPluginConfigSchema()");
        assertEquals("avro-1.7.5.jar", NodeLayout.codeSourceFileName(schema.getClass()),
                "the schema is an org.apache.avro.Schema of the node's Avro 1.7.5");
        Schema parsed = new Schema.Parser().parse(schema.toString());
        assertEquals(Schema.Type.RECORD, parsed.getType(), "the admin UI builds its form from a record schema");
        assertEquals(schema.toString(), parsed.toString(), "parses back to the same text, form attributes included");
        try (JarFile jar = new JarFile(NodeLayout.appenderJar().toFile());
                InputStream in = jar.getInputStream(jar.getEntry(ReleasedPlugin.SCHEMA_DIR + expected.schemaResource))) {
            assertEquals(new Schema.Parser().parse(in), parsed, "the schema is the .avsc bundled in the jar");
        }
        for (Schema.Field f : parsed.getFields()) {
            assertNotNull(f.getProp("displayName"), "form label of config field " + f.name());
        }
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.config;

import java.io.IOException;
import java.io.InputStream;
import java.net.URL;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

import org.apache.avro.Schema;
import org.kaaproject.kaa.server.common.plugin.PluginConfig;
import org.slf4j.LoggerFactory;

/**
 * A log appender plugin as Kaa's admin service knows it: a type name (the label in the admin UI's list), the
 * appender class the node instantiates, and a configuration schema read from an {@code .avsc} bundled beside this
 * class. The concrete plugins carry {@code @KaaPluginConfig} themselves: the annotation is not {@code @Inherited},
 * and Spring's scan only takes concrete classes, so this class is never a plugin of its own.
 *
 * <p><b>A released plugin's schema is frozen.</b> The admin stores each appender's configuration as the Avro
 * binary of the plugin's record and decodes it later with the plugin's schema of that day
 * ({@code GenericAvroConverter}: a {@code GenericDatumReader} over a binary decoder, which does not default missing
 * fields). A field added to a released schema makes every configuration stored before unreadable there
 * ({@code EOFException}): the admin can no longer open those appenders, and its REST list of the application's
 * appenders fails. Removing, reordering or retyping a field is worse, it misreads them. New settings need a new
 * plugin class (own config class, type name, appender class and schema, its fields a superset in the same order so
 * the native core reads all of them), while the released ones stay, unchanged, for the appenders stored with them.
 */
public abstract class BundledSchemaPluginConfig implements PluginConfig {

    /** A class the original appender's jar has too, as every build of this one. */
    private static final String SHARED_CLASS = "org/kaaproject/kaa/server/appenders/pahomqtt/appender/"
            + "PahoMQTTLogAppender.class";

    private static boolean copiesChecked;

    static {
        checkForOtherCopies();
    }

    private final String typeName;
    private final String appenderClassName;
    private final Schema schema;

    /**
     * @param schemaResource file name of the {@code .avsc}, in this class's package
     */
    protected BundledSchemaPluginConfig(String typeName, String appenderClassName, String schemaResource) {
        this.typeName = typeName;
        this.appenderClassName = appenderClassName;
        this.schema = loadSchema(schemaResource);
    }

    @Override
    public String getPluginTypeName() {
        return typeName;
    }

    @Override
    public String getPluginClassName() {
        return appenderClassName;
    }

    @Override
    public Schema getPluginConfigSchema() {
        return schema;
    }

    /**
     * Logs an error, once, when more than one jar on the class path carries the plugins' classes: the original
     * appender's jar left in place at an upgrade, or another build of this one. The node's {@code java -cp "$LIB/*"}
     * takes each class from whichever jar comes first, so the appenders the original stored could still run its code,
     * or a mix of two builds. Runs when the admin's scan instantiates a plugin and when the node makes an appender.
     */
    public static synchronized void checkForOtherCopies() {
        if (copiesChecked) {
            return;
        }
        copiesChecked = true;
        List<String> jars = new ArrayList<>();
        try {
            for (URL copy : Collections.list(BundledSchemaPluginConfig.class.getClassLoader().getResources(
                    SHARED_CLASS))) {
                String where = copy.toString();
                jars.add(where.startsWith("jar:") ? where.substring(4, where.indexOf("!/")) : where);
            }
        } catch (IOException | RuntimeException e) {
            return; // a class loader that cannot list resources shows no copies
        }
        if (jars.size() > 1) {
            LoggerFactory.getLogger(BundledSchemaPluginConfig.class).error("the PahoMQTT appender's classes are in {} "
                    + "jars on the class path: {}. Java takes each class from whichever comes first, so appenders may "
                    + "run another jar's code: keep only this appender's jar (and its .so) and restart the node",
                    jars.size(), String.join(", ", jars));
        }
    }

    private static Schema loadSchema(String resource) {
        try (InputStream in = BundledSchemaPluginConfig.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("resource " + resource + " is missing from the appender jar");
            }
            return new Schema.Parser().parse(in);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + resource, e);
        }
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;

/**
 * The plugins this jar gives the admin, oldest first, as the tests that enumerate them expect them: each generation's
 * schema is the previous one's fields, in their order (a plain string may become optional), followed by its own
 * (README, "Adding a setting"). A new generation is one more constant here, and its fingerprint pinned in
 * {@code PluginConfigTest.releasedSchemasAreFrozen}.
 */
enum ReleasedPlugin {

    /** The original's class names and exactly its nine-field record, for the appenders it stored. */
    ORIGINAL_SETTINGS(KaaNode.LEGACY_CONFIG_CLASS, "PahoMQTT (original settings)", KaaNode.LEGACY_APPENDER_CLASS,
            "PahoMqttConfig.avsc", 9),
    /** The first generation of the full settings (ends with closeTimeoutSeconds), labelled "PahoMqtt" until V2. */
    V1(KaaNode.V1_CONFIG_CLASS, "PahoMqtt (v1 settings)", KaaNode.V1_APPENDER_CLASS, "MqttAppenderConfig.avsc", 37),
    /** V1's fields and maxInflight, labelled "PahoMqtt" until V3. */
    V2(KaaNode.V2_CONFIG_CLASS, "PahoMqtt (v2 settings)", KaaNode.V2_APPENDER_CLASS, "MqttAppenderConfigV2.avsc", 38),
    /** The plugin for new appenders: V2's fields, the texts that may be empty optional so the admin's form saves them. */
    V3(KaaNode.CONFIG_CLASS, "PahoMqtt", KaaNode.APPENDER_CLASS, "MqttAppenderConfigV3.avsc", 38);

    /** The directory of the bundled schemas, in the jar and on the class path. */
    static final String SCHEMA_DIR = "org/kaaproject/kaa/server/appenders/pahomqtt/config/";

    final String configClass;
    /** The label in the admin UI's list of appender types. */
    final String typeName;
    final String appenderClass;
    /** File name of the bundled .avsc, in {@link #SCHEMA_DIR}. */
    final String schemaResource;
    /** The fields the schema was released with. */
    final int fields;

    ReleasedPlugin(String configClass, String typeName, String appenderClass, String schemaResource, int fields) {
        this.configClass = configClass;
        this.typeName = typeName;
        this.appenderClass = appenderClass;
        this.schemaResource = schemaResource;
        this.fields = fields;
    }

    /** The newest plugin, which new appenders are created with. */
    static ReleasedPlugin newest() {
        ReleasedPlugin[] all = values();
        return all[all.length - 1];
    }

    /** The class file path of a class name, as the jar holds it. */
    static String classFile(String className) {
        return className.replace('.', '/') + ".class";
    }
}

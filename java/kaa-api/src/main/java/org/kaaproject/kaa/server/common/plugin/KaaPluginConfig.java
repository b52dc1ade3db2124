package org.kaaproject.kaa.server.common.plugin;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/** Mirrors Kaa 0.9.0's {@code KaaPluginConfig} (compile-time stand-in). */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.TYPE)
public @interface KaaPluginConfig {

    PluginType pluginType();
}

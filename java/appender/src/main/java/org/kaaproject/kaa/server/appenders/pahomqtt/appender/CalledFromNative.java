package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/** Marks a member the Rust library calls by name: renaming or removing it breaks the bridge. */
@Retention(RetentionPolicy.CLASS)
@Target({ElementType.METHOD, ElementType.TYPE})
@interface CalledFromNative {
}

package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

/**
 * The appender of the legacy plugin, {@code PahoMQTTAppenderConfig} (type "PahoMQTT (original settings)"): the
 * original PahoMQTT appender's class name, which every appender it stored names, so those start unchanged after
 * the jar is replaced. Their configuration is the original's nine fields; the native core gives every other
 * setting its default. Everything it does is {@link NativeLogAppender}'s.
 */
public class PahoMQTTLogAppender extends NativeLogAppender {

    public PahoMQTTLogAppender() {
        super(0);
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

/**
 * The appender of {@code MqttAppenderConfig} (type "PahoMqtt (v1 settings)"), the first generation of the full
 * settings, which the appenders stored with it name. Everything it does is {@link NativeLogAppender}'s.
 */
public class MqttLogAppender extends NativeLogAppender {

    public MqttLogAppender() {
        super(1);
    }
}

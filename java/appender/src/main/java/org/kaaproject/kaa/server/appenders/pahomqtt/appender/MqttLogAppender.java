package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

/**
 * The appender of the full plugin, {@code MqttAppenderConfig} (type "PahoMqtt"), whose configuration has every
 * setting. Everything it does is {@link NativeLogAppender}'s.
 */
public class MqttLogAppender extends NativeLogAppender {

    public MqttLogAppender() {
    }
}

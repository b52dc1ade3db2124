package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

/**
 * The appender of {@code MqttAppenderConfigV3} (type "PahoMqtt"), the plugin for new appenders: the second
 * generation's settings, with the texts that may be empty optional. Everything it does is {@link NativeLogAppender}'s.
 */
public class MqttLogAppenderV3 extends NativeLogAppender {

    public MqttLogAppenderV3() {
        super(3);
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

/**
 * The appender of {@code MqttAppenderConfigV2} (type "PahoMqtt"), the plugin for new appenders, whose settings are
 * the second generation (the first's and {@code maxInflight}). Everything it does is {@link NativeLogAppender}'s.
 */
public class MqttLogAppenderV2 extends NativeLogAppender {

    public MqttLogAppenderV2() {
    }
}

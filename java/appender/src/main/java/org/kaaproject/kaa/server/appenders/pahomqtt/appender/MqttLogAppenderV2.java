package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

/**
 * The appender of {@code MqttAppenderConfigV2} (type "PahoMqtt (v2 settings)"), the second generation of the full
 * settings (the first's and {@code maxInflight}), which the appenders stored with it name. Everything it does is
 * {@link NativeLogAppender}'s.
 */
public class MqttLogAppenderV2 extends NativeLogAppender {

    public MqttLogAppenderV2() {
        super(2);
    }
}

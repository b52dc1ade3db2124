package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

/**
 * One appender's delivery figures over JMX, registered as
 * {@code org.kaaproject.kaa.server.appenders.pahomqtt:type=PahoMqttAppender,name=<appender name>,id=<appender id>}
 * while the appender is open. Counters run from {@code init}; latencies are from {@code doAppend} to the
 * pack's answer, over all packs so far.
 */
public interface PahoMqttAppenderMXBean {

    long getPacksDelivered();

    long getPacksFailedConnection();

    long getPacksFailedRemote();

    long getPacksFailedInternal();

    long getRecordsDelivered();

    long getRecordsFailed();

    long getPacksInFlight();

    /** Records accepted by the connection and not yet confirmed by the broker (shared connection's total). */
    long getRecordsAwaitingBroker();

    long getReconnects();

    boolean isConnected();

    double getAnswerLatencyP50Millis();

    double getAnswerLatencyP99Millis();

    /**
     * Connections the broker closed because another client connected with the same client id (a Kaa cluster whose
     * nodes share one fixed id): said by an MQTT 5 broker, or inferred when a connection is closed within seconds of
     * being accepted.
     */
    long getTakeovers();
}

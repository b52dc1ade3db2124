package org.kaaproject.kaa.server.common.log.shared.appender;

/** Mirrors Kaa 0.9.0's {@code LogEvent} (compile-time stand-in). */
public class LogEvent {

    private byte[] logData;

    public LogEvent() {
    }

    public byte[] getLogData() {
        return logData;
    }

    public void setLogData(byte[] logData) {
        this.logData = logData;
    }
}

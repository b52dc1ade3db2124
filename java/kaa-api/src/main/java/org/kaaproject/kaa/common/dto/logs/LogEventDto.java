package org.kaaproject.kaa.common.dto.logs;

import java.io.Serializable;

import org.kaaproject.kaa.common.dto.HasId;

/** Mirrors Kaa 0.9.0's {@code LogEventDto} (compile-time stand-in). */
public class LogEventDto implements HasId, Serializable {

    private static final long serialVersionUID = 1L;

    private String id;
    private String header;
    private String event;

    public LogEventDto() {
    }

    public LogEventDto(String header, String event) {
        this.header = header;
        this.event = event;
    }

    @Override
    public String getId() {
        return id;
    }

    @Override
    public void setId(String id) {
        this.id = id;
    }

    public String getHeader() {
        return header;
    }

    public void setHeader(String header) {
        this.header = header;
    }

    public String getEvent() {
        return event;
    }

    public void setEvent(String event) {
        this.event = event;
    }

    @Override
    public String toString() {
        return "LogEventDto [id=" + id + ", header=" + header + ", event=" + event + "]";
    }
}

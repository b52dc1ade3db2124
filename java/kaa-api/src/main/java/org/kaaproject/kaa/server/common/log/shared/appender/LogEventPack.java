package org.kaaproject.kaa.server.common.log.shared.appender;

import java.util.List;

import org.kaaproject.kaa.server.common.log.shared.appender.data.ProfileInfo;

/** Mirrors Kaa 0.9.0's {@code LogEventPack} (compile-time stand-in). */
public interface LogEventPack {

    String getEndpointKey();

    String getUserId();

    long getDateCreated();

    LogSchema getLogSchema();

    List<LogEvent> getEvents();

    ProfileInfo getClientProfile();

    ProfileInfo getServerProfile();
}

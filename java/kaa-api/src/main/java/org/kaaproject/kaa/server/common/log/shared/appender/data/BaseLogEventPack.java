package org.kaaproject.kaa.server.common.log.shared.appender.data;

import java.util.List;

import org.kaaproject.kaa.common.dto.EndpointProfileDataDto;
import org.kaaproject.kaa.server.common.log.shared.appender.LogEvent;
import org.kaaproject.kaa.server.common.log.shared.appender.LogEventPack;
import org.kaaproject.kaa.server.common.log.shared.appender.LogSchema;

/** Mirrors Kaa 0.9.0's {@code BaseLogEventPack} (compile-time stand-in). */
public class BaseLogEventPack implements LogEventPack {

    private final EndpointProfileDataDto profileDto;
    private final long dateCreated;
    private final int logSchemaVersion;
    private final List<LogEvent> events;
    private LogSchema logSchema;
    private String userId;
    private ProfileInfo clientProfile;
    private ProfileInfo serverProfile;

    public BaseLogEventPack(EndpointProfileDataDto profileDto, long dateCreated, int logSchemaVersion,
            List<LogEvent> events) {
        this.profileDto = profileDto;
        this.dateCreated = dateCreated;
        this.logSchemaVersion = logSchemaVersion;
        this.events = events;
    }

    public EndpointProfileDataDto getProfileDto() {
        return profileDto;
    }

    @Override
    public String getEndpointKey() {
        return profileDto.getEndpointKey();
    }

    @Override
    public long getDateCreated() {
        return dateCreated;
    }

    @Override
    public LogSchema getLogSchema() {
        return logSchema;
    }

    public void setLogSchema(LogSchema logSchema) {
        this.logSchema = logSchema;
    }

    public int getLogSchemaVersion() {
        return logSchemaVersion;
    }

    @Override
    public List<LogEvent> getEvents() {
        return events;
    }

    @Override
    public String getUserId() {
        return userId;
    }

    public void setUserId(String userId) {
        this.userId = userId;
    }

    @Override
    public ProfileInfo getClientProfile() {
        return clientProfile;
    }

    public void setClientProfile(ProfileInfo clientProfile) {
        this.clientProfile = clientProfile;
    }

    @Override
    public ProfileInfo getServerProfile() {
        return serverProfile;
    }

    public void setServerProfile(ProfileInfo serverProfile) {
        this.serverProfile = serverProfile;
    }
}

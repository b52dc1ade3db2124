package org.kaaproject.kaa.common.dto;

/** Mirrors Kaa 0.9.0's {@code EndpointProfileDataDto} (compile-time stand-in). */
public class EndpointProfileDataDto {

    private final String id;
    private final String endpointKey;
    private final int clientProfileVersion;
    private final String clientProfileBody;
    private final int serverProfileVersion;
    private final String serverProfileBody;

    public EndpointProfileDataDto(String id, String endpointKey, int clientProfileVersion, String clientProfileBody,
            int serverProfileVersion, String serverProfileBody) {
        this.id = id;
        this.endpointKey = endpointKey;
        this.clientProfileVersion = clientProfileVersion;
        this.clientProfileBody = clientProfileBody;
        this.serverProfileVersion = serverProfileVersion;
        this.serverProfileBody = serverProfileBody;
    }

    public String getId() {
        return id;
    }

    public String getEndpointKey() {
        return endpointKey;
    }

    public String getClientProfileBody() {
        return clientProfileBody;
    }

    public String getServerProfileBody() {
        return serverProfileBody;
    }

    public int getClientProfileVersion() {
        return clientProfileVersion;
    }

    public int getServerProfileVersion() {
        return serverProfileVersion;
    }
}

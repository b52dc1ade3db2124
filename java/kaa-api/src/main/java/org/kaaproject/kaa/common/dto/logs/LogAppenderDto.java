package org.kaaproject.kaa.common.dto.logs;

import java.util.List;

import org.kaaproject.kaa.common.dto.plugin.PluginDto;

/** Mirrors Kaa 0.9.0's {@code LogAppenderDto} (compile-time stand-in). */
public class LogAppenderDto extends PluginDto {

    private static final long serialVersionUID = 1L;

    private String applicationToken;
    private String tenantId;
    private int minLogSchemaVersion;
    private int maxLogSchemaVersion;
    private boolean confirmDelivery = true;
    private List<LogHeaderStructureDto> headerStructure;

    public LogAppenderDto() {
    }

    public String getApplicationToken() {
        return applicationToken;
    }

    public void setApplicationToken(String applicationToken) {
        this.applicationToken = applicationToken;
    }

    public String getTenantId() {
        return tenantId;
    }

    public void setTenantId(String tenantId) {
        this.tenantId = tenantId;
    }

    public int getMinLogSchemaVersion() {
        return minLogSchemaVersion;
    }

    public void setMinLogSchemaVersion(int minLogSchemaVersion) {
        this.minLogSchemaVersion = minLogSchemaVersion;
    }

    public int getMaxLogSchemaVersion() {
        return maxLogSchemaVersion;
    }

    public void setMaxLogSchemaVersion(int maxLogSchemaVersion) {
        this.maxLogSchemaVersion = maxLogSchemaVersion;
    }

    public boolean isConfirmDelivery() {
        return confirmDelivery;
    }

    public void setConfirmDelivery(boolean confirmDelivery) {
        this.confirmDelivery = confirmDelivery;
    }

    public List<LogHeaderStructureDto> getHeaderStructure() {
        return headerStructure;
    }

    public void setHeaderStructure(List<LogHeaderStructureDto> headerStructure) {
        this.headerStructure = headerStructure;
    }
}

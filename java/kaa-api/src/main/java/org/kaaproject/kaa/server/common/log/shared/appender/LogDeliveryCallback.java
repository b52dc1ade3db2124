package org.kaaproject.kaa.server.common.log.shared.appender;

/** Mirrors Kaa 0.9.0's {@code LogDeliveryCallback} (compile-time stand-in). */
public interface LogDeliveryCallback {

    void onSuccess();

    void onInternalError();

    void onConnectionError();

    void onRemoteError();
}

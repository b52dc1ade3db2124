package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Turns the library's outcome codes into Kaa callback calls. */
@CalledFromNative
final class DeliveryDispatch {

    private static final Logger LOG = LoggerFactory.getLogger(DeliveryDispatch.class);

    private DeliveryDispatch() {
    }

    /**
     * Codes as declared once in Rust, {@code delivery::Outcome} (its discriminants). Never throws: a callback's
     * failure is logged.
     */
    @CalledFromNative
    static void deliver(LogDeliveryCallback callback, int outcome) {
        try {
            switch (outcome) {
                case 0:
                    callback.onSuccess();
                    break;
                case 1:
                    callback.onConnectionError();
                    break;
                case 2:
                    callback.onRemoteError();
                    break;
                default:
                    callback.onInternalError();
                    break;
            }
        } catch (Throwable t) {
            LOG.warn("Kaa's delivery callback threw", t);
        }
    }
}

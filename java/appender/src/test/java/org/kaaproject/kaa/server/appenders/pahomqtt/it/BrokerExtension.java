package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Supplier;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.kaaproject.kaa.common.dto.logs.LogAppenderDto;
import org.kaaproject.kaa.server.appenders.pahomqtt.replay.KaaNode;
import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;

/**
 * A test class's Mosquitto and the appenders its tests load. Registered as
 * {@code @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.anonymous();}: the broker starts
 * before the class's first test (before its {@code @BeforeAll} methods) and is closed after its last; every appender
 * loaded through {@link #load} is closed after the test that loaded it, each even when another's close() throws.
 *
 * <p>A close() that throws is logged, not a test failure: some tests close on purpose, and a failing close is not
 * what they test. A class whose tests do assert that close() succeeds uses {@link #failingOnCloseErrors()}.
 */
public final class BrokerExtension implements BeforeAllCallback, AfterAllCallback, AfterEachCallback {

    private final Supplier<Mosquitto> factory;
    private final boolean closeErrorsFail;
    private final List<LogAppender> appenders = new CopyOnWriteArrayList<>();
    private volatile Mosquitto broker;

    private BrokerExtension(Supplier<Mosquitto> factory, boolean closeErrorsFail) {
        this.factory = factory;
        this.closeErrorsFail = closeErrorsFail;
    }

    /** A broker that accepts anonymous clients ({@link Mosquitto#anonymous()}). */
    public static BrokerExtension anonymous() {
        return new BrokerExtension(Mosquitto::anonymous, false);
    }

    /** A broker that only accepts this user ({@link Mosquitto#withCredentials}). */
    public static BrokerExtension withCredentials(String username, String password) {
        return new BrokerExtension(() -> Mosquitto.withCredentials(username, password), false);
    }

    /**
     * A TLS broker ({@link Mosquitto#withTls}). The settings are asked for when the broker starts, so certificates
     * can be made then rather than when the test class is loaded.
     */
    public static BrokerExtension withTls(Supplier<Mosquitto.Tls> tls) {
        return new BrokerExtension(() -> Mosquitto.withTls(tls.get()), false);
    }

    /** The same broker, but a close() that throws after a test fails that test (after every appender was closed). */
    public BrokerExtension failingOnCloseErrors() {
        return new BrokerExtension(factory, true);
    }

    /** The class's broker (started). */
    public Mosquitto broker() {
        if (broker == null) {
            throw new IllegalStateException("the broker starts before the test class's first test");
        }
        return broker;
    }

    /** The broker's (first) listener. */
    public int port() {
        return broker().port();
    }

    /**
     * Loads an appender the way the node does ({@link KaaNode#load(String, byte[])} with the raw Avro config made
     * from these overrides), failing the test if init throws; it is closed after the test.
     */
    public LogAppender load(String name, Map<String, Object> overrides) {
        return closeAfterTest(assertDoesNotThrow(() -> KaaNode.load(name, KaaNode.config(overrides)),
                "init of " + name));
    }

    /** Loads an appender from a stored appender record ({@link KaaNode#load(LogAppenderDto)}); closed after the test. */
    public LogAppender load(LogAppenderDto dto) {
        return closeAfterTest(assertDoesNotThrow(() -> KaaNode.load(dto), "init of " + dto.getName()));
    }

    /** Closes this appender after the test, with those loaded here. */
    public LogAppender closeAfterTest(LogAppender appender) {
        appenders.add(appender);
        return appender;
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        Mosquitto b = factory.get();
        broker = b;
        b.start();
    }

    @Override
    public void afterEach(ExtensionContext context) {
        closeAppenders();
    }

    /**
     * Closes every appender loaded so far (what happens after each test), for a test that must close them before
     * something else it owns, such as a broker of its own.
     */
    public void closeAppenders() {
        List<String> errors = new ArrayList<>();
        for (LogAppender a : appenders) {
            try {
                a.close();
            } catch (RuntimeException e) {
                System.err.println("close() threw: " + e);
                errors.add(String.valueOf(e));
            }
        }
        appenders.clear();
        if (closeErrorsFail && !errors.isEmpty()) {
            fail("close() threw: " + errors);
        }
    }

    @Override
    public void afterAll(ExtensionContext context) {
        Mosquitto b = broker;
        broker = null;
        if (b != null) {
            b.close();
        }
    }
}

package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.kaaproject.kaa.server.common.log.shared.appender.LogAppender;
import org.kaaproject.kaa.server.common.log.shared.appender.LogDeliveryCallback;
import org.kaaproject.kaa.server.common.log.shared.appender.data.BaseLogEventPack;

/**
 * A LogDeliveryCallback that records every call (which method, on which thread, when), in order, so tests can
 * check that each pack got exactly one answer, which one, from which thread, and whether it came before or after
 * doAppend returned.
 */
public final class RecordingCallback implements LogDeliveryCallback {

    public static final String SUCCESS = "onSuccess";
    public static final String INTERNAL_ERROR = "onInternalError";
    public static final String CONNECTION_ERROR = "onConnectionError";
    public static final String REMOTE_ERROR = "onRemoteError";

    /** One call of a callback method. */
    public static final class Call {
        public final String method;
        public final Thread thread;
        public final long nanoTime;
        /** Whether the test had already seen doAppend return when this call happened. */
        public final boolean afterAppendReturned;

        Call(String method, Thread thread, long nanoTime, boolean afterAppendReturned) {
            this.method = method;
            this.thread = thread;
            this.nanoTime = nanoTime;
            this.afterAppendReturned = afterAppendReturned;
        }

        @Override
        public String toString() {
            return method + " on thread '" + thread.getName() + "'"
                    + (afterAppendReturned ? "" : " (before doAppend returned)");
        }
    }

    private final String label;
    private final List<Call> calls = new ArrayList<>();
    private final CountDownLatch first = new CountDownLatch(1);
    private volatile Thread appendThread;
    private volatile long appendStartNanos;
    private volatile long appendReturnNanos;
    private volatile boolean appendReturned;

    public RecordingCallback(String label) {
        this.label = label;
    }

    public RecordingCallback() {
        this("pack");
    }

    /**
     * doAppend the way the log actor does it, with a new callback labelled {@code label}: notes the calling thread
     * and when doAppend returned, and fails the test if doAppend threw.
     */
    public static RecordingCallback append(LogAppender appender, BaseLogEventPack pack, String label) {
        RecordingCallback cb = new RecordingCallback(label);
        cb.appendStarting();
        assertDoesNotThrow(() -> appender.doAppend(pack, cb), label + ": doAppend threw");
        cb.appendReturned();
        return cb;
    }

    public String label() {
        return label;
    }

    /** The test calls this right before doAppend. */
    public void appendStarting() {
        appendThread = Thread.currentThread();
        appendStartNanos = System.nanoTime();
    }

    /** The test calls this right after doAppend returned. */
    public void appendReturned() {
        appendReturnNanos = System.nanoTime();
        appendReturned = true;
    }

    public Thread appendThread() {
        return appendThread;
    }

    public long appendStartNanos() {
        return appendStartNanos;
    }

    /** How long doAppend took, in ms (meaningful once it returned). */
    public double appendMillis() {
        return (appendReturnNanos - appendStartNanos) / 1e6;
    }

    private void record(String method) {
        Call c = new Call(method, Thread.currentThread(), System.nanoTime(), appendReturned);
        synchronized (calls) {
            calls.add(c);
        }
        first.countDown();
    }

    @Override
    public void onSuccess() {
        record(SUCCESS);
    }

    @Override
    public void onInternalError() {
        record(INTERNAL_ERROR);
    }

    @Override
    public void onConnectionError() {
        record(CONNECTION_ERROR);
    }

    @Override
    public void onRemoteError() {
        record(REMOTE_ERROR);
    }

    /** Every call so far, in order. */
    public List<Call> calls() {
        synchronized (calls) {
            return new ArrayList<>(calls);
        }
    }

    /** The first call, or null if none came within the timeout. */
    public Call awaitFirstOrNull(Duration timeout) {
        try {
            if (!first.await(timeout.toNanos(), TimeUnit.NANOSECONDS)) {
                return null;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
        synchronized (calls) {
            return calls.get(0);
        }
    }

    /** The first call; fails the test if none came within the timeout. */
    public Call awaitFirst(Duration timeout) {
        Call c = awaitFirstOrNull(timeout);
        if (c == null) {
            fail(label + ": no callback within " + timeout + " (doAppend "
                    + (appendReturned ? "returned after " + String.format("%.1f", appendMillis()) + " ms"
                            : "has not returned") + ")");
        }
        return c;
    }

    /**
     * What an answer due at a pack's deadline may come after it: the deadline sweep runs every 100 ms, and the answer
     * then waits for the callback thread of a busy 2-core machine, which also runs the broker and the subscriber.
     */
    public static final Duration DEADLINE_SLACK = Duration.ofMillis(1500);

    /** Asserts (now) that the first answer came within {@code deadline} of doAppend's start, plus the slack above. */
    public void assertAnsweredBy(Duration deadline) {
        double took = millisToFirst();
        if (!(took <= deadline.plus(DEADLINE_SLACK).toMillis())) {
            fail(label + ": answered after " + took + " ms, past its deadline of " + deadline.toMillis() + " ms");
        }
    }

    /** Milliseconds from the start of doAppend to the first callback. */
    public double millisToFirst() {
        synchronized (calls) {
            return calls.isEmpty() ? Double.NaN : (calls.get(0).nanoTime - appendStartNanos) / 1e6;
        }
    }

    /**
     * Waits for the first call (at most {@code timeout}), then {@code grace} more, and asserts that there was exactly
     * one call and that it was {@code expectedMethod}. Returns that call.
     */
    public Call assertExactlyOne(String expectedMethod, Duration timeout, Duration grace) {
        Call c = awaitFirst(timeout);
        sleep(grace);
        assertOnlyOne(expectedMethod);
        return c;
    }

    /**
     * Asserts (now, no waiting) that every answer came after doAppend had returned, from the library's callback
     * thread, named as such. No clock is involved: for a pack whose answer cannot be known before something the
     * test controls happens after doAppend (a release of held acks, a close) or before the pack's own deadline,
     * an answer seen before doAppend returned means doAppend waited for the outcome.
     */
    public void assertAnsweredOnlyAfterAppendReturned() {
        if (calls().isEmpty()) {
            fail(label + ": not answered, so nothing shows when");
        }
        for (Call c : calls()) {
            if (!c.afterAppendReturned) {
                fail(label + ": " + c + ": doAppend returned only once the pack had been answered; it must hand the "
                        + "pack off, never wait for the broker");
            }
            if (c.thread == appendThread) {
                fail(label + ": " + c + ": answered on the thread that called doAppend");
            }
            if (!"kaa-mqtt-callbacks".equals(c.thread.getName())) {
                fail(label + ": " + c + ": not on the library's callback thread, or not under its name (thread dumps "
                        + "and log lines show that name)");
            }
        }
    }

    /** Asserts (now, no waiting) that exactly one call happened and that it was {@code expectedMethod}. */
    public void assertOnlyOne(String expectedMethod) {
        List<Call> all = calls();
        if (all.size() != 1) {
            fail(label + ": expected exactly one callback, got " + all.size() + ": " + all);
        }
        if (!all.get(0).method.equals(expectedMethod)) {
            fail(label + ": expected " + expectedMethod + ", got " + all.get(0));
        }
    }

    @Override
    public String toString() {
        return label + " " + calls();
    }

    static void sleep(Duration d) {
        try {
            Thread.sleep(d.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}

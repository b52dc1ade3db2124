//! The driver loop itself, under a scripted event loop: cancelled polls, stall notices, panics,
//! refused QoS 2 messages; and the nudges that free acks a broker holds behind Nagle's algorithm.

use super::*;
use crate::reason::Reason;

/// The driver never cancels the poll of an event loop that does not nudge (MQTT 5: its
/// poll may hold a publish taken from rumqttc's channel and not written yet, see
/// `EventLoop::NUDGES`). Before: after each ack, while more were awaited, the idle branch
/// that sends MQTT 3.1.1 its nudges cancelled the poll.
#[test]
fn a_poll_without_nudges_is_never_cancelled_while_acks_are_awaited() {
    let shared = shared();
    let (events, cancelled) = drive_scripted(&shared);
    connect(&shared, &events);
    let (pack, how, messages, rx) = qos1_pack(2);
    lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 100);
    for event in [
        Observed::Written(1),
        Observed::Written(2),
        Observed::Acked {
            pkid: 1,
            refused: None,
        },
    ] {
        events.send(Step::Event(event)).expect("sent");
    }
    // The first ack handled, then time for the idle branch to act.
    wait_until("first ack not handled", || {
        lock(&shared.tracker).outstanding() == 1
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        cancelled.load(Ordering::Relaxed),
        0,
        "polls cancelled while the second ack was awaited"
    );
    events
        .send(Step::Event(Observed::Acked {
            pkid: 2,
            refused: None,
        }))
        .expect("sent");
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    close_scripted(&shared, &events);
}

/// What a poll the close cancelled had queued (rumqttc's MQTT 5 poll queues a publish's event
/// before it writes and flushes it, and a read's acks before it flushes its replies) counts at
/// the close only as far as it is sure when no later poll flushed: an ack among it still
/// confirms its pack, a QoS 0 write among it fails with the close. (Before: the close's next
/// poll returned both, and the QoS 0 record was confirmed though its bytes never left.)
#[test]
fn what_a_cancelled_poll_queued_counts_at_a_close_only_as_far_as_it_is_sure() {
    let shared = shared();
    let (events, _) = drive_scripted(&shared);
    connect(&shared, &events);
    let acked = submit(&shared);
    events
        .send(Step::Event(Observed::Written(1)))
        .expect("sent");
    wait_until("the QoS 1 message not written", || {
        lock(&shared.tracker).awaits_acks()
    });
    let (pack, how, messages, unsent) = pack_of(Qos::AtMostOnce, vec![b"{}".to_vec()]);
    lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 100);
    let (queued, stuck) = mpsc::channel();
    let ack = Observed::Acked {
        pkid: 1,
        refused: None,
    };
    events
        .send(Step::Stuck(vec![ack, Observed::Written(0)], queued))
        .expect("sent");
    stuck
        .recv_timeout(WAIT)
        .expect("the poll waits on its flush");
    // The close cancels that poll, and the broker closes before any poll flushed.
    shared.released.store(true, Ordering::Release);
    shared.shutdown.notify_one();
    events.send(Step::Closed).expect("sent");
    assert_eq!(acked.recv_timeout(WAIT), Ok(Outcome::Delivered));
    assert_eq!(unsent.recv_timeout(WAIT), Ok(Outcome::InternalError));
    let finished = Arc::clone(&shared.finished);
    let ended = runtime().block_on(async { tokio::time::timeout(WAIT, finished.acquire()).await });
    assert!(matches!(ended, Ok(Err(_))), "the driver did not end");
}

/// Events that come together are all handled, in order, whether a turn takes them all or
/// (past `EVENTS_PER_TURN`) the next turns do, and a refusal among them answers its pack as
/// it would alone. Here 300 QoS 0 messages written in one batch, then three QoS 1 messages
/// acknowledged in one read, the second refused.
#[test]
fn events_that_come_together_are_each_handled_once_in_order() {
    let shared = shared();
    let (events, _) = drive_scripted(&shared);
    connect(&shared, &events);
    let (pack, how, messages, written) = pack_of(Qos::AtMostOnce, vec![b"{}".to_vec(); 300]);
    lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 1000);
    let burst = vec![Observed::Written(0); 300];
    events.send(Step::Burst(burst)).expect("sent");
    assert_eq!(written.recv_timeout(WAIT), Ok(Outcome::Delivered));

    let answers: Vec<_> = (0..3)
        .map(|_| {
            let (pack, how, messages, rx) = qos1_pack(1);
            lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 1000);
            rx
        })
        .collect();
    let acked = |pkid, refused| Observed::Acked { pkid, refused };
    let burst = vec![
        Observed::Written(1),
        Observed::Written(2),
        Observed::Written(3),
        acked(1, None),
        acked(2, Some(Reason::NOT_AUTHORIZED)),
        acked(3, None),
    ];
    events.send(Step::Burst(burst)).expect("sent");
    let outcomes: Vec<_> = answers.iter().map(|rx| rx.recv_timeout(WAIT)).collect();
    assert_eq!(
        outcomes,
        [
            Ok(Outcome::Delivered),
            Ok(Outcome::RemoteError),
            Ok(Outcome::Delivered)
        ]
    );
    assert_eq!(lock(&shared.tracker).outstanding(), 0);
    assert!(shared.metrics.connected.load(Ordering::Relaxed));
    close_scripted(&shared, &events);
}

/// A stall notice an ack made stale before the driver looked (the sweep found a message
/// unacknowledged past the delivery timeout, then its ack came) neither drops the
/// connection nor cancels the poll. Before: it cancelled the poll, which with MQTT 5 could
/// lose a publish rumqttc had taken and not written.
#[test]
fn a_stale_stall_notice_leaves_the_poll_alone() {
    let shared = shared();
    let (events, cancelled) = drive_scripted(&shared);
    connect(&shared, &events);
    let (pack, how, messages, rx) = qos1_pack(1);
    lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 100);
    events
        .send(Step::Event(Observed::Written(1)))
        .expect("sent");
    std::thread::sleep(Duration::from_millis(100));
    // As `sweep` leaves it, but with the message within its patience.
    shared.stalled.notify_one();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(cancelled.load(Ordering::Relaxed), 0, "polls cancelled");
    events
        .send(Step::Event(Observed::Acked {
            pkid: 1,
            refused: None,
        }))
        .expect("sent");
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    close_scripted(&shared, &events);
}

/// A window whose messages cross a slow link one after another, acknowledged as they
/// arrive, for longer than their patience all told: the sweep's stall checks meanwhile
/// find the socket taking message after message, and the window is delivered on the one
/// connection. (Before: the last messages of the window, handed to the client at once,
/// were judged by when they were handed over; the connection was reset as stalled, every
/// pack in flight on it answered onConnectionError, and Kaa's retry met the same.)
#[test]
fn a_window_written_for_longer_than_its_patience_is_delivered_without_a_reset() {
    let shared = shared();
    let (events, _) = drive_scripted(&shared);
    connect(&shared, &events);
    let (pack, how, messages, rx) = qos1_pack(12);
    // 1.75 s of slack at each step for a busy machine.
    let how = PublishOptions {
        patience: Some(Duration::from_secs(2)),
        ..how
    };
    lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 100);
    let acked = |pkid| Observed::Acked {
        pkid,
        refused: None,
    };
    // Three seconds of writing, one message each quarter of a second, the broker
    // acknowledging each one as the next goes out.
    for pkid in 1..=12 {
        std::thread::sleep(Duration::from_millis(250));
        // As the appender's sweep does (`Connection::sweep`).
        if lock(&shared.tracker).is_stalled(Instant::now()).is_some() {
            shared.stalled.notify_one();
        }
        for event in [Observed::Written(pkid), acked(pkid - 1)] {
            events.send(Step::Event(event)).expect("sent");
        }
    }
    events.send(Step::Event(acked(12))).expect("sent");
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    assert!(
        shared.metrics.connected.load(Ordering::Relaxed),
        "the connection was dropped as stalled"
    );
    close_scripted(&shared, &events);
}

/// QoS 2 messages refused at PUBREC or PUBCOMP, many times the window of them: the driver
/// hands each refusal to the tracker and has the event loop give its slot back, and the
/// connection stays. (Before: rumqttc kept a slot for each, and at half of the window the
/// driver reconnected, failing every pack in flight with it.) The driver's part only: the
/// scripted event loop counts what it is asked to free; rumqttc's recount is `protocol`'s
/// test, and the whole against Mosquitto
/// `BrokerFeaturesTest.mqtt5RefusedQos2MessagesDoNotStallTheirConnection`.
#[test]
fn refused_qos2_messages_past_the_window_keep_the_connection() {
    let shared = shared();
    let calls = Calls::default();
    let (events, _) = drive_scripted_counting(&shared, 1, "driver-test", calls.clone());
    connect(&shared, &events);
    let first = submit(&shared);
    events
        .send(Step::Event(Observed::Written(1)))
        .expect("sent");
    let refusals = 2..(3 * Window::default().acked as u16);
    for pkid in refusals.clone() {
        let refused = Some(Reason::NOT_AUTHORIZED);
        let event = match pkid % 2 {
            0 => Observed::Received { pkid, refused },
            _ => Observed::Completed { pkid, refused },
        };
        events.send(Step::Event(event)).expect("sent");
    }
    events
        .send(Step::Event(Observed::Acked {
            pkid: 1,
            refused: None,
        }))
        .expect("sent");
    assert_eq!(first.recv_timeout(WAIT), Ok(Outcome::Delivered));
    assert!(shared.metrics.connected.load(Ordering::Relaxed));
    assert_eq!(shared.metrics.reconnects.load(Ordering::Relaxed), 0);
    assert_eq!(
        calls.frees.load(Ordering::Relaxed),
        refusals.len(),
        "a slot per refusal"
    );
    close_scripted(&shared, &events);
}

/// A refused QoS 2 message whose slot the event loop cannot give back: the connection is
/// made anew, and the pack in flight on it fails `onConnectionError` (Kaa sends it again),
/// rather than waiting behind a window that would never move.
#[test]
fn a_refused_slot_that_cannot_be_freed_makes_the_connection_anew() {
    let shared = shared();
    let calls = Calls {
        freeing_fails: true,
        ..Calls::default()
    };
    let (events, _) = drive_scripted_counting(&shared, 1, "driver-test", calls.clone());
    connect(&shared, &events);
    let first = submit(&shared);
    events
        .send(Step::Event(Observed::Written(1)))
        .expect("sent");
    events
        .send(Step::Event(Observed::Received {
            pkid: 2,
            refused: Some(Reason::NOT_AUTHORIZED),
        }))
        .expect("sent");
    assert_eq!(first.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
    assert_eq!(calls.frees.load(Ordering::Relaxed), 1);
    connect(&shared, &events);
    assert_eq!(shared.metrics.reconnects.load(Ordering::Relaxed), 1);
    close_scripted(&shared, &events);
}

/// A panic in the event loop's poll: the pack in flight is answered `onConnectionError`,
/// the driver connects anew and the next pack is delivered. (Before: the panic ended the
/// driver's task, the pack waited for ever and the connection was dead.)
#[test]
fn a_panic_in_the_event_loop_fails_packs_in_flight_and_the_connection_goes_on() {
    crate::test_log::capture();
    // A window of one: the recovery frees what the lost message took of it.
    let shared = Arc::new(Shared {
        label: "scripted:1 as 'panicking-loop'".into(),
        max_inflight: Some(1),
        ..bare_shared()
    });
    let (events, _) = drive_scripted(&shared);
    connect(&shared, &events);
    let first = submit(&shared);
    events
        .send(Step::Event(Observed::Written(1)))
        .expect("sent");
    events.send(Step::Panic).expect("sent");
    assert_eq!(first.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
    assert!(!shared.metrics.connected.load(Ordering::Relaxed));
    assert_eq!(lock(&shared.tracker).outstanding(), 0);
    // The one sign of why those packs failed.
    let said = crate::test_log::lines_with("as 'panicking-loop'");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with(
            "ERROR panic in the event loop of the connection to scripted:1 as 'panicking-loop': \
             injected: the event loop panics"
        ) && said[0].contains("(onConnectionError) and it connects anew"),
        "{said:?}"
    );

    connect(&shared, &events);
    let second = submit(&shared);
    events
        .send(Step::Event(Observed::Written(1)))
        .expect("sent");
    events
        .send(Step::Event(Observed::Acked {
            pkid: 1,
            refused: None,
        }))
        .expect("sent");
    assert_eq!(second.recv_timeout(WAIT), Ok(Outcome::Delivered));

    // Closing still works after a recovery.
    close_scripted(&shared, &events);
}

/// A message the broker sent on a session the appender never made (another client's
/// subscription, kept by the broker under this id) makes the next connection start clean,
/// also when a panic ends this one. (Before: after a panic the next CONNECT asked to resume
/// the session, the broker rightly said one was present, and the driver dropped that
/// connection as the broker's fault.)
#[test]
fn after_a_panic_a_session_with_foreign_messages_starts_clean() {
    let shared = Arc::new(Shared {
        clean_session: false,
        ..bare_shared()
    });
    let calls = Calls::default();
    let (events, _) = drive_scripted_counting(&shared, 1, "driver-test", calls.clone());
    connect(&shared, &events);
    events
        .send(Step::Event(Observed::Unasked {
            topic: "elsewhere".into(),
        }))
        .expect("sent");
    events.send(Step::Panic).expect("sent");
    wait_until("the next connection does not start clean", || {
        calls.cleans.load(Ordering::Relaxed) == 1
    });
    close_scripted(&shared, &events);
}

/// With cleanSession off, a connection whose broker kept the session says so at INFO (messages
/// it queued for the node's earlier connection may come); one that starts anew says only that
/// it connected.
#[test]
fn a_resumed_session_is_said_at_connect() {
    crate::test_log::capture();
    let shared = Arc::new(Shared {
        clean_session: false,
        ..bare_shared()
    });
    let (events, _) = drive_scripted_over(&shared, 1, "resumes-its-session");
    for session_present in [true, false] {
        events
            .send(Step::Event(Observed::Connected {
                receive_maximum: None,
                session_present,
                grants: Grants::default(),
            }))
            .expect("driver alive");
        wait_until("the driver did not connect", || {
            shared.metrics.connected.load(Ordering::Relaxed)
        });
        events.send(Step::Closed).expect("driver alive");
        disconnected(&shared, "the close was not taken");
    }
    let said: Vec<String> = crate::test_log::lines_with("as 'resumes-its-session'")
        .into_iter()
        .filter(|l| l.contains("connected to"))
        .collect();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[0].starts_with("INFO connected to "), "{said:?}");
    assert!(said[0].ends_with("as 'resumes-its-session', resuming its session"));
    assert!(said[1].ends_with("as 'resumes-its-session'"), "{said:?}");
    close_scripted(&shared, &events);
}

/// Every broker refusing the connection, the packs parked for it are answered `onRemoteError`
/// with the tracker free: freeing a full queue of them (hundreds of MiB) under its lock held
/// every `doAppend` on the connection meanwhile.
#[test]
fn packs_refused_with_the_connection_are_answered_with_the_tracker_free() {
    let shared = shared();
    let (tx, rx) = mpsc::channel();
    let weak = Arc::downgrade(&shared);
    let pack = Pack::new(
        1,
        Box::new(move |outcome| {
            let free = weak.upgrade().map(|s| s.tracker.try_lock().is_ok());
            let _ = tx.send((outcome, free));
        }),
    );
    let (_, how, messages, _) = qos1_pack(1);
    lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 100);
    drop(pack);
    let (events, _) = drive_scripted(&shared);
    events.send(Step::Refused).expect("driver alive");
    assert_eq!(
        rx.recv_timeout(WAIT),
        Ok((Outcome::RemoteError, Some(true)))
    );
    wait_until("the refused pack's message was kept", || {
        lock(&shared.tracker).held_bytes() == 0
    });
    close_scripted(&shared, &events);
}

/// A pack whose message the broker refuses ("not authorised"), answered `onRemoteError`:
/// the connection then refuses its topic.
fn refuse_a_topic(shared: &Shared, events: &UnboundedSender<Step>) {
    let refused = submit(shared);
    events
        .send(Step::Event(Observed::Written(1)))
        .expect("sent");
    events
        .send(Step::Event(Observed::Acked {
            pkid: 1,
            refused: Some(Reason::NOT_AUTHORIZED),
        }))
        .expect("sent");
    assert_eq!(refused.recv_timeout(WAIT), Ok(Outcome::RemoteError));
}

/// A panic on a failover broker: the driver goes back to the first broker, and what the
/// failover broker taught (a topic it refused) does not hold there. (Before: packs to that
/// topic failed `onRemoteError` on the first broker for minutes.)
#[test]
fn a_panic_on_a_failover_broker_forgets_what_it_taught() {
    crate::test_log::capture();
    let shared = shared();
    let (events, _) = drive_scripted_over(&shared, 2, "panic-failover");
    events.send(Step::Broken("unreachable")).expect("sent");
    connect(&shared, &events);
    refuse_a_topic(&shared, &events);
    let again = submit(&shared);
    assert_eq!(
        again.recv_timeout(WAIT),
        Ok(Outcome::RemoteError),
        "refused there at submit"
    );

    events.send(Step::Panic).expect("sent");
    disconnected(&shared, "the driver did not take the panic");
    connect(&shared, &events);
    let connected = crate::test_log::lines_with("connected to scripted:");
    let last = connected
        .iter()
        .rev()
        .find(|l| l.contains("as 'panic-failover'"));
    assert!(
        last.is_some_and(|l| l.contains("scripted:1 ")),
        "not back on the first broker: {connected:#?}"
    );
    let first_broker = submit(&shared);
    assert_eq!(
        first_broker.try_recv(),
        Err(mpsc::TryRecvError::Empty),
        "not refused on the first broker"
    );
    close_scripted(&shared, &events);
}

/// While the first broker is down, what the failover broker taught (a topic it refused) holds
/// at each return to it; once the first broker accepts the connection, it does not. (Before:
/// every close on the failover broker sent the driver back to the first and forgot it, so
/// each pack to a refused topic cost the shared connection a close, for as long as the first
/// broker was down.)
#[test]
fn what_a_failover_broker_taught_holds_while_the_first_is_down() {
    let shared = shared();
    let calls = Calls::default();
    let (events, _) = drive_scripted_counting(&shared, 2, "failover-taught", calls.clone());
    let refused_on_failover = |events: &UnboundedSender<Step>| {
        events.send(Step::Broken("unreachable")).expect("sent");
        connect(&shared, events);
    };
    refused_on_failover(&events);
    refuse_a_topic(&shared, &events);

    // The failover broker closes the connection; the first is still down. A pack that comes
    // while the first is tried is judged by what the first taught (nothing), and again by
    // the failover broker's lessons on the way back to it.
    events.send(Step::Closed).expect("sent");
    wait_until("the driver did not go back to the first broker", || {
        calls.switches.load(Ordering::Relaxed) == 2
    });
    let meanwhile = submit(&shared);
    refused_on_failover(&events);
    assert_eq!(
        meanwhile.recv_timeout(WAIT),
        Ok(Outcome::RemoteError),
        "refused on the way back to the failover broker, unpublished"
    );
    assert_eq!(
        submit(&shared).recv_timeout(WAIT),
        Ok(Outcome::RemoteError),
        "still refused on the failover broker, unpublished"
    );

    // The first broker is back.
    events.send(Step::Closed).expect("sent");
    disconnected(&shared, "the driver did not take the second close");
    connect(&shared, &events);
    assert_eq!(
        submit(&shared).try_recv(),
        Err(mpsc::TryRecvError::Empty),
        "not refused on the first broker"
    );
    close_scripted(&shared, &events);
}

/// `maxInflight` above a broker's receive maximum is said once per broker and value: not at
/// every reconnect (nor at each turn of a balancer's nodes announcing different ones), and
/// not only at the first broker's, where a failover broker allowing fewer went unsaid
/// (before, only the first connection ever made was looked at).
#[test]
fn a_receive_maximum_below_max_inflight_is_said_once_per_broker() {
    crate::test_log::capture();
    let shared = Arc::new(Shared {
        max_inflight: Some(100),
        ..bare_shared()
    });
    let (events, _) = drive_scripted_over(&shared, 2, "narrowed-test");
    let connect_under = |receive_maximum| {
        events
            .send(Step::Event(Observed::Connected {
                receive_maximum: Some(receive_maximum),
                session_present: false,
                grants: Grants::default(),
            }))
            .expect("driver alive");
        wait_until("the driver did not connect", || {
            shared.metrics.connected.load(Ordering::Relaxed)
        });
    };
    let warned = |broker: &str| {
        crate::test_log::lines_with(&format!("{broker} as 'narrowed-test': maxInflight is 100"))
            .iter()
            .filter(|l| l.starts_with("WARN"))
            .count()
    };
    connect_under(50);
    // Lost (not closed by the broker: soon after a connect, a takeover), and back at the
    // first broker, which allows 50 again.
    events.send(Step::Broken("reset")).expect("sent");
    disconnected(&shared, "the driver did not take the close");
    connect_under(50);
    assert_eq!(warned("scripted:1"), 1, "said again at a reconnect");
    // Lost, the first broker gone: the failover broker allows 20.
    events.send(Step::Broken("reset")).expect("sent");
    disconnected(&shared, "the driver did not take the close");
    events.send(Step::Broken("unreachable")).expect("sent");
    connect_under(20);
    crate::test_log::await_line(
        "scripted:2 as 'narrowed-test': maxInflight is 100",
        |l| l.starts_with("WARN") && l.ends_with("20 messages in flight at most"),
        WAIT,
    );
    assert_eq!(warned("scripted:1"), 1);
    // Back at the first broker, whose nodes (behind a balancer) take turns: 40, then 50
    // again, said of once each.
    for allowed in [40, 50, 40] {
        events.send(Step::Broken("reset")).expect("sent");
        disconnected(&shared, "the driver did not take the loss");
        connect_under(allowed);
    }
    assert_eq!(warned("scripted:1"), 2, "40 once, 50 not again");
    close_scripted(&shared, &events);
}

/// A panic that comes back at every turn is retried with pauses that double, as a failing
/// connection is, not every 50-100 ms with an ERROR line each. Five panics in a row keep the
/// driver from the next step for the five pauses: at least 50 + 100 + 200 + 400 + 800 ms
/// (`jitter` takes at most half of each). Without the doubling they take 500 ms at most. A
/// lower bound only: a slow machine makes the wait longer, never shorter.
#[test]
fn a_panic_that_recurs_is_retried_with_growing_pauses() {
    let shared = shared();
    let (events, _) = drive_scripted(&shared);
    connect(&shared, &events);
    let start = Instant::now();
    for _ in 0..5 {
        events.send(Step::Panic).expect("sent");
    }
    disconnected(&shared, "the driver did not take the first panic");
    // Read after the fifth panic's pause.
    connect(&shared, &events);
    let waited = start.elapsed();
    let least: Duration = (0..5).map(|k| BACKOFF_MIN * (1 << k) / 2).sum();
    assert!(
        waited >= least,
        "five panics in a row paused {waited:?}, less than {least:?}: the pauses do not grow"
    );
    close_scripted(&shared, &events);
}

/// A broker that, as Mosquitto behind Nagle's algorithm does, sends the first ack of a
/// burst at once and holds the others until the client sends it something: here, until a
/// PINGREQ. With keep-alive at 60 s nothing else would come within the wait.
fn nagle_broker(listener: std::net::TcpListener) {
    use std::io::Write;
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut writer = s.try_clone().expect("clone");
    let mut packet = || read_packet(&mut s);
    let (connect, _) = packet().expect("CONNECT");
    assert_eq!(connect, 0x10);
    writer
        .write_all(&[0x20, 0x02, 0x00, 0x00])
        .expect("CONNACK");
    let mut out = Vec::new();
    let mut first = true;
    let mut held = Vec::new();
    while let Some((kind, body)) = packet() {
        match kind >> 4 {
            3 => {
                held.extend_from_slice(&puback_for(&body));
                if std::mem::take(&mut first) {
                    out.append(&mut held);
                }
            }
            12 => {
                out.append(&mut held);
                out.extend_from_slice(&[0xd0, 0x00]);
            }
            _ => {}
        }
        writer.write_all(&out).expect("write");
        out.clear();
    }
}

#[test]
fn acks_a_broker_holds_back_behind_nagle_come_without_waiting_for_keep_alive() {
    let (port, broker_thread) = scripted_broker(nagle_broker);
    let connection = Connection::get(&scripted(port, "nudge-test")).expect("opened");
    let (pack, how, messages, rx) = qos1_pack(5);
    connection.submit(&pack, how, messages, 100);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    drop(connection);
    broker_thread
        .join()
        .expect("the scripted broker ends when the client leaves");
}

/// No ping while packets cross the connection: only once none has for `QUIET`. A broker that
/// answers pings but acks nothing gets ten, the first three a quiet moment apart, then with
/// doubling gaps. Time is given, not waited for.
#[test]
fn a_broker_that_acks_nothing_gets_few_nudges() {
    let _runtime = runtime().enter();
    let t0 = tokio::time::Instant::now();
    let mut nudge = Nudge::new();
    let ack = |pkid| Observed::Acked {
        pkid,
        refused: None,
    };
    nudge.on_event(&ack(1), t0);
    assert!(
        !nudge.due(t0),
        "not at once after an ack: more may be coming"
    );
    assert!(nudge.armed, "the timer asks again");
    // Each ping answered at once by a PINGRESP: how long after the last packet the next goes.
    let mut at = t0;
    let mut intervals = Vec::new();
    while nudge.wanted {
        let from = at;
        let step = (1..=1000)
            .find(|&step| nudge.due(from + Duration::from_micros(100 * step)))
            .expect("a ping within 100 ms");
        at = from + Duration::from_micros(100 * step);
        intervals.push((at - from).as_micros());
        nudge.on_event(&Observed::Pong, at);
    }
    assert_eq!(
        intervals,
        [500, 500, 500, 500, 1000, 2000, 4000, 8000, 16000, 32000],
        "µs between packet and ping"
    );
    nudge.on_event(&ack(2), at);
    assert!(nudge.wanted, "an ack wants one again");
    assert!(!nudge.due(at + QUIET / 2), "not within QUIET");
    assert!(nudge.due(at + QUIET), "once it is quiet");
}

/// A write leaves out what packs answered meanwhile (here at a deadline) left waiting for
/// it: MQTT 3.1.1's client keeps what it is handed until the driver writes it, and a write
/// waiting on a slow broker holds it past its pack's deadline, out of the sweep's reach.
/// Kaa sends such packs again.
#[test]
fn a_write_leaves_out_the_messages_of_packs_answered_meanwhile() {
    let mut shared = bare_shared();
    let (client, ..) =
        crate::protocol::open(&scripted(1, "ready-test"), "ready-test", "ready-test");
    shared.client = Mutex::new(client);
    let submit_qos0 = |payloads: &[&[u8]]| {
        let (pack, how, messages, rx) = pack_of(
            Qos::AtMostOnce,
            payloads.iter().map(|p| p.to_vec()).collect(),
        );
        lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 100);
        (pack, rx)
    };
    lock(&shared.tracker).on_connected(&mut **lock(&shared.client), Window::default());
    let (late, late_rx) = submit_qos0(&[b"late-1", b"late-2"]);
    let (_next, next_rx) = submit_qos0(&[b"next"]);
    late.finish(Why::Expired);

    // The scripted event loop writes nothing: what it was offered is put back.
    let (_steps, rx) = unbounded_channel();
    let mut eventloop = Scripted(
        rx,
        Arc::new(AtomicUsize::new(0)),
        VecDeque::new(),
        Calls::default(),
    );
    runtime().block_on(write_ready(&shared, &mut eventloop, false));
    let offered: Vec<_> = lock(&shared.client)
        .take_ready()
        .into_iter()
        .map(|(m, _, _)| m.payload)
        .collect();
    assert_eq!(offered, vec![b"next".to_vec()]);
    assert_eq!(
        late_rx.try_iter().collect::<Vec<_>>(),
        [Outcome::ConnectionError]
    );
    assert_eq!(next_rx.try_iter().count(), 0);
}

/// What one connection carried, and what the broker refused on it, says nothing of how the
/// next one ends: a close of the next one at once, without a word and before any publish, is
/// taken for another client taking the id. (Both are forgotten at each CONNACK.)
#[test]
fn a_refusal_on_an_earlier_connection_hides_no_takeover() {
    let shared = shared();
    let (events, _) = drive_scripted(&shared);
    connect(&shared, &events);
    let refused = submit(&shared);
    for event in [
        Observed::Written(1),
        Observed::Acked {
            pkid: 1,
            refused: Some(Reason::QUOTA_EXCEEDED),
        },
    ] {
        events.send(Step::Event(event)).expect("sent");
    }
    assert_eq!(refused.recv_timeout(WAIT), Ok(Outcome::RemoteError));
    events.send(Step::Broken("reset by peer")).expect("sent");
    wait_until("the loss not seen", || {
        !shared.metrics.connected.load(Ordering::Relaxed)
    });
    connect(&shared, &events);
    events.send(Step::Closed).expect("sent");
    wait_until("the close at once not taken for a takeover", || {
        shared.metrics.takeovers.load(Ordering::Relaxed) == 1
    });
    close_scripted(&shared, &events);
}

/// A close that follows a refusal on the same connection is the broker's answer to what it
/// refused (HiveMQ closes so): it is blamed on no other message, though one far larger than
/// any the broker took was left unacknowledged by it, at each of two closes.
#[test]
fn a_close_after_a_refusal_is_blamed_on_nothing_else() {
    crate::test_log::capture();
    let shared = shared();
    let (events, _) = drive_scripted_over(&shared, 1, "refused-then-closed");
    for round in 0..2u16 {
        connect(&shared, &events);
        let small = submit(&shared);
        let pkid = round * 3;
        events
            .send(Step::Event(Observed::Written(pkid + 1)))
            .expect("sent");
        events
            .send(Step::Event(Observed::Acked {
                pkid: pkid + 1,
                refused: None,
            }))
            .expect("sent");
        assert_eq!(small.recv_timeout(WAIT), Ok(Outcome::Delivered));
        let refused = submit(&shared);
        let (large, how, messages, large_answer) =
            pack_of(Qos::AtLeastOnce, vec![vec![b'x'; 100_000]]);
        lock(&shared.tracker).submit(&mut **lock(&shared.client), &large, how, messages, 100);
        for event in [
            Observed::Written(pkid + 2),
            Observed::Written(pkid + 3),
            Observed::Acked {
                pkid: pkid + 2,
                refused: Some(Reason::QUOTA_EXCEEDED),
            },
        ] {
            events.send(Step::Event(event)).expect("sent");
        }
        assert_eq!(refused.recv_timeout(WAIT), Ok(Outcome::RemoteError));
        events.send(Step::Closed).expect("sent");
        assert_eq!(
            large_answer.recv_timeout(WAIT),
            Ok(Outcome::ConnectionError)
        );
        disconnected(&shared, "the close not seen");
    }
    // Nothing learned of sizes: a message as large still goes out.
    connect(&shared, &events);
    // Both closes were logged before this connect (at DEBUG the second, as the first's repeat).
    let said = crate::test_log::lines_with("as 'refused-then-closed' lost");
    assert_eq!(said.len(), 2, "{said:#?}");
    assert!(said.iter().all(|l| !l.contains("unconfirmed")), "{said:#?}");
    let (large, how, messages, large_answer) = pack_of(Qos::AtLeastOnce, vec![vec![b'x'; 100_000]]);
    lock(&shared.tracker).submit(&mut **lock(&shared.client), &large, how, messages, 100);
    assert_eq!(large_answer.try_recv(), Err(mpsc::TryRecvError::Empty));
    close_scripted(&shared, &events);
}

//! The liveness status: its close, a status topic other connections or nodes share, and one
//! the broker refuses.

use super::*;

/// An MQTT 3.1.1 broker that acks the status "online" at once and the status "offline"
/// after `offline_ack` (`None`: never), and reports what it reads, when it acks "offline",
/// and the end of the connection: "offline", "PUBACK", "DISCONNECT", "other", "EOF". Other
/// publishes (records) it leaves unacknowledged, but the first of them once it has read
/// `records` of them: that ack comes 300 ms after it reports "records".
fn status_broker_v4(
    listener: std::net::TcpListener,
    (offline_ack, records): (Option<Duration>, usize),
    seen: mpsc::Sender<&'static str>,
) {
    use std::io::Write;
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    read_packet(&mut s).expect("CONNECT");
    s.write_all(&[0x20, 0x02, 0x00, 0x00]).expect("CONNACK");
    let name = |kind: u8| match kind >> 4 {
        3 => "PUBLISH",
        14 => "DISCONNECT",
        _ => "other",
    };
    let mut first_record = None;
    let mut read = 0;
    while let Some((kind, body)) = read_packet(&mut s) {
        if kind >> 4 != 3 {
            let _ = seen.send(name(kind));
            continue;
        }
        // Topic, packet id, payload.
        let topic = usize::from(u16::from_be_bytes([body[0], body[1]]));
        if body[4 + topic..] == *b"online" {
            s.write_all(&puback_for(&body)).expect("PUBACK");
            continue;
        }
        if body[4 + topic..] != *b"offline" {
            read += 1;
            let first = first_record.get_or_insert(body);
            if read == records {
                let _ = seen.send("records");
                std::thread::sleep(Duration::from_millis(300));
                s.write_all(&puback_for(first)).expect("PUBACK");
            }
            continue;
        }
        let _ = seen.send("offline");
        let Some(after) = offline_ack else {
            continue;
        };
        // What comes before the ack: nothing, when the client waits for it.
        s.set_read_timeout(Some(after)).expect("timeout");
        if let Some((kind, _)) = read_packet(&mut s) {
            let _ = seen.send(name(kind));
        }
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        if s.write_all(&puback_for(&body)).is_ok() {
            let _ = seen.send("PUBACK");
        }
    }
    let _ = seen.send("EOF");
}

/// Opens a connection with a status topic to a [`status_broker_v4`], closes it once
/// "online" is there, and returns what the broker saw after it, to the end.
fn close_with_status(client_id: &str, offline_ack: Option<Duration>) -> Vec<&'static str> {
    close_with_status_after(client_id, offline_ack, 0)
}

/// [`close_with_status`], with a window of 8 that a pack of `records` QoS 1 records takes
/// first; the close comes once the broker has read them, before it acks the first one.
fn close_with_status_after(
    client_id: &str,
    offline_ack: Option<Duration>,
    records: usize,
) -> Vec<&'static str> {
    crate::test_log::capture();
    let (tx, seen) = mpsc::channel();
    let (port, broker) = scripted_broker(move |l| status_broker_v4(l, (offline_ack, records), tx));
    let connection = Connection::get(&BrokerConfig {
        status_topic: Some(format!("kaa/status/{client_id}")),
        max_inflight: Some(8),
        ..scripted(port, client_id)
    })
    .expect("opened");
    let deadline = Instant::now() + WAIT;
    while !connection.metrics().connected.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "not connected");
        std::thread::sleep(Duration::from_millis(5));
    }
    // "online" acknowledged: nothing outstanding.
    while connection.outstanding() > 0 {
        assert!(Instant::now() < deadline, "'online' not acknowledged");
        std::thread::sleep(Duration::from_millis(5));
    }
    let _answer = (records > 0).then(|| {
        let (pack, how, messages, rx) = qos1_pack(records);
        connection.submit(&pack, how, messages, 100);
        assert_eq!(seen.recv_timeout(WAIT), Ok("records"));
        rx
    });
    drop(connection);
    let mut after = Vec::new();
    while after.last() != Some(&"EOF") {
        after.push(seen.recv_timeout(WAIT).expect("the broker's report"));
    }
    broker.join().expect("the scripted broker");
    after
}

/// The close waits for the broker's PUBACK of the status "offline" before its DISCONNECT,
/// so the status the broker took is confirmed, and nothing is logged at WARN. (Before:
/// DISCONNECT went out at once, the driver stopped at it before reading the PUBACK, and
/// every close logged "status 'offline' not confirmed ... onInternalError".)
#[test]
fn the_offline_status_is_acknowledged_before_the_disconnect() {
    let after = close_with_status("status-close-acked", Some(Duration::from_millis(300)));
    assert_eq!(after, ["offline", "PUBACK", "DISCONNECT", "EOF"]);
    let warned: Vec<_> = crate::test_log::lines_with("'status-close-acked'")
        .into_iter()
        .filter(|l| l.starts_with("WARN"))
        .collect();
    assert!(warned.is_empty(), "{warned:?}");
}

/// A close with the window full: the status goes out at the first ack, not once a quarter of
/// the window is free as records do while the connection runs. (Held so, it waited past
/// the close's grace, for acks a broker had no reason to send.)
#[test]
fn the_offline_status_of_a_full_window_goes_at_the_first_ack() {
    let after = close_with_status_after(
        "status-close-full-window",
        Some(Duration::from_millis(1)),
        8,
    );
    assert_eq!(after, ["offline", "PUBACK", "DISCONNECT", "EOF"]);
}

/// A broker that does not acknowledge "offline" within the grace: the connection is left
/// without DISCONNECT, so that its will says "offline", and one WARN says so (not a second
/// one for the status's pack failing at the driver's end).
#[test]
fn an_offline_status_left_unacknowledged_leaves_the_last_will_and_says_so() {
    let after = close_with_status("status-close-unacked", None);
    assert_eq!(after, ["offline", "EOF"], "no DISCONNECT");
    let warned: Vec<_> = crate::test_log::lines_with("'status-close-unacked'")
        .into_iter()
        .filter(|l| l.starts_with("WARN"))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].contains("status 'offline' not confirmed by")
            && warned[0].contains("within 2 s of closing")
            && warned[0].contains("last will ('offline')"),
        "{warned:?}"
    );
}

/// Two live connections of one process publishing one status topic at one broker: the
/// second one's open says so, naming the first. Not one with another status topic, nor
/// one to another broker, nor an appender sharing the connection itself.
#[test]
fn a_status_topic_another_connection_carries_is_warned_about() {
    crate::test_log::capture();
    // Held, never accepted: the connections wait for their CONNACK meanwhile.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("port").port();
    let with_status = |id: &str, topic: &str| BrokerConfig {
        status_topic: Some(topic.into()),
        ..scripted(port, id)
    };
    let warned = |id: &str| {
        crate::test_log::lines_with(&format!("as '{id}': statusTopic"))
            .into_iter()
            .filter(|l| l.starts_with("WARN"))
            .collect::<Vec<_>>()
    };
    let first =
        Connection::get(&with_status("status-carrier-a", "kaa/status/shared")).expect("opened");
    let same =
        Connection::get(&with_status("status-carrier-a", "kaa/status/shared")).expect("opened");
    assert!(warned("status-carrier-a").is_empty(), "one connection");
    let other_topic =
        Connection::get(&with_status("status-carrier-c", "kaa/status/own")).expect("opened");
    assert!(warned("status-carrier-c").is_empty());
    let second =
        Connection::get(&with_status("status-carrier-b", "kaa/status/shared")).expect("opened");
    let lines = warned("status-carrier-b");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("statusTopic 'kaa/status/shared' is also carried by")
            && lines[0].contains("as 'status-carrier-a'")
            && lines[0].contains("a part of its own"),
        "{lines:?}"
    );
    // Another listener of the same broker (its TLS port, say) shares its topics.
    let tls = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let at_tls = Connection::get(&BrokerConfig {
        port: tls.local_addr().expect("port").port(),
        ..with_status("status-carrier-d", "kaa/status/shared")
    })
    .expect("opened");
    let lines = warned("status-carrier-d");
    assert_eq!(lines.len(), 1, "another port: {lines:?}");
    drop((first, same, other_topic, second, at_tls, listener, tls));
}

/// A takeover moves the client id with a clean session; a status topic named by nothing
/// the client id is not (the other client, a node resolving the client id the same,
/// resolves it the same) is said to be shared with it, at WARN. One with a part of its own
/// is not.
#[test]
fn a_takeover_says_the_status_topic_is_shared_when_the_id_was() {
    crate::test_log::capture();
    let warned = |id: &str, follows: bool| {
        let shared = Shared {
            identity: ("status-follows".into(), 1, id.into()),
            status_topic: Some(format!("kaa/status/{id}").into()),
            status_follows_id: follows,
            ..bare_shared()
        };
        let label = format!("status-follows:1 as '{id}'");
        let moved =
            taken_over_by_another(&shared, (&label, true), id, ("closed", true), WAIT, false);
        assert!(moved.is_some_and(|m| m.starts_with(&format!("{id}-"))));
        crate::test_log::lines_with(&format!("as '{id}': statusTopic"))
            .into_iter()
            .filter(|l| l.starts_with("WARN"))
            .collect::<Vec<_>>()
    };
    let lines = warned("status-follows-id", true);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("statusTopic 'kaa/status/status-follows-id'")
            && lines[0].contains("shares it")
            && lines[0].contains("{random}"),
        "{lines:?}"
    );
    assert!(warned("status-own-part", false).is_empty());
}

/// MQTT 5, a broker whose ACL allows the records' topics but not the status topic refuses
/// "online" (reason 0x87, as Mosquitto does): one WARN names the status topic, the broker's
/// reason and what to change, and the records go on, on the same connection. The "offline"
/// of the close is then not sent, and says so.
#[test]
fn a_status_topic_the_broker_refuses_is_said_and_the_records_go_on() {
    use std::io::Write;
    crate::test_log::capture();
    let (port, _) = scripted_broker(|listener| {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let Some((0x10, _)) = read_packet(&mut s) else {
            return;
        };
        s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00])
            .expect("CONNACK");
        while let Some((kind, body)) = read_packet(&mut s) {
            if kind >> 4 != 3 {
                continue;
            }
            let topic = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let pkid = [body[2 + topic], body[3 + topic]];
            // PUBACK, "not authorized" for the status topic.
            let ack: &[u8] = if body[2..2 + topic].starts_with(b"denied/") {
                &[0x40, 0x03, pkid[0], pkid[1], 0x87]
            } else {
                &[0x40, 0x02, pkid[0], pkid[1]]
            };
            if s.write_all(ack).is_err() {
                return;
            }
        }
    });
    let connection = Connection::get(&BrokerConfig {
        version: crate::config::MqttVersion::V5,
        status_topic: Some("denied/status".into()),
        ..scripted(port, "status-refused")
    })
    .expect("opened");
    let said = crate::test_log::await_line(
        "as 'status-refused'",
        |l| l.contains("status message"),
        WAIT,
    );
    let delivered = submit_one(&connection);
    assert_eq!(delivered.recv_timeout(WAIT), Ok(Outcome::Delivered));
    let warned: Vec<String> = crate::test_log::lines_with("as 'status-refused'")
        .into_iter()
        .filter(|l| l.starts_with("WARN"))
        .collect();
    drop(connection);
    // Refused lately, the "offline" of the close is not sent, and the line says why.
    let offline =
        crate::test_log::await_line("as 'status-refused'", |l| l.contains("is not sent"), WAIT);
    assert!(
        offline.ends_with(
            "as 'status-refused': the status message on statusTopic 'denied/status' is not \
             sent: the broker refused it (reason 0x87, not authorized) within the last 300 s; allow it in the \
             broker's ACL, or remove statusTopic"
        ),
        "{offline}"
    );
    assert!(said.starts_with("WARN 127.0.0.1:"), "{said}");
    assert!(
        said.ends_with(
            "as 'status-refused': the broker refused the status message on statusTopic \
             'denied/status' (reason 0x87, not authorized): allow it in the broker's ACL, or remove statusTopic"
        ),
        "{said}"
    );
    assert_eq!(warned, [said], "one WARN for it");
}

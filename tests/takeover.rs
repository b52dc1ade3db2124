//! How a connection answers the broker pushing it out for another client with its id, shown
//! with a scripted broker on loopback: Mosquitto 2.0.11 closes such a connection without a
//! word even with MQTT 5, so only a fake can send the DISCONNECT "session taken over" (0x8E)
//! that MQTT 5 brokers following the specification send. The Java `ClusterTest` shows the
//! same against Mosquitto with real nodes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use kaa_mqtt_appender::config::{BrokerConfig, MqttVersion, Transport};
use kaa_mqtt_appender::connection::Connection;
use kaa_mqtt_appender::status::StatusFormat;

const WAIT: Duration = Duration::from_secs(10);

fn broker_config(port: u16, client_id: &str, version: MqttVersion, clean: bool) -> BrokerConfig {
    BrokerConfig {
        host: "127.0.0.1".into(),
        port,
        client_id: client_id.into(),
        username: None,
        password: None,
        keep_alive: Duration::from_secs(10),
        clean_session: clean,
        connect_timeout: Duration::from_secs(5),
        version,
        failover: Vec::new(),
        status_topic: None,
        status_follows_id: kaa_mqtt_appender::config::Unkeyed(false),
        id_names_host: kaa_mqtt_appender::config::Unkeyed(false),
        tls: None,
        transport: Transport::Tcp,
        proxy: None,
        session_expiry: None,
        status_format: StatusFormat::Text,
        max_inflight: None,
    }
}

fn read_varint(s: &mut TcpStream) -> usize {
    let (mut value, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8];
        s.read_exact(&mut b).expect("packet length");
        value |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

/// Accepts the next connection and reads its CONNECT: the client id it asks for.
fn accept_connect(listener: &TcpListener) -> (TcpStream, String) {
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut first = [0u8];
    s.read_exact(&mut first).unwrap();
    assert_eq!(first[0], 0x10, "CONNECT");
    let mut body = vec![0u8; read_varint(&mut s)];
    s.read_exact(&mut body).unwrap();
    // Protocol name (2 + 4), level, flags, keep-alive (2).
    let level = body[6];
    let mut at = 10;
    if level == 5 {
        // Property length (a varint; ours are short) and the properties.
        at += 1 + usize::from(body[at]);
    }
    let len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    let id = String::from_utf8(body[at + 2..at + 2 + len].to_vec()).unwrap();
    (s, id)
}

fn connack(s: &mut TcpStream, version: MqttVersion) {
    let packet: &[u8] = match version {
        MqttVersion::V3_1_1 => &[0x20, 0x02, 0x00, 0x00],
        MqttVersion::V5 => &[0x20, 0x03, 0x00, 0x00, 0x00],
    };
    s.write_all(packet).unwrap();
}

fn await_takeovers(connection: &Connection, n: u64) {
    let deadline = std::time::Instant::now() + WAIT;
    while connection.metrics().takeovers.load(Ordering::Relaxed) < n {
        assert!(std::time::Instant::now() < deadline, "takeover not counted");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `<id>-<hostname>-<pid>-<8 hex digits>`.
fn assert_unique_for(id: &str, configured: &str) {
    let rest = id
        .strip_prefix(configured)
        .and_then(|r| r.strip_prefix('-'))
        .unwrap_or_else(|| panic!("'{id}' does not start with '{configured}-'"));
    let parts: Vec<&str> = rest.rsplitn(3, '-').collect();
    assert_eq!(parts.len(), 3, "{id}");
    assert_eq!(parts[0].len(), 8, "{id}");
    assert_eq!(parts[1], std::process::id().to_string(), "{id}");
}

#[test]
fn mqtt5_session_taken_over_moves_to_an_id_of_its_own_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let configured = "it-v5-taken-over";
    let connection =
        Connection::get(&broker_config(port, configured, MqttVersion::V5, true)).expect("opened");
    let (mut first, id) = accept_connect(&listener);
    assert_eq!(
        id, configured,
        "a single node connects with exactly the configured id"
    );
    connack(&mut first, MqttVersion::V5);
    // Long after the takeover window: only the reason code can tell.
    std::thread::sleep(Duration::from_millis(3500));
    first.write_all(&[0xe0, 0x02, 0x8e, 0x00]).unwrap();
    drop(first);
    let (mut second, id) = accept_connect(&listener);
    assert_unique_for(&id, configured);
    connack(&mut second, MqttVersion::V5);
    await_takeovers(&connection, 1);
}

#[test]
fn mqtt3_close_right_after_connack_moves_to_an_id_of_its_own() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let configured = "it-v4-pushed-out";
    let connection = Connection::get(&broker_config(port, configured, MqttVersion::V3_1_1, true))
        .expect("opened");
    let (mut first, id) = accept_connect(&listener);
    assert_eq!(id, configured);
    connack(&mut first, MqttVersion::V3_1_1);
    drop(first);
    let (mut second, id) = accept_connect(&listener);
    assert_unique_for(&id, configured);
    connack(&mut second, MqttVersion::V3_1_1);
    await_takeovers(&connection, 1);
    // Once moved, a connection made again for the same client starts with the new id.
    drop(connection);
    drop(second);
    let again = Connection::get(&broker_config(port, configured, MqttVersion::V3_1_1, true))
        .expect("opened");
    let (_third, reused) = accept_connect(&listener);
    assert_eq!(reused, id);
    drop(again);
}

#[test]
fn a_long_lived_connection_closed_keeps_its_id() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let configured = "it-v4-broker-restart";
    let connection = Connection::get(&broker_config(port, configured, MqttVersion::V3_1_1, true))
        .expect("opened");
    let (mut first, _) = accept_connect(&listener);
    connack(&mut first, MqttVersion::V3_1_1);
    // A broker restart, say: the connection had lived past the takeover window.
    std::thread::sleep(Duration::from_millis(3500));
    drop(first);
    let (_second, id) = accept_connect(&listener);
    assert_eq!(id, configured);
    assert_eq!(connection.metrics().takeovers.load(Ordering::Relaxed), 0);
}

#[test]
fn persistent_session_keeps_its_id_and_counts_the_takeover() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let configured = "it-v4-persistent";
    let connection = Connection::get(&broker_config(port, configured, MqttVersion::V3_1_1, false))
        .expect("opened");
    let (mut first, _) = accept_connect(&listener);
    connack(&mut first, MqttVersion::V3_1_1);
    drop(first);
    let (_second, id) = accept_connect(&listener);
    assert_eq!(
        id, configured,
        "the session belongs to the id: it must not change"
    );
    assert_eq!(connection.metrics().takeovers.load(Ordering::Relaxed), 1);
}

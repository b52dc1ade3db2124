//! Brokers that misbehave: slow or deaf readers, brokers that close or refuse, shrinking receive
//! maximums, session options a broker set, one that stops acknowledging, one that sends
//! messages unasked, one that answers no ping, and WebSocket endpoints that refuse the upgrade or
//! take it without MQTT.

use super::*;

/// An MQTT 5 broker slower than its client: it pauses before reading each packet, so the
/// client's socket stays full, and acks each QoS 1 publish it read.
fn slow_broker_v5(listener: std::net::TcpListener) {
    use std::io::Write;
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let (connect, _) = read_packet(&mut s).expect("CONNECT");
    assert_eq!(connect, 0x10);
    s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00])
        .expect("CONNACK");
    loop {
        std::thread::sleep(Duration::from_millis(2));
        let Some((kind, body)) = read_packet(&mut s) else {
            return;
        };
        if kind >> 4 == 3 && s.write_all(&puback_for(&body)).is_err() {
            return;
        }
    }
}

/// An MQTT 5 broker that announces no receive maximum on its first connection, acks
/// `first` publishes there and closes it; then announces a receive maximum of 10 (and
/// reports 0), and acks every publish, reporting its packet id.
fn shrinking_broker_v5(listener: std::net::TcpListener, first: usize, pkids: mpsc::Sender<u16>) {
    use std::io::Write;
    for connack in [
        &[0x20, 0x03, 0x00, 0x00, 0x00][..],
        &[0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x0a][..],
    ] {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        read_packet(&mut s).expect("CONNECT");
        s.write_all(connack).expect("CONNACK");
        if connack.len() > 5 && pkids.send(0).is_err() {
            return;
        }
        let mut acked = 0;
        while connack.len() > 5 || acked < first {
            let Some((kind, body)) = read_packet(&mut s) else {
                return;
            };
            if kind >> 4 == 3 {
                let puback = puback_for(&body);
                let pkid = u16::from_be_bytes([puback[2], puback[3]]);
                if connack.len() > 5 && pkids.send(pkid).is_err() {
                    return;
                }
                if s.write_all(&puback).is_err() {
                    return;
                }
                acked += 1;
            }
        }
    }
}

/// An MQTT 5 broker whose first CONNACK sets a session expiry of an hour, and which then
/// closes that connection, shutting down (so that it is no takeover, which would set the
/// options anew anyway); it reports the property identifiers of both CONNECTs.
fn expiry_setting_broker_v5(listener: std::net::TcpListener, ids: mpsc::Sender<Vec<u8>>) {
    use std::io::Write;
    for connack in [
        &[0x20, 0x08, 0x00, 0x00, 0x05, 0x11, 0x00, 0x00, 0x0e, 0x10][..],
        &[0x20, 0x03, 0x00, 0x00, 0x00][..],
    ] {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let (_, body) = read_packet(&mut s).expect("CONNECT");
        if ids.send(connect_property_ids(&body)).is_err() {
            return;
        }
        s.write_all(connack).expect("CONNACK");
        if connack.len() == 5 {
            // The second stays until the client leaves.
            while read_packet(&mut s).is_some() {}
        } else {
            std::thread::sleep(Duration::from_millis(100));
            // DISCONNECT, 0x8B: the server is shutting down.
            s.write_all(&[0xe0, 0x02, 0x8b, 0x00]).expect("DISCONNECT");
        }
    }
}

/// A broker that accepts the connection and then reads nothing more, as a hung broker (or
/// one paused with SIGSTOP) does: once the socket's buffers are full, every write waits.
/// It holds the socket until `quit` says so (60 s at most), and tells `again` of each later
/// connection, which it takes and never answers.
fn deaf_broker(listener: std::net::TcpListener, quit: mpsc::Receiver<()>, again: mpsc::Sender<()>) {
    use std::io::{Read, Write};
    let (mut s, _) = listener.accept().expect("accept");
    let mut connect = [0u8; 2];
    s.read_exact(&mut connect).expect("CONNECT");
    let mut body = vec![0u8; usize::from(connect[1])];
    s.read_exact(&mut body).expect("CONNECT body");
    s.write_all(&[0x20, 0x02, 0x00, 0x00]).expect("CONNACK");
    listener.set_nonblocking(true).expect("non-blocking");
    let mut later = Vec::new();
    for _ in 0..3000 {
        if !matches!(
            quit.recv_timeout(Duration::from_millis(20)),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            return;
        }
        if let Ok((s, _)) = listener.accept() {
            later.push(s);
            let _ = again.send(());
        }
    }
}

/// A broker that stops reading at QoS 0, which waits for no ack: a write that waits on the
/// full socket ends with the connection, within the connect timeout, and the pack is
/// answered. (Before: only the final flush was bounded, and a write the socket's buffer
/// held up waited for ever, so the pack was never answered and keep-alive never ran.)
#[test]
fn a_broker_that_stops_reading_loses_the_connection_instead_of_holding_it() {
    let (quit, quit_rx) = mpsc::channel();
    let (port, broker_thread) =
        scripted_broker(move |listener| deaf_broker(listener, quit_rx, mpsc::channel().0));
    let connection = Connection::get(&scripted(port, "deaf-test")).expect("opened");
    // 64 MiB: more than loopback's socket buffers hold, both sides together.
    let (pack, how, messages, rx) = pack_of(Qos::AtMostOnce, vec![vec![b'x'; 64 << 10]; 1024]);
    // Within the byte bound too (4 KiB a record), or the pack fails before a write.
    connection.submit(&pack, how, messages, 100_000);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
    drop(connection);
    let _ = quit.send(());
    broker_thread.join().expect("the scripted broker");
}

/// A broker that stops reading (MQTT 3.1.1: a write took no bytes for connectTimeoutSeconds)
/// is left for the failover broker, as one that stops acknowledging is: it would take the
/// next connection and stop reading again. (Before: the next attempt went back to it.)
#[test]
fn a_broker_that_stops_reading_leaves_the_packs_to_the_failover_broker() {
    let (quit, quit_rx) = mpsc::channel();
    let (again_tx, again) = mpsc::channel();
    let (deaf, _) = scripted_broker(move |l| deaf_broker(l, quit_rx, again_tx));
    let (tx, failover_ids) = mpsc::channel();
    let (failover, _) =
        scripted_broker(move |l| client_ids::exact_id_broker_v4(l, "deaf-failover", (0, 5), tx));
    let connection = Connection::get(&BrokerConfig {
        failover: vec![("127.0.0.1".into(), failover)],
        ..scripted(deaf, "deaf-failover")
    })
    .expect("opened");
    let (pack, how, messages, rx) = pack_of(Qos::AtMostOnce, vec![vec![b'x'; 64 << 10]; 1024]);
    connection.submit(&pack, how, messages, 100_000);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
    assert_eq!(
        failover_ids.recv_timeout(WAIT).as_deref(),
        Ok("deaf-failover"),
        "the failover broker"
    );
    let back = again.try_recv();
    assert!(back.is_err(), "not back at the deaf broker first: {back:?}");
    drop(connection);
    let _ = quit.send(());
}

/// A plain WebSocket upgrade sent to a TLS listener, which resets it as Mosquitto resets a
/// plain CONNECT: the WARN says which setting that points to, as over TCP. (Before: the reset
/// inside the WebSocket error was not seen, and the line named no cause.)
#[test]
fn a_websocket_upgrade_reset_before_any_connack_points_to_ssl() {
    use std::io::Read;
    crate::test_log::capture();
    let (port, _) = scripted_broker(|listener| {
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { return };
            let _ = stream.read(&mut [0; 64]);
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .expect("linger");
        }
    });
    let connection = Connection::get(&BrokerConfig {
        transport: crate::config::Transport::WebSocket {
            path: "/mqtt".into(),
        },
        ..scripted(port, "ws-to-tls")
    })
    .expect("opened");
    let warned = crate::test_log::await_line("as 'ws-to-tls'", |l| l.starts_with("WARN"), WAIT);
    drop(connection);
    assert!(warned.contains("is a TLS port, turn ssl on"), "{warned}");
    assert!(warned.contains("set transport to TCP"), "{warned}");
}

/// A broker that takes the TCP connection and never answers the CONNECT: the WARN names the
/// setting that bounded the wait, in both MQTT versions. (Before: "Network timeout" under
/// MQTT 3.1.1, "Timeout" under MQTT 5, and nothing more.)
#[test]
fn a_connect_never_answered_names_connect_timeout_seconds() {
    use std::io::Read;
    crate::test_log::capture();
    for (version, id) in [
        (crate::config::MqttVersion::V3_1_1, "mute-connack-v4"),
        (crate::config::MqttVersion::V5, "mute-connack-v5"),
    ] {
        let (quit, quitting) = mpsc::channel::<()>();
        let (port, broker_thread) = scripted_broker(move |listener| {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let _ = stream.read(&mut [0; 256]);
            let _ = quitting.recv_timeout(2 * WAIT);
        });
        let connection = Connection::get(&BrokerConfig {
            version,
            connect_timeout: Duration::from_secs(1),
            ..scripted(port, id)
        })
        .expect("opened");
        let warned =
            crate::test_log::await_line(&format!("as '{id}'"), |l| l.starts_with("WARN"), WAIT);
        drop(connection);
        let _ = quit.send(());
        broker_thread.join().expect("the scripted broker");
        assert!(
            warned.contains("not connected within connectTimeoutSeconds"),
            "{warned}"
        );
    }
}

/// An MQTT 3.1.1 broker that holds its PUBACKs until the client's DISCONNECT, then sends them
/// and closes the connection in one TCP segment, so that the client reads both in one read. It reports
/// how many publishes it has read.
#[cfg(target_os = "linux")] // TCP_CORK
fn acks_with_the_close_v4(listener: std::net::TcpListener, publishes: mpsc::Sender<usize>) {
    use std::io::Write;
    let mut s = accepted_v4(&listener);
    let mut acks = Vec::new();
    while let Some((kind, body)) = read_packet(&mut s) {
        match kind >> 4 {
            3 => {
                acks.extend(puback_for(&body));
                let _ = publishes.send(acks.len() / 4);
            }
            14 => {
                // Corked, the acks and the close leave in one segment.
                let sock = socket2::SockRef::from(&s);
                sock.set_tcp_cork(true).expect("cork");
                let _ = s.write_all(&acks);
                let _ = s.shutdown(std::net::Shutdown::Write);
                return;
            }
            _ => {}
        }
    }
}

/// Acks the broker sends with its close, read in one go as the connection closes, still
/// confirm their pack: rumqttc queues them and returns the close. (Before: the close dropped
/// them, and the pack the broker had acknowledged failed with the close.)
#[test]
#[cfg(target_os = "linux")]
fn acks_read_with_the_brokers_close_at_a_close_still_confirm() {
    let (tx, published) = mpsc::channel();
    let (port, broker_thread) = scripted_broker(move |l| acks_with_the_close_v4(l, tx));
    let connection = Connection::get(&scripted(port, "acks-at-close")).expect("opened");
    let (pack, how, messages, rx) = pack_of(Qos::AtLeastOnce, vec![b"x".to_vec(); 3]);
    connection.submit(&pack, how, messages, 100);
    while published.recv_timeout(WAIT).expect("the broker reads them") < 3 {}
    drop(connection);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    broker_thread.join().expect("the scripted broker");
}

/// An MQTT 5 broker that takes the connection, then reads nothing until `read` says so; then
/// it reads to the end and reports how many whole PUBLISH packets it got.
fn stalled_then_counting_v5(
    listener: std::net::TcpListener,
    read: mpsc::Receiver<()>,
    got: mpsc::Sender<usize>,
) {
    use std::io::Write;
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    read_packet(&mut s).expect("CONNECT");
    s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00])
        .expect("CONNACK");
    if read.recv_timeout(Duration::from_secs(60)).is_err() {
        return;
    }
    let mut publishes = 0;
    while let Some((kind, _)) = read_packet(&mut s) {
        publishes += usize::from(kind >> 4 == 3);
    }
    let _ = got.send(publishes);
}

/// MQTT 5 at QoS 0, closed while the broker reads nothing: no pack is confirmed whose message
/// the broker never got whole. rumqttc's poll queues a publish's event before it writes and
/// flushes it; the close cancels that poll, and polled next, the event came out as written
/// while the bytes sat in rumqttc's buffer, dropped with the connection at the close's end.
/// (Before: one pack more was confirmed than the broker got.)
#[test]
fn mqtt5_qos0_records_unsent_at_close_are_not_confirmed() {
    let (read, read_rx) = mpsc::channel();
    let (got_tx, got) = mpsc::channel();
    let (port, broker_thread) =
        scripted_broker(move |l| stalled_then_counting_v5(l, read_rx, got_tx));
    let config = BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, "unsent-at-close-v5")
    };
    let connection = Connection::get(&config).expect("opened");
    // 32 MiB in packs of one message: more than loopback's socket buffers hold.
    let answers: Vec<_> = (0..512)
        .map(|_| {
            let (pack, how, messages, rx) = pack_of(Qos::AtMostOnce, vec![vec![b'x'; 64 << 10]]);
            connection.submit(&pack, how, messages, 100_000);
            rx
        })
        .collect();
    // The buffers fill, and the poll waits in a flush the broker does not take.
    std::thread::sleep(Duration::from_secs(1));
    drop(connection);
    let confirmed = answers
        .iter()
        .filter(|rx| rx.recv_timeout(WAIT) == Ok(Outcome::Delivered))
        .count();
    read.send(()).expect("the broker waits");
    let received = got.recv_timeout(WAIT).expect("the broker's count");
    broker_thread.join().expect("the scripted broker");
    assert!(
        confirmed > 0,
        "some went out before the broker stopped: {received}"
    );
    assert!(
        confirmed <= received,
        "{confirmed} packs confirmed, {received} messages received"
    );
}

/// MQTT 5 with a broker slower than the client, so the socket stays full while acks come:
/// every pack is answered, none waits for an ack of a publish that was never written (see
/// `EventLoop::NUDGES` and the test after this one).
#[test]
fn mqtt5_packs_through_a_broker_slower_than_the_client_are_all_delivered() {
    let (port, broker_thread) = scripted_broker(slow_broker_v5);
    let config = BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, "slow-v5-test")
    };
    let connection = Connection::get(&config).expect("opened");
    // 48 MiB: more than loopback's socket buffers hold, and more messages than the window.
    let answers: Vec<_> = (0..24)
        .map(|_| {
            let (pack, how, messages, rx) =
                pack_of(Qos::AtLeastOnce, vec![vec![b'x'; 256 << 10]; 8]);
            connection.submit(&pack, how, messages, 16384);
            rx
        })
        .collect();
    for (i, rx) in answers.iter().enumerate() {
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(30)),
            Ok(Outcome::Delivered),
            "pack {i}"
        );
    }
    drop(connection);
    broker_thread
        .join()
        .expect("the scripted broker ends when the client leaves");
}

/// The first MQTT 3.1.1 connection to `listener`, its CONNECT read and accepted; reads on it
/// time out after [`WAIT`].
fn accepted_v4(listener: &std::net::TcpListener) -> std::net::TcpStream {
    use std::io::Write;
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    read_packet(&mut s).expect("CONNECT");
    s.write_all(&[0x20, 0x02, 0x00, 0x00]).expect("CONNACK");
    s
}

/// An MQTT 3.1.1 broker that reads at about 4 MiB/s: it pauses 125 ms after each publish
/// (of 512 KiB in the tests), then acks it if its QoS asks for that. Once the client is
/// gone, it says how many publishes it read.
fn slow_reading_broker_v4(listener: std::net::TcpListener, read: mpsc::Sender<usize>) {
    use std::io::Write;
    let mut s = accepted_v4(&listener);
    let mut count = 0;
    while let Some((kind, body)) = read_packet(&mut s) {
        if kind >> 4 != 3 {
            continue;
        }
        count += 1;
        std::thread::sleep(Duration::from_millis(125));
        if kind & 0x06 == 0 {
            continue;
        }
        if s.write_all(&puback_for(&body)).is_err() {
            break;
        }
    }
    let _ = read.send(count);
}

/// A slow broker's backlog goes in slices of connectTimeoutSeconds, with the driver's
/// other duties between them: closed meanwhile, the connection goes within a few slices,
/// not once the whole backlog is written. (Before: the driver wrote 64 MiB of QoS 0
/// messages, sixteen seconds of this broker's reading, before it saw the close.)
#[test]
fn a_slow_brokers_backlog_leaves_the_driver_free_to_close() {
    let (tx, read) = mpsc::channel();
    let (port, broker_thread) = scripted_broker(move |l| slow_reading_broker_v4(l, tx));
    let config = BrokerConfig {
        connect_timeout: Duration::from_secs(1),
        ..scripted(port, "slow-backlog-test")
    };
    let connection = Connection::get(&config).expect("opened");
    let (pack, how, messages, _answer) = pack_of(Qos::AtMostOnce, vec![vec![b'x'; 512 << 10]; 128]);
    connection.submit(&pack, how, messages, 100_000);
    std::thread::sleep(Duration::from_millis(1500));
    drop(connection);
    // It reads the socket's buffers at its pace after the close: seconds.
    let count = read.recv_timeout(3 * WAIT).expect("the broker's count");
    // Two slices before the close is seen, the grace after it (two seconds), and what
    // the socket's buffers held: about half.
    assert!(
        count < 96,
        "{count} of 128 publishes written after the close"
    );
    broker_thread.join().expect("the scripted broker");
}

/// MQTT 3.1.1 writes a window of messages in one go, each write making progress within
/// connectTimeoutSeconds: a window that takes longer to cross to a broker reading all
/// along goes through. (Before: the bound was on the whole window, and every attempt
/// failed it, with the connection and every pack in flight.)
#[test]
fn a_window_slower_than_the_write_bound_reaches_a_broker_that_reads() {
    let (tx, _read) = mpsc::channel();
    let (port, broker_thread) = scripted_broker(move |l| slow_reading_broker_v4(l, tx));
    let config = BrokerConfig {
        connect_timeout: Duration::from_secs(1),
        ..scripted(port, "slow-reader-test")
    };
    let connection = Connection::get(&config).expect("opened");
    // 16 MiB, one window: four seconds of reading, more than loopback's buffers hold.
    let (pack, how, messages, rx) = pack_of(Qos::AtLeastOnce, vec![vec![b'x'; 512 << 10]; 32]);
    connection.submit(&pack, how, messages, 100_000);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)),
        Ok(Outcome::Delivered)
    );
    drop(connection);
    broker_thread.join().expect("the scripted broker");
}

/// A broker's socket read steadily and slowly: at most 64 KiB per 25 ms (2.6 MB/s), and,
/// with `budget`, that many bytes in all, after which reads wait until `quit` says so (a
/// broker that stopped reading); once `fast` is set, at full speed (the link recovered).
struct Trickle<'a> {
    s: &'a mut std::net::TcpStream,
    budget: Option<usize>,
    quit: Option<&'a mpsc::Receiver<()>>,
    fast: Option<&'a AtomicBool>,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.fast.is_some_and(|fast| fast.load(Ordering::Relaxed)) {
            return self.s.read(buf);
        }
        if self.budget == Some(0) {
            if let Some(quit) = self.quit {
                let _ = quit.recv_timeout(Duration::from_secs(60));
            }
            return Ok(0);
        }
        let most = buf
            .len()
            .min(64 << 10)
            .min(self.budget.unwrap_or(usize::MAX));
        let n = self.s.read(&mut buf[..most])?;
        if let Some(b) = &mut self.budget {
            *b -= n;
        }
        std::thread::sleep(Duration::from_millis(25));
        Ok(n)
    }
}

/// An MQTT 3.1.1 broker that reads as [`Trickle`] does and acks each QoS 1 publish it read
/// whole.
fn trickling_broker_v4(
    listener: std::net::TcpListener,
    budget: Option<usize>,
    quit: mpsc::Receiver<()>,
) {
    use std::io::Write;
    let mut s = accepted_v4(&listener);
    let mut writer = s.try_clone().expect("clone");
    let mut trickle = Trickle {
        s: &mut s,
        budget,
        quit: Some(&quit),
        fast: None,
    };
    while let Some((kind, body)) = read_packet(&mut trickle) {
        if kind >> 4 == 3 && writer.write_all(&puback_for(&body)).is_err() {
            return;
        }
    }
}

/// One message that takes the broker far longer to read than connectTimeoutSeconds goes
/// through as long as the broker keeps reading: the bound is on a write that makes no
/// progress. (Before: it was on the whole flush of the message, which failed with "Flush
/// timeout", the shared connection with it, at every attempt.)
#[test]
fn one_large_message_reaches_a_broker_that_reads_it_slowly() {
    let (_quit, quit_rx) = mpsc::channel();
    let (port, broker_thread) = scripted_broker(move |l| trickling_broker_v4(l, None, quit_rx));
    let connection = Connection::get(&BrokerConfig {
        connect_timeout: Duration::from_secs(1),
        ..scripted(port, "trickle-test")
    })
    .expect("opened");
    // 16 MiB: about six seconds of this broker's reading, more than loopback's buffers.
    let (pack, how, messages, rx) = pack_of(Qos::AtLeastOnce, vec![vec![b'x'; 16 << 20]]);
    connection.submit(&pack, how, messages, 100_000);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)),
        Ok(Outcome::Delivered)
    );
    drop(connection);
    broker_thread.join().expect("the scripted broker");
}

/// A broker at the end of a slow link: it reads as [`Trickle`] does, up to `per_read` bytes at a
/// time (through a receive buffer of 32 KiB), counts the publishes it read into `read`, and
/// answers each ping as it reads it (after all that was sent before it).
fn slow_link_broker_v4(
    listener: std::net::TcpListener,
    per_read: usize,
    fast: Arc<AtomicBool>,
    read: Arc<AtomicUsize>,
) {
    use std::io::Write;
    let mut s = accepted_v4(&listener);
    socket2::SockRef::from(&s)
        .set_recv_buffer_size(32 << 10)
        .expect("receive buffer");
    let mut writer = s.try_clone().expect("clone");
    // Each read of the socket takes up to `per_read` bytes, not a packet's header.
    let mut paced = std::io::BufReader::with_capacity(
        per_read,
        Trickle {
            s: &mut s,
            budget: None,
            quit: None,
            fast: Some(&fast),
        },
    );
    while let Some((kind, _)) = read_packet(&mut paced) {
        match kind >> 4 {
            3 => {
                read.fetch_add(1, Ordering::Relaxed);
            }
            12 if writer.write_all(&[0xd0, 0x00]).is_err() => return,
            _ => {}
        }
    }
}

/// Floods a broker behind a slow link (`per_read` bytes per 25 ms) with `packs` QoS 0 packs of
/// 100 messages of 1 KiB, keep-alive 1 s; once every pack is answered, the link recovers if
/// `recovers`. Asserts that every pack was delivered, and that the connection held until the
/// broker had read them all.
fn flood_through_a_slow_link(client_id: &str, per_read: usize, packs: usize, recovers: bool) {
    let fast = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicUsize::new(0));
    let (recovered, counted) = (Arc::clone(&fast), Arc::clone(&read));
    let (port, broker_thread) =
        scripted_broker(move |l| slow_link_broker_v4(l, per_read, recovered, counted));
    let connection = Connection::get(&BrokerConfig {
        keep_alive: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(3),
        ..scripted(port, client_id)
    })
    .expect("opened");
    let answers: Vec<_> = (0..packs)
        .map(|_| {
            let (pack, how, messages, rx) =
                pack_of(Qos::AtMostOnce, vec![vec![b'x'; 1 << 10]; 100]);
            connection.submit(&pack, how, messages, 100_000);
            rx
        })
        .collect();
    let up = || connection.metrics().connected.load(Ordering::Relaxed);
    for rx in &answers {
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(30)),
            Ok(Outcome::Delivered)
        );
        assert!(up(), "the connection was lost");
    }
    fast.store(recovers, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.load(Ordering::Relaxed) < packs * 100 {
        assert!(up(), "the connection was lost");
        assert!(Instant::now() < deadline, "the broker did not read all");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(connection.metrics().reconnects.load(Ordering::Relaxed), 0);
    drop(connection);
    broker_thread.join().expect("the slow broker");
}

/// A QoS 0 flood through a slow link keeps its connection. A ping waits behind what the
/// buffers on the way hold (here some 3 s of the link), while the broker keeps taking what it
/// is sent. (Before: rumqttc's keep-alive failed the connection at its second tick, the
/// messages the buffers held were lost with it, and through a proxy on a 1 Mbit/s uplink
/// this came every 20 s.)
#[test]
fn a_qos0_flood_through_a_slow_link_keeps_its_connection() {
    // 160 KiB/s, 2.4 MiB: the buffers full for some 11 s. rumqttc's keep-alive ticks only
    // between the driver's slices of writes (up to connectTimeoutSeconds, 3 s, each), so that
    // is some three pings each checked at the next tick, one at least behind what the buffers
    // hold (before, one of four runs of 1.2 MiB met no such check).
    flood_through_a_slow_link("slow-link-test", 4 << 10, 24, true);
}

/// What a QoS 0 flood leaves in the socket's buffer goes out within the keep-alive, so a ping
/// behind it is answered in time: a link of 1.3 MB/s takes the buffer in 0.4 s. (Before:
/// Linux let the buffer grow to 4 MiB on loopback, and the 3 MB flood waited in it, with the
/// ping behind, for over 2 s.)
#[test]
fn a_qos0_flood_leaves_the_socket_no_more_than_a_keep_alive_holds() {
    flood_through_a_slow_link("full-buffer-test", 32 << 10, 30, false);
}

/// A broker that stops reading half-way through a large message is still left, within
/// connectTimeoutSeconds of its last read (and what the socket's buffers take after it).
#[test]
fn a_broker_that_stops_reading_inside_a_large_message_is_left() {
    let (quit, quit_rx) = mpsc::channel();
    let (port, broker_thread) =
        scripted_broker(move |l| trickling_broker_v4(l, Some(4 << 20), quit_rx));
    let connection = Connection::get(&BrokerConfig {
        connect_timeout: Duration::from_secs(1),
        ..scripted(port, "stops-reading-test")
    })
    .expect("opened");
    let (pack, how, messages, rx) = pack_of(Qos::AtLeastOnce, vec![vec![b'x'; 16 << 20]]);
    connection.submit(&pack, how, messages, 100_000);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
    drop(connection);
    let _ = quit.send(());
    broker_thread.join().expect("the scripted broker");
}

/// An MQTT 5 broker that accepts the connection and reads every packet, answering none
/// (QoS 0 wants no answer); it counts the publishes into `publishes` until the client
/// leaves.
fn reading_broker_v5(listener: std::net::TcpListener, publishes: mpsc::Sender<usize>) {
    use std::io::Write;
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    read_packet(&mut s).expect("CONNECT");
    s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00])
        .expect("CONNACK");
    let mut count = 0;
    while let Some((kind, _)) = read_packet(&mut s) {
        if kind >> 4 == 3 {
            count += 1;
        }
    }
    let _ = publishes.send(count);
}

/// The connection is shared by every appender with its broker settings, whatever their
/// maxPendingRecords: the MQTT 5 client's channel never refuses what the tracker admits
/// (1,024 unwritten messages at a time, `UNWRITTEN`, the rest parked in the tracker).
/// (Before: it held the maxPendingRecords of the appender that opened the connection, so
/// another appender's pack of more QoS 0 messages failed every time, after some of them
/// were published.)
#[test]
fn mqtt5_queues_whatever_the_tracker_admits() {
    let (tx, publishes) = mpsc::channel();
    let (port, broker_thread) = scripted_broker(move |l| reading_broker_v5(l, tx));
    let config = BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, "queue-v5-test")
    };
    let connection = Connection::get(&config).expect("opened");
    let (pack, how, messages, rx) = pack_of(Qos::AtMostOnce, vec![b"{}".to_vec(); 5000]);
    connection.submit(&pack, how, messages, 100_000);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    drop(connection);
    assert_eq!(publishes.recv_timeout(WAIT), Ok(5000));
    broker_thread.join().expect("the scripted broker");
}

/// A broker whose receive maximum is smaller than the packet ids the last connection
/// reached (a failover broker, or one restarted with a lower setting): ids start from 1
/// again, within its window. (Before: they went on from 25, past 10, and the publish with
/// id 31, beyond rumqttc's table for `maxInflight` 30, was dropped and the connection
/// failed, at every connection after it.)
#[test]
fn packet_ids_start_again_within_a_smaller_receive_maximum() {
    let (tx, pkids) = mpsc::channel();
    let (port, broker_thread) =
        scripted_broker(move |listener| shrinking_broker_v5(listener, 25, tx));
    let config = BrokerConfig {
        version: crate::config::MqttVersion::V5,
        max_inflight: Some(30),
        ..scripted(port, "shrinking-v5-test")
    };
    let connection = Connection::get(&config).expect("opened");
    let (pack, how, messages, rx) = qos1_pack(25);
    connection.submit(&pack, how, messages, 100);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    // Once the first connection is gone, so that no message is lost with it.
    assert_eq!(pkids.recv_timeout(WAIT), Ok(0), "connected again");
    for round in 0..3 {
        let (pack, how, messages, rx) = qos1_pack(10);
        connection.submit(&pack, how, messages, 100);
        assert_eq!(
            rx.recv_timeout(WAIT),
            Ok(Outcome::Delivered),
            "pack {round}"
        );
    }
    let seen: Vec<u16> = pkids.try_iter().collect();
    assert_eq!(seen.len(), 30, "{seen:?}");
    assert!(seen.iter().all(|&id| (1..=10).contains(&id)), "{seen:?}");
    drop(connection);
    broker_thread
        .join()
        .expect("the scripted broker ends when the client leaves");
}

/// What a CONNACK sets holds for that connection only: rumqttc copies an MQTT 5 broker's
/// session expiry into the options of every later CONNECT, where a session kept past the
/// connection is what the configuration (clean session, no expiry) refused. (Before: the
/// second CONNECT asked for the hour the first CONNACK had set.)
#[test]
fn a_session_expiry_a_broker_set_does_not_carry_over_to_the_next_connection() {
    let (tx, ids) = mpsc::channel();
    let (port, broker_thread) =
        scripted_broker(move |listener| expiry_setting_broker_v5(listener, tx));
    let config = BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, "expiry-v5-test")
    };
    let connection = Connection::get(&config).expect("opened");
    let first = ids.recv_timeout(WAIT).expect("first CONNECT");
    let second = ids.recv_timeout(WAIT).expect("second CONNECT");
    assert!(!first.contains(&0x11), "{first:x?}");
    assert!(
        !second.contains(&0x11),
        "no session expiry asked: {second:x?}"
    );
    drop(connection);
    broker_thread
        .join()
        .expect("the scripted broker ends when the client leaves");
}

/// An MQTT 5 broker that accepts every connection and at once sends DISCONNECT with
/// `reason` (none: the bare packet of a normal disconnection) and closes it, as a busy one or
/// one over a quota does; it reports each CONNECT.
fn closing_at_once_broker_v5(
    listener: std::net::TcpListener,
    reason: Option<u8>,
    connects: mpsc::Sender<()>,
) {
    use std::io::Write;
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        if read_packet(&mut s).is_none() {
            continue;
        }
        if connects.send(()).is_err() {
            return;
        }
        // CONNACK, then DISCONNECT with the reason and no properties, or with nothing after
        // its length; dropped: closed.
        let connack = [0x20, 0x03, 0x00, 0x00, 0x00];
        let _ = match reason {
            Some(reason) => s.write_all(&[&connack[..], &[0xe0, 0x02, reason, 0x00]].concat()),
            None => s.write_all(&[&connack[..], &[0xe0, 0x00]].concat()),
        };
    }
}

/// An MQTT 5 connection as `client_id` to a broker that ends each connection at once with a
/// DISCONNECT of `reason` (0x89: server busy; none: a bare one); the receiver hears each
/// connect.
fn to_busy_broker(client_id: &str, reason: Option<u8>) -> (Arc<Connection>, mpsc::Receiver<()>) {
    let (tx, connects) = mpsc::channel();
    let (port, _) = scripted_broker(move |l| closing_at_once_broker_v5(l, reason, tx));
    let connection = Connection::get(&BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, client_id)
    })
    .expect("opened");
    (connection, connects)
}

/// A broker that closes each connection as soon as it accepted it (here: DISCONNECT 0x89,
/// server busy) is retried with growing pauses, not at the shortest one each time.
/// (Before: every CONNACK reset the pause, and the broker got about 13 connections a
/// second, each with an INFO and a WARN line, for as long as it answered so.)
#[test]
fn a_broker_closing_each_connection_at_once_is_retried_with_growing_pauses() {
    let (connection, connects) = to_busy_broker("busy-v5-test", Some(0x89));
    let until = Instant::now() + Duration::from_secs(2);
    let mut count = 0;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if connects.recv_timeout(left).is_ok() {
            count += 1;
        }
    }
    drop(connection);
    // Pauses from 50-100 ms, doubling: six connections in two seconds at most.
    assert!((2..=6).contains(&count), "{count} connections in 2 s");
}

/// A broker ending every connection at once the same way is one fault going on: its first
/// loss is a WARN and the connects before and after it INFO, the repeats DEBUG (the summary
/// line counts the reconnects). (Before: an INFO and a WARN per connection, up to 960 lines
/// an hour.)
#[test]
fn a_broker_ending_each_connection_alike_is_reported_once() {
    crate::test_log::capture();
    let (connection, connects) = to_busy_broker("busy-v5-log", Some(0x89));
    for i in 0..4 {
        connects
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("connection {i}"));
    }
    drop(connection);
    let lines = crate::test_log::lines_with("as 'busy-v5-log'");
    let shown: Vec<_> = lines.iter().filter(|l| !l.starts_with("DEBUG")).collect();
    let levels: Vec<_> = shown
        .iter()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>())
        .collect();
    assert_eq!(
        levels,
        [
            ["INFO", "connected"],
            ["WARN", "connection"],
            ["INFO", "connected"]
        ],
        "{lines:#?}"
    );
}

/// Two failures taking turns at one broker are each reported once. (Before: only the last
/// was remembered, so each attempt was new: a close taken for a refusal, then for a takeover,
/// logged both at every cycle.)
#[test]
fn failures_taking_turns_are_each_reported_once() {
    crate::test_log::capture();
    let shared = shared();
    let (events, _) = drive_scripted(&shared);
    let [a, b] = ["turns-test: one way", "turns-test: another way"];
    for why in [a, b, a, b, a] {
        events.send(Step::Broken(why)).expect("driver alive");
    }
    let deadline = Instant::now() + WAIT;
    while crate::test_log::lines_with("turns-test").len() < 5 {
        assert!(Instant::now() < deadline, "five attempts");
        std::thread::sleep(Duration::from_millis(20));
    }
    close_scripted(&shared, &events);
    let lines = crate::test_log::lines_with("turns-test");
    let shown: Vec<_> = lines.iter().filter(|l| !l.starts_with("DEBUG")).collect();
    assert_eq!(shown.len(), 2, "{lines:#?}");
}

/// Failures told apart without the figures that change between attempts.
#[test]
fn failures_differing_in_figures_only_are_one() {
    let expired = |now: u64| {
        failure_key(&format!(
            "TLS: invalid peer certificate: certificate expired: verification time {now} \
             (UNIX), but certificate is not valid after 1796342400 ({} seconds ago)",
            now - 1_796_342_400
        ))
    };
    assert_eq!(expired(1_796_342_500), expired(1_796_342_507));
    assert_ne!(
        failure_key("Connection refused"),
        failure_key("Connection reset")
    );
    let closed_at =
        |topic: &str| failure_key(&format!("closed 12 ms after a message to '{topic}'"));
    assert_eq!(
        closed_at("kaa/3/logs"),
        "closed  ms after a message to 'kaa/3/logs'"
    );
    assert_ne!(closed_at("kaa/3/logs"), closed_at("kaa/4/logs"));
}

/// A failure reported is a repeat for ten minutes, then news again; four are kept.
#[test]
fn reported_failures_are_remembered_for_ten_minutes() {
    let start = Instant::now();
    let mut reported = Reported::default();
    let at = |seconds| start + Duration::from_secs(seconds);
    assert!(reported.is_new("refused".into(), at(0)));
    assert!(!reported.is_new("refused".into(), at(599)));
    assert!(reported.is_new("refused".into(), at(600)), "news again");
    assert!(
        !reported.is_new("refused".into(), at(1199)),
        "from its new report"
    );
    for (i, other) in ["a", "b", "c", "d"].into_iter().enumerate() {
        assert!(reported.is_new(other.into(), at(1200 + i as u64)));
    }
    assert!(
        reported.is_new("refused".into(), at(1210)),
        "the oldest gave way"
    );
}

/// An MQTT 5 connection to the scripted broker at `first`, failing over to one that
/// acknowledges every publish (no CONNACK properties); the receiver hears each connect there.
fn with_acking_failover(first: u16, name: &str) -> (Arc<Connection>, mpsc::Receiver<()>) {
    let (tx, connects) = mpsc::channel();
    let (failover, _) = scripted_broker(move |l| connack_properties_broker_v5(l, &[0x00], tx));
    let connection = Connection::get(&BrokerConfig {
        version: crate::config::MqttVersion::V5,
        failover: vec![("127.0.0.1".into(), failover)],
        ..scripted(first, name)
    })
    .expect("opened");
    (connection, connects)
}

/// A broker that accepts each connection and ends it at once, saying "use another server"
/// (MQTT 5, 0x9C), or with a bare DISCONNECT (a normal disconnection), leaves packs to the
/// failover broker. (Before: a connection accepted and lost started again at the first broker,
/// every time, and every pack failed there.)
#[test]
fn a_broker_ending_each_connection_at_once_leaves_the_pack_to_the_failover_broker() {
    for (reason, name) in [
        (Some(0x9c), "use-another-server"),
        (None, "bare-disconnects"),
    ] {
        leaves_the_pack_to_the_failover_broker(reason, name);
    }
}

fn leaves_the_pack_to_the_failover_broker(reason: Option<u8>, name: &str) {
    let (tx, closed) = mpsc::channel();
    let (busy, _) = scripted_broker(move |l| closing_at_once_broker_v5(l, reason, tx));
    let (connection, connects) = with_acking_failover(busy, name);
    // Written on the first broker's connection before its DISCONNECT came, a pack fails.
    let rx = submit_one(&connection);
    let first = rx.recv_timeout(WAIT);
    assert!(
        matches!(first, Ok(Outcome::Delivered | Outcome::ConnectionError)),
        "{first:?}"
    );
    closed
        .recv_timeout(WAIT)
        .expect("the first broker was tried first");
    let rx = submit_one(&connection);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    connects
        .recv_timeout(WAIT)
        .expect("the failover broker was connected to");
    drop(connection);
}

/// An MQTT 3.1.1 broker that refuses every CONNECT with return code 5 (not authorised, as
/// for bad credentials); the first refusal waits for `go`.
fn refusing_broker_v4(listener: std::net::TcpListener, go: mpsc::Receiver<()>) {
    use std::io::Write;
    let mut first = true;
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        if read_packet(&mut s).is_none() {
            continue;
        }
        if std::mem::take(&mut first) && go.recv_timeout(WAIT).is_err() {
            return;
        }
        let _ = s.write_all(&[0x20, 0x02, 0x00, 0x05]);
    }
}

/// A broker refusing the connection (bad credentials on it alone) leaves the packs that
/// wait to the failover broker after it, which delivers them. (Before: they were answered
/// onRemoteError at the first broker's refusal, before the second was tried.)
#[test]
fn a_pack_waiting_while_the_first_broker_refuses_goes_to_the_failover_broker() {
    let (go, go_rx) = mpsc::channel();
    let (refusing, _) = scripted_broker(move |l| refusing_broker_v4(l, go_rx));
    let (tx, ids) = mpsc::channel();
    let (healthy, _) = scripted_broker(move |l| closing_broker_v4(l, (0, 0), tx));
    let connection = Connection::get(&BrokerConfig {
        failover: vec![("127.0.0.1".into(), healthy)],
        ..scripted(refusing, "failover-refused")
    })
    .expect("opened");
    let rx = submit_one(&connection);
    go.send(()).expect("the refusing broker waits");
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    assert_eq!(ids.recv_timeout(WAIT).as_deref(), Ok("failover-refused"));
    drop(connection);
}

/// When every broker of the round refused the connection, what waits is answered
/// onRemoteError at once, as with one broker: retrying cannot help until the
/// configuration changes.
#[test]
fn a_pack_waiting_while_every_broker_refuses_is_refused() {
    let (go_a, go_a_rx) = mpsc::channel();
    let (a, _) = scripted_broker(move |l| refusing_broker_v4(l, go_a_rx));
    let (go_b, go_b_rx) = mpsc::channel();
    let (b, _) = scripted_broker(move |l| refusing_broker_v4(l, go_b_rx));
    let connection = Connection::get(&BrokerConfig {
        failover: vec![("127.0.0.1".into(), b)],
        ..scripted(a, "failover-all-refused")
    })
    .expect("opened");
    let rx = submit_one(&connection);
    go_a.send(()).expect("the first broker waits");
    go_b.send(()).expect("the second broker waits");
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::RemoteError));
    drop(connection);
}

/// A broker that answers pings and never acknowledges a publish, reporting every CONNECT.
fn unacknowledging_broker(listener: std::net::TcpListener, ids: mpsc::Sender<String>) {
    use std::io::Write;
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let Some((0x10, body)) = read_packet(&mut s) else {
            continue;
        };
        let id = connect_client_id(&body);
        if ids.send(id).is_err() || s.write_all(&[0x20, 0x02, 0x00, 0x00]).is_err() {
            return;
        }
        std::thread::spawn(move || {
            while let Some((kind, _)) = read_packet(&mut s) {
                if kind == 0xc0 && s.write_all(&[0xd0, 0x00]).is_err() {
                    return;
                }
            }
        });
    }
}

/// An MQTT 5 broker that accepts each connection and closes it at once without a word;
/// it reports each connection's client id.
fn closing_after_connack_broker_v5(
    listener: std::net::TcpListener,
    connects: mpsc::Sender<String>,
) {
    use std::io::Write;
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let Some((_, connect)) = read_packet(&mut s) else {
            return;
        };
        if connects.send(connect_client_id(&connect)).is_err() {
            return;
        }
        let _ = s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]);
    }
}

/// An MQTT 5 broker that announces a Maximum QoS of 0, closes that connection when `go`
/// says, then takes the next CONNECT (reported on `connects`) and answers it, granting
/// everything, only when `go` says again; it acks every QoS 1 publish there.
fn max_qos_0_then_all_broker_v5(
    listener: std::net::TcpListener,
    go: mpsc::Receiver<()>,
    connects: mpsc::Sender<()>,
) {
    use std::io::Write;
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    read_packet(&mut s).expect("CONNECT");
    s.write_all(&[0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x00])
        .expect("CONNACK");
    if connects.send(()).is_err() || go.recv_timeout(WAIT).is_err() {
        return;
    }
    drop(s);
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    read_packet(&mut s).expect("CONNECT");
    if connects.send(()).is_err() || go.recv_timeout(WAIT).is_err() {
        return;
    }
    s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00])
        .expect("CONNACK");
    while let Some((kind, body)) = read_packet(&mut s) {
        if kind >> 4 == 3 && s.write_all(&puback_for(&body)).is_err() {
            return;
        }
    }
}

/// What a broker said it takes (MQTT 5's CONNACK) holds for its connection only: a pack
/// submitted after that connection is lost, before the next CONNACK, waits for that one and
/// is judged by it. (Before: it was refused by the last broker's Maximum QoS, though the next
/// broker, a failover one or the same restarted, took it.)
#[test]
fn between_connections_packs_wait_for_what_the_next_broker_takes() {
    crate::test_log::capture();
    let (go, gone) = mpsc::channel();
    let (tx, connects) = mpsc::channel();
    let (port, broker_thread) = scripted_broker(move |l| max_qos_0_then_all_broker_v5(l, gone, tx));
    let config = BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, "grants-v5-test")
    };
    let connection = Connection::get(&config).expect("opened");
    connects.recv_timeout(WAIT).expect("connected");
    let deadline = Instant::now() + WAIT;
    let refused = loop {
        // The CONNACK may be read a moment after the broker reported it sent.
        let rx = submit_one(&connection);
        match rx.recv_timeout(WAIT) {
            Ok(Outcome::RemoteError) => break true,
            _ if Instant::now() < deadline => continue,
            _ => break false,
        }
    };
    assert!(refused, "QoS 1 refused under a Maximum QoS of 0");
    // The operator reads why.
    let said = crate::test_log::lines_with("as 'grants-v5-test': a message fails its pack: ");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with("WARN ") && said[0].contains("QoS"),
        "{said:?}"
    );
    go.send(()).expect("close");
    connects.recv_timeout(WAIT).expect("connecting again");
    let waiting = submit_one(&connection);
    assert_eq!(
        waiting.recv_timeout(Duration::from_millis(200)),
        Err(mpsc::RecvTimeoutError::Timeout),
        "waits for the next CONNACK"
    );
    go.send(()).expect("CONNACK");
    assert_eq!(waiting.recv_timeout(WAIT), Ok(Outcome::Delivered));
    drop(connection);
    broker_thread.join().expect("the scripted broker");
}

/// A broker that accepts each connection and closes it at once without a word, also under
/// the id of the node's own the appender moved to (which no other client holds), leaves the
/// packs to the failover broker. (Before: that broker was retried for good, with growing
/// pauses, and the failover broker never tried.)
#[test]
fn a_broker_closing_the_nodes_own_id_at_once_leaves_the_packs_to_the_failover_broker() {
    crate::test_log::capture();
    let (tx, closed) = mpsc::channel();
    let (closing, _) = scripted_broker(move |l| closing_after_connack_broker_v5(l, tx));
    let (connection, connects) = with_acking_failover(closing, "own-id-closed");
    let ids: Vec<String> = (0..2)
        .map(|_| closed.recv_timeout(WAIT).expect("a close"))
        .collect();
    assert_eq!(ids[0], "own-id-closed", "the configured id");
    assert!(
        ids[1].starts_with("own-id-closed-"),
        "the node's own: {ids:?}"
    );
    connects
        .recv_timeout(WAIT)
        .expect("the failover broker was connected to");
    assert_eq!(
        closed.try_recv().ok(),
        None,
        "one close under the node's own id: {ids:?}"
    );
    let rx = submit_one(&connection);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    assert!(
        closed.recv_timeout(Duration::from_millis(500)).is_err(),
        "not back at the closing broker"
    );
    // The close under the node's own id is no takeover, counted or said.
    let takeovers = connection.metrics().takeovers.load(Ordering::Relaxed);
    assert_eq!(takeovers, 1, "the configured id's close alone");
    let lines = crate::test_log::lines_with("as 'own-id-closed-");
    let own: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("own client id"))
        .collect();
    assert_eq!(own.len(), 1, "{lines:#?}");
    assert!(!own[0].contains("another client"), "{own:?}");
    drop(connection);
}

/// Sweeps `connection` every 100 ms, as its appender does, until `events` gives something, or
/// `WAIT` passes.
fn sweep_until<T>(
    connection: &Connection,
    events: &mpsc::Receiver<T>,
) -> Result<T, mpsc::RecvTimeoutError> {
    let deadline = Instant::now() + WAIT;
    loop {
        connection.sweep(Instant::now());
        match events.recv_timeout(Duration::from_millis(100)) {
            Err(_) if Instant::now() < deadline => continue,
            other => return other,
        }
    }
}

/// A broker that keeps the connection up and answers pings but acknowledges nothing leaves
/// the packs to the failover broker once the connection is found stalled. (Before: the stalled
/// connection started again at the same broker, and every pack failed there at its deadline
/// while the failover broker was never tried.)
#[test]
fn a_broker_that_acknowledges_nothing_leaves_the_packs_to_the_failover_broker() {
    let (tx, stalling_ids) = mpsc::channel();
    let (stalling, _) = scripted_broker(move |l| unacknowledging_broker(l, tx));
    let (tx, failover_ids) = mpsc::channel();
    let (failover, _) =
        scripted_broker(move |l| client_ids::exact_id_broker_v4(l, "stall-failover", (0, 5), tx));
    let connection = Connection::get(&BrokerConfig {
        failover: vec![("127.0.0.1".into(), failover)],
        ..scripted(stalling, "stall-failover")
    })
    .expect("opened");
    assert_eq!(
        stalling_ids.recv_timeout(WAIT).as_deref(),
        Ok("stall-failover")
    );
    let (pack, mut how, messages, rx) = qos1_pack(1);
    how.patience = Some(Duration::from_millis(300));
    connection.submit(&pack, how, messages, 100);
    // Until the message has waited past its patience.
    let failover_id = sweep_until(&connection, &failover_ids);
    assert_eq!(
        failover_id.as_deref(),
        Ok("stall-failover"),
        "the failover broker"
    );
    assert_eq!(
        rx.recv_timeout(WAIT),
        Ok(Outcome::ConnectionError),
        "lost unacknowledged"
    );
    let rx = submit_one(&connection);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    let back = stalling_ids.try_recv();
    assert!(back.is_err(), "not back at the stalling broker: {back:?}");
    drop(connection);
}

/// A connection as `client_id` to an [`unacknowledging_broker`], whose status message alone
/// takes its window of one, with a patience of 2 s (a connect and a keep-alive); the receiver
/// hears each connect.
fn status_alone_at_a_stalling_broker(client_id: &str) -> (Arc<Connection>, mpsc::Receiver<String>) {
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| unacknowledging_broker(listener, tx));
    let connection = Connection::get(&BrokerConfig {
        // Its own: another connection carrying it would be warned of.
        status_topic: Some(format!("kaa/status/{client_id}")),
        keep_alive: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        max_inflight: Some(1),
        ..scripted(port, client_id)
    })
    .expect("opened");
    (connection, ids)
}

/// The status message, alone in a window of one, is judged too: a broker that stops
/// acknowledging is left though no appender's message was ever in flight. (Before: the
/// status message had no patience, and the connection was never found stalled.)
#[test]
fn a_status_message_holding_the_only_slot_is_judged_too() {
    crate::test_log::capture();
    let (connection, ids) = status_alone_at_a_stalling_broker("status-stall");
    assert_eq!(ids.recv_timeout(WAIT).as_deref(), Ok("status-stall"));
    // Until the status message has waited past its patience: a connect and a keep-alive,
    // from its write, which a busy machine may delay.
    let again = sweep_until(&connection, &ids);
    assert_eq!(again.as_deref(), Ok("status-stall"), "connected anew");
    drop(connection);
    // The line names the setting that gave it its patience, not deliveryTimeoutSeconds.
    let lines = crate::test_log::lines_with("as 'status-stall' lost");
    let named = "not acknowledged a message for over 2s (the statusTopic message's";
    assert!(lines.iter().any(|l| l.contains(named)), "{lines:#?}");
}

/// A broker that stalls every connection is reported once, also when the patience lets each
/// connection live past [`HEALTHY`] (1 s in unit tests; `deliveryTimeoutSeconds` of 60 or
/// more in a node): the repeats are DEBUG, and no INFO says that such a connection held.
/// (Before: each of them made its loss news, a WARN and an INFO a cycle.)
#[test]
fn a_broker_stalling_every_long_lived_connection_is_reported_once() {
    crate::test_log::capture();
    // The status message's patience, 2 s, is past HEALTHY.
    let (connection, ids) = status_alone_at_a_stalling_broker("long-stalls");
    for connect in 0..4 {
        let id = sweep_until(&connection, &ids);
        assert_eq!(id.as_deref(), Ok("long-stalls"), "connect {connect}");
    }
    drop(connection);
    let lines = crate::test_log::lines_with("as 'long-stalls'");
    let warned = lines.iter().filter(|l| l.starts_with("WARN")).count();
    assert_eq!(warned, 1, "{lines:#?}");
    let reported = lines.iter().filter(|l| !l.starts_with("DEBUG")).count();
    assert_eq!(
        reported, 3,
        "the first two connects, the first loss: {lines:#?}"
    );
}

/// A broker that stalls each connection only after it has held [`HEALTHY`] says so once,
/// not at every cycle: the INFO that a connection held after quiet losses comes once per
/// loss reported. (Before: one INFO a cycle, with every loss after the first at DEBUG.)
#[test]
fn a_broker_stalling_each_connection_after_it_held_says_it_held_once() {
    crate::test_log::capture();
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| unacknowledging_broker(listener, tx));
    let connection = Connection::get(&scripted(port, "held-once")).expect("opened");
    assert_eq!(ids.recv_timeout(WAIT).as_deref(), Ok("held-once"));
    // The first loss is reported, the second is its repeat, and from the third connect on
    // each connection holds after a quiet loss.
    for cycle in 0..4 {
        std::thread::sleep(HEALTHY + Duration::from_millis(300));
        let (pack, mut how, messages, rx) = qos1_pack(1);
        how.patience = Some(Duration::from_millis(300));
        connection.submit(&pack, how, messages, 100);
        let id = sweep_until(&connection, &ids);
        assert_eq!(id.as_deref(), Ok("held-once"), "cycle {cycle}");
        assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
    }
    drop(connection);
    let lines = crate::test_log::lines_with("as 'held-once'");
    let held = lines.iter().filter(|l| l.contains("has held")).count();
    assert_eq!(held, 1, "{lines:#?}");
    let warned = lines.iter().filter(|l| l.starts_with("WARN")).count();
    assert_eq!(warned, 1, "{lines:#?}");
}

/// An HTTP proxy that answers each CONNECT with 200 and then closes the tunnel, as one whose
/// way to the broker failed does; it reports each CONNECT.
fn tunnel_dropping_proxy(listener: std::net::TcpListener, connects: mpsc::Sender<()>) {
    use std::io::{Read, Write};
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
            if !matches!(s.read(&mut byte), Ok(1)) {
                break;
            }
            head.push(byte[0]);
        }
        if connects.send(()).is_err() {
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    }
}

/// A TLS handshake that a proxy's dropped tunnel cut short says the proxy may have closed it,
/// not only that the broker's port may speak plain MQTT. (Before: "turn ssl off" alone, which
/// sent the operator to the wrong setting.)
#[test]
fn a_tunnel_the_proxy_drops_during_the_tls_handshake_names_the_proxy() {
    crate::test_log::capture();
    let (tx, connects) = mpsc::channel();
    let (proxy, _) = scripted_broker(move |l| tunnel_dropping_proxy(l, tx));
    let connection = Connection::get(&BrokerConfig {
        host: "broker.invalid".into(),
        port: 8883,
        tls: Some(crate::tls::TlsSettings {
            verify: false,
            ca_pem: String::new(),
            client_cert_pem: String::new(),
            client_key_pem: String::new(),
            alpn: Vec::new(),
        }),
        proxy: Some(crate::config::ProxySettings {
            host: "127.0.0.1".into(),
            port: proxy,
            credentials: None,
        }),
        ..scripted(1, "dropped-tunnel")
    })
    .expect("opened");
    assert_eq!(connects.recv_timeout(WAIT), Ok(()));
    let lines = || crate::test_log::lines_with("as 'dropped-tunnel'");
    wait_until("the failed connect logged", || {
        lines().iter().any(|l| l.contains("cannot connect"))
    });
    drop(connection);
    let lines = lines();
    let said = "through the proxy, which may have closed it";
    assert!(lines.iter().any(|l| l.contains(said)), "{lines:#?}");
}

/// An MQTT 3.1.1 broker whose first CONNACK says a session is present, whatever the client
/// asked; later ones do not, and it acks their publishes. It reports each connection's
/// publishes (the connection's number).
fn session_inventing_broker(listener: std::net::TcpListener, publishes: mpsc::Sender<usize>) {
    use std::io::Write;
    for n in 0.. {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let present = u8::from(n == 0);
        if read_packet(&mut s).is_none() || s.write_all(&[0x20, 0x02, present, 0x00]).is_err() {
            return;
        }
        while let Some((kind, body)) = read_packet(&mut s) {
            if kind >> 4 == 3
                && (publishes.send(n).is_err() || s.write_all(&puback_for(&body)).is_err())
            {
                return;
            }
        }
    }
}

/// A broker that says it resumed a session on a connection that asked for a clean one gets
/// no message there: the connection is closed, as MQTT asks, and the pack goes out on the
/// next. (Before: the appender published there, and at QoS 2 a new message taking the packet
/// id of one the broker had kept was confirmed while the broker delivered the old one.)
#[test]
fn a_session_the_broker_resumes_unasked_gets_no_message() {
    crate::test_log::capture();
    let (tx, publishes) = mpsc::channel();
    let (port, _) = scripted_broker(move |l| session_inventing_broker(l, tx));
    let connection = Connection::get(&scripted(port, "unasked-session")).expect("opened");
    let rx = submit_one(&connection);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    assert_eq!(publishes.try_recv(), Ok(1), "on the second connection");
    let lines = crate::test_log::lines_with("as 'unasked-session'");
    let said: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("resumed a session"))
        .collect();
    assert_eq!(said.len(), 1, "{lines:#?}");
    assert!(!said[0].contains("  "), "{said:?}");
    drop(connection);
}

/// An MQTT 5 broker that takes turns refusing a connection (server unavailable) and
/// accepting one it ends 300 ms later with a DISCONNECT (server busy); it reports each
/// CONNECT.
fn refusing_and_dropping_broker_v5(listener: std::net::TcpListener, connects: mpsc::Sender<()>) {
    use std::io::Write;
    for accept in [false, true].into_iter().cycle() {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        if read_packet(&mut s).is_none() || connects.send(()).is_err() {
            return;
        }
        let code = if accept { 0x00 } else { 0x88 };
        if s.write_all(&[0x20, 0x03, 0x00, code, 0x00]).is_ok() && accept {
            std::thread::sleep(Duration::from_millis(300));
            let _ = s.write_all(&[0xe0, 0x02, 0x89, 0x00]);
        }
    }
}

/// A broker that takes turns refusing and dropping the connection is reported once, and
/// its connects between losses alike are DEBUG too: the repeated refusals between them keep
/// them quiet. (Before: each refusal made the next connect an INFO.)
#[test]
fn connects_between_refusals_and_losses_alike_are_quiet() {
    crate::test_log::capture();
    let (tx, connects) = mpsc::channel();
    let (port, _) = scripted_broker(move |l| refusing_and_dropping_broker_v5(l, tx));
    let connection = Connection::get(&BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, "flapping")
    })
    .expect("opened");
    for connect in 0..6 {
        assert_eq!(connects.recv_timeout(WAIT), Ok(()), "connect {connect}");
    }
    let connected = |l: &&String| l.contains("connected to");
    let lines = || crate::test_log::lines_with("as 'flapping'");
    // The sixth connection, accepted, is logged once the driver has read its CONNACK.
    wait_until("three connects logged", || {
        lines().iter().filter(connected).count() == 3
    });
    drop(connection);
    let lines = lines();
    let loud = lines.iter().filter(|l| !l.starts_with("DEBUG"));
    assert_eq!(loud.filter(connected).count(), 2, "{lines:#?}");
}

/// A broker that acknowledges every QoS 1 publish `delay` after it read it, and answers
/// pings; it reports each connection.
fn slow_acking_broker(
    listener: std::net::TcpListener,
    delay: Duration,
    connects: mpsc::Sender<()>,
) {
    use std::io::Write;
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        if read_packet(&mut s).is_none()
            || connects.send(()).is_err()
            || s.write_all(&[0x20, 0x02, 0x00, 0x00]).is_err()
        {
            return;
        }
        let (due, acks) = mpsc::channel::<(Instant, Vec<u8>)>();
        let mut writer = s.try_clone().expect("clone");
        std::thread::spawn(move || {
            for (at, ack) in acks {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                if writer.write_all(&ack).is_err() {
                    return;
                }
            }
        });
        std::thread::spawn(move || {
            while let Some((kind, body)) = read_packet(&mut s) {
                let sent = match kind >> 4 {
                    3 => due.send((Instant::now() + delay, puback_for(&body).to_vec())),
                    12 => due.send((Instant::now(), vec![0xd0, 0x00])),
                    _ => Ok(()),
                };
                if sent.is_err() {
                    return;
                }
            }
        });
    }
}

/// Two appenders share a connection to a broker that acknowledges every message late, past
/// the patience (deliveryTimeoutSeconds) of one of them: the connection stays, and the other
/// appender's packs are all delivered. The broker is slow, not stalled: it acknowledges all
/// along, and before its first ack only the longest patience judges it. (Before: the hasty
/// appender's messages reset the connection each time they waited past their patience,
/// failing every pack of the patient one.)
#[test]
fn a_short_patience_does_not_reset_a_connection_the_broker_acknowledges_late() {
    crate::test_log::capture();
    let (tx, connects) = mpsc::channel();
    let (port, _) = scripted_broker(move |l| slow_acking_broker(l, Duration::from_millis(800), tx));
    let connection = Connection::get(&scripted(port, "slow-acks")).expect("opened");
    connects.recv_timeout(WAIT).expect("connected");
    let submit = |patience| {
        let (pack, mut how, messages, rx) = qos1_pack(1);
        how.patience = Some(patience);
        connection.submit(&pack, how, messages, 100);
        rx
    };
    let mut patient = Vec::new();
    let mut hasty = Vec::new();
    for _ in 0..12 {
        patient.push(submit(Duration::from_secs(5)));
        hasty.push(submit(Duration::from_millis(400)));
        for _ in 0..2 {
            connection.sweep(Instant::now());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for (i, rx) in patient.iter().chain(&hasty).enumerate() {
        let outcome = sweep_until(&connection, rx);
        let lines = crate::test_log::lines_with("as 'slow-acks'");
        assert_eq!(outcome, Ok(Outcome::Delivered), "pack {i}: {lines:#?}");
    }
    assert!(connects.try_recv().is_err(), "connected anew");
    drop(connection);
}

/// An MQTT 5 broker whose CONNACK carries `properties` (length byte first); it acks QoS 1,
/// answers pings, and counts connections.
fn connack_properties_broker_v5(
    listener: std::net::TcpListener,
    properties: &'static [u8],
    connections: mpsc::Sender<()>,
) {
    use std::io::Write;
    while let Ok((mut s, _)) = listener.accept() {
        if connections.send(()).is_err() {
            return;
        }
        std::thread::spawn(move || {
            s.set_read_timeout(Some(WAIT)).expect("timeout");
            if read_packet(&mut s).is_none() {
                return;
            }
            let mut connack = vec![0x20, 2 + properties.len() as u8, 0x00, 0x00];
            connack.extend_from_slice(properties);
            if s.write_all(&connack).is_err() {
                return;
            }
            while let Some((kind, body)) = read_packet(&mut s) {
                let reply = match kind >> 4 {
                    3 => puback_for(&body).to_vec(),
                    12 => vec![0xd0, 0x00],
                    _ => continue,
                };
                if s.write_all(&reply).is_err() {
                    return;
                }
            }
        });
    }
}

/// An MQTT 5 broker that answers the first connection's first publish with a second CONNACK
/// instead of its ack; later publishes it acks. It counts connections.
fn second_connack_broker_v5(listener: std::net::TcpListener, connections: mpsc::Sender<()>) {
    use std::io::Write;
    let mut first = true;
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        if connections.send(()).is_err()
            || read_packet(&mut s).is_none()
            || s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).is_err()
        {
            return;
        }
        while let Some((kind, body)) = read_packet(&mut s) {
            let reply = match kind >> 4 {
                3 if std::mem::take(&mut first) => vec![0x20, 0x03, 0x00, 0x00, 0x00],
                3 => puback_for(&body).to_vec(),
                12 => vec![0xd0, 0x00],
                _ => continue,
            };
            if s.write_all(&reply).is_err() {
                break;
            }
        }
    }
}

/// A second CONNACK on an accepted connection is a broken connection: the appender connects
/// anew and delivers there. (Before: it was taken for a new connection, packet ids started
/// over while the broker held the old ones, and the publish it answered waited for its
/// deadline.)
#[test]
fn a_second_connack_breaks_the_connection_v5() {
    let (tx, connections) = mpsc::channel();
    let (port, _) = scripted_broker(move |l| second_connack_broker_v5(l, tx));
    let connection = Connection::get(&BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, "second-connack-v5")
    })
    .expect("opened");
    connections.recv_timeout(WAIT).expect("connected");
    let rx = submit_one(&connection);
    connections.recv_timeout(WAIT).expect("connected anew");
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
    let rx = submit_one(&connection);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    drop(connection);
}

/// An MQTT 5 broker may turn keep-alive off (Server Keep Alive 0). The connection stays up
/// and delivers. (Before: rumqttc took it for a period of 0, pinged twice at once and
/// failed the connection for the unanswered ping, at every connect.)
#[test]
fn a_server_keep_alive_of_0_keeps_the_connection_v5() {
    let (tx, connections) = mpsc::channel();
    // Server Keep Alive (0x13) = 0.
    let (port, _) =
        scripted_broker(move |l| connack_properties_broker_v5(l, &[0x03, 0x13, 0x00, 0x00], tx));
    let connection = Connection::get(&BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, "keep-alive-0-v5")
    })
    .expect("opened");
    std::thread::sleep(Duration::from_secs(2));
    let rx = submit_one(&connection);
    let answer = rx.recv_timeout(WAIT);
    drop(connection);
    assert_eq!(answer, Ok(Outcome::Delivered));
    assert_eq!(connections.try_iter().count(), 1, "reconnected");
}

/// MQTT 5 forbids a Receive Maximum of 0, and rumqttc would send nothing on such a
/// connection: it is dropped, and the log says why. (Before: it looked connected while every
/// message waited, and no line said anything.)
#[test]
fn a_receive_maximum_of_0_is_a_broken_connection_v5() {
    let (tx, connections) = mpsc::channel();
    // Receive Maximum (0x21) = 0.
    let (port, _) =
        scripted_broker(move |l| connack_properties_broker_v5(l, &[0x03, 0x21, 0x00, 0x00], tx));
    crate::test_log::capture();
    let connection = Connection::get(&BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, "receive-maximum-0-v5")
    })
    .expect("opened");
    let deadline = Instant::now() + WAIT;
    while connections.try_iter().count() == 0 || !connection_says_receive_maximum_0() {
        assert!(
            Instant::now() < deadline,
            "no line about the receive maximum"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!connection.shared.metrics.connected.load(Ordering::Relaxed));
    drop(connection);
}

fn connection_says_receive_maximum_0() -> bool {
    crate::test_log::lines_with("receive-maximum-0-v5")
        .iter()
        .any(|l| l.contains("receive maximum of 0"))
}

/// The packet id of a QoS 1 or 2 PUBLISH, from its body: after the topic.
fn publish_pkid(body: &[u8]) -> u16 {
    let topic = usize::from(u16::from_be_bytes([body[0], body[1]]));
    u16::from_be_bytes([body[2 + topic], body[3 + topic]])
}

/// A broker acking out of order, as a clustered or persisting one may. On its first
/// connection it holds back its answer to the first publish until it has answered the
/// second (QoS 1: PUBACK, with `refusal` as its MQTT 5 reason code if any; QoS 2: PUBREC,
/// then PUBCOMP at the PUBREL), then answers the first 200 ms later; after that, everything
/// in order. It reports every connection and the packet id of every publish.
fn out_of_order_broker(
    listener: std::net::TcpListener,
    connack: &'static [u8],
    refusal: Option<u8>,
    connections: mpsc::Sender<()>,
    pkids: mpsc::Sender<u16>,
) {
    use std::io::Write;
    let answer = |kind: u8, pkid: u16, reason: Option<u8>| {
        let [hi, lo] = pkid.to_be_bytes();
        match reason {
            Some(code) => vec![kind, 0x03, hi, lo, code],
            None => vec![kind, 0x02, hi, lo],
        }
    };
    for n in 0.. {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        if read_packet(&mut s).is_none() || connections.send(()).is_err() {
            return;
        }
        s.write_all(connack).expect("CONNACK");
        let mut held: Option<(u8, u16)> = None;
        let mut publishes = 0;
        while let Some((kind, body)) = read_packet(&mut s) {
            let mut replies = match kind >> 4 {
                3 => {
                    let pkid = publish_pkid(&body);
                    let _ = pkids.send(pkid);
                    publishes += 1;
                    // PUBACK for QoS 1, PUBREC for QoS 2.
                    let ack = if kind & 0x06 == 0x02 { 0x40 } else { 0x50 };
                    if n == 0 && publishes == 1 {
                        held = Some((ack, pkid));
                        continue;
                    }
                    vec![answer(ack, pkid, None)]
                }
                6 => vec![answer(0x70, u16::from_be_bytes([body[0], body[1]]), None)],
                12 => vec![vec![0xd0, 0x00]],
                _ => continue,
            };
            // The second message answered for good: now the first.
            let second_done = matches!(kind >> 4, 6) || (kind >> 4 == 3 && kind & 0x06 == 0x02);
            if let (true, Some((ack, pkid))) = (second_done, held) {
                held = None;
                for reply in replies.drain(..) {
                    if s.write_all(&reply).is_err() {
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
                let reason = refusal.filter(|_| ack == 0x40);
                replies.push(answer(ack, pkid, reason));
            }
            for reply in replies {
                if s.write_all(&reply).is_err() {
                    break;
                }
            }
        }
    }
}

/// Submits `packs` packs of one message each at `qos`, and waits for their answers.
fn answers_through(
    connection: &Connection,
    qos: Qos,
    packs: usize,
) -> Vec<Result<Outcome, mpsc::RecvTimeoutError>> {
    let receivers: Vec<_> = (0..packs)
        .map(|_| {
            let (pack, how, messages, rx) = pack_of(qos, vec![b"{}".to_vec()]);
            connection.submit(&pack, how, messages, 100);
            rx
        })
        .collect();
    receivers.iter().map(|rx| rx.recv_timeout(WAIT)).collect()
}

/// With two packet ids, a broker answering the second message first leaves the first id
/// taken when it comes round again: the third message goes out under the free id with MQTT
/// 3.1.1 (the driver writes the ids the tracker gives), and waits for the taken one with MQTT
/// 5 (rumqttc's client numbers in turn). Every pack is delivered on the one connection, at
/// QoS 1 and 2. (Before, at QoS 2: rumqttc held the third back and let it go at the first's
/// PUBCOMP without keeping it, took its PUBREC for unsolicited and failed the shared
/// connection, and its pack.)
#[test]
fn acks_out_of_order_keep_the_connection() {
    for (version, connack, ids_written) in [
        (
            crate::config::MqttVersion::V3_1_1,
            &[0x20, 0x02, 0x00, 0x00][..],
            [1, 2, 2],
        ),
        (
            crate::config::MqttVersion::V5,
            &[0x20, 0x03, 0x00, 0x00, 0x00][..],
            [1, 2, 1],
        ),
    ] {
        for qos in [Qos::AtLeastOnce, Qos::ExactlyOnce] {
            let (tx, connections) = mpsc::channel();
            let (ids, pkids) = mpsc::channel();
            let (port, _) =
                scripted_broker(move |l| out_of_order_broker(l, connack, None, tx, ids));
            let connection = Connection::get(&BrokerConfig {
                version,
                max_inflight: Some(2),
                ..scripted(port, &format!("out-of-order-{version:?}-{qos:?}"))
            })
            .expect("opened");
            let answers = answers_through(&connection, qos, 3);
            drop(connection);
            let written: Vec<u16> = pkids.try_iter().collect();
            assert_eq!(
                answers,
                vec![Ok(Outcome::Delivered); 3],
                "{version:?} {qos:?}: packet ids written {written:?}"
            );
            assert_eq!(written, ids_written, "{version:?} {qos:?}");
            assert_eq!(connections.try_iter().count(), 1, "{version:?} {qos:?}");
        }
    }
}

/// MQTT 5: the first message refused (PUBACK 0x97, quota exceeded: that message alone; a
/// refusal for the topic would fail the later packs to it unpublished) after the second was
/// acknowledged, on a connection the broker keeps. Its pack is refused and the others are
/// delivered. (Before: rumqttc returns from a refused PUBACK before it lets go the publish
/// held back on that id, which then waited, and the connection took nothing more, until the
/// stall check reset it.)
#[test]
fn a_refusal_out_of_order_holds_nothing_back_v5() {
    let (tx, connections) = mpsc::channel();
    let (ids, pkids) = mpsc::channel();
    let connack = &[0x20, 0x03, 0x00, 0x00, 0x00][..];
    let (port, _) = scripted_broker(move |l| out_of_order_broker(l, connack, Some(0x97), tx, ids));
    let connection = Connection::get(&BrokerConfig {
        version: crate::config::MqttVersion::V5,
        max_inflight: Some(2),
        ..scripted(port, "refused-out-of-order-v5")
    })
    .expect("opened");
    let answers = answers_through(&connection, Qos::AtLeastOnce, 4);
    drop(connection);
    let written: Vec<u16> = pkids.try_iter().collect();
    assert_eq!(
        answers,
        [
            Ok(Outcome::RemoteError),
            Ok(Outcome::Delivered),
            Ok(Outcome::Delivered),
            Ok(Outcome::Delivered)
        ],
        "packet ids written {written:?}"
    );
    assert_eq!(connections.try_iter().count(), 1);
}

/// How a [`packet_limit_broker`] meets a message over its limit.
#[derive(Clone, Copy, PartialEq)]
enum OverLimit {
    /// MQTT 3.1.1: it closes the connection without a word.
    Closes,
    /// MQTT 5: DISCONNECT "packet too large" (0x95), then the close.
    Disconnects,
    /// MQTT 5, as Mosquitto 2.0.11 does at its `message_size_limit`: a PUBACK of reason 0x95,
    /// which MQTT 5 does not allow there, and the connection kept.
    AcksWith0x95,
}

/// A broker with a packet limit it does not announce, as EMQX (1 MB by default), AWS IoT
/// (128 KB) and Mosquitto's `max_packet_size` are to an MQTT 3.1.1 client: it acks each QoS 1
/// PUBLISH and meets one whose remaining length is over `limit` as `over` says. It reports the
/// client id of each CONNECT.
fn packet_limit_broker(
    listener: std::net::TcpListener,
    limit: usize,
    over: OverLimit,
    ids: mpsc::Sender<String>,
) {
    let v5 = over != OverLimit::Closes;
    use std::io::Write;
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let Some((0x10, body)) = read_packet(&mut s) else {
            continue;
        };
        let id = if v5 {
            // MQTT 5 has the CONNECT's properties before the id: skip their length and them.
            let properties = usize::from(body[10]);
            assert!(properties < 0x80, "a one-byte properties length");
            let at = 11 + properties;
            let len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
            String::from_utf8_lossy(&body[at + 2..at + 2 + len]).into_owned()
        } else {
            connect_client_id(&body)
        };
        let connack: &[u8] = if v5 {
            &[0x20, 0x03, 0x00, 0x00, 0x00]
        } else {
            &[0x20, 0x02, 0x00, 0x00]
        };
        if ids.send(id).is_err() || s.write_all(connack).is_err() {
            return;
        }
        while let Some((kind, body)) = read_packet(&mut s) {
            if kind >> 4 != 3 {
                continue;
            }
            if body.len() > limit {
                match over {
                    OverLimit::Closes => break,
                    OverLimit::Disconnects => {
                        let _ = s.write_all(&[0xe0, 0x02, 0x95, 0x00]);
                        break;
                    }
                    OverLimit::AcksWith0x95 => {
                        let [_, _, high, low] = puback_for(&body);
                        let _ = s.write_all(&[0x40, 0x03, high, low, 0x95]);
                        continue;
                    }
                }
            }
            if s.write_all(&puback_for(&body)).is_err() {
                break;
            }
        }
    }
}

/// One endpoint's message over a packet limit the broker does not announce: its pack fails
/// with the connection twice (Kaa sends it again), then the connection has learned the limit
/// and fails it `onInternalError` before writing it, while other packs are delivered. Neither
/// close is taken for another client with the id. (Before: every attempt reset the shared
/// connection, and two in a row were counted as a takeover, which moved the client id for
/// the life of the process: under an ACL keyed on the id, packs confirmed and dropped.) The
/// same with Mosquitto's PUBACK of reason 0x95, which the MQTT client cannot read and fails
/// the connection at. (Before: each pack of it reset the shared connection, for good, and
/// the line named a CONNACK.)
#[test]
fn a_message_over_an_unannounced_packet_limit_fails_its_own_pack_not_the_connection() {
    use crate::config::MqttVersion::{V3_1_1, V5};
    crate::test_log::capture();
    for (version, over, id) in [
        (V3_1_1, OverLimit::Closes, "packet-limit-v4"),
        (V5, OverLimit::Disconnects, "packet-limit-v5"),
        (V5, OverLimit::AcksWith0x95, "packet-limit-v5-ack"),
    ] {
        let (tx, ids) = mpsc::channel();
        let v5 = version == V5;
        let (port, _) = scripted_broker(move |l| packet_limit_broker(l, 2000, over, tx));
        let config = BrokerConfig {
            version,
            ..scripted(port, id)
        };
        let connection = Connection::get(&config).expect("opened");
        let submit = |payloads: Vec<Vec<u8>>| {
            let (pack, how, messages, rx) = pack_of(Qos::AtLeastOnce, payloads);
            connection.submit(&pack, how, messages, 100);
            rx
        };
        let small = || submit(vec![b"{\"n\":1}".to_vec(); 3]);
        let large = || submit(vec![b"{}".to_vec(), vec![b'x'; 5000]]);
        assert_eq!(ids.recv_timeout(WAIT).as_deref(), Ok(id));
        assert_eq!(small().recv_timeout(WAIT), Ok(Outcome::Delivered), "{id}");
        for attempt in 1..=2 {
            assert_eq!(
                large().recv_timeout(WAIT),
                Ok(Outcome::ConnectionError),
                "{id}, attempt {attempt}"
            );
            assert_eq!(ids.recv_timeout(WAIT).as_deref(), Ok(id), "the same id");
            assert_eq!(small().recv_timeout(WAIT), Ok(Outcome::Delivered), "{id}");
        }
        let answers: Vec<_> = [large(), small(), large(), small()].into_iter().collect();
        let outcomes: Vec<_> = answers.iter().map(|rx| rx.recv_timeout(WAIT)).collect();
        assert_eq!(
            outcomes,
            [
                Ok(Outcome::InternalError),
                Ok(Outcome::Delivered),
                Ok(Outcome::InternalError),
                Ok(Outcome::Delivered)
            ],
            "{id}"
        );
        assert!(
            ids.recv_timeout(Duration::from_millis(300)).is_err(),
            "{id}: no connection after the second"
        );
        assert_eq!(connection.metrics().takeovers.load(Ordering::Relaxed), 0);
        let lines = crate::test_log::lines_with(&format!("as '{id}'"));
        let takeover: Vec<_> = lines.iter().filter(|l| l.contains("takeover")).collect();
        assert!(takeover.is_empty(), "{takeover:?}");
        let suspected = lines
            .iter()
            .filter(|l| l.starts_with("WARN") && l.contains("may limit the packet size"))
            .count();
        assert_eq!(suspected, 1, "{lines:#?}");
        let refused: Vec<_> = lines
            .iter()
            .filter(|l| l.contains("maxMessageBytes"))
            .collect();
        assert_eq!(refused.len(), 2, "{lines:#?}");
        assert!(refused[0].starts_with("ERROR") && refused[1].starts_with("WARN"));
        assert!(refused[0].contains("5008 bytes") || v5, "{}", refused[0]);
        if over == OverLimit::AcksWith0x95 {
            let lost: Vec<_> = lines.iter().filter(|l| l.contains(" lost: ")).collect();
            assert_eq!(lost.len(), 2, "one for each close: {lines:#?}");
            assert!(
                lost.iter()
                    .all(|l| l.contains("lost: the broker acknowledged a message with reason 0x95")),
                "{lost:#?}"
            );
        }
    }
}

/// An endpoint whose records pass a packet limit the broker does not announce, each one
/// different (a byte, a length), so that the same message is never at two closes: after
/// three closes at its messages, its messages that large fail `onInternalError` unpublished,
/// while another endpoint's small ones are delivered and a third endpoint's large one still
/// goes out. (Before: every pack of it closed the connection every appender shares.)
#[test]
fn an_endpoint_changing_its_oversized_records_closes_the_connection_three_times() {
    crate::test_log::capture();
    let id = "oversized-endpoint";
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |l| packet_limit_broker(l, 2000, OverLimit::Closes, tx));
    let connection = Connection::get(&scripted(port, id)).expect("opened");
    let submit = |endpoint: u64, payload: Vec<u8>| {
        let (pack, mut how, messages, rx) = pack_of(Qos::AtLeastOnce, vec![payload]);
        how.origin = Origin {
            appender: 1,
            endpoint,
        };
        connection.submit(&pack, how, messages, 100);
        rx.recv_timeout(WAIT).expect("an answer")
    };
    let small = || submit(1, b"{\"n\":1}".to_vec());
    let large = |n: u8| submit(2, vec![b'a' + n; 5000 + usize::from(n)]);
    assert_eq!(ids.recv_timeout(WAIT).as_deref(), Ok(id));
    for n in 0..3 {
        assert_eq!(small(), Outcome::Delivered);
        assert_eq!(large(n), Outcome::ConnectionError, "close {n}");
        assert_eq!(ids.recv_timeout(WAIT).as_deref(), Ok(id), "the same id");
    }
    assert_eq!(large(3), Outcome::InternalError);
    assert_eq!(small(), Outcome::Delivered);
    assert!(ids.try_recv().is_err(), "the connection held");
    assert_eq!(submit(3, vec![b'z'; 5000]), Outcome::ConnectionError);
    assert_eq!(connection.metrics().takeovers.load(Ordering::Relaxed), 0);
    let refused = crate::test_log::lines_with("fails its pack unpublished (onInternalError)");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("5011 bytes"), "{}", refused[0]);
}

/// A broker that closes the first connection at a publish over 1,850 bytes and the second at
/// its first publish, as another node taking the id would; it acks every other QoS 1 publish.
/// It reports each CONNECT's client id.
fn kicking_broker(listener: std::net::TcpListener, ids: mpsc::Sender<String>) {
    use std::io::Write;
    for n in 1.. {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let Some((0x10, body)) = read_packet(&mut s) else {
            continue;
        };
        if ids.send(connect_client_id(&body)).is_err() || s.write_all(&[0x20, 2, 0, 0]).is_err() {
            return;
        }
        while let Some((kind, body)) = read_packet(&mut s) {
            if kind >> 4 != 3 {
                continue;
            }
            if (n == 1 && body.len() > 1850) || n == 2 || s.write_all(&puback_for(&body)).is_err() {
                break;
            }
        }
    }
}

/// A takeover fight whose push-outs each leave a record a little larger than any acknowledged
/// unacknowledged, the same one sent again: it is taken for the takeover it is, and teaches no
/// packet limit. (Before: the same message at two closes taught a limit of its size, and
/// records that large failed onInternalError for 10 minutes though the broker takes them.)
#[test]
fn a_takeover_fight_over_a_resent_record_teaches_no_limit() {
    let id = "fight-resent";
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |l| kicking_broker(l, tx));
    let connection = Connection::get(&scripted(port, id)).expect("opened");
    let submit = |payload: Vec<u8>| {
        let (pack, how, messages, rx) = pack_of(Qos::AtLeastOnce, vec![payload]);
        connection.submit(&pack, how, messages, 100);
        rx.recv_timeout(WAIT)
    };
    assert_eq!(ids.recv_timeout(WAIT).as_deref(), Ok(id));
    assert_eq!(submit(vec![b'x'; 1800]), Ok(Outcome::Delivered));
    for _ in 0..2 {
        assert_eq!(submit(vec![b'y'; 1900]), Ok(Outcome::ConnectionError));
        assert!(ids.recv_timeout(WAIT).is_ok());
    }
    assert_eq!(connection.metrics().takeovers.load(Ordering::Relaxed), 1);
    assert_eq!(submit(vec![b'y'; 1900]), Ok(Outcome::Delivered));
    assert_eq!(submit(vec![b'z'; 1950]), Ok(Outcome::Delivered));
}

/// MQTT 5: refuses the first publish of the first connection for its topic (PUBACK 0x87) and
/// closes it, then refuses every connection (CONNACK 0x87).
fn refusing_a_topic_then_connections_v5(listener: std::net::TcpListener) {
    use std::io::Write;
    let mut first = true;
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        if read_packet(&mut s).is_none() {
            continue;
        }
        if !std::mem::take(&mut first) {
            let _ = s.write_all(&[0x20, 0x03, 0x00, 0x87, 0x00]);
            continue;
        }
        let _ = s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]);
        while let Some((kind, body)) = read_packet(&mut s) {
            if kind >> 4 == 3 {
                let [hi, lo] = publish_pkid(&body).to_be_bytes();
                let _ = s.write_all(&[0x40, 0x03, hi, lo, 0x87]);
                break;
            }
        }
    }
}

/// A topic the first broker refused (and then the connection itself) is published to the
/// failover broker, which takes it: one broker's refusals say nothing of another's ACL.
#[test]
fn a_topic_one_broker_refused_goes_to_the_failover_broker() {
    let (refusing, _) = scripted_broker(refusing_a_topic_then_connections_v5);
    let (connection, connects) = with_acking_failover(refusing, "refused-topic-failover");
    let rx = submit_one(&connection);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::RemoteError));
    connects
        .recv_timeout(WAIT)
        .expect("the failover broker was connected to");
    let rx = submit_one(&connection);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    drop(connection);
}

/// MQTT 5: acks every QoS 1 publish, and closes the connection at a publish to `denied`, as
/// HiveMQ does at a QoS 0 publish its ACL denies: the first `saying` connections with a
/// DISCONNECT "not authorized", later ones with a reset and nothing else, which is what the
/// client meets when its next publish overtakes that DISCONNECT. It reports every connection
/// once its CONNACK is sent.
fn closing_at_a_topic_v5(
    listener: std::net::TcpListener,
    (denied, saying): (&str, usize),
    connects: mpsc::Sender<()>,
) {
    use std::io::Write;
    for n in 0.. {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        if read_packet(&mut s).is_none()
            || s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).is_err()
            || connects.send(()).is_err()
        {
            return;
        }
        while let Some((kind, body)) = read_packet(&mut s) {
            if kind >> 4 != 3 {
                continue;
            }
            let topic = usize::from(u16::from_be_bytes([body[0], body[1]]));
            if &body[2..2 + topic] == denied.as_bytes() {
                if n < saying {
                    let _ = s.write_all(&[0xe0, 0x02, 0x87, 0x00]);
                } else {
                    socket2::SockRef::from(&s)
                        .set_linger(Some(Duration::ZERO))
                        .expect("linger");
                }
                break;
            }
            if (kind >> 1) & 3 == 1 {
                let [hi, lo] = publish_pkid(&body).to_be_bytes();
                if s.write_all(&[0x40, 0x02, hi, lo]).is_err() {
                    break;
                }
            }
        }
    }
}

/// An MQTT 5 connection as `client_id` to a [`closing_at_a_topic_v5`] broker that closes at
/// `denied` with a DISCONNECT `saying` times first; and where the broker reports connections.
fn closing_at_denied(saying: usize, client_id: &str) -> (Arc<Connection>, mpsc::Receiver<()>) {
    let (tx, connects) = mpsc::channel();
    let (port, _) = scripted_broker(move |l| closing_at_a_topic_v5(l, ("denied", saying), tx));
    let connection = Connection::get(&BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, client_id)
    })
    .expect("opened");
    (connection, connects)
}

/// The answer to a pack of one message to `topic` at `qos`.
fn publish_one(
    connection: &Connection,
    qos: Qos,
    topic: &str,
) -> Result<Outcome, mpsc::RecvTimeoutError> {
    let (pack, how, mut messages, rx) = pack_of(qos, vec![b"{}".to_vec()]);
    messages[0].topic = Arc::from(topic);
    connection.submit(&pack, how, messages, 100);
    rx.recv_timeout(WAIT)
}

/// After two closes at `denied`: on the next connection a pack to it fails unpublished, and
/// none closes it; nothing was taken for a takeover.
fn assert_denied_refused_after_two_closes(connection: &Connection, connects: &mpsc::Receiver<()>) {
    connects.recv_timeout(WAIT).expect("a third connection");
    assert_eq!(
        publish_one(connection, Qos::AtMostOnce, "denied"),
        Ok(Outcome::RemoteError)
    );
    let another = connects.recv_timeout(Duration::from_secs(1));
    assert!(another.is_err(), "no third close");
    assert_eq!(connection.metrics().takeovers.load(Ordering::Relaxed), 0);
}

/// MQTT 5, a connection reset just after a QoS 0 message to a topic the broker never took, on
/// a connection that acknowledged a message: no reason could be read, as under MQTT 3.1.1, so
/// the topic is a suspect at the first reset and refused at the second. Packs to it then
/// fail unpublished (onRemoteError), and the connection is reset twice, under its own id.
/// (Before: a reset under MQTT 5 was blamed on nothing, the second was taken for another
/// client with the id, and every pack to the topic cost the shared connection a reset.)
#[test]
fn resets_at_a_topic_under_mqtt5_refuse_it_as_silent_closes_do() {
    let (connection, connects) = closing_at_denied(0, "reset-at-topic");
    let publish = |qos, topic| publish_one(&connection, qos, topic);
    for reset in 0..2 {
        connects.recv_timeout(WAIT).expect("a connection");
        assert_eq!(publish(Qos::AtLeastOnce, "allowed"), Ok(Outcome::Delivered));
        assert_eq!(
            publish(Qos::AtMostOnce, "denied"),
            Ok(Outcome::Delivered),
            "written, before reset {reset}"
        );
    }
    assert_denied_refused_after_two_closes(&connection, &connects);
    assert_eq!(publish(Qos::AtLeastOnce, "allowed"), Ok(Outcome::Delivered));
}

/// MQTT 5, a QoS 0 appender's connection closed at its first message each time, first with a
/// DISCONNECT "not authorized", then with a reset that left no reason to read (HiveMQ's
/// DISCONNECT overtaken by the appender's next publishes): the reset refuses the topic the
/// DISCONNECT made a suspect, though the connection answered nothing. Two closes, then packs
/// to it fail unpublished. (Before: the reset blamed nothing, and the topic cost a third.)
#[test]
fn a_reset_after_a_refusing_close_refuses_its_topic_before_any_answer() {
    let (connection, connects) = closing_at_denied(1, "reset-after-refusal");
    for close in 0..2 {
        connects.recv_timeout(WAIT).expect("a connection");
        assert_eq!(
            publish_one(&connection, Qos::AtMostOnce, "denied"),
            Ok(Outcome::Delivered),
            "written, before close {close}"
        );
    }
    assert_denied_refused_after_two_closes(&connection, &connects);
}

/// A topic an endpoint's field made long is shown cut short where a close is blamed on it:
/// one readable log line, not 64 KiB of topic.
#[test]
fn a_long_topic_blamed_for_a_close_is_logged_cut_short() {
    for blame in [
        TopicBlame::Suspect,
        TopicBlame::Refused,
        TopicBlame::RefusedToOne,
    ] {
        let topic = Arc::from("t".repeat(65_000));
        let text = blamed_close("closed", Blame::Topic { topic, blame });
        assert!(text.len() < 2_000, "{} bytes", text.len());
        assert!(text.contains("... (65000 bytes)"), "{text}");
    }
}

/// Two brokers that fail in different ways (the first refuses TCP, the failover broker
/// refuses the CONNECT) are reported once each, their repeats at DEBUG. (Before: one last
/// failure per connection, so the two alternated and every attempt was a WARN or an ERROR,
/// about 17,000 lines a day for as long as both stayed away.)
#[test]
fn brokers_failing_in_turn_are_each_reported_once() {
    crate::test_log::capture();
    let (go, go_rx) = mpsc::channel();
    go.send(()).expect("the broker refuses at once");
    let (refusing, _) = scripted_broker(move |l| refusing_broker_v4(l, go_rx));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("port")
        .port();
    let connection = Connection::get(&BrokerConfig {
        failover: vec![("127.0.0.1".into(), refusing)],
        ..scripted(closed, "failing-in-turn")
    })
    .expect("opened");
    std::thread::sleep(Duration::from_secs(3));
    drop(connection);
    let lines = crate::test_log::lines_with("as 'failing-in-turn'");
    let reported: Vec<_> = lines.iter().filter(|l| !l.starts_with("DEBUG")).collect();
    assert!(lines.len() >= 6, "rounds of attempts: {lines:#?}");
    assert_eq!(reported.len(), 2, "{reported:#?}");
}

/// A broker that acknowledges a message twice (MQTT 3.1.1 and 5): rumqttc fails the
/// connection at the second PUBACK, and the WARN names a fault of the broker as one cause,
/// where it said the connection never used the packet id, though it had (a review's case);
/// the next connection delivers.
#[test]
fn a_broker_acknowledging_twice_is_named_as_at_fault() {
    use std::io::Write;
    crate::test_log::capture();
    for (version, id) in [
        (crate::config::MqttVersion::V3_1_1, "twice-acked"),
        (crate::config::MqttVersion::V5, "twice-acked-v5"),
    ] {
        let v5 = version == crate::config::MqttVersion::V5;
        let (port, _) = scripted_broker(move |listener| {
            for n in 0.. {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                s.set_read_timeout(Some(WAIT)).expect("timeout");
                let connack: &[u8] = if v5 {
                    &[0x20, 0x03, 0x00, 0x00, 0x00]
                } else {
                    &[0x20, 0x02, 0x00, 0x00]
                };
                if !matches!(read_packet(&mut s), Some((0x10, _))) || s.write_all(connack).is_err()
                {
                    return;
                }
                while let Some((kind, body)) = read_packet(&mut s) {
                    if kind >> 4 != 3 {
                        continue;
                    }
                    let ack = puback_for(&body);
                    let times = if n == 0 { 2 } else { 1 };
                    if s.write_all(&ack.repeat(times)).is_err() {
                        break;
                    }
                }
            }
        });
        let connection = Connection::get(&BrokerConfig {
            version,
            ..scripted(port, id)
        })
        .expect("opened");
        assert_eq!(
            submit_one(&connection).recv_timeout(WAIT),
            Ok(Outcome::Delivered)
        );
        let warned = crate::test_log::await_line(
            &format!("as '{id}'"),
            |l| l.starts_with("WARN") && l.contains("packet id 1"),
            WAIT,
        );
        assert!(
            warned.contains("no message in flight on this connection has")
                && warned.contains("an acknowledgement sent twice is a fault of the broker")
                && !warned.contains("never used"),
            "{warned}"
        );
        assert_eq!(
            submit_one(&connection).recv_timeout(WAIT),
            Ok(Outcome::Delivered),
            "delivered on the next connection"
        );
    }
}

/// With cleanSession on, a broker that sends the appender messages it never subscribed to
/// (a rule of the broker's, such as an auto-subscription; no broker the tests run can be
/// made to): each is acknowledged and dropped, one WARN a connection names the topic and the
/// likely cause, and the connection and its packs go on.
#[test]
fn messages_sent_unasked_on_a_clean_session_are_acknowledged_and_dropped() {
    use std::io::Write;
    crate::test_log::capture();
    let (acks, acked) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let Some((0x10, _)) = read_packet(&mut s) else {
            return;
        };
        s.write_all(&[0x20, 0x02, 0x00, 0x00]).expect("CONNACK");
        for pkid in [7, 8] {
            // PUBLISH, QoS 1, to "auto/x", with this packet id and the payload "hi".
            let mut publish = vec![0x32, 12, 0x00, 0x06];
            publish.extend_from_slice(b"auto/x");
            publish.extend_from_slice(&[0x00, pkid, b'h', b'i']);
            s.write_all(&publish).expect("PUBLISH");
        }
        while let Some((kind, body)) = read_packet(&mut s) {
            match kind >> 4 {
                3 if s.write_all(&puback_for(&body)).is_err() => return,
                4 => {
                    let _ = acks.send(u16::from_be_bytes([body[0], body[1]]));
                }
                _ => {}
            }
        }
    });
    let connection = Connection::get(&scripted(port, "sent-unasked")).expect("opened");
    let got: Vec<_> = (0..2).map(|_| acked.recv_timeout(WAIT)).collect();
    assert_eq!(got, [Ok(7), Ok(8)], "each acknowledged");
    // The broker takes one connection only: a pack is delivered if this one went on.
    let delivered = submit_one(&connection);
    assert_eq!(delivered.recv_timeout(WAIT), Ok(Outcome::Delivered));
    let said = crate::test_log::lines_with("as 'sent-unasked'");
    let said: Vec<_> = said
        .iter()
        .filter(|l| l.contains("sent a message"))
        .collect();
    assert_eq!(said.len(), 1, "once a connection: {said:?}");
    crate::test_log::assert_says(
        said[0],
        &[
            "WARN ",
            "the broker sent a message on 'auto/x', acknowledged and dropped",
            "its session is clean, so a rule of the broker's (an auto-subscription?)",
        ],
    );
    drop(connection);
}

/// A WebSocket endpoint that answers each of its first `attempts` upgrade requests with
/// `answer(accept)` (`accept`: the `Sec-WebSocket-Accept` that request asks for), and reports
/// each request and whether anything came after the answer.
fn websocket_endpoint(
    listener: std::net::TcpListener,
    attempts: usize,
    answer: impl Fn(&str) -> String,
    requests: mpsc::Sender<(String, bool)>,
) {
    use sha1::Digest;
    use std::io::{Read, Write};
    for stream in listener.incoming().take(attempts) {
        let Ok(mut s) = stream else { return };
        s.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let mut request = Vec::new();
        let mut byte = [0u8];
        while !request.ends_with(b"\r\n\r\n") && s.read_exact(&mut byte).is_ok() {
            request.push(byte[0]);
        }
        let request = String::from_utf8_lossy(&request).into_owned();
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap_or_default();
        let mut sha = sha1::Sha1::new();
        sha.update(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
        let accept = data_encoding::BASE64.encode(&sha.finalize());
        if s.write_all(answer(&accept).as_bytes()).is_err() {
            return;
        }
        let more = matches!(s.read(&mut [0u8; 64]), Ok(n) if n > 0);
        if requests.send((request, more)).is_err() {
            return;
        }
    }
}

/// A WebSocket connection to `port` as `client_id`, at `/mqtt`.
fn over_websocket(port: u16, client_id: &str) -> BrokerConfig {
    BrokerConfig {
        transport: crate::config::Transport::WebSocket {
            path: "/mqtt".into(),
        },
        ..scripted(port, client_id)
    }
}

/// An endpoint that takes the WebSocket upgrade without the `mqtt` subprotocol the appender
/// asked for speaks something else: a connection error, before any MQTT is sent, and the
/// attempts go on.
#[test]
fn a_websocket_upgrade_without_the_mqtt_subprotocol_is_a_connection_error() {
    crate::test_log::capture();
    let (tx, requests) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| {
        let answer = |accept: &str| {
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: \
                 Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
        };
        websocket_endpoint(listener, 2, answer, tx);
    });
    let connection = Connection::get(&over_websocket(port, "ws-no-mqtt")).expect("opened");
    let waiting = submit_one(&connection);
    for attempt in 0..2 {
        let (request, more) = requests.recv_timeout(WAIT).expect("an upgrade request");
        assert!(request.starts_with("GET /mqtt HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains("\r\nSec-WebSocket-Protocol: mqtt\r\n"),
            "{request}"
        );
        assert!(!more, "attempt {attempt}: nothing is sent over it");
    }
    let said = crate::test_log::await_line("as 'ws-no-mqtt'", |l| l.starts_with("WARN"), WAIT);
    // Not a refusal (onRemoteError): the pack waits for its deadline, onConnectionError.
    assert_eq!(waiting.try_recv(), Err(mpsc::TryRecvError::Empty));
    drop(connection);
    assert!(said.contains("cannot connect to "), "{said}");
    assert!(said.to_lowercase().contains("subprotocol"), "{said}");
}

/// Any HTTP answer to the upgrade but 101 is a connection error whose line gives the status;
/// a redirect is not followed.
#[test]
fn a_websocket_upgrade_refused_over_http_is_a_connection_error_naming_the_status() {
    crate::test_log::capture();
    let (went, gone_elsewhere) = mpsc::channel();
    let (elsewhere, _) = scripted_broker(move |listener| {
        for stream in listener.incoming() {
            if stream.is_err() || went.send(()).is_err() {
                return;
            }
        }
    });
    for (status, id) in [
        ("404 Not Found", "ws-404"),
        ("403 Forbidden", "ws-403"),
        ("301 Moved Permanently", "ws-301"),
    ] {
        let (tx, requests) = mpsc::channel();
        let (port, _) = scripted_broker(move |listener| {
            let answer = |_: &str| {
                format!(
                    "HTTP/1.1 {status}\r\nLocation: ws://127.0.0.1:{elsewhere}/mqtt\r\n\
                     Content-Length: 0\r\n\r\n"
                )
            };
            websocket_endpoint(listener, 2, answer, tx);
        });
        let connection = Connection::get(&over_websocket(port, id)).expect("opened");
        for _ in 0..2 {
            let (request, _) = requests.recv_timeout(WAIT).expect("an upgrade request");
            assert!(request.starts_with("GET /mqtt HTTP/1.1\r\n"), "{request}");
        }
        let said =
            crate::test_log::await_line(&format!("as '{id}'"), |l| l.starts_with("WARN"), WAIT);
        drop(connection);
        assert!(said.contains(&format!("HTTP error: {status}")), "{said}");
    }
    assert!(
        gone_elsewhere.try_recv().is_err(),
        "the redirect was followed"
    );
}

/// A broker that goes silent on an idle connection (a dead host, a NAT that dropped the
/// flow): it answers no ping, and the appender gives the connection up after about twice
/// `keepAliveSeconds`, says so, and connects again, where waiting packs go out.
#[test]
fn a_broker_that_stops_answering_pings_is_left_after_the_keep_alive() {
    use std::io::Write;
    crate::test_log::capture();
    let (connects, connected) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| {
        for (n, stream) in listener.incoming().take(2).enumerate() {
            let Ok(mut s) = stream else { return };
            s.set_read_timeout(Some(WAIT)).expect("timeout");
            let Some((0x10, _)) = read_packet(&mut s) else {
                return;
            };
            s.write_all(&[0x20, 0x02, 0x00, 0x00]).expect("CONNACK");
            if connects.send(Instant::now()).is_err() {
                return;
            }
            // The first connection hears and answers nothing more; the second acks.
            while let Some((kind, body)) = read_packet(&mut s) {
                if n == 1 && kind >> 4 == 3 && s.write_all(&puback_for(&body)).is_err() {
                    return;
                }
            }
        }
    });
    let connection = Connection::get(&BrokerConfig {
        keep_alive: Duration::from_secs(1),
        ..scripted(port, "pings-unanswered")
    })
    .expect("opened");
    let first = connected.recv_timeout(WAIT).expect("a connection");
    let second = connected
        .recv_timeout(WAIT)
        .expect("the dead connection left");
    let lost = crate::test_log::await_line("as 'pings-unanswered'", |l| l.contains("lost"), WAIT);
    let delivered = submit_one(&connection);
    assert_eq!(delivered.recv_timeout(WAIT), Ok(Outcome::Delivered));
    drop(connection);
    // Not before the keep-alive: a ping is sent after one period and found unanswered after
    // the next.
    assert!(
        second - first >= Duration::from_secs(1),
        "{:?}",
        second - first
    );
    assert!(lost.starts_with("WARN connection to "), "{lost}");
    assert!(
        lost.contains(
            "the broker answered nothing, not even a ping, for a whole keep-alive period \
             (keepAliveSeconds"
        ),
        "{lost}"
    );
}

/// `connectTimeoutSeconds` bounds every stage of a connect, not only the CONNACK: a peer that
/// takes the TCP connection and then says nothing in the TLS handshake, or to the WebSocket
/// upgrade, is given up after it and tried again, and the line names the setting.
#[test]
fn a_silent_tls_handshake_or_websocket_upgrade_is_bounded_by_connect_timeout_seconds() {
    use std::io::Read;
    crate::test_log::capture();
    let tls = crate::tls::TlsSettings {
        verify: false,
        ca_pem: String::new(),
        client_cert_pem: String::new(),
        client_key_pem: String::new(),
        alpn: Vec::new(),
    };
    let websocket = crate::config::Transport::WebSocket {
        path: "/mqtt".into(),
    };
    for (id, tls, transport) in [
        ("mute-tls", Some(tls), crate::config::Transport::Tcp),
        ("mute-upgrade", None, websocket),
    ] {
        let (accepted, accepts) = mpsc::channel();
        let (port, _) = scripted_broker(move |listener| {
            let mut held = Vec::new();
            for stream in listener.incoming().take(2) {
                let Ok(mut stream) = stream else { return };
                // Reads the ClientHello or the upgrade request, and answers nothing.
                let _ = stream.read(&mut [0; 1024]);
                held.push(stream);
                if accepted.send(Instant::now()).is_err() {
                    return;
                }
            }
        });
        let connection = Connection::get(&BrokerConfig {
            tls,
            transport,
            connect_timeout: Duration::from_secs(1),
            ..scripted(port, id)
        })
        .expect("opened");
        let first = accepts.recv_timeout(WAIT).expect("a connect");
        let second = accepts.recv_timeout(WAIT).expect("tried again");
        let said = crate::test_log::await_line(
            &format!("as '{id}'"),
            |l| l.starts_with("WARN cannot connect to "),
            WAIT,
        );
        drop(connection);
        // Stamped after the client's timer started: a little slack.
        assert!(
            second - first >= Duration::from_millis(900),
            "{id}: {:?}",
            second - first
        );
        assert!(
            said.contains("not connected within connectTimeoutSeconds"),
            "{said}"
        );
    }
}

/// A broker ending a connection with a bare DISCONNECT (no reason code: MQTT 5's normal
/// disconnection) is said to have closed it so, not as an unreadable packet. (Before: "lost:
/// Mqtt state: Mqtt serialization/deserialization error: Payload is required".)
#[test]
fn a_bare_disconnect_is_named_as_the_brokers_close() {
    crate::test_log::capture();
    let (connection, connects) = to_busy_broker("bare-disconnect", None);
    connects.recv_timeout(WAIT).expect("connected");
    let line =
        crate::test_log::await_line("as 'bare-disconnect' lost", |l| l.starts_with("WARN"), WAIT);
    drop(connection);
    crate::test_log::assert_says(
        &line,
        &[
            "a DISCONNECT without a reason code",
            "normal disconnection",
            "or a malformed packet",
        ],
    );
    assert!(!line.contains("Payload is required"), "{line}");
}

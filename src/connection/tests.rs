use super::*;
use crate::protocol::{Grants, Outbox, Ready, Unqueued};
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

const WAIT: Duration = Duration::from_secs(10);

/// What the scripted event loop does at its next poll.
enum Step {
    Event(Observed),
    Panic,
}

/// An event loop that polls what the test sends it, and panics when told to. It counts the
/// polls dropped before their step came: the polls the driver cancelled.
struct Scripted(UnboundedReceiver<Step>, Arc<AtomicUsize>);

/// Counts itself into its counter when dropped still armed.
struct Cancelled(Option<Arc<AtomicUsize>>);

impl Drop for Cancelled {
    fn drop(&mut self) {
        if let Some(count) = self.0.take() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl EventLoop for Scripted {
    type Options = ();

    async fn poll(&mut self) -> Result<Observed, Failure> {
        let mut cancelled = Cancelled(Some(Arc::clone(&self.1)));
        let step = self.0.recv().await;
        cancelled.0 = None;
        match step {
            Some(Step::Event(event)) => Ok(event),
            Some(Step::Panic) => panic!("injected: the event loop panics"),
            None => std::future::pending().await,
        }
    }

    async fn write(&mut self, _: &mut Ready) -> Result<bool, Failure> {
        Ok(false)
    }

    fn switch_to(&mut self, _: &(), _: &str) {}

    fn drop_connection(&mut self) {}

    fn forget(&mut self) -> (usize, Vec<Observed>) {
        (0, Vec::new())
    }
}

/// A client whose channel takes every publish.
struct Accepting;

impl Outbox for Accepting {
    fn try_publish(&mut self, _: Message, _: &PublishOptions) -> Result<(), Unqueued> {
        Ok(())
    }
}

impl Client for Accepting {
    fn disconnect(&mut self) {}
}

fn shared() -> Arc<Shared> {
    Arc::new(bare_shared())
}

/// What [`shared`] holds, to change before it is shared.
fn bare_shared() -> Shared {
    Shared {
        client: Mutex::new(Box::new(Accepting)),
        tracker: Mutex::new(Tracker::default()),
        shutdown: Notify::new(),
        stalled: Notify::new(),
        ready: Notify::new(),
        released: AtomicBool::new(false),
        finished: Arc::new(Semaphore::new(0)),
        previous: None,
        hold: Mutex::new(None),
        identity: ("scripted".into(), 1, "driver-panic-test".into()),
        label: "scripted:1 as 'driver-panic-test'".into(),
        status_topic: None,
        status_follows_id: false,
        status_format: StatusFormat::Text,
        clean_session: true,
        connect_timeout: Duration::from_secs(1),
        keep_alive: Duration::from_secs(60),
        max_inflight: None,
        metrics: ConnectionMetrics::default(),
    }
}

/// A pack of `n` QoS 1 messages whose outcome goes to the returned receiver.
fn qos1_pack(
    n: usize,
) -> (
    Arc<Pack>,
    PublishOptions,
    Vec<Message>,
    mpsc::Receiver<Outcome>,
) {
    pack_of(
        Qos::AtLeastOnce,
        (0..n)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect(),
    )
}

/// A pack of one message per payload, on topic `t`; its outcome goes to the receiver.
fn pack_of(
    qos: Qos,
    payloads: Vec<Vec<u8>>,
) -> (
    Arc<Pack>,
    PublishOptions,
    Vec<Message>,
    mpsc::Receiver<Outcome>,
) {
    let (tx, rx) = mpsc::channel();
    let pack = Pack::new(
        payloads.len(),
        Box::new(move |outcome| {
            let _ = tx.send(outcome);
        }),
    );
    let how = PublishOptions {
        qos,
        retain: false,
        content_type: "application/json",
        message_expiry: None,
        patience: None,
    };
    let messages = payloads
        .into_iter()
        .map(|payload| Message {
            topic: Arc::from("t"),
            payload,
            labels: Vec::new(),
        })
        .collect();
    (pack, how, messages, rx)
}

/// Submits a pack of one QoS 1 message; its outcome goes to the returned receiver.
fn submit(shared: &Shared) -> mpsc::Receiver<Outcome> {
    let (pack, how, messages, rx) = qos1_pack(1);
    lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 100);
    rx
}

fn connect(shared: &Shared, events: &UnboundedSender<Step>) {
    events
        .send(Step::Event(Observed::Connected {
            receive_maximum: None,
            session_present: false,
            grants: Grants::default(),
        }))
        .expect("driver alive");
    let deadline = Instant::now() + WAIT;
    while !shared.metrics.connected.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "the driver did not connect");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a driver on a scripted event loop; returns where its steps go and its count of
/// cancelled polls.
fn drive_scripted(shared: &Arc<Shared>) -> (UnboundedSender<Step>, Arc<AtomicUsize>) {
    let (events, script) = unbounded_channel();
    let cancelled = Arc::new(AtomicUsize::new(0));
    runtime().spawn(drive(
        Arc::clone(shared),
        Scripted(script, Arc::clone(&cancelled)),
        vec![((), "scripted:1".to_string())],
        "driver-test".to_string(),
    ));
    (events, cancelled)
}

/// Closes the connection of a scripted driver, as the pool does, and waits for its end.
fn close_scripted(shared: &Shared, events: &UnboundedSender<Step>) {
    shared.released.store(true, Ordering::Release);
    shared.shutdown.notify_one();
    // Ends a connected driver's poll. One between connections (in its reconnect pause)
    // already ended at the shutdown notice, and dropped the script's receiver with it.
    let _ = events.send(Step::Event(Observed::Disconnected));
    let finished = Arc::clone(&shared.finished);
    let ended = runtime().block_on(async { tokio::time::timeout(WAIT, finished.acquire()).await });
    assert!(matches!(ended, Ok(Err(_))), "the driver did not end");
}

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
    // As `check_stalled` leaves it, but with the message within its patience.
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
    let (pack, how, messages, rx) = qos1_pack(8);
    let how = PublishOptions {
        patience: Some(Duration::from_secs(1)),
        ..how
    };
    lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 100);
    let acked = |pkid| Observed::Acked {
        pkid,
        refused: None,
    };
    // Two seconds of writing, one message each quarter of a second, the broker
    // acknowledging each one as the next goes out.
    for pkid in 1..=8 {
        std::thread::sleep(Duration::from_millis(250));
        // As the appender's sweep does (`Connection::check_stalled`).
        if lock(&shared.tracker).is_stalled(Instant::now()).is_some() {
            shared.stalled.notify_one();
        }
        for event in [Observed::Written(pkid), acked(pkid - 1)] {
            events.send(Step::Event(event)).expect("sent");
        }
    }
    events.send(Step::Event(acked(8))).expect("sent");
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
    assert!(
        shared.metrics.connected.load(Ordering::Relaxed),
        "the connection was dropped as stalled"
    );
    close_scripted(&shared, &events);
}

/// QoS 2 messages refused at PUBCOMP hold rumqttc's in-flight slots as those refused at
/// PUBREC do: once they fill half of the window the connection is made anew. (Before: they
/// went uncounted, and rumqttc stopped sending once they filled its window.)
#[test]
fn refused_pubcomps_count_against_the_slots_rumqttc_keeps() {
    let shared = shared();
    let (events, _) = drive_scripted(&shared);
    connect(&shared, &events);
    let refused = |pkid: usize| {
        Step::Event(Observed::Completed {
            pkid: pkid as u16,
            refused: Some("PacketIdentifierNotFound".into()),
        })
    };
    let half = Window::default().acked / 2;
    for pkid in 1..half {
        events.send(refused(pkid)).expect("sent");
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(shared.metrics.connected.load(Ordering::Relaxed));
    events.send(refused(half)).expect("sent");
    let deadline = Instant::now() + WAIT;
    while shared.metrics.connected.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "not reconnected at {half} refusals"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    close_scripted(&shared, &events);
}

/// A panic in the event loop's poll: the pack in flight is answered `onConnectionError`,
/// the driver connects anew and the next pack is delivered. (Before: the panic ended the
/// driver's task, the pack waited for ever and the connection was dead.)
#[test]
fn a_panic_in_the_event_loop_fails_packs_in_flight_and_the_connection_goes_on() {
    let shared = shared();
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
    let deadline = Instant::now() + WAIT;
    while shared.metrics.connected.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "the driver did not take the first panic"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
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

/// Runs a scripted broker on a loopback port: the port, and the broker's thread.
fn scripted_broker(
    broker: impl FnOnce(std::net::TcpListener) + Send + 'static,
) -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("port").port();
    (port, std::thread::spawn(move || broker(listener)))
}

/// The PUBACK of a QoS 1 PUBLISH, from its body: the packet id after the topic.
fn puback_for(publish: &[u8]) -> [u8; 4] {
    let topic = usize::from(u16::from_be_bytes([publish[0], publish[1]]));
    [0x40, 0x02, publish[2 + topic], publish[3 + topic]]
}

/// The client id of an MQTT 3.1.1 CONNECT, from its body: after the protocol name (2 + 4
/// bytes), level, flags and keep-alive (2).
fn connect_client_id(connect: &[u8]) -> String {
    let len = usize::from(u16::from_be_bytes([connect[10], connect[11]]));
    String::from_utf8_lossy(&connect[12..12 + len]).into_owned()
}

/// One MQTT packet from a scripted broker's socket: its first byte and its body.
fn read_packet(s: &mut impl std::io::Read) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8];
    s.read_exact(&mut header).ok()?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8];
        s.read_exact(&mut b).ok()?;
        len |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((header[0], body))
}

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

/// An MQTT 3.1.1 broker that, as AWS IoT or HiveMQ do with a publish the client may not
/// make, closes each of its first `closing` connections at the first publish, without a
/// word; later ones it acks. It reports the client id of every CONNECT.
fn closing_broker_v4(listener: std::net::TcpListener, closing: usize, ids: mpsc::Sender<String>) {
    use std::io::Write;
    for n in 0.. {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let Some((0x10, body)) = read_packet(&mut s) else {
            return;
        };
        let id = connect_client_id(&body);
        if ids.send(id).is_err() || s.write_all(&[0x20, 0x02, 0x00, 0x00]).is_err() {
            return;
        }
        while let Some((kind, body)) = read_packet(&mut s) {
            if kind >> 4 != 3 {
                continue;
            }
            if n < closing {
                break;
            }
            if s.write_all(&puback_for(&body)).is_err() {
                break;
            }
        }
    }
}

/// Connects to a [`closing_broker_v4`] and sends a pack of one message `packs` times, each
/// once the connection it goes to is there; returns their answers, the client ids of the
/// connections and the takeovers counted.
fn publish_through_closes(
    configured: &str,
    closing: usize,
    packs: usize,
) -> (Vec<Outcome>, Vec<String>, u64) {
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| closing_broker_v4(listener, closing, tx));
    let connection = Connection::get(&scripted(port, configured)).expect("opened");
    let mut answers = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..packs {
        seen.push(ids.recv_timeout(WAIT).expect("a connection"));
        let (pack, how, messages, rx) = qos1_pack(1);
        connection.submit(&pack, how, messages, 100);
        answers.push(rx.recv_timeout(WAIT).expect("an answer"));
    }
    let takeovers = connection.metrics().takeovers.load(Ordering::Relaxed);
    (answers, seen, takeovers)
}

/// One close right after a publish is the broker's answer to it as likely as a takeover:
/// the id stays. (Before: the node moved to an id of its own until it restarted, which a
/// broker authorising by client id then refuses.)
#[test]
fn one_close_right_after_a_publish_keeps_the_client_id() {
    let (answers, ids, takeovers) = publish_through_closes("closes-once", 1, 2);
    assert_eq!(answers, [Outcome::ConnectionError, Outcome::Delivered]);
    assert_eq!(ids, ["closes-once", "closes-once"]);
    assert_eq!(takeovers, 0);
}

/// Two in a row are taken for a takeover, as a close with nothing published is at once:
/// nodes of a cluster sharing one id, both busy, still stop pushing each other out.
#[test]
fn two_closes_in_a_row_right_after_publishes_move_to_an_id_of_its_own() {
    let (answers, ids, takeovers) = publish_through_closes("closes-twice", 2, 3);
    assert_eq!(
        answers,
        [
            Outcome::ConnectionError,
            Outcome::ConnectionError,
            Outcome::Delivered
        ]
    );
    assert_eq!(ids[..2], ["closes-twice", "closes-twice"]);
    assert!(ids[2].starts_with("closes-twice-"), "{ids:?}");
    assert_eq!(takeovers, 1);
}

/// An MQTT 3.1.1 broker that admits `configured` only, as an AWS IoT policy naming the
/// exact client id does: it refuses any other id with return code `refusal` (5: not
/// authorised; 3: server unavailable, as a busy broker refusing a new client would). Of
/// the connections it accepts, it closes the first `kicks` at their first publish without
/// a word, as when another client connects with the id; later ones it acks. It reports the
/// client id of every CONNECT.
fn exact_id_broker_v4(
    listener: std::net::TcpListener,
    configured: &'static str,
    (kicks, refusal): (usize, u8),
    ids: mpsc::Sender<String>,
) {
    use std::io::Write;
    let mut accepted = 0;
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let Some((0x10, body)) = read_packet(&mut s) else {
            continue;
        };
        let id = connect_client_id(&body);
        let admitted = id == configured;
        if ids.send(id).is_err() {
            return;
        }
        if !admitted {
            let _ = s.write_all(&[0x20, 0x02, 0x00, refusal]);
            continue;
        }
        if s.write_all(&[0x20, 0x02, 0x00, 0x00]).is_err() {
            continue;
        }
        accepted += 1;
        while let Some((kind, body)) = read_packet(&mut s) {
            if kind >> 4 != 3 {
                continue;
            }
            if accepted <= kicks || s.write_all(&puback_for(&body)).is_err() {
                break;
            }
        }
    }
}

/// A rolling restart on a broker that admits exact client ids only: the new node, pushed
/// out by the old one, moves to an id of its own, which the broker refuses; it goes back
/// to the configured id, delivers, and a connection made again starts with that id.
/// (Before: it retried the refused id until it restarted, every pack onRemoteError.)
/// Both MQTT 3.1.1 refusals that may be about the id: 5 "not authorised" (what a broker
/// admitting listed ids answers) and 2 "identifier rejected".
#[test]
fn a_moved_id_the_broker_refuses_gives_way_to_the_configured_one() {
    for (refusal, configured) in [(5, "exact-id-na"), (2, "exact-id-rejected")] {
        let (tx, ids) = mpsc::channel();
        let (port, _) =
            scripted_broker(move |l| exact_id_broker_v4(l, configured, (2, refusal), tx));
        let next = || ids.recv_timeout(WAIT).expect("a CONNECT");
        let connection = Connection::get(&scripted(port, configured)).expect("opened");
        // Pushed out twice right after a publish: taken for a takeover, so it moves.
        for _ in 0..2 {
            assert_eq!(next(), configured, "refusal {refusal}");
            let (pack, how, messages, rx) = qos1_pack(1);
            connection.submit(&pack, how, messages, 100);
            assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
        }
        let moved = next();
        assert!(
            moved.starts_with(&format!("{configured}-")),
            "refusal {refusal}: {moved}"
        );
        let (pack, how, messages, rx) = qos1_pack(1);
        connection.submit(&pack, how, messages, 100);
        assert_eq!(
            next(),
            configured,
            "refusal {refusal}: back to the configured id"
        );
        assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
        drop(connection);
        let again = Connection::get(&scripted(port, configured)).expect("opened");
        assert_eq!(
            next(),
            configured,
            "refusal {refusal}: the refused id is given up"
        );
        drop(again);
    }
}

/// A moved id refused for a reason that is not about the id (here "server unavailable")
/// is kept: going back to the configured id would push the other node out of it again.
#[test]
fn a_moved_id_refused_as_the_broker_is_busy_is_kept() {
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |l| exact_id_broker_v4(l, "busy-id", (2, 3), tx));
    let next = || ids.recv_timeout(WAIT).expect("a CONNECT");
    let connection = Connection::get(&scripted(port, "busy-id")).expect("opened");
    for _ in 0..2 {
        assert_eq!(next(), "busy-id");
        let (pack, how, messages, rx) = qos1_pack(1);
        connection.submit(&pack, how, messages, 100);
        assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
    }
    let moved = next();
    assert!(moved.starts_with("busy-id-"), "{moved}");
    assert_eq!(next(), moved, "still the id it moved to after the refusal");
    drop(connection);
}

/// The identifiers of an MQTT 5 CONNECT's properties.
fn connect_property_ids(body: &[u8]) -> Vec<u8> {
    // Protocol name (2 + 4), level, flags, keep-alive (2), then the properties' length.
    let (mut len, mut shift, mut at) = (0usize, 0, 10);
    loop {
        len |= usize::from(body[at] & 0x7f) << shift;
        at += 1;
        if body[at - 1] & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let (mut ids, end) = (Vec::new(), at + len);
    let u16_at = |i: usize| usize::from(u16::from_be_bytes([body[i], body[i + 1]]));
    while at < end {
        let id = body[at];
        ids.push(id);
        at += 1 + match id {
            0x11 | 0x27 => 4,                  // session expiry, maximum packet size
            0x21 | 0x22 => 2,                  // receive maximum, topic alias maximum
            0x17 | 0x19 => 1,                  // request problem / response information
            0x15 | 0x16 => 2 + u16_at(at + 1), // authentication method, data
            0x26 => {
                // A user property: two strings.
                let key = u16_at(at + 1);
                4 + key + u16_at(at + 3 + key)
            }
            other => panic!("unexpected CONNECT property {other:#x}"),
        };
    }
    ids
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

/// An MQTT 3.1.1 broker that, as every broker does, closes a client's connection when
/// another connects with its client id; it reports the id of every CONNECT.
fn takeover_broker(listener: std::net::TcpListener, ids: mpsc::Sender<String>) {
    use std::io::Write;
    let connected: Arc<Mutex<HashMap<String, std::net::TcpStream>>> = Arc::default();
    while let Ok((mut s, _)) = listener.accept() {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let Some((0x10, body)) = read_packet(&mut s) else {
            continue;
        };
        let id = connect_client_id(&body);
        let previous = lock(&connected).insert(id.clone(), s.try_clone().expect("clone"));
        if let Some(previous) = previous {
            let _ = previous.shutdown(std::net::Shutdown::Both);
        }
        if ids.send(id).is_err() || s.write_all(&[0x20, 0x02, 0x00, 0x00]).is_err() {
            return;
        }
        std::thread::spawn(move || while read_packet(&mut s).is_some() {});
    }
}

/// MQTT 3.1.1 to a scripted broker on loopback, keep-alive 60 s, connect timeout 2 s.
fn scripted(port: u16, client_id: &str) -> BrokerConfig {
    BrokerConfig {
        host: "127.0.0.1".into(),
        port,
        client_id: client_id.into(),
        username: None,
        password: None,
        keep_alive: Duration::from_secs(60),
        clean_session: true,
        connect_timeout: Duration::from_secs(2),
        version: crate::config::MqttVersion::V3_1_1,
        failover: Vec::new(),
        status_topic: None,
        status_follows_id: false,
        tls: None,
        transport: crate::config::Transport::Tcp,
        proxy: None,
        session_expiry: None,
        status_format: StatusFormat::Text,
        max_inflight: None,
    }
}

/// A broker that accepts the connection and then reads nothing more, as a hung broker (or
/// one paused with SIGSTOP) does: once the socket's buffers are full, every write waits.
/// It holds the socket until `quit` says so.
fn deaf_broker(listener: std::net::TcpListener, quit: mpsc::Receiver<()>) {
    use std::io::{Read, Write};
    let (mut s, _) = listener.accept().expect("accept");
    let mut connect = [0u8; 2];
    s.read_exact(&mut connect).expect("CONNECT");
    let mut body = vec![0u8; usize::from(connect[1])];
    s.read_exact(&mut body).expect("CONNECT body");
    s.write_all(&[0x20, 0x02, 0x00, 0x00]).expect("CONNACK");
    let _ = quit.recv_timeout(Duration::from_secs(60));
}

/// A broker that stops reading at QoS 0, which waits for no ack: a write that waits on the
/// full socket ends with the connection, within the connect timeout, and the pack is
/// answered. (Before: only the final flush was bounded, and a write the socket's buffer
/// held up waited for ever, so the pack was never answered and keep-alive never ran.)
#[test]
fn a_broker_that_stops_reading_loses_the_connection_instead_of_holding_it() {
    let (quit, quit_rx) = mpsc::channel();
    let (port, broker_thread) = scripted_broker(move |listener| deaf_broker(listener, quit_rx));
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

/// An MQTT 3.1.1 broker that reads at about 4 MiB/s: it pauses 125 ms after each publish
/// (of 512 KiB in the tests), then acks it if its QoS asks for that. Once the client is
/// gone, it says how many publishes it read.
fn slow_reading_broker_v4(listener: std::net::TcpListener, read: mpsc::Sender<usize>) {
    use std::io::Write;
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    read_packet(&mut s).expect("CONNECT");
    s.write_all(&[0x20, 0x02, 0x00, 0x00]).expect("CONNACK");
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
    let count = read.recv_timeout(WAIT).expect("the broker's count");
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
/// broker that stopped reading).
struct Trickle<'a> {
    s: &'a mut std::net::TcpStream,
    budget: Option<usize>,
    quit: Option<&'a mpsc::Receiver<()>>,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
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
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    read_packet(&mut s).expect("CONNECT");
    s.write_all(&[0x20, 0x02, 0x00, 0x00]).expect("CONNACK");
    let mut writer = s.try_clone().expect("clone");
    let mut trickle = Trickle {
        s: &mut s,
        budget,
        quit: Some(&quit),
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
/// maxPendingRecords: the MQTT 5 client's channel never refuses what the tracker admits.
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
/// `reason` and closes it, as a busy one or one over a quota does; it reports each CONNECT.
fn closing_at_once_broker_v5(
    listener: std::net::TcpListener,
    reason: u8,
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
        // CONNACK, then DISCONNECT with the reason and no properties; dropped: closed.
        let _ = s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00, 0xe0, 0x02, reason, 0x00]);
    }
}

/// A broker that closes each connection as soon as it accepted it (here: DISCONNECT 0x89,
/// server busy) is retried with growing pauses, not at the shortest one each time.
/// (Before: every CONNACK reset the pause, and the broker got about 13 connections a
/// second, each with an INFO and a WARN line, for as long as it answered so.)
#[test]
fn a_broker_closing_each_connection_at_once_is_retried_with_growing_pauses() {
    let (tx, connects) = mpsc::channel();
    let (port, _) = scripted_broker(move |l| closing_at_once_broker_v5(l, 0x89, tx));
    let connection = Connection::get(&BrokerConfig {
        version: crate::config::MqttVersion::V5,
        ..scripted(port, "busy-v5-test")
    })
    .expect("opened");
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
    let (healthy, _) = scripted_broker(move |l| closing_broker_v4(l, 0, tx));
    let connection = Connection::get(&BrokerConfig {
        failover: vec![("127.0.0.1".into(), healthy)],
        ..scripted(refusing, "failover-refused")
    })
    .expect("opened");
    let (pack, how, messages, rx) = qos1_pack(1);
    connection.submit(&pack, how, messages, 100);
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
    let (pack, how, messages, rx) = qos1_pack(1);
    connection.submit(&pack, how, messages, 100);
    go_a.send(()).expect("the first broker waits");
    go_b.send(()).expect("the second broker waits");
    assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::RemoteError));
    drop(connection);
}

/// Two appenders of one node with one client id and one other connection setting (here
/// keep-alive) get two connections: with cleanSession on the second takes an id of its own
/// at once, and neither is pushed out. (Before: it connected with the same id, the broker
/// closed the first, and the two pushed each other out, failing packs at every close.)
#[test]
fn a_second_connection_with_a_held_client_id_takes_its_own_at_once() {
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| takeover_broker(listener, tx));
    let next = || ids.recv_timeout(WAIT).expect("a CONNECT");
    let first = Connection::get(&scripted(port, "held-id")).expect("opened");
    assert_eq!(next(), "held-id");
    let second = Connection::get(&BrokerConfig {
        keep_alive: Duration::from_secs(30),
        ..scripted(port, "held-id")
    })
    .expect("opened");
    let own = next();
    assert_ne!(own, "held-id", "the id the first connection holds");
    assert!(own.starts_with("held-id-"), "{own}");
    let quiet = ids.recv_timeout(Duration::from_secs(2));
    assert!(quiet.is_err(), "no pushing out: {quiet:?}");
    assert_eq!(first.metrics().takeovers.load(Ordering::Relaxed), 0);
    assert_eq!(second.metrics().takeovers.load(Ordering::Relaxed), 0);
    drop((first, second));
}

/// The same with cleanSession off, where the id names the broker's session and cannot
/// change: the second connection is refused, with a message naming the clash, and the first
/// is left alone. (Before: both connected with the id and pushed each other out for good.)
#[test]
fn a_second_persistent_session_with_a_held_client_id_is_refused() {
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| takeover_broker(listener, tx));
    let persistent = BrokerConfig {
        clean_session: false,
        ..scripted(port, "held-session")
    };
    let first = Connection::get(&persistent).expect("opened");
    assert_eq!(ids.recv_timeout(WAIT).as_deref(), Ok("held-session"));
    let refused = Connection::get(&BrokerConfig {
        max_inflight: Some(10),
        ..persistent.clone()
    });
    let error = refused.err().expect("refused");
    assert_eq!(error.field, "clientId");
    let message = error.to_string();
    assert!(message.contains("client id 'held-session'"), "{message}");
    assert!(message.contains("another appender"), "{message}");
    assert!(message.contains("maxInflight"), "{message}");
    assert!(message.contains("cleanSession off"), "{message}");
    let quiet = ids.recv_timeout(Duration::from_secs(2));
    assert!(quiet.is_err(), "the first is left alone: {quiet:?}");
    // The same settings share the first connection, as ever.
    let shared = Connection::get(&persistent).expect("shared");
    assert!(Arc::ptr_eq(&first, &shared));
    drop((first, shared));
}

/// Two connections of one process to one broker, with one client id and other settings
/// (two appenders whose usernames differ): after one moved to an id of its own (another
/// node took the configured one), the other does not take that id too, and a third, with
/// the configured id held, takes the next one. (Before: the second took the moved id, and
/// the two pushed each other out with pauses growing to a minute.)
#[test]
fn connections_of_one_process_never_share_the_id_one_moved_to() {
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| takeover_broker(listener, tx));
    let next = || ids.recv_timeout(WAIT).expect("a CONNECT");
    let a = Connection::get(&scripted(port, "shared-id")).expect("opened");
    assert_eq!(next(), "shared-id");
    let _other_node = rival_connect(port, "shared-id");
    assert_eq!(next(), "shared-id", "the other node");
    let moved = next();
    assert!(moved.starts_with("shared-id-"), "{moved}");
    let b = Connection::get(&BrokerConfig {
        username: Some("b".into()),
        ..scripted(port, "shared-id")
    })
    .expect("opened");
    assert_eq!(next(), "shared-id", "not the id the other connection holds");
    let c = Connection::get(&BrokerConfig {
        username: Some("c".into()),
        ..scripted(port, "shared-id")
    })
    .expect("opened");
    assert_eq!(next(), format!("{moved}-2"), "neither id another holds");
    let quiet = ids.recv_timeout(Duration::from_secs(2));
    assert!(quiet.is_err(), "no more pushing out: {quiet:?}");
    drop((a, b, c));
}

/// Another node's MQTT 3.1.1 CONNECT with `client_id`, on a socket kept open.
fn rival_connect(port: u16, client_id: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let id = client_id.as_bytes();
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id);
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    s.write_all(&packet).expect("CONNECT");
    s
}

/// An appender edited while its connection drains (the admin changed a connection
/// setting under load): the new connection takes the id the old one moved to after a
/// takeover, once the old one has said goodbye, and leaves the other node's id alone.
/// (Before: the draining connection still held the id, so the new one fell back to the
/// configured id and started the fight with the other node anew.)
#[test]
fn an_edited_appender_keeps_the_id_its_predecessor_moved_to() {
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| takeover_broker(listener, tx));
    let next = || ids.recv_timeout(WAIT).expect("a CONNECT");
    let old = Connection::get(&scripted(port, "edit-id")).expect("opened");
    assert_eq!(next(), "edit-id");
    let _other_node = rival_connect(port, "edit-id");
    assert_eq!(next(), "edit-id", "the other node");
    let moved = next();
    assert_ne!(moved, "edit-id", "the takeover moved the old connection");
    old.draining(Instant::now() + Duration::from_secs(5));
    let edited = Connection::get(&BrokerConfig {
        username: Some("edited".into()),
        ..scripted(port, "edit-id")
    })
    .expect("opened");
    drop(old);
    assert_eq!(next(), moved, "the edited appender's connection");
    let quiet = ids.recv_timeout(Duration::from_secs(2));
    assert!(quiet.is_err(), "no more pushing out: {quiet:?}");
    drop(edited);
}

/// An appender's connection made again from the pool while it drains (the appender
/// created again with the same settings) is no longer on its way out: a connection with
/// other settings opened later does not take the id it holds. (Before: its goodbye stayed,
/// and the later connection took that id and pushed it out.)
#[test]
fn a_connection_taken_again_while_it_drains_keeps_its_id_to_itself() {
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| takeover_broker(listener, tx));
    let next = || ids.recv_timeout(WAIT).expect("a CONNECT");
    let config = scripted(port, "regain-id");
    let old = Connection::get(&config).expect("opened");
    assert_eq!(next(), "regain-id");
    let _other_node = rival_connect(port, "regain-id");
    assert_eq!(next(), "regain-id", "the other node");
    let moved = next();
    old.draining(Instant::now() + Duration::from_secs(5));
    let again = Connection::get(&config).expect("opened");
    assert!(Arc::ptr_eq(&old, &again), "the pool's connection");
    let other = Connection::get(&BrokerConfig {
        username: Some("other".into()),
        ..scripted(port, "regain-id")
    })
    .expect("opened");
    let id = next();
    assert_ne!(id, moved, "the id the live connection holds");
    drop((old, again, other));
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

/// The status message, alone in a window of one, is judged too: a broker that stops
/// acknowledging is left though no appender's message was ever in flight. (Before: the
/// status message had no patience, and the connection was never found stalled.)
#[test]
fn a_status_message_holding_the_only_slot_is_judged_too() {
    let (tx, ids) = mpsc::channel();
    let (port, _) = scripted_broker(move |listener| unacknowledging_broker(listener, tx));
    let connection = Connection::get(&BrokerConfig {
        status_topic: Some("kaa/status".into()),
        keep_alive: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        max_inflight: Some(1),
        ..scripted(port, "status-stall")
    })
    .expect("opened");
    assert_eq!(ids.recv_timeout(WAIT).as_deref(), Ok("status-stall"));
    // Past the status message's patience: a connect and a keep-alive.
    std::thread::sleep(Duration::from_millis(2500));
    connection.check_stalled();
    assert_eq!(
        ids.recv_timeout(WAIT).as_deref(),
        Ok("status-stall"),
        "connected anew"
    );
    drop(connection);
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

#[test]
fn a_broker_that_acks_nothing_gets_few_nudges() {
    let _runtime = runtime().enter();
    let mut nudge = Nudge::new();
    nudge.on_event(&Observed::Acked {
        pkid: 1,
        refused: None,
    });
    let mut gaps = Vec::new();
    while nudge.wanted {
        gaps.push(nudge.gap(false));
        // Time as if the gap had passed.
        nudge.last = None;
        assert!(nudge.due(false));
        nudge.on_event(&Observed::Pong);
    }
    let ms = |m: u64| Duration::from_micros(m * 500);
    let expected = [0, 0, 0, 1, 2, 4, 8, 16, 32, 64];
    assert_eq!(
        gaps,
        expected.iter().map(|&m| ms(m)).collect::<Vec<_>>(),
        "three at once, then doubling gaps below the 40 ms delayed ack"
    );
    nudge.on_event(&Observed::Completed {
        pkid: 1,
        refused: None,
    });
    assert!(nudge.wanted, "an ack wants one again");
    assert!(nudge.due(false), "at once");
    nudge.on_event(&Observed::Completed {
        pkid: 2,
        refused: None,
    });
    assert!(
        !nudge.due(true),
        "with a backlog, not within NUDGE_GAP of the last"
    );
    assert!(nudge.armed);
}

/// An MQTT 3.1.1 broker that acks the status "online" at once and the status "offline"
/// after `offline_ack` (`None`: never), and reports what it reads, when it acks "offline",
/// and the end of the connection: "offline", "PUBACK", "DISCONNECT", "other", "EOF".
fn status_broker_v4(
    listener: std::net::TcpListener,
    offline_ack: Option<Duration>,
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
    crate::test_log::capture();
    let (tx, seen) = mpsc::channel();
    let (port, broker) = scripted_broker(move |l| status_broker_v4(l, offline_ack, tx));
    let connection = Connection::get(&BrokerConfig {
        status_topic: Some(format!("kaa/status/{client_id}")),
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
    drop((first, same, other_topic, second, listener));
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
        let moved = taken_over_by_another(&shared, &label, id, ("closed", true), WAIT);
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

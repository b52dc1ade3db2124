//! The pool's and the driver's tests. Here what they share: a scripted event loop (`Scripted`)
//! and scripted TCP brokers (`scripted_broker`, with MQTT packet helpers), packs and configs;
//! in `tests/` the tests by subject.

use super::*;
use crate::protocol::{Grants, Outbox, Ready, Unqueued};
use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

const WAIT: Duration = Duration::from_secs(10);

/// What the scripted event loop does at its next poll.
enum Step {
    Event(Observed),
    /// Events that come together, as rumqttc queues them (a batch's writes, one read of
    /// several packets): the poll returns the first, the rest wait in its queue.
    Burst(Vec<Observed>),
    Panic,
    /// Events a poll queued before it began to wait on a flush the broker does not take (as
    /// rumqttc's MQTT 5 poll queues a publish's event before it writes it): it says so on the
    /// channel, then waits for ever, until it is cancelled.
    Stuck(Vec<Observed>, mpsc::Sender<()>),
    /// The broker closed the socket.
    Closed,
    /// The connection failed so.
    Broken(&'static str),
    /// The broker refused the connection (bad credentials).
    Refused,
}

/// An event loop that polls what the test sends it, and panics when told to. It counts the
/// polls dropped before their step came: the polls the driver cancelled.
struct Scripted(
    UnboundedReceiver<Step>,
    Arc<AtomicUsize>,
    VecDeque<Observed>,
    Calls,
);

/// What the driver asked of the scripted event loop besides polls: to give refused QoS 2
/// messages' slots back (which fails when told to), to start a clean session, and to switch
/// to a broker.
#[derive(Clone, Default)]
struct Calls {
    frees: Arc<AtomicUsize>,
    freeing_fails: bool,
    cleans: Arc<AtomicUsize>,
    switches: Arc<AtomicUsize>,
}

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
        // As rumqttc's: what it queued comes first.
        if let Some(event) = self.2.pop_front() {
            return Ok(event);
        }
        let mut cancelled = Cancelled(Some(Arc::clone(&self.1)));
        let step = self.0.recv().await;
        cancelled.0 = None;
        match step {
            Some(Step::Event(event)) => Ok(event),
            Some(Step::Burst(events)) => {
                self.2.extend(events);
                Ok(self.2.pop_front().expect("a burst of at least one event"))
            }
            Some(Step::Panic) => panic!("injected: the event loop panics"),
            Some(Step::Stuck(events, queued)) => {
                self.2.extend(events);
                let _ = queued.send(());
                std::future::pending().await
            }
            Some(Step::Closed) => Err(Failure::Closed {
                why: "end of stream".into(),
                said: Said::Nothing,
            }),
            Some(Step::Broken(why)) => Err(Failure::Broken(why.into())),
            Some(Step::Refused) => Err(Failure::Refused {
                why: "bad user name or password".into(),
                about: Refusal::Other,
            }),
            None => std::future::pending().await,
        }
    }

    fn take_queued(&mut self) -> Option<Observed> {
        if self.2.front()?.wants_its_own_turn() {
            return None;
        }
        self.2.pop_front()
    }

    async fn write(&mut self, _: &mut Ready) -> Result<bool, Failure> {
        Ok(false)
    }

    fn switch_to(&mut self, _: &(), _: &str) {
        self.3.switches.fetch_add(1, Ordering::Relaxed);
    }

    fn start_clean(&mut self) {
        self.3.cleans.fetch_add(1, Ordering::Relaxed);
    }

    fn free_refused_slots(&mut self) -> bool {
        self.3.frees.fetch_add(1, Ordering::Relaxed);
        !self.3.freeing_fails
    }

    fn take_unflushed(&mut self) -> Vec<Observed> {
        self.2.drain(..).collect()
    }

    fn drop_connection(&mut self) {}

    fn forget(&mut self) -> (usize, Vec<Observed>) {
        (0, self.2.drain(..).collect())
    }
}

/// A client whose channel takes every publish.
struct Accepting;

impl Outbox for Accepting {
    fn try_publish(&mut self, _: Message, _: &PublishOptions, _: u16) -> Result<(), Unqueued> {
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
        waits_for: Vec::new(),
        give_up_id: Mutex::new(None),
        give_up_now: Notify::new(),
        hold: Mutex::new(None),
        identity: ("scripted".into(), 1, "driver-panic-test".into()),
        label: "scripted:1 as 'driver-panic-test'".into(),
        status_topic: None,
        status_follows_id: false,
        id_names_host: false,
        status_format: StatusFormat::Text,
        clean_session: true,
        plain: true,
        proxied: false,
        websocket: false,
        client_certificate: None,
        broker_certificates: None,
        connect_timeout: Duration::from_secs(1),
        keep_alive: Duration::from_secs(60),
        max_inflight: None,
        metrics: ConnectionMetrics::default(),
        takeover_streak: Mutex::new((0, None)),
        expired_lines: LogBudget::default(),
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
        origin: Default::default(),
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

/// Submits a pack of one QoS 1 message to `connection`; its outcome goes to the receiver.
fn submit_one(connection: &Connection) -> mpsc::Receiver<Outcome> {
    let (pack, how, messages, rx) = qos1_pack(1);
    connection.submit(&pack, how, messages, 100);
    rx
}

/// Submits a pack of one QoS 1 message; its outcome goes to the returned receiver.
fn submit(shared: &Shared) -> mpsc::Receiver<Outcome> {
    let (pack, how, messages, rx) = qos1_pack(1);
    lock(&shared.tracker).submit(&mut **lock(&shared.client), &pack, how, messages, 100);
    rx
}

/// Waits until `done`, for [`WAIT`] at most; `why` if it never is.
fn wait_until(why: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{why}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the scripted driver has taken the connection's loss; `why` if it does not.
fn disconnected(shared: &Shared, why: &str) {
    wait_until(why, || !shared.metrics.connected.load(Ordering::Relaxed));
}

fn connect(shared: &Shared, events: &UnboundedSender<Step>) {
    events
        .send(Step::Event(Observed::Connected {
            receive_maximum: None,
            session_present: false,
            grants: Grants::default(),
        }))
        .expect("driver alive");
    wait_until("the driver did not connect", || {
        shared.metrics.connected.load(Ordering::Relaxed)
    });
}

/// Starts a driver on a scripted event loop; returns where its steps go and its count of
/// cancelled polls.
fn drive_scripted(shared: &Arc<Shared>) -> (UnboundedSender<Step>, Arc<AtomicUsize>) {
    drive_scripted_over(shared, 1, "driver-test")
}

/// [`drive_scripted`] with `brokers` brokers (the configured one and failover ones) and a
/// client id a test may pick its log lines out by.
fn drive_scripted_over(
    shared: &Arc<Shared>,
    brokers: u16,
    client_id: &str,
) -> (UnboundedSender<Step>, Arc<AtomicUsize>) {
    drive_scripted_counting(shared, brokers, client_id, Calls::default())
}

/// [`drive_scripted_over`], counting in `calls` what the driver asks besides polls.
fn drive_scripted_counting(
    shared: &Arc<Shared>,
    brokers: u16,
    client_id: &str,
    calls: Calls,
) -> (UnboundedSender<Step>, Arc<AtomicUsize>) {
    let (events, script) = unbounded_channel();
    let cancelled = Arc::new(AtomicUsize::new(0));
    runtime().spawn(drive(
        Arc::clone(shared),
        Scripted(script, Arc::clone(&cancelled), VecDeque::new(), calls),
        (1..=brokers)
            .map(|n| ((), format!("scripted:{n}")))
            .collect(),
        client_id.to_string(),
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
    let _ = events.send(Step::Closed);
    let finished = Arc::clone(&shared.finished);
    let ended = runtime().block_on(async { tokio::time::timeout(WAIT, finished.acquire()).await });
    assert!(matches!(ended, Ok(Err(_))), "the driver did not end");
}

/// Runs a scripted broker on a loopback port: the port, and the broker's thread.
pub(crate) fn scripted_broker(
    broker: impl FnOnce(std::net::TcpListener) + Send + 'static,
) -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("port").port();
    (port, std::thread::spawn(move || broker(listener)))
}

/// The PUBACK of a QoS 1 PUBLISH, from its body: the packet id after the topic.
pub(crate) fn puback_for(publish: &[u8]) -> [u8; 4] {
    let topic = usize::from(u16::from_be_bytes([publish[0], publish[1]]));
    [0x40, 0x02, publish[2 + topic], publish[3 + topic]]
}

/// The client id of a CONNECT, from its body: after the protocol name (2 + 4 bytes), level,
/// flags and keep-alive (2), and with MQTT 5 (level 5) its properties.
fn connect_client_id(connect: &[u8]) -> String {
    let at = if connect[6] == 5 {
        connect_properties(connect).1
    } else {
        10
    };
    let len = usize::from(u16::from_be_bytes([connect[at], connect[at + 1]]));
    String::from_utf8_lossy(&connect[at + 2..at + 2 + len]).into_owned()
}

/// One MQTT packet from a scripted broker's socket: its first byte and its body.
pub(crate) fn read_packet(s: &mut impl std::io::Read) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8];
    s.read_exact(&mut header).ok()?;
    let len = read_varint(s)?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((header[0], body))
}

/// An MQTT variable byte integer (a length).
fn read_varint(s: &mut impl std::io::Read) -> Option<usize> {
    let (mut value, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8];
        s.read_exact(&mut b).ok()?;
        value |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
    }
}

/// Where an MQTT 5 CONNECT's properties start and end in its body: after the protocol name
/// (2 + 4 bytes), level, flags, keep-alive (2) and the properties' length.
fn connect_properties(body: &[u8]) -> (usize, usize) {
    let mut rest = &body[10..];
    let len = read_varint(&mut rest).expect("the properties' length");
    let start = body.len() - rest.len();
    (start, start + len)
}

/// The identifiers of an MQTT 5 CONNECT's properties.
fn connect_property_ids(body: &[u8]) -> Vec<u8> {
    let ((mut at, end), mut ids) = (connect_properties(body), Vec::new());
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
        status_follows_id: crate::config::Unkeyed(false),
        id_names_host: crate::config::Unkeyed(false),
        tls: None,
        transport: crate::config::Transport::Tcp,
        proxy: None,
        session_expiry: None,
        status_format: StatusFormat::Text,
        max_inflight: None,
    }
}

/// An MQTT 3.1.1 broker that, as AWS IoT or HiveMQ do with a publish the client may not
/// make, closes each of its first `closing` connections without a word at the first publish
/// after it acknowledged `acked_first`; later ones it acks. It reports the client id of every
/// CONNECT.
fn closing_broker_v4(
    listener: std::net::TcpListener,
    (closing, acked_first): (usize, usize),
    ids: mpsc::Sender<String>,
) {
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
        let mut acked = 0;
        while let Some((kind, body)) = read_packet(&mut s) {
            if kind >> 4 != 3 {
                continue;
            }
            if n < closing && acked == acked_first {
                break;
            }
            if s.write_all(&puback_for(&body)).is_err() {
                break;
            }
            acked += 1;
        }
    }
}

mod brokers;
mod client_ids;
mod driver;
mod status;

/// Failures differing in a DISCONNECT's reason string or in figures are one failure; the
/// reason code, other quoted text and what follows the reason string still tell them apart.
#[test]
fn a_reason_string_makes_no_failure_new() {
    let close = |code: &str, said: &str| {
        let said = crate::log_budget::shown_in_log(said);
        failure_key(&format!(
            "the broker closed the connection with a DISCONNECT of reason {code}, server \
             busy{}{said}\" after 3012 ms",
            protocol::REASON_SAID
        ))
    };
    let a = close("0x89", "try again in 3 s (attempt 7)");
    assert_eq!(a, close("0x89", r#"it's "busy" here, attempt 8"#));
    assert_eq!(a, close("0x89", r"C:\"));
    assert_ne!(a, close("0x97", "try again"));
    let after = |hint: &str| failure_key(&format!("a{}x\" {hint}", protocol::REASON_SAID));
    assert_ne!(after("turn ssl on"), after("turn ssl off"));
    // Quotes elsewhere (a certificate's names) are text like any other.
    assert_ne!(
        failure_key(r#"not valid for name "h"; valid for DnsName("a")"#),
        failure_key(r#"not valid for name "h"; valid for DnsName("b")"#)
    );
    assert_eq!(
        failure_key("lost (after 120 ms) on kaa/3/logs"),
        "lost (after  ms) on kaa/3/logs"
    );
}

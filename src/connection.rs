//! MQTT connections, one per broker identity, shared by every appender that points at it and
//! driven by tasks on one tokio runtime for the whole process.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Runtime;
use tokio::sync::{Notify, Semaphore};

use crate::config::{BrokerConfig, ConfigError, Qos};
use crate::delivery::{Outcome, Pack, Tracker, Why};
use crate::metrics::ConnectionMetrics;
use crate::protocol::{
    self, address_label, Client, EventLoop, Failure, Message, Observed, PublishOptions, Window,
};
use crate::status::{self, Status, StatusFormat};
use crate::supervise::{lock, panic_message, CatchUnwind};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a closing connection may take to say goodbye.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// A connection the broker closes this soon after accepting it was most likely pushed out by
/// another client connecting with the same client id: MQTT 3.1.1 gives no reason, and a
/// broker that restarts or drops clients for other causes rarely does so within seconds of a
/// CONNACK. The first node of a cluster to connect is pushed out once by each newcomer after
/// a long life; the newcomer it pushes out in turn is young and moves to another id.
const TAKEOVER_WINDOW: Duration = Duration::from_secs(3);
/// While the client id cannot change (persistent session), nodes pushing each other out back
/// off up to this, instead of taking turns ten times a second.
const TAKEOVER_BACKOFF_MAX: Duration = Duration::from_secs(60);

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kaa-mqtt-io")
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime for MQTT connections")
    })
}

struct Shared {
    client: Mutex<Box<dyn Client>>,
    tracker: Mutex<Tracker>,
    shutdown: Notify,
    /// When a message has waited for its ack past its patience: the driver checks again and
    /// makes the connection anew.
    stalled: Notify,
    /// Publishes were handed to the client for the driver to write ([`write_ready`]).
    ready: Notify,
    /// Set with `shutdown`: the pool has let go.
    released: AtomicBool,
    /// Closed when the driver has ended: DISCONNECT written, socket dropped.
    finished: Arc<Semaphore>,
    /// The connection with the same client that was closing when this one was made: this one
    /// connects only after it.
    previous: Option<Goodbye>,
    /// The broker address and configured client id, as `closing()` and `replaced()` know it.
    identity: ClientKey,
    /// The client id in use, while the appender holds the connection.
    hold: Mutex<Option<IdHold>>,
    label: String,
    status_topic: Option<Arc<str>>,
    /// See [`BrokerConfig::status_follows_id`].
    status_follows_id: bool,
    status_format: StatusFormat,
    clean_session: bool,
    connect_timeout: Duration,
    keep_alive: Duration,
    /// `maxInflight`; `None`: automatic.
    max_inflight: Option<u16>,
    metrics: ConnectionMetrics,
}

/// What a broker tells clients apart by: its address and the client id.
type ClientKey = (String, u16, String);

fn client_key(broker: &BrokerConfig) -> ClientKey {
    (broker.host.clone(), broker.port, broker.client_id.clone())
}

/// A connection on its way out: closed once its driver ended, expected to be by `by`;
/// `holds` the client id it still holds while it drains.
#[derive(Clone)]
struct Goodbye {
    finished: Arc<Semaphore>,
    by: Instant,
    holds: Option<String>,
}

/// Connections being closed, or draining for a closed appender, by client: a new connection
/// with the same client id first waits for the old one's DISCONNECT (an appender edited in the
/// admin is closed and at once created again, maybe with other connection settings), or the
/// broker would drop whichever of the two reached it last.
fn closing() -> MutexGuard<'static, HashMap<ClientKey, Goodbye>> {
    static CLOSING: OnceLock<Mutex<HashMap<ClientKey, Goodbye>>> = OnceLock::new();
    lock(CLOSING.get_or_init(Default::default))
}

/// Client ids given up after a takeover, and the unique id used instead for the rest of the
/// process: a connection made again for the same client does not start the fight anew. Unless
/// the broker refuses that id (it admits exact ids only): then it is given back (`give_back`).
fn replaced() -> MutexGuard<'static, HashMap<ClientKey, String>> {
    static REPLACED: OnceLock<Mutex<HashMap<ClientKey, String>>> = OnceLock::new();
    lock(REPLACED.get_or_init(Default::default))
}

/// The client ids this process's connections hold now, with the broker address: one
/// connection does not take an id that another holds, which would push it out.
fn held_ids() -> MutexGuard<'static, HashMap<ClientKey, usize>> {
    static HELD: OnceLock<Mutex<HashMap<ClientKey, usize>>> = OnceLock::new();
    lock(HELD.get_or_init(Default::default))
}

/// A connection's hold on its client id in [`held_ids`], given back when dropped: when the
/// appender lets go of the connection (a connection made again meanwhile for the same client
/// waits for it to close, and may take its id), or when the id changes.
struct IdHold(ClientKey);

impl IdHold {
    fn new(identity: &ClientKey, client_id: &str) -> IdHold {
        let key = (identity.0.clone(), identity.1, client_id.to_string());
        *held_ids().entry(key.clone()).or_default() += 1;
        IdHold(key)
    }
}

/// Names the live connection of this process, not `previous` (an edited appender's
/// predecessor, draining), that holds `broker`'s client id under other settings.
fn clash(
    broker: &BrokerConfig,
    pool: &HashMap<BrokerConfig, Weak<Connection>>,
    previous: Option<&Goodbye>,
) -> String {
    let identity = client_key(broker);
    let other = pool
        .iter()
        .filter(|(config, _)| client_key(config) == identity)
        .find(|(_, connection)| {
            connection.upgrade().is_some_and(|c| {
                let draining =
                    previous.is_some_and(|g| Arc::ptr_eq(&g.finished, &c.shared.finished));
                let holds = lock(&c.shared.hold)
                    .as_ref()
                    .is_some_and(|h| h.0 .2 == broker.client_id);
                holds && !draining
            })
        });
    let settings = other
        .map(|(config, _)| broker.other_settings(config).join(", "))
        .filter(|s| !s.is_empty())
        .map(|s| format!(" (different {s})"))
        .unwrap_or_default();
    format!(
        "another appender of this node holds a connection to {} with client id '{}' and other \
         connection settings{settings}",
        address_label(broker, &broker.host, broker.port),
        broker.client_id
    )
}

/// Names the live connection of this process, not one closing or draining for a closed
/// appender (it is on its way out), that publishes to `broker`'s status topic at its broker.
///
/// Warned about, not shared: each connection leaves its own last will, which the broker
/// publishes when that connection dies, whatever the others do, so counting the holders to
/// publish 'offline' at the last close only would still leave the status wrong at every lost
/// connection, and hide why.
fn status_carrier(
    broker: &BrokerConfig,
    pool: &HashMap<BrokerConfig, Weak<Connection>>,
) -> Option<String> {
    let topic = broker.status_topic.as_deref()?;
    let carriers: Vec<Arc<Connection>> = pool
        .iter()
        .filter(|(config, _)| {
            (
                config.host.as_str(),
                config.port,
                config.status_topic.as_deref(),
            ) == (broker.host.as_str(), broker.port, Some(topic))
        })
        .filter_map(|(_, connection)| connection.upgrade())
        .collect();
    // Not held when `carriers` goes: the last `Arc` of a connection its appender let go of
    // meanwhile says goodbye in `closing` as it is dropped.
    let closing = closing();
    let live = carriers.iter().find(|c| {
        !closing
            .values()
            .any(|g| Arc::ptr_eq(&g.finished, &c.shared.finished))
    });
    let named = live.map(|c| {
        format!(
            "another appender's connection of this node, to {}",
            c.shared.label
        )
    });
    drop(closing);
    named
}

/// This node's own id for `configured` ([`crate::identity::unique`]), or, where another
/// connection of this process holds that, the first of its `-2`, `-3`, ... that is `free`.
fn own_id(configured: &str, free: impl Fn(&str) -> bool) -> String {
    let base = crate::identity::unique(configured);
    std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|id| free(id))
        .unwrap_or(base)
}

/// Whether a connection other than `shared`'s holds `client_id` at its broker.
fn held_by_another(shared: &Shared, client_id: &str) -> bool {
    let ours = lock(&shared.hold)
        .as_ref()
        .is_some_and(|h| h.0 .2 == client_id);
    let key = (
        shared.identity.0.clone(),
        shared.identity.1,
        client_id.to_string(),
    );
    held_ids().get(&key).is_some_and(|&n| n > usize::from(ours))
}

impl Drop for IdHold {
    fn drop(&mut self) {
        let mut held = held_ids();
        if let Some(n) = held.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.0);
            }
        }
    }
}

impl Shared {
    /// Takes back this connection's goodbye in [`closing`], if the entry for its client is
    /// still its own: it has closed, or it is not closing after all.
    fn stay(&self) {
        let mut closing = closing();
        if closing
            .get(&self.identity)
            .is_some_and(|g| Arc::ptr_eq(&g.finished, &self.finished))
        {
            closing.remove(&self.identity);
        }
    }

    /// Runs `f` on the tracker and the client, locked in the one order used everywhere
    /// (tracker, then client), and wakes the driver when `f` left publishes for it to write.
    fn hand_over<R>(&self, f: impl FnOnce(&mut Tracker, &mut dyn Client) -> R) -> R {
        let mut tracker = lock(&self.tracker);
        let mut client = lock(&self.client);
        let result = f(&mut tracker, &mut **client);
        if client.has_ready() {
            self.ready.notify_one();
        }
        result
    }

    /// Publishes the retained liveness status, if the connection has a status topic. It is
    /// tracked like any message (rumqttc's packet ids must stay in step) by a pack of its own,
    /// which is returned.
    fn publish_status(&self, status: Status) -> Option<Arc<Pack>> {
        let topic = self.status_topic.as_ref()?;
        let payload = status::payload(self.status_format, status, SystemTime::now());
        let label = self.label.clone();
        let pack = Pack::new(
            1,
            Box::new(move |outcome| {
                // "offline" left unconfirmed when the driver ended (`Why::Closed`): the close
                // waited for its ack and already said why it did not come (`close_gracefully`).
                let level = match (status, outcome) {
                    (_, Outcome::Delivered) => return,
                    (Status::Offline, Outcome::InternalError) => log::Level::Debug,
                    _ => log::Level::Warn,
                };
                log::log!(
                    level,
                    "status '{}' not confirmed by {label}: {outcome}",
                    status.word()
                );
            }),
        );
        let how = PublishOptions {
            qos: Qos::AtLeastOnce,
            retain: true,
            content_type: match self.status_format {
                StatusFormat::Text => "text/plain",
                StatusFormat::Json => "application/json",
            },
            message_expiry: None,
            // No appender's: as long as a connect and a keep-alive may take, so that a broker
            // that stops acknowledging is found though the status holds the only slot.
            patience: Some(self.connect_timeout + self.keep_alive),
        };
        let message = Message {
            topic: Arc::clone(topic),
            payload,
            labels: Vec::new(),
        };
        self.hand_over(|tracker, client| {
            tracker.submit(client, &pack, how, vec![message], usize::MAX)
        });
        Some(pack)
    }
}

/// A pooled connection. Dropping the last `Arc` disconnects it.
pub struct Connection {
    shared: Arc<Shared>,
}

impl Connection {
    /// The connection for `broker`, shared with other appenders of the same identity. Refused
    /// when another connection of this process holds its client id and the id may not change.
    pub fn get(broker: &BrokerConfig) -> Result<Arc<Connection>, ConfigError> {
        static POOL: OnceLock<Mutex<HashMap<BrokerConfig, Weak<Connection>>>> = OnceLock::new();
        let mut pool = lock(POOL.get_or_init(Default::default));
        pool.retain(|_, c| c.strong_count() > 0);
        if let Some(existing) = pool.get(broker).and_then(Weak::upgrade) {
            // Draining for a closed appender, it has a new one: no longer on its way out, so
            // no connection made later waits for it, or takes the id it holds.
            existing.shared.stay();
            return Ok(existing);
        }
        let connection = Arc::new(Connection::open(broker, &pool)?);
        pool.insert(broker.clone(), Arc::downgrade(&connection));
        Ok(connection)
    }

    fn open(
        broker: &BrokerConfig,
        pool: &HashMap<BrokerConfig, Weak<Connection>>,
    ) -> Result<Connection, ConfigError> {
        let identity = client_key(broker);
        let previous = closing().get(&identity).cloned();
        // Whether no connection of this process holds `id` at this broker, but maybe the one
        // closing for this client (an edited appender's predecessor, draining): this one
        // connects only after its DISCONNECT. Two connections holding one id at once would
        // push each other out.
        let free = |id: &str| {
            let key = (broker.host.clone(), broker.port, id.to_string());
            let held = held_ids().get(&key).copied().unwrap_or(0);
            let predecessor_holds = previous
                .as_ref()
                .is_some_and(|g| g.holds.as_deref() == Some(id));
            held == 0 || (held == 1 && predecessor_holds)
        };
        // The id an earlier connection for this client moved to, unless another holds it now.
        let moved = replaced().get(&identity).filter(|id| free(id)).cloned();
        let client_id = match moved {
            Some(id) => id,
            None if free(&broker.client_id) => broker.client_id.clone(),
            None => {
                // Another appender of this node with this client id and other connection
                // settings, live: the broker would keep closing one of the two connections.
                let clash = clash(broker, pool, previous.as_ref());
                if !broker.clean_session {
                    return Err(ConfigError::new(
                        "clientId",
                        format!(
                            "{clash}; with cleanSession off the id names the broker's session \
                             and cannot change, and the broker would keep closing one of the two \
                             connections: give each appender its own clientId"
                        ),
                    ));
                }
                let own = own_id(&broker.client_id, free);
                log::warn!(
                    "{clash}; the broker would keep closing one of the two connections, so this \
                     one connects as '{own}' (cleanSession is on: the id carries no state); give \
                     each appender its own clientId to choose the id"
                );
                own
            }
        };
        let hold = IdHold::new(&identity, &client_id);
        let label = format!(
            "{} as '{client_id}'",
            address_label(broker, &broker.host, broker.port)
        );
        if let Some(other) = status_carrier(broker, pool) {
            log::warn!(
                "{label}: statusTopic '{}' is also carried by {other}: each connection \
                 publishes 'offline' there when it closes and leaves 'offline' as its last will, \
                 so the node's status reads 'offline' while the other connection still runs; \
                 give each appender's statusTopic a part of its own (for example \
                 'kaa/status/{{hostname}}/<application>')",
                broker.status_topic.as_deref().unwrap_or_default()
            );
        }
        let (client, pending) = protocol::open(broker, &client_id, &label);
        let shared = Arc::new(Shared {
            client: Mutex::new(client),
            tracker: Mutex::new(Tracker::default()),
            shutdown: Notify::new(),
            stalled: Notify::new(),
            ready: Notify::new(),
            released: AtomicBool::new(false),
            finished: Arc::new(Semaphore::new(0)),
            previous,
            hold: Mutex::new(Some(hold)),
            identity,
            label,
            status_topic: broker.status_topic.as_deref().map(Arc::from),
            status_follows_id: broker.status_follows_id,
            status_format: broker.status_format,
            clean_session: broker.clean_session,
            connect_timeout: broker.connect_timeout,
            keep_alive: broker.keep_alive,
            max_inflight: broker.max_inflight,
            metrics: ConnectionMetrics::default(),
        });
        pending.start(StartDriver {
            shared: Arc::clone(&shared),
            client_id,
        });
        Ok(Connection { shared })
    }

    /// Hands a pack's messages to the connection without waiting on the network.
    pub fn submit(
        &self,
        pack: &Arc<Pack>,
        how: PublishOptions,
        messages: Vec<Message>,
        max_pending: usize,
    ) {
        self.shared
            .hand_over(|tracker, client| tracker.submit(client, pack, how, messages, max_pending));
    }

    pub fn metrics(&self) -> &ConnectionMetrics {
        &self.shared.metrics
    }

    /// Records accepted and not yet confirmed or failed.
    pub fn outstanding(&self) -> usize {
        lock(&self.shared.tracker).outstanding()
    }

    /// Forgets records of packs that were answered meanwhile (deadline, close).
    pub fn prune(&self) {
        lock(&self.shared.tracker).prune();
    }

    /// At an appender's sweep: a message still unacknowledged past its patience (its
    /// appender's deliveryTimeoutSeconds) since it was written means the broker stopped
    /// acknowledging on this connection, one unwritten while nothing was written for that
    /// long that it stopped reading, and it is made anew (see `Tracker::is_stalled`).
    pub fn check_stalled(&self) {
        if lock(&self.shared.tracker)
            .is_stalled(Instant::now())
            .is_some()
        {
            self.shared.stalled.notify_one();
        }
    }
}

impl Connection {
    /// The appender that held this connection last was closed and drains it until `until`:
    /// a connection made meanwhile for the same client id under other settings (an edited
    /// appender) waits for it, as for one being closed.
    pub fn draining(self: &Arc<Self>, until: Instant) {
        // Another appender still using it keeps it open; then there is nothing to wait for.
        if Arc::strong_count(self) == 1 {
            self.say_goodbye(until);
        }
    }

    fn say_goodbye(&self, by: Instant) {
        let holds = lock(&self.shared.hold).as_ref().map(|h| h.0 .2.clone());
        closing().insert(
            self.shared.identity.clone(),
            Goodbye {
                finished: Arc::clone(&self.shared.finished),
                by: by + self.shared.connect_timeout + CLOSE_GRACE,
                holds,
            },
        );
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        lock(&self.shared.hold).take();
        self.say_goodbye(Instant::now());
        self.shared.released.store(true, Ordering::Release);
        self.shared.shutdown.notify_one();
    }
}

/// Starts a connection's driver on the runtime, for the event loop of either MQTT version.
struct StartDriver {
    shared: Arc<Shared>,
    client_id: String,
}

impl protocol::Start for StartDriver {
    fn start<E: EventLoop>(self, eventloop: E, brokers: Vec<(E::Options, String)>) {
        runtime().spawn(drive(self.shared, eventloop, brokers, self.client_id));
    }
}

/// When the driver sends the broker a ping for the TCP acknowledgement it carries.
///
/// Mosquitto's default (`set_tcp_nodelay false`) holds small packets back behind Nagle's
/// algorithm while one it sent is unacknowledged, and Linux delays that acknowledgement up to
/// 40 ms while this side has nothing to send. So the acks after the first of a burst waited
/// for the next pack's publishes or 40 ms: at QoS 1 a pack's answer took 43 ms at 20 packs/s,
/// against 1.8 ms with `set_tcp_nodelay true` (Mosquitto 2.0.11, loopback).
///
/// So when an ack came, more are awaited and the connection has nothing to read or write, a
/// PINGREQ goes out. With messages waiting for room in the window (a saturated connection,
/// idle for a moment after each batch of acks) no sooner than `NUDGE_GAP` after the last one:
/// one ping for every other message cost the publisher 3 µs per message at QoS 1. A PINGRESP
/// can hold acks back as an ack can (at 40 k records/s, three pings answered only by PINGRESPs
/// still left a 40 ms stall), so it asks for another ping too: the first `QUICK_NUDGES` after
/// an ack at once, then after gaps that double from `NUDGE_GAP`, until the gap would reach
/// Linux's delayed acknowledgement, which does the same. So a broker that answers pings but
/// acks nothing gets ten. With it, QoS 1 answers at 20 packs/s took 1.7 ms.
struct Nudge {
    /// A packet came since the last ping, which may have left more behind it.
    wanted: bool,
    /// Pings since the last ack.
    unacked: u8,
    last: Option<tokio::time::Instant>,
    /// Set for `NUDGE_GAP` after the last ping when one is wanted sooner.
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: bool,
}

const NUDGE_GAP: Duration = Duration::from_micros(500);
const QUICK_NUDGES: u8 = 3;
/// What Linux's delayed acknowledgement took here (`TCP_DELACK_MIN`): a later ping frees
/// nothing that the acknowledgement itself would not.
const DELAYED_ACK: Duration = Duration::from_millis(40);

impl Nudge {
    fn new() -> Self {
        Nudge {
            wanted: false,
            unacked: 0,
            last: None,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: false,
        }
    }

    fn on_event(&mut self, event: &Observed) {
        match event {
            Observed::Acked { .. } | Observed::Received { .. } | Observed::Completed { .. } => {
                self.wanted = true;
                self.unacked = 0;
            }
            Observed::Pong => self.wanted = self.gap(false) < DELAYED_ACK,
            _ => {}
        }
    }

    /// The connection is idle: whether to ping now. If not yet, the timer is set, and when it
    /// fires the driver asks again.
    fn due(&mut self, backlog: bool) -> bool {
        let now = tokio::time::Instant::now();
        let gap = self.gap(backlog);
        if let Some(last) = self.last.filter(|&l| now < l + gap) {
            self.timer.as_mut().reset(last + gap);
            self.armed = true;
            return false;
        }
        self.wanted = false;
        self.unacked = self.unacked.saturating_add(1);
        self.last = Some(now);
        true
    }

    /// How long after the last ping the next may go.
    fn gap(&self, backlog: bool) -> Duration {
        match self.unacked.checked_sub(QUICK_NUDGES) {
            Some(slow) => NUDGE_GAP.saturating_mul(1 << slow.min(16)),
            None if backlog => NUDGE_GAP,
            None => Duration::ZERO,
        }
    }
}

/// What one turn of a connection's loop decided.
enum Turn {
    Next,
    Stop,
}

/// One connection's event loop and what its driver keeps between turns.
struct Driver<E: EventLoop> {
    shared: Arc<Shared>,
    eventloop: E,
    /// The brokers in the order they are tried, with their `host:port`.
    brokers: Vec<(E::Options, String)>,
    client_id: String,
    /// The broker in use or being tried.
    current: usize,
    backoff: Duration,
    takeover_backoff: Duration,
    /// When the connection in use was accepted; `None` while not connected.
    connected_at: Option<Instant>,
    ever_connected: bool,
    /// The last failure logged at WARN: a broker that stays away is reported once, not at
    /// every retry, and a different failure (say, a TLS error after a refused TCP connect) is.
    last_failure: Option<String>,
    /// QoS 2 messages refused at PUBREC or PUBCOMP on this connection. rumqttc 0.25's MQTT 5
    /// client keeps an in-flight slot for each until it reconnects, and stops sending once they
    /// fill its window; at half of the window the connection is made anew.
    refused_slots: usize,
    slot_limit: usize,
    /// Brokers of this round (from the first on) that refused the connection: packs waiting
    /// are refused only once all have, so that a failover broker gets them when the first
    /// refuses (bad credentials on it alone).
    refused_in_round: usize,
    /// The broker refused a message on this connection (MQTT 5): a close soon after is its
    /// answer to that message, not another client taking the id.
    refused_here: bool,
    /// A publish was written on this connection. A close that follows may be the broker's
    /// answer to it: strict brokers (AWS IoT, HiveMQ) close an MQTT 3.1.1 connection instead of
    /// acknowledging a publish it may not make, with no reason given.
    carried: bool,
    /// The last connection was closed soon after accepting it, without a reason, after it
    /// carried a publish: a takeover if the next one ends the same way.
    suspected: bool,
    nudge: Nudge,
}

/// Runs the event loop of one connection until the pool lets go of it. `brokers` are tried
/// in order on connect and, after a connection is lost, again from the first.
///
/// Completes once the sweep said the broker stopped acknowledging ([`Connection::check_stalled`])
/// and it still holds when the driver looks, with the patience of the message past it. A
/// notice an ack has made stale meanwhile is absorbed here: a branch that completed for it
/// would cancel the event loop's poll for nothing, which can lose a publish MQTT 5's rumqttc
/// had taken from its channel and not written yet (see `EventLoop::NUDGES`).
async fn stall(shared: &Shared) -> Duration {
    loop {
        shared.stalled.notified().await;
        let stalled = lock(&shared.tracker).is_stalled(Instant::now());
        if let Some(limit) = stalled {
            return limit;
        }
    }
}

/// Supervised: a panic anywhere in a turn (rumqttc's poll, the tracker, our own handling) is
/// caught and logged with its message; uncaught, it would end this task, leave the connection
/// dead for every appender sharing it and its packs waiting for their deadlines. "Recovers"
/// means what a lost connection means: the state the panic interrupted cannot be trusted, so
/// every pack the tracker holds is answered `onConnectionError` (Kaa sends it again), the
/// connection is dropped together with what rumqttc queued for it, and after a pause the
/// driver connects anew, from the first broker.
async fn drive<E: EventLoop>(
    shared: Arc<Shared>,
    eventloop: E,
    brokers: Vec<(E::Options, String)>,
    client_id: String,
) {
    if let Some(previous) = &shared.previous {
        // Fails (closed semaphore) as soon as the old connection is gone: its connect attempt
        // ended and its DISCONNECT is written. Bounded by when it should have.
        let _ = tokio::time::timeout_at(previous.by.into(), previous.finished.acquire()).await;
    }
    let mut driver = Driver {
        shared,
        eventloop,
        brokers,
        client_id,
        current: 0,
        backoff: BACKOFF_MIN,
        takeover_backoff: BACKOFF_MIN,
        connected_at: None,
        ever_connected: false,
        last_failure: None,
        refused_in_round: 0,
        refused_slots: 0,
        slot_limit: Window::default().acked / 2,
        refused_here: false,
        carried: false,
        suspected: false,
        nudge: Nudge::new(),
    };
    loop {
        let turned = {
            let turn = std::pin::pin!(driver.turn());
            CatchUnwind(turn).await
        };
        match turned {
            Ok(Turn::Next) => {}
            Ok(Turn::Stop) => break,
            Err(message) => {
                driver.recover(&message);
                let pause = jitter(driver.backoff);
                driver.backoff = (driver.backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    _ = driver.shared.shutdown.notified() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    let shared = driver.shared;
    // A completion that panics here must not keep `finished` from closing: a new connection
    // with this client id waits for it.
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
        lock(&shared.tracker).fail_all(Why::Closed)
    })) {
        log::error!(
            "panic while closing the connection to {}: {}",
            shared.label,
            panic_message(payload)
        );
    }
    shared.finished.close();
    shared.stay();
    log::debug!("connection to {} closed", shared.label);
}

impl<E: EventLoop> Driver<E> {
    /// After a panic in a turn: answers every pack the tracker holds `onConnectionError`,
    /// drops the connection and what rumqttc queued for it; the next turn connects anew.
    fn recover(&mut self, message: &str) {
        let Driver {
            shared,
            eventloop,
            connected_at,
            current,
            backoff,
            takeover_backoff,
            ..
        } = self;
        log::error!(
            "panic in the event loop of the connection to {}: {message}; its packs in flight fail \
             (onConnectionError) and it connects anew",
            shared.label
        );
        earned(
            connected_at.take().map(|at| at.elapsed()),
            backoff,
            takeover_backoff,
        );
        shared.metrics.connected.store(false, Ordering::Relaxed);
        let recovered = catch_unwind(AssertUnwindSafe(|| {
            // Under the tracker's lock, so that no pack is submitted between emptying rumqttc's
            // channel (`drop_connection` moves it into what `forget` drops) and the tracker.
            let mut tracker = lock(&shared.tracker);
            eventloop.drop_connection();
            let _ = eventloop.forget();
            drop(lock(&shared.client).take_ready());
            tracker.fail_all(Why::Lost);
            tracker.on_connection_lost(0, &[]);
        }));
        if let Err(payload) = recovered {
            log::error!(
                "panic while recovering the connection to {}: {}; trying again",
                shared.label,
                panic_message(payload)
            );
        }
        if *current != 0 {
            eventloop.switch_to(&self.brokers[0].0, &self.client_id);
            self.current = 0;
        }
        self.refused_in_round = 0;
    }

    /// One event of the event loop, or one failure, and what follows from it.
    async fn turn(&mut self) -> Turn {
        let Driver {
            shared,
            eventloop,
            brokers,
            client_id,
            current,
            backoff,
            takeover_backoff,
            connected_at,
            ever_connected,
            last_failure,
            refused_in_round,
            refused_slots,
            slot_limit,
            refused_here,
            carried,
            suspected,
            nudge,
        } = self;
        let polled = if connected_at.is_some() {
            tokio::select! {
                // The event loop first: when it has an event ready (the common case under
                // load), the notifications are never polled and cost no waiter registration.
                // None is starved: they are polled whenever no event is ready, close and
                // stalls before writes, which a slow broker's backlog keeps coming.
                biased;
                polled = eventloop.poll() => polled,
                _ = shared.shutdown.notified() => {
                    close_gracefully(shared, eventloop).await;
                    return Turn::Stop;
                }
                limit = stall(shared) => {
                    eventloop.drop_connection();
                    Err(Failure::Broken(format!(
                        "the broker has not acknowledged a message for over {}s \
                         (deliveryTimeoutSeconds) though the connection is up; reconnecting to \
                         free its in-flight slots",
                        limit.as_secs()
                    )))
                }
                // Publishes are written only from here: after the events of the last write
                // were all read (the poll above returns those first), and with the poll having
                // had its turn at the socket and the keep-alive timer, so a steady stream of
                // QoS 0 publishes, which wait for no ack, cannot keep it from either.
                _ = shared.ready.notified() => {
                    // The poll this cancelled may have left bytes unflushed: flush even when
                    // nothing is ready any more.
                    match write_ready(shared, eventloop, true).await {
                        Some(Err(failure)) => Err(failure),
                        _ => return Turn::Next,
                    }
                }
                // Reached only when nothing above is ready: the connection is idle.
                _ = std::future::ready(()), if nudge.wanted && !nudge.armed => {
                    let (awaits, backlog) = {
                        let tracker = lock(&shared.tracker);
                        (tracker.awaits_acks(), tracker.has_backlog())
                    };
                    if !awaits {
                        nudge.wanted = false;
                        return Turn::Next;
                    }
                    if !nudge.due(backlog) {
                        return Turn::Next;
                    }
                    match eventloop.nudge().await {
                        Err(failure) => Err(failure),
                        Ok(()) => return Turn::Next,
                    }
                }
                _ = &mut nudge.timer, if nudge.armed => {
                    nudge.armed = false;
                    return Turn::Next;
                }
            }
        } else if shared.released.load(Ordering::Acquire) {
            return Turn::Stop;
        } else {
            // A connect attempt runs to its end (at most connectTimeoutSeconds), even when the
            // pool lets go meanwhile: dropped half-way, its CONNECT could reach the broker after
            // that of the next connection with the same client id, and push that one out.
            eventloop.poll().await
        };
        if polled.as_ref().is_ok_and(Observed::is_refusal) {
            *refused_here = true;
        }
        if let Ok(Observed::Written(_)) = polled {
            *carried = true;
        }
        let polled = match polled {
            Ok(
                event @ (Observed::Received {
                    refused: Some(_), ..
                }
                | Observed::Completed {
                    refused: Some(_), ..
                }),
            ) => {
                shared.hand_over(|tracker, client| tracker.on_event(client, &event));
                *refused_slots += 1;
                if *refused_slots < *slot_limit {
                    return Turn::Next;
                }
                eventloop.drop_connection();
                Err(Failure::Broken(format!(
                    "the broker refused {refused_slots} QoS 2 messages, and the MQTT client holds \
                     an in-flight slot for each until it reconnects; reconnecting"
                )))
            }
            other => other,
        };
        let label = format!("{} as '{client_id}'", brokers[*current].1);
        match polled {
            Ok(Observed::Connected {
                receive_maximum,
                session_present,
                grants,
            }) => {
                let window = Window::agreed(shared.max_inflight, receive_maximum);
                if let (Some(configured), false) = (shared.max_inflight, *ever_connected) {
                    if usize::from(configured) > window.acked {
                        log::warn!(
                            "{label}: maxInflight is {configured}, above the broker's receive \
                             maximum: {} messages in flight at most",
                            window.acked
                        );
                    }
                }
                *refused_slots = 0;
                *refused_here = false;
                *carried = false;
                *slot_limit = (window.acked / 2).max(1);
                *nudge = Nudge::new();
                // The pause is not reset here: a broker that accepts and closes at once
                // (busy, over a quota, refusing the status message) would get ten
                // connections a second. It is reset once the connection has lived (`earned`).
                *connected_at = Some(Instant::now());
                if *ever_connected {
                    shared.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                *ever_connected = true;
                shared.metrics.connected.store(true, Ordering::Relaxed);
                *last_failure = None;
                if session_present {
                    log::info!("connected to {label}, resuming its session");
                } else {
                    log::info!("connected to {label}");
                }
                shared.hand_over(|tracker, client| {
                    client.follow(grants);
                    tracker.on_connected(client, window)
                });
                let _ = shared.publish_status(Status::Online);
            }
            Ok(event) => {
                if E::NUDGES {
                    nudge.on_event(&event);
                }
                shared.hand_over(|tracker, client| tracker.on_event(client, &event))
            }
            Err(failure) => {
                shared.metrics.connected.store(false, Ordering::Relaxed);
                let lived = connected_at.take().map(|at| at.elapsed());
                earned(lived, backoff, takeover_backoff);
                let mut pause = None;
                if !matches!(failure, Failure::Refused(_)) {
                    // Under the tracker's lock: what rumqttc drained must be what the tracker
                    // handed it. The events include what the broker answered just before the
                    // close (a refusal and the close often come in one read).
                    let mut tracker = lock(&shared.tracker);
                    let (drained, unreported) = eventloop.forget();
                    *refused_here |= unreported.iter().any(Observed::is_refusal);
                    *carried |= unreported.iter().any(|e| matches!(e, Observed::Written(_)));
                    tracker.on_connection_lost(drained, &unreported);
                }
                // A close soon after the connect is taken for a takeover unless the broker said
                // another reason (an MQTT 5 DISCONNECT), or had just refused a message: then
                // the close is its answer to that message. After a publish it may be that
                // answer without a word, so only the second such close in a row counts.
                let unexplained = matches!(
                    failure,
                    Failure::Closed {
                        taken_over: None,
                        ..
                    }
                ) && !*refused_here
                    && lived.is_some_and(|l| l < TAKEOVER_WINDOW);
                let likely_takeover = unexplained && (!*carried || *suspected);
                *suspected = unexplained && !likely_takeover;
                let of_the_id = failure.may_refuse_the_id();
                let (text, refused) = match failure {
                    Failure::Refused(code)
                        if of_the_id
                            && *client_id != shared.identity.2
                            && !held_by_another(shared, &shared.identity.2) =>
                    {
                        // Refused under the id this node moved to after a takeover: a broker
                        // that admits exact ids only (AWS IoT policies) refuses it at every
                        // retry, and every pack would fail until the node restarts. The
                        // configured id it admits; the other client may still hold it, and
                        // the pauses between takeovers grow as for a persistent session. Not
                        // while another connection of this process holds it: the two would
                        // push each other out for good.
                        let configured = shared.identity.2.clone();
                        give_back(shared, client_id, &configured);
                        let text = format!(
                            "refused the connection: {code}; '{client_id}' is the id this node \
                             moved to after a takeover, and a broker that admits exact client \
                             ids only (AWS IoT policies) refuses any other: connecting as \
                             '{configured}' again"
                        );
                        *client_id = configured;
                        pause = Some(jitter(*takeover_backoff));
                        *takeover_backoff = (*takeover_backoff * 2).min(TAKEOVER_BACKOFF_MAX);
                        // Not counted as the broker's refusal: the packs waiting get the
                        // configured id's answer.
                        (text, false)
                    }
                    Failure::Refused(code) => {
                        // A broker that keeps no retained messages, or takes QoS 0 only,
                        // refuses the CONNECT that carries the status topic's last will.
                        let hint = match code.as_str() {
                            "RetainNotSupported" | "QoSNotSupported"
                                if shared.status_topic.is_some() =>
                            {
                                " (statusTopic's last will is retained, at QoS 1: remove \
                                 statusTopic for this broker)"
                            }
                            _ => "",
                        };
                        // Here a moved id only while another appender of this node holds the
                        // configured one: a broker admitting exact ids only admits one of them.
                        let configured = &shared.identity.2;
                        let clash = if *client_id != *configured {
                            format!(
                                " (another appender of this node holds '{configured}' with other \
                                 connection settings, and a broker that admits exact client ids \
                                 only refuses any other: give each appender its own clientId)"
                            )
                        } else {
                            String::new()
                        };
                        (format!("refused the connection: {code}{hint}{clash}"), true)
                    }
                    Failure::Closed { why, taken_over }
                        if taken_over.unwrap_or(likely_takeover) =>
                    {
                        let taken_over = taken_over == Some(true);
                        let lived = lived.unwrap_or_default();
                        let next = taken_over_by_another(
                            shared,
                            &label,
                            client_id,
                            (&why, taken_over),
                            lived,
                        );
                        match next {
                            Some(id) => {
                                if !shared.released.load(Ordering::Acquire) {
                                    *lock(&shared.hold) = Some(IdHold::new(&shared.identity, &id));
                                }
                                *client_id = id;
                                // The cause is found and gone: no pause earned elsewhere.
                                *backoff = BACKOFF_MIN;
                                eventloop.switch_to(&brokers[*current].0, client_id);
                            }
                            None => {
                                pause = Some(jitter(*takeover_backoff));
                                *takeover_backoff =
                                    (*takeover_backoff * 2).min(TAKEOVER_BACKOFF_MAX);
                            }
                        }
                        (why, false)
                    }
                    Failure::Closed { why, .. } if *suspected => (
                        format!(
                            "{why}: closed {} ms after accepting the connection, after a \
                             publish; the broker refusing it, or another client with this id \
                             (taken for that if the next connection ends the same way)",
                            lived.unwrap_or_default().as_millis()
                        ),
                        false,
                    ),
                    Failure::Closed { why, .. } | Failure::Broken(why) => (why, false),
                };
                let level = match (last_failure.as_ref() == Some(&text), refused) {
                    (true, _) => log::Level::Debug,
                    (false, true) => log::Level::Error,
                    (false, false) => log::Level::Warn,
                };
                if refused {
                    log::log!(level, "{label} {text}");
                    *refused_in_round += 1;
                } else if lived.is_some() {
                    log::warn!("connection to {label} lost: {text}");
                } else {
                    log::log!(level, "cannot connect to {label}: {text}; retrying");
                }
                *last_failure = Some(text);
                // The next broker right away; a pause only after a whole round failed.
                let next = if lived.is_some() {
                    0
                } else {
                    (*current + 1) % brokers.len()
                };
                // Always from the configured options: rumqttc keeps what a CONNACK set in them
                // (MQTT 5 server keep-alive and session expiry) for every later connection, to
                // another broker too, and a session expiry the broker raised would outlive the
                // connection where the configuration says it may not (QoS 2 refuses that).
                eventloop.switch_to(&brokers[next].0, client_id);
                *current = next;
                if next == 0 {
                    if *refused_in_round == brokers.len() {
                        lock(&shared.tracker).on_refused();
                    }
                    *refused_in_round = 0;
                    let pause = pause.unwrap_or_else(|| jitter(*backoff));
                    *backoff = (*backoff * 2).min(BACKOFF_MAX);
                    tokio::select! {
                        _ = shared.shutdown.notified() => return Turn::Stop,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        Turn::Next
    }
}

/// A connection that lived past the takeover window (`lived`; `None`: there was none) was a
/// sound one: the pauses after its loss start from the shortest again. One closed sooner
/// earns nothing, so a broker that closes every connection at once is retried ever slower.
fn earned(lived: Option<Duration>, backoff: &mut Duration, takeover_backoff: &mut Duration) {
    if lived.is_some_and(|l| l >= TAKEOVER_WINDOW) {
        *backoff = BACKOFF_MIN;
        *takeover_backoff = BACKOFF_MIN;
    }
}

/// The broker closed the connection `label` because another client connected with its id
/// (`said`: MQTT 5 says so), or `lived` so briefly that this is the likely cause. Counts it and says
/// so; returns the unique client id to use from now on, if the id may change: with a clean
/// session it carries no state, so a node of a cluster whose nodes share one configuration
/// stops pushing the others out. With a persistent session it may not (the session stays with
/// the id), and the caller backs off instead.
fn taken_over_by_another(
    shared: &Shared,
    label: &str,
    client_id: &str,
    (why, said): (&str, bool),
    lived: Duration,
) -> Option<String> {
    let count = shared.metrics.takeovers.fetch_add(1, Ordering::Relaxed) + 1;
    let configured = &shared.identity.2;
    // MQTT 5 says so; otherwise a close this early is only most likely a takeover.
    let likely = if said { "" } else { "most likely " };
    let cause = format!(
        "the broker closed the connection {} ms after accepting it ({why}): {likely}another \
         client connected with the same client id (takeover {count}; Kaa cluster nodes sharing \
         one configuration?)",
        lived.as_millis()
    );
    // Not one another connection of this process (same broker and id, other settings) holds.
    let unique = own_id(configured, |id| !held_by_another(shared, id));
    if !shared.clean_session {
        // ERROR once: what follows is the same fault, counted at WARN.
        let level = if count == 1 {
            log::Level::Error
        } else {
            log::Level::Warn
        };
        // Another appender of this node may be the other client: the same id, other settings.
        let whose = if held_by_another(shared, client_id) {
            "another appender of this node connects to this broker with this client id and \
             other connection settings: give each appender its own clientId"
        } else {
            "give every node its own clientId (for example 'kaa-{hostname}')"
        };
        log::log!(
            level,
            "{label}: {cause}. With cleanSession off the id keeps a session on the broker and \
             must not change on its own: {whose}; reconnecting with growing pauses meanwhile"
        );
        return None;
    }
    if client_id == unique {
        log::warn!(
            "{label}: {cause}, although the id is this node's own; reconnecting with growing pauses"
        );
        return None;
    }
    log::warn!(
        "{label}: {cause}. Clean session is on, so this node now connects as '{unique}' instead \
         of '{configured}' until it restarts"
    );
    if let (Some(topic), true) = (&shared.status_topic, shared.status_follows_id) {
        log::warn!(
            "{label}: statusTopic '{topic}' names the node by nothing clientId does not, so the \
             other client, very likely a node resolving clientId as this one does, shares it: \
             whichever of the two closes or loses its connection first leaves 'offline' there \
             while the other runs (the client id moved, the status topic cannot); make \
             statusTopic name what tells the nodes apart (give them distinct host names, or add \
             {{random}})"
        );
    }
    replaced().insert(shared.identity.clone(), unique.clone());
    Some(unique)
}

/// The connection `shared` gives up `moved`, the id it moved to, for its configured id: a
/// connection made again for the same client starts with the configured id too.
fn give_back(shared: &Shared, moved: &str, configured: &str) {
    let mut replaced = replaced();
    if replaced.get(&shared.identity).map(String::as_str) == Some(moved) {
        replaced.remove(&shared.identity);
    }
    drop(replaced);
    if !shared.released.load(Ordering::Acquire) {
        *lock(&shared.hold) = Some(IdHold::new(&shared.identity, configured));
    }
}

/// Writes what the client holds ready (see [`EventLoop::write`]); `None` when nothing was
/// ready and `flush` did not ask to flush anyway. What the client did not take goes back
/// before anything handed over meanwhile; what it left for time (`Ok(true)`) is written
/// after the driver's next turn.
async fn write_ready(
    shared: &Shared,
    eventloop: &mut impl EventLoop,
    flush: bool,
) -> Option<Result<bool, Failure>> {
    let mut ready = lock(&shared.client).take_ready();
    if ready.is_empty() && !flush {
        return None;
    }
    let written = eventloop.write(&mut ready).await;
    if !ready.is_empty() {
        lock(&shared.client).put_back(ready);
    }
    if let Ok(true) = written {
        shared.ready.notify_one();
    }
    Some(written)
}

/// On close: "offline" on the status topic (a normal DISCONNECT suppresses the will), and once
/// the broker has acknowledged it, DISCONNECT, waiting a moment for each.
async fn close_gracefully(shared: &Shared, eventloop: &mut impl EventLoop) {
    let status = shared.publish_status(Status::Offline);
    // What the tracker handed over before, then the status, then its PUBACK: DISCONNECT goes
    // out only after it, or the connection would end before the PUBACK is read, and the status
    // the broker took would be left unconfirmed. A backlog that a slow broker does not take,
    // or a status it does not acknowledge, within the grace is left, and so is the DISCONNECT:
    // the broker's will then says "offline" in place of the status it never confirmed.
    let settled = tokio::time::timeout(CLOSE_GRACE, async {
        loop {
            loop {
                match write_ready(shared, eventloop, false).await {
                    Some(Ok(true)) => {}
                    Some(Err(failure)) => return Err(failure),
                    Some(Ok(false)) | None => break,
                }
            }
            if status.as_ref().is_none_or(|s| s.is_done()) {
                return Ok(());
            }
            // Acks free room in the window for the status if it waits there (the next round
            // writes it), and the last is the status's own.
            let event = eventloop.poll().await?;
            shared.hand_over(|tracker, client| tracker.on_event(client, &event));
        }
    })
    .await;
    let why = match settled {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(format!(
            "the connection was lost while closing ({})",
            failure.text()
        )),
        Err(_) => Some(format!(
            "not written and acknowledged within {} s of closing",
            CLOSE_GRACE.as_secs()
        )),
    };
    if let Some(why) = why {
        if status.is_some() {
            log::warn!(
                "status 'offline' not confirmed by {}: {why}; the broker publishes the \
                 connection's last will ('offline') in its place",
                shared.label
            );
        }
        eventloop.drop_connection();
        return;
    }
    lock(&shared.client).disconnect();
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        loop {
            match eventloop.poll().await {
                Ok(Observed::Disconnected) | Err(_) => break,
                Ok(event) => shared.hand_over(|tracker, client| tracker.on_event(client, &event)),
            }
        }
    })
    .await;
}

/// Spreads reconnects of many nodes: a random point in [d/2, d].
fn jitter(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d / 2 + d.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

#[cfg(test)]
mod tests {
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
        let ended =
            runtime().block_on(async { tokio::time::timeout(WAIT, finished.acquire()).await });
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
    fn shrinking_broker_v5(
        listener: std::net::TcpListener,
        first: usize,
        pkids: mpsc::Sender<u16>,
    ) {
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
    fn closing_broker_v4(
        listener: std::net::TcpListener,
        closing: usize,
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
        let (pack, how, messages, _answer) =
            pack_of(Qos::AtMostOnce, vec![vec![b'x'; 512 << 10]; 128]);
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
}

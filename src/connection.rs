//! MQTT connections, one per broker identity, shared by every appender that points at it and
//! driven by tasks on one tokio runtime for the whole process.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Runtime;
use tokio::sync::{Notify, Semaphore};

use crate::config::{BrokerConfig, ConfigError, Qos};
use crate::delivery::{
    Blame, Crowded, Learned, Outcome, Pack, Stall, TopicClose, Tracker, Waited, Why,
};
use crate::fault;
use crate::log_budget::{shown_in_log, LogBudget};
use crate::metrics::ConnectionMetrics;
use crate::packet_limit::{Blamed, SOURCE_SUSPECTS};
use crate::protocol::{
    self, address_label, Client, EventLoop, Failure, Grants, Message, Observed, Origin,
    PublishOptions, Refusal, Said, Window,
};
use crate::refused_topics::TopicBlame;
use crate::status::{self, Status, StatusFormat};
use crate::supervise::{lock, panic_message, CatchUnwind};
use crate::tls::{BrokerCertificates, CertificateDates, TlsSettings};
use crate::utc::unix_now;

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
/// Closes before any CONNACK in a row, under an id the node moved to that no broker admitted,
/// under MQTT 3.1.1, that give the configured id back, as a CONNACK refusing the id does: AWS
/// IoT closes so a connect its policy refuses.
const TURNED_AWAY: u32 = 2;
/// Receive maxima below `maxInflight` said of per broker (`Driver::narrowed`).
const NARROWED_KEPT: usize = 4;
/// A connection that lived this long and was not found stalled was well: its loss is reported
/// even when the one before ended the same way (the INFO saying it held wants no message
/// waiting half that long for the broker too). Others ending alike are one fault going on (a
/// broker that ends each connection at once, or stalls every one, however long
/// `deliveryTimeoutSeconds` lets it live), which the summary line's reconnects count. Shorter
/// in unit tests, which stall connections past it.
const HEALTHY: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 60 });
/// Failures of one broker remembered as reported (see `Driver::reported`), and for how long:
/// a fault that goes on is reported again that often.
const FAILURES_KEPT: usize = 4;
const FAILURE_REMEMBERED: Duration = Duration::from_secs(600);
/// Events handled in one turn of the driver at most, under one lock of the tracker.
const EVENTS_PER_TURN: usize = 256;
/// The longest client id MQTT requires a broker to admit, of letters and digits only (3.1.1
/// and 5.0, §3.1.3.1).
const GUARANTEED_ID_BYTES: usize = 23;

/// Workers of the connections' runtime: one on a machine of three cores or fewer, two from
/// four. A connection is one task, so a second worker only helps several busy connections; where
/// the node's own threads (which decode) share two cores with it, it costs wake-ups across
/// cores instead. Measured on 2 cores, one message per pack at QoS 1: one worker gave 4 to 7%
/// more records/s and 5 to 10% less CPU per record (five interleaved pairs).
fn io_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).clamp(1, 2)
}

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(io_workers())
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
    /// Closed when the driver has ended: DISCONNECT written and the socket closed by the
    /// broker (or given up on), then dropped.
    finished: Arc<Semaphore>,
    /// What this one connects only after: the connection with the same client that was
    /// closing when this one was made, and those of this process that give up the client id
    /// for this one's lasting session ([`make_way`]).
    waits_for: Vec<Goodbye>,
    /// Set by a connection that keeps a session under the client id this one holds with a
    /// clean session: the driver moves to an id of its own, then closes the semaphore.
    give_up_id: Mutex<Option<Arc<Semaphore>>>,
    give_up_now: Notify,
    /// The broker address and configured client id, as `replaced()` and `held_ids()` know it
    /// (and `closing()`, by [`closing_key`]).
    identity: ClientKey,
    /// The client id in use, while the appender holds the connection.
    hold: Mutex<Option<IdHold>>,
    label: String,
    status_topic: Option<Arc<str>>,
    /// See [`BrokerConfig::status_follows_id`].
    status_follows_id: bool,
    /// See [`BrokerConfig::id_names_host`].
    id_names_host: bool,
    status_format: StatusFormat,
    clean_session: bool,
    /// Without TLS (`ssl` off).
    plain: bool,
    /// Through an HTTP proxy (`proxyHost`).
    proxied: bool,
    /// Over WebSocket (`transport`).
    websocket: bool,
    /// The client certificate's validity, to name its dates when a handshake fails.
    client_certificate: Option<CertificateDates>,
    /// What the brokers' certificates were at their last handshake, looked at again at each
    /// sweep (`verifySslCert` on).
    broker_certificates: Option<Arc<BrokerCertificates>>,
    connect_timeout: Duration,
    keep_alive: Duration,
    /// `maxInflight`; `None`: automatic.
    max_inflight: Option<u16>,
    metrics: ConnectionMetrics,
    /// Takeovers in a row, each within [`FAILURE_REMEMBERED`] of the last, and when the last
    /// was: what their log lines are counted by (JMX counts them all).
    takeover_streak: Mutex<(u64, Option<Instant>)>,
    /// The budget of the lines its appenders write of packs past their deadline: through an
    /// outage, each appender sharing the connection finds some at every sweep.
    expired_lines: LogBudget,
}

/// What a broker tells clients apart by: its address and the client id.
type ClientKey = (String, u16, String);

fn client_key(broker: &BrokerConfig) -> ClientKey {
    (broker.host.clone(), broker.port, broker.client_id.clone())
}

/// Whom a connection on its way out may still be connected as, to a new one: its host and
/// client id. Not the port: one broker listens on several (plain, TLS, WebSocket), and an
/// appender edited to TLS moves to another port of the same broker, where its predecessor's
/// id is still connected. (Two brokers on one host are told apart everywhere else; here
/// mistaking them costs one bounded wait. So a moved id, and a status topic another connection
/// carries, are known per port: an appender edited to the broker's TLS port starts from its
/// configured id again. A moved id is chosen that no port of the host holds: [`own_id`].)
type ClosingKey = (String, String);

fn closing_key(identity: &ClientKey) -> ClosingKey {
    (identity.0.clone(), identity.2.clone())
}

/// A connection on its way out: closed once its driver ended, expected to be by `by`;
/// `holds` the client id it still holds while it drains; it publishes 'offline' to
/// `status_topic` as it goes.
#[derive(Clone)]
struct Goodbye {
    finished: Arc<Semaphore>,
    by: Instant,
    holds: Option<ClientKey>,
    status_topic: Option<Arc<str>>,
}

/// Connections being closed, or draining for a closed appender, by client: a new connection
/// with the same client id first waits for the old ones' DISCONNECT (an appender edited in the
/// admin is closed and at once created again, maybe with other connection settings), or the
/// broker would drop whichever of the two reached it last.
fn closing() -> MutexGuard<'static, HashMap<ClosingKey, Vec<Goodbye>>> {
    static CLOSING: OnceLock<Mutex<HashMap<ClosingKey, Vec<Goodbye>>>> = OnceLock::new();
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

/// Whether `connection` is one of `previous`: closing, or draining for a closed appender.
fn on_its_way_out(connection: &Connection, previous: &[Goodbye]) -> bool {
    previous
        .iter()
        .any(|g| Arc::ptr_eq(&g.finished, &connection.shared.finished))
}

/// Names the live connection of this process, not one of `previous` (an edited appender's
/// predecessors, draining), that holds `broker`'s client id under other settings.
fn clash(
    broker: &BrokerConfig,
    pool: &HashMap<BrokerConfig, Weak<Connection>>,
    previous: &[Goodbye],
) -> String {
    let identity = client_key(broker);
    let other = holders(pool, &identity, previous).next();
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

/// Has the live connections of this process that hold `broker`'s client id, not those of
/// `previous` (draining), move to ids of their own, for `broker`'s lasting session, which the
/// id names: what to wait for. `None` when one of them keeps a session too, or none is found: two
/// sessions cannot share one id. Which of two appenders started first decides nothing.
fn make_way(
    broker: &BrokerConfig,
    pool: &HashMap<BrokerConfig, Weak<Connection>>,
    previous: &[Goodbye],
) -> Option<Vec<Goodbye>> {
    let identity = client_key(broker);
    let holders: Vec<Arc<Connection>> =
        holders(pool, &identity, previous).map(|(_, c)| c).collect();
    if holders.is_empty() || holders.iter().any(|c| !c.shared.clean_session) {
        return None;
    }
    Some(holders.iter().map(|c| c.shared.give_up_id()).collect())
}

/// Whether another live connection of this process, not on its way out, keeps a session
/// (cleanSession off) under the client id `connection` holds at its broker.
fn held_by_a_session(
    connection: &Arc<Connection>,
    pool: &HashMap<BrokerConfig, Weak<Connection>>,
) -> bool {
    let Some(key) = lock(&connection.shared.hold).as_ref().map(|h| h.0.clone()) else {
        return false;
    };
    let leaving = closing()
        .get(&closing_key(&connection.shared.identity))
        .cloned()
        .unwrap_or_default();
    let held = holders(pool, &key, &leaving)
        .any(|(_, c)| !Arc::ptr_eq(&c, connection) && !c.shared.clean_session);
    held
}

/// The live connections of this process, not on their way out (`leaving`), that hold the
/// client id `key` names at its broker, with their configurations.
fn holders<'p>(
    pool: &'p HashMap<BrokerConfig, Weak<Connection>>,
    key: &'p ClientKey,
    leaving: &'p [Goodbye],
) -> impl Iterator<Item = (&'p BrokerConfig, Arc<Connection>)> + 'p {
    pool.iter()
        .filter_map(|(config, connection)| Some((config, connection.upgrade()?)))
        .filter(move |(_, c)| !on_its_way_out(c, leaving))
        .filter(move |(_, c)| lock(&c.shared.hold).as_ref().is_some_and(|h| h.0 == *key))
}

/// Names the live connection of this process, not one closing or draining for a closed
/// appender (it is on its way out), that publishes to `broker`'s status topic at its host, on
/// any port: one broker's plain, TLS and WebSocket listeners share their topics (the line names
/// the port, for an operator whose two brokers share a host).
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
            (config.host.as_str(), config.status_topic.as_deref())
                == (broker.host.as_str(), Some(topic))
        })
        .filter_map(|(_, connection)| connection.upgrade())
        .collect();
    // Not held when `carriers` goes: the last `Arc` of a connection its appender let go of
    // meanwhile says goodbye in `closing` as it is dropped.
    let closing = closing();
    let live = carriers.iter().find(|c| {
        !closing
            .values()
            .flatten()
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

/// This node's own id for the configured one of `identity` ([`crate::identity::unique`]), or,
/// where another connection of this process holds that, the first of its `-2`, `-3`, ... that
/// is `free` and [`held_at_another_port`] of the host by none.
fn own_id(identity: &ClientKey, free: impl Fn(&str) -> bool) -> String {
    let (host, port, configured) = identity;
    let base = crate::identity::unique(configured);
    std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|id| free(id) && !held_at_another_port(host, *port, id))
        .unwrap_or(base)
}

/// Whether a connection of this process holds `client_id` at another port of `host`: maybe
/// the same broker, whose plain, TLS and WebSocket listeners share one set of client ids.
/// Configured ids are told apart by port (two brokers on one host keep a session each); an
/// id of the node's own is not taken there: two connections of a node to two listeners, both
/// moved after takeovers, took the same one and pushed each other out for good.
fn held_at_another_port(host: &str, port: u16, client_id: &str) -> bool {
    another_port_holding(host, port, client_id).is_some()
}

/// The other port of `host` where a connection of this process holds `client_id`, if any.
fn another_port_holding(host: &str, port: u16, client_id: &str) -> Option<u16> {
    held_ids()
        .keys()
        .find(|(h, p, id)| h == host && *p != port && id == client_id)
        .map(|&(_, p, _)| p)
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
    /// Asks the driver to move to an id of its own ([`make_way`]); what to wait for.
    fn give_up_id(&self) -> Goodbye {
        // A request still pending is the one to wait for: replaced, its waiter would wait in
        // vain.
        let released =
            Arc::clone(lock(&self.give_up_id).get_or_insert_with(|| Arc::new(Semaphore::new(0))));
        self.give_up_now.notify_one();
        Goodbye {
            finished: released,
            // A connect attempt under way runs to its end first; or a close, which may take
            // a grace to see its 'offline' acknowledged and one to write its DISCONNECT.
            by: Instant::now() + self.connect_timeout + 2 * CLOSE_GRACE,
            holds: None,
            status_topic: None,
        }
    }

    /// Takes back this connection's goodbye in [`closing`]: it has closed, or it is not
    /// closing after all.
    fn stay(&self) {
        let mut closing = closing();
        let key = closing_key(&self.identity);
        if let Some(goodbyes) = closing.get_mut(&key) {
            goodbyes.retain(|g| !Arc::ptr_eq(&g.finished, &self.finished));
            if goodbyes.is_empty() {
                closing.remove(&key);
            }
        }
    }

    /// Runs `f` on the tracker and the client, locked in the one order used everywhere
    /// (tracker, then client), and wakes the driver when `f` left publishes for it to write.
    fn hand_over<R>(&self, f: impl FnOnce(&mut Tracker, &mut dyn Client) -> R) -> R {
        let mut tracker = lock(&self.tracker);
        let mut client = lock(&self.client);
        let result = f(&mut tracker, &mut **client);
        if client.ready_len() > 0 {
            self.ready.notify_one();
        }
        result
    }

    /// Once connected: publishes 'online' again once every other connection
    /// closing that carries the same status topic has gone, publishing 'offline' as it went.
    /// An appender edited in the admin (a new client id or host, the same status
    /// topic) connects at once while its predecessors drain, and the retained status would read
    /// 'offline' while it runs. Published as appenders publish, not through a wake of the
    /// driver: that would cancel its poll, and rumqttc's MQTT 5 loop writes publishes inside
    /// it (see `EventLoop::NUDGES`). A close of this connection meanwhile still has its own
    /// 'offline' come last ([`Shared::publish_status`]).
    fn online_after_predecessors(self: &Arc<Self>) {
        let Some(topic) = &self.status_topic else {
            return;
        };
        // Also those of this client it waited for before it connected: the wait has a bound.
        // One that has gone is passed at once.
        let predecessors: Vec<Goodbye> = closing()
            .values()
            .flatten()
            .filter(|g| g.status_topic.as_ref() == Some(topic))
            .filter(|g| !Arc::ptr_eq(&g.finished, &self.finished))
            .cloned()
            .collect();
        if predecessors.is_empty() {
            return;
        }
        let shared = Arc::downgrade(self);
        tokio::spawn(async move {
            for g in predecessors {
                let _ = tokio::time::timeout_at(g.by.into(), g.finished.acquire()).await;
            }
            // Not connected: the next connect publishes it.
            if let Some(shared) = shared.upgrade() {
                if shared.metrics.connected.load(Ordering::Relaxed) {
                    let _ = shared.publish_status(Status::Online);
                }
            }
        });
    }

    /// Publishes the retained liveness status, if the connection has a status topic. It is
    /// tracked like any message (rumqttc's packet ids must stay in step) by a pack of its own,
    /// which is returned.
    fn publish_status(&self, status: Status) -> Option<Arc<Pack>> {
        let topic = self.status_topic.as_ref()?;
        let how = PublishOptions {
            qos: Qos::AtLeastOnce,
            retain: true,
            content_type: self.status_format.content_type(),
            message_expiry: None,
            // No appender's: as long as a connect and a keep-alive may take, so that a broker
            // that stops acknowledging is found though the status holds the only slot.
            patience: Some(self.connect_timeout + self.keep_alive),
            origin: Default::default(),
        };
        let message = Message {
            topic: Arc::clone(topic),
            payload: status::payload(self.status_format, status, SystemTime::now()),
            labels: Vec::new(),
        };
        self.hand_over(|tracker, client| {
            // No 'online' once the pool has let go. Checked under the lock that the close's
            // 'offline' is handed over under, after that (see `Drop for Connection`): it stays
            // the last word.
            if status == Status::Online && self.released.load(Ordering::Acquire) {
                return None;
            }
            let label = self.label.clone();
            let pack = Pack::new(
                1,
                Box::new(move |outcome| {
                    // "offline" left unconfirmed when the driver ended (`Why::Closed`): the
                    // close waited for its ack and already said why it did not come
                    // (`close_gracefully`).
                    // A lost connection says why itself, once for a fault that goes on; so does
                    // a refusal: of the message (with the broker's reason), of its topic lately,
                    // of what the broker grants, or of the connection.
                    let level = match (status, outcome) {
                        (_, Outcome::Delivered) => return,
                        (Status::Offline, Outcome::InternalError)
                        | (_, Outcome::ConnectionError)
                        | (_, Outcome::RemoteError) => log::Level::Debug,
                        _ => log::Level::Warn,
                    };
                    log::log!(
                        level,
                        "status '{}' not confirmed by {label}: {outcome}",
                        status.word()
                    );
                }),
            );
            tracker.submit(client, &pack, how, vec![message], usize::MAX);
            Some(pack)
        })
    }
}

/// A pooled connection. Dropping the last `Arc` disconnects it.
pub struct Connection {
    shared: Arc<Shared>,
    /// The appenders it was given to ([`Connection::get`]) and not closed since
    /// ([`Connection::draining`]), counted under the pool's lock: a closed appender's drain
    /// holds it too, and another appender's close within that drain must still find it on its
    /// way out.
    appenders: AtomicUsize,
}

/// The connections open, by their settings.
fn pool() -> MutexGuard<'static, HashMap<BrokerConfig, Weak<Connection>>> {
    static POOL: OnceLock<Mutex<HashMap<BrokerConfig, Weak<Connection>>>> = OnceLock::new();
    lock(POOL.get_or_init(Default::default))
}

impl Connection {
    /// The connection for `broker`, shared with other appenders of the same identity. Refused
    /// when another connection of this process holds its client id and the id may not change.
    /// An appender that got one gives it back with [`Connection::draining`].
    pub fn get(broker: &BrokerConfig) -> Result<Arc<Connection>, ConfigError> {
        let mut pool = pool();
        pool.retain(|_, c| c.strong_count() > 0);
        if let Some(existing) = pool.get(broker).and_then(Weak::upgrade) {
            existing.appenders.fetch_add(1, Ordering::Relaxed);
            // Draining for a closed appender, it has a new one: no longer on its way out, so
            // no connection made later waits for it, or takes the id it holds.
            existing.shared.stay();
            // But one made meanwhile may have taken that id, for a session that lasts: the
            // id carries nothing here (clean session), so this one moves.
            if existing.shared.clean_session && held_by_a_session(&existing, &pool) {
                existing.shared.give_up_id();
            }
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
        let previous = closing()
            .get(&closing_key(&identity))
            .cloned()
            .unwrap_or_default();
        let mut waits_for = previous.clone();
        // Whether no connection of this process holds `id` at this broker, but maybe those
        // closing for this client (an edited appender's predecessors, draining): this one
        // connects only after their DISCONNECT. Two connections holding one id at once would
        // push each other out.
        let free = |id: &str| {
            let key = (broker.host.clone(), broker.port, id.to_string());
            let held = held_ids().get(&key).copied().unwrap_or(0);
            let predecessors_hold = previous
                .iter()
                .filter(|g| g.holds.as_ref() == Some(&key))
                .count();
            held <= predecessors_hold
        };
        // The id an earlier connection for this client moved to, unless another holds it now.
        // Not for a session that must last: a moved id changes at every start of the node.
        let moved = replaced()
            .get(&identity)
            .filter(|id| {
                broker.clean_session
                    && free(id)
                    && !held_at_another_port(&broker.host, broker.port, id)
            })
            .cloned();
        let client_id = match moved {
            Some(id) => id,
            None if free(&broker.client_id) => broker.client_id.clone(),
            None => {
                // Another appender of this node with this client id and other connection
                // settings, live: the broker would keep closing one of the two connections.
                let clash = clash(broker, pool, &previous);
                let movers = (!broker.clean_session)
                    .then(|| make_way(broker, pool, &previous))
                    .flatten();
                if let Some(movers) = movers {
                    // The id names this one's session and cannot change; theirs can.
                    waits_for.extend(movers);
                    broker.client_id.clone()
                } else if !broker.clean_session {
                    return Err(ConfigError::new(
                        "clientId",
                        format!(
                            "{clash}, and keeps a session under it too; with cleanSession off \
                             the id names the broker's session and cannot change, and the broker \
                             would keep closing one of the two connections: give each appender \
                             its own clientId"
                        ),
                    ));
                } else {
                    let own = own_id(&identity, free);
                    log::warn!(
                        "{clash}; the broker would keep closing one of the two connections, so \
                         this one connects as '{own}' (cleanSession is on: the id carries no \
                         state); give each appender its own clientId to choose the id"
                    );
                    own
                }
            }
        };
        let hold = IdHold::new(&identity, &client_id);
        let label = connection_label(
            &address_label(broker, &broker.host, broker.port),
            &client_id,
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
        let (client, pending, broker_certificates) = protocol::open(broker, &client_id, &label);
        let shared = Arc::new(Shared {
            client: Mutex::new(client),
            tracker: Mutex::new(Tracker::new(&label)),
            shutdown: Notify::new(),
            stalled: Notify::new(),
            ready: Notify::new(),
            released: AtomicBool::new(false),
            finished: Arc::new(Semaphore::new(0)),
            waits_for,
            give_up_id: Mutex::new(None),
            give_up_now: Notify::new(),
            hold: Mutex::new(Some(hold)),
            identity,
            label,
            status_topic: broker.status_topic.as_deref().map(Arc::from),
            status_follows_id: broker.status_follows_id.0,
            id_names_host: broker.id_names_host.0,
            status_format: broker.status_format,
            clean_session: broker.clean_session,
            plain: broker.tls.is_none(),
            proxied: broker.proxy.is_some(),
            websocket: matches!(broker.transport, crate::config::Transport::WebSocket { .. }),
            client_certificate: broker
                .tls
                .as_ref()
                .and_then(TlsSettings::client_certificate_dates),
            broker_certificates,
            connect_timeout: broker.connect_timeout,
            keep_alive: broker.keep_alive,
            max_inflight: broker.max_inflight,
            metrics: ConnectionMetrics::default(),
            takeover_streak: Mutex::new((0, None)),
            expired_lines: LogBudget::default(),
        });
        pending.start(StartDriver {
            shared: Arc::clone(&shared),
            client_id,
        });
        Ok(Connection {
            shared,
            appenders: AtomicUsize::new(1),
        })
    }

    /// Hands a pack's messages to the connection without waiting on the network; which
    /// bound it passed, if it failed for one ([`Tracker::submit`]).
    pub fn submit(
        &self,
        pack: &Arc<Pack>,
        how: PublishOptions,
        messages: Vec<Message>,
        max_pending: usize,
    ) -> Option<Crowded> {
        self.shared
            .hand_over(|tracker, client| tracker.submit(client, pack, how, messages, max_pending))
    }

    /// Which bound, if any, `messages` messages more from `origin` would pass, before their
    /// bytes are known ([`Tracker::crowded`]).
    pub fn crowded(&self, origin: Origin, messages: usize, max_pending: usize) -> Option<Crowded> {
        lock(&self.shared.tracker).crowded(origin, messages, None, max_pending)
    }

    pub fn metrics(&self) -> &ConnectionMetrics {
        &self.shared.metrics
    }

    /// Records accepted and not yet confirmed or failed.
    pub fn outstanding(&self) -> usize {
        lock(&self.shared.tracker).outstanding()
    }

    /// Whether a line of `kind` about this connection's packs may be written now, and what to
    /// add to it ([`LogBudget::take`]); one budget for every appender sharing the connection.
    pub fn line_about_packs(&self, kind: &'static str, now: Instant) -> Option<String> {
        self.shared.expired_lines.take(kind, now)
    }

    /// Forgets records of packs that were answered meanwhile (deadline, close).
    pub fn prune(&self) {
        lock(&self.shared.tracker).prune();
    }

    /// At an appender's sweep: the QoS 0 message proving itself is answered once a quiet
    /// connection outlived it (see `Tracker::outlived_at_sweep`). A message still
    /// unacknowledged past its patience (its appender's deliveryTimeoutSeconds) since it was
    /// written means the broker stopped acknowledging on this connection, one unwritten while
    /// nothing was written for that long that it stopped reading, and it is made anew (see
    /// `Tracker::sweep_stall`).
    pub fn sweep(&self, now: Instant) {
        let mut tracker = lock(&self.shared.tracker);
        tracker.outlived_at_sweep(now);
        if tracker.sweep_stall(now) {
            self.shared.stalled.notify_one();
        }
        drop(tracker);
        if let Some(certificates) = &self.shared.broker_certificates {
            certificates.remind(crate::utc::unix_now());
        }
    }
}

impl Connection {
    /// An appender that had this connection was closed, and drains it until `until`. If it
    /// was the last to use it, a connection made meanwhile for the same client id under other
    /// settings (an edited appender) waits for it, as for one being closed; another appender
    /// still using it keeps it open, and then there is nothing to wait for.
    pub fn draining(&self, until: Instant) {
        let _pool = pool();
        let appenders = self.appenders.load(Ordering::Relaxed).saturating_sub(1);
        self.appenders.store(appenders, Ordering::Relaxed);
        if appenders == 0 {
            self.say_goodbye(until);
        }
    }

    fn say_goodbye(&self, by: Instant) {
        let holds = lock(&self.shared.hold).as_ref().map(|h| h.0.clone());
        let mut closing = closing();
        let goodbyes = closing
            .entry(closing_key(&self.shared.identity))
            .or_default();
        goodbyes.retain(|g| !Arc::ptr_eq(&g.finished, &self.shared.finished));
        goodbyes.push(Goodbye {
            finished: Arc::clone(&self.shared.finished),
            // Its close may take a grace to see its 'offline' acknowledged and one to write
            // its DISCONNECT.
            by: by + self.shared.connect_timeout + 2 * CLOSE_GRACE,
            holds,
            status_topic: self.shared.status_topic.clone(),
        });
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The hold goes before the goodbye is said: a goodbye holding the id would excuse
        // another holder of it (a successor that waited for this one) as this one, and a
        // third connection would take the id too.
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

/// What a connection closed before its CONNACK may owe to the status topic's last will
/// (retained, QoS 1): a broker that takes neither refuses it, and under MQTT 3.1.1 (Mosquitto
/// 2.0.11: "QoS too high or retain not supported") closes without a CONNACK to say why.
fn will_hint(shared: &Shared) -> &'static str {
    if shared.status_topic.is_some() {
        "; if the broker takes no retained message or no QoS 1 (Mosquitto's retain_available \
         false, max_qos 0), remove statusTopic, whose last will needs both"
    } else {
        ""
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
/// So when an ack came and more are awaited, a PINGREQ goes out once nothing has crossed the
/// connection either way (a ping included) for `QUIET`: acks still coming, or publishes going
/// out, carry or bring what a ping would. A ping after every quiet moment of a burst (one per
/// two messages at 30 k records/s) cost the publisher 3 to 4 µs of CPU per record and the
/// broker 10% more, for a p50 of 1.2 ms against 2.5 ms with `QUIET`, whose p99 was no worse
/// (4.3 to 7.3 ms against 6.6 to 8.4). A PINGRESP can hold acks back as an ack can, so it
/// asks for another ping too: the first `QUICK_NUDGES` after an ack with `QUIET` between
/// them, then after gaps that double from `NUDGE_GAP`, until the gap would reach Linux's
/// delayed acknowledgement, which does the same. So a broker that answers pings but acks
/// nothing gets ten.
struct Nudge {
    /// A packet came since the last ping, which may have left more behind it.
    wanted: bool,
    /// Pings since the last ack.
    unacked: u8,
    /// The last ping.
    last: Option<tokio::time::Instant>,
    /// The last packet either way, a ping included.
    traffic: Option<tokio::time::Instant>,
    /// Set for when the next ping may go, while one is wanted sooner.
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: bool,
}

const QUIET: Duration = Duration::from_micros(500);
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
            traffic: None,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: false,
        }
    }

    /// A packet crossed the connection at `now`.
    fn on_event(&mut self, event: &Observed, now: tokio::time::Instant) {
        self.traffic = Some(now);
        match event {
            event if event.is_ack() => {
                self.wanted = true;
                self.unacked = 0;
            }
            Observed::Pong => self.wanted = self.gap() < DELAYED_ACK,
            _ => {}
        }
    }

    /// The connection is idle at `now`: whether to ping. If not yet, the timer is set, and
    /// when it fires the driver asks again.
    fn due(&mut self, now: tokio::time::Instant) -> bool {
        let after_traffic = self.traffic.map(|t| t + QUIET);
        let after_ping = self.last.map(|l| l + self.gap());
        if let Some(at) = after_traffic.max(after_ping).filter(|&at| now < at) {
            self.timer.as_mut().reset(at);
            self.armed = true;
            return false;
        }
        self.wanted = false;
        self.unacked = self.unacked.saturating_add(1);
        self.last = Some(now);
        self.traffic = Some(now);
        true
    }

    /// How long after the last ping the next may go, at the least.
    fn gap(&self) -> Duration {
        match self.unacked.checked_sub(QUICK_NUDGES) {
            Some(slow) => NUDGE_GAP.saturating_mul(1 << slow.min(16)),
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
    /// Per broker, what its connections taught the tracker (topics refused, packet size),
    /// while the connection goes to another ([`Tracker::change_broker`]).
    learned: Vec<Learned>,
    backoff: Duration,
    takeover_backoff: Duration,
    /// When the connection in use was accepted; `None` while not connected.
    connected_at: Option<Instant>,
    ever_connected: bool,
    /// The failures reported, per broker (by index in `brokers`), as [`failure_key`] gives
    /// them, with when: the last [`FAILURES_KEPT`], for [`FAILURE_REMEMBERED`]. A broker that
    /// stays away, or keeps ending young connections the same way, is reported once every ten
    /// minutes, not at every retry, and a different failure (say, a TLS error after a refused
    /// TCP connect) is. Per broker, and several, or failures that take turns (two brokers, or a
    /// close taken for a refusal and then for a takeover) would each be new every time.
    /// Forgotten once a connection has lived [`HEALTHY`]: its loss is news.
    reported: Vec<Reported>,
    /// The broker whose last loss of a connection was logged at DEBUG, as a repeat: the next
    /// connect to it is DEBUG too, and an INFO says so once one has lived [`HEALTHY`].
    quiet_reconnect: Option<usize>,
    /// That INFO was said since the last loss logged above DEBUG: once per report, not once
    /// per cycle of a broker that fails each connection alike after it lived `HEALTHY`.
    held_said: bool,
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
    /// Connects under an id this node moved to that a broker closed, in a row, before any
    /// CONNACK ([`TURNED_AWAY`]), while no broker had admitted that id; per broker, as
    /// attempts take turns with the failover brokers, which may fail another way.
    turned_away: Vec<u32>,
    /// The client id of the last CONNACK: a broker that admitted it refuses it by no close.
    admitted: Option<String>,
    nudge: Nudge,
    /// The broker sent what belongs to a session the appender never made (a message, one too
    /// large to read, a PUBREL of a delivery to another client): the next connection starts
    /// a clean session.
    clean_next: bool,
    /// Per broker, the receive maxima under which `maxInflight` was said to be too high: said
    /// once per broker and value, not at every reconnect (a balancer's nodes may announce
    /// different ones in turn), nor only at the first broker's (a failover broker may allow
    /// fewer). A few per broker at most: a broker announcing ever other ones is said of again.
    narrowed: Vec<Vec<u16>>,
}

/// Runs the event loop of one connection until the pool lets go of it. `brokers` are tried
/// in order on connect and, after a connection is lost, again from the first (but after a
/// broker ended it at once, saying to go elsewhere: see the failure branch of `turn`).
///
/// Completes once the sweep said the broker stopped acknowledging ([`Connection::sweep`])
/// and it still holds when the driver looks (`Tracker::take_stall`), with the patience of
/// the message past it. A notice an ack or a write made stale meanwhile is absorbed here: a
/// branch that completed for it would cancel the event loop's poll for nothing, which can
/// lose a publish MQTT 5's rumqttc had taken from its channel and not written yet (see
/// `EventLoop::NUDGES`).
async fn stall(shared: &Shared) -> Stall {
    loop {
        shared.stalled.notified().await;
        let stalled = lock(&shared.tracker).take_stall(Instant::now());
        if let Some(limit) = stalled {
            return limit;
        }
    }
}

/// Why a connection that is up is left: what a message waited for past its patience, and
/// the setting that gave it that.
fn stalled_text(stall: Stall) -> String {
    let secs = stall.patience.as_secs();
    let setting = if stall.status {
        "the statusTopic message's: connectTimeoutSeconds + keepAliveSeconds"
    } else {
        "deliveryTimeoutSeconds"
    };
    match stall.waited {
        Waited::Ack => format!(
            "the broker has not acknowledged a message for over {secs}s ({setting}) though the \
             connection is up; reconnecting to free its in-flight slots"
        ),
        Waited::Passed => format!(
            "the broker acknowledged messages written after some it has not acknowledged for \
             over {secs}s ({setting}), which now hold half of the in-flight window though the \
             connection is up; reconnecting to free their slots"
        ),
        Waited::Window => format!(
            "a message has waited for the in-flight window for over {secs}s ({setting}), which \
             the broker acknowledged nothing to free, though the connection is up; reconnecting \
             to free its in-flight slots"
        ),
        Waited::Written => format!(
            "the broker has read no message for over {secs}s ({setting}) though the connection \
             is up: it stopped reading; reconnecting"
        ),
    }
}

/// Completes once another connection asked this one to give up its client id
/// ([`make_way`]). A wake-up left from a request already taken is absorbed here, as in
/// [`stall`]: a branch completing for it would cancel the event loop's poll for nothing.
async fn give_up_wanted(shared: &Shared) {
    loop {
        shared.give_up_now.notified().await;
        if lock(&shared.give_up_id).is_some() {
            return;
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
    let now = Instant::now();
    let waiting = shared
        .waits_for
        .iter()
        .filter(|g| !g.finished.is_closed() && g.by > now);
    if let Some(by) = waiting.map(|g| g.by).max() {
        // Else the connection shows down (JMX Connected false), and packs may time out,
        // with nothing said while the broker is fine.
        log::info!(
            "{}: connects once the connections of this node that hold its client id have let \
             go of it (an edited appender's predecessor draining its packs in flight, up to its \
             closeTimeoutSeconds, or a connection moving to an id of its own), in {} s at most: \
             the broker would close one of two connections with one id",
            shared.label,
            by.saturating_duration_since(now).as_secs_f64().ceil()
        );
    }
    for previous in &shared.waits_for {
        // Fails (closed semaphore) as soon as the old connection is gone: its connect attempt
        // ended and the broker took its DISCONNECT (or it let go of the id). Bounded by when it
        // should have.
        let _ = tokio::time::timeout_at(previous.by.into(), previous.finished.acquire()).await;
    }
    let reported = vec![Reported::default(); brokers.len()];
    let turned_away = vec![0; brokers.len()];
    let narrowed = vec![Vec::new(); brokers.len()];
    let learned = std::iter::repeat_with(Learned::default)
        .take(brokers.len())
        .collect();
    let mut driver = Driver {
        shared,
        eventloop,
        brokers,
        client_id,
        current: 0,
        learned,
        backoff: BACKOFF_MIN,
        takeover_backoff: BACKOFF_MIN,
        connected_at: None,
        ever_connected: false,
        reported,
        quiet_reconnect: None,
        held_said: false,
        refused_in_round: 0,
        refused_here: false,
        carried: false,
        suspected: false,
        turned_away,
        admitted: None,
        nudge: Nudge::new(),
        clean_next: false,
        narrowed,
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
        fault::point("connection-close");
        lock(&shared.tracker).fail_all(Why::Closed)
    })) {
        log::error!(
            "panic while closing the connection to {}: {}",
            shared.label,
            panic_message(payload)
        );
    }
    shared.finished.close();
    if let Some(released) = lock(&shared.give_up_id).take() {
        released.close();
    }
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
            learned,
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
        let failover = *current != 0;
        let recovered = catch_unwind(AssertUnwindSafe(|| {
            fault::point("recover");
            // Under the tracker's lock, so that no pack is submitted between emptying rumqttc's
            // channel (`drop_connection` moves it into what `forget` drops) and the tracker.
            let mut tracker = lock(&shared.tracker);
            if failover {
                // Back to the first broker below: what the failover one taught is not its.
                // First, so that a panic again in what follows cannot skip it.
                let back = std::mem::take(&mut learned[0]);
                learned[*current] = tracker.change_broker(back);
            }
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
        // As at a loss: from the configured options (not what the last CONNACK set in them),
        // and a session holding what the appender never made is not resumed.
        eventloop.switch_to(&self.brokers[0].0, &self.client_id);
        if self.clean_next {
            eventloop.start_clean();
        }
        self.current = 0;
        self.refused_in_round = 0;
        self.turned_away.fill(0);
    }

    /// One event of the event loop (with those it queued behind it), or one failure, and what
    /// follows from it.
    async fn turn(&mut self) -> Turn {
        fault::point("event-loop");
        let Driver {
            shared,
            eventloop,
            brokers,
            client_id,
            current,
            learned,
            backoff,
            takeover_backoff,
            connected_at,
            ever_connected,
            reported,
            quiet_reconnect,
            held_said,
            refused_in_round,
            refused_here,
            carried,
            suspected,
            turned_away,
            admitted,
            nudge,
            clean_next,
            narrowed,
        } = self;
        let mut stalled = false;
        // The broker closed a connection under the node's own id at once: no takeover.
        let mut closes_own_id = false;
        // Set when this connection gives up its client id: the failure below says so under
        // the old id, then sets this one for the next connect.
        let mut moving_to = None;
        if quiet_reconnect.is_some()
            && connected_at.is_some_and(|at| at.elapsed() >= HEALTHY)
            && !lock(&shared.tracker).waited_past(Instant::now(), HEALTHY / 2)
        {
            // The end of a fault whose repeats were DEBUG, connects included. Its loss is news
            // only if not a stall (below): a stall starting after the 30 s looked at here would
            // make every other one a WARN.
            *quiet_reconnect = None;
            if !std::mem::replace(held_said, true) {
                log::info!(
                    "connection to {} has held for {} s after losses like the last one reported",
                    connection_label(&brokers[*current].1, client_id),
                    HEALTHY.as_secs()
                );
            }
        }
        if connected_at.is_none() {
            // Before each connect attempt; once connected, the select below sees a request.
            if let Some((text, own, released)) = give_up_if_asked(shared, client_id) {
                *client_id = own;
                eventloop.switch_to(&brokers[*current].0, client_id);
                log::warn!(
                    "{}: {text}",
                    connection_label(&brokers[*current].1, client_id)
                );
                released.close();
            }
        }
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
                () = give_up_wanted(shared) => {
                    let Some((text, own, released)) = give_up_if_asked(shared, client_id) else {
                        // The pool let go and its shutdown notice is on its way: close now,
                        // or the next poll would return what this cancelled one queued, a
                        // QoS 0 message counted written while its bytes wait to be flushed.
                        close_gracefully(shared, eventloop).await;
                        return Turn::Stop;
                    };
                    eventloop.drop_connection();
                    released.close();
                    moving_to = Some(own);
                    Err(Failure::Broken(text))
                }
                found = stall(shared) => {
                    // A broker that acknowledges others only dropped what it passed over: its
                    // connection is made anew, not left for the next of `brokers`.
                    stalled = found.waited != Waited::Passed;
                    eventloop.drop_connection();
                    Err(Failure::Broken(stalled_text(found)))
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
                    if !lock(&shared.tracker).awaits_acks() {
                        nudge.wanted = false;
                        return Turn::Next;
                    }
                    if !nudge.due(tokio::time::Instant::now()) {
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
            fault::point("written");
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
                if eventloop.free_refused_slots() {
                    return Turn::Next;
                }
                eventloop.drop_connection();
                Err(Failure::Broken(
                    "the MQTT client could not free the in-flight slot of a QoS 2 message the \
                     broker refused; reconnecting"
                        .to_string(),
                ))
            }
            // MQTT 5 forbids it, and rumqttc would take no publish from then on: everything
            // would wait on a connection that looks up.
            Ok(Observed::Connected {
                receive_maximum: Some(0),
                ..
            }) => {
                eventloop.drop_connection();
                Err(Failure::Broken(
                    "the broker announced a receive maximum of 0, which MQTT 5 does not allow: \
                     no message could be sent; reconnecting"
                        .to_string(),
                ))
            }
            // A broker must not resume a session the client asked to start clean (MQTT-3.2.2-4
            // and, in MQTT 5, -3.2.2-2), and the client must close. What the broker kept of it
            // could answer this connection's messages: an old QoS 2 message under a packet id
            // a new one takes gets the new one's PUBREC and PUBCOMP, and is what it delivers.
            Ok(Observed::Connected {
                session_present: true,
                ..
            }) if shared.clean_session || *clean_next => {
                eventloop.drop_connection();
                Err(Failure::Broken(
                    "the broker said it resumed a session on a connection that asked for a clean \
                     one, which MQTT does not allow: what it kept could acknowledge this \
                     connection's messages for others; reconnecting"
                        .to_string(),
                ))
            }
            // MQTT 5's rumqttc reads a CONNACK at any time, and taking it for a new connection
            // would start the packet ids over while the broker still holds the old ones.
            Ok(Observed::Connected { .. }) if connected_at.is_some() => {
                eventloop.drop_connection();
                Err(Failure::Broken(
                    "the broker sent a second CONNACK on a connection it had accepted, which \
                     MQTT does not allow; reconnecting"
                        .to_string(),
                ))
            }
            other => other,
        };
        match polled {
            Ok(Observed::Connected {
                receive_maximum,
                session_present,
                grants,
            }) => {
                if admitted.as_deref() != Some(client_id.as_str()) {
                    *admitted = Some(client_id.clone());
                }
                // Made here, not for every event: a format per message written or acknowledged.
                let label = connection_label(&brokers[*current].1, client_id);
                let window = Window::agreed(shared.max_inflight, receive_maximum);
                if let (Some(configured), Some(allowed)) = (shared.max_inflight, receive_maximum) {
                    let said = &mut narrowed[*current];
                    if configured > allowed && !said.contains(&allowed) {
                        if said.len() == NARROWED_KEPT {
                            said.remove(0);
                        }
                        said.push(allowed);
                        log::warn!(
                            "{label}: maxInflight is {configured}, above the broker's receive \
                             maximum: {} messages in flight at most",
                            window.acked
                        );
                    }
                }
                *refused_here = false;
                *carried = false;
                *nudge = Nudge::new();
                *clean_next = false;
                // The pause is not reset here: a broker that accepts and closes at once
                // (busy, over a quota, refusing the status message) would get ten
                // connections a second. It is reset once the connection has lived (`earned`).
                *connected_at = Some(Instant::now());
                eventloop.settle(&brokers[*current].0);
                if *ever_connected {
                    shared.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                *ever_connected = true;
                let level = if *quiet_reconnect == Some(*current) {
                    log::Level::Debug
                } else {
                    *quiet_reconnect = None;
                    log::Level::Info
                };
                if session_present {
                    log::log!(level, "connected to {label}, resuming its session");
                } else {
                    log::log!(level, "connected to {label}");
                }
                shared.hand_over(|tracker, client| {
                    client.follow(grants);
                    tracker.on_connected(client, window)
                });
                // Once its line is logged and the tracker publishes on it: a test that waits
                // for the flag then reads either (set before them, one failed under load).
                shared.metrics.connected.store(true, Ordering::Relaxed);
                let _ = shared.publish_status(Status::Online);
                shared.online_after_predecessors();
            }
            Ok(event) => {
                let now = E::NUDGES.then(tokio::time::Instant::now);
                // With what rumqttc queued behind it, in one turn and under one lock; bounded,
                // so a long batch of writes keeps appenders' submits waiting briefly only.
                shared.hand_over(|tracker, client| {
                    with_queued(eventloop, event, |event| {
                        if let Some(now) = now {
                            nudge.on_event(event, now);
                        }
                        *carried |= matches!(event, Observed::Written(_));
                        if let Observed::Unasked { topic } = event {
                            note_unasked(clean_next, shared.clean_session, topic, || {
                                connection_label(&brokers[*current].1, client_id)
                            });
                        }
                        tracker.on_event(client, event);
                    })
                })
            }
            Err(failure) => {
                let label = connection_label(&brokers[*current].1, client_id);
                if let Some(own) = moving_to {
                    *client_id = own;
                }
                shared.metrics.connected.store(false, Ordering::Relaxed);
                // What this broker said it takes holds no longer: the next connection may be to
                // a failover broker, and packs parked till then are checked at its CONNACK.
                lock(&shared.client).follow(Grants::default());
                let lived = connected_at.take().map(|at| at.elapsed());
                earned(lived, backoff, takeover_backoff);
                let mut pause = None;
                let mut blamed = None;
                let mut unanswered_at_a_new_topic = false;
                if !matches!(failure, Failure::Refused { .. }) {
                    // Under the tracker's lock: what rumqttc drained must be what the tracker
                    // handed it. The events include what the broker answered just before the
                    // close (a refusal and the close often come in one read).
                    let mut tracker = lock(&shared.tracker);
                    let (drained, unreported) = eventloop.forget();
                    *refused_here |= unreported.iter().any(Observed::is_refusal);
                    *carried |= unreported.iter().any(|e| matches!(e, Observed::Written(_)));
                    for event in &unreported {
                        if let Observed::Unasked { topic } = event {
                            note_unasked(clean_next, shared.clean_session, topic, || label.clone());
                        }
                    }
                    let unacknowledged = tracker.on_connection_lost(drained, &unreported);
                    unanswered_at_a_new_topic = unacknowledged.unanswered_at_a_new_topic();
                    // Closed by the broker with no reason, for a packet too large, or for
                    // something it refuses: maybe at the largest message it left
                    // unacknowledged, or (with no reason under MQTT 3.1.1, none read under
                    // MQTT 5, or refusing) at a topic it refuses. Still under the lock, so a
                    // pack Kaa sends again at once meets what this may teach.
                    if let Failure::Closed {
                        said:
                            said @ (Said::Nothing | Said::Unheard | Said::TooLarge | Said::Refused),
                        ..
                    } = failure
                    {
                        if !*refused_here {
                            let at_topic = match (said, E::NO_REASON_CODES) {
                                (Said::Nothing | Said::Unheard, true) => TopicClose::Silent,
                                // What the broker said, if anything, was lost with the socket.
                                (Said::Unheard, false) => TopicClose::Unheard,
                                (Said::Refused, _) => TopicClose::Refusing,
                                _ => TopicClose::No,
                            };
                            // Not under the id this node moved to, which no other client holds.
                            let may_be_takeover = said.is_silent()
                                && lived.is_some_and(|l| l < TAKEOVER_WINDOW)
                                && *client_id == shared.identity.2;
                            blamed = tracker.blame(unacknowledged, at_topic, may_be_takeover);
                        }
                    }
                }
                // A close soon after the connect is taken for a takeover unless the broker said
                // another reason (an MQTT 5 DISCONNECT), or had just refused a message: then
                // the close is its answer to that message; or unless it was blamed on a message
                // left unacknowledged, far larger than any the broker took (its packet limit),
                // or again just after a message to a topic it never took (its ACL), which an
                // MQTT 3.1.1 broker does not say. After a publish it may be the broker's answer
                // without a word, so only the second such close in a row counts; a first close
                // at a topic is such a close (blamed only at a second one, as a takeover is).
                let under_own_id = *client_id != shared.identity.2;
                let explained = match &blamed {
                    Some(Blame::Size(_)) => true,
                    Some(Blame::Topic { blame, .. }) => {
                        // Under an id this node moved to, which no other client holds, the
                        // first close at a topic too: taken for a takeover, it would forget
                        // what the closes taught, and an endpoint making a new topic the ACL
                        // denies at every pack would close the shared connection at each.
                        *blame != TopicBlame::Suspect || under_own_id
                    }
                    None => false,
                };
                stalled |= matches!(failure, Failure::Unread(_));
                let silent = matches!(failure, Failure::Closed { said, .. } if said.is_silent());
                let unexplained = silent
                    && !*refused_here
                    && !explained
                    && lived.is_some_and(|l| l < TAKEOVER_WINDOW);
                let likely_takeover = unexplained && (!*carried || *suspected);
                *suspected = unexplained && !likely_takeover;
                *clean_next |= matches!(failure, Failure::Foreign(_));
                let ended_with_reason = matches!(
                    failure,
                    Failure::Closed {
                        said: Said::Other,
                        ..
                    }
                );
                // AWS IoT, under MQTT 3.1.1, closes a connect whose client id its policy does
                // not admit, without a CONNACK; one such close may be a broker's hiccup, and
                // once a broker admitted the id, closes are its hiccups (a broker restarting,
                // full, or a balancer without one behind it).
                let here = &mut turned_away[*current];
                *here = match &failure {
                    Failure::Closed { said, .. }
                        if said.is_silent()
                            && lived.is_none()
                            && under_own_id
                            && E::NO_REASON_CODES
                            && admitted.as_deref() != Some(client_id.as_str()) =>
                    {
                        *here + 1
                    }
                    _ => 0,
                };
                let here = *here;
                let id_refused = match &failure {
                    Failure::Refused { why: code, about } if about.is_about_id() => {
                        Some(format!("refused the connection: {code}"))
                    }
                    Failure::Closed { why, .. } if here >= TURNED_AWAY => Some(format!(
                        "{why}: closed before any CONNACK, {here} times in a row"
                    )),
                    _ => None,
                };
                // An MQTT 3.1.1 broker that takes no last will like the status topic's closes
                // at once, without a CONNACK (an MQTT 5 one says so in its CONNACK).
                let will = match failure {
                    Failure::Closed { .. } if E::NO_REASON_CODES => will_hint(shared),
                    _ => "",
                };
                let (text, refused) = match failure {
                    _ if under_own_id
                        && id_refused.is_some()
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
                        let said = id_refused.expect("checked in the guard");
                        let text = format!(
                            "{said}; '{client_id}' is the id this node moved to after a \
                             takeover, and a broker that admits exact client ids only (AWS IoT \
                             policies) refuses any other: connecting as '{configured}' again"
                        );
                        *client_id = configured;
                        turned_away.fill(0);
                        pause = Some(jitter(*takeover_backoff));
                        *takeover_backoff = (*takeover_backoff * 2).min(TAKEOVER_BACKOFF_MAX);
                        // Not counted as the broker's refusal: the packs waiting get the
                        // configured id's answer.
                        (text, false)
                    }
                    Failure::Refused { why: code, about } => {
                        // A broker that keeps no retained messages, or takes QoS 0 only,
                        // refuses the CONNECT that carries the status topic's last will.
                        let hint = if about == Refusal::Will && shared.status_topic.is_some() {
                            " (statusTopic's last will is retained, at QoS 1: remove \
                             statusTopic for this broker)"
                        } else {
                            ""
                        };
                        // A moved id refused for the id itself comes here only while another
                        // appender of this node holds the configured one (else it was given
                        // back above): a broker admitting exact ids only admits one of them.
                        // Refused for anything else, the id is not the matter.
                        let configured = &shared.identity.2;
                        let clash = if about.is_about_id() && *client_id != *configured {
                            format!(
                                " (another appender of this node holds '{configured}' with other \
                                 connection settings, and a broker that admits exact client ids \
                                 only refuses any other: give each appender its own clientId)"
                            )
                        } else if about == Refusal::IdInvalid
                            && (client_id.len() > GUARANTEED_ID_BYTES
                                || !client_id.bytes().all(|b| b.is_ascii_alphanumeric()))
                        {
                            // The form's default, `kaa-{hostname}-{pid}`, can be longer, and
                            // has dashes.
                            format!(
                                " (the client id is {} bytes; brokers need admit only ids of up \
                                 to {GUARANTEED_ID_BYTES} letters and digits: set a clientId of \
                                 those)",
                                client_id.len()
                            )
                        } else {
                            String::new()
                        };
                        (format!("refused the connection: {code}{hint}{clash}"), true)
                    }
                    Failure::Closed { why, .. } if blamed.is_some() && !likely_takeover => (
                        blamed_close(&why, blamed.expect("checked in the guard")),
                        false,
                    ),
                    Failure::Closed { why, said }
                        if said == Said::TakenOver || (said.is_silent() && likely_takeover) =>
                    {
                        let taken_over = said == Said::TakenOver;
                        // Inferred from closes, some of which may have been blamed: with a clean
                        // session the id moves, and what they blamed is forgotten. A persistent
                        // session keeps its id, and what the closes blamed is all that stops an
                        // endpoint whose every pack makes a new topic the ACL denies from
                        // closing the shared connection at every other pack, for good.
                        if !taken_over && shared.clean_session {
                            lock(&shared.tracker).on_taken_over();
                        }
                        let lived = lived.unwrap_or_default();
                        let next = taken_over_by_another(
                            shared,
                            (&label, *current == 0),
                            client_id,
                            (&why, taken_over),
                            lived,
                            unanswered_at_a_new_topic && E::NO_REASON_CODES,
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
                                // With a clean session, under the node's own id already.
                                closes_own_id = shared.clean_session;
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
                             publish; the broker refusing it{} (taken for {} if the next \
                             connection ends the same way)",
                            lived.unwrap_or_default().as_millis(),
                            if under_own_id {
                                ""
                            } else {
                                ", or another client with this id"
                            },
                            if under_own_id {
                                "the broker's own doing"
                            } else {
                                "that"
                            }
                        ),
                        false,
                    ),
                    Failure::Foreign(why) => (
                        format!("{why}: {}", foreign_source(shared.clean_session)),
                        false,
                    ),
                    // A TLS listener takes a plain CONNECT for a broken handshake and closes
                    // (Mosquitto 2.0.11 resets the socket): say which setting that points to.
                    Failure::Closed { why, said }
                        if lived.is_none() && said.is_silent() && shared.plain =>
                    {
                        let port = &brokers[*current].1;
                        let mut hint = format!("if {port} is a TLS port, turn ssl on");
                        if shared.websocket {
                            hint += "; if it is no WebSocket listener (plain MQTT), set transport \
                                     to TCP";
                        }
                        (
                            format!("{why} (closed before any CONNACK: {hint}{will})"),
                            false,
                        )
                    }
                    // The TLS exchange failed, or the broker closed, before any CONNACK, with a
                    // client certificate out of its dates: the broker's alert names neither the
                    // certificate nor when, and one may close without an alert (or the reset
                    // overtakes it). Not a refused connect: the broker is not there.
                    Failure::Tls(why) | Failure::Closed { why, .. } if lived.is_none() => {
                        let dates = shared.client_certificate.as_ref();
                        let why = match dates.and_then(|d| d.outside(unix_now())) {
                            Some(note) => format!("{why} ({note})"),
                            None => why,
                        };
                        let why = if will.is_empty() {
                            why
                        } else {
                            format!("{why} (closed before any CONNACK{will})")
                        };
                        // A proxy that opened the tunnel and then closed it (its way to the
                        // broker failed, or it cut the connection) looks like the broker.
                        if shared.proxied {
                            (
                                format!("{why}; through the proxy, which may have closed it"),
                                false,
                            )
                        } else {
                            (why, false)
                        }
                    }
                    Failure::Tls(why)
                    | Failure::Closed { why, .. }
                    | Failure::Unread(why)
                    | Failure::Broken(why) => (why, false),
                };
                if lived.is_some_and(|l| l >= HEALTHY) && !stalled {
                    reported.iter_mut().for_each(Reported::forget);
                }
                let repeat = !reported[*current].is_new(failure_key(&text), Instant::now());
                let level = match (repeat, refused) {
                    (true, _) => log::Level::Debug,
                    (false, true) => log::Level::Error,
                    (false, false) => log::Level::Warn,
                };
                // A repeated refusal, or failed connect, between connections lost alike keeps
                // their connects quiet: else a broker taking turns refusing and dropping the
                // connection made each connect an INFO.
                *quiet_reconnect = match (repeat, lived) {
                    (true, Some(_)) => Some(*current),
                    (true, None) => *quiet_reconnect,
                    (false, _) => None,
                };
                *held_said &= repeat;
                if refused {
                    log::log!(level, "{label} {text}");
                    *refused_in_round += 1;
                } else if lived.is_some() {
                    log::log!(level, "connection to {label} lost: {text}");
                } else {
                    log::log!(level, "cannot connect to {label}: {text}; retrying");
                }
                // The next broker right away; a pause only after a whole round failed. A
                // connection the broker ended at once with an MQTT 5 DISCONNECT about neither
                // the client id nor a message (busy, over a quota, shutting down, use another
                // server) counts as a failed attempt: else a broker doing so at every connect
                // kept the appender from the failover brokers for good. So does one the broker
                // kept up but stopped acknowledging or reading on (a stall): its broker would
                // take the connection again and do the same again, every pack failing there;
                // and one it closed at once under the id of the node's own it moved to, which
                // no other client holds. Any other loss starts again at host:port: a silent
                // close that soon is a takeover or a refused message.
                let moves_on = stalled
                    || closes_own_id
                    || lived.is_none_or(|l| l < TAKEOVER_WINDOW && ended_with_reason);
                let next = if moves_on {
                    (*current + 1) % brokers.len()
                } else {
                    0
                };
                if next != *current {
                    let back = std::mem::take(&mut learned[next]);
                    let mut tracker = lock(&shared.tracker);
                    learned[*current] = tracker.change_broker(back);
                    tracker.judge_waiting_anew();
                }
                // Always from the configured options: rumqttc keeps what a CONNACK set in them
                // (MQTT 5 server keep-alive and session expiry) for every later connection, to
                // another broker too, and a session expiry the broker raised would outlive the
                // connection where the configuration says it may not (QoS 2 refuses that).
                eventloop.switch_to(&brokers[next].0, client_id);
                if *clean_next {
                    eventloop.start_clean();
                }
                *current = next;
                if next == 0 {
                    if *refused_in_round == brokers.len() {
                        let refused = lock(&shared.tracker).on_refused();
                        refused.answer();
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

/// A message the broker sent though the appender subscribes to nothing ([`Observed::Unasked`]):
/// said once per connection, and the next connection starts a clean session.
fn note_unasked(
    clean_next: &mut bool,
    clean_session: bool,
    topic: &str,
    label: impl FnOnce() -> String,
) {
    if std::mem::replace(clean_next, true) {
        return;
    }
    log::warn!(
        "{}: the broker sent a message on '{}', acknowledged and dropped: {}",
        label(),
        shown_in_log(topic),
        foreign_source(clean_session)
    );
}

/// Where what the broker sent that belongs to no message of ours ([`Failure::Foreign`],
/// [`Observed::Unasked`]) comes from, and what the appender does about it. With `clean_session`
/// on no session is resumed, and only a rule of the broker's (or a fault) sends such things.
fn foreign_source(clean_session: bool) -> &'static str {
    if clean_session {
        "the appender subscribes to nothing and its session is clean, so a rule of the broker's \
         (an auto-subscription?) or a fault of it sent that"
    } else {
        "the appender subscribes to nothing, so unless the broker is at fault it comes from the \
         broker's session for this client id, from what another client with this id left there \
         (or a broker rule), which the broker would send again at every connect: the next \
         connection starts a clean session, dropping that session's subscriptions and queued \
         messages"
    }
}

/// Why the broker closed the connection, when it was blamed on a message's size (see
/// [`crate::packet_limit`]) or topic (see [`crate::refused_topics`]).
fn blamed_close(why: &str, blame: Blame) -> String {
    // An endpoint's field may have made the topic, up to 65,535 bytes of it.
    match blame {
        Blame::Topic {
            topic,
            blame: TopicBlame::Suspect,
        } => format!(
            "{why}, just after a message to topic '{topic}', which the broker has not taken \
             before: it may refuse that topic (HiveMQ and AWS IoT close the connection at a \
             publish their ACL denies: without a reason under MQTT 3.1.1, and at QoS 0 under MQTT \
             5 too; a close just after a message to it again makes this connection fail packs to \
             it)",
            topic = shown_in_log(&topic)
        ),
        Blame::Topic {
            topic,
            blame: TopicBlame::Refused,
        } => format!(
            "{why}, again just after a message to topic '{topic}', which the broker has not \
             taken before: it most likely refuses that topic, and packs to it now fail \
             unpublished (onRemoteError) on this connection for {} minutes. Allow the topic in \
             the broker's ACL (with MQTT 5 at QoS 1 or 2 the broker names what it refuses)",
            crate::refused_topics::LIFE.as_secs() / 60,
            topic = shown_in_log(&topic)
        ),
        Blame::Topic {
            topic,
            blame: TopicBlame::RefusedToOne,
        } => format!(
            "{why}, again just after a message of the same endpoint's records to topic \
             '{topic}', which the broker has not taken before: it most likely refuses that \
             topic, or what that endpoint sends to it, and that endpoint's packs to it now fail \
             unpublished (onRemoteError) on this connection for {} minutes, other endpoints' \
             only once one of theirs is closed at twice too. Allow the topic in the broker's \
             ACL (with MQTT 5 at QoS 1 or 2 the broker names what it refuses)",
            crate::refused_topics::LIFE.as_secs() / 60,
            topic = shown_in_log(&topic)
        ),
        Blame::Size(Blamed::Suspect { size, acked }) => format!(
            "{why}, with a message of {size} bytes unconfirmed, far larger than any the broker \
             has taken ({acked} bytes): it may limit the packet size (a close with the same \
             message unconfirmed again makes this connection refuse messages that large, that \
             endpoint's only when it is an endpoint's record, and closes at {SOURCE_SUSPECTS} \
             different messages of one endpoint's records hold that endpoint's messages about \
             as large)"
        ),
        Blame::Size(Blamed::Ceiling {
            size,
            ceiling,
            acked,
            everyone,
        }) => {
            let whose = if everyone {
                "messages"
            } else {
                "that endpoint's messages (every endpoint's once another endpoint's teach the \
                 same: one endpoint's closes may have been at something else of its own)"
            };
            format!(
                "{why}, again with the same message of {size} bytes unconfirmed, larger than \
                 any the broker has taken ({acked} bytes): it most likely limits the packet \
                 size, and {whose} of {ceiling} bytes or more now fail their packs \
                 (onInternalError) on this connection for 10 minutes"
            )
        }
    }
}

/// The failures of one broker reported lately (see `Driver::reported`), by [`failure_key`].
#[derive(Default, Clone)]
struct Reported(VecDeque<(String, Instant)>);

impl Reported {
    /// Whether failure `key` was not reported within [`FAILURE_REMEMBERED`] before `now`;
    /// then it is taken as reported now, in place of the oldest beyond [`FAILURES_KEPT`].
    fn is_new(&mut self, key: String, now: Instant) -> bool {
        let recent = |at: &Instant| now.saturating_duration_since(*at) < FAILURE_REMEMBERED;
        if self.0.iter().any(|(k, at)| *k == key && recent(at)) {
            return false;
        }
        self.0.retain(|(k, _)| *k != key);
        if self.0.len() == FAILURES_KEPT {
            self.0.pop_front();
        }
        self.0.push_back((key, now));
        true
    }

    fn forget(&mut self) {
        self.0.clear();
    }
}

/// What tells one failure from another: its text without the figures that change from one
/// attempt to the next (rustls puts the time of verification in an expired certificate's
/// error; closes give how many milliseconds the connection lived): numbers that stand alone,
/// after a space or a parenthesis. Digits inside a word or a topic ('kaa/3/logs') stay. Nor the
/// reason string of an MQTT 5 DISCONNECT ([`protocol::REASON_SAID`]): a broker that closes
/// every connection with one worded anew each time made a WARN and an INFO at every connect.
fn failure_key(text: &str) -> String {
    let text = without_reason_string(text);
    let mut key = String::with_capacity(text.len());
    let mut figure = false;
    let mut after = ' ';
    for c in text.chars() {
        figure = c.is_ascii_digit() && (figure || after == ' ' || after == '(');
        if !figure {
            key.push(c);
        }
        after = c;
    }
    key
}

/// `text` without what a DISCONNECT's reason string says, up to its closing quote (escaped as
/// `shown_in_log` writes it: a quote inside follows an odd number of backslashes).
fn without_reason_string(text: &str) -> std::borrow::Cow<'_, str> {
    let Some(at) = text.find(protocol::REASON_SAID) else {
        return text.into();
    };
    let said = at + protocol::REASON_SAID.len();
    let mut backslashes = 0;
    for (i, c) in text[said..].char_indices() {
        match c {
            '"' if backslashes % 2 == 0 => {
                return format!("{}{}", &text[..said], &text[said + i..]).into();
            }
            '\\' => backslashes += 1,
            _ => backslashes = 0,
        }
    }
    text.into()
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
/// (`said`: MQTT 5 says so), or `lived` so briefly that this is the likely cause. Counts it and
/// says so; returns the unique client id to use from now on, if the id may change: with a clean
/// session it carries no state, so a node of a cluster whose nodes share one configuration
/// stops pushing the others out. With a persistent session it may not (the session stays with
/// the id), and the caller backs off instead. `new_topic`: under MQTT 3.1.1, the close left
/// unacknowledged a message to a topic the broker never took, on a connection it answered
/// nothing on. `first`: the connection is at its first broker, whose host and port the ids
/// this process holds are known by.
fn taken_over_by_another(
    shared: &Shared,
    (label, first): (&str, bool),
    client_id: &str,
    (why, said): (&str, bool),
    lived: Duration,
    new_topic: bool,
) -> Option<String> {
    let configured = &shared.identity.2;
    // Not one another connection of this process (same broker and id, other settings) holds.
    let unique = own_id(&shared.identity, |id| !held_by_another(shared, id));
    // With a clean session, under the node's own id, which no other client holds: the broker
    // itself ends each connection, and no takeover is counted.
    let own = shared.clean_session && client_id == unique;
    // MQTT 5 says so; otherwise a close this early is only most likely a takeover, and after a
    // message to a new topic on a connection that never had an ack it may be the broker's
    // answer to it, which nothing tells apart (measured with HiveMQ's ACL under MQTT 3.1.1).
    let likely = if said { "" } else { "most likely " };
    let or_refused = if new_topic && !said {
        ", or the broker refusing the message it had just been sent: brokers such as HiveMQ and \
         AWS IoT close an MQTT 3.1.1 connection at a topic their ACL denies, without a reason"
    } else {
        ""
    };
    let lived = lived.as_millis();
    // Two appenders of the node at two listeners of one broker (plain and TLS) with one id:
    // nothing tells two brokers on one host from one with two ports, so this is only named.
    let elsewhere =
        another_port_holding(&shared.identity.0, shared.identity.1, client_id).filter(|_| first);
    let cause = if own {
        format!(
            "the broker closed the connection {lived} ms after accepting it ({why}), under this \
             node's own client id, which no other client holds: the broker ends the connections \
             itself{or_refused}"
        )
    } else {
        let count = shared.metrics.takeovers.fetch_add(1, Ordering::Relaxed) + 1;
        let suspects = match elsewhere {
            Some(port) => format!(
                "this node connects with this id to port {port} of this host too, for another \
                 appender: if that port is another listener of this broker (TLS, WebSocket), \
                 that connection is the other client"
            ),
            // Appenders of this node under two spellings of the broker's host (a name and its
            // address) hold connections of their own, which nothing at init tells apart.
            None => "Kaa cluster nodes sharing one configuration, or appenders of this node \
                     naming this broker by two host names?"
                .to_string(),
        };
        format!(
            "the broker closed the connection {lived} ms after accepting it ({why}): {likely}\
             another client connected with the same client id (takeover {count}; {suspects})\
             {or_refused}"
        )
    };
    // A fight goes on (two nodes over a persistent session's id take turns every minute):
    // WARN at the 1st, 2nd, 4th, 8th, ... takeover of the streak, the others at DEBUG.
    let streak = {
        let mut guard = lock(&shared.takeover_streak);
        let (streak, last) = &mut *guard;
        if last.is_none_or(|at| at.elapsed() >= FAILURE_REMEMBERED) {
            *streak = 0;
        }
        *last = Some(Instant::now());
        *streak += 1;
        *streak
    };
    let level = takeover_level(streak, !shared.clean_session);
    if !shared.clean_session {
        // Another appender of this node may be the other client: the same id, other settings.
        let hostname = crate::identity::hostname();
        let whose = if held_by_another(shared, client_id) {
            "another appender of this node connects to this broker with this client id and \
             other connection settings: give each appender its own clientId"
                .to_string()
        } else if let Some(port) = elsewhere {
            format!(
                "another appender of this node connects with this client id to port {port} of \
                 this host, maybe another listener of this broker: give each appender its own \
                 clientId"
            )
        } else if shared.id_names_host {
            // What the advice below would add.
            format!(
                "the id's {{hostname}} is '{hostname}' here, and a node with the same host name \
                 (containers given one hostname, cloned machines) resolves it alike: give each \
                 node a host name of its own"
            )
        } else {
            "give every node its own clientId (for example 'kaa-{hostname}')".to_string()
        };
        log::log!(
            level,
            "{label}: {cause}. With cleanSession off the id keeps a session on the broker and \
             must not change on its own: {whose}; reconnecting with growing pauses meanwhile"
        );
        return None;
    }
    if own {
        log::log!(
            level,
            "{label}: {cause}; trying the next of the failover brokers, if any, else this one \
             again with growing pauses"
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

/// The level of the line about the `streak`th takeover in a row: WARN at the 1st, 2nd, 4th,
/// 8th, ... (a fight can go on for hours), DEBUG between; for a persistent session the 1st is
/// an ERROR, as the fault is the configuration's and nothing the appender does ends it.
fn takeover_level(streak: u64, persistent: bool) -> log::Level {
    match (streak, persistent) {
        (1, true) => log::Level::Error,
        (n, _) if n.is_power_of_two() => log::Level::Warn,
        _ => log::Level::Debug,
    }
}

/// When another connection of this process asked (its [`make_way`]) and this one is not
/// closing (its DISCONNECT will free the id, and the driver's end says so): the connection
/// `shared` (clean session) gives up `client_id` for the other one, which keeps a session under
/// it, and takes an id of its own, as after a takeover. Why, that id, and what to close once
/// `client_id` is let go of.
fn give_up_if_asked(shared: &Shared, client_id: &str) -> Option<(String, String, Arc<Semaphore>)> {
    if shared.released.load(Ordering::Acquire) {
        return None;
    }
    let released = lock(&shared.give_up_id).take()?;
    let own = own_id(&shared.identity, |id| !held_by_another(shared, id));
    let text = format!(
        "another appender of this node keeps a session (cleanSession off) under client id \
         '{client_id}', which names it and cannot change: this connection (cleanSession on, the \
         id carries no state) connects as '{own}' instead until the node restarts; give each \
         appender its own clientId to choose the ids"
    );
    if !shared.released.load(Ordering::Acquire) {
        *lock(&shared.hold) = Some(IdHold::new(&shared.identity, &own));
    }
    replaced().insert(shared.identity.clone(), own.clone());
    Some((text, own, released))
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
    let mut ready = {
        // Nothing of a pack answered meanwhile (its deadline, a refusal, a failure at the
        // CONNACK) goes out: Kaa sends those records again.
        let mut tracker = lock(&shared.tracker);
        let mut client = lock(&shared.client);
        tracker.unready_answered(&mut **client);
        client.take_ready()
    };
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
    // What the poll the shutdown cancelled queued: a QoS 0 message's "written" there may be
    // bytes still in rumqttc's buffer, which a broker that stopped reading never gets. They
    // count once a later poll has flushed (every poll that does I/O ends with a flush); if
    // none does, the acks among them still count and the writes fail with the close.
    // (Before, such a record was confirmed at the close.)
    let mut unflushed = eventloop.take_unflushed();
    shared.hand_over(|tracker, client| tracker.closing(client));
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
            // writes it), and the last is the status's own. With what rumqttc queued behind
            // it, as in a turn: a batch's writes hand over the next batch at once.
            let event = eventloop.poll().await?;
            flushed(shared, &mut unflushed);
            shared.hand_over(|tracker, client| {
                with_queued(eventloop, event, |event| tracker.on_event(client, event))
            });
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
        lost_while_closing(shared, eventloop, &unflushed);
        return;
    }
    lock(&shared.client).disconnect();
    // Until the broker closes the socket, not only until the DISCONNECT is written: then it
    // has read it and let go of the client id. A connection made next with the id (an edited
    // appender's) waits for this one's end, and could otherwise reach the broker first, by
    // another route (through a proxy, or a listener less busy), and push this one out.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        loop {
            match eventloop.poll().await {
                Err(_) => break,
                Ok(Observed::Disconnected) => flushed(shared, &mut unflushed),
                Ok(event) => {
                    flushed(shared, &mut unflushed);
                    shared.hand_over(|tracker, client| tracker.on_event(client, &event));
                }
            }
        }
    })
    .await;
    lost_while_closing(shared, eventloop, &unflushed);
}

/// In a close, after a poll that flushed: the events held for it count now, first, in order.
fn flushed(shared: &Shared, held: &mut Vec<Observed>) {
    if held.is_empty() {
        return;
    }
    let held = std::mem::take(held);
    shared.hand_over(|tracker, client| {
        for event in &held {
            tracker.on_event(client, event);
        }
    });
}

/// The end of a close that did not see the broker's last word: the acks rumqttc read with
/// the broker's close (one read often holds both) and queued but never returned, and those
/// held for a flush that never came, still count; what they do not answer fails with the
/// close. (Before, such packs were answered as closed though the broker had acknowledged
/// them.) Writes are not taken from there: the close may have cut them short.
fn lost_while_closing(shared: &Shared, eventloop: &mut impl EventLoop, held: &[Observed]) {
    let (_, unreported) = eventloop.forget();
    shared.hand_over(|tracker, client| {
        for event in held.iter().chain(&unreported).filter(|e| e.is_ack()) {
            tracker.on_event(client, event);
        }
    });
}

/// `event`, then what rumqttc queued behind it, [`EVENTS_PER_TURN`] at most in all, in order;
/// the rest stay queued for the next turn.
fn with_queued(eventloop: &mut impl EventLoop, event: Observed, mut each: impl FnMut(&Observed)) {
    let mut event = event;
    for taken in 1..=EVENTS_PER_TURN {
        each(&event);
        if taken == EVENTS_PER_TURN {
            break;
        }
        match eventloop.take_queued() {
            Some(next) => event = next,
            None => break,
        }
    }
}

/// How log lines name a connection: the broker's address and the client id.
fn connection_label(address: &str, client_id: &str) -> String {
    format!("{address} as '{client_id}'")
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
pub(crate) mod tests;

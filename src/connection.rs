//! MQTT connections, one per broker identity, shared by every appender that points at it and
//! driven by tasks on one tokio runtime for the whole process.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, Request, TlsConfiguration,
    Transport,
};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::delivery::{Message, Outcome, Pack, PublishOptions, Tracker};
use crate::metrics::ConnectionMetrics;

/// rumqttc takes a request only when fewer than this many QoS 1/2 publishes await acks.
/// Mosquitto's default `max_inflight_messages` is 20; beyond it a QoS 2 burst loses messages.
const INFLIGHT: u16 = 20;
/// The MQTT maximum. Messages are checked against the configured limit before they reach
/// rumqttc, which would otherwise drop the whole connection on an oversized publish.
const MAX_PACKET_SIZE: usize = 268_435_455;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

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
    client: Mutex<AsyncClient>,
    tracker: Mutex<Tracker>,
    shutdown: Notify,
    label: String,
    metrics: ConnectionMetrics,
}

/// A pooled connection. Dropping the last `Arc` disconnects it.
pub struct Connection {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Connection {
    /// The connection for `broker`, shared with other appenders of the same identity.
    pub fn get(broker: &BrokerConfig, max_pending: usize) -> Arc<Connection> {
        static POOL: OnceLock<Mutex<HashMap<BrokerConfig, Weak<Connection>>>> = OnceLock::new();
        let mut pool = lock(POOL.get_or_init(Default::default));
        pool.retain(|_, c| c.strong_count() > 0);
        if let Some(existing) = pool.get(broker).and_then(Weak::upgrade) {
            return existing;
        }
        let connection = Arc::new(Connection::open(broker, max_pending));
        pool.insert(broker.clone(), Arc::downgrade(&connection));
        connection
    }

    fn open(broker: &BrokerConfig, max_pending: usize) -> Connection {
        let mut options = MqttOptions::new(&broker.client_id, &broker.host, broker.port);
        options
            .set_keep_alive(broker.keep_alive)
            .set_inflight(INFLIGHT)
            .set_clean_session(broker.clean_session)
            .set_max_packet_size(64 * 1024, MAX_PACKET_SIZE);
        if let Some(user) = &broker.username {
            options.set_credentials(user, broker.password.clone().unwrap_or_default());
        }
        let label = format!("{}:{} as '{}'", broker.host, broker.port, broker.client_id);
        if let Some(tls) = &broker.tls {
            if !tls.verify {
                log::warn!(
                    "TLS to {label} does not verify the broker's certificate (verifySslCert is off): \
                     the connection is encrypted but anyone on the path can impersonate the broker"
                );
            }
            match tls.client_config() {
                Ok(config) => {
                    options.set_transport(Transport::Tls(TlsConfiguration::Rustls(config)));
                }
                Err(e) => log::error!("TLS to {label} cannot be set up: {e}"),
            }
        }
        // The channel never refuses what the tracker's bound admits.
        let (client, mut eventloop) = AsyncClient::new(options, max_pending.max(1));
        eventloop
            .network_options
            .set_connection_timeout(broker.connect_timeout.as_secs());
        let shared = Arc::new(Shared {
            client: Mutex::new(client),
            tracker: Mutex::new(Tracker::default()),
            shutdown: Notify::new(),
            label,
            metrics: ConnectionMetrics::default(),
        });
        runtime().spawn(drive(Arc::clone(&shared), eventloop));
        Connection { shared }
    }

    /// Hands a pack's messages to the connection without waiting on the network.
    pub fn submit(
        &self,
        pack: &Arc<Pack>,
        how: PublishOptions,
        messages: Vec<Message>,
        max_pending: usize,
    ) {
        // Lock order everywhere: tracker, then client.
        let mut tracker = lock(&self.shared.tracker);
        let mut client = lock(&self.shared.client);
        tracker.submit(&mut *client, pack, how, messages, max_pending);
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
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = lock(&self.shared.client).try_disconnect();
        self.shared.shutdown.notify_one();
    }
}

/// Runs the event loop of one connection until the pool lets go of it.
async fn drive(shared: Arc<Shared>, mut eventloop: EventLoop) {
    let mut backoff = BACKOFF_MIN;
    let mut was_connected = false;
    let mut ever_connected = false;
    // The last failure logged at WARN: a broker that stays away is reported once, not at
    // every retry, and a different failure (say, a TLS error after a refused TCP connect) is.
    let mut last_failure: Option<String> = None;
    loop {
        let polled = tokio::select! {
            _ = shared.shutdown.notified() => break,
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = BACKOFF_MIN;
                was_connected = true;
                if ever_connected {
                    shared.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                ever_connected = true;
                shared.metrics.connected.store(true, Ordering::Relaxed);
                last_failure = None;
                log::info!("connected to {}", shared.label);
                let mut tracker = lock(&shared.tracker);
                tracker.on_connected(&mut *lock(&shared.client));
            }
            Ok(event) => lock(&shared.tracker).on_event(&event),
            Err(error) => {
                shared.metrics.connected.store(false, Ordering::Relaxed);
                let failure = error.to_string();
                let repeated = last_failure.as_ref() == Some(&failure);
                on_error(&shared, &mut eventloop, &error, was_connected, repeated);
                last_failure = Some(failure);
                was_connected = false;
                let pause = jitter(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    _ = shared.shutdown.notified() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    lock(&shared.tracker).fail_all(Outcome::InternalError);
    log::debug!("connection to {} closed", shared.label);
}

fn on_error(
    shared: &Shared,
    eventloop: &mut EventLoop,
    error: &ConnectionError,
    was_up: bool,
    repeated: bool,
) {
    let mut tracker = lock(&shared.tracker);
    let first = |level| if repeated { log::Level::Debug } else { level };
    if let ConnectionError::ConnectionRefused(code) = error {
        log::log!(
            first(log::Level::Error),
            "{} refused the connection: {code:?}",
            shared.label
        );
        tracker.on_refused();
        return;
    }
    if was_up {
        log::warn!("connection to {} lost: {error}", shared.label);
    } else {
        log::log!(
            first(log::Level::Warn),
            "cannot connect to {}: {error}; retrying",
            shared.label
        );
    }
    // rumqttc keeps un-acked publishes and drained channel requests in `pending` and would
    // replay them on a resumed session; we fail them instead, so no pack waits on a replay
    // that a clean session silently drops, and nothing is confirmed by a stale pkid.
    let drained = eventloop
        .pending
        .iter()
        .filter(|r| matches!(r, Request::Publish(p) if p.pkid == 0))
        .count();
    eventloop.pending.clear();
    eventloop.state.collision = None;
    let unreported: Vec<Event> = eventloop.state.events.drain(..).collect();
    tracker.on_connection_lost(drained, &unreported);
}

/// Spreads reconnects of many nodes: a random point in [d/2, d].
fn jitter(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d / 2 + d.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

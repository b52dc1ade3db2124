//! The MQTT client: the only module that names rumqttc. rumqttc has an event loop and a
//! client per MQTT version (3.1.1 and 5), alike in shape but not in types; here both are built
//! from our configuration ([`open`]: options, transport, TLS, proxy, last will) and seen
//! through one face: a [`Client`] the tracker publishes [`Message`]s through, and an
//! [`EventLoop`] whose events the connection driver and the delivery tracker read as
//! [`Observed`] and whose failures as [`Failure`].

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rumqttc::v5::mqttbytes::v5::{PubAckReason, PubCompReason, PubRecReason, PublishProperties};
use rumqttc::{TlsConfiguration, Transport};

use crate::config::{self, BrokerConfig, MqttVersion, ProxySettings, Qos};
use crate::reason::Reason;
use crate::status::{self, Status};
use crate::tls::{BrokerCertificates, TlsSettings};

/// QoS 1/2 messages awaiting acks when neither `maxInflight` nor the broker says otherwise:
/// the window that keeps a loopback or LAN broker busy (20 gave a third of the QoS 1 rate).
pub(crate) const INFLIGHT: u16 = 100;
/// QoS 2 messages awaiting PUBCOMP, likewise. Mosquitto (default `max_inflight_messages` 20)
/// answers PUBREC and PUBCOMP for QoS 2 messages beyond its window and then drops them: a pack
/// confirmed that no subscriber ever sees. An MQTT 3.1.1 broker never says its window.
pub(crate) const QOS2_INFLIGHT: u16 = 20;
/// An MQTT 5 broker's receive maximum is taken up to this (65,535, "no limit", is common):
/// rumqttc keeps a slot per packet id of its window, and `maxInflight` goes higher.
const AUTO_INFLIGHT_MAX: u16 = 1024;
/// The MQTT maximum. Messages are checked against the configured limit before they reach
/// rumqttc, which would otherwise drop the whole connection on an oversized publish.
const MAX_PACKET_SIZE: usize = 268_435_455;
/// We never subscribe: the broker only sends acks and pings.
const MAX_INCOMING_PACKET: usize = 64 * 1024;
/// A batch of MQTT 3.1.1 writes reads the clock once per this many messages ([`write_v4`]).
const CLOCK_EVERY: usize = 16;
/// And lets the runtime's other tasks run once per this many bytes.
const YIELD_BYTES: usize = 1 << 20;
/// The socket's send buffer as asked for: Linux doubles it, within `net.core.wmem_max` (so
/// 416 KiB with its default, 512 KiB where it is larger). Left to Linux, it was 4 MiB where
/// the first hop is loopback (a proxy or tunnel on the node's own host), whatever the link
/// beyond. Through a proxy on a 1 Mbit/s uplink, QoS 0 messages confirmed as written
/// then waited half a minute in it, a ping behind them went unanswered past the keep-alive,
/// and as Linux wakes a writer blocked on a full buffer only once a third of it has gone (1.3
/// MiB: 10 s there), the broker was taken for one that stopped reading: a new connection
/// every 20 s, with what the buffers held. The cost: at most this much in flight per round
/// trip (4 MB/s to a broker 100 ms away).
const SEND_BUFFER: u32 = 256 << 10;

/// How many messages may await the broker's answer on one connection; the tracker holds back
/// the rest. rumqttc's own window ([`client_window`]) is never the smaller one, so it never
/// holds a message back itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// QoS 1 and 2 messages until their PUBACK or PUBCOMP (what MQTT 5's receive maximum counts).
    pub acked: usize,
    /// QoS 2 messages among them.
    pub exactly_once: usize,
    /// Packet ids run 1, 2, ... up to this, then from 1 again (rumqttc's MQTT 5 client numbers
    /// messages so; with MQTT 3.1.1 the tracker gives them, passing over those still taken):
    /// the window rumqttc was given ([`client_window`]), lowered by an MQTT 5 broker's receive
    /// maximum. Never below `acked`.
    pub packet_ids: u16,
}

impl Window {
    /// The window of a connection the broker accepted: `configured` (`maxInflight`; `None`:
    /// automatic), never above the receive maximum an MQTT 5 broker announced.
    pub fn agreed(configured: Option<u16>, receive_maximum: Option<u16>) -> Window {
        let client = configured.unwrap_or(AUTO_INFLIGHT_MAX);
        let packet_ids = receive_maximum.map_or(client, |r| r.min(client)).max(1);
        let both = |n: u16| Window {
            acked: usize::from(n),
            exactly_once: usize::from(n),
            packet_ids,
        };
        match (configured, receive_maximum) {
            (Some(n), r) => both(r.map_or(n, |r| n.min(r))),
            (None, Some(r)) => both(r.min(AUTO_INFLIGHT_MAX)),
            (None, None) => Window {
                acked: usize::from(INFLIGHT),
                exactly_once: usize::from(QOS2_INFLIGHT),
                packet_ids,
            },
        }
    }
}

impl Default for Window {
    /// Before any broker said anything.
    fn default() -> Window {
        Window::agreed(None, None)
    }
}

/// rumqttc's in-flight window (its packet ids cycle through it): room for any [`Window`].
fn client_window(broker: &BrokerConfig) -> u16 {
    broker.max_inflight.unwrap_or(AUTO_INFLIGHT_MAX)
}

impl Observed {
    /// What the driver handles on a poll of its own, never among the events taken with
    /// another ([`EventLoop::take_queued`]): a refusal (noted for the close that may follow;
    /// a QoS 2 one frees its slot) or a connect.
    pub fn wants_its_own_turn(&self) -> bool {
        self.is_refusal() || matches!(self, Observed::Connected { .. })
    }

    /// Whether the broker sent it. Any answer shows the link alive, as a PINGRESP does: a
    /// ping written behind seconds of large messages is answered only once the broker has read
    /// them, and meanwhile their acks come (see [`EventLoop::poll`]).
    fn is_from_broker(&self) -> bool {
        self.is_ack()
            || matches!(
                self,
                Observed::Connected { .. } | Observed::Pong | Observed::Unasked { .. }
            )
    }

    /// The broker's answer to a publish: a PUBACK, PUBREC or PUBCOMP, refusing or not.
    pub fn is_ack(&self) -> bool {
        matches!(
            self,
            Observed::Acked { .. } | Observed::Received { .. } | Observed::Completed { .. }
        )
    }

    /// The broker refused a message (an MQTT 5 reason code).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Observed::Acked {
                refused: Some(_),
                ..
            } | Observed::Received {
                refused: Some(_),
                ..
            } | Observed::Completed {
                refused: Some(_),
                ..
            }
        )
    }
}

/// What an MQTT 5 broker's CONNACK says it takes; an MQTT 3.1.1 broker says nothing, and
/// anything goes until it closes the connection. A publish past them makes the broker close
/// the connection every appender shares, so it fails its own pack instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    /// Its Maximum Packet Size.
    pub max_packet_size: Option<u32>,
    /// Its Maximum QoS (Mosquitto's `max_qos`), as MQTT numbers it.
    pub max_qos: u8,
    /// Whether it keeps retained messages (Mosquitto's `retain_available`).
    pub retain: bool,
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            max_packet_size: None,
            max_qos: 2,
            retain: true,
        }
    }
}

impl Grants {
    fn of_v5(properties: Option<&rumqttc::v5::mqttbytes::v5::ConnAckProperties>) -> Grants {
        let Some(p) = properties else {
            return Grants::default();
        };
        Grants {
            max_packet_size: p.max_packet_size,
            max_qos: p.max_qos.unwrap_or(2),
            retain: p.retain_available != Some(0),
        }
    }

    /// Why the broker would close the connection over a publish of `size` bytes (its
    /// [`v5_publish_size`]), if it would.
    fn refusal(&self, size: usize, how: &PublishOptions) -> Option<Unqueued> {
        // Without the broker's limit, MQTT's own: rumqttc fails the connection, not the
        // publish, on a packet past either, and a topic and labels made from an endpoint's
        // record can take a payload within maxMessageBytes past MQTT's.
        let limit = self.max_packet_size.unwrap_or(MAX_PACKET_SIZE as u32);
        if size > limit as usize {
            return Some(Unqueued::TooLarge { size, limit });
        }
        if how.qos.number() > self.max_qos {
            return Some(Unqueued::Unsupported(format!(
                "the broker takes QoS {} at most (its Maximum QoS) and this message is QoS {}: \
                 set qos to {0} or less",
                self.max_qos,
                how.qos.number()
            )));
        }
        if how.retain && !self.retain {
            return Some(Unqueued::Unsupported(
                "the broker keeps no retained messages (Retain Available is 0) and this \
                 message is retained: set retain to false, and give this broker no statusTopic"
                    .into(),
            ));
        }
        None
    }
}

/// What the delivery tracker needs to know of one event-loop event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The broker accepted the connection; an MQTT 5 broker may say how many QoS 1 and 2
    /// messages it takes in flight (its receive maximum). `session_present`: it resumed the
    /// session of an earlier connection (clean session off).
    Connected {
        receive_maximum: Option<u16>,
        session_present: bool,
        grants: Grants,
    },
    /// A publish was written with this packet id (0: QoS 0).
    Written(u16),
    /// A publish was taken from the channel but held back: its packet id is still in use.
    HeldBack,
    /// PUBACK (QoS 1); `refused` holds the broker's reason when it did not accept it (MQTT 5).
    Acked { pkid: u16, refused: Option<Reason> },
    /// PUBREC (QoS 2), likewise.
    Received { pkid: u16, refused: Option<Reason> },
    /// PUBCOMP (QoS 2), likewise: MQTT 5's 0x92 says the broker does not know the packet id.
    Completed { pkid: u16, refused: Option<Reason> },
    /// Our DISCONNECT went out.
    Disconnected,
    /// PINGRESP.
    Pong,
    /// A message the broker sent us, on this topic, though we subscribe to nothing: the
    /// session holds a subscription another client made with our client id.
    Unasked { topic: String },
    /// Anything else (pings, PUBREL going out, ...).
    Other,
}

/// Why `poll` failed.
pub enum Failure {
    /// The broker answered CONNECT with a refusal (credentials, authorisation, ...), or the
    /// HTTP proxy refused ours.
    Refused { why: String, about: Refusal },
    /// The broker closed a connection it had accepted: end of stream or reset (MQTT 3.1.1
    /// says no more), or an MQTT 5 DISCONNECT that `said` why.
    Closed { why: String, said: Said },
    /// The broker sent what belongs to no message of ours: a message too large to read
    /// ([`MAX_INCOMING_PACKET`]; we subscribe to nothing, so it came from a subscription in the
    /// session), or the release of one the session holds (a PUBREL for a packet id the
    /// connection never had), or an ack for such an id. A resumed session sends it again at
    /// every connect. (MQTT 5 tells the broker the size limit; MQTT 3.1.1 cannot.)
    Foreign(String),
    /// The TLS exchange failed: the handshake (also inside a WebSocket's), or an alert the
    /// broker sent after it (under TLS 1.3 the client finishes first, and a broker refusing its
    /// certificate alerts at the first read).
    Tls(String),
    /// MQTT 3.1.1: a write took no bytes for `connectTimeoutSeconds` ([`within`]): the broker
    /// stopped reading, and would take the next connection and stop again, as one that stops
    /// acknowledging does (a stall).
    Unread(String),
    /// Anything else: unreachable, timeout, keep-alive expired.
    Broken(String),
}

/// Why the broker closed the connection, as far as it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// No reason came: the end of the stream, under MQTT 3.1.1 or without a DISCONNECT.
    Nothing,
    /// None was read: the socket was reset, or a write found it closed (MQTT 3.1.1 too). A
    /// DISCONNECT the broker sent before it closed may lie unread behind the failed write:
    /// HiveMQ's "not authorized" at a QoS 0 publish its ACL denies, when the publishes after
    /// it overtake it.
    Unheard,
    /// Another client connected with the same client id (MQTT 5's "session taken over").
    TakenOver,
    /// A packet was larger than the broker takes (MQTT 5's "packet too large").
    TooLarge,
    /// The client may not do what it sent (MQTT 5's "not authorized", "topic name invalid"):
    /// HiveMQ closes so at a QoS 0 publish its ACL denies, which nothing else answers.
    Refused,
    /// Another reason of an MQTT 5 DISCONNECT: the server busy, over a quota, shutting down,
    /// moved, or "use another server", a protocol error; or none (a bare DISCONNECT: a normal
    /// disconnection).
    Other,
}

impl Said {
    /// Whether no reason was read (MQTT 3.1.1 never has one).
    pub fn is_silent(self) -> bool {
        matches!(self, Said::Nothing | Said::Unheard)
    }
}

/// What a refusal of CONNECT is about, as far as its code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client id itself: "identifier rejected" (MQTT 5: also "client identifier not
    /// valid").
    IdInvalid,
    /// May be the client id: "not authorised" (MQTT 5: also "banned"), which is what a broker
    /// admitting listed ids only (AWS IoT policies, Mosquitto's `clientid_prefixes`) answers.
    Id,
    /// The last will's retain flag or QoS, the only ones a CONNECT carries: the broker keeps
    /// no retained messages, or takes QoS 0 only (MQTT 5).
    Will,
    /// Anything else: bad credentials, busy, unavailable, a proxy's 407.
    Other,
}

impl Refusal {
    /// What a CONNACK's code says the refusal is about.
    fn of(reason: Reason) -> Refusal {
        match reason {
            Reason::V4(2) | Reason::V5(0x85) => Refusal::IdInvalid,
            Reason::V4(5) | Reason::V5(0x87 | 0x8A) => Refusal::Id,
            Reason::V5(0x9A | 0x9B) => Refusal::Will,
            _ => Refusal::Other,
        }
    }

    /// Whether the client id is, or may be, what was refused.
    pub fn is_about_id(self) -> bool {
        matches!(self, Refusal::IdInvalid | Refusal::Id)
    }
}

impl Failure {
    /// What happened, for a log line.
    pub fn text(&self) -> &str {
        match self {
            Failure::Refused { why, .. }
            | Failure::Closed { why, .. }
            | Failure::Foreign(why)
            | Failure::Tls(why)
            | Failure::Unread(why)
            | Failure::Broken(why) => why,
        }
    }
}

/// A TLS failure, with what to do where rustls's words leave the operator guessing.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Failure {
    use rustls::CertificateError::{ExpiredContext, NotValidYetContext, UnknownIssuer};
    let why = e.to_string();
    // rustls gives a certificate's dates in seconds since 1970. The node's own is the day
    // alone: a time would make each attempt's text new, and a repeat a WARN
    // (`failure_key` drops only the figures that follow a space).
    let day = |secs: u64| crate::utc::iso8601(secs)[..10].to_string();
    match rustls_cause(e) {
        Some(rustls::Error::InvalidCertificate(ExpiredContext { time, not_after })) => {
            return Failure::Tls(format!(
                "{why} (the broker's certificate, or one of its chain, expired {}; this node's \
                 date is {})",
                crate::utc::iso8601(not_after.as_secs()),
                day(time.as_secs())
            ));
        }
        Some(rustls::Error::InvalidCertificate(NotValidYetContext { time, not_before })) => {
            return Failure::Tls(format!(
                "{why} (the broker's certificate, or one of its chain, is valid from {}; this \
                 node's date is {}: check its clock)",
                crate::utc::iso8601(not_before.as_secs()),
                day(time.as_secs())
            ));
        }
        // Bytes that are no TLS record: the port speaks plain MQTT or HTTP (a WebSocket listener
        // answers the ClientHello with "HTTP/1.1 400"), or something on the way answered. A
        // plain MQTT port that closes at once is said where the close is read.
        Some(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
            | rustls::InvalidMessage::UnknownProtocolVersion,
        )) => {
            return Failure::Tls(format!(
                "{why} (what answered is not TLS: check that this is the broker's TLS port; a \
                 plain MQTT or HTTP listener answers so)"
            ));
        }
        Some(rustls::Error::InvalidCertificate(UnknownIssuer)) => {
            return Failure::Tls(format!(
                "{why} (no CA this appender trusts issued the broker's certificate: put the CA \
                 that did in caCertificate, with any intermediate the broker does not send; an \
                 empty caCertificate trusts the system's CAs only)"
            ));
        }
        _ => {}
    }
    // A self-signed certificate of OpenSSL's `req -x509` is a CA's (CA:TRUE), which webpki
    // refuses as a server's, by the name of its error alone.
    if why.contains("CaUsedAsEndEntity") {
        return Failure::Tls(format!(
            "{why} (the broker shows a CA's certificate as its own, as OpenSSL's req -x509 makes \
             by default, and rustls takes a server's only: issue the broker a certificate signed \
             by that CA, with a subjectAltName naming the host, and put the CA in caCertificate; \
             or turn verifySslCert off)"
        ));
    }
    // webpki takes X.509 v3 certificates only, and says so by the name of its error alone.
    if why.contains("UnsupportedCertVersion") {
        return Failure::Tls(format!(
            "{why} (the broker's certificate, or one of its chain, is X.509 v1, as OpenSSL's \
             x509 -req issues without -extfile, and rustls takes v3 only: issue it again with v3 \
             extensions and a subjectAltName naming the host)"
        ));
    }
    Failure::Tls(why)
}

/// The rustls error among the causes of `e`: tokio-rustls wraps its error in an I/O error,
/// which rumqttc's own errors (or, over WebSocket, tungstenite's) carry as their source.
fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An I/O error's `source` skips the error it wraps.
        cause = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The I/O error among `e` and its causes.
fn io_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = e.source();
    }
    None
}

/// An I/O error that means the peer closed the socket, not that the network failed.
fn closed_by_peer(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe
    )
}

/// An I/O error a write can end in after the peer closed (broken pipe), or that a reset
/// ends both in: what the peer sent before it may not have been read.
fn may_leave_unread(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | BrokenPipe)
}

/// What the HTTP proxy answered to CONNECT, when it answered with an HTTP status other than
/// 200. 407 (its credentials were refused) is a refusal, like a broker refusing ours: retrying
/// cannot help until the configuration changes. Anything else (502: the proxy cannot reach
/// the broker, ...) is a broken connection. The error carries the status only, never the
/// request and so never the credentials.
fn proxy_failure(e: &(dyn std::error::Error + 'static)) -> Option<Failure> {
    use async_http_proxy::HttpError;
    match e.source()?.downcast_ref::<HttpError>()? {
        HttpError::HttpCode200(407) => Some(Failure::Refused {
            why: "the HTTP proxy asks for credentials it takes (407 Proxy Authentication \
                  Required): set proxyUsername and proxyPassword, or check them"
                .to_string(),
            about: Refusal::Other,
        }),
        // Squid, as installed, tunnels to port 443 alone (its SSL_ports rule).
        HttpError::HttpCode200(403) => Some(Failure::Broken(
            "the HTTP proxy answered CONNECT with HTTP status 403: it forbids a tunnel to this \
             host and port (many proxies allow port 443 alone, as Squid's default SSL_ports \
             rule does): allow the broker's port in the proxy"
                .to_string(),
        )),
        HttpError::HttpCode200(code) => Some(Failure::Broken(format!(
            "the HTTP proxy answered CONNECT with HTTP status {code}"
        ))),
        _ => None,
    }
}

/// One version's event loop, as the driver uses it.
pub trait EventLoop: Send + 'static {
    /// The connection settings of one broker (address included).
    type Options: Clone + Send + 'static;

    /// The next event. What the broker sends ends the wait of a keep-alive ping as its
    /// PINGRESP would: rumqttc fails the connection when its next ping finds the last one
    /// unanswered, a keep-alive period later, though on a slow link the ping may still wait
    /// behind seconds of messages the broker acknowledges as it reads them. A dead link sends
    /// nothing, and is still left after two periods.
    fn poll(&mut self) -> impl Future<Output = Result<Observed, Failure>> + Send;

    /// The next event rumqttc already queued (a batch's writes, the rest of a read of several
    /// packets), taken without a poll; `None` when there is none, or when the next one
    /// [wants its own turn](Observed::wants_its_own_turn). rumqttc's poll
    /// future is 10 KB, moved each time it is made: made once per event it cost a fifth of the
    /// I/O thread at QoS 0.
    fn take_queued(&mut self) -> Option<Observed> {
        None
    }

    /// Writes the publishes the client kept ready, in order, as far as the client takes them
    /// (a packet id still in use stops it) or for as long as one write may take, and flushes
    /// the socket, also after a `poll` that was cancelled half-way (MQTT 3.1.1; rumqttc's MQTT 5
    /// client writes its publishes itself, inside `poll`, and keeps the socket private). What it does not take
    /// stays in `ready`; `Ok(true)` when it stopped for time, so that a slow broker's backlog
    /// goes in slices with the driver's other duties (acks, stalls, close) between them. A
    /// failure has dropped the connection, as a failed `poll` has.
    fn write(&mut self, ready: &mut Ready) -> impl Future<Output = Result<bool, Failure>> + Send;

    /// Whether [`nudge`](Self::nudge) sends anything. Not with MQTT 5, whose socket rumqttc
    /// keeps private; nor may its `poll` be cancelled for a nudge: rumqttc writes the publishes
    /// of its channel inside `poll`, and a poll cancelled while it waited to write one (its
    /// buffer still full of what the socket had not taken) had taken that publish from the
    /// channel and counted it in flight without writing it. Its pack waited for an ack that
    /// could never come.
    const NUDGES: bool = false;

    /// Whether the protocol has no reason codes (MQTT 3.1.1): a broker refusing a publish can
    /// only close the connection, without a word, so such a close may be its answer to a topic
    /// (see `refused_topics::SilentRefusals`). An MQTT 5 broker says so, and a bare close there
    /// is a restart or a network's, unless what it said went unread ([`Said::Unheard`]).
    const NO_REASON_CODES: bool = false;

    /// Sends the broker a PINGREQ now, apart from rumqttc's keep-alive (whose own ping would
    /// fail the connection if it found one of ours unanswered), for the TCP acknowledgement
    /// it carries (see `connection::Nudge`). A failure has dropped the connection, as a
    /// failed `poll` has.
    fn nudge(&mut self) -> impl Future<Output = Result<(), Failure>> + Send {
        std::future::ready(Ok(()))
    }

    /// After the broker accepted the connection: puts back what its CONNACK changed in the
    /// options and must not stay so (`configured`: this broker's options).
    fn settle(&mut self, _configured: &Self::Options) {}

    /// Connects to this broker, as `client_id`, with the options configured for it, from the
    /// next attempt on.
    fn switch_to(&mut self, options: &Self::Options, client_id: &str);

    /// Makes the next connect start a clean session (a clean start under MQTT 5), until the
    /// next `switch_to`: the broker's session holds what the appender never made.
    fn start_clean(&mut self);

    /// After the broker refused a QoS 2 message at PUBREC or PUBCOMP (MQTT 5, reason 0x80 or
    /// more): rumqttc 0.25 keeps counting it in flight (rumqtt issue #1060) and stops sending
    /// once such messages fill its window. Counts the window anew from what still awaits an
    /// ack, so that one endpoint's refused records cost the shared connection nothing. False
    /// when that failed; the connection must then be made anew.
    fn free_refused_slots(&mut self) -> bool {
        true
    }

    /// After a poll cancelled half-way (by the driver's shutdown): the events it queued and
    /// never returned, whose writes may not have reached the socket (MQTT 5: rumqttc writes
    /// its channel's publishes inside `poll`, queuing each one's event before the write and
    /// the flush). None where only [`write`](Self::write), which flushes, writes publishes.
    fn take_unflushed(&mut self) -> Vec<Observed> {
        Vec::new()
    }

    /// Drops the connection as a failure would (the next poll reconnects); `forget` follows.
    fn drop_connection(&mut self);

    /// After a failure: drops the publishes rumqttc kept to replay on a resumed session (a
    /// clean session would drop them silently), but not the PUBRELs, and starts its state
    /// afresh (packet ids, any stale collision). Returns how many publishes it had drained
    /// from its channel, and the events it queued but never returned.
    fn forget(&mut self) -> (usize, Vec<Observed>);
}

/// The bounds a failure may have run into, which rumqttc's two clients spell differently.
trait PastBound {
    /// A write took no bytes within its bound: the broker stopped reading.
    fn stopped_reading(&self) -> bool;
    /// The connect (TCP, TLS, a WebSocket upgrade, the CONNACK) took longer than its bound.
    fn not_connected_in_time(&self) -> bool;
}

/// rumqttc's MQTT 3.1.1 client bounds its flushes (and [`within`] our writes) so.
impl PastBound for rumqttc::ConnectionError {
    fn stopped_reading(&self) -> bool {
        matches!(self, rumqttc::ConnectionError::FlushTimeout)
    }

    fn not_connected_in_time(&self) -> bool {
        matches!(self, rumqttc::ConnectionError::NetworkTimeout)
    }
}

/// Its MQTT 5 client does not bound a write: the driver's stall check ends it. Its timeout
/// comes only from the connect.
impl PastBound for rumqttc::v5::ConnectionError {
    fn stopped_reading(&self) -> bool {
        false
    }

    fn not_connected_in_time(&self) -> bool {
        matches!(self, rumqttc::v5::ConnectionError::Timeout(_))
    }
}

/// rumqttc's two event loops differ in types only.
macro_rules! event_loop {
    ($loop:ty, $options:ty, $field:ident, $request:path, $error:path, $state:path, $bytes_error:path, $observe:ident, $said:ident, $explain:ident, $failure:ident, $write:ident, $fresh_state:ident, $reason:ident, $unreadable:pat => $bytes:expr, $clean:ident, { $($nudging:tt)* }) => {
        /// What a failed poll or write means for the driver.
        fn $failure(e: $error) -> Failure {
            use $error as ConnectionError;
            use $state as StateError;
            use $bytes_error as BytesError;
            match e {
                e if e.stopped_reading() => Failure::Unread(format!(
                    "{e}: the broker took no bytes for connectTimeoutSeconds: it stopped reading"
                )),
                // Alone, "Network timeout" (or "Timeout") named neither the setting nor a step.
                e if e.not_connected_in_time() => Failure::Broken(format!(
                    "{e}: not connected within connectTimeoutSeconds (the name lookup, the \
                     TCP connect, the proxy's tunnel, the TLS handshake, the WebSocket upgrade \
                     or the broker's CONNACK took longer)"
                )),
                ConnectionError::ConnectionRefused(code) => {
                    let reason = $reason(code);
                    Failure::Refused {
                        why: reason.to_string(),
                        about: Refusal::of(reason),
                    }
                }
                ConnectionError::Proxy(e) if proxy_failure(&e).is_some() => {
                    proxy_failure(&e).expect("checked in the guard")
                }
                ConnectionError::MqttState(StateError::Deserialization($unreadable)) => {
                    Failure::Foreign(format!(
                        "the broker sent a message of {} bytes, over the {MAX_INCOMING_PACKET} \
                         this client reads",
                        $bytes
                    ))
                }
                // A broker that speaks plain MQTT there takes the ClientHello for a malformed
                // CONNECT and closes (Mosquitto 2.0.11 resets the socket).
                ConnectionError::Tls(rumqttc::TlsError::Io(io)) if closed_by_peer(&io) => {
                    Failure::Tls(format!(
                        "TLS: I/O: {io}: closed during the TLS handshake; if this port speaks \
                         plain MQTT, turn ssl off (else the server refused the handshake)"
                    ))
                }
                e @ ConnectionError::Tls(_) => tls_failure(&e),
                // Alone, "Last pingreq isn't acked" named neither the setting nor the cause.
                // Any packet from the broker ends a ping's wait (`poll`), so only a link where
                // nothing came back for a whole period fails so.
                e @ ConnectionError::MqttState(StateError::AwaitPingResp) => {
                    Failure::Broken(format!(
                        "{e}: the broker answered nothing, not even a ping, for a whole \
                         keep-alive period (keepAliveSeconds, or the Server Keep Alive an MQTT 5 \
                         broker set): it, or the way to it (a NAT or firewall that dropped the \
                         idle connection), is gone; or a link too slow to carry a period's bytes \
                         held its answers back (then raise keepAliveSeconds)"
                    ))
                }
                ConnectionError::MqttState(StateError::Unsolicited(pkid)) => {
                    Failure::Foreign(format!(
                        "the broker sent an acknowledgement or release for packet id {pkid}, \
                         which no message in flight on this connection has (an acknowledgement \
                         sent twice is a fault of the broker)"
                    ))
                }
                e => {
                    let io = match &e {
                        ConnectionError::MqttState(StateError::Io(io))
                        | ConnectionError::MqttState(StateError::Deserialization(BytesError::Io(
                            io,
                        )))
                        | ConnectionError::Io(io) => Some(io),
                        // Over WebSocket, tungstenite's: a TLS listener resets the upgrade as
                        // it resets a plain CONNECT.
                        ConnectionError::Websocket(e) => io_cause(e),
                        _ => None,
                    };
                    let closed =
                        matches!(e, ConnectionError::MqttState(StateError::ConnectionAborted))
                            || io.is_some_and(closed_by_peer);
                    let said = match $said(&e) {
                        Said::Nothing if io.is_some_and(may_leave_unread) => Said::Unheard,
                        said => said,
                    };
                    if rustls_cause(&e).is_some() {
                        return tls_failure(&e);
                    }
                    let why = $explain(&e).unwrap_or_else(|| e.to_string());
                    if closed || !said.is_silent() {
                        Failure::Closed { why, said }
                    } else {
                        Failure::Broken(why)
                    }
                }
            }
        }

        impl EventLoop for $loop {
            type Options = $options;

            fn switch_to(&mut self, options: &Self::Options, client_id: &str) {
                self.$field = options.clone();
                self.$field.set_client_id(client_id.to_string());
            }

            fn start_clean(&mut self) {
                self.$field.$clean(true);
            }

            async fn poll(&mut self) -> Result<Observed, Failure> {
                let event = <$loop>::poll(self).await.map_err($failure)?;
                let observed = $observe(&event);
                if observed.is_from_broker() {
                    self.state.await_pingresp = false;
                }
                Ok(observed)
            }

            fn take_queued(&mut self) -> Option<Observed> {
                let next = $observe(self.state.events.front()?);
                if next.wants_its_own_turn() {
                    return None;
                }
                self.state.events.pop_front();
                if next.is_from_broker() {
                    self.state.await_pingresp = false;
                }
                Some(next)
            }

            async fn write(&mut self, ready: &mut Ready) -> Result<bool, Failure> {
                $write(self, ready).await
            }

            $($nudging)*

            fn drop_connection(&mut self) {
                self.clean();
            }

            fn forget(&mut self) -> (usize, Vec<Observed>) {
                use $request as Request;
                // rumqttc drained its channel when the connection failed, inside `poll`; an
                // appender's submit may have handed it publishes since, before the driver
                // took the tracker's lock. Left there, they went out on the next connection,
                // to a failover broker too, unchecked against what its CONNACK grants (a
                // packet too large for it would fail the connection). Drained, they fail
                // with the loss, as those drained before.
                self.clean();
                let drained = self
                    .pending
                    .iter()
                    .filter(|r| matches!(r, Request::Publish(p) if p.pkid == 0))
                    .count();
                // PUBRELs stay: rumqttc drops them too when the broker kept no session, and
                // sends them when it did (under MQTT 3.1.1 only after what `write_v4` writes
                // first, where a new QoS 2 message could take one's id; none is pending then,
                // as `config` refuses QoS 2 with a session that outlives the connection, and
                // the status message is QoS 1). A resumed session still holds each of those
                // QoS 2 packet ids until its PUBREL (MQTT requires resending it); without one
                // the broker refuses the id when it is used again (Mosquitto, MQTT 5: PUBREC
                // with a reason code, so packs answered onRemoteError) or takes the new message
                // for a duplicate. The PUBCOMP that follows names a pkid the tracker no longer
                // waits on (the packs were failed at the loss) and is ignored.
                self.pending.retain(|r| matches!(r, Request::PubRel(_)));
                let unreported = self.state.events.drain(..).map(|e| $observe(&e)).collect();
                // rumqttc's packet ids (MQTT 5's; with MQTT 3.1.1 the tracker gives them and
                // counts on) start again from 1, and any stale collision goes. rumqttc counts
                // ids on from the last connection's, and wraps them only where they meet the
                // new broker's window: after a larger one (or none), MQTT 5 ids ran past a
                // smaller receive maximum to the end of rumqttc's table, where the publish was
                // dropped without an event and the connection failed, at every reconnect.
                self.state = $fresh_state(&self.$field);
                (drained, unreported)
            }
        }
    };
}

event_loop!(
    rumqttc::EventLoop,
    rumqttc::MqttOptions,
    mqtt_options,
    rumqttc::Request,
    rumqttc::ConnectionError,
    rumqttc::StateError,
    rumqttc::mqttbytes::Error,
    observe_v4,
    says_nothing,
    no_explanation,
    failure_v4,
    write_v4,
    fresh_state_v4,
    reason_v4,
    BytesError::PayloadSizeLimitExceeded(bytes) => bytes,
    set_clean_session,
    {
        const NUDGES: bool = true;
        const NO_REASON_CODES: bool = true;

        async fn nudge(&mut self) -> Result<(), Failure> {
            nudge_v4(self).await
        }
    }
);
event_loop!(
    rumqttc::v5::EventLoop,
    rumqttc::v5::MqttOptions,
    options,
    rumqttc::v5::Request,
    rumqttc::v5::ConnectionError,
    rumqttc::v5::StateError,
    rumqttc::v5::mqttbytes::Error,
    observe_v5,
    disconnect_reason,
    explanation_v5,
    failure_v5,
    write_v5,
    fresh_state_v5,
    reason_v5,
    BytesError::PayloadSizeLimitExceeded { pkt_size, .. } => pkt_size,
    set_clean_start,
    {
        // A Server Keep Alive of 0 means none, which rumqttc takes for a period of 0: it
        // pinged without pause and failed the connection for the unanswered ping, at every
        // connect. Pinging at the configured pace is allowed, and harmless.
        fn settle(&mut self, configured: &rumqttc::v5::MqttOptions) {
            if self.options.keep_alive().is_zero() {
                self.options.set_keep_alive(configured.keep_alive());
            }
        }

        fn free_refused_slots(&mut self) -> bool {
            recount_in_flight(&mut self.state)
        }

        fn take_unflushed(&mut self) -> Vec<Observed> {
            self.state.events.drain(..).map(|e| observe_v5(&e)).collect()
        }
    }
);

/// Rebuilds rumqttc's in-flight count through its public state: `clean` takes out every
/// publish awaiting PUBACK or PUBREC and every PUBREL awaiting PUBCOMP and zeroes the count,
/// and each goes back into its own slot (its packet id kept), counted once. The packets that
/// returns are not written, and the events it queues are dropped: nothing reaches the broker
/// or the tracker (rumqttc's own DEBUG lines still name each, as if sent). `clean` also
/// forgets an unanswered ping, which is put back, and the ids of QoS 2 publishes the broker
/// sent us, which never come: we subscribe to nothing.
fn recount_in_flight(state: &mut rumqttc::v5::MqttState) -> bool {
    let (queued, ping, collision_pings) = (
        state.events.len(),
        state.await_pingresp,
        state.collision_ping_count,
    );
    let restored = state
        .clean()
        .into_iter()
        .all(|request| state.handle_outgoing_packet(request).is_ok());
    state.events.truncate(queued);
    state.await_pingresp = ping;
    state.collision_ping_count = collision_pings;
    restored
}

/// Its variants are numbered as MQTT 3.1.1 numbers the return codes.
fn reason_v4(code: rumqttc::ConnectReturnCode) -> Reason {
    Reason::V4(code as u8)
}

/// rumqttc names MQTT 5's codes without their numbers. It never reads the first three (MQTT
/// 3.1.1's); they are said as MQTT 5's codes of the same meaning.
fn reason_v5(code: rumqttc::v5::mqttbytes::v5::ConnectReturnCode) -> Reason {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode::*;
    Reason::V5(match code {
        Success => 0x00,
        UnspecifiedError => 0x80,
        MalformedPacket => 0x81,
        ProtocolError => 0x82,
        ImplementationSpecificError => 0x83,
        UnsupportedProtocolVersion | RefusedProtocolVersion => 0x84,
        ClientIdentifierNotValid | BadClientId => 0x85,
        BadUserNamePassword => 0x86,
        NotAuthorized => 0x87,
        ServerUnavailable | ServiceUnavailable => 0x88,
        ServerBusy => 0x89,
        Banned => 0x8A,
        BadAuthenticationMethod => 0x8C,
        TopicNameInvalid => 0x90,
        PacketTooLarge => 0x95,
        QuotaExceeded => 0x97,
        PayloadFormatInvalid => 0x99,
        RetainNotSupported => 0x9A,
        QoSNotSupported => 0x9B,
        UseAnotherServer => 0x9C,
        ServerMoved => 0x9D,
        ConnectionRateExceeded => 0x9F,
    })
}

/// A PUBACK's or PUBREC's refusal; none for a message the broker took.
macro_rules! refused_publish {
    ($reason:expr, $kind:ident) => {{
        use $kind::*;
        match $reason {
            Success | NoMatchingSubscribers => None,
            UnspecifiedError => Some(Reason::V5(0x80)),
            ImplementationSpecificError => Some(Reason::V5(0x83)),
            NotAuthorized => Some(Reason::V5(0x87)),
            TopicNameInvalid => Some(Reason::V5(0x90)),
            PacketIdentifierInUse => Some(Reason::V5(0x91)),
            QuotaExceeded => Some(Reason::V5(0x97)),
            PayloadFormatInvalid => Some(Reason::V5(0x99)),
        }
    }};
}

fn fresh_state_v4(options: &rumqttc::MqttOptions) -> rumqttc::MqttState {
    rumqttc::MqttState::new(options.inflight(), options.manual_acks())
}

/// As rumqttc's `EventLoop::new` makes it.
fn fresh_state_v5(options: &rumqttc::v5::MqttOptions) -> rumqttc::v5::MqttState {
    let limit = options
        .get_outgoing_inflight_upper_limit()
        .unwrap_or(u16::MAX);
    rumqttc::v5::MqttState::new(limit, options.manual_acks())
}

/// MQTT 3.1.1 has no reason for a close.
fn says_nothing(_: &rumqttc::ConnectionError) -> Said {
    Said::Nothing
}

/// rumqttc's MQTT 3.1.1 errors say what they are.
fn no_explanation(_: &rumqttc::ConnectionError) -> Option<String> {
    None
}

/// Mosquitto answers a message over its `message_size_limit` with a PUBACK or PUBREC of
/// reason 0x95, which MQTT 5 allows in neither: rumqttc 0.25 fails to read it (taking every
/// reason code it does not know for a CONNACK's) and drops the connection.
fn acked_too_large(e: &rumqttc::v5::ConnectionError) -> bool {
    matches!(
        e,
        rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::Deserialization(
            rumqttc::v5::mqttbytes::Error::InvalidConnectReturnCode(0x95),
        ))
    )
}

/// A packet without a body, other than a ping, which MQTT 5 allows for a DISCONNECT of reason
/// 0x00 (normal disconnection) with no properties: rumqttc 0.25 fails to read it (it takes a
/// bodiless packet for a ping or for a fault) and drops the connection. Any other packet so is
/// malformed or unasked (an AUTH); the broker's close is the likely one.
fn bare_disconnect(e: &rumqttc::v5::ConnectionError) -> bool {
    matches!(
        e,
        rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::Deserialization(
            rumqttc::v5::mqttbytes::Error::PayloadRequired,
        ))
    )
}

/// What comes before the reason string a broker put in its DISCONNECT, in quotes, escaped: the
/// part of a failure's text that tells it from no other ([`crate::connection`]'s failure key).
pub(crate) const REASON_SAID: &str = ", saying \"";

/// What an MQTT 5 failure is, where rumqttc's words name something else.
fn explanation_v5(e: &rumqttc::v5::ConnectionError) -> Option<String> {
    if let rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::ServerDisconnect {
        reason_code,
        reason_string,
    }) = e
    {
        // rumqttc's own text shows the reason as Rust writes an `Option`.
        let said = reason_string.as_deref().map_or(String::new(), |s| {
            format!("{REASON_SAID}{}\"", crate::log_budget::shown_in_log(s))
        });
        return Some(format!(
            "the broker closed the connection with a DISCONNECT of {}{said}",
            Reason::V5(*reason_code as u8)
        ));
    }
    if bare_disconnect(e) {
        return Some(
            "the broker sent a packet without a body (not a ping), which the MQTT client cannot \
             read: either a DISCONNECT without a reason code (MQTT 5 allows it for reason 0x00, \
             normal disconnection) or a malformed packet"
                .to_string(),
        );
    }
    acked_too_large(e).then(|| {
        "the broker acknowledged a message with reason 0x95, packet too large, which MQTT 5 \
         does not allow there and the MQTT client cannot read (Mosquitto answers so at its \
         message_size_limit; its max_packet_size is announced, and honoured without a close)"
            .to_string()
    })
}

/// What an MQTT 5 DISCONNECT said, if it was one.
fn disconnect_reason(e: &rumqttc::v5::ConnectionError) -> Said {
    use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
    match e {
        rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::ServerDisconnect {
            reason_code,
            ..
        }) => match reason_code {
            DisconnectReasonCode::SessionTakenOver => Said::TakenOver,
            DisconnectReasonCode::PacketTooLarge => Said::TooLarge,
            DisconnectReasonCode::NotAuthorized | DisconnectReasonCode::TopicNameInvalid => {
                Said::Refused
            }
            _ => Said::Other,
        },
        // Taken for the close it causes, at the message too large.
        e if acked_too_large(e) => Said::TooLarge,
        // Most likely a reason said (0x00): no sign of a takeover, nor of a topic refused; a
        // close at once is left for the failover brokers, as for a busy broker's.
        e if bare_disconnect(e) => Said::Other,
        _ => Said::Nothing,
    }
}

fn observe_v4(event: &rumqttc::Event) -> Observed {
    use rumqttc::{Event, Outgoing, Packet};
    match event {
        Event::Incoming(Packet::ConnAck(c)) => Observed::Connected {
            receive_maximum: None,
            session_present: c.session_present,
            grants: Grants::default(),
        },
        Event::Outgoing(Outgoing::Publish(pkid)) => Observed::Written(*pkid),
        Event::Outgoing(Outgoing::AwaitAck(_)) => Observed::HeldBack,
        Event::Incoming(Packet::PubAck(a)) => Observed::Acked {
            pkid: a.pkid,
            refused: None,
        },
        Event::Incoming(Packet::PubRec(r)) => Observed::Received {
            pkid: r.pkid,
            refused: None,
        },
        Event::Incoming(Packet::PubComp(c)) => Observed::Completed {
            pkid: c.pkid,
            refused: None,
        },
        Event::Incoming(Packet::PingResp) => Observed::Pong,
        Event::Incoming(Packet::Publish(p)) => Observed::Unasked {
            topic: p.topic.clone(),
        },
        Event::Outgoing(Outgoing::Disconnect) => Observed::Disconnected,
        _ => Observed::Other,
    }
}

pub(crate) fn observe_v5(event: &rumqttc::v5::Event) -> Observed {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    use rumqttc::Outgoing;
    match event {
        Event::Incoming(Packet::ConnAck(c)) => Observed::Connected {
            receive_maximum: c.properties.as_ref().and_then(|p| p.receive_max),
            session_present: c.session_present,
            grants: Grants::of_v5(c.properties.as_ref()),
        },
        Event::Outgoing(Outgoing::Publish(pkid)) => Observed::Written(*pkid),
        Event::Outgoing(Outgoing::AwaitAck(_)) => Observed::HeldBack,
        Event::Incoming(Packet::PubAck(a)) => Observed::Acked {
            pkid: a.pkid,
            refused: refused_publish!(a.reason, PubAckReason),
        },
        Event::Incoming(Packet::PubRec(r)) => Observed::Received {
            pkid: r.pkid,
            refused: refused_publish!(r.reason, PubRecReason),
        },
        // rumqttc keeps the in-flight slot of a refused PUBCOMP, as of a refused PUBREC
        // (`EventLoop::free_refused_slots`).
        Event::Incoming(Packet::PubComp(c)) => Observed::Completed {
            pkid: c.pkid,
            refused: match c.reason {
                PubCompReason::Success => None,
                PubCompReason::PacketIdentifierNotFound => Some(Reason::V5(0x92)),
            },
        },
        Event::Incoming(Packet::PingResp(_)) => Observed::Pong,
        Event::Incoming(Packet::Publish(p)) => Observed::Unasked {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
        },
        Event::Outgoing(Outgoing::Disconnect) => Observed::Disconnected,
        _ => Observed::Other,
    }
}

/// Publishes handed over by the tracker and not written yet, in order.
/// With the packet id the tracker gave each (0 at QoS 0).
pub(crate) type Ready = VecDeque<(Message, PublishOptions, u16)>;

/// The MQTT 3.1.1 client: publishes wait in `ready` until the connection's driver writes them
/// all with one flush ([`write_v4`]); rumqttc's own loop flushes after each, a `writev` per
/// message (about 1 µs of CPU on loopback, a third of ours per record at QoS 0).
struct Batching {
    client: rumqttc::AsyncClient,
    ready: Ready,
}

impl Outbox for Batching {
    fn try_publish(
        &mut self,
        message: Message,
        how: &PublishOptions,
        id: u16,
    ) -> Result<(), Unqueued> {
        self.ready.push_back((message, *how, id));
        Ok(())
    }

    fn takes_packet_ids(&self) -> bool {
        true
    }
}

impl Client for Batching {
    fn disconnect(&mut self) {
        let _ = self.client.try_disconnect();
    }

    fn take_ready(&mut self) -> Ready {
        std::mem::take(&mut self.ready)
    }

    fn put_back(&mut self, mut rest: Ready) {
        rest.append(&mut self.ready);
        self.ready = rest;
    }

    fn ready_len(&self) -> usize {
        self.ready.len()
    }

    fn retain_ready(&mut self, keep: &[bool]) {
        let mut keep = keep.iter();
        self.ready.retain(|_| keep.next().copied().unwrap_or(true));
    }
}

fn publish_v4(message: Message, how: &PublishOptions, id: u16) -> rumqttc::Publish {
    let qos = match how.qos {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    };
    let mut publish = rumqttc::Publish::new(&*message.topic, qos, message.payload);
    publish.retain = how.retain;
    publish.pkid = id;
    publish
}

/// MQTT 3.1.1: each ready publish goes through rumqttc's state (in-flight slot under the
/// packet id the tracker gave, the `Outgoing` event the tracker reads on the next `poll`) and
/// into the socket's buffer, then one flush for them all. rumqttc's event loop keeps its
/// socket in a public field.
async fn write_v4(eventloop: &mut rumqttc::EventLoop, ready: &mut Ready) -> Result<bool, Failure> {
    let timeout = std::time::Duration::from_secs(eventloop.network_options.connection_timeout());
    let Some(network) = eventloop.network.as_mut() else {
        return Ok(false);
    };
    let state = &mut eventloop.state;
    // One for the batch's writes: nothing allocated per message.
    let woke = Arc::default();
    // Each write bounded by its progress, not the batch: a window of large messages can take
    // longer than the bound to cross a slow link to a broker that reads all along. The batch
    // stops taking more once it has written for that long (seen after a write that waited, or
    // within 16 that did not), and goes on after the driver's next turn.
    let started = tokio::time::Instant::now();
    let written: Result<bool, rumqttc::ConnectionError> = async {
        // The clock is read after a write that waited, else every few messages: most only
        // fill the buffer.
        let mut waited = false;
        // A write waited for room and then went: the way to the broker takes what it is sent.
        let mut taken_after_wait = false;
        let mut unyielded = 0usize;
        for taken in 1usize.. {
            if state.collision.is_some()
                || ((waited || taken % CLOCK_EVERY == 0) && started.elapsed() >= timeout)
            {
                break;
            }
            let Some((message, how, id)) = ready.pop_front() else {
                break;
            };
            // The writes spend no cooperative budget (see `within`), which made the batch let
            // the runtime's other tasks run after some 128 socket writes of `Framed`'s 8 KiB:
            // now after as many bytes.
            unyielded += message.payload.len() + message.topic.len();
            if unyielded >= YIELD_BYTES {
                unyielded = 0;
                tokio::task::yield_now().await;
            }
            let request = rumqttc::Request::Publish(publish_v4(message, &how, id));
            waited = match state.handle_outgoing_packet(request)? {
                Some(packet) => {
                    within(timeout, &woke, async { Ok(network.write(packet).await?) }).await?
                }
                None => false,
            };
            taken_after_wait |= waited;
        }
        taken_after_wait |= within(timeout, &woke, async { Ok(network.flush().await?) }).await?;
        // So it lives, as an answer from the broker shows (see `poll`). A ping written behind
        // a backlog is answered only once the broker has read it, and rumqttc fails the
        // connection at its next keep-alive tick while it waits: a QoS 0 flood (which nothing
        // else answers) through a link slower than what the buffers on the way hold (the
        // socket's, a proxy's) in a keep-alive period lost its connection at every second
        // tick, and the messages they held with it.
        if taken_after_wait {
            state.await_pingresp = false;
        }
        Ok(state.collision.is_none() && !ready.is_empty())
    }
    .await;
    written.map_err(|e| {
        eventloop.clean();
        failure_v4(e)
    })
}

/// MQTT 3.1.1: a PINGREQ written straight to the socket, as publishes are, and left out of
/// rumqttc's state; its PINGRESP only clears a keep-alive ping's wait, which any answer
/// from the broker may.
async fn nudge_v4(eventloop: &mut rumqttc::EventLoop) -> Result<(), Failure> {
    let timeout = std::time::Duration::from_secs(eventloop.network_options.connection_timeout());
    let Some(network) = eventloop.network.as_mut() else {
        return Ok(());
    };
    let written = within(timeout, &Arc::default(), async {
        network.write(rumqttc::Packet::PingReq).await?;
        Ok(network.flush().await?)
    })
    .await
    .map(drop);
    written.map_err(|e| {
        eventloop.clean();
        failure_v4(e)
    })
}

/// MQTT 3.1.1: a write to the socket, failed once it has gone `bound` without progress. A
/// broker that stops reading fills the socket's buffers, and any write can wait from then on,
/// not only the final flush; the driver runs nothing else meanwhile (keep-alive, stall checks,
/// shutdown), so without the bound such a broker kept the connection, and every pack after
/// it, forever. Progress, not completion: tokio-util's `Framed` flushes a whole buffered
/// message at once, and a bound on that failed one large message (16 MiB) to a broker that
/// reads all along but slowly, and the shared connection with it, at every attempt.
///
/// rumqttc keeps the socket inside its `Network`, where its bytes cannot be counted; the
/// write being woken stands for them: the socket wakes it when it can take bytes again,
/// which it never does for a broker that stopped reading. `Ok(true)`: the write had to wait,
/// for room in the socket: it is polled outside tokio's cooperative budget, which would make
/// it wait with room to spare (after some 128 socket operations in one turn).
async fn within(
    bound: std::time::Duration,
    woke: &Arc<Woke>,
    write: impl Future<Output = Result<(), rumqttc::ConnectionError>>,
) -> Result<bool, rumqttc::ConnectionError> {
    use std::task::{Context, Poll, Waker};
    let mut write = std::pin::pin!(tokio::task::unconstrained(write));
    // Set when the write first waits: most only fill the buffer, and a timer for each cost
    // a clock read per message.
    let mut deadline = std::pin::pin!(None::<tokio::time::Sleep>);
    // A wake left over from the batch's last write is no progress of this one.
    woke.woken
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let waker = Waker::from(Arc::clone(woke));
    std::future::poll_fn(|cx| {
        let progressed = woke.take(cx.waker());
        if let Poll::Ready(done) = write.as_mut().poll(&mut Context::from_waker(&waker)) {
            return Poll::Ready(done.map(|()| deadline.is_some()));
        }
        match deadline.as_mut().as_pin_mut() {
            None => deadline.set(Some(tokio::time::sleep(bound))),
            Some(deadline) if progressed => deadline.reset(tokio::time::Instant::now() + bound),
            Some(_) => {}
        }
        match deadline
            .as_mut()
            .as_pin_mut()
            .map(|deadline| deadline.poll(cx))
        {
            Some(Poll::Ready(())) => Poll::Ready(Err(rumqttc::ConnectionError::FlushTimeout)),
            _ => Poll::Pending,
        }
    })
    .await
}

/// The waker a bounded write ([`within`]) runs with: notes that the write was woken, then
/// wakes the task.
#[derive(Default)]
struct Woke {
    woken: std::sync::atomic::AtomicBool,
    task: std::sync::Mutex<Option<std::task::Waker>>,
}

impl Woke {
    /// Whether the write was woken since the last call; `task` is the one to wake next.
    fn take(&self, task: &std::task::Waker) -> bool {
        let mut current = crate::supervise::lock(&self.task);
        if !current.as_ref().is_some_and(|w| w.will_wake(task)) {
            *current = Some(task.clone());
        }
        self.woken.swap(false, std::sync::atomic::Ordering::AcqRel)
    }
}

impl std::task::Wake for Woke {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, std::sync::atomic::Ordering::Release);
        if let Some(task) = crate::supervise::lock(&self.task).as_ref() {
            task.wake_by_ref();
        }
    }
}

/// MQTT 5: rumqttc keeps this event loop's socket private, so publishes go through its
/// channel ([`Outbox`] on its client) and nothing is ever ready here.
async fn write_v5(_: &mut rumqttc::v5::EventLoop, _: &mut Ready) -> Result<bool, Failure> {
    Ok(false)
}

/// The MQTT 5 client, and what the broker said it takes. rumqttc refuses a larger publish
/// only when it writes it, and the broker one past its Maximum QoS or Retain Available when
/// it reads it: both by failing the connection every appender shares.
struct Limited {
    client: rumqttc::v5::AsyncClient,
    grants: Grants,
}

/// An MQTT 5 PUBLISH's size at most: fixed header, topic, packet id, the properties we set
/// (content type, message expiry, user properties, each with its identifier and lengths)
/// and the payload. Above the exact size by a few bytes at most.
fn v5_publish_size(message: &Message, how: &PublishOptions) -> usize {
    let labels: usize = message
        .labels
        .iter()
        .map(|(k, v)| 5 + k.len() + v.len())
        .sum();
    let properties = 4 + 3 + how.content_type.len() + 5 + labels;
    5 + 2 + message.topic.len() + 2 + properties + message.payload.len()
}

impl Outbox for Limited {
    fn packet_size(&self, message: &Message, how: &PublishOptions) -> usize {
        v5_publish_size(message, how)
    }

    fn refusal(&self, size: usize, how: &PublishOptions) -> Option<Unqueued> {
        self.grants.refusal(size, how)
    }

    fn announces_limit(&self) -> bool {
        self.grants.max_packet_size.is_some()
    }

    fn stops_at_full_window(&self) -> bool {
        true
    }

    fn writes_each_alone(&self) -> bool {
        true
    }

    /// rumqttc's MQTT 5 client numbers publishes itself, in turn: `id` is the one it gives (the
    /// tracker follows its numbering).
    fn try_publish(
        &mut self,
        message: Message,
        how: &PublishOptions,
        _id: u16,
    ) -> Result<(), Unqueued> {
        let properties = PublishProperties {
            content_type: Some(how.content_type.to_string()),
            message_expiry_interval: how.message_expiry,
            user_properties: message.labels,
            ..Default::default()
        };
        let qos = match how.qos {
            Qos::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
            Qos::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            Qos::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
        };
        self.client
            .try_publish_with_properties(
                &*message.topic,
                qos,
                how.retain,
                message.payload,
                properties,
            )
            .map_err(|_| Unqueued::Full)
    }
}

/// One MQTT message of a pack.
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Vec<u8>,
    /// MQTT 5 user properties (empty with MQTT 3.1.1).
    pub labels: Vec<(String, String)>,
}

impl Message {
    /// The bytes it holds while it waits: payload, user properties (the Kaa header, about 600
    /// bytes) and the topic, which rumqttc copies into each publish it keeps until the ack. A
    /// topic of its own (a record's fields can make one long) is held once more, by the tracker
    /// for a refusal to name; a fixed topic is one allocation every message shares.
    pub fn bytes(&self) -> usize {
        let labels: usize = self.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        let own = if Arc::strong_count(&self.topic) == 1 {
            self.topic.len()
        } else {
            0
        };
        self.payload.len() + self.topic.len() + own + labels
    }
}

/// How an appender's messages are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOptions {
    pub qos: Qos,
    pub retain: bool,
    /// MQTT 5 content type.
    pub content_type: &'static str,
    /// MQTT 5 message expiry, in seconds.
    pub message_expiry: Option<u32>,
    /// How long a message may wait to be written and acknowledged before the connection
    /// counts as stalled: its appender's deliveryTimeoutSeconds, each appender's own on a
    /// connection several share (`None`: never).
    pub patience: Option<Duration>,
    /// Whose records the messages are, by which the topics the broker refuses are counted
    /// (`refused_topics`).
    pub origin: Origin,
}

/// Whose records messages are: the appender that made their topics, and the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Origin {
    /// The appender's number in this process; 0: the connection's own messages (the status
    /// message).
    pub appender: u64,
    /// A hash of the endpoint's key.
    pub endpoint: u64,
}

impl Origin {
    /// Whether both are one endpoint's records, through whichever appenders (Kaa hands every
    /// pack to each); the connection's own messages are no endpoint's.
    pub fn same_endpoint(self, other: Origin) -> bool {
        self.appender != 0 && other.appender != 0 && self.endpoint == other.endpoint
    }
}

/// Where the tracker hands publishes: an MQTT client, or a recorder in tests.
pub trait Outbox {
    /// Queues one publish without blocking; `id` is the packet id the tracker gives it (0 at
    /// QoS 0).
    fn try_publish(
        &mut self,
        message: Message,
        how: &PublishOptions,
        id: u16,
    ) -> Result<(), Unqueued>;

    /// Whether the client writes each publish with the packet id given with it, so that the
    /// tracker can pass over ids still taken; otherwise it numbers them in turn, as rumqttc's
    /// MQTT 5 client does (see the tracker's `next_id`).
    fn takes_packet_ids(&self) -> bool {
        false
    }

    /// The size of the message's PUBLISH packet, which a broker holds to its packet limit.
    fn packet_size(&self, message: &Message, how: &PublishOptions) -> usize {
        v4_publish_size(message, how)
    }

    /// Why the broker would close the connection over a message of `size` bytes
    /// ([`packet_size`](Self::packet_size)), as the connection stands: the tracker asks before
    /// it hands a message over, for every message of a pack before any of it goes out.
    fn refusal(&self, _size: usize, _how: &PublishOptions) -> Option<Unqueued> {
        None
    }

    /// Whether the broker of the connection said the largest packet it takes (MQTT 5's
    /// Maximum Packet Size): [`refusal`](Self::refusal) then holds messages to it, and its
    /// closes tell nothing of sizes (`packet_limit`).
    fn announces_limit(&self) -> bool {
        false
    }

    /// Whether the client takes nothing more, QoS 0 included, while QoS 1 and 2 messages fill
    /// its in-flight window (rumqttc's MQTT 5 loop reads its channel only then): QoS 0 waits
    /// for that window too, best where the tracker knows that is what holds it.
    fn stops_at_full_window(&self) -> bool {
        false
    }

    /// Whether the client writes each publish in a socket write of its own, and cannot ping
    /// the broker between (rumqttc's MQTT 5 loop, which keeps its socket private): QoS 1
    /// messages then take each slot an ack frees, as nothing is saved by waiting for a quarter
    /// of the window (the tracker's `acked_window_full`).
    fn writes_each_alone(&self) -> bool {
        false
    }
}

/// An MQTT 3.1.1 PUBLISH's size: fixed header (with the remaining length's 1 to 4 bytes),
/// topic, packet id (QoS 1 and 2) and payload.
fn v4_publish_size(message: &Message, how: &PublishOptions) -> usize {
    let pkid = if how.qos == Qos::AtMostOnce { 0 } else { 2 };
    let remaining = 2 + message.topic.len() + pkid + message.payload.len();
    let length_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + length_bytes + remaining
}

/// Why a publish was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unqueued {
    /// The client's channel is full (or gone).
    Full,
    /// Its packet would be larger than the broker takes.
    TooLarge { size: usize, limit: u32 },
    /// The broker said it takes no such publish (why, for the log).
    Unsupported(String),
}

/// An MQTT client of either version.
pub(crate) trait Client: Outbox + Send {
    fn disconnect(&mut self);

    /// The publishes waiting for the driver to write them ([`EventLoop::write`]).
    fn take_ready(&mut self) -> Ready {
        Ready::new()
    }

    /// Puts back, before any handed over since, what `write` did not take.
    fn put_back(&mut self, _rest: Ready) {}

    /// How many publishes wait for the driver (it is then to be woken): the last of those the
    /// tracker handed over, in its order. None where rumqttc's channel holds them.
    fn ready_len(&self) -> usize {
        0
    }

    /// Drops the publishes waiting for the driver whose `keep` is false, `keep` in their order.
    fn retain_ready(&mut self, _keep: &[bool]) {}

    /// What the broker of a new connection said it takes.
    fn follow(&mut self, _grants: Grants) {}
}

impl Client for Limited {
    fn disconnect(&mut self) {
        let _ = self.client.try_disconnect();
    }

    fn follow(&mut self, grants: Grants) {
        self.grants = grants;
    }
}

/// A client's event loop with the brokers it tries (options and `host:port` labels, in
/// order), not running yet: the connection starts it once its own state, which holds the
/// client, exists.
pub(crate) enum Pending {
    V4(Box<rumqttc::EventLoop>, Vec<(rumqttc::MqttOptions, String)>),
    V5(
        Box<rumqttc::v5::EventLoop>,
        Vec<(rumqttc::v5::MqttOptions, String)>,
    ),
}

/// What runs an event loop of either version: the connection's driver.
pub(crate) trait Start {
    fn start<E: EventLoop>(self, eventloop: E, brokers: Vec<(E::Options, String)>);
}

impl Pending {
    pub(crate) fn start(self, with: impl Start) {
        match self {
            Pending::V4(eventloop, brokers) => with.start(*eventloop, brokers),
            Pending::V5(eventloop, brokers) => with.start(*eventloop, brokers),
        }
    }
}

/// Requests the client's channel holds: as good as unbounded (it allocates as it fills). The
/// tracker bounds what waits there by each appender's maxPendingRecords; a bound of the
/// channel's own, set by whichever appender opened the shared connection, refused the packs
/// of the others, and the status message. Half of `usize`, as the channel adds to it.
const REQUESTS: usize = usize::MAX / 2;

/// The client for `broker`, connecting as `client_id`, and its event loop; `label` names the
/// connection in log lines.
pub(crate) fn open(
    broker: &BrokerConfig,
    client_id: &str,
    label: &str,
) -> (Box<dyn Client>, Pending, Option<Arc<BrokerCertificates>>) {
    let mut certificates = None;
    let tls = broker.tls.as_ref().map(|tls| {
        if !tls.verify {
            log::warn!(
                "TLS to {label} does not verify the broker's certificate (verifySslCert is off): \
                 the connection is encrypted but anyone on the path can impersonate the broker"
            );
        }
        let config = match tls.client_config(label) {
            Ok((config, watch)) => {
                certificates = watch;
                config
            }
            Err((field, why)) => {
                // Checked at init; should it fail now, connect to nothing rather than in clear.
                log::error!("TLS to {label} cannot be set up ({field} {why}); not connecting");
                TlsSettings::refusing_config()
            }
        };
        TlsConfiguration::Rustls(config)
    });
    let websocket = matches!(broker.transport, config::Transport::WebSocket { .. });
    let transport = match (tls, websocket) {
        (None, false) => None,
        (Some(tls), false) => Some(Transport::Tls(tls)),
        (None, true) => Some(Transport::Ws),
        // rumqttc takes the TLS configuration, and async-tungstenite upgrades to TLS
        // because the URL says wss (`broker_url`): both, or it would speak in clear.
        (Some(tls), true) => Some(Transport::Wss(tls)),
    };
    let proxy = broker.proxy.as_ref().map(rumqttc_proxy);
    let will = status::payload(broker.status_format, Status::LastWill, SystemTime::now());
    // `host:port` first, then the failover brokers.
    let addresses: Vec<(String, u16)> = std::iter::once((broker.host.clone(), broker.port))
        .chain(broker.failover.iter().cloned())
        .collect();
    let labels: Vec<String> = addresses
        .iter()
        .map(|(h, p)| address_label(broker, h, *p))
        .collect();
    let password = broker.password.clone().unwrap_or_default();
    match broker.version {
        MqttVersion::V3_1_1 => {
            let options: Vec<_> = addresses
                .iter()
                .map(|(host, port)| {
                    let mut o = rumqttc::MqttOptions::new(
                        client_id,
                        broker_url(broker, host, *port),
                        *port,
                    );
                    o.set_keep_alive(broker.keep_alive)
                        .set_inflight(client_window(broker))
                        .set_clean_session(broker.clean_session)
                        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_PACKET_SIZE);
                    if let Some(user) = &broker.username {
                        o.set_credentials(user, password.clone());
                    }
                    if let Some(t) = &transport {
                        o.set_transport(t.clone());
                    }
                    if let Some(p) = &proxy {
                        o.set_proxy(p.clone());
                    }
                    if let Some(topic) = &broker.status_topic {
                        o.set_last_will(rumqttc::LastWill::new(
                            topic,
                            will.clone(),
                            rumqttc::QoS::AtLeastOnce,
                            true,
                        ));
                    }
                    o
                })
                .collect();
            let (client, mut eventloop) = rumqttc::AsyncClient::new(options[0].clone(), REQUESTS);
            eventloop.set_network_options(network_options(broker));
            let brokers = options.into_iter().zip(labels).collect();
            let client = Batching {
                client,
                ready: Ready::new(),
            };
            (
                Box::new(client),
                Pending::V4(Box::new(eventloop), brokers),
                certificates,
            )
        }
        MqttVersion::V5 => {
            let options: Vec<_> = addresses
                .iter()
                .map(|(host, port)| {
                    let mut o = rumqttc::v5::MqttOptions::new(
                        client_id,
                        broker_url(broker, host, *port),
                        *port,
                    );
                    o.set_keep_alive(broker.keep_alive)
                        .set_outgoing_inflight_upper_limit(client_window(broker))
                        .set_clean_start(broker.clean_session)
                        .set_max_packet_size(Some(MAX_INCOMING_PACKET as u32))
                        .set_connection_timeout(broker.connect_timeout.as_secs())
                        .set_session_expiry_interval(broker.session_expiry)
                        .set_network_options(network_options(broker));
                    if let Some(user) = &broker.username {
                        o.set_credentials(user, password.clone());
                    }
                    if let Some(t) = &transport {
                        o.set_transport(t.clone());
                    }
                    if let Some(p) = &proxy {
                        o.set_proxy(p.clone());
                    }
                    if let Some(topic) = &broker.status_topic {
                        use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties};
                        // The content type of the status messages it stands in for.
                        let properties = LastWillProperties {
                            delay_interval: None,
                            payload_format_indicator: None,
                            message_expiry_interval: None,
                            content_type: Some(broker.status_format.content_type().into()),
                            response_topic: None,
                            correlation_data: None,
                            user_properties: Vec::new(),
                        };
                        o.set_last_will(LastWill::new(
                            topic,
                            will.clone(),
                            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                            true,
                            Some(properties),
                        ));
                    }
                    o
                })
                .collect();
            let (client, eventloop) = rumqttc::v5::AsyncClient::new(options[0].clone(), REQUESTS);
            let brokers = options.into_iter().zip(labels).collect();
            let client = Limited {
                client,
                grants: Grants::default(),
            };
            (
                Box::new(client),
                Pending::V5(Box::new(eventloop), brokers),
                certificates,
            )
        }
    }
}

/// The socket's options. Nagle's algorithm off: the driver already gathers what is ready into
/// one write, and with it on, a pack's later writes waited for the broker's delayed TCP ack
/// (the answer to a pack at QoS 1 took as long as the gap to the next pack, up to 40 ms).
/// The send buffer fixed at [`SEND_BUFFER`].
fn network_options(broker: &BrokerConfig) -> rumqttc::NetworkOptions {
    let mut o = rumqttc::NetworkOptions::new();
    o.set_connection_timeout(broker.connect_timeout.as_secs());
    o.set_tcp_nodelay(true);
    o.set_tcp_send_buffer_size(SEND_BUFFER);
    o
}

/// What rumqttc takes as the broker's address: the host, or for WebSocket the URL
/// (`ws://host:port/path`, `wss://` with TLS; an IPv6 address in brackets).
fn broker_url(broker: &BrokerConfig, host: &str, port: u16) -> String {
    match &broker.transport {
        config::Transport::Tcp => host.to_string(),
        config::Transport::WebSocket { path } => {
            let scheme = if broker.tls.is_some() { "wss" } else { "ws" };
            if host.contains(':') {
                format!("{scheme}://[{host}]:{port}{path}")
            } else {
                format!("{scheme}://{host}:{port}{path}")
            }
        }
    }
}

/// A broker as log lines name it: `host:port`, or its WebSocket URL; with the proxy's address.
pub(crate) fn address_label(broker: &BrokerConfig, host: &str, port: u16) -> String {
    let address = match broker.transport {
        config::Transport::Tcp => format!("{host}:{port}"),
        config::Transport::WebSocket { .. } => broker_url(broker, host, port),
    };
    match &broker.proxy {
        // Never the credentials.
        Some(p) => format!("{address} (via proxy {}:{})", p.host, p.port),
        None => address,
    }
}

/// rumqttc's proxy settings (HTTP CONNECT, basic authentication when configured).
fn rumqttc_proxy(p: &ProxySettings) -> rumqttc::Proxy {
    rumqttc::Proxy {
        ty: rumqttc::ProxyType::Http,
        auth: match &p.credentials {
            Some((username, password)) => rumqttc::ProxyAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            None => rumqttc::ProxyAuth::None,
        },
        addr: p.host.clone(),
        port: p.port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write held by tokio's cooperative budget (spent by what ran before it in the same
    /// turn, as some 128 socket operations would) waited for no room, and says nothing of the
    /// broker: rumqttc's wait for a ping's answer stays.
    #[test]
    fn a_write_held_by_tokios_budget_does_not_end_the_wait_for_a_pong() {
        use crate::connection::tests::{read_packet, scripted_broker};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (port, broker) = scripted_broker(|listener| {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().expect("accept");
            read_packet(&mut s).expect("CONNECT");
            s.write_all(&[0x20, 0x02, 0x00, 0x00]).expect("CONNACK");
            let mut sink = [0u8; 1 << 12];
            while s.read(&mut sink).is_ok_and(|n| n > 0) {}
        });
        let mut options = rumqttc::MqttOptions::new("budget-test", "127.0.0.1", port);
        options.set_keep_alive(std::time::Duration::from_secs(60));
        let mut eventloop = rumqttc::EventLoop::new(options, 10);
        runtime.block_on(async {
            while !matches!(
                eventloop.poll().await.expect("connected"),
                rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))
            ) {}
        });
        eventloop.state.await_pingresp = true;
        let how = Qos::AtMostOnce.into();
        // Small: it goes to the socket with the flush.
        let message = Message {
            topic: "budget/t".into(),
            payload: b"{}".to_vec(),
            labels: Vec::new(),
        };
        let mut ready: Ready = [(message, how, 0)].into();
        let written = runtime.block_on(async {
            let mut write = std::pin::pin!(write_v4(&mut eventloop, &mut ready));
            let mut spent = false;
            std::future::poll_fn(|cx| {
                if !spent {
                    spent = true;
                    let mut spend = std::pin::pin!(tokio::task::consume_budget());
                    while spend.as_mut().poll(cx).is_ready() {
                        spend.set(tokio::task::consume_budget());
                    }
                }
                write.as_mut().poll(cx)
            })
            .await
        });
        assert!(matches!(written, Ok(false)), "not written");
        assert!(
            eventloop.state.await_pingresp,
            "nothing known of the broker"
        );
        drop(eventloop);
        broker.join().expect("the scripted broker");
    }

    /// rustls's seconds since 1970 come with dates, and the node's own without its time: two
    /// attempts seconds apart must read alike past rustls's figures, or each is a new WARN.
    #[test]
    fn a_certificates_dates_are_shown_as_dates() {
        use rustls::pki_types::UnixTime;
        use std::time::Duration;
        let text = |now: u64| {
            let expired =
                rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
                    time: UnixTime::since_unix_epoch(Duration::from_secs(now)),
                    not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_796_342_400)),
                });
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, expired);
            match tls_failure(&io) {
                Failure::Tls(text) => text,
                other => panic!("not a TLS failure: {}", other.text()),
            }
        };
        let (first, later) = (text(1_796_342_500), text(1_796_342_507));
        let ours = |t: &str| t[t.find(" (the broker's").expect("ours")..].to_string();
        assert_eq!(
            ours(&first),
            " (the broker's certificate, or one of its chain, expired 2026-12-04T00:00:00Z; \
             this node's date is 2026-12-04)"
        );
        assert_eq!(ours(&first), ours(&later));
    }

    /// What an HTTP proxy answers to CONNECT says what to change: credentials (407, a refusal:
    /// retrying cannot help), the ports it tunnels to (403), or nothing we know of (502).
    #[test]
    fn a_proxys_answer_says_what_to_change() {
        #[derive(Debug)]
        struct Wrapped(async_http_proxy::HttpError);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "proxy")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let answer = |code| proxy_failure(&Wrapped(async_http_proxy::HttpError::HttpCode200(code)));
        assert!(matches!(
            answer(407),
            Some(Failure::Refused { why, .. }) if why.contains("set proxyUsername and proxyPassword")
        ));
        assert!(matches!(
            answer(403),
            Some(Failure::Broken(why)) if why.ends_with("allow the broker's port in the proxy")
        ));
        assert!(matches!(
            answer(502),
            Some(Failure::Broken(why)) if why == "the HTTP proxy answered CONNECT with HTTP status 502"
        ));
    }

    /// A port answering the ClientHello with what is not TLS is said to be one to check is the
    /// broker's TLS port (no advice to turn TLS off: a middlebox can answer so too).
    #[test]
    fn a_port_answering_without_tls_is_named_so() {
        for kind in [
            rustls::InvalidMessage::InvalidContentType,
            rustls::InvalidMessage::UnknownProtocolVersion,
        ] {
            let io = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidMessage(kind),
            );
            match tls_failure(&io) {
                Failure::Tls(text) => assert!(
                    text.ends_with(
                        "(what answered is not TLS: check that this is the broker's TLS \
                         port; a plain MQTT or HTTP listener answers so)"
                    ),
                    "{text}"
                ),
                other => panic!("not a TLS failure: {}", other.text()),
            }
        }
    }

    /// What an MQTT 5 DISCONNECT says decides what the close is blamed on: another client
    /// taking the id, a size, or (HiveMQ at a QoS 0 publish its ACL denies) what was sent.
    #[test]
    fn a_disconnect_says_what_the_close_is_about() {
        use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode as Code;
        let said = |reason_code| {
            disconnect_reason(&rumqttc::v5::ConnectionError::MqttState(
                rumqttc::v5::StateError::ServerDisconnect {
                    reason_code,
                    reason_string: None,
                },
            ))
        };
        assert_eq!(said(Code::SessionTakenOver), Said::TakenOver);
        assert_eq!(said(Code::PacketTooLarge), Said::TooLarge);
        assert_eq!(said(Code::NotAuthorized), Said::Refused);
        assert_eq!(said(Code::TopicNameInvalid), Said::Refused);
        assert_eq!(said(Code::ServerBusy), Said::Other);
        assert_eq!(said(Code::UseAnotherServer), Said::Other);
        // Without a reason code: 0x00, a close the broker chose.
        let bare =
            rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::Deserialization(
                rumqttc::v5::mqttbytes::Error::PayloadRequired,
            ));
        assert_eq!(disconnect_reason(&bare), Said::Other);
        // Said in words, with the broker's reason text if any.
        let text = explanation_v5(&rumqttc::v5::ConnectionError::MqttState(
            rumqttc::v5::StateError::ServerDisconnect {
                reason_code: Code::ServerShuttingDown,
                reason_string: Some("bye".into()),
            },
        ));
        assert_eq!(
            text.as_deref(),
            Some(
                "the broker closed the connection with a DISCONNECT of reason 0x8B, server \
                 shutting down, saying \"bye\""
            )
        );
        let qos = explanation_v5(&rumqttc::v5::ConnectionError::MqttState(
            rumqttc::v5::StateError::ServerDisconnect {
                reason_code: Code::QoSNotSupported,
                reason_string: None,
            },
        ));
        assert!(qos.is_some_and(|t| t.ends_with("0x9B, QoS not supported")));
    }

    /// A TLS alert the broker sent is a TLS failure wherever rustls's error sits: in the I/O
    /// error of the first read after the handshake, of a write, or of the connect (a WebSocket's
    /// nests it the same way, as its error's source); a refused TCP connect is not.
    #[test]
    fn a_tls_alert_is_told_apart_from_a_refused_connect() {
        let alert = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateExpired),
            )
        };
        let first_read = failure_v4(rumqttc::ConnectionError::MqttState(
            rumqttc::StateError::Deserialization(rumqttc::mqttbytes::Error::Io(alert())),
        ));
        assert!(matches!(&first_read, Failure::Tls(why) if why.contains("CertificateExpired")));
        let write = failure_v5(rumqttc::v5::ConnectionError::MqttState(
            rumqttc::v5::StateError::Io(alert()),
        ));
        assert!(matches!(write, Failure::Tls(_)));
        assert!(matches!(
            failure_v4(rumqttc::ConnectionError::Io(alert())),
            Failure::Tls(_)
        ));
        let refused = failure_v4(rumqttc::ConnectionError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(matches!(refused, Failure::Broken(_)));
    }

    /// A message over what we read fails the connection whatever the version, as one of its
    /// own kind: the session it came from is started anew.
    #[test]
    fn a_message_too_large_to_read_is_told_apart_and_starts_the_next_session_clean() {
        let v4 = failure_v4(rumqttc::ConnectionError::MqttState(
            rumqttc::StateError::Deserialization(
                rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(102_451),
            ),
        ));
        assert!(matches!(&v4, Failure::Foreign(why) if why.contains("102451 bytes")));
        let v5 = failure_v5(rumqttc::v5::ConnectionError::MqttState(
            rumqttc::v5::StateError::Deserialization(
                rumqttc::v5::mqttbytes::Error::PayloadSizeLimitExceeded {
                    pkt_size: 70_000,
                    max: MAX_INCOMING_PACKET as u32,
                },
            ),
        ));
        assert!(matches!(&v5, Failure::Foreign(why) if why.contains("70000 bytes")));
        let pubrel = failure_v4(rumqttc::ConnectionError::MqttState(
            rumqttc::StateError::Unsolicited(7),
        ));
        assert!(matches!(&pubrel, Failure::Foreign(why) if why.contains("packet id 7")));

        let mut configured = rumqttc::MqttOptions::new("t", "127.0.0.1", 1);
        configured.set_clean_session(false);
        let mut eventloop = rumqttc::EventLoop::new(configured.clone(), 1);
        eventloop.start_clean();
        assert!(eventloop.mqtt_options.clean_session());
        eventloop.switch_to(&configured, "t");
        assert!(!eventloop.mqtt_options.clean_session());

        let mut configured = rumqttc::v5::MqttOptions::new("t", "127.0.0.1", 1);
        configured.set_clean_start(false);
        let mut eventloop = rumqttc::v5::EventLoop::new(configured.clone(), 1);
        eventloop.start_clean();
        assert!(eventloop.options.clean_start());
        eventloop.switch_to(&configured, "t");
        assert!(!eventloop.options.clean_start());
    }

    /// A reset, or a write that found the socket closed, may have left unread what the broker
    /// said before (HiveMQ's DISCONNECT, overtaken by the next publish); an end of stream was
    /// read to its end.
    #[test]
    fn a_broken_write_leaves_what_the_broker_said_unheard() {
        use rumqttc::v5::{ConnectionError, StateError};
        use std::io::ErrorKind::*;
        let said = |e| match failure_v5(e) {
            Failure::Closed { said, .. } => Some(said),
            _ => None,
        };
        let io = |kind: std::io::ErrorKind| ConnectionError::MqttState(StateError::Io(kind.into()));
        assert_eq!(said(io(BrokenPipe)), Some(Said::Unheard));
        assert_eq!(said(io(ConnectionReset)), Some(Said::Unheard));
        // As rumqttc's framed socket reports its own reads and writes.
        let framed = ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::v5::mqttbytes::Error::Io(ConnectionReset.into()),
        ));
        assert_eq!(said(framed), Some(Said::Unheard));
        assert_eq!(said(io(UnexpectedEof)), Some(Said::Nothing));
        let eof = ConnectionError::MqttState(StateError::ConnectionAborted);
        assert_eq!(said(eof), Some(Said::Nothing));
        assert_eq!(said(io(TimedOut)), None, "not a close");
    }
    use crate::status::StatusFormat;
    use std::time::Duration;

    use crate::config::Transport as Via;

    /// What a write or a read queued is taken in order without a poll, up to a refusal, which
    /// stays queued for the poll that the driver handles it on (it frees slots, or blames).
    #[test]
    fn queued_events_are_taken_up_to_a_refusal() {
        use rumqttc::v5::mqttbytes::v5::{Packet, PubAck};
        use rumqttc::v5::{Event, EventLoop as V5};
        use rumqttc::Outgoing;
        let mut eventloop = V5::new(rumqttc::v5::MqttOptions::new("t", "127.0.0.1", 1), 1);
        let acked = |pkid, reason| {
            Event::Incoming(Packet::PubAck(PubAck {
                pkid,
                reason,
                properties: None,
            }))
        };
        eventloop.state.events.extend([
            Event::Outgoing(Outgoing::Publish(1)),
            acked(1, PubAckReason::Success),
            acked(2, PubAckReason::NotAuthorized),
            Event::Outgoing(Outgoing::Publish(3)),
        ]);
        assert_eq!(eventloop.take_queued(), Some(Observed::Written(1)));
        let acked = Observed::Acked {
            pkid: 1,
            refused: None,
        };
        assert_eq!(eventloop.take_queued(), Some(acked));
        assert_eq!(eventloop.take_queued(), None, "the refusal is the poll's");
        assert_eq!(eventloop.state.events.len(), 2);
        eventloop.state.events.pop_front();
        assert_eq!(eventloop.take_queued(), Some(Observed::Written(3)));
        assert_eq!(eventloop.take_queued(), None);

        let mut eventloop = rumqttc::EventLoop::new(rumqttc::MqttOptions::new("t", "h", 1), 1);
        eventloop.state.events.extend([
            rumqttc::Event::Outgoing(Outgoing::Publish(0)),
            rumqttc::Event::Incoming(rumqttc::Packet::PingResp),
        ]);
        assert_eq!(eventloop.take_queued(), Some(Observed::Written(0)));
        assert_eq!(eventloop.take_queued(), Some(Observed::Pong));
        assert_eq!(eventloop.take_queued(), None);
    }

    /// rumqttc 0.25's MQTT 5 state keeps counting a QoS 2 message refused at PUBREC or at
    /// PUBCOMP in flight, and stops sending once its window is full of them. Counted anew,
    /// only what awaits an ack stays, the refused ids are free, and the exchanges still open
    /// complete as before, with no packet or event of the recount's own.
    #[test]
    fn a_recount_frees_the_slots_of_refused_qos2_messages_v5() {
        use rumqttc::v5::mqttbytes::v5::{PubComp, PubRec, Publish};
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::{Incoming, MqttState, Request};
        let mut state = MqttState::new(4, false);
        for _ in 0..4 {
            let publish = Publish::new("t", QoS::ExactlyOnce, "x", None);
            let written = state.handle_outgoing_packet(Request::Publish(publish));
            assert!(matches!(written, Ok(Some(_))), "{written:?}");
        }
        let pubrec = |pkid, reason| {
            Incoming::PubRec(PubRec {
                pkid,
                reason,
                properties: None,
            })
        };
        let pubcomp = |pkid, reason| {
            Incoming::PubComp(PubComp {
                pkid,
                reason,
                properties: None,
            })
        };
        // 1 refused at PUBREC; 2 and 3 received, 3 then refused at PUBCOMP; 4 awaits PUBREC.
        for incoming in [
            pubrec(1, PubRecReason::NotAuthorized),
            pubrec(2, PubRecReason::Success),
            pubrec(3, PubRecReason::Success),
            pubcomp(3, PubCompReason::PacketIdentifierNotFound),
        ] {
            state.handle_incoming_packet(incoming).expect("taken");
        }
        state.await_pingresp = true;
        assert_eq!(state.inflight(), 4, "rumqttc still counts the refused ones");
        let events = state.events.len();

        assert!(recount_in_flight(&mut state));
        assert_eq!(state.inflight(), 2, "2 awaits PUBCOMP, 4 PUBREC");
        assert_eq!(state.events.len(), events, "no event of its own");
        assert!(state.await_pingresp, "the ping still awaits its answer");

        let mut ack = |incoming| match state.handle_incoming_packet(incoming) {
            Ok(reply) => reply.is_some(),
            Err(e) => panic!("{e}"),
        };
        assert!(!ack(pubcomp(2, PubCompReason::Success)));
        assert!(ack(pubrec(4, PubRecReason::Success)), "a PUBREL follows");
        assert!(!ack(pubcomp(4, PubCompReason::Success)));
        assert_eq!(state.inflight(), 0);
        // The refused ids were free: a publish on id 1 is written, not held back.
        let mut publish = Publish::new("t", QoS::ExactlyOnce, "x", None);
        publish.pkid = 1;
        let written = state.handle_outgoing_packet(Request::Publish(publish));
        assert!(matches!(written, Ok(Some(_))), "{written:?}");
    }

    /// The size a message is checked with against an MQTT 5 broker's Maximum Packet Size is
    /// never below the PUBLISH rumqttc writes (which it would refuse by failing the connection)
    /// and above it by a few bytes at most.
    #[test]
    fn v5_publish_size_bounds_the_packet_rumqttc_writes() {
        use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
        for (payload, labels) in [(0, 0), (100, 2), (20_000, 5), (3_000_000, 1)] {
            let message = Message {
                topic: Arc::from("kaa/app/some-endpoint/telemetry"),
                payload: vec![b'x'; payload],
                labels: (0..labels)
                    .map(|i| (format!("label{i}"), "v".repeat(i * 10)))
                    .collect(),
            };
            for message_expiry in [None, Some(60)] {
                let how = PublishOptions {
                    qos: Qos::ExactlyOnce,
                    retain: false,
                    content_type: "application/json",
                    message_expiry,
                    patience: None,
                    origin: Origin::default(),
                };
                let properties = PublishProperties {
                    content_type: Some(how.content_type.to_string()),
                    message_expiry_interval: how.message_expiry,
                    user_properties: message.labels.clone(),
                    ..Default::default()
                };
                let mut publish = Publish::new(
                    &*message.topic,
                    rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
                    message.payload.clone(),
                    Some(properties),
                );
                publish.pkid = 1;
                let exact = publish.size();
                let ours = v5_publish_size(&message, &how);
                assert!(
                    (exact..=exact + 16).contains(&ours),
                    "{payload} bytes, {labels} labels: {ours} against {exact}"
                );
            }
        }
    }

    /// `forget` drains what came into the client's channel after rumqttc drained it at the
    /// failure (inside `poll`, as `clean` does here): left there, it went out on the next
    /// connection unchecked against that broker's grants.
    #[test]
    fn forget_drains_what_came_into_the_channel_after_the_failure() {
        let options = rumqttc::v5::MqttOptions::new("t", "127.0.0.1", 1);
        let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 4);
        let publish = |n: u8| {
            client
                .try_publish(
                    "t",
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    false,
                    vec![n],
                )
                .expect("queued");
        };
        publish(1);
        eventloop.clean();
        publish(2);
        let (drained, _) = EventLoop::forget(&mut eventloop);
        assert_eq!(drained, 2, "both publishes drained");
        assert!(eventloop.pending.is_empty());
    }

    /// maxMessageBytes leaves room for a topic of 65,535 bytes, not for MQTT 5's properties
    /// too: such a publish is refused on its own, also when the broker announced no limit.
    #[test]
    fn an_mqtt5_publish_past_mqtts_own_limit_fails_alone() {
        let options = rumqttc::v5::MqttOptions::new("t", "127.0.0.1", 1);
        let (client, _eventloop) = rumqttc::v5::AsyncClient::new(options, 1);
        let limited = Limited {
            client,
            grants: Grants::default(),
        };
        let message = Message {
            topic: Arc::from("t".repeat(65_535)),
            // Zeroed, so never touched: only its length is read.
            payload: vec![0; MAX_PACKET_SIZE - 65_536 - 16],
            labels: (0..6)
                .map(|i| (format!("label{i}"), "v".repeat(20)))
                .collect(),
        };
        let how = PublishOptions {
            qos: Qos::AtLeastOnce,
            retain: false,
            content_type: "application/json",
            message_expiry: Some(60),
            patience: None,
            origin: Origin::default(),
        };
        assert!(matches!(
            limited.refusal(limited.packet_size(&message, &how), &how),
            Some(Unqueued::TooLarge { limit, .. }) if limit as usize == MAX_PACKET_SIZE
        ));
    }

    /// A CONNACK's Maximum QoS and Retain Available: a publish past them fails alone, what
    /// they allow goes, and a broker that says nothing takes anything.
    #[test]
    fn what_the_broker_grants_decides_which_publishes_it_gets() {
        use rumqttc::v5::mqttbytes::v5::ConnAckProperties;
        let message = Message {
            topic: Arc::from("t"),
            payload: b"{}".to_vec(),
            labels: Vec::new(),
        };
        let how = |qos, retain| PublishOptions {
            qos,
            retain,
            content_type: "application/json",
            message_expiry: None,
            patience: None,
            origin: Origin::default(),
        };
        let properties = ConnAckProperties {
            session_expiry_interval: None,
            receive_max: None,
            max_qos: Some(1),
            retain_available: Some(0),
            max_packet_size: None,
            assigned_client_identifier: None,
            topic_alias_max: None,
            reason_string: None,
            user_properties: Vec::new(),
            wildcard_subscription_available: None,
            subscription_identifiers_available: None,
            shared_subscription_available: None,
            server_keep_alive: None,
            response_information: None,
            server_reference: None,
            authentication_method: None,
            authentication_data: None,
        };
        let said = Grants::of_v5(Some(&properties));
        assert_eq!(said.max_qos, 1);
        for (qos, retain, refused) in [
            (Qos::AtMostOnce, false, None),
            (Qos::AtLeastOnce, false, None),
            (Qos::ExactlyOnce, false, Some("QoS 1 at most")),
            (Qos::AtLeastOnce, true, Some("no retained messages")),
        ] {
            let size = v5_publish_size(&message, &how(qos, retain));
            match (said.refusal(size, &how(qos, retain)), refused) {
                (None, None) => {}
                (Some(Unqueued::Unsupported(why)), Some(text)) => {
                    assert!(why.contains(text), "{why}")
                }
                (other, _) => panic!("{qos:?} retain {retain}: {other:?}"),
            }
        }
        // A CONNACK that says nothing of retained messages allows them (MQTT 5: absent is 1).
        let silent = Grants::of_v5(Some(&ConnAckProperties {
            max_qos: None,
            retain_available: None,
            ..properties
        }));
        for grants in [Grants::of_v5(None), Grants::default(), silent] {
            let how = how(Qos::ExactlyOnce, true);
            assert_eq!(grants.refusal(v5_publish_size(&message, &how), &how), None);
        }
        // A packet of exactly the broker's Maximum Packet Size is within it.
        let limited = Grants {
            max_packet_size: Some(100),
            ..Grants::default()
        };
        let how = how(Qos::AtLeastOnce, false);
        assert_eq!(limited.refusal(100, &how), None);
        assert!(matches!(
            limited.refusal(101, &how),
            Some(Unqueued::TooLarge {
                size: 101,
                limit: 100
            })
        ));
    }

    /// An MQTT 5 ack saying that no client subscribes to the topic (0x10) is the broker taking
    /// the message: a pack to a topic no dashboard follows yet is delivered, not refused.
    #[test]
    fn an_ack_saying_no_one_subscribes_takes_the_message() {
        use rumqttc::v5::mqttbytes::v5::{Packet, PubAck, PubRec};
        use rumqttc::v5::Event;
        let acked = observe_v5(&Event::Incoming(Packet::PubAck(PubAck {
            pkid: 7,
            reason: PubAckReason::NoMatchingSubscribers,
            properties: None,
        })));
        assert_eq!(
            acked,
            Observed::Acked {
                pkid: 7,
                refused: None
            }
        );
        let received = observe_v5(&Event::Incoming(Packet::PubRec(PubRec {
            pkid: 8,
            reason: PubRecReason::NoMatchingSubscribers,
            properties: None,
        })));
        assert_eq!(
            received,
            Observed::Received {
                pkid: 8,
                refused: None
            }
        );
    }

    /// Every reason code rumqttc reads is said as the code the broker sent: the tables that
    /// number rumqttc's variants (which carry no numbers) are checked against its own reader.
    /// A success is no refusal.
    #[test]
    fn each_code_rumqttc_reads_is_said_as_the_code_the_broker_sent() {
        use rumqttc::v5::mqttbytes::v5::Packet as V5;
        let read_v5 = |bytes: &[u8]| V5::read(&mut bytes::BytesMut::from(bytes), None);
        let read_v4 = |bytes: &[u8]| rumqttc::Packet::read(&mut bytes::BytesMut::from(bytes), 64);
        let mut read = Vec::new();
        for code in 0..=u8::MAX {
            let refusal = (code >= 0x80).then_some(Reason::V5(code));
            // PUBACK, PUBREC and PUBCOMP of packet id 1.
            for kind in [0x40, 0x50, 0x70] {
                let Ok(packet) = read_v5(&[kind, 3, 0, 1, code]) else {
                    continue;
                };
                read.push((kind, code));
                match observe_v5(&rumqttc::v5::Event::Incoming(packet)) {
                    Observed::Acked { refused, .. }
                    | Observed::Received { refused, .. }
                    | Observed::Completed { refused, .. } => {
                        assert_eq!(refused, refusal, "{kind:#04X} of {code:#04X}")
                    }
                    other => panic!("{kind:#04X} of {code:#04X}: {other:?}"),
                }
            }
            if let Ok(V5::ConnAck(c)) = read_v5(&[0x20, 3, 0, code, 0]) {
                read.push((0x20, code));
                assert_eq!(reason_v5(c.code), Reason::V5(code));
            }
            if let Ok(V5::Disconnect(d)) = read_v5(&[0xE0, 2, code, 0]) {
                read.push((0xE0, code));
                assert_eq!(d.reason_code as u8, code, "as explanation_v5 takes it");
            }
            if let Ok(rumqttc::Packet::ConnAck(c)) = read_v4(&[0x20, 2, 0, code]) {
                assert_eq!(reason_v4(c.code), Reason::V4(code));
                read.push((0x02, code));
            }
        }
        let count = |kind| read.iter().filter(|(k, _)| *k == kind).count();
        let counts = [0x40, 0x50, 0x70, 0x20, 0xE0, 0x02].map(count);
        assert_eq!(counts, [9, 9, 2, 22, 29, 6], "the codes rumqttc 0.25 reads");
    }

    #[test]
    fn the_window_is_the_configured_one_within_the_brokers_receive_maximum() {
        let w = |acked, exactly_once, packet_ids| Window {
            acked,
            exactly_once,
            packet_ids,
        };
        assert_eq!(
            Window::agreed(None, None),
            w(100, 20, 1024),
            "no word: the defaults"
        );
        assert_eq!(Window::agreed(None, Some(20)), w(20, 20, 20), "Mosquitto's");
        assert_eq!(Window::agreed(None, Some(u16::MAX)), w(1024, 1024, 1024));
        assert_eq!(Window::agreed(Some(500), None), w(500, 500, 500));
        assert_eq!(Window::agreed(Some(500), Some(10)), w(10, 10, 10));
        assert_eq!(Window::agreed(Some(5), Some(10)), w(5, 5, 5));
        let mut b = broker(Via::Tcp, false, false);
        assert_eq!(client_window(&b), 1024, "room for any automatic window");
        b.max_inflight = Some(5000);
        assert_eq!(client_window(&b), 5000);
    }

    fn broker(transport: Via, tls: bool, proxy: bool) -> BrokerConfig {
        BrokerConfig {
            host: "broker.lan".into(),
            port: 443,
            client_id: "c".into(),
            username: None,
            password: None,
            keep_alive: Duration::from_secs(10),
            clean_session: true,
            connect_timeout: Duration::from_secs(10),
            version: MqttVersion::V3_1_1,
            failover: Vec::new(),
            status_topic: None,
            tls: tls.then(|| TlsSettings {
                verify: true,
                ca_pem: String::new(),
                client_cert_pem: String::new(),
                client_key_pem: String::new(),
                alpn: Vec::new(),
            }),
            transport,
            proxy: proxy.then(|| ProxySettings {
                host: "proxy.lan".into(),
                port: 3128,
                credentials: Some(("user".into(), "proxy-secret".into())),
            }),
            session_expiry: None,
            status_format: StatusFormat::Json,
            max_inflight: None,
            status_follows_id: crate::config::Unkeyed(false),
            id_names_host: crate::config::Unkeyed(false),
        }
    }

    #[test]
    fn websocket_with_ssl_is_always_wss() {
        let ws = || Via::WebSocket {
            path: "/mqtt".into(),
        };
        // async-tungstenite upgrades to TLS only for a wss URL: ssl must never give ws://.
        let b = broker(ws(), true, false);
        assert_eq!(
            broker_url(&b, "broker.lan", 443),
            "wss://broker.lan:443/mqtt"
        );
        assert_eq!(broker_url(&b, "::1", 8443), "wss://[::1]:8443/mqtt");
        let b = broker(ws(), false, false);
        assert_eq!(broker_url(&b, "10.0.0.1", 80), "ws://10.0.0.1:80/mqtt");
        let b = broker(Via::Tcp, true, false);
        assert_eq!(broker_url(&b, "broker.lan", 8883), "broker.lan");
    }

    #[test]
    fn labels_name_the_proxy_but_never_its_password() {
        let b = broker(Via::Tcp, false, true);
        let label = address_label(&b, "broker.lan", 1883);
        assert_eq!(label, "broker.lan:1883 (via proxy proxy.lan:3128)");
        assert!(!format!("{b:?}").contains("proxy-secret"));
        let p = rumqttc_proxy(b.proxy.as_ref().unwrap());
        assert!(matches!(p.auth, rumqttc::ProxyAuth::Basic { .. }));
    }

    /// Every CONNACK refusal rumqttc knows, through the conversion the driver uses
    /// (`failure_v4` / `failure_v5` on `ConnectionRefused`): those that are, or may be, about
    /// the client id say so (a moved id gives way to the configured one), those about the last
    /// will say so (the log line names `statusTopic`), and no other does. The matches name
    /// every variant, so a variant rumqttc renames or adds breaks this test rather than the
    /// driver's choices.
    #[test]
    fn each_refusal_says_what_it_is_about() {
        use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as V5;
        use rumqttc::ConnectReturnCode as V4;
        let v4_about = |code: V4| match code {
            V4::BadClientId => Refusal::IdInvalid,
            V4::NotAuthorized => Refusal::Id,
            V4::Success | V4::RefusedProtocolVersion | V4::ServiceUnavailable => Refusal::Other,
            V4::BadUserNamePassword => Refusal::Other,
        };
        let v4 = [
            V4::RefusedProtocolVersion,
            V4::BadClientId,
            V4::ServiceUnavailable,
            V4::BadUserNamePassword,
            V4::NotAuthorized,
        ];
        for code in v4 {
            match failure_v4(rumqttc::ConnectionError::ConnectionRefused(code)) {
                Failure::Refused { about, .. } => {
                    assert_eq!(about, v4_about(code), "MQTT 3.1.1 {code:?}")
                }
                other => panic!("MQTT 3.1.1 {code:?}: {}", other.text()),
            }
        }
        let v5_about = |code: V5| match code {
            V5::BadClientId | V5::ClientIdentifierNotValid => Refusal::IdInvalid,
            V5::NotAuthorized | V5::Banned => Refusal::Id,
            V5::RetainNotSupported | V5::QoSNotSupported => Refusal::Will,
            V5::Success
            | V5::RefusedProtocolVersion
            | V5::ServiceUnavailable
            | V5::UnspecifiedError
            | V5::MalformedPacket
            | V5::ProtocolError
            | V5::ImplementationSpecificError
            | V5::UnsupportedProtocolVersion
            | V5::BadUserNamePassword
            | V5::ServerUnavailable
            | V5::ServerBusy
            | V5::BadAuthenticationMethod
            | V5::TopicNameInvalid
            | V5::PacketTooLarge
            | V5::QuotaExceeded
            | V5::PayloadFormatInvalid
            | V5::UseAnotherServer
            | V5::ServerMoved
            | V5::ConnectionRateExceeded => Refusal::Other,
        };
        let v5 = [
            V5::RefusedProtocolVersion,
            V5::BadClientId,
            V5::ServiceUnavailable,
            V5::UnspecifiedError,
            V5::MalformedPacket,
            V5::ProtocolError,
            V5::ImplementationSpecificError,
            V5::UnsupportedProtocolVersion,
            V5::ClientIdentifierNotValid,
            V5::BadUserNamePassword,
            V5::NotAuthorized,
            V5::ServerUnavailable,
            V5::ServerBusy,
            V5::Banned,
            V5::BadAuthenticationMethod,
            V5::TopicNameInvalid,
            V5::PacketTooLarge,
            V5::QuotaExceeded,
            V5::PayloadFormatInvalid,
            V5::RetainNotSupported,
            V5::QoSNotSupported,
            V5::UseAnotherServer,
            V5::ServerMoved,
            V5::ConnectionRateExceeded,
        ];
        for code in v5 {
            match failure_v5(rumqttc::v5::ConnectionError::ConnectionRefused(code)) {
                Failure::Refused { about, .. } => {
                    assert_eq!(about, v5_about(code), "MQTT 5 {code:?}")
                }
                other => panic!("MQTT 5 {code:?}: {}", other.text()),
            }
        }
    }
}

//! The appender configuration, decoded from the raw Avro bytes Kaa stores for it.
//!
//! Each plugin generation stores configurations in its own frozen schema, and each schema is
//! the previous one's fields in the same order followed by new ones: the original PahoMQTT
//! appender's nine (`PahoMqttConfig.avsc`), then v1's (`MqttAppenderConfig.avsc`), then v2's
//! (`MqttAppenderConfigV2.avsc`, adding `maxInflight`). Kaa keeps a stored configuration in the
//! schema it was written with, so an older generation's bytes simply end early: we read fields
//! in order and give each field that the bytes do not reach its default. One decoder serves
//! every plugin. The one exception is v3 (`MqttAppenderConfigV3.avsc`): the same fields, but
//! the texts that may be empty are `["string", "null"]`, because the admin's form refuses to
//! save an empty plain string; the plugin class says which [`Layout`] its bytes have.

use std::fmt;
use std::time::Duration;

use crate::binary::{BinaryError, Reader};
use crate::identity;
use crate::status::StatusFormat;
use crate::tls::{TlsSettings, EXPIRY_WARNED_AHEAD};
use crate::topic::TopicTemplate;
use crate::utc::unix_now;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

impl Qos {
    /// 0, 1 or 2, as MQTT and the configuration say it.
    pub fn number(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
            Qos::ExactlyOnce => 2,
        }
    }

    /// The original appender published every value above 2 as QoS 2.
    fn from_config(value: i32) -> Result<Qos, ConfigError> {
        match value {
            i32::MIN..=-1 => Err(ConfigError::new("qos", format!("{value} is below 0"))),
            0 => Ok(Qos::AtMostOnce),
            1 => Ok(Qos::AtLeastOnce),
            _ => Ok(Qos::ExactlyOnce),
        }
    }
}

/// What each MQTT message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// Avro JSON, byte-identical to the original appender's payload.
    AvroJson,
    /// Plain JSON: unions unwrapped, bytes as base64.
    Json,
    /// `{"header":…,"event":…}` in Avro JSON, like Kaa's `LogEventDto`.
    JsonWithHeader,
    /// The record's Avro binary as the endpoint uploaded it.
    AvroBinary,
}

/// One message per record, or one per pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Record,
    Pack,
}

/// The MQTT protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MqttVersion {
    V3_1_1,
    V5,
}

/// How MQTT packets travel: on the TCP (or TLS) stream itself, or inside WebSocket messages
/// (`ws://`, or `wss://` with TLS) for brokers reachable only through HTTP(S) ports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    /// The HTTP path of the WebSocket endpoint, starting with `/`.
    WebSocket {
        path: String,
    },
}

/// An HTTP proxy reached with `CONNECT host:port`, for every transport.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxySettings {
    pub host: String,
    pub port: u16,
    /// Basic authentication: user name and password.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for ProxySettings {
    // Hand-written so the proxy password can never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxySettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// A setting no connection is told apart by: equal to any other of its kind, so the pool never
/// splits, or refuses, a connection over it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unkeyed<T>(pub T);

impl<T> PartialEq for Unkeyed<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Unkeyed<T> {}

impl<T> std::hash::Hash for Unkeyed<T> {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// What identifies one broker connection: appenders that agree on all of it share one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BrokerConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    pub clean_session: bool,
    pub connect_timeout: Duration,
    pub version: MqttVersion,
    /// Brokers tried after `host:port`, in order, on connect and reconnect.
    pub failover: Vec<(String, u16)>,
    /// Where "online" is published (retained) on connect and "offline" as the last will.
    pub status_topic: Option<String>,
    /// With a status topic: `statusTopic` has no placeholder that `clientId` lacks, so a node
    /// that resolves the client id as this one does (the other client of a takeover, very
    /// likely) resolves the status topic the same, and shares it. Only for a WARN: appenders
    /// that resolve both the same share a connection however their templates read.
    pub status_follows_id: Unkeyed<bool>,
    /// `clientId` holds `{hostname}` and not `{random}`: nodes that share a host name resolve
    /// it alike (`{pid}` too where each runs as the same pid, as containers do). Only for the
    /// advice of a takeover's log line.
    pub id_names_host: Unkeyed<bool>,
    /// `None`: plain TCP.
    pub tls: Option<TlsSettings>,
    pub transport: Transport,
    pub proxy: Option<ProxySettings>,
    /// MQTT 5 with `clean_session` off: how long the broker keeps the session after the
    /// connection ends. `None`: it ends with the connection.
    pub session_expiry: Option<u32>,
    pub status_format: StatusFormat,
    /// QoS 1 and 2 messages awaiting the broker's ack, at most. `None`: automatic, the MQTT 5
    /// broker's receive maximum, else `protocol`'s defaults.
    pub max_inflight: Option<u16>,
}

impl BrokerConfig {
    /// The configuration fields in which `other` differs from this, but for the broker address
    /// and the client id: what makes two appenders with one client id need two connections.
    pub(crate) fn other_settings(&self, other: &BrokerConfig) -> Vec<&'static str> {
        // Destructured, so that a setting added here must be named here too.
        let BrokerConfig {
            host: _,
            port: _,
            client_id: _,
            username,
            password,
            keep_alive,
            clean_session,
            connect_timeout,
            version,
            failover,
            status_topic,
            status_follows_id: _,
            id_names_host: _,
            tls,
            transport,
            proxy,
            session_expiry,
            status_format,
            max_inflight,
        } = self;
        [
            (*username != other.username, "username"),
            (*password != other.password, "password"),
            (*keep_alive != other.keep_alive, "keepAliveSeconds"),
            (*clean_session != other.clean_session, "cleanSession"),
            (
                *connect_timeout != other.connect_timeout,
                "connectTimeoutSeconds",
            ),
            (*version != other.version, "mqttVersion"),
            (*failover != other.failover, "brokers"),
            (*status_topic != other.status_topic, "statusTopic"),
            (*tls != other.tls, "the TLS settings"),
            (*transport != other.transport, "transport or webSocketPath"),
            (*proxy != other.proxy, "the proxy settings"),
            (
                *session_expiry != other.session_expiry,
                "sessionExpirySeconds",
            ),
            (*status_format != other.status_format, "statusFormat"),
            (*max_inflight != other.max_inflight, "maxInflight"),
        ]
        .into_iter()
        .filter_map(|(differs, name)| differs.then_some(name))
        .collect()
    }
}

impl fmt::Debug for BrokerConfig {
    // Hand-written so the password can never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("keep_alive", &self.keep_alive)
            .field("clean_session", &self.clean_session)
            .field("connect_timeout", &self.connect_timeout)
            .field("version", &self.version)
            .field("failover", &self.failover)
            .field("status_topic", &self.status_topic)
            .field("status_follows_id", &self.status_follows_id)
            .field("id_names_host", &self.id_names_host)
            .field("tls", &self.tls)
            .field("transport", &self.transport)
            .field("proxy", &self.proxy)
            .field("session_expiry", &self.session_expiry)
            .field("status_format", &self.status_format)
            .field("max_inflight", &self.max_inflight)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AppenderConfig {
    pub broker: BrokerConfig,
    pub qos: Qos,
    pub retain: bool,
    pub topic: TopicTemplate,
    /// The largest message published; a pack with a larger one fails.
    pub max_message_bytes: usize,
    /// MQTT 5 message expiry.
    pub message_expiry: Option<u32>,
    /// Connections to the broker; an endpoint's records always take the same one.
    pub connections: usize,
    /// No pack waits longer than this for its callback.
    pub delivery_timeout: Duration,
    /// Records accepted but not yet acknowledged, at most; beyond it packs fail fast.
    pub max_pending_records: usize,
    pub payload_format: PayloadFormat,
    pub grouping: Grouping,
    /// How often an active appender logs its summary line; `None`: never.
    pub stats_interval: Option<Duration>,
    /// How long packs in flight at `close` may still wait for the broker; zero: they fail at once.
    pub close_timeout: Duration,
    /// Settings that work but probably not as meant: logged at WARN when the appender starts.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: &'static str,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid appender configuration, field '{}': {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

const DEFAULT_DELIVERY_TIMEOUT_S: i32 = 30;
/// About when a Kaa endpoint SDK sends a log block again that it has had no answer for.
const ENDPOINT_RESEND_S: i32 = 120;
/// A deliveryTimeoutSeconds from which packs may still wait then: the endpoint's wait began
/// before the node had the pack.
const TIMEOUT_WARNED_S: i32 = 90;
const DEFAULT_KEEP_ALIVE_S: i32 = 10;
const DEFAULT_MAX_PENDING_RECORDS: i32 = 100_000;
const DEFAULT_STATS_INTERVAL_S: i32 = 60;
const DEFAULT_CONNECT_TIMEOUT_S: i32 = 10;
/// Long enough for a broker on a LAN to acknowledge what is in flight, short enough that an
/// appender edited in the admin lets go of its connection soon.
const DEFAULT_CLOSE_TIMEOUT_S: i32 = 5;
/// MQTT's keep-alive is 16 bits of seconds.
const MAX_KEEP_ALIVE_S: i32 = 65_535;
const MAX_CONNECTIONS: i32 = 16;
const DEFAULT_PROXY_PORT: i32 = 3128;
/// One hour: a node restarting, or a broker restarting, finds its session again.
const DEFAULT_SESSION_EXPIRY_S: i32 = 3600;
/// The longest client id taken: MQTT's 65,535 bytes, less room for the suffixes the appender
/// may add (`-15` for `connectionsPerBroker`; host name, pid and random number after a
/// takeover, under 100 bytes), which rumqttc would otherwise cut short on the wire.
const MAX_CLIENT_ID_BYTES: usize = crate::topic::MAX_TOPIC_BYTES - 256;

/// Generous: rumqttc's own default of 10 KiB would fail every larger record.
const DEFAULT_MAX_MESSAGE_BYTES: i32 = 10 * 1024 * 1024;
/// MQTT's own limit on a packet, less room for its header and topic.
const MQTT_MAX_MESSAGE_BYTES: i32 = 268_435_455 - 65_536 - 16;

/// How a plugin generation's bytes are read: how its schema writes the text fields that may
/// be empty, and whether braces may be text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The original's class (its nine fields, or an earlier build's record under its name):
    /// plain texts as [`Layout::PlainTexts`]. The original used `mqtttopic` and `clientId`
    /// literally, so a brace in them that is none of our placeholders is text.
    Original,
    /// v1 and v2: plain strings, `""` for none.
    PlainTexts,
    /// v3: `["string", "null"]`, null for none (so the admin's form takes them empty).
    NullableTexts,
}

impl Layout {
    /// The layout of the plugin generation the Java plugin class names (0 is the original's).
    pub fn of_generation(generation: i32) -> Result<Layout, ConfigError> {
        match generation {
            0 => Ok(Layout::Original),
            1 | 2 => Ok(Layout::PlainTexts),
            3 => Ok(Layout::NullableTexts),
            g => Err(ConfigError::new(
                "(plugin)",
                format!("generation {g} is unknown to this library"),
            )),
        }
    }
}

/// Reads fields in schema order, naming the field in any error.
struct Fields<'a> {
    reader: Reader<'a>,
    layout: Layout,
}

impl Fields<'_> {
    fn wrap<T>(field: &'static str, r: Result<T, BinaryError>) -> Result<T, ConfigError> {
        r.map_err(|e| ConfigError::new(field, format!("cannot be decoded: {e}")))
    }

    fn string(&mut self, field: &'static str) -> Result<String, ConfigError> {
        let bytes = Self::wrap(field, self.reader.read_string_bytes())?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ConfigError::new(field, "is not UTF-8"))
    }

    fn int(&mut self, field: &'static str) -> Result<i32, ConfigError> {
        Self::wrap(field, self.reader.read_int())
    }

    /// An int that ends the record, read; `None`, and nothing read, if the record does not end
    /// with one int here.
    fn last_int(&mut self) -> Option<i32> {
        let mut probe = self.reader.clone();
        let value = probe.read_int().ok().filter(|_| probe.is_empty())?;
        self.reader = probe;
        Some(value)
    }

    fn boolean(&mut self, field: &'static str) -> Result<bool, ConfigError> {
        Self::wrap(field, self.reader.read_boolean())
    }

    /// `["string", "null"]`: branch 0 is the string.
    fn optional_string(&mut self, field: &'static str) -> Result<Option<String>, ConfigError> {
        match Self::wrap(field, self.reader.read_long())? {
            0 => self.string(field).map(Some),
            1 => Ok(None),
            b => Err(ConfigError::new(
                field,
                format!("union branch {b} does not exist"),
            )),
        }
    }

    /// A field added after the original's: absent from older stored configurations.
    fn int_or(&mut self, field: &'static str, default: i32) -> Result<i32, ConfigError> {
        if self.reader.is_empty() {
            Ok(default)
        } else {
            self.int(field)
        }
    }

    /// A boolean field added after the original's.
    fn boolean_or(&mut self, field: &'static str, default: bool) -> Result<bool, ConfigError> {
        if self.reader.is_empty() {
            Ok(default)
        } else {
            self.boolean(field)
        }
    }

    /// A string field added after the original's.
    fn string_or(&mut self, field: &'static str, default: &str) -> Result<String, ConfigError> {
        if self.reader.is_empty() {
            Ok(default.to_string())
        } else {
            self.string(field)
        }
    }

    /// A text field added after the original's that may be empty (see [`Layout`]).
    fn text_or_empty(&mut self, field: &'static str) -> Result<String, ConfigError> {
        match self.layout {
            _ if self.reader.is_empty() => Ok(String::new()),
            Layout::Original | Layout::PlainTexts => self.string(field),
            Layout::NullableTexts => Ok(self.optional_string(field)?.unwrap_or_default()),
        }
    }

    /// An enum field added after the original's: its symbol, or `symbols[0]` when absent.
    fn symbol_or<T: Copy>(&mut self, field: &'static str, symbols: &[T]) -> Result<T, ConfigError> {
        let index = self.int_or(field, 0)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| symbols.get(i).copied())
            .ok_or_else(|| ConfigError::new(field, format!("enum index {index} does not exist")))
    }
}

fn seconds(field: &'static str, value: i32, min: i32) -> Result<Duration, ConfigError> {
    if value < min {
        return Err(ConfigError::new(field, format!("{value} is below {min}")));
    }
    Ok(Duration::from_secs(value as u64))
}

/// `host:port, host:port` (IPv6 in brackets: `[::1]:1883`).
fn parse_brokers(text: &str) -> Result<Vec<(String, u16)>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| {
            let bad = || ConfigError::new("brokers", format!("'{b}' is not host:port"));
            let (host, port) = b.rsplit_once(':').ok_or_else(bad)?;
            let host = host_name("brokers", host)?;
            match port.parse::<u16>() {
                Ok(port) if port != 0 => Ok((host, port)),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// A host name or address, an IPv6 address with or without its brackets; never a port, a
/// scheme or a path. `broker:8883` or a Paho URI such as `ssl://broker` passed, and failed
/// every connect, under TLS with a bare "DNS name"; `[::1]` made WebSocket URLs of `[[::1]]`.
fn host_name(field: &'static str, text: &str) -> Result<String, ConfigError> {
    let text = text.trim();
    let bracketed = (text.strip_prefix('['))
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    // With a zone (`fe80::1%eth0`: an interface's name or number), which a plain TCP connect
    // resolves.
    let (address, zone) =
        (bracketed.split_once('%')).map_or((bracketed, None), |(a, z)| (a, Some(z)));
    if is_ipv6(address) {
        let interface = |z: &str| {
            !z.is_empty()
                && z.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        return match zone {
            Some(z) if !interface(z) => Err(ConfigError::new(
                field,
                format!("'{text}' is an IPv6 address whose zone, after %, is no interface"),
            )),
            _ => Ok(bracketed.to_string()),
        };
    }
    // In `brokers` each entry's port is its own, after the host.
    let in_brokers = field == "brokers";
    let why = if text.is_empty() {
        return Err(ConfigError::new(field, "is empty"));
    } else if text.contains("://") && in_brokers {
        "a URI: give the host alone (each entry is host:port, and TLS is the field ssl)"
    } else if text.contains("://") {
        "a URI: give the host alone (the port and ssl are fields of their own)"
    } else if text.contains(':') && in_brokers {
        "not a host name or address (an IPv6 address goes in brackets: [::1]:1883)"
    } else if text.contains(':') {
        "host:port: give the host alone (the port is a field of its own)"
    } else if text.contains(|c: char| c.is_whitespace() || "/@[]?#".contains(c)) {
        "not a host name or address"
    } else {
        return Ok(text.to_string());
    };
    Err(ConfigError::new(field, format!("'{text}' is {why}")))
}

fn is_ipv6(host: &str) -> bool {
    host.parse::<std::net::Ipv6Addr>().is_ok()
}

/// The WebSocket endpoint's path: `/` and visible ASCII (a URL's path, no query or fragment).
fn websocket_path(path: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::new("webSocketPath", format!("'{path}' {why}"));
    if !path.starts_with('/') {
        return Err(bad("does not start with /"));
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '#' && c != '?')
    {
        return Err(bad(
            "holds a character a URL path cannot (space, non-ASCII, ? or #)",
        ));
    }
    Ok(path.to_string())
}

/// `None` without a proxy host. Basic authentication needs a user name without `:`.
fn proxy_settings(
    host: &str,
    port: i32,
    username: String,
    password: String,
) -> Result<Option<ProxySettings>, ConfigError> {
    if host.is_empty() {
        return Ok(None);
    }
    let host = host_name("proxyHost", host)?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            ConfigError::new("proxyPort", format!("{port} is not between 1 and 65535"))
        })?;
    // Spaces alone are none, as in the other texts that may be empty: the v1 and v2 forms save
    // those only filled in, so an operator fills them with a space.
    let blank = |text: &str| text.trim().is_empty();
    let credentials = match (blank(&username), blank(&password)) {
        (true, true) => None,
        (true, false) => {
            return Err(ConfigError::new(
                "proxyUsername",
                "is empty but proxyPassword is set",
            ))
        }
        (false, _) if username.contains(':') => {
            return Err(ConfigError::new(
                "proxyUsername",
                "holds ':', which HTTP basic authentication cannot carry",
            ))
        }
        (false, true) => Some((username, String::new())),
        (false, false) => Some((username, password)),
    };
    // An IPv6 proxy address goes in brackets: rumqttc joins it with the port as `addr:port`.
    let host = if is_ipv6(&host) {
        format!("[{host}]")
    } else {
        host
    };
    Ok(Some(ProxySettings {
        host,
        port,
        credentials,
    }))
}

/// Builds the TLS client configuration now, so a setting that cannot work is reported at
/// init with its field's name and the appender never starts (nor falls back to plain text).
fn tls_settings(
    verify: bool,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
    alpn: &str,
) -> Result<TlsSettings, ConfigError> {
    let alpn: Vec<String> = (alpn.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    // TLS gives a name one length byte and the list two: rustls checks neither, and a longer
    // one made a ClientHello the broker cannot read (taken for a plain port at the close).
    if let Some(long) = alpn.iter().find(|p| p.len() > 255) {
        let why = format!(
            "holds a name of {} bytes; TLS takes at most 255",
            long.len()
        );
        return Err(ConfigError::new("alpnProtocols", why));
    }
    if alpn.iter().map(|p| p.len() + 1).sum::<usize>() > usize::from(u16::MAX) {
        let why = "is longer than the 65,535 bytes TLS takes for the list";
        return Err(ConfigError::new("alpnProtocols", why));
    }
    let settings = TlsSettings {
        verify,
        ca_pem,
        client_cert_pem,
        client_key_pem,
        alpn,
    };
    // Built to check the settings; no handshake is made with it.
    settings
        .client_config("init")
        .map_err(|(field, why)| ConfigError::new(field, why))?;
    Ok(settings)
}

/// The WARN for a brace the original's record holds in `field` that is none of our placeholders.
fn taken_literally(field: &str, text: &str, why: &str) -> String {
    format!(
        "{field} '{}': a brace that is none of this appender's placeholders is taken literally \
         ({why}), as what stored this configuration (the original PahoMQTT appender, or an \
         earlier build under its class) took the whole text (the placeholders in it are \
         replaced)",
        text.escape_debug()
    )
}

impl AppenderConfig {
    /// Decodes `LogAppenderDto.getRawConfiguration()`, stored in `layout`.
    pub fn from_avro(raw: &[u8], layout: Layout) -> Result<AppenderConfig, ConfigError> {
        let mut f = Fields {
            reader: Reader::new(raw),
            layout,
        };
        let host = f.string("host")?;
        let port = f.int("port")?;
        let ssl = f.boolean("ssl")?;
        let verify_ssl_cert = f.boolean("verifySslCert")?;
        // The admin's form stores a cleared box as "", not null. Credentials go with a user name
        // only, as the original sent them: a password alone is a protocol error in MQTT 3.1.1,
        // and Mosquitto closes such a connection.
        let username = f.optional_string("username")?.filter(|u| !u.is_empty());
        let password = f.optional_string("password")?;
        let qos = f.int("qos")?;
        let client_id = f.string("clientId")?;
        let topic = f.string("mqtttopic")?;
        // The original appender's record, which its stored appenders hold, ends here.
        let original_record = f.reader.is_empty();
        let delivery_timeout = f.int_or("deliveryTimeoutSeconds", DEFAULT_DELIVERY_TIMEOUT_S)?;
        let keep_alive = f.int_or("keepAliveSeconds", DEFAULT_KEEP_ALIVE_S)?;
        let max_pending = f.int_or("maxPendingRecords", DEFAULT_MAX_PENDING_RECORDS)?;
        // Symbols in the order of the config schema's enums.
        let payload_format = f.symbol_or(
            "payloadFormat",
            &[
                PayloadFormat::AvroJson,
                PayloadFormat::Json,
                PayloadFormat::JsonWithHeader,
                PayloadFormat::AvroBinary,
            ],
        )?;
        let grouping = f.symbol_or("grouping", &[Grouping::Record, Grouping::Pack])?;
        let stats_interval = f.int_or("statsIntervalSeconds", DEFAULT_STATS_INTERVAL_S)?;
        let ca_pem = f.text_or_empty("caCertificate")?;
        let client_cert_pem = f.text_or_empty("clientCertificate")?;
        let client_key_pem = f.text_or_empty("clientPrivateKey")?;
        let alpn = f.text_or_empty("alpnProtocols")?;
        let retain = f.boolean_or("retain", false)?;
        let clean_session = f.boolean_or("cleanSession", true)?;
        let connect_timeout = f.int_or("connectTimeoutSeconds", DEFAULT_CONNECT_TIMEOUT_S)?;
        let max_message_bytes = f.int_or("maxMessageBytes", DEFAULT_MAX_MESSAGE_BYTES)?;
        let version = f.symbol_or("mqttVersion", &[MqttVersion::V3_1_1, MqttVersion::V5])?;
        let message_expiry = f.int_or("messageExpirySeconds", 0)?;
        let brokers = f.text_or_empty("brokers")?;
        let status_topic = f.text_or_empty("statusTopic")?;
        let connections = f.int_or("connectionsPerBroker", 1)?;
        // One build of v1 (never released) stored 29 fields, its last closeTimeoutSeconds,
        // where transport is now: read as transport, its default of 5 failed init, and 1
        // spoke WebSocket to an MQTT port.
        let early_close = if layout == Layout::PlainTexts {
            f.last_int()
        } else {
            None
        };
        let transport = f.symbol_or("transport", &[false, true])?;
        let ws_path = f.string_or("webSocketPath", "/mqtt")?;
        let proxy_host = f.text_or_empty("proxyHost")?;
        let proxy_port = f.int_or("proxyPort", DEFAULT_PROXY_PORT)?;
        let proxy_username = f.text_or_empty("proxyUsername")?;
        let proxy_password = f.text_or_empty("proxyPassword")?;
        let session_expiry = f.int_or("sessionExpirySeconds", DEFAULT_SESSION_EXPIRY_S)?;
        // Absent (records stored before the field): the plain text those appenders published.
        let status_format =
            f.symbol_or("statusFormat", &[StatusFormat::Text, StatusFormat::Json])?;
        let close_timeout = match early_close {
            Some(close_timeout) => close_timeout,
            None => f.int_or("closeTimeoutSeconds", DEFAULT_CLOSE_TIMEOUT_S)?,
        };
        let max_inflight = f.int_or("maxInflight", 0)?;
        if !(1..=MAX_CONNECTIONS).contains(&connections) {
            return Err(ConfigError::new(
                "connectionsPerBroker",
                format!("{connections} is not between 1 and {MAX_CONNECTIONS}"),
            ));
        }
        let status_text = status_topic.trim().to_string();
        // Only earlier builds' records under the original's class hold a status topic there;
        // those builds took it literally.
        let (status_topic, status_literal) = if layout == Layout::Original {
            identity::expand_original(&status_text)
        } else {
            let expanded =
                identity::expand(&status_text).map_err(|e| ConfigError::new("statusTopic", e))?;
            (expanded, None)
        };
        let status_topic = match status_topic.as_str() {
            "" => None,
            t if crate::topic::unfit_for_publish(t) => {
                return Err(ConfigError::new(
                    "statusTopic",
                    format!(
                        "'{}' contains a wildcard, a control character or a Unicode noncharacter",
                        t.escape_debug()
                    ),
                ))
            }
            t if t.len() > crate::topic::MAX_TOPIC_BYTES => {
                return Err(ConfigError::new(
                    "statusTopic",
                    crate::topic::unfit_in_connect(t).unwrap_or_default(),
                ))
            }
            t => Some(t.to_string()),
        };
        let max_inflight = u16::try_from(max_inflight).map_err(|_| {
            ConfigError::new(
                "maxInflight",
                format!("{max_inflight} is not between 0 (automatic) and 65535"),
            )
        })?;
        if message_expiry < 0 {
            return Err(ConfigError::new(
                "messageExpirySeconds",
                format!("{message_expiry} is below 0"),
            ));
        }
        if !f.reader.is_empty() {
            return Err(ConfigError::new(
                "(end)",
                format!("{} bytes follow the last known field", f.reader.remaining()),
            ));
        }

        let host = host_name("host", &host)?;
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                ConfigError::new("port", format!("{port} is not between 1 and 65535"))
            })?;
        let mut warnings = Vec::new();
        // The original never implemented TLS (its `ssl` was a to-do): its appenders with `ssl`
        // ticked published in plain text, to a plain port, and keep doing so. Not with
        // credentials: where the tick meant TLS (this project's earlier records, saved again in
        // the nine-field form), they would cross in clear, so those get TLS as asked. Such a
        // re-saved record without credentials reads as the original's: the bytes are the same.
        let plain_as_before = ssl && original_record && username.is_none();
        if plain_as_before {
            warnings.push(
                "ssl is on in a configuration of the original's nine fields without a username, so \
                 this appender connects without TLS: the original PahoMQTT appender, which stores \
                 such configurations, never used TLS. It may also be an appender of an earlier build \
                 of this appender that the admin saved again in the nine-field form, which turned \
                 its TLS off; to keep TLS, move it to the type PahoMqtt (README, Moving an appender \
                 to PahoMqtt), or give it a username"
                    .to_string(),
            );
        } else if ssl && original_record {
            warnings.push(
                "ssl is on in a configuration of the original's nine fields, with credentials: it \
                 connects with TLS, so they never cross in clear; the original never used TLS, so \
                 if this appender published before the upgrade its broker port speaks plain MQTT \
                 and TLS fails there: untick ssl (the original ignored it), or use the TLS port"
                    .to_string(),
            );
        }
        let ssl = ssl && !plain_as_before;
        if layout == Layout::Original && !original_record {
            let tls = if ssl && username.is_none() {
                " (and, without a username, TLS off)"
            } else {
                ""
            };
            warnings.push(format!(
                "this appender was stored by an earlier build of this appender under the original \
                 PahoMQTT type, with settings the original lacked: the node uses them all, but the \
                 admin shows and saves the original's nine only, so saving it there puts the others \
                 back to their defaults{tls}; to keep them, move it to the type PahoMqtt (README, \
                 Moving an appender to PahoMqtt)"
            ));
        }
        if delivery_timeout >= TIMEOUT_WARNED_S {
            warnings.push(format!(
                "deliveryTimeoutSeconds is {delivery_timeout}: an endpoint sends a log block again \
                 when it has had no answer for about {ENDPOINT_RESEND_S} s, so a pack still waiting \
                 then is uploaded twice, and answered late; keep it well below that (default \
                 {DEFAULT_DELIVERY_TIMEOUT_S})"
            ));
        }
        if username.is_none() && password.as_deref().is_some_and(|p| !p.is_empty()) {
            warnings.push(
                "password is set but username is empty, so neither is sent to the broker; set the \
                 username too"
                    .to_string(),
            );
        }
        // Not sent, so no part of what the connection is: appenders that differ only in a
        // leftover password share one.
        let password = password.filter(|p| username.is_some() && !p.is_empty());
        if let Some(why) = username.as_deref().and_then(crate::topic::unfit_in_connect) {
            return Err(ConfigError::new("username", why));
        }
        // Binary data to MQTT, with the same 16-bit length; never shown.
        if password
            .as_ref()
            .is_some_and(|p| p.len() > crate::topic::MAX_TOPIC_BYTES)
        {
            return Err(ConfigError::new(
                "password",
                format!(
                    "is over MQTT's limit of {} bytes",
                    crate::topic::MAX_TOPIC_BYTES
                ),
            ));
        }
        if status_topic.is_some()
            && !["{hostname}", "{pid}", "{random}"]
                .iter()
                .any(|p| status_text.contains(p))
        {
            warnings.push(format!(
                "statusTopic '{status_text}' names no node: the nodes of a Kaa cluster sharing this \
                 configuration overwrite each other's retained status, and one node's last will \
                 says 'offline' while the others run; use for example 'kaa/status/{{hostname}}'"
            ));
        }
        if ssl && !verify_ssl_cert && !ca_pem.trim().is_empty() {
            warnings.push(
                "caCertificate is set but verifySslCert is off, so it is not used: the broker's \
                 certificate is checked against no CA; turn verifySslCert on to check the broker \
                 against it"
                    .to_string(),
            );
        }
        let tls_fields: Vec<_> = [
            ("caCertificate", &ca_pem),
            ("clientCertificate", &client_cert_pem),
            ("clientPrivateKey", &client_key_pem),
            ("alpnProtocols", &alpn),
        ]
        .into_iter()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(name, _)| name)
        .collect();
        if !ssl && !tls_fields.is_empty() {
            // A broker port that wants them is a TLS one: each connect would send the
            // credentials in clear, and fail.
            let credentials = if username.is_some() {
                ", username and password included"
            } else {
                ""
            };
            warnings.push(format!(
                "{} set but ssl is off, so not used: this appender connects in plain \
                 text{credentials}; turn ssl on to use them",
                tls_fields.join(", ")
            ));
        }
        let failover = parse_brokers(&brokers)?;
        let transport = if transport {
            Transport::WebSocket {
                path: websocket_path(ws_path.trim())?,
            }
        } else {
            Transport::Tcp
        };
        let proxy = proxy_settings(
            proxy_host.trim(),
            proxy_port,
            proxy_username,
            proxy_password,
        )?;
        // Each host the connection goes to, with the field that names it.
        let hosts =
            || std::iter::once(("host", &host)).chain(failover.iter().map(|(h, _)| ("brokers", h)));
        // A zone is a local interface's: TLS names, WebSocket URLs and a proxy's CONNECT take none.
        if let Some((field, h)) = hosts().find(|(_, h)| h.contains('%')) {
            if ssl || proxy.is_some() || matches!(transport, Transport::WebSocket { .. }) {
                return Err(ConfigError::new(
                    field,
                    format!("{h}: an IPv6 address with a zone works over plain TCP only (no ssl, WebSocket or proxy)"),
                ));
            }
        }
        if proxy.is_some() {
            // rumqttc's CONNECT request writes the address without brackets.
            if is_ipv6(&host) {
                return Err(ConfigError::new(
                    "host",
                    format!("{host}: an IPv6 address cannot be reached through proxyHost; use a host name"),
                ));
            }
            if let Some((h, _)) = failover.iter().find(|(h, _)| is_ipv6(h)) {
                return Err(ConfigError::new(
                    "brokers",
                    format!(
                        "{h}: an IPv6 address cannot be reached through proxyHost; use a host name"
                    ),
                ));
            }
        }
        if session_expiry < 0 {
            return Err(ConfigError::new(
                "sessionExpirySeconds",
                format!("{session_expiry} is below 0"),
            ));
        }
        // A session that ends with its connection leaves nothing to resume: MQTT 5 with
        // sessionExpirySeconds 0 starts every connection clean. Resuming one the broker kept
        // anyway (its CONNACK may set a longer expiry than asked) could hand this client QoS 2
        // packet ids still awaiting a PUBREL, and a broker takes a new message under such an id
        // for a duplicate: acknowledged, never delivered.
        let clean_session = clean_session || (version == MqttVersion::V5 && session_expiry == 0);
        if ssl {
            // Else refused at every connect, with rustls's bare "DNS name".
            for (field, name) in hosts() {
                if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                    return Err(ConfigError::new(
                        field,
                        format!(
                            "'{name}' is no name a TLS certificate can be checked against: a DNS \
                             name of ASCII labels up to 63 bytes (one outside ASCII in its \
                             xn-- form), or an IP address"
                        ),
                    ));
                }
            }
        }
        let tls = if ssl {
            Some(tls_settings(
                verify_ssl_cert,
                ca_pem,
                client_cert_pem,
                client_key_pem,
                &alpn,
            )?)
        } else {
            None
        };
        warnings.extend(
            tls.as_ref()
                .and_then(TlsSettings::client_certificate_dates)
                .and_then(|dates| dates.warning(unix_now(), EXPIRY_WARNED_AHEAD)),
        );
        let topic = if layout == Layout::Original {
            let (template, literal) = TopicTemplate::parse_original(&topic)
                .map_err(|e| ConfigError::new("mqtttopic", e))?;
            if let Some(why) = literal {
                warnings.push(taken_literally("mqtttopic", &topic, &why));
            }
            template
        } else {
            TopicTemplate::parse(&topic).map_err(|e| ConfigError::new("mqtttopic", e))?
        };
        if topic.has_event_fields() && grouping == Grouping::Pack {
            return Err(ConfigError::new(
                "mqtttopic",
                "{event.…} placeholders need one message per record (grouping RECORD)",
            ));
        }
        if !(1..=MQTT_MAX_MESSAGE_BYTES).contains(&max_message_bytes) {
            return Err(ConfigError::new(
                "maxMessageBytes",
                format!("{max_message_bytes} is not between 1 and {MQTT_MAX_MESSAGE_BYTES}"),
            ));
        }
        if let Some(why) = status_literal {
            warnings.push(taken_literally("statusTopic", &status_text, &why));
        }
        let client_id_text = client_id;
        let client_id = if layout == Layout::Original {
            let (client_id, literal) = identity::expand_original(&client_id_text);
            if let Some(why) = literal {
                warnings.push(taken_literally("clientId", &client_id_text, &why));
            }
            client_id
        } else {
            identity::expand(&client_id_text).map_err(|e| ConfigError::new("clientId", e))?
        };
        let client_id = if client_id.is_empty() && layout == Layout::Original && clean_session {
            // The original's Paho sent an empty id, and the broker gave the connection one of
            // its own (MQTT allows it with a clean session). Only the REST API stores one: the
            // form refuses an empty text. The node's own id is as unique, and names the
            // connection in the logs.
            let own = identity::unique("kaa");
            warnings.push(format!(
                "clientId is empty, which the original left to the broker to fill in: this node \
                 connects as '{own}', an id no other node uses"
            ));
            own
        } else if client_id.is_empty() {
            return Err(ConfigError::new("clientId", "is empty"));
        } else if let Some(why) = crate::topic::unfit_in_connect(&client_id) {
            let shown = crate::log_budget::shown_in_log(&client_id);
            return Err(ConfigError::new("clientId", format!("'{shown}' {why}")));
        } else if client_id.len() > MAX_CLIENT_ID_BYTES {
            return Err(ConfigError::new(
                "clientId",
                format!(
                    "is {} bytes of UTF-8, over the {MAX_CLIENT_ID_BYTES} an id may have: MQTT's \
                     limit of {}, less room for what the appender may add (-0, -1, ... for \
                     connectionsPerBroker; the node's names after a takeover)",
                    client_id.len(),
                    crate::topic::MAX_TOPIC_BYTES
                ),
            ));
        } else {
            client_id
        };
        if !clean_session
            && (client_id_text.contains("{pid}") || client_id_text.contains("{random}"))
        {
            warnings.push(format!(
                "clientId '{client_id_text}' changes at every restart ({{pid}}, {{random}}) while \
                 cleanSession is off: each restart leaves the last session on the broker, which \
                 keeps it (and what it queues) for nobody; use for example 'kaa-{{hostname}}'"
            ));
        }
        if !clean_session
            && !identity::PLACEHOLDERS
                .iter()
                .any(|p| client_id_text.contains(p))
        {
            warnings.push(format!(
                "clientId '{client_id_text}' names no node while cleanSession is off: every node of \
                 a Kaa cluster sharing this configuration connects with this id, the broker keeps \
                 one connection per id, and with the session bound to the id none can move to \
                 another, so the nodes keep pushing each other out; on more than one node use \
                 for example 'kaa-{{hostname}}'"
            ));
        }
        // rumqttc asserts (a panic) on a keep-alive its MQTT 5 client does not take, and
        // MQTT carries the keep-alive in 16 bits.
        let min_keep_alive = match version {
            MqttVersion::V3_1_1 => 1,
            MqttVersion::V5 => 5,
        };
        if !(min_keep_alive..=MAX_KEEP_ALIVE_S).contains(&keep_alive) {
            return Err(ConfigError::new(
                "keepAliveSeconds",
                format!(
                    "{keep_alive} is not between {min_keep_alive} and {MAX_KEEP_ALIVE_S}{}",
                    if version == MqttVersion::V5 {
                        " (MQTT 5)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let qos = Qos::from_config(qos)?;
        // Off (MQTT 3.1.1, or MQTT 5 with an expiry), the session outlives the connection.
        if qos == Qos::ExactlyOnce && !clean_session {
            // A QoS 2 message whose PUBREC is lost with the connection fails its pack and is not
            // sent again, while the broker's session keeps its packet id awaiting PUBREL; a
            // broker following MQTT 3.1.1 §4.3.3 then answers a new message that reuses the id
            // with PUBREC without delivering it, and that pack would be confirmed (Mosquitto's
            // MQTT 5 refuses it instead).
            return Err(ConfigError::new(
                "cleanSession",
                "off is not supported with QoS 2 while the broker keeps the session after a \
                 connection ends (MQTT 3.1.1, or MQTT 5 with sessionExpirySeconds above 0): the \
                 session could swallow messages that would then be confirmed; turn cleanSession \
                 on, use QoS 1, or use MQTT 5 with sessionExpirySeconds 0",
            ));
        }
        if max_pending < 1 {
            return Err(ConfigError::new(
                "maxPendingRecords",
                format!("{max_pending} is below 1"),
            ));
        }
        // Only a status topic has a format: without one, it must not tell two otherwise equal
        // connections apart (the pool would open two with one client id).
        let status_format = if status_topic.is_some() {
            status_format
        } else {
            StatusFormat::Text
        };
        // Likewise false without one.
        let status_follows_id = status_topic.is_some()
            && identity::PLACEHOLDERS
                .iter()
                .all(|p| !status_text.contains(p) || client_id_text.contains(p));
        Ok(AppenderConfig {
            broker: BrokerConfig {
                host,
                port,
                client_id,
                username,
                password,
                keep_alive: seconds("keepAliveSeconds", keep_alive, 1)?,
                clean_session,
                connect_timeout: seconds("connectTimeoutSeconds", connect_timeout, 1)?,
                version,
                failover,
                status_topic,
                status_follows_id: Unkeyed(status_follows_id),
                id_names_host: Unkeyed(
                    client_id_text.contains("{hostname}") && !client_id_text.contains("{random}"),
                ),
                tls,
                transport,
                proxy,
                // Only a persistent MQTT 5 session has an expiry (0 made it clean above).
                session_expiry: (version == MqttVersion::V5 && !clean_session)
                    .then_some(session_expiry as u32),
                status_format,
                max_inflight: (max_inflight > 0).then_some(max_inflight),
            },
            qos,
            retain,
            topic,
            max_message_bytes: max_message_bytes as usize,
            message_expiry: (message_expiry > 0).then_some(message_expiry as u32),
            connections: connections as usize,
            delivery_timeout: seconds("deliveryTimeoutSeconds", delivery_timeout, 1)?,
            max_pending_records: max_pending as usize,
            payload_format,
            grouping,
            stats_interval: match stats_interval {
                0 => None,
                s => Some(seconds("statsIntervalSeconds", s, 0)?),
            },
            close_timeout: seconds("closeTimeoutSeconds", close_timeout, 0)?,
            warnings,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Avro binary writer for building config records in tests.
    #[derive(Default)]
    pub struct Encoder(pub Vec<u8>);

    impl Encoder {
        pub fn long(&mut self, v: i64) -> &mut Self {
            crate::binary::write_long(&mut self.0, v);
            self
        }
        pub fn string(&mut self, s: &str) -> &mut Self {
            self.long(s.len() as i64);
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        pub fn boolean(&mut self, b: bool) -> &mut Self {
            self.0.push(b as u8);
            self
        }
        pub fn opt(&mut self, s: Option<&str>) -> &mut Self {
            match s {
                Some(s) => self.long(0).string(s),
                None => self.long(1),
            }
        }
    }

    /// The original appender's nine fields.
    pub fn original(host: &str, port: i64, qos: i64, topic: &str) -> Encoder {
        let mut e = Encoder::default();
        e.string(host)
            .long(port)
            .boolean(false)
            .boolean(false)
            .opt(None)
            .opt(None)
            .long(qos)
            .string("DefaultClient-ID")
            .string(topic);
        e
    }

    #[test]
    fn original_config_decodes_with_defaults_for_new_fields() {
        let c = AppenderConfig::from_avro(
            &original("localhost", 1883, 3, "home/kaa/topic").0,
            Layout::PlainTexts,
        )
        .unwrap();
        assert_eq!(c.broker.host, "localhost");
        assert_eq!(c.broker.port, 1883);
        assert_eq!(
            c.qos,
            Qos::ExactlyOnce,
            "qos 3 is published as 2, like the original"
        );
        assert_eq!(c.topic.text(), "home/kaa/topic");
        assert!(!c.retain);
        assert!(c.broker.clean_session);
        assert_eq!(c.broker.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.max_message_bytes, 10 * 1024 * 1024);
        assert_eq!(c.broker.username, None);
        assert_eq!(c.delivery_timeout, Duration::from_secs(30));
        assert_eq!(c.broker.keep_alive, Duration::from_secs(10));
        assert_eq!(c.max_pending_records, 100_000);
        assert_eq!(c.payload_format, PayloadFormat::AvroJson);
        assert_eq!(c.grouping, Grouping::Record);
        assert_eq!(c.stats_interval, Some(Duration::from_secs(60)));
        assert_eq!(c.close_timeout, Duration::from_secs(5));
    }

    #[test]
    fn current_config_reads_new_fields() {
        let mut e = Encoder::default();
        e.string("broker")
            .long(8883)
            .boolean(false)
            .boolean(true)
            .opt(Some("user"))
            .opt(Some("secret"))
            .long(1)
            .string("node-1")
            .string("t/x")
            .long(5)
            .long(7)
            .long(50)
            .long(2)
            .long(1)
            .long(0);
        let c = AppenderConfig::from_avro(&e.0, Layout::PlainTexts).unwrap();
        assert_eq!(c.broker.username.as_deref(), Some("user"));
        assert_eq!(c.broker.password.as_deref(), Some("secret"));
        assert_eq!(c.qos, Qos::AtLeastOnce);
        assert_eq!(c.delivery_timeout, Duration::from_secs(5));
        assert_eq!(c.broker.keep_alive, Duration::from_secs(7));
        assert_eq!(c.max_pending_records, 50);
        assert_eq!(c.payload_format, PayloadFormat::JsonWithHeader);
        assert_eq!(c.grouping, Grouping::Pack);
        assert_eq!(c.stats_interval, None);
        assert!(
            !format!("{c:?}").contains("secret"),
            "password leaked into Debug"
        );
    }

    /// A full record (all 38 fields) in `layout`, its nine texts that may be empty given in
    /// schema order: caCertificate, clientCertificate, clientPrivateKey, alpnProtocols,
    /// brokers, statusTopic, proxyHost, proxyUsername, proxyPassword.
    fn full_record(layout: Layout, texts: [Option<&str>; 9]) -> Encoder {
        let mut texts = texts.into_iter();
        let mut text = |e: &mut Encoder| {
            let value = texts.next().expect("nine texts");
            match layout {
                Layout::Original | Layout::PlainTexts => e.string(value.unwrap_or("")),
                Layout::NullableTexts => e.opt(value),
            };
        };
        let mut e = original("broker", 1883, 1, "t");
        e.long(30).long(10).long(100).long(0).long(0).long(60);
        (0..4).for_each(|_| text(&mut e));
        e.boolean(false)
            .boolean(true)
            .long(10)
            .long(1 << 20)
            .long(1)
            .long(0);
        (0..2).for_each(|_| text(&mut e));
        e.long(1).long(0).string("/mqtt");
        text(&mut e);
        e.long(3128);
        (0..2).for_each(|_| text(&mut e));
        e.long(3600).long(1).long(5).long(0);
        e
    }

    /// v3 writes the texts that may be empty as `["string", "null"]`: null reads as empty and a
    /// string as itself, so the same settings read the same in either layout.
    #[test]
    fn nullable_texts_read_as_plain_ones() {
        let read = |layout, texts| {
            format!(
                "{:?}",
                AppenderConfig::from_avro(&full_record(layout, texts).0, layout).unwrap()
            )
        };
        let set = [
            None,
            None,
            None,
            Some("x-amzn-mqtt-ca"),
            Some("b2:1884"),
            Some("kaa/status/{hostname}"),
            Some("proxy.lan"),
            Some("u"),
            Some("pw"),
        ];
        assert_eq!(
            read(Layout::NullableTexts, set),
            read(Layout::PlainTexts, set)
        );
        assert!(read(Layout::NullableTexts, set).contains("proxy.lan"));
        assert_eq!(
            read(Layout::NullableTexts, [None; 9]),
            read(Layout::PlainTexts, [None; 9])
        );
        // The bytes of one layout are not the other's.
        let nullable = full_record(Layout::NullableTexts, [None; 9]);
        assert!(AppenderConfig::from_avro(&nullable.0, Layout::PlainTexts).is_err());
        assert_eq!(Layout::of_generation(3), Ok(Layout::NullableTexts));
        assert_eq!(Layout::of_generation(0), Ok(Layout::Original));
        assert_eq!(Layout::of_generation(2), Ok(Layout::PlainTexts));
        assert_eq!(Layout::of_generation(4).unwrap_err().field, "(plugin)");
    }

    /// An empty user name (what the admin's form stores for a cleared box) sends no
    /// credentials, as the original did: a password alone makes Mosquitto close the connection.
    #[test]
    fn a_password_without_a_user_name_is_not_sent() {
        let with = |user: Option<&str>, password: Option<&str>| {
            let mut e = Encoder::default();
            e.string("h").long(1883).boolean(false).boolean(false);
            e.opt(user).opt(password).long(1).string("id").string("t");
            AppenderConfig::from_avro(&e.0, Layout::PlainTexts).unwrap()
        };
        let c = with(Some(""), Some("pw"));
        assert_eq!(c.broker.username, None);
        assert!(c.warnings.iter().any(|w| w.contains("username is empty")));
        assert_eq!(c.broker, with(None, None).broker, "the same connection");
        let c = with(Some("u"), Some("pw"));
        assert_eq!(c.broker.username.as_deref(), Some("u"));
        assert!(c.warnings.is_empty());
        assert!(with(None, None).warnings.is_empty());
        // A cleared password box is no password: not sent, and the same connection as none.
        let c = with(Some("u"), Some(""));
        assert_eq!(c.broker.password, None);
        assert_eq!(
            c.broker,
            with(Some("u"), None).broker,
            "the same connection"
        );
    }

    /// The original never used TLS: its records with `ssl` ticked keep connecting in plain text
    /// (to the port they always worked with), with a WARN, unless credentials would cross in
    /// clear; a longer record's `ssl` means TLS.
    #[test]
    fn the_original_records_ssl_tick_is_not_tls() {
        let nine = |user: Option<&str>| {
            let mut e = Encoder::default();
            e.string("h").long(1883).boolean(true).boolean(true);
            e.opt(user).opt(Some("pw")).long(1).string("id").string("t");
            AppenderConfig::from_avro(&e.0, Layout::PlainTexts).unwrap()
        };
        let c = nine(None);
        assert!(c.broker.tls.is_none());
        let warning = c.warnings.iter().find(|w| w.contains("never used TLS"));
        // Nor can the bytes tell the original's record from an earlier build's saved again in
        // the nine-field form: the WARN says how that one keeps TLS.
        let warning = warning.expect("the WARN");
        assert!(warning.contains("an earlier build of this appender that the admin saved"));
        assert!(warning.contains("move it to the type PahoMqtt"));
        assert!(warning.contains("or give it a username"));
        let c = nine(Some("u"));
        assert!(c.broker.tls.is_some(), "credentials never in clear");
        assert!(c.warnings.iter().any(|w| w.contains("untick ssl")));
        let c = AppenderConfig::from_avro(&with_tls("", "", "", "").0, Layout::PlainTexts).unwrap();
        assert!(c.broker.tls.is_some());
    }

    fn error_of(e: &Encoder) -> ConfigError {
        AppenderConfig::from_avro(&e.0, Layout::PlainTexts).unwrap_err()
    }

    /// A host is a name or an address, an IPv6 one with or without brackets: a port or a
    /// scheme in it is an error naming the field, not a connect failing for ever.
    #[test]
    fn a_host_is_a_name_or_an_address_alone() {
        let host = |text: &str| {
            AppenderConfig::from_avro(&original(text, 1883, 1, "t").0, Layout::PlainTexts)
                .map(|c| c.broker.host)
        };
        assert_eq!(host(" broker.example ").unwrap(), "broker.example");
        assert_eq!(host("[::1]").unwrap(), "::1");
        assert_eq!(host("::1").unwrap(), "::1");
        assert_eq!(host("10.0.0.7").unwrap(), "10.0.0.7");
        for (text, why) in [
            ("broker.example:8883", "host:port"),
            ("ssl://broker.example", "a URI"),
            ("tcp://broker.example:1883", "a URI"),
            ("broker example", "not a host name"),
            ("[broker]", "not a host name"),
            ("broker/mqtt", "not a host name"),
        ] {
            let error = host(text).unwrap_err();
            assert_eq!(error.field, "host", "{text}");
            assert!(error.to_string().contains(why), "{text}: {error}");
        }
        let brokers = |text: &str| parse_brokers(text).map_err(|e| e.field);
        assert_eq!(brokers("ssl://b:1883"), Err("brokers"));
        assert_eq!(brokers("b:1:1883"), Err("brokers"));
        assert_eq!(brokers("b:0"), Err("brokers"), "port 0");
        assert_eq!(brokers("b:65536"), Err("brokers"));
        // Advice for the field it is given in: there the port is each entry's.
        let said = |text: &str| parse_brokers(text).unwrap_err().to_string();
        assert!(said("ssl://b:1883").contains("each entry is host:port"));
        assert!(!said("b:1:1883").contains("field of its own"));
        assert_eq!(brokers("[::1]:1885"), Ok(vec![("::1".to_string(), 1885)]));
        let zoned = brokers("[fe80::1%eth0]:1883");
        assert_eq!(zoned, Ok(vec![("fe80::1%eth0".to_string(), 1883)]));
        assert_eq!(host("fe80::1%2").unwrap(), "fe80::1%2");
        assert_eq!(host("fe80::1%eth0:1883").unwrap_err().field, "host");
        assert_eq!(host("fe80::1%").unwrap_err().field, "host");
        let zoned_tls = tls_record("fe80::1%eth0", true, true, [""; 4]);
        // Names TLS cannot check a certificate against are refused with TLS only.
        for name in [
            "10.0.0",
            &format!("{}.example", "a".repeat(64)),
            "bücher.example",
        ] {
            let error = error_of(&tls_record(name, true, true, [""; 4]));
            assert_eq!(error.field, "host", "{name}");
            assert!(error.to_string().contains("xn--"), "{name}: {error}");
            assert!(AppenderConfig::from_avro(
                &tls_record(name, false, true, [""; 4]).0,
                Layout::PlainTexts
            )
            .is_ok());
        }
        assert!(error_of(&zoned_tls).to_string().contains("plain TCP only"));
        let proxy = proxy_settings("proxy.lan:3128", 3128, String::new(), String::new());
        assert_eq!(proxy.unwrap_err().field, "proxyHost");
        let proxy = proxy_settings("[::1]", 3128, String::new(), String::new());
        assert_eq!(proxy.unwrap().unwrap().host, "[::1]");
    }

    #[test]
    fn invalid_values_name_their_field() {
        assert_eq!(error_of(&original("", 1883, 1, "t")).field, "host");
        assert_eq!(error_of(&original("h", 0, 1, "t")).field, "port");
        assert_eq!(error_of(&original("h", 70000, 1, "t")).field, "port");
        assert_eq!(error_of(&original("h", 1883, -1, "t")).field, "qos");
        assert_eq!(
            error_of(&original("h", 1883, 1, "a/+/b")).field,
            "mqtttopic"
        );
        assert_eq!(error_of(&original("h", 1883, 1, "a/#")).field, "mqtttopic");
        assert_eq!(error_of(&original("h", 1883, 1, "")).field, "mqtttopic");
        let mut e = original("h", 1883, 1, "t");
        e.long(0);
        assert_eq!(error_of(&e).field, "deliveryTimeoutSeconds");
    }

    /// The current schema's 38 fields at their form defaults (texts empty), in `PlainTexts`,
    /// but the number `field` set to `value`.
    fn record_with(field: &str, value: i64) -> Encoder {
        let number = |name: &str, default: i64| if name == field { value } else { default };
        let longs = |e: &mut Encoder, fields: &[(&str, i64)]| {
            for &(name, default) in fields {
                e.long(number(name, default));
            }
        };
        let mut e = Encoder::default();
        e.string("h")
            .long(number("port", 1883))
            .boolean(false)
            .boolean(true)
            .opt(None)
            .opt(None)
            .long(number("qos", 1))
            .string("id")
            .string("t");
        longs(
            &mut e,
            &[
                ("deliveryTimeoutSeconds", 30),
                ("keepAliveSeconds", 10),
                ("maxPendingRecords", 100_000),
                ("payloadFormat", 0),
                ("grouping", 0),
                ("statsIntervalSeconds", 60),
            ],
        );
        e.string("").string("").string("").string("");
        e.boolean(false).boolean(true);
        longs(
            &mut e,
            &[
                ("connectTimeoutSeconds", 10),
                ("maxMessageBytes", 10_485_760),
                ("mqttVersion", 0),
                ("messageExpirySeconds", 0),
            ],
        );
        e.string("").string("");
        longs(&mut e, &[("connectionsPerBroker", 1), ("transport", 0)]);
        e.string("/mqtt").string("");
        longs(&mut e, &[("proxyPort", 3128)]);
        e.string("").string("");
        longs(
            &mut e,
            &[
                ("sessionExpirySeconds", 3600),
                ("statusFormat", 1),
                ("closeTimeoutSeconds", 5),
                ("maxInflight", 0),
            ],
        );
        e
    }

    /// Each number's range, as the README's table gives it: the value just outside is an error
    /// naming the field and the value, the one at the edge is taken.
    #[test]
    fn numbers_are_taken_within_their_range_only() {
        assert!(AppenderConfig::from_avro(&record_with("", 0).0, Layout::PlainTexts).is_ok());
        let cases: [(&str, &[i64], &[i64]); 12] = [
            ("deliveryTimeoutSeconds", &[0, -1], &[1]),
            ("keepAliveSeconds", &[0, 65_536], &[1, 65_535]),
            ("maxPendingRecords", &[0, -1], &[1]),
            ("statsIntervalSeconds", &[-1], &[0]),
            ("connectTimeoutSeconds", &[0, -1], &[1]),
            ("maxMessageBytes", &[0, 268_369_904], &[1, 268_369_903]),
            ("messageExpirySeconds", &[-1], &[0]),
            ("connectionsPerBroker", &[0, 17], &[1, 16]),
            ("sessionExpirySeconds", &[-1], &[0]),
            ("closeTimeoutSeconds", &[-1], &[0]),
            ("maxInflight", &[-1, 65_536], &[0, 65_535]),
            ("qos", &[-1], &[0, 3]),
        ];
        for (field, refused, taken) in cases {
            for &value in refused {
                let err = error_of(&record_with(field, value));
                assert_eq!(err.field, field, "{field} {value}: {err}");
                assert!(err.message.contains(&value.to_string()), "{field}: {err}");
            }
            for &value in taken {
                let c = AppenderConfig::from_avro(&record_with(field, value).0, Layout::PlainTexts);
                assert!(c.is_ok(), "{field} {value}: {c:?}");
            }
        }
        // Each QoS as given; above 2, 2, as the original published it.
        for (value, qos) in [
            (0, Qos::AtMostOnce),
            (1, Qos::AtLeastOnce),
            (2, Qos::ExactlyOnce),
            (3, Qos::ExactlyOnce),
        ] {
            let c = AppenderConfig::from_avro(&record_with("qos", value).0, Layout::PlainTexts);
            assert_eq!(c.map(|c| c.qos).ok(), Some(qos), "qos {value}");
        }
    }

    /// A topic made of a record's fields needs a message per record: with grouping PACK, init
    /// fails naming the topic field.
    #[test]
    fn event_fields_in_the_topic_need_grouping_record() {
        let with = |grouping: i64| {
            let mut e = original("h", 1883, 1, "kaa/{event.deviceId}");
            e.long(30).long(10).long(100_000).long(0).long(grouping);
            AppenderConfig::from_avro(&e.0, Layout::PlainTexts)
        };
        assert!(with(0).is_ok(), "RECORD");
        let err = with(1).unwrap_err();
        assert_eq!(err.field, "mqtttopic");
        assert!(err.message.contains("grouping RECORD"), "{err}");
    }

    /// A deliveryTimeoutSeconds at which endpoints send their blocks again is taken, with a
    /// WARN saying so.
    #[test]
    fn a_delivery_timeout_past_the_endpoints_resend_is_said() {
        let timeout = |seconds: i64| {
            let mut e = original("h", 1883, 1, "t");
            e.long(seconds);
            let c = AppenderConfig::from_avro(&e.0, Layout::PlainTexts).unwrap();
            c.warnings.iter().any(|w| w.contains("uploaded twice"))
        };
        assert!(!timeout(89));
        assert!(timeout(90));
    }

    /// Every field up to `mqttVersion`, defaults but for these.
    fn with_session(qos: i64, keep_alive: i64, clean_session: bool, version: i64) -> Encoder {
        let mut e = original("h", 1883, qos, "t");
        e.long(30)
            .long(keep_alive)
            .long(100_000)
            .long(0)
            .long(0)
            .long(60)
            .string("")
            .string("")
            .string("")
            .string("")
            .boolean(false)
            .boolean(clean_session)
            .long(10)
            .long(4096)
            .long(version);
        e
    }

    /// rumqttc panics on an MQTT 5 keep-alive under 5 s, and the protocol has 16 bits for it:
    /// such values are refused here, naming the field, instead of panicking at connect.
    #[test]
    fn keep_alive_rumqttc_cannot_take_is_refused() {
        for (keep_alive, version) in [(0, 0), (65_536, 0), (4, 1), (1, 1), (65_536, 1)] {
            let err = error_of(&with_session(1, keep_alive, true, version));
            assert_eq!(err.field, "keepAliveSeconds", "{keep_alive} v{version}");
        }
        assert!(error_of(&with_session(1, 4, true, 1))
            .message
            .contains("between 5 and 65535 (MQTT 5)"));
        for (keep_alive, version) in [(1, 0), (65_535, 0), (5, 1), (65_535, 1)] {
            let c = AppenderConfig::from_avro(
                &with_session(1, keep_alive, true, version).0,
                Layout::PlainTexts,
            );
            assert!(c.is_ok(), "{keep_alive} v{version}: {c:?}");
        }
    }

    /// `with_session`, then every field up to `sessionExpirySeconds`.
    fn with_session_expiry(qos: i64, clean_session: bool, expiry: i64) -> Encoder {
        let mut e = with_session(qos, 10, clean_session, 1);
        e.long(0)
            .string("")
            .string("")
            .long(1)
            .long(0)
            .string("/mqtt");
        e.string("").long(3128).string("").string("").long(expiry);
        e
    }

    #[test]
    fn qos2_with_a_session_that_outlives_the_connection_is_refused() {
        for e in [with_session(2, 10, false, 0), with_session(2, 10, false, 1)] {
            let err = error_of(&e);
            assert_eq!(err.field, "cleanSession");
            assert!(
                err.message
                    .contains("QoS 2 while the broker keeps the session"),
                "{}",
                err.message
            );
        }
        assert_eq!(
            error_of(&with_session_expiry(2, false, 60)).field,
            "cleanSession"
        );
        // MQTT 5 whose session ends with the connection is fine: each connection starts clean,
        // so no session a broker kept anyway is resumed.
        let c = AppenderConfig::from_avro(&with_session_expiry(2, false, 0).0, Layout::PlainTexts)
            .unwrap();
        assert_eq!(c.broker.session_expiry, None);
        assert!(c.broker.clean_session);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c = AppenderConfig::from_avro(&with_session_expiry(1, false, 60).0, Layout::PlainTexts)
            .unwrap();
        assert_eq!(c.broker.session_expiry, Some(60));
        assert!(!c.broker.clean_session);
        // Each of the three alone is fine.
        for (qos, clean, version) in [(1, false, 0), (2, true, 0), (1, false, 1)] {
            let c = AppenderConfig::from_avro(
                &with_session(qos, 10, clean, version).0,
                Layout::PlainTexts,
            );
            assert!(c.is_ok(), "qos {qos} clean {clean} v{version}");
        }
    }

    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        let full = original("h", 1883, 1, "topic").0;
        let err =
            AppenderConfig::from_avro(&full[..full.len() - 2], Layout::PlainTexts).unwrap_err();
        assert_eq!(err.field, "mqtttopic");
        let mut e = with_tls("", "", "", "");
        e.boolean(true).boolean(false).long(3).long(4096);
        let c = AppenderConfig::from_avro(&e.0, Layout::PlainTexts).unwrap();
        assert_eq!(c.broker.version, MqttVersion::V3_1_1);
        assert_eq!(c.message_expiry, None);
        e.long(1).long(90);
        let c = AppenderConfig::from_avro(&e.0, Layout::PlainTexts).unwrap();
        assert_eq!(c.broker.version, MqttVersion::V5);
        assert_eq!(c.message_expiry, Some(90));
        assert!(c.broker.failover.is_empty() && c.broker.status_topic.is_none());
        assert_eq!(c.connections, 1);
        e.string("b1:1884, [::1]:1885").string("kaa/status").long(4);
        // One unreleased build's 29 fields: closeTimeoutSeconds where transport is now.
        for close in [0, 1, 5, 120] {
            let mut early = Encoder(e.0.clone());
            early.long(close);
            let c = AppenderConfig::from_avro(&early.0, Layout::PlainTexts).unwrap();
            assert_eq!(c.close_timeout, Duration::from_secs(close as u64));
            assert_eq!(c.broker.transport, Transport::Tcp);
        }
        let c = AppenderConfig::from_avro(&e.0, Layout::PlainTexts).unwrap();
        assert_eq!(
            c.broker.failover,
            vec![("b1".to_string(), 1884), ("::1".to_string(), 1885)]
        );
        assert_eq!(c.broker.status_topic.as_deref(), Some("kaa/status"));
        assert_eq!(c.connections, 4);
        assert_eq!(
            c.close_timeout,
            Duration::from_secs(5),
            "absent: the default"
        );
        assert!(c.retain && !c.broker.clean_session);
        assert_eq!(c.broker.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.max_message_bytes, 4096);
        e.long(0).string("/mqtt").string("").long(3128);
        e.string("").string("").long(3600).long(1);
        assert!(AppenderConfig::from_avro(&e.0, Layout::PlainTexts).is_ok());
        let mut with_close = Encoder(e.0.clone());
        with_close.long(0);
        let c = AppenderConfig::from_avro(&with_close.0, Layout::PlainTexts).unwrap();
        assert_eq!(
            c.close_timeout,
            Duration::ZERO,
            "0: packs in flight fail at close"
        );
        let mut with_close = Encoder(e.0.clone());
        with_close.long(12);
        let c = AppenderConfig::from_avro(&with_close.0, Layout::PlainTexts).unwrap();
        assert_eq!(c.close_timeout, Duration::from_secs(12));
        let mut with_close = Encoder(e.0.clone());
        with_close.long(-1);
        assert_eq!(error_of(&with_close).field, "closeTimeoutSeconds");
        assert_eq!(c.broker.max_inflight, None, "absent: automatic");
        e.long(5);
        let inflight = |n: i64| {
            let mut with = Encoder(e.0.clone());
            with.long(n);
            AppenderConfig::from_avro(&with.0, Layout::PlainTexts)
        };
        assert_eq!(
            inflight(0).unwrap().broker.max_inflight,
            None,
            "0: automatic"
        );
        assert_eq!(inflight(500).unwrap().broker.max_inflight, Some(500));
        assert_eq!(inflight(-1).unwrap_err().field, "maxInflight");
        assert_eq!(inflight(65_536).unwrap_err().field, "maxInflight");
        e.long(5).long(5);
        assert_eq!(error_of(&e).field, "(end)");
        let mut e = with_tls("", "", "", "");
        e.boolean(false).boolean(true).long(10).long(0);
        assert_eq!(error_of(&e).field, "maxMessageBytes");
        let mut e = with_tls("", "", "", "");
        e.boolean(false)
            .boolean(true)
            .long(10)
            .long(100)
            .long(0)
            .long(0);
        let base = e.0.clone();
        e.string("nohost");
        assert_eq!(error_of(&e).field, "brokers");
        let mut e = Encoder(base.clone());
        e.string("").string("a/#");
        assert_eq!(error_of(&e).field, "statusTopic");
        // The last will's topic goes into CONNECT: a longer one would corrupt it.
        let mut e = Encoder(base.clone());
        e.string("").string(&"s".repeat(65_536));
        let err = error_of(&e);
        assert_eq!(err.field, "statusTopic");
        assert!(err.message.contains("over MQTT's limit"), "{err}");
        let mut e = Encoder(base.clone());
        e.string("").string(&"s".repeat(65_535));
        let c = AppenderConfig::from_avro(&e.0, Layout::PlainTexts).expect("MQTT's limit itself");
        assert_eq!(c.broker.status_topic.map(|t| t.len()), Some(65_535));
        let mut e = Encoder(base);
        e.string("").string("").long(17);
        assert_eq!(error_of(&e).field, "connectionsPerBroker");
        let mut e = original("h", 1883, 1, "t");
        e.long(5).long(5).long(5).long(4);
        assert_eq!(error_of(&e).field, "payloadFormat");
    }

    /// The original's nine fields with this client id.
    fn with_client_id(client_id: &str) -> Encoder {
        with_login(None, None, client_id)
    }

    /// The original's nine fields with these credentials and client id.
    fn with_login(username: Option<&str>, password: Option<&str>, client_id: &str) -> Encoder {
        let mut e = Encoder::default();
        e.string("h")
            .long(1883)
            .boolean(false)
            .boolean(false)
            .opt(username)
            .opt(password)
            .long(1)
            .string(client_id)
            .string("t");
        e
    }

    /// What goes into CONNECT as MQTT text must be text a broker takes, or every connect fails
    /// with nothing to say why (Mosquitto closes at a control character; rumqttc cuts a longer
    /// string's length to 16 bits): refused at init, naming the field, in every layout.
    #[test]
    fn connect_texts_a_broker_refuses_are_refused_at_init() {
        let long = "x".repeat(65_536);
        let cases = [
            (
                with_client_id("kaa\tnode"),
                "clientId",
                "holds a control character",
            ),
            (
                with_client_id("kaa\u{0}"),
                "clientId",
                "holds a control character",
            ),
            (
                with_client_id("kaa\u{fffe}"),
                "clientId",
                "Unicode noncharacter",
            ),
            (
                with_client_id(&long),
                "clientId",
                "65536 bytes of UTF-8, over MQTT's limit",
            ),
            (
                with_client_id(&"x".repeat(MAX_CLIENT_ID_BYTES + 1)),
                "clientId",
                "less room for what the appender may add",
            ),
            (
                with_login(Some("u\nv"), None, "id"),
                "username",
                "holds a control character",
            ),
            (
                with_login(Some(&long), None, "id"),
                "username",
                "65536 bytes",
            ),
            (
                with_login(Some("u"), Some(&long), "id"),
                "password",
                "over MQTT's limit",
            ),
        ];
        for (e, field, says) in cases {
            let err = AppenderConfig::from_avro(&e.0, Layout::Original).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.contains(says), "{err}");
            assert!(
                err.message.len() < 300,
                "a long value is not shown whole: {err}"
            );
        }
        // A control character is shown escaped, as the log shows any text from outside.
        let err = AppenderConfig::from_avro(&with_client_id("kaa\tnode").0, Layout::Original)
            .unwrap_err();
        assert!(err.message.starts_with("'kaa\\tnode' holds"), "{err}");
        // The most each may have, and any other character, are fine.
        let most = "y".repeat(65_535);
        for e in [
            with_client_id(&"y".repeat(MAX_CLIENT_ID_BYTES)),
            with_client_id("kaa-é-节点"),
            with_login(Some(&most), Some(&most), "id"),
        ] {
            AppenderConfig::from_avro(&e.0, Layout::Original).unwrap();
        }
    }

    /// An empty `clientId`, which only the REST API stores, gets the node's own id in the
    /// original's records, where Paho let the broker assign one; elsewhere it is refused.
    #[test]
    fn an_empty_client_id_of_the_originals_records_is_the_nodes_own() {
        let c = AppenderConfig::from_avro(&with_client_id("").0, Layout::Original).unwrap();
        assert_eq!(c.broker.client_id, identity::unique("kaa"));
        assert!(
            c.warnings.iter().any(|w| w.contains("clientId is empty")),
            "{:?}",
            c.warnings
        );
        let e = AppenderConfig::from_avro(&with_client_id("").0, Layout::PlainTexts).unwrap_err();
        assert_eq!((e.field, e.message.as_str()), ("clientId", "is empty"));
    }

    /// The original used `mqtttopic` and `clientId` literally: in its records (generation 0) a
    /// brace that is none of our placeholders stays text, with one WARN per field, and the
    /// placeholders are still replaced. Later generations refuse it: there it is a typo.
    #[test]
    fn the_originals_braces_are_text_only_in_its_records() {
        let record = |client_id: &str, topic: &str| {
            let mut e = with_client_id(client_id);
            e.0.truncate(e.0.len() - 2);
            e.string(topic);
            e
        };
        let e = record("kaa-{node-7}", "plant/{line}/logs");
        let c = AppenderConfig::from_avro(&e.0, Layout::Original).unwrap();
        assert_eq!(c.broker.client_id, "kaa-{node-7}");
        assert_eq!(c.topic.text(), "plant/{line}/logs");
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with("mqtttopic 'plant/{line}/logs': a brace"));
        assert!(c.warnings[1].starts_with("clientId 'kaa-{node-7}': a brace"));
        assert!(c.warnings.iter().all(|w| w.contains("taken literally")));
        for layout in [Layout::PlainTexts, Layout::NullableTexts] {
            let err = AppenderConfig::from_avro(&e.0, layout).unwrap_err();
            assert_eq!(err.field, "mqtttopic");
            assert!(err.message.contains("unknown placeholder {line}"));
        }
        let id_only = record("kaa-{node-7}", "t");
        let err = AppenderConfig::from_avro(&id_only.0, Layout::PlainTexts).unwrap_err();
        assert_eq!(err.field, "clientId");

        let e = record("kaa-{hostname}-{pid", "plant/a}b/{appenderName}");
        let c = AppenderConfig::from_avro(&e.0, Layout::Original).unwrap();
        let host = identity::hostname();
        assert_eq!(c.broker.client_id, format!("kaa-{host}-{{pid"));
        assert_eq!(c.topic.text(), "plant/a}b/{appenderName}");
        assert!(
            c.warnings[0].contains("'}' closes no '{'"),
            "{:?}",
            c.warnings
        );
        assert!(c.warnings[1].contains("without"), "{:?}", c.warnings);
        assert_eq!(error_of(&e).field, "mqtttopic");
        // Without such a brace, no WARN; what no topic may hold stays an error.
        let c = AppenderConfig::from_avro(
            &record("kaa-{hostname}", "t/{appenderName}").0,
            Layout::Original,
        )
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let err =
            AppenderConfig::from_avro(&record("c", "{line}/#").0, Layout::Original).unwrap_err();
        assert_eq!(err.field, "mqtttopic");
        // An earlier build's record under the original's class, whose status topic that
        // build took literally.
        let texts = [
            None,
            None,
            None,
            None,
            None,
            Some("kaa/{line}/status"),
            None,
            None,
            None,
        ];
        let c =
            AppenderConfig::from_avro(&full_record(Layout::Original, texts).0, Layout::Original)
                .unwrap();
        assert_eq!(c.broker.status_topic.as_deref(), Some("kaa/{line}/status"));
        assert!(c
            .warnings
            .iter()
            .any(|w| w.starts_with("statusTopic 'kaa/{line}/status': a brace")));
        let err = AppenderConfig::from_avro(
            &full_record(Layout::PlainTexts, texts).0,
            Layout::PlainTexts,
        )
        .unwrap_err();
        assert_eq!(err.field, "statusTopic");
    }

    /// Earlier builds stored 12, 14, 15, 19, 23, 25 or 28 fields under the original's class,
    /// by build: a record of each length (and the original's nine, and ten) is read, the
    /// settings it holds used and the others at their defaults.
    #[test]
    fn every_length_an_earlier_build_stored_under_the_originals_type_is_read() {
        let mut e = original("h", 1883, 1, "t");
        let nine = e.0.len();
        let mut ends = vec![nine];
        e.long(7); // deliveryTimeoutSeconds
        ends.push(e.0.len());
        e.long(20).long(500); // keepAliveSeconds, maxPendingRecords: 12 fields
        ends.push(e.0.len());
        e.long(1).long(1); // payloadFormat, grouping
        ends.push(e.0.len());
        e.long(60); // statsIntervalSeconds
        ends.push(e.0.len());
        e.string("").string("").string("").string(""); // the TLS texts, ALPN
        ends.push(e.0.len());
        e.boolean(true).boolean(false).long(3).long(4096); // ... maxMessageBytes
        ends.push(e.0.len());
        e.long(0).long(0); // mqttVersion, messageExpirySeconds
        ends.push(e.0.len());
        e.string("").string("kaa/status/{hostname}").long(2); // ... connectionsPerBroker
        ends.push(e.0.len());
        for end in ends {
            let c = AppenderConfig::from_avro(&e.0[..end], Layout::Original)
                .unwrap_or_else(|err| panic!("{end} bytes: {}: {}", err.field, err.message));
            let delivery = if end > nine {
                7
            } else {
                DEFAULT_DELIVERY_TIMEOUT_S as u64
            };
            assert_eq!(c.delivery_timeout.as_secs(), delivery, "{end} bytes");
            let connections = if end == e.0.len() { 2 } else { 1 };
            assert_eq!(c.connections, connections, "{end} bytes");
        }
        // Every setting of the longest, each where that build put it.
        let c = AppenderConfig::from_avro(&e.0, Layout::Original).unwrap();
        assert_eq!(c.broker.keep_alive, Duration::from_secs(20));
        assert_eq!(c.max_pending_records, 500);
        assert_eq!(c.payload_format, PayloadFormat::Json);
        assert_eq!(c.grouping, Grouping::Pack);
        assert_eq!(c.stats_interval, Some(Duration::from_secs(60)));
        assert!(c.retain && !c.broker.clean_session);
        assert_eq!(c.broker.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.max_message_bytes, 4096);
        assert_eq!(c.broker.version, MqttVersion::V3_1_1);
        assert_eq!(c.message_expiry, None);
        assert!(c
            .broker
            .status_topic
            .is_some_and(|t| t.starts_with("kaa/status/")));
    }

    /// An earlier build's record under the original's class (more than the nine fields): a
    /// WARN at init says the admin would save nine of them only; the original's own record
    /// gets none.
    #[test]
    fn an_earlier_builds_record_under_the_originals_type_is_warned_of() {
        let earlier = |c: &AppenderConfig| {
            c.warnings
                .iter()
                .any(|w| w.contains("stored by an earlier build"))
        };
        let nine = AppenderConfig::from_avro(&original("h", 1883, 1, "t").0, Layout::Original);
        assert!(!earlier(&nine.unwrap()));
        let mut longer = original("h", 1883, 1, "t");
        longer.long(30);
        let c = AppenderConfig::from_avro(&longer.0, Layout::Original).unwrap();
        assert!(earlier(&c), "{:?}", c.warnings);
        let c = AppenderConfig::from_avro(&longer.0, Layout::PlainTexts).unwrap();
        assert!(!earlier(&c), "{:?}", c.warnings);

        // With ssl ticked, such a record keeps TLS, without a username too (an earlier build's
        // tick meant TLS); the WARN says that saving it in the original's form loses TLS.
        let with_ssl = |username: Option<&str>| {
            let mut e = Encoder::default();
            e.string("h").long(8883).boolean(true).boolean(true);
            e.opt(username)
                .opt(username)
                .long(1)
                .string("id")
                .string("t");
            e.long(30);
            AppenderConfig::from_avro(&e.0, Layout::Original).unwrap()
        };
        let loses_tls = |c: &AppenderConfig| {
            c.warnings.iter().any(|w| {
                w.contains("stored by an earlier build")
                    && w.contains("(and, without a username, TLS off)")
            })
        };
        let anonymous = with_ssl(None);
        assert!(anonymous.broker.tls.is_some(), "keeps TLS");
        assert!(loses_tls(&anonymous), "{:?}", anonymous.warnings);
        let named = with_ssl(Some("u"));
        assert!(named.broker.tls.is_some());
        assert!(
            earlier(&named) && !loses_tls(&named),
            "{:?}",
            named.warnings
        );
    }

    #[test]
    fn client_id_and_status_topic_name_the_node() {
        let pid = std::process::id().to_string();
        let c = AppenderConfig::from_avro(
            &with_client_id("kaa-{hostname}-{pid}").0,
            Layout::PlainTexts,
        )
        .unwrap();
        assert!(c.broker.client_id.starts_with("kaa-") && c.broker.client_id.ends_with(&pid));
        assert!(!c.broker.client_id.contains('{'));
        let err = error_of(&with_client_id("kaa-{hostName}"));
        assert_eq!(err.field, "clientId");
        assert!(err.message.contains("{hostName}"), "{}", err.message);

        let with_status = |status: &str| {
            let mut e = with_tls_through_expiry(["", "", "", ""]);
            e.string("").string(status);
            AppenderConfig::from_avro(&e.0, Layout::PlainTexts)
        };
        let c = with_status("kaa/status/{hostname}/{pid}").unwrap();
        assert!(c.broker.status_topic.unwrap().ends_with(&format!("/{pid}")));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(with_status("kaa/{node}").unwrap_err().field, "statusTopic");
        // One status for every node of a cluster: accepted, with a warning.
        let c = with_status("kaa/status").unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("'kaa/status' names no node")),
            "{:?}",
            c.warnings
        );
    }

    /// Every field up to `connectionsPerBroker` (plain TCP, MQTT `version`, clean session as
    /// given), for tests of the fields after it.
    fn through_connections(version: i64, clean_session: bool) -> Encoder {
        through_connections_as("c", version, clean_session)
    }

    fn through_connections_as(client_id: &str, version: i64, clean_session: bool) -> Encoder {
        through_status_topic(client_id, version, clean_session, "kaa/status")
    }

    /// `through_connections_as` with this status topic.
    fn through_status_topic(
        client_id: &str,
        version: i64,
        clean_session: bool,
        status_topic: &str,
    ) -> Encoder {
        let mut e = with_client_id(client_id);
        e.long(30).long(10).long(1000).long(0).long(0).long(60);
        e.string("").string("").string("").string("");
        e.boolean(false).boolean(clean_session).long(10).long(4096);
        e.long(version)
            .long(0)
            .string("")
            .string(status_topic)
            .long(1);
        e
    }

    /// The warnings of a configuration with this client id, MQTT 3.1.1, clean session or not.
    fn warnings_for(client_id: &str, clean_session: bool) -> Vec<String> {
        AppenderConfig::from_avro(
            &through_connections_as(client_id, 1, clean_session).0,
            Layout::PlainTexts,
        )
        .unwrap()
        .warnings
    }

    /// `statusFormat` matters only with a status topic; without one it does not tell two
    /// configurations' connections apart, or the pool would open two with one client id (a
    /// first-generation appender reads TEXT, a new one is given JSON).
    #[test]
    fn a_status_format_without_a_status_topic_does_not_split_connections() {
        let broker = |status_topic: &str, format: i64| {
            let mut e = with_client_id("c");
            e.long(30).long(10).long(1000).long(0).long(0).long(60);
            e.string("").string("").string("").string("");
            e.boolean(false).boolean(true).long(10).long(4096);
            e.long(0).long(0).string("").string(status_topic).long(1);
            // TCP, no path, no proxy, no session expiry, then the format.
            e.long(0).string("");
            e.string("").long(0).string("").string("");
            e.long(0).long(format);
            AppenderConfig::from_avro(&e.0, Layout::PlainTexts)
                .unwrap()
                .broker
        };
        assert_eq!(broker("", 0), broker("", 1));
        assert_ne!(broker("kaa/status", 0), broker("kaa/status", 1));
    }

    /// A persistent session under an id that changes at every restart: accepted, with a
    /// warning; with a clean session, or an id that stays, none.
    #[test]
    fn a_persistent_session_under_a_changing_id_is_warned_about() {
        let warned = |id: &str, clean: bool| {
            warnings_for(id, clean)
                .iter()
                .any(|w| w.contains("changes at every restart"))
        };
        assert!(warned("kaa-{hostname}-{pid}", false));
        assert!(warned("kaa-{random}", false));
        assert!(!warned("kaa-{hostname}-{pid}", true));
        assert!(!warned("kaa-{hostname}", false));
    }

    /// A persistent session under an id without a placeholder: every node of a cluster takes
    /// it, and they push each other out; warned about. With a clean session the id moves on
    /// its own after a takeover, and an id naming the node is the advice itself: no warning.
    #[test]
    fn a_persistent_session_under_an_id_naming_no_node_is_warned_about() {
        let warned = |id: &str, clean: bool| {
            warnings_for(id, clean).iter().any(|w| {
                w.contains(&format!(
                    "clientId '{id}' names no node while cleanSession is off"
                ))
            })
        };
        assert!(warned("DefaultClient-ID", false));
        assert!(!warned("DefaultClient-ID", true));
        assert!(!warned("kaa-{hostname}", false));
        assert!(!warned("kaa-{random}", false));
    }

    /// Whether a node whose client id resolves as this one's (the other client of a takeover)
    /// resolves the status topic the same: the status topic has no placeholder the client id
    /// lacks. Never without a status topic, which must not split connections.
    #[test]
    fn whether_the_status_topic_follows_the_client_id() {
        let broker = |id: &str, status: &str| {
            AppenderConfig::from_avro(
                &through_status_topic(id, 0, true, status).0,
                Layout::PlainTexts,
            )
            .unwrap()
            .broker
        };
        let follows = |id: &str, status: &str| broker(id, status).status_follows_id.0;
        assert!(follows("kaa-{hostname}-{pid}", "kaa/status/{hostname}"));
        assert!(follows("kaa-{hostname}", "kaa/status"));
        assert!(!follows("DefaultClient-ID", "kaa/status/{hostname}"));
        assert!(!follows(
            "kaa-{hostname}-{pid}",
            "kaa/status/{hostname}-{random}"
        ));
        assert!(!follows("kaa-{hostname}", ""));
        // Told apart by nothing else, two appenders share a connection however their
        // templates read (before: the second took an id of its own, or with a persistent
        // session failed init).
        let written = broker("x", &format!("kaa/status/{}", identity::hostname()));
        let templated = broker("x", "kaa/status/{hostname}");
        assert_ne!(written.status_follows_id.0, templated.status_follows_id.0);
        assert!(written == templated);
        assert!(written.other_settings(&templated).is_empty());
    }

    #[test]
    fn transport_proxy_session_and_status_fields() {
        // Absent (a record of the 28 fields before them): TCP, no proxy, no expiry with clean
        // session, and the bare words earlier builds published.
        let c = AppenderConfig::from_avro(&through_connections(1, false).0, Layout::PlainTexts)
            .unwrap();
        assert_eq!(c.broker.transport, Transport::Tcp);
        assert!(c.broker.proxy.is_none());
        assert_eq!(
            c.broker.session_expiry,
            Some(3600),
            "MQTT 5, clean session off"
        );
        assert_eq!(c.broker.status_format, StatusFormat::Text);
        let c = AppenderConfig::from_avro(&through_connections(0, false).0, Layout::PlainTexts)
            .unwrap();
        assert_eq!(c.broker.session_expiry, None, "MQTT 3.1.1 has no expiry");
        let c =
            AppenderConfig::from_avro(&through_connections(1, true).0, Layout::PlainTexts).unwrap();
        assert_eq!(
            c.broker.session_expiry, None,
            "clean session: nothing to keep"
        );

        let full = |transport: i64, path: &str, proxy: (&str, i64, &str, &str), expiry: i64| {
            let mut e = through_connections(1, false);
            e.long(transport).string(path);
            e.string(proxy.0)
                .long(proxy.1)
                .string(proxy.2)
                .string(proxy.3);
            e.long(expiry).long(1);
            AppenderConfig::from_avro(&e.0, Layout::PlainTexts)
        };
        let c = full(
            1,
            " /mqtt/ws ",
            ("proxy.lan", 8080, "u", "proxy-secret"),
            60,
        )
        .unwrap();
        assert_eq!(
            c.broker.transport,
            Transport::WebSocket {
                path: "/mqtt/ws".into()
            }
        );
        let proxy = c.broker.proxy.as_ref().unwrap();
        assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.lan", 8080));
        assert_eq!(
            proxy.credentials,
            Some(("u".to_string(), "proxy-secret".to_string()))
        );
        assert_eq!(c.broker.session_expiry, Some(60));
        assert_eq!(c.broker.status_format, StatusFormat::Json);
        assert!(
            !format!("{c:?}").contains("proxy-secret"),
            "proxy password leaked into Debug"
        );
        let c = full(0, "", ("::1", 3128, "", ""), 0).unwrap();
        assert_eq!(c.broker.proxy.unwrap().host, "[::1]");
        assert_eq!(c.broker.session_expiry, None, "0: the session ends with it");

        let field = |r: Result<AppenderConfig, ConfigError>| r.unwrap_err().field;
        assert_eq!(field(full(2, "/", ("", 1, "", ""), 0)), "transport");
        assert_eq!(field(full(1, "mqtt", ("", 1, "", ""), 0)), "webSocketPath");
        assert_eq!(field(full(1, "/a b", ("", 1, "", ""), 0)), "webSocketPath");
        assert_eq!(
            field(full(1, "/mqtt#x", ("", 1, "", ""), 0)),
            "webSocketPath"
        );
        assert_eq!(
            field(full(1, "/mqtt?x", ("", 1, "", ""), 0)),
            "webSocketPath"
        );
        assert_eq!(field(full(0, "", ("p", 0, "", ""), 0)), "proxyPort");
        assert_eq!(field(full(0, "", ("p", 1, "", "pw"), 0)), "proxyUsername");
        assert_eq!(
            field(full(0, "", ("p", 1, "a:b", "pw"), 0)),
            "proxyUsername"
        );
        assert_eq!(field(full(0, "", ("http://p", 1, "", ""), 0)), "proxyHost");
        assert_eq!(
            field(full(0, "", ("", 1, "", ""), -1)),
            "sessionExpirySeconds"
        );
        let mut e = through_connections(1, false);
        e.long(0)
            .string("/mqtt")
            .string("")
            .long(1)
            .string("")
            .string("")
            .long(0)
            .long(2);
        assert_eq!(error_of(&e).field, "statusFormat");
        // Through a proxy, rumqttc would write an IPv6 broker address without brackets.
        let mut e = Encoder::default();
        e.string("::1")
            .0
            .extend_from_slice(&with_client_id("c").0[2..]);
        e.long(30).long(10).long(1000).long(0).long(0).long(60);
        e.string("").string("").string("").string("");
        e.boolean(false).boolean(true).long(10).long(4096);
        e.long(0).long(0).string("").string("").long(1);
        e.long(0).string("/mqtt").string("proxy").long(3128);
        assert_eq!(error_of(&e).field, "host");
    }

    /// A proxy's user name or password of spaces alone (how an operator fills the v1 and v2
    /// forms' texts to save them) is none, as every other such text: never sent as a credential.
    #[test]
    fn blank_proxy_credentials_are_none() {
        let proxy = |username: &str, password: &str| {
            let mut e = through_connections(1, true);
            e.long(0).string("/mqtt").string("proxy.lan").long(3128);
            e.string(username).string(password);
            AppenderConfig::from_avro(&e.0, Layout::PlainTexts).map(|c| c.broker.proxy.unwrap())
        };
        assert_eq!(proxy(" ", " ").unwrap().credentials, None);
        assert_eq!(proxy("  ", "\t").unwrap().credentials, None);
        assert_eq!(
            proxy("u", " ").unwrap().credentials,
            Some(("u".to_string(), String::new()))
        );
        assert_eq!(
            proxy("u", " pw ").unwrap().credentials,
            Some(("u".to_string(), " pw ".to_string())),
            "a password is taken as written"
        );
        assert_eq!(proxy(" ", "pw").unwrap_err().field, "proxyUsername");
    }

    /// The v1 and v2 forms save only with every text filled in, so operators fill those they do
    /// not use with spaces: with ssl on, TLS texts of spaces alone are none (the system's CAs,
    /// no client certificate, no ALPN), and so are `brokers` and `statusTopic`.
    #[test]
    fn texts_of_spaces_alone_are_none_with_ssl_on() {
        let mut e = with_tls_through_expiry([" ", "  ", "\t", " "]);
        e.string(" ").string(" ");
        let c = AppenderConfig::from_avro(&e.0, Layout::PlainTexts).unwrap();
        let tls = c.broker.tls.as_ref().expect("TLS on");
        assert!(tls.verify);
        // None at all, so an appender with empty texts shares its connection.
        let empty = with_tls_through_expiry(["", "", "", ""]);
        let empty = AppenderConfig::from_avro(&empty.0, Layout::PlainTexts).unwrap();
        assert_eq!(c.broker.tls, empty.broker.tls);
        assert!(tls.alpn.is_empty(), "{:?}", tls.alpn);
        assert!(c.broker.failover.is_empty(), "{:?}", c.broker.failover);
        assert_eq!(c.broker.status_topic, None);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    /// A CA nothing is verified against (verifySslCert off) is none to the connection: appenders
    /// that differ only in one left in the form share theirs. It is still said to be unused.
    #[test]
    fn a_ca_not_verified_against_is_none() {
        let config = |ca: &str| {
            let e = with_tls_verifying(false, ca, "", "", "");
            AppenderConfig::from_avro(&e.0, Layout::PlainTexts).unwrap()
        };
        let left = config("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
        assert_eq!(left.broker.tls, config("").broker.tls);
        assert!(left.warnings[0].starts_with("caCertificate is set but verifySslCert is off"));
    }

    /// [`with_tls`], then every field up to `messageExpirySeconds` (retain off, clean session,
    /// 10 s to connect, messages of 4 KiB at most, MQTT 3.1.1, no expiry).
    fn with_tls_through_expiry([ca, cert, key, alpn]: [&str; 4]) -> Encoder {
        let mut e = with_tls(ca, cert, key, alpn);
        e.boolean(false)
            .boolean(true)
            .long(10)
            .long(4096)
            .long(0)
            .long(0);
        e
    }

    fn with_tls(ca: &str, cert: &str, key: &str, alpn: &str) -> Encoder {
        with_tls_verifying(true, ca, cert, key, alpn)
    }

    fn with_tls_verifying(verify: bool, ca: &str, cert: &str, key: &str, alpn: &str) -> Encoder {
        tls_record("h", true, verify, [ca, cert, key, alpn])
    }

    /// A record of the full settings to `host`, with TLS or not, verifying or not, and the CA,
    /// client certificate, key and ALPN texts.
    fn tls_record(
        host: &str,
        ssl: bool,
        verify: bool,
        [ca, cert, key, alpn]: [&str; 4],
    ) -> Encoder {
        let mut e = Encoder::default();
        e.string(host)
            .long(8883)
            .boolean(ssl)
            .boolean(verify)
            .opt(None)
            .opt(None)
            .long(1)
            .string("c")
            .string("t")
            .long(30)
            .long(10)
            .long(1000)
            .long(0)
            .long(0)
            .long(60)
            .string(ca)
            .string(cert)
            .string(key)
            .string(alpn);
        e
    }

    #[test]
    fn tls_fields_are_checked_at_init() {
        let c = AppenderConfig::from_avro(
            &with_tls("", "", "", " mqtt , x-amzn-mqtt-ca,").0,
            Layout::PlainTexts,
        )
        .unwrap();
        let tls = c.broker.tls.expect("ssl on");
        assert!(tls.verify);
        assert_eq!(tls.alpn, vec!["mqtt", "x-amzn-mqtt-ca"]);
        assert_eq!(
            error_of(&with_tls("garbage", "", "", "")).field,
            "caCertificate"
        );
        assert_eq!(
            error_of(&with_tls("", "garbage", "", "")).field,
            "clientPrivateKey"
        );
        assert_eq!(
            error_of(&with_tls("", "", "garbage", "")).field,
            "clientCertificate"
        );
        let plain =
            AppenderConfig::from_avro(&original("h", 1883, 1, "t").0, Layout::PlainTexts).unwrap();
        assert!(plain.broker.tls.is_none());
        let name = |bytes: usize| "a".repeat(bytes);
        assert!(
            AppenderConfig::from_avro(&with_tls("", "", "", &name(255)).0, Layout::PlainTexts)
                .is_ok()
        );
        assert_eq!(
            error_of(&with_tls("", "", "", &name(256))).field,
            "alpnProtocols"
        );
        let many = vec![name(255); 256].join(",");
        assert_eq!(
            error_of(&with_tls("", "", "", &many)).field,
            "alpnProtocols"
        );
    }

    /// A CA given while verification is off is not used: said at init, not ignored silently.
    #[test]
    fn ca_certificate_without_verification_is_warned_about() {
        let c = AppenderConfig::from_avro(
            &with_tls_verifying(false, "a CA", "", "", "").0,
            Layout::PlainTexts,
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("caCertificate is set but verifySslCert is off"));
        let quiet = AppenderConfig::from_avro(
            &with_tls_verifying(false, "", "", "", "").0,
            Layout::PlainTexts,
        )
        .unwrap();
        assert!(quiet.warnings.is_empty());
    }

    /// TLS fields filled in while ssl is off are not used, and the credentials would cross in
    /// clear to a port that wants TLS: said at init.
    #[test]
    fn tls_fields_without_ssl_are_warned_about() {
        let plain = |fields| {
            AppenderConfig::from_avro(&tls_record("h", false, true, fields).0, Layout::PlainTexts)
                .unwrap()
        };
        let c = plain(["a CA", "", "", "x-amzn-mqtt-ca"]);
        assert!(c.broker.tls.is_none());
        assert!(
            (c.warnings.iter())
                .any(|w| w.starts_with("caCertificate, alpnProtocols set but ssl is off")),
            "{:?}",
            c.warnings
        );
        assert!(plain([" ", "", "", ""]).warnings.is_empty());
    }

    /// The bundled schema of each plugin generation: its fields, in order, each with the
    /// admin form's default.
    fn bundled_fields(schema: &str) -> Vec<serde_json::Value> {
        let path = format!(
            "{}/java/appender/src/main/resources/org/kaaproject/kaa/server/appenders/pahomqtt/\
             config/{schema}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let schema: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        schema["fields"].as_array().expect("fields").clone()
    }

    /// A field at its form default (an optional one null), as the admin stores it.
    fn write_default(e: &mut Encoder, field: &serde_json::Value) {
        let default = &field["by_default"];
        match &field["type"] {
            serde_json::Value::Array(branches) => {
                let null = branches.iter().position(|b| b == "null").expect("optional");
                e.long(null as i64);
            }
            serde_json::Value::String(t) if t == "string" => {
                e.string(default.as_str().unwrap_or(""));
            }
            serde_json::Value::String(t) if t == "int" => {
                e.long(default.as_i64().unwrap_or(0));
            }
            serde_json::Value::String(t) if t == "boolean" => {
                e.boolean(default.as_bool().unwrap_or(false));
            }
            serde_json::Value::Object(t) if t["type"] == "enum" => {
                let symbols = t["symbols"].as_array().expect("symbols");
                e.long(symbols.iter().position(|s| s == default).unwrap_or(0) as i64);
            }
            other => panic!("{}: type {other} unknown to this test", field["name"]),
        }
    }

    /// The decoder reads each generation's fields in the order and encoding its bundled
    /// schema gives them, the schema the admin stores configurations with: a field made
    /// undecodable (a varint cut short: every type but boolean starts with one; a boolean
    /// missing, where the record may not end) fails init naming that field, after the fields
    /// before it at their form defaults. Each generation
    /// reads as the start of the next (earlier records under a class end early), and a record
    /// of the newest of a layout followed by one byte more has bytes past the last field the
    /// decoder knows. Nothing else ties the hand-written reading to the `.avsc` files.
    #[test]
    fn every_generation_is_read_in_its_bundled_schemas_field_order() {
        let mut earlier: Vec<String> = Vec::new();
        for (schema, generation, newest_of_layout) in [
            ("PahoMqttConfig.avsc", 0, false),
            ("MqttAppenderConfig.avsc", 1, false),
            ("MqttAppenderConfigV2.avsc", 2, true),
            ("MqttAppenderConfigV3.avsc", 3, true),
        ] {
            let layout = Layout::of_generation(generation).unwrap();
            let fields = bundled_fields(schema);
            let names: Vec<String> = fields
                .iter()
                .map(|f| f["name"].as_str().expect("name").to_owned())
                .collect();
            assert!(
                names.starts_with(&earlier),
                "{schema} starts with {earlier:?}"
            );
            earlier = names;
            let mut prefix = Encoder::default();
            for field in &fields {
                let name = field["name"].as_str().expect("name");
                if field["type"] != "boolean" {
                    let mut cut = prefix.0.clone();
                    cut.push(0x80);
                    let e = AppenderConfig::from_avro(&cut, layout).expect_err(name);
                    assert_eq!(e.field, name, "{schema}: {e}");
                } else if let Err(e) = AppenderConfig::from_avro(&prefix.0, layout) {
                    if e.message.starts_with("cannot be decoded") {
                        assert_eq!(e.field, name, "{schema}: {e}");
                    }
                }
                write_default(&mut prefix, field);
            }
            if newest_of_layout {
                prefix.0.push(0);
                let e = AppenderConfig::from_avro(&prefix.0, layout).expect_err(schema);
                assert_eq!(e.field, "(end)", "{schema}: {e}");
            }
        }
    }
}

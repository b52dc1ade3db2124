//! One configured appender: checks a pack as Kaa handed it (null events, no log schema),
//! decodes its records into payloads, hands them to its pooled connection and makes sure every
//! pack is answered by its deadline. Every answer, whoever gives it, goes through the pack's
//! completion with its tally, so the metrics count each one once Kaa has it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{AppenderConfig, BrokerConfig, ConfigError, Grouping, MqttVersion, Unkeyed};
use crate::connection::{runtime, Connection};
use crate::decode::LogSchema;
use crate::delivery::{
    pack_bounds, Completion, Crowded, Outcome, Pack, Why, PENDING_BYTES_PER_RECORD,
};
use crate::header::{HeaderStructure, RecordHeader};
use crate::log_budget::{shown_in_log, LogBudget};
use crate::metrics::{AppenderMetrics, ConnectionMetrics, Snapshot, Tally};
use crate::node_memory::{self, node_bound_warning, node_pending_bytes, pending_bound_warning};
use crate::payload::Encoder;
use crate::protocol::{Message, Origin, PublishOptions};
use crate::supervise::{lock, read, restarting, write};
use crate::tls::{CertificateWatch, TlsSettings};
use crate::topic::{as_mqtt_text, PackValues};
use crate::utc::unix_now;

/// How often packs past their deadline are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// After a panic the sweep starts again this much later (a panic that repeats logs once a
/// second, not ten times).
const SWEEP_RESTART_PAUSE: Duration = Duration::from_secs(1);
/// How long a closed appender holds its connections at least. Kaa edits an appender by
/// closing it and, after a database read, creating it again
/// (`ApplicationLogActorMessageProcessor`: remove, then add): with the same connection
/// settings the new one takes them over, where an idle one's connection closed at once and
/// was made again, its `statusTopic` saying `offline`, then `online`.
const EDIT_GRACE: Duration = Duration::from_secs(2);

/// What gives a pack's answer to Kaa, and counts it ([`Tally::answered`]) once Kaa has it.
pub type Answer = Box<dyn FnOnce(Outcome, Tally) + Send>;

/// A pack's log schema as Kaa's `LogSchema` gives it, nulls as `None`.
pub struct PackSchema<'a, T: FnOnce() -> Option<String>> {
    /// `getId()`: with the version, it names the schema (see `Appender::last_schema`).
    pub id: Option<&'a str>,
    /// `getVersion()` (0 when the pack has no `LogSchema`).
    pub version: i32,
    /// `getSchema()`, the Avro JSON text: called only when the schema is not cached.
    pub text: T,
}

/// The log budget's kinds of [`Unreadable`] packs (see [`LogBudget`]).
const UNREADABLE: &str = "unreadable";
const TOO_MANY_RECORDS: &str = "too many records";

/// A pack that cannot be read: a null list of events, a null event or null data, an endpoint
/// key the JVM failed to hand over, or more records than can ever be in flight (not copied).
#[derive(Debug)]
pub struct Unreadable {
    /// Events in the pack (0 without a list): what its failure counts as records failed.
    pub events: usize,
    /// Why, for the log line, and its kind there.
    pub reason: String,
    pub kind: &'static str,
}

/// A pack's records as they crossed from Java: each copied once, straight into one buffer.
#[derive(Default)]
pub struct PackRecords {
    data: Vec<u8>,
    ends: Vec<usize>,
    /// Why the pack cannot be published, and its kind: the first event without data, a null
    /// list, a failed read; too many records.
    unreadable: Option<(&'static str, String)>,
    /// The events of a pack not read to its end, which `ends` does not hold.
    events: usize,
}

impl PackRecords {
    /// Room for `events` more events of `bytes` bytes in all, if the process has it: a failed
    /// allocation would abort the JVM, which no `catch_unwind` catches.
    pub fn try_reserve(
        &mut self,
        events: usize,
        bytes: usize,
    ) -> Result<(), std::collections::TryReserveError> {
        self.data.try_reserve_exact(bytes)?;
        self.ends.try_reserve_exact(events)
    }

    /// A pack of `events` whose records cannot be read at all.
    pub fn unreadable(events: usize, reason: String) -> Self {
        PackRecords {
            unreadable: Some((UNREADABLE, reason)),
            events,
            ..PackRecords::default()
        }
    }

    /// A pack of `events` not read, as [`Appender::fits_in_flight`] refused their number.
    pub fn too_many(events: usize, reason: String) -> Self {
        PackRecords {
            unreadable: Some((TOO_MANY_RECORDS, reason)),
            events,
            ..PackRecords::default()
        }
    }

    /// The next record's bytes, `len` of them, for the caller to fill (zeroed until then).
    pub fn next_record(&mut self, len: usize) -> &mut [u8] {
        let start = self.data.len();
        self.data.resize(start + len, 0);
        self.ends.push(self.data.len());
        &mut self.data[start..]
    }

    /// The pack cannot be published for a reason outside its records (kept if it has one).
    pub fn refuse(&mut self, reason: String) {
        self.unreadable.get_or_insert((UNREADABLE, reason));
    }

    /// The next event is null or has no data.
    pub fn next_missing(&mut self) {
        let i = self.ends.len();
        self.unreadable
            .get_or_insert_with(|| (UNREADABLE, format!("event {i} is null or has no data")));
        self.ends.push(self.data.len());
    }

    /// The records, or why the pack cannot be published.
    pub fn slices(&self) -> Result<Vec<&[u8]>, Unreadable> {
        if let Some((kind, reason)) = &self.unreadable {
            return Err(Unreadable {
                events: self.ends.len().max(self.events),
                reason: reason.clone(),
                kind,
            });
        }
        let mut start = 0;
        Ok(self
            .ends
            .iter()
            .map(|&end| {
                let record = &self.data[start..end];
                start = end;
                record
            })
            .collect())
    }
}

/// Log schemas kept parsed (or refused) per appender: a Kaa application has a few versions,
/// and texts that change with every pack must not grow the memory.
const SCHEMAS_KEPT: usize = 64;

pub struct Appender {
    name: String,
    application_token: String,
    header: HeaderStructure,
    config: AppenderConfig,
    encoder: Encoder,
    /// The pooled connections (`connectionsPerBroker`); empty once closed.
    /// Appends share it (each registers its pack under it, see `append`); `close` takes it.
    connections: RwLock<Vec<Arc<Connection>>>,
    /// Log schemas by their text, parsed or refused, for a pack whose schema is not the last
    /// one's; [`SCHEMAS_KEPT`] at most.
    schemas: Mutex<HashMap<String, Result<Arc<LogSchema>, String>>>,
    /// The last pack's schema by its `LogSchema` id and version, which name one text in Kaa (a
    /// log schema version never changes): a pack with the same id and version takes it without
    /// its text being read across JNI or hashed.
    last_schema: Mutex<Option<(String, i32, Arc<LogSchema>)>>,
    /// Packs not known to be answered, oldest first, with their deadlines (in the order packs
    /// reach the connection lock, a few microseconds apart from their acceptance: a deadline
    /// behind a later one waits for it, at most a sweep longer).
    live: Mutex<Live>,
    metrics: Arc<AppenderMetrics>,
    /// For the lines of packs that cannot be published, which an endpoint can repeat, and of
    /// packs past their deadline, which an outage repeats at every sweep.
    failed_pack_lines: LogBudget,
    /// This appender's [`Origin::appender`]: the topics one appender's template makes say
    /// nothing of another's, on a connection they share.
    number: u64,
}

/// The next appender's [`Origin::appender`]; 0 is the connection's own messages'.
static APPENDERS: AtomicU64 = AtomicU64::new(1);

/// Takes note of `appender`, just opened, and returns what to say of it beside the appenders
/// open before it ([`Appender::beside`]), `alone` whether its own bound was said to pass the
/// node's memory. One at a time: of two opened at once, the second weighs the first. Closed
/// appenders hold no connection ([`Appender::bounds`]) and are forgotten once dropped.
fn opened(appender: &Arc<Appender>, alone: bool, limit: Option<(u64, &str)>) -> Vec<String> {
    static OPENED: Mutex<Vec<Weak<Appender>>> = Mutex::new(Vec::new());
    let mut opened = lock(&OPENED);
    opened.retain(|a| a.strong_count() > 0);
    let others: Vec<_> = opened.iter().filter_map(Weak::upgrade).collect();
    let said = appender.beside(&others, alone, limit);
    opened.push(Arc::downgrade(appender));
    said
}

/// The settings of each of the appender's `connectionsPerBroker` connections. Each needs its
/// own client id: a broker drops the older of two clients with the same one. Only the first
/// carries the status topic and its last will: with one retained status for all of them, the
/// will of any one would say "offline" while the others run.
fn connection_settings(config: &AppenderConfig) -> Vec<BrokerConfig> {
    (0..config.connections)
        .map(|i| {
            let mut broker = config.broker.clone();
            if config.connections > 1 {
                broker.client_id = format!("{}-{i}", broker.client_id);
            }
            if i > 0 {
                broker.status_topic = None;
                broker.status_follows_id = Unkeyed(false);
            }
            broker
        })
        .collect()
}

impl Appender {
    /// Fails, for `init` to fail, when a connection cannot be had: its client id is held by
    /// another appender's connection with other settings, and names a persistent session.
    pub fn open(
        name: &str,
        application_token: &str,
        header: HeaderStructure,
        config: AppenderConfig,
    ) -> Result<Arc<Appender>, ConfigError> {
        let mut connections = Vec::new();
        for settings in connection_settings(&config) {
            match Connection::get(&settings) {
                Ok(connection) => connections.push(connection),
                Err(why) => {
                    // Given back: they may be other appenders' too, whose close then finds
                    // them on their way out.
                    for connection in &connections {
                        connection.draining(Instant::now());
                    }
                    return Err(why);
                }
            }
        }
        log::info!(
            "appender '{name}' publishes to '{}' at QoS {} via {}:{}",
            config.topic.text(),
            config.qos.number(),
            config.broker.host,
            config.broker.port
        );
        for warning in &config.warnings {
            log::warn!("appender '{name}': {warning}");
        }
        let (pending, each) = (config.max_pending_records, config.connections);
        let limit = node_memory::limit();
        let alone = pending_bound_warning(pending, each, limit);
        if let Some(warning) = &alone {
            log::warn!("appender '{name}': {warning}");
        }
        let appender = Arc::new(Appender {
            name: name.to_string(),
            application_token: application_token.to_string(),
            header,
            encoder: Encoder {
                format: config.payload_format,
                grouping: config.grouping,
                max_payload: config.max_message_bytes,
                max_held: pack_bounds(config.max_pending_records).1,
            },
            config,
            connections: RwLock::new(connections),
            schemas: Mutex::default(),
            last_schema: Mutex::default(),
            live: Mutex::default(),
            metrics: Arc::default(),
            failed_pack_lines: LogBudget::default(),
            number: APPENDERS.fetch_add(1, Ordering::Relaxed),
        });
        for warning in opened(&appender, alone.is_some(), limit) {
            log::warn!("appender '{name}': {warning}");
        }
        let weak = Arc::downgrade(&appender);
        runtime().spawn(restarting(
            format!("the deadline sweep of appender '{name}'"),
            SWEEP_RESTART_PAUSE,
            move || sweep(weak.clone()),
        ));
        Ok(appender)
    }

    /// Whether a pack of `events` records can ever be in flight at once, by their number alone
    /// ([`fits_pending_count`]). The bridge asks before it copies the records out of Java: 1M
    /// one-byte records took 138 ms and 24 MB to read, only to be refused.
    pub fn fits_in_flight(&self, events: usize) -> Result<(), String> {
        fits_pending_count(self.messages(events), self.config.max_pending_records)
    }

    /// The messages a pack of `events` records makes.
    fn messages(&self, events: usize) -> usize {
        match self.config.grouping {
            Grouping::Record => events,
            Grouping::Pack => 1,
        }
    }

    /// A pack of `events` not taken, because the answers to Kaa are late (`answer_lag`): its
    /// answer, and its tally, for the bridge to give at once.
    pub fn turn_away(&self, events: usize) -> (Outcome, Tally) {
        (Why::Lost.outcome(), Tally::start(&self.metrics, events))
    }

    /// Takes one pack as Kaa handed it, unchecked: records that could not be read (`Err`) are
    /// answered here like any other pack that cannot be published, through the same completion,
    /// metrics and log line. `answer` runs exactly once, never on the calling thread's stack
    /// before this returns unless the answer is immediate (bad data, closed, bound reached),
    /// with the pack's [`Tally`], to count once Kaa has the answer.
    pub fn append<R: AsRef<[u8]>, T: FnOnce() -> Option<String>>(
        &self,
        schema: PackSchema<'_, T>,
        records: Result<&[R], &Unreadable>,
        endpoint: &str,
        answer: Answer,
    ) {
        let records_in_pack = match records {
            Ok(records) => records.len(),
            Err(unreadable) => unreadable.events,
        };
        let tally = Tally::start(&self.metrics, records_in_pack);
        let completion: Completion = Box::new(move |outcome| answer(outcome, tally));
        let not_published = |kind: &'static str, reason: &str| {
            if let Some(note) = self.failed_pack_lines.take(kind, Instant::now()) {
                log::warn!(
                    "appender '{}': pack of {records_in_pack} records from endpoint {} not \
                     published: {reason}{note}",
                    self.name,
                    shown_in_log(endpoint)
                );
            }
        };
        let records = match records {
            Ok(records) => records,
            Err(unreadable) => {
                not_published(unreadable.kind, &unreadable.reason);
                return completion(Why::Unpublishable.outcome());
            }
        };
        if records.is_empty() {
            return completion(Why::Confirmed.outcome());
        }
        // Before the schema is read or a record decoded: a hostile pack of 1M one-byte records
        // (2 MB uploaded) would otherwise become 1M messages, 764 MB under MQTT 5, to be refused.
        // (The bridge refuses it so before copying its records: `PackRecords::too_many`.)
        if let Err(reason) = self.fits_in_flight(records.len()) {
            not_published(TOO_MANY_RECORDS, &reason);
            return completion(Why::Unpublishable.outcome());
        }
        let messages = self.messages(records.len());
        // The endpoint key hashed once for the pack.
        let origin = self.origin(endpoint);
        if let Some(crowded) = self.crowded(endpoint, origin, messages) {
            // Checked again on submit; here it spares decoding a pack that would be refused
            // (with the broker away, 2 to 80 ms per pack of 100 records of 4 KiB).
            if let Some(reason) = crowded.reason() {
                not_published("over its endpoint's share", &reason);
            }
            return completion(Why::Lost.outcome());
        }
        let schema_version = schema.version;
        let header =
            self.header
                .header(&self.application_token, endpoint, schema_version, now_ms());
        let pack_values = PackValues {
            application_token: &self.application_token,
            endpoint_key_hash: endpoint,
            log_schema_version: schema_version,
            appender_name: &self.name,
            output_limit: self.encoder.pack_limit(records),
        };
        // Before decoding: every message carries these, and a long endpoint key could make
        // them alone pass the bound.
        let labels = self.pack_labels(&pack_values, &header).and_then(|labels| {
            let bytes: usize = labels.iter().map(|(k, v)| k.len() + v.len()).sum();
            fits_pending_bytes(
                bytes.saturating_mul(messages),
                self.config.max_pending_records,
            )
            .map(|()| labels)
        });
        let labels = match labels {
            Ok(labels) => labels,
            Err(reason) => {
                not_published("unpublishable", &reason);
                return completion(Why::Unpublishable.outcome());
            }
        };
        let messages = match self.schema(schema).and_then(|schema| {
            let payloads = self.encoder.encode(&schema, &header, records)?;
            let mut scratch = Vec::new();
            let template = &self.config.topic;
            // Without record fields the topic is the pack's: rendered once, not per message.
            let mut pack_topic = if template.has_event_fields() {
                None
            } else {
                Some(template.render(&pack_values, &schema, None, &mut scratch)?)
            };
            // Counted as they are made: each message holds its own topic rendered from
            // record fields, and the endpoint key in each could pass the bound many times.
            // The last message takes the pack's topic itself, so that each is counted as the
            // tracker counts it (`Message::bytes`: a topic no other message shares).
            let mut bytes = 0usize;
            let last = payloads.len().saturating_sub(1);
            payloads
                .into_iter()
                .enumerate()
                .map(|(i, payload)| {
                    // One message per record, or one per pack (then no record fields).
                    let record =
                        (self.config.grouping == Grouping::Record).then(|| records[i].as_ref());
                    let shared = if i == last {
                        pack_topic.take()
                    } else {
                        pack_topic.clone()
                    };
                    let topic = match shared {
                        Some(topic) => topic,
                        None => template.render(&pack_values, &schema, record, &mut scratch)?,
                    };
                    let labels = record_labels(&labels, record.map(|r| (i, r)));
                    let message = Message {
                        topic,
                        payload,
                        labels,
                    };
                    bytes = bytes.saturating_add(message.bytes());
                    fits_pending_bytes(bytes, self.config.max_pending_records)?;
                    Ok(message)
                })
                .collect::<Result<Vec<_>, String>>()
        }) {
            Ok(messages) => messages,
            Err(reason) => {
                not_published("unpublishable", &reason);
                return completion(Why::Unpublishable.outcome());
            }
        };
        let pack = Pack::new(messages.len(), completion);
        // Registered under the connection lock, so `close` either sees this pack or has
        // already closed and we refuse it: no pack can slip past both.
        let connections = read(&self.connections);
        let Some(connection) = connections.get(connection_index(endpoint, connections.len()))
        else {
            log::debug!(
                "appender '{}' is closed; pack from {} refused",
                self.name,
                shown_in_log(endpoint)
            );
            pack.finish(Why::Closed);
            return;
        };
        lock(&self.live).push(pack.accepted() + self.config.delivery_timeout, &pack);
        let how = PublishOptions {
            qos: self.config.qos,
            retain: self.config.retain,
            content_type: self.encoder.content_type(),
            message_expiry: self.config.message_expiry,
            patience: Some(self.config.delivery_timeout),
            origin,
        };
        let crowded = connection.submit(&pack, how, messages, self.config.max_pending_records);
        if let Some(reason) = crowded.as_ref().and_then(Crowded::reason) {
            not_published("over its endpoint's share", &reason);
        }
    }

    /// Each of its connections (by address: one another appender shares is the same) with
    /// its `maxPendingRecords`, for what the node's appenders may hold together; none once
    /// closed.
    fn bounds(&self) -> Vec<(*const Connection, usize)> {
        read(&self.connections)
            .iter()
            .map(|c| (Arc::as_ptr(c), self.config.max_pending_records))
            .collect()
    }

    /// What to say of this appender, just opened, beside the `others` open (closed ones hold
    /// nothing). That it shares a connection with appenders of another `maxPendingRecords`
    /// (Kaa's form shows no connection: appenders whose connection settings are all alike
    /// share one): a connection counts every appender's messages against the bound of the
    /// appender whose pack comes, so the smaller bound fails its packs for the others'
    /// messages, and the largest bounds the connection. And, unless its own bound was said to
    /// pass half of the node's memory already (`alone`), that it takes the node's appenders
    /// past that half together ([`node_bound_warning`]).
    fn beside(
        &self,
        others: &[Arc<Appender>],
        alone: bool,
        limit: Option<(u64, &str)>,
    ) -> Vec<String> {
        let pending = self.config.max_pending_records;
        let mine = self.bounds();
        let theirs: Vec<_> = others.iter().map(|a| (a, a.bounds())).collect();
        let shared: Vec<String> = theirs
            .iter()
            .filter(|(a, bounds)| {
                a.config.max_pending_records != pending
                    && bounds.iter().any(|(c, _)| mine.iter().any(|(m, _)| m == c))
            })
            .map(|(a, _)| format!("'{}' ({})", a.name, a.config.max_pending_records))
            .collect();
        let mut said = Vec::new();
        if !shared.is_empty() {
            said.push(format!(
                "its maxPendingRecords ({pending}) is not that of the appenders it shares \
                 connections with: {}; a connection counts every appender's messages against the \
                 bound of the appender whose pack comes, so an appender with a smaller bound \
                 has its packs fail once the connection holds that bound, whichever appender's \
                 messages those are, and the connection holds up to the largest; give an \
                 appender that needs a bound of its own a clientId of its own",
                shared.join(", ")
            ));
        }
        let before = theirs.iter().flat_map(|(_, bounds)| bounds.iter().copied());
        let weighed = (
            node_pending_bytes(before.clone()),
            node_pending_bytes(before.chain(mine)),
        );
        let open = theirs
            .iter()
            .filter(|(_, bounds)| !bounds.is_empty())
            .count()
            + 1;
        if !alone {
            said.extend(node_bound_warning(weighed, open, limit));
        }
        said
    }

    /// Whose messages a pack of `endpoint`'s makes.
    fn origin(&self, endpoint: &str) -> Origin {
        Origin {
            appender: self.number,
            endpoint: fnv1a(endpoint.as_bytes()),
        }
    }

    /// Which bound of the endpoint's connection, if any, this pack's `messages` (which alone
    /// fit, [`fits_pending_count`]) would pass, counted before their bytes are known.
    fn crowded(&self, endpoint: &str, origin: Origin, messages: usize) -> Option<Crowded> {
        let max = self.config.max_pending_records;
        let connections = read(&self.connections);
        connections
            .get(connection_index(endpoint, connections.len()))?
            .crowded(origin, messages, max)
    }

    /// The MQTT 5 user properties of the pack's messages: its Kaa header values, as MQTT text
    /// ([`as_mqtt_text`]: the broker closes the connection at a character it refuses), or why
    /// one cannot be an MQTT string (over 65,535 bytes; rumqttc would cut its length to 16
    /// bits, a malformed packet). Empty under MQTT 3.1.1.
    fn pack_labels(
        &self,
        pack: &PackValues,
        header: &RecordHeader,
    ) -> Result<Vec<(String, String)>, String> {
        if self.config.broker.version != MqttVersion::V5 {
            return Ok(Vec::new());
        }
        let mut labels = vec![
            ("endpointKeyHash", pack.endpoint_key_hash.to_string()),
            ("applicationToken", pack.application_token.to_string()),
            ("logSchemaVersion", pack.log_schema_version.to_string()),
        ];
        if let Some(timestamp) = header.timestamp {
            labels.push(("timestamp", timestamp.to_string()));
        }
        labels
            .into_iter()
            .map(|(key, value)| {
                let value = as_mqtt_text(&value).into_owned();
                if value.len() > usize::from(u16::MAX) {
                    return Err(format!(
                        "its {key} is {} bytes, more than an MQTT 5 user property holds (65535)",
                        value.len()
                    ));
                }
                Ok((key.to_string(), value))
            })
            .collect()
    }

    /// The pack's parsed schema: the last pack's when id and version match, else by its text
    /// (read only then), parsed once per text while it is among the [`SCHEMAS_KEPT`].
    fn schema<T: FnOnce() -> Option<String>>(
        &self,
        pack: PackSchema<'_, T>,
    ) -> Result<Arc<LogSchema>, String> {
        if let (Some(id), Some((last_id, last_version, schema))) =
            (pack.id, &*lock(&self.last_schema))
        {
            if id == last_id && pack.version == *last_version {
                return Ok(Arc::clone(schema));
            }
        }
        let text = (pack.text)().ok_or("the pack has no log schema (or its text is null)")?;
        let cached = lock(&self.schemas).get(&text).cloned();
        // Parsed outside the lock, which every other pack of the appender waits on; a schema
        // that fails is kept failed, not parsed again for each of its packs.
        let schema = match cached {
            Some(parsed) => parsed,
            None => {
                let parsed = LogSchema::parse(&text)
                    .map(Arc::new)
                    .map_err(|e| format!("bad log schema: {e}"));
                let mut schemas = lock(&self.schemas);
                if schemas.len() >= SCHEMAS_KEPT {
                    // Any one: what a pack needs again is parsed again, once.
                    if let Some(gone) = schemas.keys().next().cloned() {
                        schemas.remove(&gone);
                    }
                }
                schemas.insert(text, parsed.clone());
                parsed
            }
        }?;
        if let Some(id) = pack.id {
            *lock(&self.last_schema) = Some((id.to_string(), pack.version, Arc::clone(&schema)));
        }
        Ok(schema)
    }

    /// Fails packs whose deadline has passed; forgets packs already answered.
    fn expire(&self, now: Instant) {
        // At every sweep, not only when a pack expires: a message is written a moment after
        // its pack is accepted, so at its pack's deadline it may not be over the limit yet.
        // Before the packs past their deadline are answered and their waiting messages
        // dropped: a message waiting for another appender's full window is past its patience
        // only then. (The tracker keeps what the sweep found for the driver's look, which
        // may come after those packs are answered: `Tracker::take_stall`.)
        for connection in read(&self.connections).iter() {
            connection.sweep(now);
        }
        let mut expired = 0usize;
        let mut live = lock(&self.live);
        while let Some((deadline, pack)) = live.packs.front() {
            match pack.upgrade() {
                Some(pack) if !pack.is_done() => {
                    if *deadline > now {
                        break;
                    }
                    pack.finish(Why::Expired);
                    expired += 1;
                }
                _ => {}
            }
            live.packs.pop_front();
        }
        live.compact(self.metrics.in_flight());
        drop(live);
        if expired > 0 {
            // Budgeted: through an outage with packs coming, a sweep every 100 ms finds some,
            // in every appender sharing the connection, whose WARN says why once: one budget
            // for them all (with one each, 100 appenders could write 1,000 such lines a minute).
            let line = match read(&self.connections).first() {
                Some(connection) => connection.line_about_packs("expired", now),
                None => self.failed_pack_lines.take("expired", now),
            };
            if let Some(note) = line {
                log::warn!(
                    "appender '{}': {expired} pack{} not confirmed within {}s failed as \
                     connection errors{note}",
                    self.name,
                    if expired == 1 { "" } else { "s" },
                    self.config.delivery_timeout.as_secs()
                );
            }
            for connection in read(&self.connections).iter() {
                connection.prune();
            }
        }
    }

    /// Returns at once; later appends are answered `InternalError` at once. Packs still in
    /// flight keep waiting for the broker's acks, for `closeTimeoutSeconds` at most (and never
    /// past their own deadline): a task on the runtime holds the connections meanwhile, and
    /// for [`EDIT_GRACE`] at least, so an appender created again with the same configuration
    /// shares them, and answers what is left `ConnectionError`, as at a pack's deadline: the
    /// broker did not confirm it in time, and Kaa sends it again. Then it lets go of the
    /// connections. With a close timeout of zero, packs in flight are answered `InternalError`
    /// at once.
    pub fn close(&self) {
        let connections = std::mem::take(&mut *write(&self.connections));
        let live: Vec<_> = lock(&self.live).packs.drain(..).collect();
        let timeout = self.config.close_timeout;
        let now = Instant::now();
        let until = now + timeout;
        if timeout.is_zero() {
            let mut failed = 0;
            for pack in live.iter().filter_map(|(_, p)| p.upgrade()) {
                failed += usize::from(!pack.is_done());
                pack.finish(Why::Closed);
            }
            for connection in &connections {
                connection.prune();
            }
            if failed > 0 {
                // The JMX bean goes with the close: this line is all that tells of them.
                log::warn!(
                    "appender '{}': {failed} pack{} in flight at close failed as internal \
                     errors (closeTimeoutSeconds is 0)",
                    self.name,
                    if failed == 1 { "" } else { "s" }
                );
            }
        }
        // Held until answered, so the drain can say how each was.
        let live: VecDeque<_> = live
            .into_iter()
            .filter_map(|(deadline, pack)| {
                let pack = pack.upgrade().filter(|p| !p.is_done())?;
                Some((deadline.min(until), pack))
            })
            .collect();
        if live.is_empty() {
            log::info!("appender '{}' closed", self.name);
        } else {
            log::info!(
                "appender '{}' closed; {} packs in flight wait up to {} s (closeTimeoutSeconds) for the broker",
                self.name,
                live.len(),
                timeout.as_secs()
            );
        }
        if connections.is_empty() {
            return; // closed before
        }
        let held = now + EDIT_GRACE;
        let last = if live.is_empty() {
            held
        } else {
            until.max(held)
        };
        for connection in &connections {
            connection.draining(last);
        }
        let draining = Arc::new(Draining {
            name: self.name.clone(),
            live: Mutex::new(Drained {
                at_close: live.len(),
                waiting: live,
                confirmed: 0,
                expired: 0,
            }),
            held,
            connections,
        });
        runtime().spawn(restarting(
            format!("the close of appender '{}'", self.name),
            SWEEP_RESTART_PAUSE,
            move || drain(Arc::clone(&draining)),
        ));
    }

    fn is_closed(&self) -> bool {
        read(&self.connections).is_empty()
    }

    /// The counters, with the connections' state: connected when all are, reconnects,
    /// takeovers and messages awaiting the broker summed; a closed appender reports itself unconnected.
    pub fn metrics(&self) -> Snapshot {
        let connections = read(&self.connections);
        let combined = ConnectionMetrics::default();
        combined
            .connected
            .store(!connections.is_empty(), Ordering::Relaxed);
        let mut awaiting = 0;
        for c in connections.iter() {
            let m = c.metrics();
            combined
                .reconnects
                .fetch_add(m.reconnects.load(Ordering::Relaxed), Ordering::Relaxed);
            combined
                .takeovers
                .fetch_add(m.takeovers.load(Ordering::Relaxed), Ordering::Relaxed);
            if !m.connected.load(Ordering::Relaxed) {
                combined.connected.store(false, Ordering::Relaxed);
            }
            awaiting += c.outstanding();
        }
        self.metrics.snapshot(&combined, awaiting)
    }
}

/// What a closed appender still holds while its packs in flight wait for the broker.
struct Draining {
    name: String,
    live: Mutex<Drained>,
    /// [`EDIT_GRACE`] after the close: the connections are held until then at least.
    held: Instant,
    /// Held until the last pack is answered, so the connections stay up for their acks.
    connections: Vec<Arc<Connection>>,
}

/// The packs in flight at close: those still waiting, and how the others were answered. Kept
/// beside the drain, not in it: a drain restarted after a panic goes on from here.
struct Drained {
    /// Packs not yet answered, each with its deadline (its own, or the close's).
    waiting: VecDeque<(Instant, Arc<Pack>)>,
    at_close: usize,
    confirmed: usize,
    /// Failed at their deadline by the drain; the rest were answered otherwise (a refusal, a
    /// loss: logged where they happened).
    expired: usize,
}

/// Waits until every pack in flight at close is answered, failing those whose deadline
/// passes (`ConnectionError`), and until [`EDIT_GRACE`] has passed, then lets go of the
/// connections (dropping `draining`'s last reference). Runs under [`restarting`], like the
/// sweep.
async fn drain(draining: Arc<Draining>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Before packs past their deadline are answered, as at an appender's sweep.
        let now = Instant::now();
        for connection in &draining.connections {
            connection.sweep(now);
        }
        let mut live = lock(&draining.live);
        let Drained {
            waiting,
            confirmed,
            expired,
            ..
        } = &mut *live;
        // Out of the list before any completion runs: one that panics costs the count of
        // those after it (they show as answered otherwise), never a second count after the
        // restart.
        let mut due = Vec::new();
        waiting.retain(|(deadline, pack)| {
            let wait = !pack.is_done() && *deadline > now;
            if !wait {
                due.push(Arc::clone(pack));
            }
            wait
        });
        for pack in due {
            pack.finish(Why::Expired);
            match pack.answer() {
                Some(Why::Confirmed) => *confirmed += 1,
                Some(Why::Expired) => *expired += 1,
                _ => {}
            }
        }
        if waiting.is_empty() {
            if now >= draining.held {
                break;
            }
            continue;
        }
    }
    for connection in &draining.connections {
        connection.prune();
    }
    // The JMX bean went with the close: after an edit, this line says what became of them.
    let Drained {
        at_close,
        confirmed,
        expired,
        ..
    } = *lock(&draining.live);
    if at_close > 0 {
        let otherwise = at_close.saturating_sub(confirmed + expired);
        let level = if confirmed == at_close {
            log::Level::Info
        } else {
            log::Level::Warn
        };
        let (packs, were) = if at_close == 1 {
            ("pack", "was")
        } else {
            ("packs", "were")
        };
        log::log!(
            level,
            "appender '{}': of {at_close} {packs} in flight at close, {confirmed} {were} confirmed \
             by the broker, {expired} not in time (failed as connection errors), {otherwise} \
             failed otherwise",
            draining.name
        );
    }
}

/// An appender's packs not known to be answered, oldest first, with their deadlines: the sweep
/// answers those past theirs from the front. The entries of packs answered behind one that is
/// not (at once, or acknowledged sooner) are dropped by the sweep too, once they outnumber the
/// packs in flight, so a pack waiting out its deadline does not keep every later pack's entry
/// meanwhile (10,000 packs a second behind it kept 300,000 for 30 s): at most about twice the
/// packs in flight (taken and not yet answered to Kaa; those holding messages are bounded by
/// `maxPendingRecords` on each connection), [`LIVE_SLACK`], and what comes between two sweeps.
/// In the sweep, not in `doAppend`, though an append waits for the lock meanwhile: a pass
/// over 300,000 entries, 100,000 of them in flight, took 5 ms (release build), and comes at
/// most once per as many appends as there are packs in flight.
#[derive(Default)]
struct Live {
    packs: VecDeque<(Instant, Weak<Pack>)>,
}

/// Entries of answered packs the live queue may hold before the sweep drops them.
const LIVE_SLACK: usize = 1024;

impl Live {
    fn push(&mut self, deadline: Instant, pack: &Arc<Pack>) {
        self.packs.push_back((deadline, Arc::downgrade(pack)));
    }

    /// Drops the entries of answered packs when they may be most of the queue (`in_flight`:
    /// the packs not yet answered to Kaa, whose callbacks may wait in the dispatcher's queue),
    /// keeping the order.
    fn compact(&mut self, in_flight: usize) {
        if self.packs.len() > 2 * in_flight + LIVE_SLACK {
            self.packs
                .retain(|(_, pack)| pack.upgrade().is_some_and(|p| !p.is_done()));
            self.packs.shrink_to(2 * self.packs.len() + LIVE_SLACK);
        }
    }
}

/// The connection an endpoint's packs take, always the same one, so their order holds.
fn connection_index(endpoint: &str, connections: usize) -> usize {
    (fnv1a(endpoint.as_bytes()) % connections.max(1) as u64) as usize
}

/// A pack with more messages than half of `maxPendingRecords`, or more bytes than
/// [`PENDING_BYTES_PER_RECORD`] for each of those, could never be accepted ([`pack_bounds`]):
/// answered as a connection error, Kaa would send it again forever. It is the pack's fault,
/// not the broker's. The count is known from the records, so it is checked before decoding.
fn fits_pending_count(messages: usize, max_pending: usize) -> Result<(), String> {
    let (most, _) = pack_bounds(max_pending);
    if messages > most {
        return Err(format!(
            "it makes {messages} messages, more than a pack may hold in flight: {most}, {}",
            never_fits(max_pending)
        ));
    }
    Ok(())
}

/// The bytes half of [`fits_pending_count`]'s rule, for `bytes` of messages: checked on what
/// their MQTT 5 user properties alone take before decoding, and on the messages as they are
/// made (AVRO_BINARY's payloads are not held to it while decoding, and topics count too).
fn fits_pending_bytes(bytes: usize, max_pending: usize) -> Result<(), String> {
    let (_, most) = pack_bounds(max_pending);
    if bytes > most {
        return Err(format!(
            "its messages take at least {bytes} bytes, more than a pack may hold in flight: \
             {most}, {PENDING_BYTES_PER_RECORD} for each of the messages it may hold, {}",
            never_fits(max_pending)
        ));
    }
    Ok(())
}

/// What a pack may hold of `maxPendingRecords`, and what to do about one that passes it.
fn never_fits(max_pending: usize) -> String {
    format!(
        "half of maxPendingRecords ({max_pending}; rounded down, at least 1), the other half kept \
         for other endpoints; it can never be accepted: raise maxPendingRecords or send smaller \
         packs"
    )
}

/// A message's MQTT 5 user properties: the pack's, and for a message of one record its index
/// in the pack and a digest of its bytes, which stays the same when the endpoint uploads the
/// record again after a failed pack, so consumers can drop such duplicates.
fn record_labels(
    pack_labels: &[(String, String)],
    record: Option<(usize, &[u8])>,
) -> Vec<(String, String)> {
    let mut labels = pack_labels.to_vec();
    // Under MQTT 3.1.1, which has no user properties, the pack has none either.
    if let Some((index, bytes)) = record.filter(|_| !pack_labels.is_empty()) {
        labels.push(("recordIndex".into(), index.to_string()));
        labels.push(("recordDigest".into(), format!("{:016x}", fnv1a(bytes))));
    }
    labels
}

/// 64-bit FNV-1a: stable across processes and versions, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Expires packs past their deadline and, while the appender is active, logs its summary.
/// Runs under [`restarting`]: a panic (in a pack's completion, say) is logged and the sweep
/// starts again, so later packs still meet their deadline. The pack whose completion panicked
/// was marked answered before its completion ran, so it is not answered twice.
async fn sweep(appender: Weak<Appender>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_summary = (Instant::now(), Snapshot::default());
    let mut certificate = {
        let Some(appender) = appender.upgrade() else {
            return;
        };
        let tls = appender.config.broker.tls.as_ref();
        CertificateWatch::new(
            tls.and_then(TlsSettings::client_certificate_dates),
            unix_now(),
        )
    };
    loop {
        tick.tick().await;
        let Some(appender) = appender.upgrade() else {
            return;
        };
        if appender.is_closed() {
            return;
        }
        let now = Instant::now();
        // Before anything that could panic: the marks must go on.
        appender.metrics.mark(now);
        appender.expire(now);
        if let Some(warning) = certificate.due(unix_now()) {
            log::warn!("appender '{}': {warning}", appender.name);
        }
        if let Some(interval) = appender.config.stats_interval {
            if now >= last_summary.0 + interval {
                let snapshot = appender.metrics();
                if snapshot.worth_a_summary(&last_summary.1) {
                    log::info!("appender '{}': {}", appender.name, snapshot.summary());
                }
                last_summary = (now, snapshot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::original;
    use crate::config::Layout;
    use crate::delivery::{message_bytes, Outcome};
    use std::sync::mpsc;

    const SCHEMA: &str = r#"{"type":"record","name":"R","fields":[{"name":"x","type":"int"}]}"#;
    /// One record of SCHEMA: x = 1.
    const RECORD: &[u8] = &[2];

    /// A pack is refused for good when it alone passes half of either bound (one endpoint's
    /// share): its messages, or their bytes at `PENDING_BYTES_PER_RECORD` per record allowed.
    #[test]
    fn a_pack_over_either_pending_bound_can_never_fit() {
        let messages = |sizes: &[usize]| -> Vec<Message> {
            sizes
                .iter()
                .map(|&n| Message {
                    topic: Arc::from(""),
                    payload: vec![0; n],
                    labels: Vec::new(),
                })
                .collect()
        };
        let per = PENDING_BYTES_PER_RECORD;
        // maxPendingRecords 4: a pack may hold 2 messages and 8 KiB, half of each bound.
        let refusal = |sizes: &[usize]| {
            fits_pending_count(sizes.len(), 4)
                .and_then(|()| fits_pending_bytes(message_bytes(&messages(sizes)), 4))
                .err()
        };
        assert_eq!(refusal(&[per, per]), None);
        assert!(refusal(&[1, 1, 1]).is_some_and(|e| e.contains("3 messages") && e.contains(": 2,")));
        let e = refusal(&[2 * per + 1]).unwrap_or_default();
        assert!(e.contains("8193 bytes") && e.contains(": 8192,"), "{e}");
        // At least one message, and its 4 KiB, whatever maxPendingRecords.
        assert_eq!(fits_pending_count(1, 1), Ok(()));
        assert_eq!(fits_pending_bytes(per, 1), Ok(()));
    }

    /// Connections of one appender: ids of their own, one retained status and last will.
    #[test]
    fn only_the_first_connection_carries_the_status_topic() {
        let raw = original("127.0.0.1", 1883, 1, "t");
        let mut config = AppenderConfig::from_avro(&raw.0, Layout::PlainTexts).expect("config");
        config.broker.status_topic = Some("kaa/status/node".into());
        let one = connection_settings(&config);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].client_id, config.broker.client_id);
        assert_eq!(one[0].status_topic.as_deref(), Some("kaa/status/node"));
        config.connections = 3;
        let three = connection_settings(&config);
        let ids: Vec<&str> = three.iter().map(|b| b.client_id.as_str()).collect();
        let id = &config.broker.client_id;
        assert_eq!(
            ids,
            [format!("{id}-0"), format!("{id}-1"), format!("{id}-2")]
        );
        let status: Vec<Option<&str>> = three.iter().map(|b| b.status_topic.as_deref()).collect();
        assert_eq!(status, [Some("kaa/status/node"), None, None]);
    }

    const WAIT: Duration = Duration::from_secs(20);

    /// A loopback port nothing listens on: packs wait there until their deadline.
    fn closed_port() -> i64 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        i64::from(listener.local_addr().expect("address").port())
    }

    /// An appender on a closed loopback port, packs expiring after one second.
    fn unreachable_appender(name: &str) -> Arc<Appender> {
        let mut raw = original("127.0.0.1", closed_port(), 1, &format!("t/{name}"));
        raw.long(1);
        open(
            name,
            AppenderConfig::from_avro(&raw.0, Layout::PlainTexts).expect("config"),
        )
    }

    /// Under the test's own client id where it kept the original's default: a connection
    /// closing under an id holds back the next one to the same host under it (a broker drops
    /// the older of two), and tests run at once.
    fn open(name: &str, mut config: AppenderConfig) -> Arc<Appender> {
        if config.broker.client_id == "DefaultClient-ID" {
            let test = std::thread::current().name().map(str::to_string);
            config.broker.client_id = format!("test-{}", test.unwrap_or_default());
        }
        let header = HeaderStructure::from_names::<&str>(&[]).expect("header");
        Appender::open(name, "app", header, config).expect("opened")
    }

    /// On a closed loopback port: packs wait 30 s for their deadline, `close` this long.
    fn unreachable_config(close_timeout: Duration) -> AppenderConfig {
        let raw = original("127.0.0.1", closed_port(), 1, "t/close");
        let mut config = AppenderConfig::from_avro(&raw.0, Layout::PlainTexts).expect("config");
        config.close_timeout = close_timeout;
        config
    }

    /// One record of SCHEMA, its `LogSchema` id "1", version 1.
    fn append_one(appender: &Appender, endpoint: &str, answer: Answer) {
        let schema = PackSchema {
            id: Some("1"),
            version: 1,
            text: || Some(SCHEMA.to_string()),
        };
        appender.append(schema, Ok(&[RECORD][..]), endpoint, answer);
    }

    /// An endpoint sending packs that cannot be published as fast as Kaa takes them: every
    /// pack is answered and counted, and ten of them are logged, the tenth saying the rest
    /// are left out. (Before: a WARN for each, as many as the device sent.)
    #[test]
    fn a_flood_of_unpublishable_packs_is_answered_in_full_and_logged_in_part() {
        crate::test_log::capture();
        let appender = open("flooded", unreachable_config(Duration::ZERO));
        let (tx, rx) = mpsc::channel();
        let unreadable = Unreadable {
            events: 1,
            reason: "event 0 has no data".into(),
            kind: UNREADABLE,
        };
        for _ in 0..50 {
            let schema = PackSchema {
                id: Some("1"),
                version: 1,
                text: || Some(SCHEMA.to_string()),
            };
            let records: Result<&[&[u8]], _> = Err(&unreadable);
            appender.append(schema, records, "flooding-endpoint", recorded(&tx));
        }
        let answers: Vec<Outcome> = rx.try_iter().collect();
        assert_eq!(answers, vec![Outcome::InternalError; 50]);
        assert_eq!(
            appender.metrics().packs_internal_error,
            50,
            "failed packs counted"
        );
        let lines = crate::test_log::lines_with("from endpoint flooding-endpoint not published");
        assert_eq!(lines.len(), 10, "{lines:#?}");
        assert!(
            lines[9].contains("left out for the rest of the minute"),
            "{}",
            lines[9]
        );
        // A pack that fails otherwise has a budget of its own: the flood does not hide it.
        let schema = PackSchema {
            id: Some("1"),
            version: 1,
            text: || Some("not a schema".to_string()),
        };
        appender.append(schema, Ok(&[RECORD][..]), "quiet-endpoint", recorded(&tx));
        assert_eq!(rx.try_recv(), Ok(Outcome::InternalError));
        let other = crate::test_log::lines_with("from endpoint quiet-endpoint not published");
        assert_eq!(other.len(), 1, "{other:#?}");
        appender.close();
    }

    /// Through an outage with packs coming, sweeps keep finding packs past their deadline:
    /// every one is answered, and ten lines a minute say so, for every appender sharing the
    /// connection together. (Before: a line per sweep, ten a second; then ten lines a minute
    /// for each appender, a thousand for 100 appenders of one broker.)
    #[test]
    fn packs_expiring_sweep_after_sweep_are_logged_in_part() {
        crate::test_log::capture();
        let config = unreachable_config(Duration::ZERO);
        let appenders = [
            open("expiring-a", config.clone()),
            open("expiring-b", config),
        ];
        let (tx, rx) = mpsc::channel();
        let later = Instant::now() + Duration::from_secs(3600);
        for _ in 0..30 {
            for appender in &appenders {
                append_one(appender, "endpoint-a", recorded(&tx));
                appender.expire(later);
            }
        }
        let answers: Vec<Outcome> = rx.try_iter().collect();
        assert_eq!(answers, vec![Outcome::ConnectionError; 60]);
        let lines: Vec<_> = ["a", "b"]
            .iter()
            .flat_map(|n| {
                crate::test_log::lines_with(&format!(
                    "appender 'expiring-{n}': 1 pack not confirmed"
                ))
            })
            .collect();
        assert_eq!(lines.len(), 10, "{lines:#?}");
        for appender in &appenders {
            appender.close();
        }
    }

    /// A pack without records has nothing the broker could fail to take: it is delivered at
    /// once, even with the broker away, and its schema is not read.
    #[test]
    fn an_empty_pack_is_delivered_at_once() {
        let appender = open("empty-pack", unreachable_config(Duration::ZERO));
        let (tx, rx) = mpsc::channel();
        let schema = PackSchema {
            id: Some("9"),
            version: 1,
            text: || -> Option<String> { panic!("read for no record") },
        };
        appender.append(schema, Ok(&[] as &[&[u8]]), "endpoint-a", recorded(&tx));
        assert_eq!(rx.try_recv(), Ok(Outcome::Delivered));
        appender.close();
    }

    /// A pack waits for the broker until its `deliveryTimeoutSeconds` have passed, not less:
    /// sweeps before its deadline leave it alone, the first after it answers it, and the WARN
    /// says the setting's seconds as the user wrote them.
    #[test]
    fn a_pack_is_answered_at_its_deadline_not_before() {
        crate::test_log::capture();
        let mut config = unreachable_config(Duration::ZERO);
        config.delivery_timeout = Duration::from_secs(30);
        let appender = open("deadline", config);
        let (tx, rx) = mpsc::channel();
        let appended = Instant::now();
        append_one(&appender, "endpoint-a", recorded(&tx));
        for early in [0, 1_000, 15_000, 29_999] {
            appender.expire(appended + Duration::from_millis(early));
        }
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty), "not yet due");
        appender.expire(Instant::now() + Duration::from_secs(30));
        assert_eq!(rx.try_recv(), Ok(Outcome::ConnectionError));
        let said = crate::test_log::lines_with("appender 'deadline': 1 pack not confirmed");
        assert!(
            said.iter()
                .any(|l| l.contains("within 30s failed as connection errors")),
            "{said:?}"
        );
        appender.close();
    }

    /// With `maxPendingRecords` reached, a pack is answered `ConnectionError` before anything
    /// of it is decoded: its schema (a new id) is not even read.
    #[test]
    fn a_full_pending_bound_refuses_a_pack_before_decoding_it() {
        let mut config = unreachable_config(Duration::ZERO);
        config.max_pending_records = 1;
        let appender = open("bound-first", config);
        let (tx, rx) = mpsc::channel();
        append_one(&appender, "endpoint-a", recorded(&tx));
        let schema = PackSchema {
            id: Some("2"),
            version: 1,
            text: || -> Option<String> { panic!("decoded though the bound is reached") },
        };
        appender.append(schema, Ok(&[RECORD][..]), "endpoint-a", recorded(&tx));
        assert_eq!(
            rx.try_recv(),
            Ok(Outcome::ConnectionError),
            "answered at once"
        );
        appender.close();
    }

    /// SCHEMA under `LogSchema` id `id` and `version`, counting each read of its text.
    fn counted_schema<'a>(
        reads: &'a std::cell::Cell<u32>,
        id: &'a str,
        version: i32,
    ) -> PackSchema<'a, impl FnOnce() -> Option<String> + 'a> {
        PackSchema {
            id: Some(id),
            version,
            text: move || {
                reads.set(reads.get() + 1);
                Some(SCHEMA.to_string())
            },
        }
    }

    /// A pack of more records than `maxPendingRecords` (grouping RECORD) is answered
    /// `InternalError` before its schema is read or a record decoded. (Before: all of it was
    /// decoded into messages first; 1M one-byte records took 764 MB and 1.2 s under MQTT 5.)
    #[test]
    fn a_pack_over_max_pending_records_is_refused_before_decoding_it() {
        let mut config = unreachable_config(Duration::ZERO);
        config.max_pending_records = 2;
        let appender = open("too-many-records", config);
        let reads = &std::cell::Cell::new(0);
        let (tx, rx) = mpsc::channel();
        let schema = counted_schema(reads, "1", 1);
        appender.append(schema, Ok(&[RECORD; 3][..]), "endpoint-a", recorded(&tx));
        assert_eq!(
            rx.try_recv(),
            Ok(Outcome::InternalError),
            "answered at once"
        );
        assert_eq!(
            reads.get(),
            0,
            "the schema text was read: the pack was decoded"
        );
        let snapshot = appender.metrics();
        assert_eq!(
            (snapshot.packs_internal_error, snapshot.records_failed),
            (1, 3)
        );
        appender.close();
    }

    /// A pack waiting out its deadline keeps no entry of the packs answered behind it (at
    /// once, or acknowledged sooner): with a sweep every 1,000 packs (10,000 packs a second),
    /// the queue of live packs stays within twice the packs in flight, the slack and a sweep's
    /// packs, and keeps the waiting ones in order. (Before: one entry for every pack that came,
    /// until the waiting one was answered.)
    #[test]
    fn packs_answered_behind_a_waiting_one_leave_the_live_queue() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut live = Live::default();
        let mut waiting = Vec::new();
        let mut most = 0;
        for n in 0..100_000 {
            let pack = Pack::new(1, Box::new(|_| {}));
            live.push(deadline, &pack);
            if n % 20 == 0 {
                waiting.push(pack);
            } else {
                pack.finish(Why::Lost);
            }
            most = most.max(live.packs.len());
            if n % 1000 == 999 {
                live.compact(waiting.len());
            }
        }
        let bound = 2 * waiting.len() + LIVE_SLACK + 1000;
        assert!(
            most <= bound,
            "{most} entries for {} packs waiting",
            waiting.len()
        );
        let kept: Vec<_> = live.packs.iter().filter_map(|(_, p)| p.upgrade()).collect();
        let in_order = kept.iter().filter(|p| !p.is_done()).zip(&waiting);
        assert_eq!(
            in_order.filter(|(a, b)| Arc::ptr_eq(a, b)).count(),
            waiting.len()
        );
    }

    /// With the broker away, one endpoint's packs take at most half of `maxPendingRecords`:
    /// its next pack fails at once (`ConnectionError`), before it is decoded, with a line
    /// naming the endpoint, and another endpoint's packs still wait for the broker. A first
    /// pack larger than that half can never be accepted (`InternalError`): before, it was
    /// taken, and held the whole bound while it waited, failing every other endpoint's pack.
    #[test]
    fn one_endpoint_cannot_take_the_whole_pending_bound() {
        crate::test_log::capture();
        let mut config = unreachable_config(Duration::ZERO);
        config.max_pending_records = 4;
        let appender = open("endpoint-share", config);
        let reads = &std::cell::Cell::new(0);
        let (tx, rx) = mpsc::channel();
        // A schema id of its own for each pack, so that reading it tells a pack decoded.
        for (id, endpoint, records, answer, decoded) in [
            ("0", "greedy", 3, Some(Outcome::InternalError), 0),
            ("1", "flooding", 2, None, 1),
            ("2", "flooding", 1, Some(Outcome::ConnectionError), 1),
            ("3", "quiet", 2, None, 2),
        ] {
            let schema = counted_schema(reads, id, 1);
            let records = vec![RECORD; records];
            appender.append(schema, Ok(&records[..]), endpoint, recorded(&tx));
            assert_eq!(rx.try_recv().ok(), answer, "{endpoint}");
            assert_eq!(reads.get(), decoded, "{endpoint}: decoded");
        }
        let lines = crate::test_log::lines_with(
            "appender 'endpoint-share': pack of 1 records from endpoint flooding not published: \
             its endpoint's packs already hold 2 messages",
        );
        assert_eq!(lines.len(), 1, "{lines:#?}");
        appender.close();
    }

    /// Under MQTT 5 every message carries the endpoint key: a pack whose copies of it alone
    /// pass the pending bytes bound is answered `InternalError` before its schema is read (a
    /// key of 64 KiB in 100,000 messages would take 6.5 GB before the bound was checked).
    #[test]
    fn user_properties_past_the_pending_bound_are_refused_before_decoding() {
        let mut config = unreachable_config(Duration::ZERO);
        config.broker.version = MqttVersion::V5;
        config.max_pending_records = 4;
        let appender = open("long-key", config);
        let reads = &std::cell::Cell::new(0);
        let (tx, rx) = mpsc::channel();
        for (key_bytes, decoded) in [
            (PENDING_BYTES_PER_RECORD, 0),
            (PENDING_BYTES_PER_RECORD / 4, 1),
        ] {
            let key = "k".repeat(key_bytes);
            let schema = counted_schema(reads, "1", 1);
            appender.append(schema, Ok(&[RECORD; 2][..]), &key, recorded(&tx));
            assert_eq!(reads.get(), decoded, "key of {key_bytes} bytes");
        }
        assert_eq!(
            rx.try_recv(),
            Ok(Outcome::InternalError),
            "answered at once"
        );
        appender.close();
    }

    /// A topic naming record fields is rendered for each message, the endpoint key in each:
    /// counted as the messages are made, a long key in many records is refused once they pass
    /// the bound (80 MB here), not after all exist (20,000 topics of 60 KB, 1.2 GB, which an
    /// endpoint could make many times that, past what the node can allocate).
    #[test]
    fn topics_past_the_pending_bound_are_refused_as_they_are_made() {
        crate::test_log::capture();
        let mut config = unreachable_config(Duration::ZERO);
        config.topic =
            crate::topic::TopicTemplate::parse("t/{endpointKeyHash}/{event.x}").expect("template");
        config.max_pending_records = 40_000;
        let appender = open("long-topics", config);
        let (tx, rx) = mpsc::channel();
        let key = "k".repeat(60_000);
        let reads = &std::cell::Cell::new(0);
        let schema = counted_schema(reads, "1", 1);
        appender.append(schema, Ok(&[RECORD; 20_000][..]), &key, recorded(&tx));
        assert_eq!(rx.try_recv(), Ok(Outcome::InternalError));
        let lines = crate::test_log::lines_with("appender 'long-topics': pack of 20000 records");
        let taken: usize = lines
            .first()
            .and_then(|l| l.split("take at least ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{lines:?}"));
        let (_, bound) = pack_bounds(40_000);
        // One message counts its 60,004-byte topic twice: the client's copy and the tracker's.
        assert!(
            taken > bound && taken <= bound + 121_000,
            "made no more than one message past the bound: {taken}"
        );
        appender.close();

        // A pack's topic, shared by its messages, counts in a pack of one message, as the
        // tracker counts it: a pack that can never fit is told so, not lost again and again.
        let mut config = unreachable_config(Duration::ZERO);
        config.topic = crate::topic::TopicTemplate::parse("t/{endpointKeyHash}").expect("template");
        config.max_pending_records = 1;
        let appender = open("long-topic", config);
        let schema = counted_schema(reads, "1", 1);
        let key = "k".repeat(PENDING_BYTES_PER_RECORD);
        appender.append(schema, Ok(&[RECORD][..]), &key, recorded(&tx));
        assert_eq!(rx.try_recv(), Ok(Outcome::InternalError));
        appender.close();
    }

    /// Room the process cannot give for a pack's records is an error to answer, not an abort
    /// of the JVM (`Vec::reserve` aborts, and `catch_unwind` cannot catch that): a pack of 800
    /// MB killed the node under a 2.5 GB address-space limit.
    #[test]
    fn room_the_process_lacks_for_records_is_an_error() {
        let mut records = PackRecords::default();
        assert!(records.try_reserve(1, isize::MAX as usize).is_err());
        assert!(records.try_reserve(1, 16).is_ok());
        records.next_record(2).copy_from_slice(b"ok");
        assert_eq!(records.slices().expect("readable"), [b"ok"]);
    }

    /// Records cross as they come: a null event or a null list is no longer answered in Java,
    /// it reaches the appender, which answers it `InternalError` and counts it. (Before: Java
    /// answered such packs itself, and the metrics never saw them.)
    #[test]
    fn unreadable_packs_are_answered_and_counted() {
        let appender = unreachable_appender("unreadable");
        let mut with_null = PackRecords::default();
        with_null.next_record(1).copy_from_slice(RECORD);
        with_null.next_missing();
        with_null.next_record(1).copy_from_slice(RECORD);
        let slices = with_null.slices();
        let unreadable = slices.as_ref().expect_err("a null event");
        assert_eq!(
            (unreadable.events, unreadable.reason.as_str()),
            (3, "event 1 is null or has no data")
        );
        let no_list = PackRecords::unreadable(0, "its list of events is null".into());
        let no_list = no_list.slices();
        // Readable records of a pack whose endpoint key the bridge could not read.
        let mut no_key = PackRecords::default();
        no_key.next_record(1).copy_from_slice(RECORD);
        no_key.refuse("its endpoint key cannot be read".into());
        let no_key = no_key.slices();
        let refused = no_key.as_ref().expect_err("refused");
        assert_eq!(
            (refused.events, refused.reason.as_str()),
            (1, "its endpoint key cannot be read")
        );
        let (tx, rx) = mpsc::channel();
        for records in [slices.as_deref(), no_list.as_deref(), no_key.as_deref()] {
            let schema = PackSchema {
                id: Some("1"),
                version: 1,
                text: || -> Option<String> { panic!("the schema is not needed") },
            };
            appender.append(schema, records, "endpoint-a", recorded(&tx));
            assert_eq!(
                rx.try_recv(),
                Ok(Outcome::InternalError),
                "answered at once"
            );
        }
        let snapshot = appender.metrics();
        assert_eq!(snapshot.packs_internal_error, 3);
        assert_eq!(snapshot.records_failed, 4);
        appender.close();
    }

    /// The records of a pack come out as they went in, one buffer for all.
    #[test]
    fn pack_records_frame_what_they_hold() {
        let mut records = PackRecords::default();
        records.next_record(2).copy_from_slice(&[1, 2]);
        records.next_record(0);
        records.next_record(1).copy_from_slice(&[3]);
        assert_eq!(
            records.slices().expect("readable"),
            [&[1u8, 2][..], &[], &[3]]
        );
    }

    /// The schema text is read (across JNI, in the bridge) only when the pack's `LogSchema`
    /// id and version are not the last pack's. (Before: read and hashed for every pack.)
    #[test]
    fn the_schema_text_is_read_only_for_a_new_id_or_version() {
        let appender = unreachable_appender("schema-cache");
        let reads = &std::cell::Cell::new(0);
        for (id, version) in [("7", 1), ("7", 1), ("7", 2), ("8", 2), ("8", 2)] {
            appender.append(
                counted_schema(reads, id, version),
                Ok(&[RECORD][..]),
                "endpoint-a",
                Box::new(|_, _| ()),
            );
        }
        assert_eq!(reads.get(), 3);
        appender.close();
    }

    /// A log schema that cannot be parsed fails each of its packs, and is parsed once: its
    /// refusal is kept with the parsed ones. (Before: parsed again for every pack, under the
    /// lock every pack of the appender takes.)
    #[test]
    fn a_bad_schema_is_refused_once_and_remembered() {
        let appender = unreachable_appender("bad-schema");
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            let schema = PackSchema {
                id: None,
                version: 1,
                text: || Some("{\"type\": \"record\"".to_string()),
            };
            appender.append(schema, Ok(&[RECORD][..]), "endpoint-a", recorded(&tx));
        }
        assert_eq!(
            rx.try_iter().collect::<Vec<_>>(),
            [Outcome::InternalError; 3]
        );
        let cache = lock(&appender.schemas);
        assert!(matches!(cache.get("{\"type\": \"record\""), Some(Err(_))));
        drop(cache);
        // Texts without end (a schema per pack) are not all kept.
        for i in 0..SCHEMAS_KEPT * 3 {
            let schema = PackSchema {
                id: None,
                version: 1,
                text: || Some(format!("{{\"type\": \"record\", \"doc\": \"{i}\"")),
            };
            appender.append(schema, Ok(&[RECORD][..]), "endpoint-a", recorded(&tx));
        }
        assert!(lock(&appender.schemas).len() <= SCHEMAS_KEPT);
        appender.close();
    }

    /// Sends each answer to `tx`, counted first, as Kaa's callback returning would have it.
    fn recorded(tx: &mpsc::Sender<Outcome>) -> Answer {
        let tx = tx.clone();
        Box::new(move |outcome, tally| {
            tally.answered(outcome);
            let _ = tx.send(outcome);
        })
    }

    /// A pack's completion that panics while the sweep answers it at its deadline: the panic is
    /// logged, the sweep goes on, and the pack after it still gets its answer. (Before: the
    /// sweep's task ended with the panic and the second pack waited for ever.)
    #[test]
    fn a_panic_in_the_sweep_leaves_no_pack_unanswered() {
        let appender = unreachable_appender("sweep-panic");
        let (tx, rx) = mpsc::channel();
        append_one(
            &appender,
            "endpoint-a",
            Box::new(|_, _| panic!("injected: the completion of pack A panics")),
        );
        append_one(&appender, "endpoint-b", recorded(&tx));
        assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
        // And the sweep still serves packs appended after the panic.
        append_one(&appender, "endpoint-c", recorded(&tx));
        assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
        appender.close();
    }

    /// A pack in flight at close waits for the broker up to `closeTimeoutSeconds`, then fails
    /// as a connection error (Kaa sends it again); appends after close are refused at once.
    /// (Before: every pack in flight was answered `onInternalError` at close.)
    #[test]
    fn close_lets_packs_in_flight_wait_up_to_the_close_timeout() {
        crate::test_log::capture();
        let appender = open("close-drains", unreachable_config(Duration::from_secs(1)));
        let (tx, rx) = mpsc::channel();
        append_one(&appender, "endpoint-a", recorded(&tx));
        let closed = Instant::now();
        appender.close();
        let (late_tx, late) = mpsc::channel();
        append_one(&appender, "endpoint-b", recorded(&late_tx));
        assert_eq!(
            late.try_recv(),
            Ok(Outcome::InternalError),
            "refused at once"
        );
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty), "waits");
        assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
        let waited = closed.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "answered {waited:?} after close, before its close timeout"
        );
        let said = crate::test_log::await_line("appender 'close-drains': of ", |_| true, WAIT);
        assert!(
            said.starts_with("WARN")
                && said.contains(", 0 was confirmed by the broker, 1 not in time"),
            "{said}"
        );
    }

    /// A drain restarted after a panic goes on counting from where it was, and counts no pack
    /// twice: the line names every pack in flight at close, the one whose completion panicked
    /// as answered otherwise. (Before: the counts restarted with the drain, a pack the panic
    /// left in the list was counted again, and the restarted drain panicked at every turn.)
    #[test]
    fn a_drain_restarted_after_a_panic_counts_every_pack() {
        crate::test_log::capture();
        let appender = open("drain-panic", unreachable_config(Duration::from_secs(1)));
        let (tx, rx) = mpsc::channel();
        append_one(&appender, "endpoint-b", recorded(&tx));
        append_one(
            &appender,
            "endpoint-a",
            Box::new(|_, _| panic!("injected: the completion of a drained pack panics")),
        );
        appender.close();
        assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
        let said = crate::test_log::await_line("appender 'drain-panic': of ", |_| true, WAIT);
        assert!(
            said.contains(
                "of 2 packs in flight at close, 0 were confirmed by the broker, 1 not in time \
                 (failed as connection errors), 1 failed otherwise"
            ),
            "{said}"
        );
    }

    /// `closeTimeoutSeconds` 0 keeps the old behaviour: packs in flight fail at close, and
    /// the close says how many, as the JMX bean goes with it. (Before: only "closed".)
    #[test]
    fn a_close_timeout_of_zero_fails_packs_in_flight_at_once() {
        crate::test_log::capture();
        let appender = open("close-at-once", unreachable_config(Duration::ZERO));
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            append_one(&appender, "endpoint-a", recorded(&tx));
        }
        appender.close();
        let answers: Vec<Outcome> = rx.try_iter().collect();
        assert_eq!(answers, vec![Outcome::InternalError; 3]);
        let lines = crate::test_log::lines_with("appender 'close-at-once': 3 packs in flight");
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(
            lines[0].contains("closeTimeoutSeconds is 0"),
            "{}",
            lines[0]
        );
    }

    /// Packs failed by a close with `closeTimeoutSeconds` 0 give their room in
    /// `maxPendingRecords` back at once: the appender made again at once with the same
    /// configuration (Kaa's edit), sharing the connection, takes the endpoint's next pack.
    #[test]
    fn packs_failed_at_a_close_give_their_room_back_at_once() {
        let mut config = unreachable_config(Duration::ZERO);
        config.max_pending_records = 4;
        let first = open("room-back", config.clone());
        let (tx, rx) = mpsc::channel();
        for endpoint in ["endpoint-a", "endpoint-b", "endpoint-c", "endpoint-d"] {
            append_one(&first, endpoint, recorded(&tx));
        }
        first.close();
        let failed: Vec<_> = rx.try_iter().collect();
        assert_eq!(failed, vec![Outcome::InternalError; 4]);
        let second = open("room-back", config);
        append_one(&second, "endpoint-e", recorded(&tx));
        assert_eq!(
            rx.try_recv(),
            Err(mpsc::TryRecvError::Empty),
            "taken, waiting"
        );
        second.close();
        assert_eq!(rx.try_recv(), Ok(Outcome::InternalError));
    }

    /// The drain says how the packs in flight at close were answered: after an edit, with the
    /// JMX bean gone, this line alone tells whether they reached the broker. (Before: only
    /// failures were logged.)
    #[test]
    fn the_drain_says_how_the_packs_in_flight_at_close_were_answered() {
        use crate::connection::tests::{puback_for, read_packet, scripted_broker};
        use std::io::Write;
        crate::test_log::capture();
        // Acks every QoS 1 message 300 ms late: the pack is still in flight at close.
        let (port, _) = scripted_broker(|listener| {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            if read_packet(&mut s).map(|p| p.0) != Some(0x10)
                || s.write_all(&[0x20, 0x02, 0x00, 0x00]).is_err()
            {
                return;
            }
            while let Some((kind, body)) = read_packet(&mut s) {
                if kind & 0xF0 == 0x30 {
                    std::thread::sleep(Duration::from_millis(300));
                    let _ = s.write_all(&puback_for(&body));
                }
            }
        });
        let raw = original("127.0.0.1", i64::from(port), 1, "t/drained");
        let mut config = AppenderConfig::from_avro(&raw.0, Layout::PlainTexts).expect("config");
        // Far beyond the wait for the line: a drain lets go of the connection once its packs
        // are answered (and EDIT_GRACE has passed), not at their deadline or the close timeout.
        config.close_timeout = Duration::from_secs(60);
        let appender = open("drained", config);
        let (tx, rx) = mpsc::channel();
        append_one(&appender, "endpoint-a", recorded(&tx));
        appender.close();
        assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::Delivered));
        let said = crate::test_log::await_line("appender 'drained': of ", |_| true, WAIT);
        assert_eq!(
            said,
            "INFO appender 'drained': of 1 pack in flight at close, 1 was confirmed by the \
             broker, 0 not in time (failed as connection errors), 0 failed otherwise"
        );
    }

    /// An appender created again with the same configuration while the closed one drains
    /// (Kaa does that when an appender is edited) shares the connection the drain holds,
    /// instead of waiting for it to say goodbye.
    #[test]
    fn an_appender_made_again_during_the_drain_shares_its_connection() {
        let mut config = unreachable_config(Duration::from_secs(30));
        config.delivery_timeout = Duration::from_secs(2);
        let first = open("made-again", config.clone());
        let (tx, rx) = mpsc::channel();
        append_one(&first, "endpoint-a", recorded(&tx));
        let connection = Arc::downgrade(&read(&first.connections)[0]);
        first.close();
        drop(first);
        let second = open("made-again", config);
        assert_takes_over(&connection, &second);
        second.close();
        // The first appender's pack is still answered, at its own deadline at the latest.
        assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
    }

    /// The same for an idle appender, with nothing to drain: Kaa's edit (close, then a new
    /// appender) keeps its connection, where before it closed at once and was made again.
    #[test]
    fn an_idle_appender_made_again_at_once_shares_its_connection() {
        let config = unreachable_config(Duration::from_secs(30));
        let first = open("idle-made-again", config.clone());
        let connection = Arc::downgrade(&read(&first.connections)[0]);
        first.close();
        drop(first);
        // Kaa reads the appender from its database before it creates it again.
        std::thread::sleep(EDIT_GRACE / 4);
        let second = open("idle-made-again", config);
        assert_takes_over(&connection, &second);
        second.close();
    }

    /// What the node's appenders may hold together counts a connection that two appenders
    /// share once, at the larger bound (`maxPendingRecords` is no connection setting), and one
    /// of its own apart; a closed appender holds none. An appender opened beside others is told
    /// when it shares a connection with one of another bound, and when it takes them past half
    /// of the node's memory together, unless its own bound said so already.
    #[test]
    fn an_appender_is_weighed_beside_the_others_by_their_connections() {
        use crate::delivery::max_pending_bytes;
        let mut config = unreachable_config(Duration::ZERO);
        config.max_pending_records = 1_000;
        let first = open("weighed-first", config.clone());
        let mut larger = config.clone();
        larger.max_pending_records = 3_000;
        let sharing = open("weighed-sharing", larger);
        config.broker.client_id = "weighed-own".into();
        let own = open("weighed-own", config);
        let bounds: Vec<_> = [&first, &sharing, &own]
            .iter()
            .flat_map(|a| a.bounds())
            .collect();
        assert_eq!(bounds[0].0, bounds[1].0, "one connection");
        assert_ne!(bounds[0].0, bounds[2].0);
        let held = max_pending_bytes(3_000) + max_pending_bytes(1_000);
        assert_eq!(node_pending_bytes(bounds), held as u64);

        let said = sharing.beside(&[Arc::clone(&first), Arc::clone(&own)], false, None);
        assert_eq!(said.len(), 1, "{said:?}");
        crate::test_log::assert_says(
            &said[0],
            &[
                "its maxPendingRecords (3000) is not that of the appenders it shares \
                 connections with: 'weighed-first' (1000);",
                "an appender with a smaller bound has its packs fail once the connection holds \
                 that bound",
            ],
        );
        let others = [Arc::clone(&first), Arc::clone(&sharing)];
        assert_eq!(own.beside(&others, false, None), Vec::<String>::new());
        let same = [Arc::clone(&first)];
        assert_eq!(first.beside(&same, false, None), Vec::<String>::new());

        // Half of it is the 3,000 bound's bytes: the shared connection alone stays within,
        // with `own`'s connection beside it the node passes.
        let memory = Some((2 * max_pending_bytes(3_000) as u64, "a test's"));
        let said = own.beside(&others, false, memory);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("the 3 appenders open in this node"),
            "{said:?}"
        );
        assert!(own.beside(&others, true, memory).is_empty(), "said alone");
        let roomy = Some((4 * max_pending_bytes(3_000) as u64, "a test's"));
        assert!(own.beside(&others, false, roomy).is_empty());
        own.close();
        assert!(own.bounds().is_empty());
        assert!(
            sharing
                .beside(&[Arc::clone(&own)], false, memory)
                .is_empty(),
            "closed"
        );
        first.close();
        sharing.close();
    }

    /// `appender` publishes through `connection`, which a closed appender still holds.
    fn assert_takes_over(connection: &Weak<Connection>, appender: &Appender) {
        let held = connection
            .upgrade()
            .expect("the closed appender holds the connection");
        assert!(Arc::ptr_eq(&held, &read(&appender.connections)[0]));
    }

    /// A second appender with the first one's client id, cleanSession off and another
    /// connection setting does not start: its error names the clash (the node logs it at ERROR
    /// when init fails), where before both connected and pushed each other out for good. Once
    /// the first is closed and drains (Kaa editing the appender), the edited one starts.
    #[test]
    fn a_persistent_client_id_another_appender_holds_fails_init_until_it_is_closed() {
        let mut config = unreachable_config(Duration::from_secs(30));
        config.delivery_timeout = Duration::from_secs(2);
        config.broker.clean_session = false;
        config.broker.client_id = "appender-clash".into();
        let first = open("clash-first", config.clone());
        let (tx, rx) = mpsc::channel();
        append_one(&first, "endpoint-a", recorded(&tx));
        let mut edited = config;
        edited.broker.keep_alive = Duration::from_secs(30);
        let header = || HeaderStructure::from_names::<&str>(&[]).expect("header");
        let refused = Appender::open("clash-second", "app", header(), edited.clone())
            .err()
            .expect("refused");
        assert_eq!(refused.field, "clientId");
        let message = refused.to_string();
        assert!(message.contains("'appender-clash'"), "{message}");
        assert!(message.contains("keepAliveSeconds"), "{message}");
        first.close();
        let second = Appender::open("clash-first", "app", header(), edited)
            .expect("the edited appender starts while the old connection drains");
        second.close();
        assert_eq!(rx.recv_timeout(WAIT), Ok(Outcome::ConnectionError));
    }
}

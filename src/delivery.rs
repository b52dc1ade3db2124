//! Which records of which pack are still waiting for the broker, and the one outcome each
//! pack gets.
//!
//! rumqttc reports `Outgoing::Publish(pkid)` when it writes a request, in the order it takes
//! requests from its channel, and `PubAck`/`PubRec`/`PubComp` when the broker answers;
//! nothing else ties a request to its ack (ARCHITECTURE.md, step 6). The [`Tracker`] keeps that
//! mapping for one connection: records handed to rumqttc wait in `sent` (FIFO, the channel's
//! order) until their pkid is known, then in `awaiting_ack` / `awaiting_comp` until the
//! broker confirms them. A pack succeeds only from acks on the connection that carried it (at
//! QoS 0, which nothing acknowledges, from its writes, and for a message larger than any the
//! broker took, from the connection outliving it: `Tracker::proving`); when the connection
//! drops, every record not yet confirmed fails its pack.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::config::Qos;
use crate::fair_queue::FairQueue;
use crate::log_budget::LogBudget;
use crate::packet_limit::{far_larger, Blamed, Measure, PacketLimit, SOURCE_SUSPECTS};
use crate::protocol::{
    Client, Message, Observed, Origin, Outbox, PublishOptions, Unqueued, Window,
};
use crate::reason::Reason;
use crate::refused_topics::{
    RefusedTopics, SilentRefusals, TopicBlame, CLOSED_AT_TWICE, CLOSED_REFUSING, QUICK,
};
use crate::supervise::lock;

/// The four answers Kaa's `LogDeliveryCallback` knows, its methods' names their `Display`. The
/// discriminant is the answer's index, declared here once: the bridge finds its callback
/// method by it and the metrics count by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    Delivered = 0,
    ConnectionError = 1,
    RemoteError = 2,
    InternalError = 3,
}

/// Why a pack is answered. Which of Kaa's four callbacks each reason gets is decided here, in
/// [`Why::outcome`], and nowhere else: the modules that answer packs name the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The broker acknowledged every message (at QoS 0: each was written, and one larger than
    /// any the broker took outlived), or there was none.
    Confirmed,
    /// The broker refused a message (an MQTT 5 reason code, or lately its topic) or the
    /// connection (credentials, authorisation, a proxy refusing ours).
    Refused,
    /// The connection was lost, or its client would not queue the messages, before every one
    /// was confirmed; or too many messages already wait for the broker (or answers for Kaa).
    Lost,
    /// Not confirmed by its deadline: `deliveryTimeoutSeconds`, or the drain after close.
    Expired,
    /// Its records cannot become messages: unreadable events, records not in the log schema,
    /// a topic the record cannot give, a message or pack over its bound.
    Unpublishable,
    /// The appender was closed without a drain, or the pack came after it was.
    Closed,
    /// Dropped without an answer: a bug or a panic on the way.
    Abandoned,
}

impl Why {
    /// Kaa sends again what was not confirmed, whatever the answer; the answer tells an
    /// operator (and the endpoint's logs) whether it was the network, the broker, or the data
    /// and the appender.
    pub const fn outcome(self) -> Outcome {
        match self {
            Why::Confirmed => Outcome::Delivered,
            Why::Refused => Outcome::RemoteError,
            Why::Lost | Why::Expired => Outcome::ConnectionError,
            Why::Unpublishable | Why::Closed | Why::Abandoned => Outcome::InternalError,
        }
    }
}

impl Outcome {
    /// How many outcomes there are: the codes run from 0 below this.
    pub const COUNT: usize = 4;

    /// The answer's code (see the type's doc).
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// The callback Kaa gets, by its name: what operators read in the logs.
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Delivered => "onSuccess",
            Outcome::ConnectionError => "onConnectionError",
            Outcome::RemoteError => "onRemoteError",
            Outcome::InternalError => "onInternalError",
        })
    }
}

pub type Completion = Box<dyn FnOnce(Outcome) + Send>;

/// One log pack in flight. Its completion runs exactly once: on the first outcome, or with
/// `InternalError` if the pack is dropped unanswered (so even a bug or a panic that unwinds
/// past it still answers Kaa).
pub struct Pack {
    /// When the appender took it: its deadline, and the wait of its messages for the window,
    /// count from here.
    accepted: Instant,
    remaining: AtomicUsize,
    /// Why it was answered, once it was.
    answer: OnceLock<Why>,
    completion: Mutex<Option<Completion>>,
}

impl Pack {
    pub fn new(records: usize, completion: Completion) -> Arc<Pack> {
        let pack = Arc::new(Pack {
            accepted: Instant::now(),
            remaining: AtomicUsize::new(records),
            answer: OnceLock::new(),
            completion: Mutex::new(Some(completion)),
        });
        if records == 0 {
            pack.finish(Why::Confirmed);
        }
        pack
    }

    pub fn is_done(&self) -> bool {
        self.answer.get().is_some()
    }

    /// Why it was answered; `None` while it waits.
    pub fn answer(&self) -> Option<Why> {
        self.answer.get().copied()
    }

    pub fn accepted(&self) -> Instant {
        self.accepted
    }

    /// One record confirmed by the broker; the last one delivers the pack.
    pub fn record_delivered(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish(Why::Confirmed);
        }
    }

    /// The first answer wins; later ones are ignored.
    pub fn finish(&self, why: Why) {
        // The answer is set with the completion taken, under its lock: a second caller that
        // finds nothing to take finds the answer set.
        let completion = {
            let mut slot = lock(&self.completion);
            let completion = slot.take();
            if completion.is_some() {
                let _ = self.answer.set(why);
            }
            completion
        };
        if let Some(completion) = completion {
            completion(why.outcome());
        }
    }
}

impl Drop for Pack {
    fn drop(&mut self) {
        let slot = self
            .completion
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(completion) = slot.take() {
            completion(Why::Abandoned.outcome());
        }
    }
}

/// Payload bytes a connection may hold per message `maxPendingRecords` allows: messages of 4
/// KiB fill both bounds together (100,000 of them, the default, take about 405 MiB), and
/// larger ones, which endpoints choose, cannot make a broker that is away hold more.
pub const PENDING_BYTES_PER_RECORD: usize = 4096;

/// The message bytes a connection may hold when `maxPendingRecords` is `max_pending`.
pub fn max_pending_bytes(max_pending: usize) -> usize {
    max_pending.saturating_mul(PENDING_BYTES_PER_RECORD)
}

/// The most one pack may hold of a connection's bounds when `maxPendingRecords` is
/// `max_pending`: one endpoint's share of messages ([`ENDPOINT_SHARE_DIVISOR`], rounded
/// down, at least one), and their [`PENDING_BYTES_PER_RECORD`] each. A pack past it can never
/// be accepted. Larger, an endpoint's first pack through an appender, which its share does not
/// hold back (see [`Tracker::crowded`]), could fill the whole bound, and until the broker took
/// it every other endpoint's packs would fail at once, as often as the device sent another.
pub fn pack_bounds(max_pending: usize) -> (usize, usize) {
    let messages = (max_pending / ENDPOINT_SHARE_DIVISOR).max(1);
    (messages, max_pending_bytes(messages))
}

/// The bytes a pack's messages hold ([`Message::bytes`]).
pub fn message_bytes(messages: &[Message]) -> usize {
    messages.iter().map(Message::bytes).sum()
}

/// Messages handed to the MQTT client and not written yet, at most; the next wait parked.
/// MQTT 5's client sends what it took into its channel, also of a pack answered meanwhile
/// (its deadline passed while a slow broker read): past this, such a pack's messages are
/// still parked, where they are dropped. QoS 0 messages, which no window holds back, are
/// what it bounds; QoS 1 and 2 ones only with `maxInflight` above it. Four turns of the
/// driver's events: the client never runs dry while the broker reads.
pub(crate) const UNWRITTEN: usize = 1024;

/// One endpoint may hold at most this part of either bound of a connection while its packs
/// wait (rounded down; beyond one pack through each appender while it holds none through
/// that appender): a device flooding packs while the broker is slow or away would otherwise
/// fill the bound, and every other endpoint's packs would fail.
const ENDPOINT_SHARE_DIVISOR: usize = 2;

/// The messages and bytes some packs hold on a connection: all of them, or those of one
/// endpoint or [`Origin`] ([`Shares`]).
#[derive(Default)]
struct Holdings {
    messages: AtomicUsize,
    bytes: AtomicUsize,
}

impl Holdings {
    fn add(&self, bytes: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn remove(&self, bytes: usize) {
        self.messages.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The [`Holdings`] of each `K` (an endpoint, or an endpoint through one appender) while it
/// holds anything: a dead entry is swept once the map has doubled since the last sweep.
struct Shares<K> {
    map: HashMap<K, Weak<Holdings>>,
    sweep_at: usize,
}

impl<K> Default for Shares<K> {
    fn default() -> Self {
        Shares {
            map: HashMap::new(),
            sweep_at: 0,
        }
    }
}

impl<K: std::hash::Hash + Eq> Shares<K> {
    /// What `key` holds, if anything.
    fn get(&self, key: &K) -> Option<Arc<Holdings>> {
        self.map.get(key).and_then(Weak::upgrade)
    }

    /// What `key` holds, new when it holds nothing.
    fn entry(&mut self, key: K) -> Arc<Holdings> {
        if let Some(held) = self.get(&key) {
            return held;
        }
        if self.map.len() >= self.sweep_at {
            self.map.retain(|_, held| held.strong_count() > 0);
            self.sweep_at = (self.map.len() * 2).max(64);
            // After a broker outage held 100,000 endpoints' packs, the table kept their room
            // (about 11 MB a connection) for as long as the connection lived.
            self.map.shrink_to(self.sweep_at);
        }
        let held = Arc::default();
        self.map.insert(key, Arc::downgrade(&held));
        held
    }
}

/// One message, and its bytes, counted in the [`Holdings`] of its connection
/// ([`Tracker::held_bytes`]), of its endpoint and of its [`Origin`] from its acceptance until
/// it is confirmed or failed, whichever way it leaves: they are given back when this drops.
struct Held {
    holders: [Arc<Holdings>; 3],
    bytes: usize,
    given_back: bool,
}

impl Held {
    fn new(holders: &[Arc<Holdings>; 3], bytes: usize) -> Held {
        for holder in holders {
            holder.add(bytes);
        }
        Held {
            holders: holders.clone(),
            bytes,
            given_back: false,
        }
    }

    /// Gives the room back before the message is freed ([`Tracker::on_refused`]); once.
    fn give_back(&mut self) {
        if !std::mem::replace(&mut self.given_back, true) {
            for holder in &self.holders {
                holder.remove(self.bytes);
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// Which bound a pack would pass ([`Tracker::crowded`]); its pack fails with
/// `onConnectionError`, and Kaa sends it again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crowded {
    /// The connection's: `maxPendingRecords` messages, or their bytes.
    Connection,
    /// Its endpoint's share of it: the messages and bytes that endpoint's packs hold, of the
    /// `max` messages the connection takes.
    Endpoint {
        messages: usize,
        bytes: usize,
        max: usize,
    },
}

impl Crowded {
    /// What a log line about an endpoint's pack says of it; `None` for the connection's bound,
    /// which every endpoint meets alike and the metrics count.
    pub fn reason(&self) -> Option<String> {
        let Crowded::Endpoint {
            messages,
            bytes,
            max,
        } = self
        else {
            return None;
        };
        Some(format!(
            "its endpoint's packs already hold {messages} messages ({bytes} bytes) unconfirmed on \
             this connection, and one endpoint may hold at most half of what maxPendingRecords \
             ({max}) allows, so that one device sending faster than the broker takes leaves room \
             for the others; the pack fails with onConnectionError and Kaa sends it again later"
        ))
    }
}

/// A message accepted but not handed to the client yet: there is no connection, the
/// connection's [`Window`] is full, or [`UNWRITTEN`] messages wait to be written.
struct Parked {
    pack: Arc<Pack>,
    how: PublishOptions,
    /// When it was accepted.
    since: Instant,
    message: Message,
    /// Its PUBLISH packet's size and mark.
    measure: Measure,
    held: Held,
}

/// The packs parked when every broker refused the connection, taken out of their tracker
/// ([`Tracker::on_refused`]) to be answered after its lock.
pub struct Refused(FairQueue<Parked, 3>);

impl Refused {
    /// Answers each pack `onRemoteError` and frees its messages.
    pub fn answer(mut self) {
        for p in self.0.drain() {
            p.pack.finish(Why::Refused);
        }
    }
}

/// A message handed to the client and not yet confirmed.
struct InFlight {
    pack: Arc<Pack>,
    /// Its QoS, which says which parts of the [`Window`] it takes until its final ack.
    qos: Qos,
    /// The packet id it was handed over with ([`Tracker::next_id`]; 0 at QoS 0).
    id: u16,
    /// When it was handed to the client, then when it was written: what its wait counts
    /// from is [`Tracker::waiting_since`]'s to say.
    since: Instant,
    /// How long it may wait to be written, then for its ack ([`PublishOptions::patience`]).
    patience: Option<Duration>,
    /// Its PUBLISH packet's size (what its ack shows the broker takes) and mark.
    measure: Measure,
    /// What a refusal of it for its topic teaches ([`RefusedTopics`]): its topic, its retain
    /// flag (its QoS is above), and whose records it is.
    topic: Arc<str>,
    retain: bool,
    origin: Origin,
    /// The client holds the payload until the message is confirmed.
    _held: Held,
}

/// Why a pack fails before it is published (`onRemoteError`): what the broker refused lately
/// ([`RefusedTopics`]).
#[derive(Debug, Clone, Copy)]
enum Unpublished<'a> {
    /// The pack's topic, for this reason.
    RefusedTopic(&'a str),
    /// The status message's topic (`statusTopic`), for this reason: the connection's own
    /// message, no pack of Kaa's.
    StatusTopic(&'a str),
    /// Topics of the same endpoint's records, through the same appender.
    RefusedEndpoint,
    /// The appender's new topics, one after another.
    NewTopicsHeld,
}

impl<'a> Unpublished<'a> {
    /// A topic refused lately, for `reason`, to a message of `origin`.
    fn refused_topic(reason: &'a str, origin: Origin) -> Unpublished<'a> {
        if origin.appender == 0 {
            Unpublished::StatusTopic(reason)
        } else {
            Unpublished::RefusedTopic(reason)
        }
    }

    /// Its budget of log lines ([`LogBudget`]): a flood of one kind hides no other.
    fn kind(self) -> &'static str {
        match self {
            Unpublished::RefusedTopic(_) => "refused topic",
            Unpublished::StatusTopic(_) => "refused status topic",
            Unpublished::RefusedEndpoint => "refused endpoint",
            Unpublished::NewTopicsHeld => "new topics held",
        }
    }

    /// What the log line says of it, made only for a line that is written.
    fn because(self) -> String {
        use crate::refused_topics::{LIFE, PROBE_EVERY, SOURCE_TOPICS, UNTAKEN};
        match self {
            Unpublished::RefusedTopic(reason) => format!(
                "the broker refused a message to it ({reason}) within the last {} s, and brokers \
                 such as HiveMQ and AWS IoT close the connection at each refusal",
                LIFE.as_secs()
            ),
            Unpublished::StatusTopic(reason) => format!(
                "the broker refused it ({reason}) within the last {} s; allow it in the broker's \
                 ACL, or remove statusTopic",
                LIFE.as_secs()
            ),
            Unpublished::RefusedEndpoint => format!(
                "the broker has taken no message to that topic, and refused {SOURCE_TOPICS} \
                 topics of the same endpoint's records (or closed the connection just after \
                 them), each within {} s of the last; its packs to topics the broker has not \
                 taken fail so until that long has passed without another, so that one endpoint \
                 cannot reset the connection every appender shares at will",
                LIFE.as_secs()
            ),
            Unpublished::NewTopicsHeld => format!(
                "the broker has taken no message to that topic, and it refused new topics of \
                 {UNTAKEN} endpoints in a row (or closed the connection just after them), taking \
                 no new one since; packs to new topics fail so but one every {} s or \
                 more, which tells whether the broker takes them again, so that an ACL denying \
                 them does not keep the connection every appender shares closing. Check the \
                 broker's ACL for the topics mqtttopic makes",
                PROBE_EVERY.as_secs()
            ),
        }
    }
}

/// What a lost connection left unacknowledged that the close may be blamed on
/// ([`Tracker::blame`]): of the QoS 1 and 2 messages written after the last one the broker
/// acknowledged (it reads in order, so a message written before that did not stop it), the
/// largest, with when it was written; and the first written to a topic the broker never took,
/// of those and of the QoS 0 messages written lately ([`Unanswered`]), when it acknowledged a
/// message on this connection or kept it [`QUICK`] after its first QoS 0 message
/// (`answered`).
#[derive(Debug, Default)]
pub struct Unacknowledged {
    largest: Option<(Measure, Instant, Origin)>,
    unknown_topic: Option<TopicSuspect>,
    answered: bool,
}

impl Unacknowledged {
    /// A message to a topic the broker never took was left unacknowledged on a connection it
    /// answered nothing on: a close without a word may then be the broker refusing it, which
    /// nothing can tell from another client taking the id ([`TopicClose::Silent`]).
    pub fn unanswered_at_a_new_topic(&self) -> bool {
        self.unknown_topic.is_some() && !self.answered
    }
}

/// What a close says of the topic of a message it may be blamed on ([`Tracker::blame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicClose {
    /// Nothing: a reason that is not about what was published.
    No,
    /// No reason, under MQTT 3.1.1, where a broker refusing a publish can only close. Blamed
    /// only on a connection that answered something: a broker flapping, or another client
    /// taking the id at once, closes every connection whatever it is sent.
    Silent,
    /// None read, under MQTT 5 (`protocol::Said::Unheard`): a reset, or a write that found the
    /// socket closed, maybe with a DISCONNECT unread. Blamed on a QoS 0 message as
    /// [`TopicClose::Silent`] is, and on a connection that answered nothing too when a close
    /// that said "not authorized" made its topic a suspect: HiveMQ closes a QoS 0 appender's
    /// connection at its first publish so, and the next close's DISCONNECT may go unread under
    /// the publishes after it. Neither a broker flapping nor another client taking the id says
    /// "not authorized".
    Unheard,
    /// MQTT 5's DISCONNECT "not authorized" or "topic name invalid": the broker refused what it
    /// was sent (HiveMQ so closes at a QoS 0 publish its ACL denies, which nothing else
    /// answers), whenever that came.
    Refusing,
}

/// A message a close may be blamed on for its topic ([`TopicClose`]).
#[derive(Debug)]
struct TopicSuspect {
    topic: Arc<str>,
    qos: Qos,
    retain: bool,
    origin: Origin,
    measure: Measure,
    written: Instant,
}

impl TopicSuspect {
    fn of(m: &InFlight) -> Self {
        TopicSuspect {
            topic: Arc::clone(&m.topic),
            qos: m.qos,
            retain: m.retain,
            origin: m.origin,
            measure: m.measure,
            written: m.since,
        }
    }
}

/// QoS 0 messages to topics the broker was not known to take, written on this connection in
/// the last [`QUICK`]. Under MQTT 3.1.1 HiveMQ answers a QoS 0 publish its ACL denies by
/// closing the connection, some milliseconds later: each pack of an endpoint to such a topic
/// reset the connection every appender shares, and two closes were taken for a takeover of the
/// client id. Nothing acknowledges QoS 0, and HiveMQ answers a ping sent after the denied
/// publish before it closes, so only time tells: a message the connection outlived by
/// [`QUICK`] was read and kept it, and its topic is taken; one written since is what a
/// close may be blamed on ([`Tracker::blame`]).
#[derive(Debug, Default)]
struct Unanswered {
    /// Oldest first.
    written: VecDeque<TopicSuspect>,
    /// When the connection wrote its first QoS 0 message, to any topic.
    first: Option<Instant>,
    /// The sizes of QoS 0 messages written, each larger than the one before it, at most
    /// [`SIZES`], and when: those the connection outlives are sizes the broker takes.
    sizes: VecDeque<(Instant, usize)>,
}

/// QoS 0 sizes awaiting the connection's outliving them at most ([`Unanswered::sizes`]): a
/// size grown past them is taken once they are.
const SIZES: usize = 64;

/// The shortest patience (deliveryTimeoutSeconds) with which a QoS 0 message proves itself
/// ([`Tracker::proving`]): the proof may take [`QUICK`] and [`SWEEP_SLACK`] after the write,
/// and a pack whose deadline comes first would fail though the broker took it, and be sent
/// again.
const PROVING_PATIENCE: Duration = Duration::from_secs(5);

/// How much later than [`QUICK`] an appender's sweep takes a message for outlived
/// ([`Tracker::outlived_at_sweep`]).
const SWEEP_SLACK: Duration = Duration::from_secs(1);

/// QoS 0 messages to new topics kept at most: a message to a new topic beyond it is neither
/// blamed nor taken, until it is written again.
const UNANSWERED: usize = 256;
/// The latest kept that a message to the same topic is not kept again for: a few topics
/// written in turn (appenders sharing the connection, an endpoint's topic made anew for each
/// record) take a few places, not all.
const UNANSWERED_AGAIN: usize = 8;

impl Unanswered {
    /// `m`, a QoS 0 message to a topic the broker was not known to take (`new`), or to one it
    /// takes, was written.
    fn written(&mut self, m: &InFlight, new: bool) {
        self.first.get_or_insert(m.since);
        let size = m.measure.size;
        if self.sizes.len() < SIZES && self.sizes.back().is_none_or(|&(_, s)| size > s) {
            self.sizes.push_back((m.since, size));
        }
        if !new {
            return;
        }
        let again = self
            .written
            .iter()
            .rev()
            .take(UNANSWERED_AGAIN)
            .any(|w| w.topic == m.topic && w.retain == m.retain);
        if !again && self.written.len() < UNANSWERED {
            self.written.push_back(TopicSuspect::of(m));
        }
    }

    /// The largest size of those the connection has outlived by [`QUICK`] at `now`.
    fn pop_outlived_sizes(&mut self, now: Instant) -> Option<usize> {
        let mut largest = None;
        while let Some(&(at, size)) = self.sizes.front() {
            if now.saturating_duration_since(at) <= QUICK {
                break;
            }
            self.sizes.pop_front();
            largest = Some(size);
        }
        largest
    }

    /// The oldest message, if the connection has outlived it by [`QUICK`] at `now`.
    fn pop_outlived(&mut self, now: Instant) -> Option<TopicSuspect> {
        let front = self.written.front()?;
        if now.saturating_duration_since(front.written) > QUICK {
            self.written.pop_front()
        } else {
            None
        }
    }
}

/// Why the broker closed the connection, as [`Tracker::blame`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blame {
    /// A message's size ([`crate::packet_limit`]).
    Size(Blamed),
    /// A message's topic, which the broker may refuse ([`TopicBlame::Suspect`]), or most likely
    /// does: packs to it now fail unpublished ([`TopicBlame::Refused`]).
    Topic { topic: Arc<str>, blame: TopicBlame },
}

/// A message the sweep found waiting past its patience ([`Tracker::take_stall`]).
#[derive(Clone, Copy)]
struct StallSeen {
    stall: Stall,
    /// The QoS of a parked message (`None`: one handed to the client, behind the writes),
    /// what held it and when that last moved. `None` for a written message: only its ack
    /// frees it, and the driver's look sees that.
    held: Option<(Option<Qos>, Holder, Option<Instant>)>,
}

/// A message that waited past its patience, as the driver says it when it leaves the
/// connection ([`Tracker::take_stall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub patience: Duration,
    /// What it waited for.
    pub waited: Waited,
    /// It is the connection's own message (the status message), whose patience is a connect
    /// and a keep-alive, not an appender's deliveryTimeoutSeconds.
    pub status: bool,
}

/// What a message past its patience waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// To be written: the broker stopped reading.
    Written,
    /// For the in-flight window, which no ack freed.
    Window,
    /// For its ack.
    Ack,
    /// For its ack, while the broker acknowledged messages written after it, and such
    /// messages hold half of the window ([`Tracker::passed_stall`]).
    Passed,
}

/// What holds back a message not written yet ([`Tracker::holder_of`]), each moving at its
/// own events.
#[derive(Clone, Copy, PartialEq)]
enum Holder {
    /// The writes ahead of it ([`Tracker::waiting_since`]).
    Writes,
    /// The window QoS 1 and 2 share, full or with the next packet id still taken.
    AckedWindow,
    /// QoS 2's own window, full.
    Qos2Window,
}

/// What connections to one broker taught a [`Tracker`], kept while the connection goes to
/// another ([`Tracker::change_broker`]).
#[derive(Default)]
pub struct Learned {
    limit: PacketLimit,
    over_limit: u64,
    refused_topics: RefusedTopics,
    silent_refusals: SilentRefusals,
}

/// The correlation state of one connection. All methods run under the connection's lock.
#[derive(Default)]
pub struct Tracker {
    /// The connection's name in log lines.
    label: String,
    connected: bool,
    /// Waiting for the window or a connection, each endpoint's packs in turn, by QoS
    /// ([`FairQueue`]).
    parked: FairQueue<Parked, 3>,
    /// Handed to the client, in channel order; pkid not yet known.
    sent: VecDeque<InFlight>,
    /// QoS 1 waiting for PUBACK, QoS 2 waiting for PUBREC.
    awaiting_ack: HashMap<u16, InFlight>,
    /// QoS 2 released (PUBREL sent), waiting for PUBCOMP.
    awaiting_comp: HashMap<u16, InFlight>,
    /// A publish rumqttc holds back because its pkid is still taken (broker acked out of order).
    /// `release` keeps that from happening; rumqttc settles it at the ack, and at QoS 2
    /// wrongly (the publish it lets go at PUBCOMP is not in its state, and its PUBREC fails the
    /// connection).
    collided: Option<InFlight>,
    /// The packet id of the last QoS 1 or 2 publish handed to the client (0: none yet on
    /// this connection), on the ids' circle 1..=[`Window::packet_ids`].
    last_id: u16,
    /// The client writes each publish with the id given with it, so ids still taken are
    /// passed over ([`Outbox::takes_packet_ids`]); else it numbers them itself, in turn.
    passes_taken_ids: bool,
    /// When the connection was made or last wrote a publish; `None` without a connection.
    moved: Option<Instant>,
    /// When the broker last acknowledged a message on this connection (refusals too); `None`
    /// before it did.
    acked: Option<Instant>,
    /// When the connection was made or a QoS 1 or 2 message last went to the client or was
    /// written, and a QoS 2 one: how a full window moves ([`Tracker::moved_for`]); QoS 0 going
    /// out past it says nothing of it.
    acked_window_moved: Option<Instant>,
    qos2_window_moved: Option<Instant>,
    /// The shortest patience of the messages parked since the queue was last empty (an
    /// appender's deliveryTimeoutSeconds): parked messages are looked at only once what holds
    /// those of a QoS has not moved for longer ([`Tracker::is_stalled`]). Only `submit` parks,
    /// so it starts again there: kept for the connection's life, one appender edited once to a
    /// short timeout made every later sweep of a slow window scan the whole queue.
    shortest_patience: Option<Duration>,
    /// What the last sweep found past its patience, for the driver's look.
    stall_seen: Option<StallSeen>,
    /// The connection's window, and how much of it the messages above take.
    window: Window,
    /// The client takes no QoS 0 message either while QoS 1 and 2 fill its window (MQTT 5,
    /// [`Outbox::stops_at_full_window`]).
    qos0_behind_window: bool,
    acked_in_flight: usize,
    qos2_in_flight: usize,
    /// The connection is closing ([`Tracker::closing`]): each free slot is filled at once.
    closing: bool,
    /// The client writes each publish alone ([`Outbox::writes_each_alone`]): each free slot is
    /// filled at once.
    writes_each_alone: bool,
    /// The messages above and their bytes ([`Message::bytes`]).
    held: Arc<Holdings>,
    /// What each endpoint's messages above hold ([`Origin::endpoint`]), and each endpoint's
    /// through each appender (Kaa hands every pack to every appender, and appenders may share
    /// a connection).
    endpoints: Shares<u64>,
    origins: Shares<Origin>,
    /// What the broker's closes and acks taught of the largest packet it takes.
    limit: PacketLimit,
    /// Packs refused for the learned limit (the first is logged at ERROR).
    over_limit: u64,
    /// Topics the broker refused lately: packs to them fail before they are published.
    refused_topics: RefusedTopics,
    /// What the broker's closes without a word (MQTT 3.1.1), or refusing what was sent, teach
    /// of the topics it refuses.
    silent_refusals: SilentRefusals,
    /// For the line of each pack refused before it was published, which an endpoint's
    /// records can repeat.
    refused_lines: LogBudget,
    /// When the latest-written message the broker acknowledged on this connection was
    /// written: it reads in order, so a message written before that did not stop it.
    acked_written: Option<Instant>,
    /// QoS 0 messages to new topics written lately on this connection.
    unanswered: Unanswered,
    /// This connection's broker acknowledged a QoS 2 message with PUBACK, and a WARN said so.
    qos2_as_qos1: bool,
    /// QoS 0 messages written lately that are far larger than any record the broker took
    /// ([`PacketLimit::unproven_record`]), each far larger than the one before it, in write
    /// order (a few dozen at most from the smallest record to the largest message): each pack
    /// is answered once the connection outlives its message by
    /// [`QUICK`], or the broker acknowledges a message written after it (it reads in order),
    /// and fails with a connection lost before that. A broker with a packet limit it does not
    /// announce (MQTT 3.1.1: AWS IoT 128 KB, EMQX 1 MB) closes the connection at a larger
    /// message, and nothing acknowledges QoS 0: answered as written, such a record was
    /// confirmed though dropped, never sent again, and every one reset the connection every
    /// appender shares. Sent again, it teaches the limit as a QoS 1 message does. A smaller one
    /// written after is answered at its write: under the limit if the larger one is, and lost
    /// with the close otherwise, as any QoS 0 message written after the one closed at.
    proving: VecDeque<InFlight>,
}

impl Tracker {
    /// The tracker of the connection `label` names in log lines.
    pub fn new(label: &str) -> Tracker {
        Tracker {
            label: label.to_string(),
            ..Tracker::default()
        }
    }

    /// Messages accepted and not yet confirmed or failed.
    pub fn outstanding(&self) -> usize {
        self.parked.len()
            + self.sent.len()
            + self.awaiting_ack.len()
            + self.awaiting_comp.len()
            + usize::from(self.collided.is_some())
            + self.proving.len()
    }

    /// Bytes of the messages accepted and not yet confirmed or failed ([`Message::bytes`]).
    pub fn held_bytes(&self) -> usize {
        self.held.bytes.load(Ordering::Relaxed)
    }

    /// Which bound, if any, a pack of `messages` messages taking `bytes` bytes from `origin`
    /// would pass: the connection's, `max_outstanding` messages or their
    /// [`PENDING_BYTES_PER_RECORD`] bytes each, or its endpoint's share of either
    /// ([`ENDPOINT_SHARE_DIVISOR`]) once the endpoint holds anything through the pack's
    /// appender: the first pack of each is taken whatever its size within the connection's
    /// bound (and [`pack_bounds`]), so that a pack is never refused for good, not even when
    /// another appender holds the same pack's records. Bytes are not looked at
    /// when they are not known yet (`None`): a pack that can never fit is told so once they
    /// are. The connection's own messages (the status message) have no share.
    pub fn crowded(
        &self,
        origin: Origin,
        messages: usize,
        bytes: Option<usize>,
        max_outstanding: usize,
    ) -> Option<Crowded> {
        let max_bytes = max_pending_bytes(max_outstanding);
        let over_bytes = |held: usize, max: usize| bytes.is_some_and(|b| held + b > max);
        if self.outstanding() + messages > max_outstanding
            || over_bytes(self.held_bytes(), max_bytes)
        {
            return Some(Crowded::Connection);
        }
        self.origins
            .get(&origin)
            .filter(|held| origin.appender != 0 && held.messages.load(Ordering::Relaxed) > 0)?;
        let held = self.endpoints.get(&origin.endpoint)?;
        let held_messages = held.messages.load(Ordering::Relaxed);
        let held_bytes = held.bytes.load(Ordering::Relaxed);
        (held_messages + messages > max_outstanding / ENDPOINT_SHARE_DIVISOR
            || over_bytes(held_bytes, max_bytes / ENDPOINT_SHARE_DIVISOR))
        .then_some(Crowded::Endpoint {
            messages: held_messages,
            bytes: held_bytes,
            max: max_outstanding,
        })
    }

    /// Accepts a pack's messages, or answers at once: a bound is reached
    /// ([`Tracker::crowded`], which it returns for the caller's log line: `ConnectionError`,
    /// Kaa retries later), or the client's channel refused a publish.
    pub fn submit(
        &mut self,
        out: &mut (impl Outbox + ?Sized),
        pack: &Arc<Pack>,
        how: PublishOptions,
        messages: Vec<Message>,
        max_outstanding: usize,
    ) -> Option<Crowded> {
        // Before any of the pack goes out: a message the broker is known to close the
        // connection at would reset it for every pack in flight, at each of Kaa's attempts.
        let measures: Vec<Measure> = messages
            .iter()
            .map(|m| Measure::of(out.packet_size(m, &how), &m.payload))
            .collect();
        // And what the broker said it takes, for the whole pack at once: failed at its third
        // message, the pack would have had two published and been answered as unpublished.
        if measures
            .iter()
            .any(|m| self.refuse_unwritable(out, pack, m.size, &how))
        {
            return None;
        }
        let now = Instant::now();
        if let Some((topic, reason)) = messages.iter().find_map(|m| {
            self.refused_topics
                .refuses(&m.topic, (how.qos, how.retain), how.origin, now)
                .map(|reason| (&m.topic, reason.to_string()))
        }) {
            let why = Unpublished::refused_topic(&reason, how.origin);
            self.refuse_unpublished(pack, topic, why);
            return None;
        }
        if self.refused_topics.refuses_source(how.origin, now) {
            if let Some(m) = self.first_untaken(&messages, &how) {
                self.refuse_unpublished(pack, &m.topic, Unpublished::RefusedEndpoint);
                return None;
            }
        }
        let crowded = self.crowded(
            how.origin,
            messages.len(),
            Some(message_bytes(&messages)),
            max_outstanding,
        );
        if crowded.is_some() {
            pack.finish(Why::Lost);
            return crowded;
        }
        // After the bounds: a pack they fail spends no probe.
        if self
            .refused_topics
            .holds_new_topics(how.origin.appender, now)
        {
            if let Some(m) = self.first_untaken(&messages, &how) {
                if !self.refused_topics.probe(how.origin.appender, now) {
                    self.refuse_unpublished(pack, &m.topic, Unpublished::NewTopicsHeld);
                    return None;
                }
            }
        }
        if self.parked.is_empty() {
            self.shortest_patience = None;
        }
        if let Some(patience) = how.patience {
            self.shortest_patience =
                Some(self.shortest_patience.map_or(patience, |p| p.min(patience)));
        }
        let holders = [
            Arc::clone(&self.held),
            self.endpoints.entry(how.origin.endpoint),
            self.origins.entry(how.origin),
        ];
        let parked = messages
            .into_iter()
            .zip(measures)
            .map(|(message, measure)| Parked {
                pack: Arc::clone(pack),
                how,
                // As its deadline: the sweep that answers the pack sees it past its patience.
                since: pack.accepted,
                held: Held::new(&holders, message.bytes()),
                message,
                measure,
            });
        let qos = usize::from(how.qos.number());
        self.parked.extend(how.origin.endpoint, qos, parked);
        self.release(out);
        None
    }

    /// Fails `pack` (`onRemoteError`) unpublished, for its message to `topic`, as `why` says.
    fn refuse_unpublished(&self, pack: &Pack, topic: &str, why: Unpublished) {
        if let Some(note) = self.refused_lines.take(why.kind(), Instant::now()) {
            let topic = crate::log_budget::shown_in_log(topic);
            let what = match why {
                Unpublished::StatusTopic(_) => {
                    format!("the status message on statusTopic '{topic}' is not sent")
                }
                _ => format!("a pack to topic '{topic}' fails unpublished (onRemoteError)"),
            };
            log::warn!("{}: {what}: {}{note}", self.label, why.because());
        }
        pack.finish(Why::Refused);
    }

    /// The first of `messages` to a topic the broker never took at `how`'s QoS and retain flag.
    fn first_untaken<'m>(
        &self,
        messages: &'m [Message],
        how: &PublishOptions,
    ) -> Option<&'m Message> {
        messages.iter().find(|m| {
            !self
                .silent_refusals
                .is_allowed(&m.topic, how.qos, how.retain)
        })
    }

    /// Fails `pack` (`onInternalError`, as a message over maxMessageBytes) when a message of
    /// `size` bytes reaches the packet size the broker was found to close the connection at.
    fn refuse_over_limit(&mut self, pack: &Pack, size: usize, origin: Origin) -> bool {
        let Some((ceiling, everyone)) = self.limit.refuses(size, origin) else {
            return false;
        };
        // ERROR once: each pack after it is the same fault, and Kaa sends it again.
        let level = if self.over_limit == 0 {
            log::Level::Error
        } else {
            log::Level::Warn
        };
        self.over_limit += 1;
        // The first of its kind is always within its budget, so the ERROR is written.
        if let Some(note) = self
            .refused_lines
            .take("over the learned limit", Instant::now())
        {
            log::log!(
                level,
                "{}: a message of {size} bytes fails its pack (onInternalError; {} so far): the \
                 broker closed the connection twice with the same message of {ceiling} bytes or \
                 more unconfirmed, and has lately taken {} bytes at most, so it most likely \
                 takes no packets that large ({}). Set maxMessageBytes below the broker's limit \
                 (EMQX mqtt.max_packet_size, 1 MB by default; AWS IoT 128 KB; Mosquitto \
                 max_packet_size or message_size_limit), or use MQTT 5 with a broker that \
                 announces its Maximum Packet Size{note}",
                self.label,
                self.over_limit,
                self.limit.largest_acked(Instant::now()),
                if everyone {
                    "every endpoint's messages that large fail so"
                } else {
                    "this endpoint's messages that large fail so, as its closes may have been at \
                     something else of its own, a record to a topic the broker's ACL denies; \
                     every endpoint's once another endpoint's message teaches the same"
                }
            );
        }
        pack.finish(Why::Unpublishable);
        true
    }

    /// Fails `pack` (`onInternalError`, as a message over maxMessageBytes) unpublished, for its
    /// message of `size` bytes: its endpoint's messages that large closed the connection
    /// ([`PacketLimit::refuses_source`]).
    fn refuse_oversized(&self, pack: &Pack, size: usize) {
        let now = Instant::now();
        if let Some(note) = self.refused_lines.take("oversized endpoint", now) {
            log::warn!(
                "{}: a message of {size} bytes fails its pack unpublished (onInternalError): the \
                 broker closed the connection just after {SOURCE_SUSPECTS} messages of the same \
                 endpoint's records, each far larger than any it has lately taken ({} \
                 bytes at most), each within {} s of the last; that endpoint's messages about \
                 as large fail so until that long has passed without another, or the broker \
                 takes one, so that one endpoint cannot reset the connection every appender \
                 shares at will. Set maxMessageBytes below the broker's limit{note}",
                self.label,
                self.limit.largest_acked(now),
                crate::packet_limit::LIFE.as_secs()
            );
        }
        pack.finish(Why::Unpublishable);
    }

    /// Whether a message of `size` bytes may not be written as the connection stands: it
    /// reaches the packet limit learned from the broker's closes, or is as large as its
    /// endpoint's that the broker closed at, or passes what its CONNACK granted.
    fn unwritable(&self, out: &(impl Outbox + ?Sized), size: usize, how: &PublishOptions) -> bool {
        self.limit.refuses(size, how.origin).is_some()
            || self.limit.refuses_source(how.origin, size)
            || out.refusal(size, how).is_some()
    }

    /// Fails `pack` if a message of it of `size` bytes is [`unwritable`](Self::unwritable),
    /// the learned limit first; whether it did.
    fn refuse_unwritable(
        &mut self,
        out: &(impl Outbox + ?Sized),
        pack: &Pack,
        size: usize,
        how: &PublishOptions,
    ) -> bool {
        if self.refuse_over_limit(pack, size, how.origin) {
            return true;
        }
        if self.limit.refuses_source(how.origin, size) {
            self.refuse_oversized(pack, size);
            return true;
        }
        match out.refusal(size, how) {
            Some(why) => {
                self.refuse(pack, why);
                true
            }
            None => false,
        }
    }

    /// Fails a pack whose message the client did not queue; once per pack, as its later
    /// messages are skipped as done.
    fn refuse(&self, pack: &Pack, why: Unqueued) {
        let line = |kind| self.refused_lines.take(kind, Instant::now());
        match why {
            Unqueued::Full => pack.finish(Why::Lost),
            Unqueued::TooLarge { size, limit } => {
                if let Some(note) = line("over the broker's packet size") {
                    log::warn!(
                        "{}: a message of {size} bytes fails its pack: the broker takes packets \
                         of at most {limit} bytes (its Maximum Packet Size, or MQTT's own); \
                         maxMessageBytes below that fails such records before they are made \
                         into messages{note}",
                        self.label
                    );
                }
                pack.finish(Why::Unpublishable);
            }
            Unqueued::Unsupported(why) => {
                // Refused as the broker would, minus the close.
                if let Some(note) = line("past the broker's grants") {
                    log::warn!("{}: a message fails its pack: {why}{note}", self.label);
                }
                pack.finish(Why::Refused);
            }
        }
    }

    /// Whether QoS 1 messages wait for their window: full, or with less than a quarter of it
    /// free while messages are in flight. Refilled a slot at a time, each ack let one message
    /// go, in a socket write of its own: at QoS 1 (Mosquitto, loopback, 2 cores) 0.74 writes
    /// per message and 16.9 µs of publisher CPU per record, where QoS 0's batches take 0.04
    /// and 2.0; a quarter at a time, 0.08 writes and 7.1 µs, and 1.34 times the bare
    /// publisher's rate where it was 1.19. QoS 2 messages take each slot an ack frees while no
    /// QoS 1 message waits (see `release`): held for a quarter of a window of 20 (`maxInflight`
    /// 20, or an MQTT 5 broker's receive maximum), the benchmark's QoS 2 rate was 0.37 times
    /// the bare publisher's with that window, and 1.13 times taking each slot, where QoS 1's
    /// quarter lost nothing (1.10x). Only where the client batches its writes and the driver
    /// can ping the broker (MQTT 3.1.1): with MQTT 5 each publish is its own write anyway, and
    /// nothing written while the window waited, Mosquitto's acks waited behind Nagle's
    /// algorithm for this side's delayed TCP acknowledgement (see `connection::Nudge`):
    /// QoS 1 ran at 2.8 k records/s, the bare MQTT 5 publisher at 43.3 k.
    fn acked_window_full(&self) -> bool {
        let free = self.window.acked.saturating_sub(self.acked_in_flight);
        free == 0
            || (!self.closing
                && !self.writes_each_alone
                && self.acked_in_flight > 0
                && free < (self.window.acked / 4).max(1))
    }

    /// The connection closes: what is parked (the 'offline' status among it, in its turn) goes
    /// as soon as a slot is free, as the close has a grace of its own to see it acknowledged.
    /// Held for a quarter of a window of 1,024 that a broker acknowledges at 100 a second, it
    /// waited 2.5 s, past that grace, and the broker's will said 'offline' in its place.
    pub fn closing(&mut self, out: &mut (impl Outbox + ?Sized)) {
        self.closing = true;
        self.release(out);
    }

    /// Hands parked messages to the client, each endpoint's packs in turn and in order, while
    /// there is a connection, fewer than [`UNWRITTEN`] wait to be written and their QoS's window
    /// has room (QoS 1, where the client batches its writes: a quarter of it,
    /// [`Self::acked_window_full`], once messages are in flight; QoS 2 too while QoS 1 messages
    /// wait so): a QoS whose window is full holds no
    /// other's messages back, except where the client's full window holds back everything
    /// (MQTT 5: QoS 0 then waits here, held by that window, not in the client's channel as if
    /// the broker read nothing).
    fn release(&mut self, out: &mut (impl Outbox + ?Sized)) {
        // One clock read per call, not per message: they go out together.
        let mut now = None;
        let qos1_refill = !self.acked_window_full();
        loop {
            let open = self.connected && self.sent.len() < UNWRITTEN;
            // While QoS 1 messages wait for their quarter, QoS 2 ones wait with them: taking
            // each slot an ack frees, they would keep the quarter from coming, and QoS 1
            // messages of the same window (another appender's, the status) would go only
            // once no QoS 2 message waited.
            let qos2_room = self.qos2_in_flight < self.window.exactly_once
                && (qos1_refill || !self.parked.has(1));
            // Looked for only while QoS 1 or 2 messages may go: `next_id` may look through
            // the QoS 0 messages not written yet.
            let id = (open
                && self.acked_in_flight < self.window.acked
                && ((qos1_refill && self.parked.has(1)) || (qos2_room && self.parked.has(2))))
            .then(|| self.next_id())
            .flatten();
            let acked = id.is_some();
            let may_go = [
                open && !self.holds_everything(),
                acked && qos1_refill,
                acked && qos2_room,
            ];
            // Where QoS 0 waits for the window too, it goes first once there is room: it
            // takes no slot, and QoS 1 endpoints' earlier turns (a pack a turn, up to 1,024
            // messages) would otherwise refill each slot an ack frees before it.
            let qos0_first = may_go[0] && self.qos0_behind_window && self.parked.has(0);
            let first = qos0_first
                .then(|| {
                    self.parked
                        .pop_where(|p| p.pack.is_done() || p.how.qos == Qos::AtMostOnce)
                })
                .flatten();
            // An answered pack's messages leave whatever the window.
            let Some(p) = first.or_else(|| {
                self.parked
                    .pop_where(|p| p.pack.is_done() || may_go[usize::from(p.how.qos.number())])
            }) else {
                return;
            };
            if p.pack.is_done() {
                continue;
            }
            let Parked {
                pack,
                how,
                message,
                measure,
                held,
                ..
            } = p;
            // Checked at submit and at the CONNACK; here for a limit learned or a broker
            // connected since, when the pack's first messages have already gone out.
            if self.refuse_unwritable(out, &pack, measure.size, &how) {
                continue;
            }
            let (qos, topic) = (how.qos, Arc::clone(&message.topic));
            // QoS 1 and 2 go only with an id (`may_go`).
            debug_assert!(qos == Qos::AtMostOnce || id.is_some());
            let id = match qos {
                Qos::AtMostOnce => 0,
                _ => id.unwrap_or_default(),
            };
            if let Err(why) = out.try_publish(message, &how, id) {
                self.refuse(&pack, why);
                continue;
            }
            self.take(qos);
            if qos != Qos::AtMostOnce {
                self.last_id = id;
            }
            let at = *now.get_or_insert_with(Instant::now);
            self.window_moved(qos, at);
            self.sent.push_back(InFlight {
                pack,
                qos,
                id,
                since: at,
                patience: how.patience,
                measure,
                topic,
                retain: how.retain,
                origin: how.origin,
                _held: held,
            });
        }
    }

    /// The packet id of the next QoS 1 or 2 publish handed to the client; `None` while it
    /// must wait. rumqttc's MQTT 5 client numbers publishes in turn, and holds one back on an
    /// id still taken (see `collided`): the next one waits here while that id is taken. Where
    /// the client writes the id given ([`Outbox::takes_packet_ids`]), ids still taken are
    /// passed over: a broker that never acknowledges a message (Moquette drops a publish its
    /// ACL denies, unacknowledged) or acknowledges it late then costs the connection that
    /// message's place in the window, not every message from the time the ids come round to
    /// it until a new connection. Never up to the id of the oldest message handed over and
    /// not yet written: ids go round in the order they are given, so every id from there on
    /// may be one given to a message not written yet, which no ack shows as taken.
    fn next_id(&self) -> Option<u16> {
        let after = |id: u16| {
            if id >= self.window.packet_ids {
                1
            } else {
                id + 1
            }
        };
        let next = after(self.last_id);
        if !self.passes_taken_ids {
            return (!self.in_use(next)).then_some(next);
        }
        let unwritten = self.sent.iter().find(|m| m.qos != Qos::AtMostOnce);
        std::iter::successors(Some(next), |&id| Some(after(id)))
            .take(usize::from(self.window.packet_ids))
            .take_while(|&id| unwritten.is_none_or(|m| m.id != id))
            .find(|&id| !self.in_use(id))
    }

    /// Whether a packet id still names a message the broker has not completed: rumqttc
    /// would hold a publish back on it (see `collided`, which takes it again at its ack), and
    /// MQTT keeps an id taken until its PUBCOMP.
    fn in_use(&self, id: u16) -> bool {
        self.awaiting_ack.contains_key(&id)
            || self.awaiting_comp.contains_key(&id)
            || self.collided.as_ref().is_some_and(|m| m.id == id)
    }

    /// The broker accepted the connection: publish what waited for it.
    pub fn on_connected(&mut self, out: &mut (impl Outbox + ?Sized), window: Window) {
        self.connected = true;
        self.window = window;
        self.qos0_behind_window = out.stops_at_full_window();
        self.writes_each_alone = out.writes_each_alone();
        self.passes_taken_ids = out.takes_packet_ids();
        self.limit.announced(out.announces_limit());
        // Every connection starts rumqttc's numbering afresh (`EventLoop::forget`), with what
        // the last one handed over and did not write still first in line; given ids, what it
        // handed over keeps them.
        if !self.passes_taken_ids {
            let carried = self
                .sent
                .iter()
                .filter(|m| m.qos != Qos::AtMostOnce)
                .count();
            self.last_id = (carried % usize::from(window.packet_ids)) as u16;
        }
        // Handed to the client and not written before the last connection was lost (MQTT
        // 3.1.1 keeps them ready for this one): their wait starts again here (see
        // `waiting_since`), or a stall of the last connection would count against this one at
        // once.
        self.moved = Some(Instant::now());
        self.acked = None;
        self.acked_window_moved = self.moved;
        self.qos2_window_moved = self.moved;
        self.stall_seen = None;
        self.qos2_as_qos1 = false;
        // Packs parked without a connection were checked against the last one's grants (none
        // before the first) and against the packet limit known then (the loss may have taught
        // one): checked one message at a time as they go out, a pack would have what comes
        // before its first oversized message published.
        let unwritable: Vec<_> = self
            .parked
            .iter()
            .filter(|p| !p.pack.is_done() && self.unwritable(out, p.measure.size, &p.how))
            .map(|p| (Arc::clone(&p.pack), p.measure.size, p.how))
            .collect();
        for (pack, size, how) in unwritable {
            if pack.is_done() {
                continue;
            }
            // Part of it was handed to the client before the loss (MQTT 3.1.1 keeps that for
            // this connection) and goes out now: refused, the pack would be answered as not
            // published with records of it published. As lost, Kaa sends it again, and
            // `submit` then refuses it whole.
            if self.sent.iter().any(|m| Arc::ptr_eq(&m.pack, &pack)) {
                pack.finish(Why::Lost);
                continue;
            }
            self.refuse_unwritable(out, &pack, size, &how);
        }
        self.release(out);
    }

    /// A message of this QoS handed to the client takes its part of the window.
    fn take(&mut self, qos: Qos) {
        self.acked_in_flight += usize::from(qos != Qos::AtMostOnce);
        self.qos2_in_flight += usize::from(qos == Qos::ExactlyOnce);
    }

    /// A message is answered for good: its part of the window is free again.
    fn done(&mut self, message: &InFlight) {
        self.acked_in_flight -= usize::from(message.qos != Qos::AtMostOnce);
        self.qos2_in_flight -= usize::from(message.qos == Qos::ExactlyOnce);
    }

    /// One event from the connection's event loop.
    pub fn on_event(&mut self, out: &mut (impl Outbox + ?Sized), event: &Observed) {
        self.apply(event);
        self.release(out);
    }

    /// What one event says about the messages in flight. rumqttc reports an ack before the
    /// publish it lets go in its wake (a held-back one taking the freed pkid), so an ack always
    /// finds its own message under its pkid.
    fn apply(&mut self, event: &Observed) {
        let acked_at = event.is_ack().then(Instant::now);
        if acked_at.is_some() {
            self.acked = acked_at;
        }
        // An ack that frees a slot moves its window, whether or not messages go in its wake:
        // refilled a quarter at a time, a window a slow broker acknowledges all along would
        // otherwise look stalled between refills.
        let freed = |t: &mut Self, m: &InFlight| {
            t.done(m);
            if let Some(at) = acked_at {
                t.window_moved(m.qos, at);
            }
        };
        match event {
            Observed::Written(pkid) => self.on_written(*pkid),
            Observed::HeldBack => {
                // Taken from the channel but held back until its pkid is free again.
                self.collided = self.sent.pop_front();
            }
            Observed::Acked { pkid, refused } => {
                if let Some(m) = self.awaiting_ack.remove(pkid) {
                    if m.qos == Qos::ExactlyOnce && refused.is_none() {
                        self.took_qos2_as_qos1();
                    }
                    self.got_through(&m, *refused);
                    self.settle(&m, *refused);
                    freed(self, &m);
                }
            }
            Observed::Received { pkid, refused } => {
                if let Some(m) = self.awaiting_ack.remove(pkid) {
                    self.got_through(&m, *refused);
                    if refused.is_none() {
                        self.awaiting_comp.insert(*pkid, m);
                    } else {
                        self.settle(&m, *refused);
                        freed(self, &m);
                    }
                }
            }
            Observed::Completed { pkid, refused } => {
                if let Some(m) = self.awaiting_comp.remove(pkid) {
                    self.settle(&m, *refused);
                    freed(self, &m);
                }
            }
            // The connection is up: what it outlived was read (rumqttc's keep-alive pings
            // answer on a connection that has fallen quiet). Not among the events read with
            // a lost connection: its close may be the answer to what is proving itself.
            Observed::Pong => {
                if self.connected {
                    self.outlived(Instant::now());
                }
            }
            Observed::Connected { .. }
            | Observed::Disconnected
            | Observed::Unasked { .. }
            | Observed::Other => {}
        }
    }

    /// A PUBACK for a QoS 2 message: the broker took it at QoS 1 (brokers that downgrade QoS 2
    /// do so, and MQTT 3.1.1 has no CONNACK to say it), at least once, not exactly once. The
    /// record is there, so its pack is confirmed: failed, Kaa would publish it again each time,
    /// and the subscribers would get every copy. Said once a connection.
    fn took_qos2_as_qos1(&mut self) {
        if !std::mem::replace(&mut self.qos2_as_qos1, true) {
            log::warn!(
                "{}: the broker acknowledged a QoS 2 message with PUBACK: it takes QoS 2 messages \
                 at QoS 1 (at least once, not exactly once), so its subscribers may get a record \
                 twice; set qos to 1, or use a broker that takes QoS 2",
                self.label
            );
        }
    }

    /// The QoS 0 messages the connection outlived by [`QUICK`] at `now` were read, and the
    /// broker kept the connection: it takes their topics, and their sizes (records all: QoS 0
    /// messages are records' only).
    fn outlived(&mut self, now: Instant) {
        while let Some(m) = self.unanswered.pop_outlived(now) {
            if self.silent_refusals.allowed(&m.topic, m.qos, m.retain) {
                self.refused_topics.new_topic_taken(m.origin.appender);
            }
        }
        if let Some(size) = self.unanswered.pop_outlived_sizes(now) {
            self.taken(size, true, now);
        }
        self.proven(|m| now.saturating_duration_since(m.since) > QUICK);
    }

    /// The messages proving themselves that `read` says the broker read and kept the
    /// connection after, from the oldest: it takes them.
    fn proven(&mut self, read: impl Fn(&InFlight) -> bool) {
        while let Some(m) = self.proving.pop_front() {
            if !read(&m) {
                self.proving.push_front(m);
                return;
            }
            self.taken(m.measure.size, true, m.since);
            m.pack.record_delivered();
        }
    }

    /// At an appender's sweep, for a connection fallen quiet: what it outlived, as at a write
    /// or a ping, but [`SWEEP_SLACK`] later, since the sweep runs beside the event loop, which
    /// may not have read yet a close that came in time.
    pub fn outlived_at_sweep(&mut self, now: Instant) {
        if let Some(at) = now.checked_sub(SWEEP_SLACK).filter(|_| self.connected) {
            self.outlived(at);
        }
    }

    /// A broker's answer to one message: confirmed, or refused with a reason (MQTT 5), which
    /// for its topic is remembered.
    fn settle(&mut self, m: &InFlight, refused: Option<Reason>) {
        match refused {
            None => m.pack.record_delivered(),
            Some(reason) => {
                // Said with the first refused message of a pack, within the budget: an endpoint's
                // records can repeat it. The connection's own message, the status, once a
                // connection (and at its close), with what an ACL refusing it asks for.
                let status = m.origin.appender == 0;
                let first = !m.pack.is_done() && !status;
                m.pack.finish(Why::Refused);
                let topic = crate::log_budget::shown_in_log(&m.topic);
                let status_line = || self.refused_lines.take("refused status", Instant::now());
                if let Some(note) = status.then(status_line).flatten() {
                    let hint = if reason.refuses_topic() {
                        ": allow it in the broker's ACL, or remove statusTopic"
                    } else {
                        ""
                    };
                    log::warn!(
                        "{}: the broker refused the status message on statusTopic '{topic}' \
                         ({reason}){hint}{note}",
                        self.label
                    );
                }
                let budget = || self.refused_lines.take("refused message", Instant::now());
                match first.then(budget).flatten() {
                    Some(note) => log::warn!(
                        "{}: the broker refused a message to topic '{topic}' ({reason}): its pack \
                         fails (onRemoteError){note}",
                        self.label
                    ),
                    None => log::debug!(
                        "{}: the broker refused a message to topic '{topic}' ({reason})",
                        self.label
                    ),
                }
                if reason.refuses_topic()
                    && self.topic_refused(&m.topic, (m.qos, m.retain), &reason.to_string(), None)
                {
                    self.topic_counted(m.origin, &m.topic);
                }
            }
        }
    }

    /// The broker refuses messages to `topic` at `qos` and `retain`, for `reason`: packs to it
    /// fail before they are published from now on ([`Tracker::submit`]), and so do those
    /// waiting for the window or a connection now, before any other message of them goes out.
    /// One of them with messages handed to the client already is answered as lost instead
    /// (as at [`Tracker::on_connected`]): part of it is published, and Kaa sends it again to
    /// meet the refusal whole. Whether that is news (the topic was not refused already).
    fn topic_refused(
        &mut self,
        topic: &Arc<str>,
        (qos, retain): (Qos, bool),
        reason: &str,
        only: Option<Origin>,
    ) -> bool {
        let now = Instant::now();
        if !self
            .refused_topics
            .note(topic, (qos, retain), reason, only, now)
        {
            return false;
        }
        let hit = |p: &Parked| {
            p.message.topic == *topic
                && p.how.qos == qos
                && p.how.retain == retain
                && only.is_none_or(|o| o.same_endpoint(p.how.origin))
        };
        for (pack, _, origin) in self.fail_waiting(hit) {
            self.refuse_unpublished(&pack, topic, Unpublished::refused_topic(reason, origin));
        }
        // What they held counts against no bound now (nor against their endpoint's share).
        self.prune();
        true
    }

    /// Packs waiting for the window or a connection with a message that is `hit`, now that
    /// the broker refuses such messages: one with messages handed to the client already is
    /// answered as lost (as at [`Tracker::on_connected`]: part of it is published, and Kaa sends
    /// it again to meet the refusal whole); the others are returned with such a message's
    /// topic, for the caller to refuse.
    fn fail_waiting(&self, hit: impl Fn(&Parked) -> bool) -> Vec<(Arc<Pack>, Arc<str>, Origin)> {
        let mut waiting: Vec<(Arc<Pack>, Arc<str>, Origin)> = Vec::new();
        for p in self.parked.iter() {
            if !p.pack.is_done()
                && hit(p)
                && !waiting
                    .last()
                    .is_some_and(|(w, ..)| Arc::ptr_eq(w, &p.pack))
            {
                let topic = Arc::clone(&p.message.topic);
                waiting.push((Arc::clone(&p.pack), topic, p.how.origin));
            }
        }
        if waiting.is_empty() {
            return waiting;
        }
        let handed_over: HashSet<*const Pack> = self
            .sent
            .iter()
            .chain(self.awaiting_ack.values())
            .chain(self.awaiting_comp.values())
            .chain(self.collided.iter())
            .chain(&self.proving)
            .map(|m| Arc::as_ptr(&m.pack))
            .collect();
        waiting.retain(|(pack, ..)| {
            let partly_out = handed_over.contains(&Arc::as_ptr(pack));
            if partly_out {
                pack.finish(Why::Lost);
            }
            !partly_out
        });
        waiting
    }

    /// `topic`, of `origin`'s records, was refused or blamed for a close
    /// ([`RefusedTopics::count`]). When that makes the endpoint refused, or the appender's new
    /// topics held, their packs waiting with a message to a topic the broker never took fail
    /// too.
    fn topic_counted(&mut self, origin: Origin, topic: &str) {
        let counted = self.refused_topics.count(origin, topic, Instant::now());
        let silent = &self.silent_refusals;
        let untaken = |p: &Parked| !silent.is_allowed(&p.message.topic, p.how.qos, p.how.retain);
        if counted.source_refused {
            for (pack, topic, _) in self.fail_waiting(|p| p.how.origin == origin && untaken(p)) {
                self.refuse_unpublished(&pack, &topic, Unpublished::RefusedEndpoint);
            }
        }
        if counted.new_topics_held {
            let of_appender = |p: &Parked| p.how.origin.appender == origin.appender && untaken(p);
            for (pack, topic, _) in self.fail_waiting(of_appender) {
                self.refuse_unpublished(&pack, &topic, Unpublished::NewTopicsHeld);
            }
        }
        if counted.source_refused || counted.new_topics_held {
            self.prune();
        }
    }

    /// The broker read `m`: its PUBACK or PUBREC came, `refused` or not.
    fn got_through(&mut self, m: &InFlight, refused: Option<Reason>) {
        let size = m.measure.size;
        self.acked_written = self.acked_written.max(Some(m.since));
        if refused.is_none() && self.silent_refusals.allowed(&m.topic, m.qos, m.retain) {
            self.refused_topics.new_topic_taken(m.origin.appender);
        }
        // When it was written: near enough for sizes kept for minutes, and no clock read per ack.
        self.taken(size, m.origin.appender != 0, m.since);
        // Written before it, so read before it (one written at the same instant may not be).
        let written = m.since;
        self.proven(|p| p.since < written);
    }

    /// The broker took a message of `size` bytes, a record's or the connection's own:
    /// acknowledged it, or kept the connection [`QUICK`] after a QoS 0 one.
    fn taken(&mut self, size: usize, record: bool, at: Instant) {
        if record {
            self.limit.record_taken(size, at);
        }
        if let Some(ceiling) = self.limit.acked(size, at) {
            log::warn!(
                "{}: the broker took a message of {size} bytes, above the {ceiling} bytes it \
                 was taken to close the connection at: messages that large are published again",
                self.label
            );
        }
    }

    /// A QoS 0 message was written: it is delivered, unless it is far larger than any record
    /// the broker took and than those proving themselves, and proves itself first
    /// ([`Tracker::proving`]), where its pack may wait for that.
    fn written_qos0(&mut self, m: InFlight) {
        let size = m.measure.size;
        if self.limit.unproven_record(size, m.since)
            && self
                .proving
                .back()
                .is_none_or(|p| far_larger(size, p.measure.size))
            && m.patience.is_none_or(|p| p >= PROVING_PATIENCE)
        {
            self.proving.push_back(m);
        } else {
            m.pack.record_delivered();
        }
    }

    fn on_written(&mut self, pkid: u16) {
        // Any publish, ours or not, QoS 0 too: the socket takes what waits behind it.
        let now = Instant::now();
        self.moved = Some(now);
        // Not among the events read with a lost connection: its close may be the answer.
        if self.connected {
            self.outlived(now);
        }
        let mut m = match self.collided.take() {
            Some(held) => held,
            None => match self.sent.pop_front() {
                Some(m) => m,
                // Not ours (rumqttc replays nothing: we clear its pending list on every loss).
                None => return,
            },
        };
        if pkid == 0 {
            if m.qos == Qos::AtMostOnce {
                // QoS 0 has no ack: written is all it gets.
                m.since = now;
                let new = !self.silent_refusals.is_allowed(&m.topic, m.qos, m.retain);
                self.unanswered.written(&m, new);
                self.written_qos0(m);
            } else {
                // Out of step with the client (a packet id can never be 0): not confirmed.
                log::warn!(
                    "a QoS {} message was written without a packet id",
                    m.qos as u8
                );
                m.pack.finish(Why::Lost);
                self.done(&m);
            }
            return;
        }
        m.since = now;
        self.window_moved(m.qos, now);
        if let Some(previous) = self.awaiting_ack.insert(pkid, m) {
            // An id is given again only after its ack (rumqttc's numbering or the tracker's):
            // this cannot be, and the previous message's fate is unknown, so it is not
            // confirmed.
            log::debug!("packet id {pkid} written again before its ack");
            previous.pack.finish(Why::Lost);
            self.done(&previous);
        }
    }

    /// The connection dropped. `drained` is how many publishes rumqttc moved from its channel
    /// into its pending list (those are the oldest entries of `sent`: all of them under MQTT 5,
    /// see `EventLoop::forget`); the rest of `sent` (MQTT 3.1.1's ready publishes, which the
    /// driver writes itself) goes out on the next connection. `unreported` are events
    /// rumqttc queued but never returned, in its order: those of the read or write during
    /// which the connection failed. Acks among them count (a broker that refuses a message
    /// and closes the connection often does both in one read), and so do held-back and
    /// written publishes, or the queue of `sent` would be out of step with rumqttc's.
    ///
    /// Returns what [`Tracker::blame`] may blame for the loss.
    pub fn on_connection_lost(
        &mut self,
        drained: usize,
        unreported: &[Observed],
    ) -> Unacknowledged {
        self.connected = false;
        let mut write_failed = Vec::new();
        for event in unreported {
            match event {
                // A QoS 0 publish whose write failed: not delivered, and the close may be the
                // broker's answer to it (a broker resets the connection as soon as it reads the
                // header of a packet over its limit, while the rest is still being written).
                // (Any other written one waits for an ack that can no longer come, and fails
                // below.)
                // Its `since` stays its hand-over: the write began no earlier.
                Observed::Written(0) => {
                    if let Some(m) = self.sent.pop_front() {
                        write_failed.push(m);
                    }
                }
                event => self.apply(event),
            }
        }
        self.moved = None;
        self.acked = None;
        self.stall_seen = None;
        // Nothing is taken here: the close being judged may be the broker's answer to it.
        let now = Instant::now();
        let acked_written = self.acked_written.take();
        let unanswered = std::mem::take(&mut self.unanswered);
        let proving = std::mem::take(&mut self.proving);
        let suspects = || {
            self.awaiting_ack
                .values()
                .filter(|m| acked_written.is_none_or(|at| m.since >= at))
        };
        let untaken =
            |topic: &str, qos, retain| !self.silent_refusals.is_allowed(topic, qos, retain);
        let answered = acked_written.is_some()
            || unanswered
                .first
                .is_some_and(|at| now.saturating_duration_since(at) > QUICK);
        // Not one read before a message the broker acknowledged, nor one too old to blame.
        let unknown_qos0 = unanswered.written.into_iter().find(|m| {
            acked_written.is_none_or(|at| m.written >= at)
                && now.saturating_duration_since(m.written) <= QUICK
                && untaken(&m.topic, m.qos, m.retain)
        });
        let unacknowledged = Unacknowledged {
            largest: suspects()
                .chain(&proving)
                .chain(write_failed.iter().filter(|m| {
                    acked_written.is_none_or(|at| m.since >= at)
                        && self.limit.unproven_record(m.measure.size, now)
                }))
                .map(|m| (m.measure, m.since, m.origin))
                .max_by_key(|(m, _, _)| m.size),
            unknown_topic: suspects()
                .filter(|m| untaken(&m.topic, m.qos, m.retain))
                .map(TopicSuspect::of)
                .chain(unknown_qos0)
                .min_by_key(|m| m.written),
            answered,
        };
        let mut failed: Vec<InFlight> = self
            .awaiting_ack
            .drain()
            .chain(self.awaiting_comp.drain())
            .map(|(_, m)| m)
            .collect();
        failed.extend(self.collided.take());
        failed.extend(proving);
        failed.extend(write_failed);
        failed.extend(self.sent.drain(..drained.min(self.sent.len())));
        for m in &failed {
            m.pack.finish(Why::Lost);
            self.done(m);
        }
        unacknowledged
    }

    /// The broker closed the connection, for no refusal of a message or takeover it said
    /// (`at_topic` says what it said of topics), with `lost` unacknowledged
    /// ([`Tracker::on_connection_lost`]): whether that is blamed on a message's size (see
    /// [`PacketLimit::blame`]) or on its topic (see [`SilentRefusals::blame`]). A topic blamed
    /// again is refused from now on, as one the broker refused with a reason code. A close
    /// [`TopicClose::Refusing`] is blamed on a topic only: a size the broker would have said.
    ///
    /// When the largest message is the one to a new topic, its topic is blamed first: a
    /// refusal learned wrongly then holds back one topic, where a packet limit would hold back
    /// every message that large (the broker may have acknowledged only smaller ones: the status
    /// message, records of other topics).
    ///
    /// `may_be_takeover`: the close came without a reason soon after the connect, as one
    /// another client with the client id makes ([`PacketLimit::blame`]).
    pub fn blame(
        &mut self,
        lost: Unacknowledged,
        at_topic: TopicClose,
        may_be_takeover: bool,
    ) -> Option<Blame> {
        let now = Instant::now();
        let suspect = lost.unknown_topic.filter(|s| match at_topic {
            TopicClose::No => false,
            TopicClose::Silent => lost.answered,
            // At QoS 0 only: an MQTT 5 broker refuses a QoS 1 or 2 message with a reason code.
            TopicClose::Unheard => {
                s.qos == Qos::AtMostOnce
                    && (lost.answered
                        || self
                            .silent_refusals
                            .said_refused((&s.topic, s.qos, s.retain), now))
            }
            TopicClose::Refusing => true,
        });
        if at_topic == TopicClose::Refusing {
            return self.blame_topic(suspect.as_ref()?, at_topic, now);
        }
        let topic_first = suspect
            .as_ref()
            .is_some_and(|s| lost.largest == Some((s.measure, s.written, s.origin)));
        if topic_first {
            if let Some(blame) = self.blame_topic(suspect.as_ref()?, at_topic, now) {
                return Some(blame);
            }
        }
        if let Some(blamed) = self.limit.blame(lost.largest, now, may_be_takeover) {
            return Some(Blame::Size(blamed));
        }
        self.blame_topic(suspect.as_ref()?, at_topic, now)
    }

    /// Blames a close that said `at_topic` on `suspect`'s topic ([`SilentRefusals::blame`]);
    /// refused, it is kept with why: refusing what was sent when either close said so, which
    /// a takeover does not, so that such a refusal outlives one ([`Tracker::on_taken_over`]).
    fn blame_topic(
        &mut self,
        suspect: &TopicSuspect,
        at_topic: TopicClose,
        now: Instant,
    ) -> Option<Blame> {
        let key = (&*suspect.topic, suspect.qos, suspect.retain);
        let refusing = at_topic == TopicClose::Refusing;
        let said_before = self.silent_refusals.said_refused(key, now);
        let mut blame =
            self.silent_refusals
                .blame(key, (suspect.written, refusing, suspect.origin), now)?;
        let how = (suspect.qos, suspect.retain);
        match blame {
            // Counted for its source when first blamed.
            TopicBlame::Suspect => self.topic_counted(suspect.origin, &suspect.topic),
            TopicBlame::Refused | TopicBlame::RefusedToOne => {
                let why = if refusing || said_before {
                    CLOSED_REFUSING
                } else {
                    CLOSED_AT_TWICE
                };
                let only = (blame == TopicBlame::RefusedToOne).then_some(suspect.origin);
                self.topic_refused(&suspect.topic, how, why, only);
                // Refused to another endpoint's records already, at two closes too, it is now
                // every endpoint's: the topic is what the broker refuses.
                if self
                    .refused_topics
                    .refuses_everyone(&suspect.topic, how, now)
                {
                    blame = TopicBlame::Refused;
                }
            }
        }
        Some(Blame::Topic {
            topic: Arc::clone(&suspect.topic),
            blame,
        })
    }

    /// Closes without a reason were taken for another client connecting with the client id:
    /// those blamed on topics, and the endpoints whose messages they were blamed on for their
    /// size, were most likely that client's doing, not the broker's answer to them, and what
    /// they taught is forgotten. (A topic refused so in a fight of nodes sharing
    /// an id kept failing its packs for five minutes after the node moved to an id of its own.)
    pub fn on_taken_over(&mut self) {
        self.refused_topics.forget_closes();
        self.silent_refusals.forget_suspects();
        self.limit.forget_sources();
    }

    /// Whether written messages wait for the broker's PUBACK, PUBREC or PUBCOMP.
    pub fn awaits_acks(&self) -> bool {
        !self.awaiting_ack.is_empty() || !self.awaiting_comp.is_empty()
    }

    /// When a message's wait started, the one place that says so. Written, it waits for its
    /// ack from when it was written, or when the broker last acknowledged any message,
    /// whichever came last: a broker that acknowledges late but all along is slow, not
    /// stalled, and a new connection would only fail what the appenders sharing this one have
    /// in flight (one with a short deliveryTimeoutSeconds failed every pack of the others). A
    /// message the broker never acknowledges among others it does keeps its packet id: where
    /// the client numbers messages itself (MQTT 5), the messages that come round to it wait
    /// (see `holder_of`); given ids pass it over, and it keeps its place in the window (see
    /// [`Tracker::passed_stall`]). Not written yet, it waits
    /// for the socket, behind what was handed to the client before it: from when it was
    /// handed over, or when the connection was made or last wrote a publish, whichever came
    /// last. On a slow link a window of large messages can take longer than their patience to
    /// cross while the broker reads and acknowledges all along; its last messages are no stall
    /// as long as the ones ahead go out.
    fn waiting_since(&self, m: &InFlight, written: bool) -> Instant {
        let progress = if written { self.acked } else { self.moved };
        progress.map_or(m.since, |at| m.since.max(at))
    }

    /// The patience of a message that has waited longer than that to be written, or once
    /// written for its ack, if one has ([`Tracker::waiting_since`]): each message is judged
    /// by its own appender's deliveryTimeoutSeconds, so an appender with a short one does not
    /// reset a connection it shares over another's messages that may wait longer. A broker
    /// that answers pings but stopped acknowledging keeps such messages in the MQTT client's
    /// in-flight window (and in [`Tracker::outstanding`]) for as long as the connection lives,
    /// which keep-alive never ends: once they fill the window, every later pack would fail. A
    /// broker that stopped reading keeps every message, QoS 0 included, from being written,
    /// and the MQTT 5 client's write waits without a bound. Only a new connection frees them.
    ///
    /// Messages parked behind a full window (or [`UNWRITTEN`]) count too, from when they were
    /// accepted or a message of their QoS last went to the client, whichever came last:
    /// another appender's messages of longer patience filling the window would otherwise keep
    /// the connection for as long, failing every pack of this one meanwhile (QoS 0 going out
    /// past a full window is no progress of it). Looked at only once a QoS with messages
    /// parked let none go for longer than the shortest patience: the parked queue can be
    /// long, and this runs at every sweep.
    ///
    /// What it found is kept for the driver's look ([`Tracker::take_stall`]).
    pub fn sweep_stall(&mut self, now: Instant) -> bool {
        let found = self.find_stall(now);
        // A finding the driver can keep is not given up for one it sees anyway.
        let kept = self.stall_seen.is_some_and(|s| s.held.is_some());
        if found.is_some_and(|f| f.held.is_some() || !kept) {
            self.stall_seen = found;
        }
        found.is_some()
    }

    /// At the driver's look after a sweep's notice: the patience a message waited past, now
    /// or at the sweep with what held it not moved since. The sweep answers the packs past
    /// their deadline right after it looks, and a message that waited past its patience may
    /// be one of theirs, dropped with them: a message waiting for another appender's full
    /// window passes its patience at its own pack's deadline. The finding is stale once what
    /// held it moved (a write) or is no longer what holds it (an ack that frees the window),
    /// or on another connection.
    pub fn take_stall(&mut self, now: Instant) -> Option<Stall> {
        let seen = self.stall_seen.take();
        self.find_stall(now).map(|s| s.stall).or_else(|| {
            let seen = seen?;
            let (parked, holder, moved) = seen.held?;
            let holds = self.connected
                && self.holder_of(parked) == holder
                && self.moved_by(holder) == moved;
            holds.then_some(seen.stall)
        })
    }

    /// The patience a message waited past ([`Tracker::sweep_stall`]).
    #[cfg(test)]
    pub fn is_stalled(&self, now: Instant) -> Option<Duration> {
        self.find_stall(now).map(|s| s.stall.patience)
    }

    /// What waited past its patience ([`Tracker::sweep_stall`]), preferring what
    /// [`Tracker::take_stall`] can keep: a message not written yet, then a parked one, then a
    /// written one.
    fn find_stall(&self, now: Instant) -> Option<StallSeen> {
        let unwritten = || {
            self.waits(now)
                .filter(|&(_, written, _)| !written)
                .find_map(|(m, _, waited)| {
                    let patience = m.patience.filter(|&p| waited > p)?;
                    Some((patience, m.origin.appender == 0))
                })
        };
        let seen = |(patience, status), parked: Option<Qos>| {
            let holder = self.holder_of(parked);
            let waited = match holder {
                Holder::Writes => Waited::Written,
                Holder::AckedWindow | Holder::Qos2Window => Waited::Window,
            };
            StallSeen {
                stall: Stall {
                    patience,
                    waited,
                    status,
                },
                held: Some((parked, holder, self.moved_by(holder))),
            }
        };
        unwritten()
            .map(|found| seen(found, None))
            .or_else(|| {
                let (found, qos) = self.parked_stall(now)?;
                Some(seen(found, Some(qos)))
            })
            .or_else(|| {
                let ((patience, status), waited) = (self.passed_stall(now))
                    .map(|patience| ((patience, false), Waited::Passed))
                    .or_else(|| Some((self.written_stall(now)?, Waited::Ack)))?;
                Some(StallSeen {
                    stall: Stall {
                        patience,
                        waited,
                        status,
                    },
                    held: None,
                })
            })
    }

    /// Written messages the broker passed over: unacknowledged past their patience since they
    /// were written, while it acknowledged messages written after them (it reads in order: it
    /// dropped them, as Moquette drops a publish its ACL denies, or acknowledges out of order
    /// and very late). Each keeps its place in the window, and its packet id, while the
    /// connection lasts, and the acks of the others keep it from looking stalled
    /// ([`Tracker::waiting_since`]): once they hold half of the window QoS 1 and 2 share, or
    /// of QoS 2's own, only a new connection frees it. The status message is left out: one a
    /// connection, dropped again at each, it would make every connection anew. The patience
    /// of the oldest of them.
    fn passed_stall(&self, now: Instant) -> Option<Duration> {
        let acked_written = self.acked_written?;
        let (mut all, mut qos2, mut oldest) = (0, 0, None::<&InFlight>);
        for m in self.awaiting_ack.values() {
            let past = |p| now.saturating_duration_since(m.since) > p;
            if m.origin.appender == 0 || m.since >= acked_written || !m.patience.is_some_and(past) {
                continue;
            }
            all += 1;
            qos2 += usize::from(m.qos == Qos::ExactlyOnce);
            oldest = oldest.filter(|o| o.since <= m.since).or(Some(m));
        }
        let held = all * 2 >= self.window.acked || qos2 * 2 >= self.window.exactly_once;
        oldest.filter(|_| held)?.patience
    }

    /// A written message past its patience, counted from its write or the broker's last
    /// acknowledgement, whichever came last ([`Tracker::waiting_since`]). Before the broker
    /// acknowledged anything on the connection nothing tells one that is slow from one that
    /// stopped: then by the longest patience of the written records' messages, so that an
    /// appender with a short one does not reset every connection a slow broker is given before
    /// its first ack comes, failing what the others have in flight each time. Not by the
    /// status message's (a connect and a keep-alive, a floor for when it waits alone): with a
    /// long keep-alive it would hold a broker silent since its CONNACK for minutes.
    fn written_stall(&self, now: Instant) -> Option<(Duration, bool)> {
        let mut written = self
            .waits(now)
            .filter(|&(_, w, _)| w)
            .filter_map(|(m, _, waited)| Some((m.patience?, waited, m.origin.appender != 0)));
        if self.acked.is_some() {
            return written.find_map(|(patience, waited, record)| {
                (waited > patience).then_some((patience, !record))
            });
        }
        // The longest patience of the records' messages, of all (the status message alone
        // among them), and the longest wait.
        let (records, all, waited) = written.fold(
            (None, Duration::ZERO, Duration::ZERO),
            |(records, all, waited): (Option<Duration>, _, _), (p, w, record)| {
                let records = if record {
                    records.max(Some(p))
                } else {
                    records
                };
                (records, all.max(p), waited.max(w))
            },
        );
        let patience = records.unwrap_or(all);
        (waited > patience).then_some((patience, records.is_none()))
    }

    /// A parked message past its patience, whether it is the status message, and its QoS.
    fn parked_stall(&self, now: Instant) -> Option<((Duration, bool), Qos)> {
        // Without a connection they wait for one, which is no stall.
        if !self.connected {
            return None;
        }
        let shortest = self.shortest_patience?;
        let moved =
            [Qos::AtMostOnce, Qos::AtLeastOnce, Qos::ExactlyOnce].map(|q| self.moved_for(q));
        let idle = |qos: usize| {
            self.parked.has(qos)
                && moved[qos].is_some_and(|at| now.saturating_duration_since(at) > shortest)
        };
        if !(0..3).any(idle) {
            return None;
        }
        self.parked
            .iter()
            .filter(|p| !p.pack.is_done())
            .find_map(|p| {
                let moved = moved[usize::from(p.how.qos.number())];
                let waited =
                    now.saturating_duration_since(moved.map_or(p.since, |at| p.since.max(at)));
                let patience = p.how.patience.filter(|&patience| waited > patience)?;
                Some(((patience, p.how.origin.appender == 0), p.how.qos))
            })
    }

    /// What holds a parked message of `qos` back (`None`: one handed to the client). Its
    /// window, full (QoS 2's own, or the one QoS 1 and 2 share) or with the next packet id
    /// still taken, moves as its messages are written (a slow link takes a while) or acks let
    /// more of them go; anything else (the messages waiting to be written) with any write.
    fn holder_of(&self, parked: Option<Qos>) -> Holder {
        match parked {
            Some(Qos::AtMostOnce) if self.holds_everything() => Holder::AckedWindow,
            Some(Qos::ExactlyOnce) if self.qos2_in_flight >= self.window.exactly_once => {
                Holder::Qos2Window
            }
            // QoS 2 as well: it waits for the quarter with QoS 1 messages, or, once they have
            // gone (pruned as answered), until the next event, which the window's move brings.
            Some(Qos::AtLeastOnce | Qos::ExactlyOnce) if self.acked_window_full() => {
                Holder::AckedWindow
            }
            // No id to give: all are taken (an ack frees one), or, given ids, the free ones lie
            // past the oldest message not written yet (its write moves that).
            Some(Qos::AtLeastOnce | Qos::ExactlyOnce) if self.next_id().is_none() => {
                let unwritten = self.sent.iter().any(|m| m.qos != Qos::AtMostOnce);
                if self.passes_taken_ids && unwritten {
                    Holder::Writes
                } else {
                    Holder::AckedWindow
                }
            }
            _ => Holder::Writes,
        }
    }

    /// Whether the client's window is full and it takes nothing, QoS 0 included: rumqttc's
    /// MQTT 5 window, which counts QoS 1 and 2 messages until their PUBACK or PUBCOMP (as
    /// `acked_in_flight` does) up to its packet ids (the broker's receive maximum, or
    /// `maxInflight`).
    fn holds_everything(&self) -> bool {
        self.qos0_behind_window && self.acked_in_flight >= usize::from(self.window.packet_ids)
    }

    /// When `holder` last moved.
    fn moved_by(&self, holder: Holder) -> Option<Instant> {
        match holder {
            Holder::Writes => self.moved,
            Holder::AckedWindow => self.acked_window_moved,
            Holder::Qos2Window => self.qos2_window_moved,
        }
    }

    /// When what holds a parked message of `qos` back last moved.
    fn moved_for(&self, qos: Qos) -> Option<Instant> {
        self.moved_by(self.holder_of(Some(qos)))
    }

    /// A message of `qos` went to the client or was written at `at`: its window moved.
    fn window_moved(&mut self, qos: Qos, at: Instant) {
        if qos != Qos::AtMostOnce {
            self.acked_window_moved = Some(at);
        }
        if qos == Qos::ExactlyOnce {
            self.qos2_window_moved = Some(at);
        }
    }

    /// Whether a message handed to the client has waited longer than `limit` for the broker
    /// (to be written, or for its ack): a connection where one has is not well, however long
    /// it held.
    pub fn waited_past(&self, now: Instant, limit: Duration) -> bool {
        // A written one from its write, not the broker's last ack: one it never acknowledges
        // among others it does is no sign of a connection that is well.
        self.waits(now).any(|(m, written, waited)| {
            let waited = if written {
                now.saturating_duration_since(m.since)
            } else {
                waited
            };
            waited > limit
        })
    }

    /// Each message handed to the client, whether it was written, and how long it has waited
    /// at `now` ([`Tracker::waiting_since`]).
    fn waits(&self, now: Instant) -> impl Iterator<Item = (&InFlight, bool, Duration)> {
        let unwritten = self.sent.iter().chain(&self.collided).map(|m| (m, false));
        let written = self
            .awaiting_ack
            .values()
            .chain(self.awaiting_comp.values())
            .map(|m| (m, true));
        unwritten.chain(written).map(move |(m, written)| {
            (
                m,
                written,
                now.saturating_duration_since(self.waiting_since(m, written)),
            )
        })
    }

    /// The connection goes to another broker (failover, or back): what this one refused, the
    /// topics of its ACL and the packet size it was found to close at, say nothing of that
    /// one's. Returns what this one taught, and takes what `next` taught, kept from when the
    /// connection last left it, so that a broker's own lessons hold again at each return to it
    /// (while the first broker was down, each close on the failover broker sent the driver
    /// back to the first, and a refused topic or a record too large was learned anew, at the
    /// cost of a close, every time). [`Tracker::judge_waiting_anew`] follows at a loss.
    pub fn change_broker(&mut self, next: Learned) -> Learned {
        Learned {
            limit: std::mem::replace(&mut self.limit, next.limit),
            over_limit: std::mem::replace(&mut self.over_limit, next.over_limit),
            refused_topics: std::mem::replace(&mut self.refused_topics, next.refused_topics),
            silent_refusals: std::mem::replace(&mut self.silent_refusals, next.silent_refusals),
        }
    }

    /// After [`Tracker::change_broker`] at a loss: the packs waiting (parked, or under MQTT
    /// 3.1.1 ready in the client and unwritten) were judged by the broker left, and those this
    /// one refuses (a topic, or an endpoint's topics it never took) fail now, before any of
    /// them goes out to it and costs the close that taught it. One with messages ready in the
    /// client (or partly handed over) is answered as lost, as at [`Tracker::on_connected`],
    /// its ready messages dropped before the next write ([`Tracker::unready_answered`]); the
    /// others are refused unpublished, as at submit. (The hold on an appender's new topics,
    /// which spends probes, is left to the packs that come.)
    pub fn judge_waiting_anew(&mut self) {
        let now = Instant::now();
        let mut refused: HashMap<*const Pack, (Arc<str>, Option<String>)> = HashMap::new();
        let (topics, silent) = (&mut self.refused_topics, &self.silent_refusals);
        let mut judge = |pack: &Arc<Pack>, topic: &Arc<str>, how: (Qos, bool), origin| {
            if pack.is_done() || refused.contains_key(&Arc::as_ptr(pack)) {
                return;
            }
            let reason = topics.refuses(topic, how, origin, now).map(str::to_string);
            if reason.is_some()
                || (topics.refuses_source(origin, now) && !silent.is_allowed(topic, how.0, how.1))
            {
                refused.insert(Arc::as_ptr(pack), (Arc::clone(topic), reason));
            }
        };
        for p in self.parked.iter() {
            let how = (p.how.qos, p.how.retain);
            judge(&p.pack, &p.message.topic, how, p.how.origin);
        }
        for m in &self.sent {
            judge(&m.pack, &m.topic, (m.qos, m.retain), m.origin);
        }
        if refused.is_empty() {
            return;
        }
        for (pack, _, origin) in self.fail_waiting(|p| refused.contains_key(&Arc::as_ptr(&p.pack)))
        {
            let (topic, reason) = &refused[&Arc::as_ptr(&pack)];
            let why = match reason {
                Some(reason) => Unpublished::refused_topic(reason, origin),
                None => Unpublished::RefusedEndpoint,
            };
            self.refuse_unpublished(&pack, topic, why);
        }
        for m in &self.sent {
            if refused.contains_key(&Arc::as_ptr(&m.pack)) {
                m.pack.finish(Why::Lost);
            }
        }
        self.prune();
    }

    /// Every broker (the configured one and each failover broker) refused the connection (bad
    /// credentials, not authorised): what waits for one would wait in vain. So would the packs
    /// handed to the client and not written when the last connection was lost (the client
    /// keeps them for the next one), which waited for their deadline: they are answered now
    /// too, and their messages are dropped before the client writes anything more
    /// ([`Tracker::unready_answered`]).
    ///
    /// The parked packs leave the tracker whole, their room given back at once (a pack that
    /// comes meanwhile meets the bounds as they now are), and are answered, and their messages
    /// freed, by [`Refused::answer`] once the caller has let go of the tracker: every
    /// `doAppend` on the connection waits for it, and a full queue (100,000 messages of 4 KiB)
    /// took 20 to 25 ms to answer and free.
    #[must_use = "the parked packs are answered by `Refused::answer`"]
    pub fn on_refused(&mut self) -> Refused {
        for m in &self.sent {
            m.pack.finish(Why::Refused);
        }
        let mut parked = std::mem::take(&mut self.parked);
        for p in parked.iter_mut() {
            p.held.give_back();
        }
        Refused(parked)
    }

    /// Drops parked messages of packs already answered (deadline passed, appender closed).
    pub fn prune(&mut self) {
        self.parked.retain(|p| !p.pack.is_done());
    }

    /// Before each write: drops the messages of packs already answered that still wait for
    /// the driver to write them (MQTT 3.1.1 keeps them in the client, [`Client::ready_len`]:
    /// the last of `sent`, in its order), and hands over what they held room for. Else a
    /// broker reading slower than packs come, or one left for a failover broker, still got
    /// the records of packs answered `onConnectionError`, which Kaa sends again, ahead of
    /// newer packs, while those held the room that newer packs were refused for.
    pub fn unready_answered(&mut self, client: &mut (impl Client + ?Sized)) {
        let Some(first) = self.sent.len().checked_sub(client.ready_len()) else {
            return;
        };
        if self.sent.range(first..).all(|m| !m.pack.is_done()) {
            return;
        }
        let keep: Vec<bool> = self
            .sent
            .range(first..)
            .map(|m| !m.pack.is_done())
            .collect();
        client.retain_ready(&keep);
        let mut answered = Vec::new();
        for (m, kept) in self.sent.split_off(first).into_iter().zip(keep) {
            if kept {
                self.sent.push_back(m);
            } else {
                answered.push(m);
            }
        }
        // Their packet ids were given (only the MQTT 3.1.1 client keeps messages ready, and it
        // takes the ids given): never written, they are free again.
        for m in &answered {
            self.done(m);
        }
        self.release(client);
    }

    /// The connection is going away: nothing it holds can still be confirmed.
    pub fn fail_all(&mut self, why: Why) {
        let in_flight = self
            .sent
            .drain(..)
            .chain(self.awaiting_ack.drain().map(|(_, m)| m))
            .chain(self.awaiting_comp.drain().map(|(_, m)| m))
            .chain(self.collided.take())
            .chain(self.proving.drain(..))
            .map(|m| m.pack);
        let everything: Vec<Arc<Pack>> = self
            .parked
            .drain()
            .map(|p| p.pack)
            .chain(in_flight)
            .collect();
        for pack in everything {
            pack.finish(why);
        }
        self.acked_in_flight = 0;
        self.qos2_in_flight = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Endpoints that held nothing for long give their room back at the next sweep: once an
    /// outage's many endpoints are answered, the table is as small as the live ones need.
    #[test]
    fn shares_give_back_the_room_of_endpoints_gone() {
        let mut shares = Shares::<u64>::default();
        let outage: Vec<_> = (0..100_000).map(|k| shares.entry(k)).collect();
        assert!(shares.map.capacity() >= 100_000);
        drop(outage);
        let live: Vec<_> = (1_000_000..1_000_100).map(|k| shares.entry(k)).collect();
        // Swept at the first new key past the mark: the 100 live ones and room to double.
        let swept_at = (0..200_000u64)
            .map(|k| (shares.entry(2_000_000 + k), shares.map.capacity()))
            .position(|(_, capacity)| capacity < 1_000)
            .expect("the table shrinks once swept");
        assert!(swept_at < 100_000, "swept only after {swept_at} new keys");
        // What the live ones hold survives the sweep.
        for (key, held) in (1_000_000..).zip(&live) {
            let found = shares.get(&key).expect("a live endpoint is kept");
            assert!(Arc::ptr_eq(&found, held));
        }
    }

    #[derive(Default)]
    struct Recorder {
        published: Vec<(String, PublishOptions, Vec<u8>)>,
        /// What rumqttc has not taken from its channel yet (see [`Rumqttc`]), with the packet
        /// id the tracker gave.
        channel: VecDeque<(String, Qos, Vec<u8>, u16)>,
        refuse: bool,
        /// As MQTT 3.1.1's client: each publish written with the packet id given.
        takes_packet_ids: bool,
        /// Packets larger than this are refused, as by an MQTT 5 broker's Maximum Packet Size.
        max_packet: Option<usize>,
        /// As MQTT 5's client: nothing taken while QoS 1 and 2 fill the window.
        stops_at_full_window: bool,
        /// As MQTT 5's client: each publish written alone.
        writes_each_alone: bool,
    }

    impl Outbox for Recorder {
        fn refusal(&self, size: usize, _: &PublishOptions) -> Option<Unqueued> {
            let limit = self.max_packet?;
            (size > limit).then_some(Unqueued::TooLarge {
                size,
                limit: limit as u32,
            })
        }

        fn announces_limit(&self) -> bool {
            self.max_packet.is_some()
        }

        fn stops_at_full_window(&self) -> bool {
            self.stops_at_full_window
        }

        fn writes_each_alone(&self) -> bool {
            self.writes_each_alone
        }

        fn takes_packet_ids(&self) -> bool {
            self.takes_packet_ids
        }

        fn try_publish(
            &mut self,
            message: Message,
            how: &PublishOptions,
            id: u16,
        ) -> Result<(), Unqueued> {
            if self.refuse {
                return Err(Unqueued::Full);
            }
            self.published
                .push((message.topic.to_string(), *how, message.payload.clone()));
            self.channel
                .push_back((message.topic.to_string(), how.qos, message.payload, id));
            Ok(())
        }
    }

    /// As MQTT 3.1.1's client: `channel` is what waits for the driver to write it.
    impl Client for Recorder {
        fn disconnect(&mut self) {}

        fn ready_len(&self) -> usize {
            self.channel.len()
        }

        fn retain_ready(&mut self, keep: &[bool]) {
            let mut keep = keep.iter();
            self.channel
                .retain(|_| keep.next().copied().unwrap_or(true));
        }
    }

    /// rumqttc 0.25's own MQTT 5 state machine, driven as its event loop drives it, so the
    /// tracker sees events in the order rumqttc really queues them (an incoming ack before
    /// the publish it lets go, ...), and what a failed read or write leaves unreported.
    struct Rumqttc {
        state: rumqttc::v5::MqttState,
    }

    impl Rumqttc {
        fn new(inflight: u16) -> Rumqttc {
            Rumqttc {
                state: rumqttc::v5::MqttState::new(inflight, false),
            }
        }

        /// The event loop takes the next request from the channel and writes it: with the
        /// packet id the tracker gave, where the client takes those (as our MQTT 3.1.1
        /// driver hands them to rumqttc's state, whose numbering is the same).
        fn take_request(&mut self, out: &mut Recorder) {
            use rumqttc::v5::mqttbytes::{v5::Publish, QoS};
            let (topic, qos, payload, id) = out.channel.pop_front().expect("a request waits");
            let qos = match qos {
                Qos::AtMostOnce => QoS::AtMostOnce,
                Qos::AtLeastOnce => QoS::AtLeastOnce,
                Qos::ExactlyOnce => QoS::ExactlyOnce,
            };
            let mut publish = Publish::new(topic, qos, payload, None);
            if out.takes_packet_ids {
                publish.pkid = id;
            }
            self.state
                .handle_outgoing_packet(rumqttc::v5::Request::Publish(publish))
                .expect("rumqttc takes the publish");
        }

        /// The broker's packets of one read.
        fn read(&mut self, packets: Vec<rumqttc::v5::mqttbytes::v5::Packet>) {
            for packet in packets {
                self.state
                    .handle_incoming_packet(packet)
                    .expect("rumqttc accepts the packet");
            }
        }

        /// What `poll` hands out, one event per call, until the queue is empty.
        fn report(&mut self, t: &mut Tracker, out: &mut Recorder) {
            while let Some(event) = self.state.events.pop_front() {
                t.on_event(out, &crate::protocol::observe_v5(&event));
            }
        }

        /// The connection fails: rumqttc's `clean()` moves in-flight publishes and the
        /// channel's requests into its pending list, which the driver clears (`forget`);
        /// the events queued by the failed read or write were never handed out.
        fn lose(&mut self, t: &mut Tracker, out: &mut Recorder) {
            self.state.clean();
            let drained = out.channel.len();
            out.channel.clear();
            self.state.collision = None;
            let unreported: Vec<Observed> = self
                .state
                .events
                .drain(..)
                .map(|e| crate::protocol::observe_v5(&e))
                .collect();
            t.on_connection_lost(drained, &unreported);
        }
    }

    fn v5_puback(pkid: u16, refused: bool) -> rumqttc::v5::mqttbytes::v5::Packet {
        use rumqttc::v5::mqttbytes::v5::{Packet, PubAck, PubAckReason};
        let mut ack = PubAck::new(pkid, None);
        if refused {
            ack.reason = PubAckReason::NotAuthorized;
        }
        Packet::PubAck(ack)
    }

    fn v5_pubrec(pkid: u16, refused: bool) -> rumqttc::v5::mqttbytes::v5::Packet {
        use rumqttc::v5::mqttbytes::v5::{Packet, PubRec, PubRecReason};
        let mut rec = PubRec::new(pkid, None);
        if refused {
            rec.reason = PubRecReason::NotAuthorized;
        }
        Packet::PubRec(rec)
    }

    fn v5_pubcomp(pkid: u16) -> rumqttc::v5::mqttbytes::v5::Packet {
        rumqttc::v5::mqttbytes::v5::Packet::PubComp(rumqttc::v5::mqttbytes::v5::PubComp::new(
            pkid, None,
        ))
    }

    impl From<Qos> for PublishOptions {
        fn from(qos: Qos) -> Self {
            PublishOptions {
                qos,
                retain: false,
                content_type: "application/json",
                message_expiry: None,
                patience: Some(Duration::from_secs(1)),
                origin: Origin::default(),
            }
        }
    }

    fn pack(records: usize) -> (Arc<Pack>, mpsc::Receiver<Outcome>) {
        let (tx, rx) = mpsc::channel();
        let p = Pack::new(
            records,
            Box::new(move |o| {
                let _ = tx.send(o);
            }),
        );
        (p, rx)
    }

    fn outcomes(rx: &mpsc::Receiver<Outcome>) -> Vec<Outcome> {
        rx.try_iter().collect()
    }

    fn payloads(n: usize) -> Vec<Message> {
        (0..n)
            .map(|i| Message {
                topic: Arc::from("t"),
                payload: vec![i as u8],
                labels: Vec::new(),
            })
            .collect()
    }

    fn written(pkid: u16) -> Observed {
        Observed::Written(pkid)
    }
    fn puback(pkid: u16) -> Observed {
        Observed::Acked {
            pkid,
            refused: None,
        }
    }
    fn pubrec(pkid: u16) -> Observed {
        Observed::Received {
            pkid,
            refused: None,
        }
    }
    fn pubcomp(pkid: u16) -> Observed {
        Observed::Completed {
            pkid,
            refused: None,
        }
    }

    /// A close is blamed on a message only when the broker acknowledged nothing written after
    /// it: it reads in order, so a message it read past is not what it closed at (a broker
    /// restarting while a large message is in flight).
    #[test]
    fn a_message_the_broker_read_past_is_not_blamed_for_the_close() {
        let big = || {
            vec![Message {
                topic: Arc::from("t"),
                payload: vec![0; 10_000],
                labels: Vec::new(),
            }]
        };
        let (mut t, mut out) = connected();
        for messages in [payloads(1), big(), payloads(1)] {
            t.submit(&mut out, &pack(1).0, Qos::AtLeastOnce.into(), messages, 100);
        }
        for pkid in 1..=3 {
            std::thread::sleep(Duration::from_millis(1));
            t.on_event(&mut out, &written(pkid));
        }
        t.on_event(&mut out, &puback(3));
        assert_eq!(t.on_connection_lost(0, &[]).largest, None, "read past");
        t.on_connected(&mut out, Window::default());
        for messages in [payloads(1), big()] {
            t.submit(&mut out, &pack(1).0, Qos::AtLeastOnce.into(), messages, 100);
        }
        for pkid in 1..=2 {
            std::thread::sleep(Duration::from_millis(1));
            t.on_event(&mut out, &written(pkid));
        }
        t.on_event(&mut out, &puback(1));
        assert_eq!(
            t.on_connection_lost(0, &[]).largest.map(|(m, _, _)| m.size),
            Some(10_008),
            "the last one read"
        );
    }

    fn connected() -> (Tracker, Recorder) {
        connected_with(Window::default())
    }

    /// A tracker on a connection the broker accepted with `window`.
    fn connected_with(window: Window) -> (Tracker, Recorder) {
        connected_through(Recorder::default(), window)
    }

    /// [`connected_with`], the client as MQTT 5's: it numbers publishes itself, takes nothing
    /// while QoS 1 and 2 fill the window, and writes each publish alone.
    fn mqtt5_connected(window: Window) -> (Tracker, Recorder) {
        let mqtt5 = Recorder {
            stops_at_full_window: true,
            writes_each_alone: true,
            ..Recorder::default()
        };
        connected_through(mqtt5, window)
    }

    /// A tracker whose client is `out`, on a connection the broker accepted with `window`.
    fn connected_through(mut out: Recorder, window: Window) -> (Tracker, Recorder) {
        let mut t = Tracker::default();
        t.on_connected(&mut out, window);
        (t, out)
    }

    /// The packet of a message of [`payloads`], the largest the tests' broker limit takes.
    fn one_byte_packet(out: &Recorder) -> usize {
        out.packet_size(&payloads(1)[0], &Qos::AtLeastOnce.into())
    }

    /// Messages of a pack answered at its deadline that still wait to be written (MQTT 3.1.1
    /// keeps them in the client) are dropped before the next write, and their room goes to the
    /// packs behind: a broker reading slowly, or the failover broker after it, gets only what
    /// still has a pack to confirm. Before: they were written anyway, ahead of newer packs,
    /// and Kaa sent their records again.
    #[test]
    fn unwritten_messages_of_an_answered_pack_are_dropped() {
        let window = Window {
            acked: 2,
            exactly_once: 2,
            packet_ids: 2,
        };
        let mut t = Tracker::default();
        let mut out = Recorder {
            takes_packet_ids: true,
            ..Recorder::default()
        };
        t.on_connected(&mut out, window);
        let (late, late_rx) = pack(3);
        t.submit(&mut out, &late, Qos::AtLeastOnce.into(), payloads(3), 100);
        let (next, next_rx) = pack(1);
        let mut behind = payloads(1);
        behind[0].payload = b"next".to_vec();
        t.submit(&mut out, &next, Qos::AtLeastOnce.into(), behind, 100);
        // The window holds two of the late pack's; its first is written, its second waits.
        out.channel.pop_front();
        t.on_event(&mut out, &written(1));
        assert_eq!(out.channel.len(), 1);
        assert_eq!(t.outstanding(), 4);

        late.finish(Why::Expired);
        t.unready_answered(&mut out);
        assert_eq!(outcomes(&late_rx), vec![Outcome::ConnectionError]);
        let waiting: Vec<_> = out
            .channel
            .iter()
            .map(|(_, _, p, id)| (p.clone(), *id))
            .collect();
        assert_eq!(
            waiting,
            vec![(b"next".to_vec(), 2)],
            "only the next pack's message, under the dropped one's packet id"
        );
        // The written one waits for its ack still; the next pack's took the freed room.
        assert_eq!(t.outstanding(), 2);
        out.channel.pop_front();
        t.on_event(&mut out, &written(2));
        t.on_event(&mut out, &puback(2));
        assert_eq!(outcomes(&next_rx), vec![Outcome::Delivered]);
        t.on_event(&mut out, &puback(1));
        assert_eq!(outcomes(&late_rx), vec![], "answered once");
        assert_eq!(t.outstanding(), 0);
    }

    /// At most [`UNWRITTEN`] messages wait to be written, QoS 0 ones too; the rest stay parked,
    /// where a pack answered at its deadline leaves them when the client writes: MQTT 5's
    /// client sends all it took, for a pack answered or not. (Before: every QoS 0 message of
    /// an accepted pack went to the client at once, up to `maxPendingRecords`.)
    #[test]
    fn qos0_messages_past_what_waits_unwritten_stay_parked() {
        let (mut t, mut out) = connected();
        let n = UNWRITTEN + 10;
        let (late, late_rx) = pack(n);
        t.submit(&mut out, &late, Qos::AtMostOnce.into(), payloads(n), n);
        assert_eq!(out.published.len(), UNWRITTEN);
        t.on_event(&mut out, &written(0));
        assert_eq!(out.published.len(), UNWRITTEN + 1, "one written, one more");

        late.finish(Why::Expired);
        assert_eq!(outcomes(&late_rx), vec![Outcome::ConnectionError]);
        for _ in 0..UNWRITTEN {
            t.on_event(&mut out, &written(0));
        }
        assert_eq!(
            out.published.len(),
            UNWRITTEN + 1,
            "none of the answered pack's rest"
        );
        assert_eq!(t.outstanding(), 0);
        let (next, next_rx) = pack(1);
        t.submit(&mut out, &next, Qos::AtMostOnce.into(), payloads(1), n);
        t.on_event(&mut out, &written(0));
        assert_eq!(outcomes(&next_rx), vec![Outcome::Delivered]);
    }

    /// A pack with one message past what the broker takes fails before any of it is
    /// published: Kaa answered `onInternalError` does not send it again, and the records
    /// ahead of that message would have reached subscribers as if it had been delivered.
    #[test]
    fn a_message_past_the_brokers_limit_fails_its_pack_before_any_is_published() {
        let (mut t, mut out) = connected();
        out.max_packet = Some(one_byte_packet(&out));
        let (p, rx) = pack(3);
        let mut messages = payloads(3);
        messages[2].payload = vec![0; 2];
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), messages, 100);
        assert_eq!(outcomes(&rx), vec![Outcome::InternalError]);
        assert!(out.published.is_empty(), "{:?}", out.published);
        assert_eq!(t.outstanding(), 0);

        let (fits, rx) = pack(2);
        t.submit(&mut out, &fits, Qos::AtLeastOnce.into(), payloads(2), 100);
        assert_eq!(out.published.len(), 2);
        assert!(outcomes(&rx).is_empty(), "waits for its acks");
    }

    /// The same for a pack parked before the connection was made: it is checked against the
    /// new connection's grants before any of it goes out.
    #[test]
    fn a_pack_parked_before_the_connection_is_checked_against_its_grants() {
        let mut t = Tracker::default();
        let mut out = Recorder::default();
        let (p, rx) = pack(3);
        let mut messages = payloads(3);
        messages[2].payload = vec![0; 2];
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), messages, 100);
        let (fits, rx_fits) = pack(1);
        t.submit(&mut out, &fits, Qos::AtLeastOnce.into(), payloads(1), 100);
        assert!(outcomes(&rx).is_empty(), "parked");
        out.max_packet = Some(one_byte_packet(&out));
        t.on_connected(&mut out, Window::default());
        assert_eq!(outcomes(&rx), vec![Outcome::InternalError]);
        assert_eq!(
            out.published.len(),
            1,
            "only the pack that fits: {:?}",
            out.published
        );
        assert!(outcomes(&rx_fits).is_empty(), "waits for its ack");
    }

    /// 10,000 bytes, the same each time (Kaa sending its record again).
    fn big() -> Message {
        Message {
            topic: Arc::from("t"),
            payload: vec![7; 10_000],
            labels: Vec::new(),
        }
    }

    /// A tracker on connections of a window of `n` whose broker acknowledged a small message,
    /// closed the connection with [`big`] unacknowledged, and now has it again in flight on
    /// the next: one close more teaches the packet limit.
    fn big_suspected(n: u16) -> (Tracker, Recorder, Window) {
        let window = Window {
            acked: usize::from(n),
            exactly_once: usize::from(n),
            packet_ids: n,
        };
        let mut t = Tracker::default();
        let mut out = Recorder::default();
        t.on_connected(&mut out, window);
        t.submit(
            &mut out,
            &pack(1).0,
            Qos::AtLeastOnce.into(),
            payloads(1),
            100,
        );
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &puback(1));
        let write_big = |t: &mut Tracker, out: &mut Recorder, pkid| {
            t.submit(out, &pack(1).0, Qos::AtLeastOnce.into(), vec![big()], 100);
            t.on_event(out, &written(pkid));
        };
        write_big(&mut t, &mut out, 2.min(n));
        assert!(matches!(
            lose(&mut t, TopicClose::Silent),
            Some(Blame::Size(Blamed::Suspect { .. }))
        ));
        t.on_connected(&mut out, window);
        write_big(&mut t, &mut out, 1);
        (t, out, window)
    }

    /// A pack parked (the window full) when a close teaches the packet limit is checked
    /// against it, whole, at the next connection: its small messages are not published ahead
    /// of the one it refuses.
    #[test]
    fn a_pack_parked_when_the_limit_is_learned_is_checked_whole_at_the_next_connection() {
        let (mut t, mut out, window) = big_suspected(1);
        let (parked, rx) = pack(3);
        let mut messages = payloads(2);
        messages.push(big());
        t.submit(&mut out, &parked, Qos::AtLeastOnce.into(), messages, 100);
        assert!(matches!(
            lose(&mut t, TopicClose::Silent),
            Some(Blame::Size(Blamed::Ceiling { .. }))
        ));
        let published = out.published.len();

        t.on_connected(&mut out, window);
        assert_eq!(outcomes(&rx), vec![Outcome::InternalError]);
        assert_eq!(out.published.len(), published, "nothing of it published");
        assert_eq!(t.outstanding(), 0);
    }

    /// Closes at three different large messages of one endpoint's records: its pack parked
    /// (the window full) at the third is refused whole at the next connection, nothing of it
    /// published, and its next one at submit; another endpoint's large message goes out.
    #[test]
    fn an_origins_pack_parked_when_it_is_held_is_refused_whole_at_the_next_connection() {
        let (mut t, mut out, window) = took_one(1, 1, "t");
        let large = |n: usize| Message {
            topic: Arc::from("t"),
            payload: vec![7; 10_000 + n],
            labels: Vec::new(),
        };
        let (parked, rx) = pack(3);
        let mut published = 0;
        for n in 0..3 {
            t.submit(&mut out, &pack(1).0, from_source(9), vec![large(n)], 100);
            t.on_event(&mut out, &written(1));
            if n == 2 {
                let mut messages = payloads(2);
                messages.push(large(3));
                t.submit(&mut out, &parked, from_source(9), messages, 100);
            }
            assert!(
                matches!(
                    lose(&mut t, TopicClose::Silent),
                    Some(Blame::Size(Blamed::Suspect { .. }))
                ),
                "close {n}"
            );
            published = out.published.len();
            t.on_connected(&mut out, window);
        }
        assert_eq!(outcomes(&rx), vec![Outcome::InternalError]);
        let (next, rx) = pack(1);
        t.submit(&mut out, &next, from_source(9), vec![large(4)], 100);
        assert_eq!(outcomes(&rx), vec![Outcome::InternalError], "at submit");
        assert_eq!(
            out.published.len(),
            published,
            "nothing of either published"
        );
        t.submit(&mut out, &pack(1).0, from_source(10), vec![large(5)], 100);
        assert_eq!(out.published.len(), published + 1, "another endpoint's");
        assert!(t.limit.refuses_source(from_source(9).origin, 10_004));
        t.on_taken_over();
        assert!(
            !t.limit.refuses_source(from_source(9).origin, 10_004),
            "a takeover's closes"
        );
    }

    /// One endpoint sending again a pack of a record to a topic the broker never took (one its
    /// ACL denies, closing without a reason under MQTT 3.1.1) and then a large record: its
    /// second close teaches a limit for that endpoint's messages only. Its packs with messages
    /// that large fail unpublished; another endpoint's go out.
    #[test]
    fn a_limit_one_endpoint_taught_holds_its_messages_only() {
        let (mut t, mut out, window) = took_one(2, 1, "t");
        for n in 0..2 {
            let mut messages = to_topic("denied", 1);
            messages.push(big());
            t.submit(&mut out, &pack(2).0, from_source(9), messages, 100);
            t.on_event(&mut out, &written(1));
            t.on_event(&mut out, &written(2));
            let blame = lose(&mut t, TopicClose::Silent);
            if n == 1 {
                assert!(
                    matches!(
                        blame,
                        Some(Blame::Size(Blamed::Ceiling {
                            everyone: false,
                            ..
                        }))
                    ),
                    "{blame:?}"
                );
            }
            t.on_connected(&mut out, window);
        }
        let published = out.published.len();
        let (held, rx) = pack(1);
        t.submit(&mut out, &held, from_source(9), vec![big()], 100);
        assert_eq!(outcomes(&rx), vec![Outcome::InternalError]);
        t.submit(&mut out, &pack(1).0, from_source(10), vec![big()], 100);
        assert_eq!(out.published.len(), published + 1, "another endpoint's");
        // The broker takes it: what it closed at was no packet limit (its limit was raised,
        // or the closes had another cause), and the operator reads that such messages go again.
        crate::test_log::capture();
        t.label = "ceiling-undone-test".into();
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &puback(1));
        let said = crate::test_log::lines_with("ceiling-undone-test: the broker took a message");
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("WARN ")
                && said[0].contains(
                    "bytes it was taken to close the connection at: messages that \
                 large are published again"
                ),
            "{said:?}"
        );
    }

    /// A failover broker is another broker: the limit learned from the first one's closes
    /// does not hold messages back from it; back on the first, it holds again.
    #[test]
    fn a_limit_learned_from_one_broker_does_not_hold_for_a_failover_broker() {
        let (mut t, mut out, window) = big_suspected(1);
        assert!(matches!(
            lose(&mut t, TopicClose::Silent),
            Some(Blame::Size(Blamed::Ceiling { .. }))
        ));
        let first = t.change_broker(Learned::default());
        t.on_connected(&mut out, window);
        let published = out.published.len();
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), vec![big()], 100);
        assert!(outcomes(&rx).is_empty(), "not refused");
        assert_eq!(out.published.len(), published + 1);

        t.on_connection_lost(0, &[]);
        let _ = t.change_broker(first);
        t.on_connected(&mut out, window);
        let published = out.published.len();
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), vec![big()], 100);
        assert_eq!(outcomes(&rx), [Outcome::InternalError], "the first's limit");
        assert_eq!(out.published.len(), published);
    }

    /// The same pack, with its small messages handed to the client but not written when the
    /// connection was lost: they go out on the next one, so the pack is answered as lost (Kaa
    /// sends it again, and it is refused whole then), not as unpublished.
    #[test]
    fn a_pack_partly_carried_over_when_the_limit_is_learned_is_answered_as_lost() {
        let (mut t, mut out, window) = big_suspected(3);
        // Two small messages handed over, not written; the big one parked (window full).
        let (split, rx) = pack(3);
        let mut messages = payloads(2);
        messages.push(big());
        t.submit(&mut out, &split, Qos::AtLeastOnce.into(), messages, 100);
        assert!(matches!(
            lose(&mut t, TopicClose::Silent),
            Some(Blame::Size(Blamed::Ceiling { .. }))
        ));

        t.on_connected(&mut out, window);
        assert_eq!(outcomes(&rx), vec![Outcome::ConnectionError]);
    }

    #[test]
    fn pack_answers_exactly_once_even_when_dropped() {
        let (p, rx) = pack(2);
        p.finish(Why::Lost);
        p.finish(Why::Confirmed);
        p.record_delivered();
        drop(p);
        assert_eq!(outcomes(&rx), vec![Outcome::ConnectionError]);

        let (p, rx) = pack(1);
        drop(p);
        assert_eq!(outcomes(&rx), vec![Outcome::InternalError]);

        let (_p, rx) = pack(0);
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
    }

    #[test]
    fn qos1_pack_succeeds_only_after_every_puback() {
        let (mut t, mut out) = connected();
        let (p, rx) = pack(3);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(3), 100);
        assert_eq!(out.published.len(), 3);
        for pkid in 1..=3 {
            t.on_event(&mut out, &written(pkid));
        }
        t.on_event(&mut out, &puback(1));
        t.on_event(&mut out, &puback(2));
        assert!(outcomes(&rx).is_empty(), "success before the last ack");
        t.on_event(&mut out, &puback(3));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn qos2_needs_pubcomp_not_pubrec() {
        let (mut t, mut out) = connected();
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::ExactlyOnce.into(), payloads(1), 100);
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &pubrec(1));
        assert!(outcomes(&rx).is_empty());
        // pkid 1 is free again at PUBREC: a new publish may take it before the PUBCOMP.
        let (p2, rx2) = pack(1);
        t.submit(&mut out, &p2, Qos::ExactlyOnce.into(), payloads(1), 100);
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &pubcomp(1));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
        assert!(outcomes(&rx2).is_empty());
        t.on_event(&mut out, &pubrec(1));
        t.on_event(&mut out, &pubcomp(1));
        assert_eq!(outcomes(&rx2), vec![Outcome::Delivered]);
    }

    #[test]
    fn qos0_is_delivered_when_written() {
        let (mut t, mut out) = connected();
        let (p, rx) = pack(2);
        t.submit(&mut out, &p, Qos::AtMostOnce.into(), payloads(2), 100);
        t.on_event(&mut out, &written(0));
        assert!(outcomes(&rx).is_empty());
        t.on_event(&mut out, &written(0));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
    }

    /// The broker acknowledged a record's message (an appender's, not the status message).
    fn record_acknowledged(t: &mut Tracker, out: &mut Recorder) {
        let (p, rx) = pack(1);
        t.submit(out, &p, from_source(1), to_topic("allowed/x", 1), 100);
        t.on_event(out, &written(1));
        t.on_event(out, &puback(1));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
    }

    /// Submits a one-message pack at QoS 0 with a payload of `bytes` bytes of `fill`, and
    /// writes it.
    fn write_sized_qos0(
        t: &mut Tracker,
        out: &mut Recorder,
        bytes: usize,
        fill: u8,
    ) -> mpsc::Receiver<Outcome> {
        write_qos0_within(t, out, bytes, fill, None)
    }

    /// As [`write_sized_qos0`], its pack patient for `patience` (deliveryTimeoutSeconds).
    fn write_qos0_within(
        t: &mut Tracker,
        out: &mut Recorder,
        bytes: usize,
        fill: u8,
        patience: Option<Duration>,
    ) -> mpsc::Receiver<Outcome> {
        let (p, rx) = pack(1);
        let message = Message {
            topic: Arc::from("t"),
            payload: vec![fill; bytes],
            labels: Vec::new(),
        };
        let how = PublishOptions {
            patience,
            ..Qos::AtMostOnce.into()
        };
        t.submit(out, &p, how, vec![message], 100);
        t.on_event(out, &written(0));
        rx
    }

    /// Every QoS 0 record the connection outlives is a size the broker takes, also those
    /// answered at their write: records a little larger than the last taken, each in turn,
    /// do not all wait. Nor does a message larger than one proving itself by less than the
    /// margin, nor one whose pack cannot wait for the proof (deliveryTimeoutSeconds under
    /// [`PROVING_PATIENCE`]: it would fail, though taken, and be sent again).
    #[test]
    fn qos0_records_outlived_are_taken_and_short_patience_does_not_wait() {
        let (mut t, mut out) = connected();
        record_acknowledged(&mut t, &mut out);
        let near = write_sized_qos0(&mut t, &mut out, 1, 1);
        assert_eq!(outcomes(&near), vec![Outcome::Delivered]);
        let proving = write_sized_qos0(&mut t, &mut out, 1_000, 2);
        assert!(outcomes(&proving).is_empty());
        let near_it = write_sized_qos0(&mut t, &mut out, 1_100, 3);
        assert_eq!(outcomes(&near_it), vec![Outcome::Delivered], "near 1,000");
        let impatient =
            write_qos0_within(&mut t, &mut out, 100_000, 4, Some(Duration::from_secs(3)));
        assert_eq!(outcomes(&impatient), vec![Outcome::Delivered], "impatient");
        // deliveryTimeoutSeconds 5, the shortest that waits for the proof.
        let patient = write_qos0_within(&mut t, &mut out, 100_000, 6, Some(PROVING_PATIENCE));
        assert!(
            outcomes(&patient).is_empty(),
            "patient enough to prove itself"
        );
        std::thread::sleep(QUICK + Duration::from_millis(50));
        t.on_event(&mut out, &Observed::Pong);
        assert_eq!(outcomes(&proving), vec![Outcome::Delivered]);
        assert_eq!(outcomes(&patient), vec![Outcome::Delivered]);
        // 1,300 bytes pass 1,000 by the margin, not 1,100 (taken when outlived).
        let after = write_sized_qos0(&mut t, &mut out, 1_300, 5);
        assert_eq!(
            outcomes(&after),
            vec![Outcome::Delivered],
            "within 1,100's margin"
        );
    }

    /// A QoS 0 message far larger than any the broker took is answered once the connection
    /// outlived it (a write or a ping after [`QUICK`]), not at its write: a broker that does
    /// not announce its packet limit closes the connection at a larger one, which would have
    /// been confirmed though dropped. Once taken, messages that large are answered at their
    /// write again; those near the sizes taken always are.
    #[test]
    fn a_qos0_message_larger_than_any_taken_is_answered_once_the_connection_outlived_it() {
        let (mut t, mut out) = connected();
        record_acknowledged(&mut t, &mut out);
        let near = write_sized_qos0(&mut t, &mut out, 2, 1);
        assert_eq!(
            outcomes(&near),
            vec![Outcome::Delivered],
            "near the sizes taken"
        );
        let written = Instant::now();
        let large = write_sized_qos0(&mut t, &mut out, 10_000, 7);
        assert!(outcomes(&large).is_empty(), "answered at its write");
        assert_eq!(t.outstanding(), 1);
        std::thread::sleep(QUICK / 4);
        t.on_event(&mut out, &Observed::Pong);
        // Only meaningful if this thread was not stalled past QUICK meanwhile.
        if written.elapsed() < QUICK {
            assert!(outcomes(&large).is_empty(), "answered before QUICK");
        }
        std::thread::sleep(QUICK * 3 / 4 + Duration::from_millis(50));
        t.on_event(&mut out, &Observed::Pong);
        assert_eq!(outcomes(&large), vec![Outcome::Delivered]);
        assert_eq!(t.outstanding(), 0);
        let again = write_sized_qos0(&mut t, &mut out, 10_000, 8);
        assert_eq!(outcomes(&again), vec![Outcome::Delivered], "taken now");
    }

    /// QoS 0 messages larger than any taken, each larger than the last, all prove themselves:
    /// the broker reads in order and closes at the first over its limit, which may be the
    /// smaller. One smaller than a message proving itself, written after it, is answered at its
    /// write. A close fails those proving and is blamed on the largest.
    #[test]
    fn qos0_messages_larger_than_any_taken_prove_themselves_in_order() {
        let (mut t, mut out) = connected();
        record_acknowledged(&mut t, &mut out);
        let first = write_sized_qos0(&mut t, &mut out, 10_000, 1);
        let larger = write_sized_qos0(&mut t, &mut out, 20_000, 2);
        let smaller = write_sized_qos0(&mut t, &mut out, 15_000, 3);
        assert!(outcomes(&first).is_empty(), "the broker may close at it");
        assert!(outcomes(&larger).is_empty());
        assert_eq!(outcomes(&smaller), vec![Outcome::Delivered]);
        assert_eq!(t.outstanding(), 2);
        let lost = t.on_connection_lost(0, &[]);
        assert_eq!(outcomes(&first), vec![Outcome::ConnectionError]);
        assert_eq!(outcomes(&larger), vec![Outcome::ConnectionError]);
        let packet = |bytes| {
            let m = Message {
                topic: Arc::from("t"),
                payload: vec![0; bytes],
                labels: Vec::new(),
            };
            out.packet_size(&m, &Qos::AtMostOnce.into())
        };
        assert_eq!(lost.largest.map(|(m, _, _)| m.size), Some(packet(20_000)));
    }

    /// The broker reads in order: acknowledging a QoS 1 message written after QoS 0 ones
    /// proving themselves, it read them and kept the connection; those written after it wait.
    #[test]
    fn an_ack_of_a_later_message_proves_the_qos0_messages_before_it() {
        let (mut t, mut out) = connected();
        record_acknowledged(&mut t, &mut out);
        let before = write_sized_qos0(&mut t, &mut out, 10_000, 1);
        std::thread::sleep(Duration::from_millis(2));
        let acked = write_to(&mut t, &mut out, "allowed/x", 2);
        std::thread::sleep(Duration::from_millis(2));
        let after = write_sized_qos0(&mut t, &mut out, 20_000, 2);
        t.on_event(&mut out, &puback(2));
        assert_eq!(outcomes(&acked), vec![Outcome::Delivered]);
        assert_eq!(outcomes(&before), vec![Outcome::Delivered]);
        assert!(outcomes(&after).is_empty());
        assert_eq!(t.outstanding(), 1);
    }

    /// A QoS 0 record over a packet limit the broker does not announce closes the connection:
    /// its pack fails (Kaa sends it again), the close is blamed on its size and taken for no
    /// takeover, and the same record closing it again teaches the limit, as at QoS 1: then it
    /// fails before it is written (`onInternalError`). (Before: each such record was confirmed
    /// at its write, dropped by the broker, and reset the connection every appender shares.)
    /// Its topic was taken: a close at the first message to a topic is blamed on the topic.
    #[test]
    fn a_qos0_record_the_broker_closes_at_twice_teaches_the_packet_limit() {
        let (mut t, mut out) = connected();
        write_sized_qos0(&mut t, &mut out, 300, 1);
        std::thread::sleep(QUICK + Duration::from_millis(50));
        t.on_event(&mut out, &Observed::Pong);
        for expected in ["suspect", "ceiling"] {
            let rx = write_sized_qos0(&mut t, &mut out, 10_000, 7);
            let blame = lose(&mut t, TopicClose::Silent);
            assert_eq!(outcomes(&rx), vec![Outcome::ConnectionError], "{expected}");
            match expected {
                "suspect" => assert!(matches!(blame, Some(Blame::Size(Blamed::Suspect { .. })))),
                _ => assert!(matches!(blame, Some(Blame::Size(Blamed::Ceiling { .. })))),
            }
            t.on_connected(&mut out, Window::default());
        }
        let published = out.published.len();
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtMostOnce.into(), vec![big()], 100);
        assert_eq!(outcomes(&rx), vec![Outcome::InternalError]);
        assert_eq!(out.published.len(), published, "not written");
    }

    /// A broker resets the connection as soon as it reads the header of a packet over its
    /// limit, often while the rest is still being written: a QoS 0 message whose write failed
    /// with the connection is blamed as one written. (Before: only failed, so on a fresh
    /// connection, where Kaa's pack sent again goes out at once, the close taught nothing.)
    #[test]
    fn a_qos0_message_whose_write_failed_with_the_connection_is_blamed() {
        let (mut t, mut out) = connected();
        record_acknowledged(&mut t, &mut out);
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtMostOnce.into(), vec![big()], 100);
        let lost = t.on_connection_lost(0, &[written(0)]);
        assert_eq!(outcomes(&rx), vec![Outcome::ConnectionError]);
        assert!(matches!(
            t.blame(lost, TopicClose::No, false),
            Some(Blame::Size(Blamed::Suspect { .. }))
        ));
        assert_eq!(t.outstanding(), 0);
    }

    /// The status message alone is no measure of what the broker takes: QoS 0 records far
    /// larger than it are answered at their write, and a close with one in flight, or with one
    /// whose write failed, is blamed on nothing, so that closes on connections too short-lived
    /// to outlive any record (nodes fighting over one client id) still count as takeovers.
    /// (Before: every close of such a fight, with statusTopic, was blamed on a record's size,
    /// and the fight was never found.) The QoS 0 records the connection outlived are a
    /// measure: QoS 0 alone learns the limit too.
    #[test]
    fn qos0_records_are_measured_against_records_the_broker_took() {
        let (mut t, mut out) = connected();
        acknowledged(&mut t, &mut out);
        let at_write = write_sized_qos0(&mut t, &mut out, 10_000, 1);
        assert_eq!(
            outcomes(&at_write),
            vec![Outcome::Delivered],
            "no measure yet"
        );
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtMostOnce.into(), vec![big()], 100);
        let lost = t.on_connection_lost(0, &[written(0)]);
        assert_eq!(outcomes(&rx), vec![Outcome::ConnectionError]);
        assert_eq!(t.blame(lost, TopicClose::No, false), None);

        t.on_connected(&mut out, Window::default());
        let small = write_sized_qos0(&mut t, &mut out, 300, 1);
        assert_eq!(outcomes(&small), vec![Outcome::Delivered]);
        let unmeasured = write_sized_qos0(&mut t, &mut out, 10_000, 2);
        assert_eq!(
            outcomes(&unmeasured),
            vec![Outcome::Delivered],
            "nothing taken yet"
        );
        std::thread::sleep(QUICK + Duration::from_millis(50));
        t.on_event(&mut out, &Observed::Pong);
        let large = write_sized_qos0(&mut t, &mut out, 20_000, 3);
        assert!(
            outcomes(&large).is_empty(),
            "larger than those outlived by far"
        );
    }

    /// A broker that acknowledges QoS 2 messages with PUBACK took them at QoS 1: their packs
    /// are confirmed (the records are there; failed, they would be published again at every
    /// try), and one WARN a connection says exactly-once is not what the broker gives.
    #[test]
    fn a_qos2_message_acknowledged_with_puback_is_confirmed_and_said_once_a_connection() {
        crate::test_log::capture();
        let mut t = Tracker::new("qos2-puback-test");
        let mut out = Recorder::default();
        let said = || crate::test_log::lines_with("qos2-puback-test: the broker acknowledged");
        for (connection, first_pkid) in [(1, 1), (2, 1)] {
            t.on_connected(&mut out, Window::default());
            for pkid in first_pkid..first_pkid + 2 {
                let (p, rx) = pack(1);
                t.submit(&mut out, &p, Qos::ExactlyOnce.into(), payloads(1), 100);
                t.on_event(&mut out, &written(pkid));
                t.on_event(&mut out, &puback(pkid));
                assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
            }
            assert_eq!(said().len(), connection, "{:?}", said());
            t.on_connection_lost(0, &[]);
        }
        assert!(
            said()[0].starts_with(
                "WARN qos2-puback-test: the broker acknowledged a QoS 2 message with PUBACK: it \
                 takes QoS 2 messages at QoS 1"
            ),
            "{:?}",
            said()
        );
        // QoS 1 acknowledged so is what is asked, and says nothing.
        t.on_connected(&mut out, Window::default());
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(1), 100);
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &puback(1));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
        assert_eq!(said().len(), 2);
    }

    /// A message past the broker's Maximum Packet Size fails its pack unpublished
    /// (`onInternalError`: Kaa's resending cannot make it fit), and a WARN names both sizes
    /// and the setting that keeps such records from being made into messages; ten a minute at
    /// most, however many packs an endpoint sends.
    #[test]
    fn a_message_past_the_brokers_packet_size_fails_its_pack_and_is_said() {
        crate::test_log::capture();
        let mut t = Tracker::new("packet-size-test");
        let mut out = Recorder {
            max_packet: Some(1_000),
            ..Recorder::default()
        };
        t.on_connected(&mut out, Window::default());
        for _ in 0..12 {
            let (p, rx) = pack(1);
            t.submit(&mut out, &p, Qos::AtLeastOnce.into(), sized(&[5_000]), 100);
            assert_eq!(outcomes(&rx), vec![Outcome::InternalError]);
        }
        assert!(out.published.is_empty());
        let said = crate::test_log::lines_with("packet-size-test: a message of ");
        assert_eq!(said.len(), 10, "{said:?}");
        assert!(
            said[0].starts_with("WARN packet-size-test: a message of 50"),
            "{said:?}"
        );
        assert!(
            said[0].contains(
                "bytes fails its pack: the broker takes packets of at most 1000 bytes (its \
                 Maximum Packet Size, or MQTT's own); maxMessageBytes below that"
            ),
            "{said:?}"
        );
    }

    /// A broker that said its Maximum Packet Size (MQTT 5), which no message past it reaches:
    /// a QoS 0 record far larger than any it took is answered at its write, and closes with a
    /// large message unacknowledged teach no limit (a takeover fight, a restart) and leave
    /// messages that large published.
    #[test]
    fn a_broker_that_said_its_limit_proves_nothing_and_teaches_nothing() {
        let mut t = Tracker::default();
        let mut out = Recorder {
            max_packet: Some(1_000_000),
            ..Recorder::default()
        };
        t.on_connected(&mut out, Window::default());
        record_acknowledged(&mut t, &mut out);
        let large = write_sized_qos0(&mut t, &mut out, 10_000, 1);
        assert_eq!(outcomes(&large), vec![Outcome::Delivered], "at its write");

        for pkid in [2, 1] {
            let (p, rx) = pack(1);
            t.submit(&mut out, &p, Qos::AtLeastOnce.into(), vec![big()], 100);
            assert!(outcomes(&rx).is_empty(), "published");
            t.on_event(&mut out, &written(pkid));
            assert_eq!(lose(&mut t, TopicClose::No), None);
            assert_eq!(outcomes(&rx), vec![Outcome::ConnectionError]);
            t.on_connected(&mut out, Window::default());
        }
        let published = out.published.len();
        t.submit(
            &mut out,
            &pack(1).0,
            Qos::AtLeastOnce.into(),
            vec![big()],
            100,
        );
        assert_eq!(out.published.len(), published + 1, "not refused");
    }

    /// A ping answered in the read that lost the connection proves nothing: the close may be
    /// the broker's answer to the message proving itself.
    #[test]
    fn a_pong_read_with_the_close_proves_nothing() {
        let (mut t, mut out) = connected();
        record_acknowledged(&mut t, &mut out);
        let large = write_sized_qos0(&mut t, &mut out, 10_000, 7);
        std::thread::sleep(QUICK + Duration::from_millis(50));
        t.on_connection_lost(0, &[Observed::Pong]);
        assert_eq!(outcomes(&large), vec![Outcome::ConnectionError]);
    }

    /// An appender's sweep answers the message proving itself on a connection fallen quiet,
    /// [`SWEEP_SLACK`] after a write or ping would: the event loop may not have read a close
    /// that came within [`QUICK`] yet. A lost connection's tracker answers nothing at a sweep.
    #[test]
    fn a_sweep_answers_a_qos0_message_proving_itself_on_a_quiet_connection() {
        let (mut t, mut out) = connected();
        record_acknowledged(&mut t, &mut out);
        let large = write_sized_qos0(&mut t, &mut out, 10_000, 7);
        let written_at = Instant::now();
        t.outlived_at_sweep(written_at + QUICK + SWEEP_SLACK / 2);
        assert!(outcomes(&large).is_empty(), "within the slack");
        t.outlived_at_sweep(written_at + QUICK + SWEEP_SLACK + Duration::from_millis(50));
        assert_eq!(outcomes(&large), vec![Outcome::Delivered]);
    }

    /// A packet id is never 0 at QoS 1 or 2; a client out of step with the tracker must not
    /// confirm such a message as written, as it would at QoS 0.
    #[test]
    fn an_acked_qos_message_written_without_a_packet_id_is_not_confirmed() {
        let (mut t, mut out) = connected();
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(1), 100);
        t.on_event(&mut out, &written(0));
        assert_eq!(outcomes(&rx), vec![Outcome::ConnectionError]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn loss_fails_unacked_and_drained_but_keeps_what_is_still_queued() {
        let (mut t, mut out) = connected();
        let (acked, rx_acked) = pack(1);
        let (unacked, rx_unacked) = pack(1);
        let (drained, rx_drained) = pack(1);
        let (queued, rx_queued) = pack(1);
        for p in [&acked, &unacked, &drained, &queued] {
            t.submit(&mut out, p, Qos::AtLeastOnce.into(), payloads(1), 100);
        }
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &written(2));
        t.on_event(&mut out, &puback(1));
        // rumqttc drained one request from its channel; `queued` went in after the drain.
        t.on_connection_lost(1, &[]);
        assert_eq!(outcomes(&rx_acked), vec![Outcome::Delivered]);
        assert_eq!(outcomes(&rx_unacked), vec![Outcome::ConnectionError]);
        assert_eq!(outcomes(&rx_drained), vec![Outcome::ConnectionError]);
        assert!(outcomes(&rx_queued).is_empty());
        // A late ack for a pkid of the lost connection confirms nothing.
        t.on_event(&mut out, &puback(2));
        assert!(outcomes(&rx_queued).is_empty());
        // After reconnecting, the queued request is written and acked on the new connection.
        t.on_connected(&mut out, Window::default());
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &puback(1));
        assert_eq!(outcomes(&rx_queued), vec![Outcome::Delivered]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn unreported_write_fails_its_pack() {
        let (mut t, mut out) = connected();
        let (q0, rx0) = pack(1);
        let (q1, rx1) = pack(1);
        t.submit(&mut out, &q0, Qos::AtMostOnce.into(), payloads(1), 100);
        t.submit(&mut out, &q1, Qos::AtLeastOnce.into(), payloads(1), 100);
        t.on_connection_lost(0, &[written(0), written(1)]);
        assert_eq!(outcomes(&rx0), vec![Outcome::ConnectionError]);
        assert_eq!(outcomes(&rx1), vec![Outcome::ConnectionError]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn parked_until_connected_then_published_in_order() {
        let mut t = Tracker::default();
        let mut out = Recorder::default();
        let (p, rx) = pack(2);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(2), 100);
        assert!(out.published.is_empty(), "published without a connection");
        let (late, _rx_late) = pack(1);
        t.submit(&mut out, &late, Qos::AtLeastOnce.into(), payloads(1), 100);
        late.finish(Why::Lost); // its deadline passed
        t.prune();
        t.on_connected(&mut out, Window::default());
        assert_eq!(
            out.published
                .iter()
                .map(|(_, _, b)| b.clone())
                .collect::<Vec<_>>(),
            vec![vec![0], vec![1]]
        );
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &written(2));
        t.on_event(&mut out, &puback(1));
        t.on_event(&mut out, &puback(2));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
    }

    #[test]
    fn refused_connection_fails_parked_packs_as_remote_errors() {
        let mut t = Tracker::default();
        let mut out = Recorder::default();
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(1), 100);
        t.on_refused().answer();
        assert_eq!(outcomes(&rx), vec![Outcome::RemoteError]);
    }

    /// The refused packs' room is free as soon as the tracker lets go of them: a pack that
    /// comes before they are answered meets the bound as it now is, not as they left it.
    #[test]
    fn room_of_packs_refused_with_the_connection_is_free_before_they_are_answered() {
        let mut t = Tracker::default();
        let mut out = Recorder::default();
        // maxPendingRecords 4: 16 KiB of messages; each pack holds 16,000 bytes.
        let submit = |t: &mut Tracker, out: &mut Recorder, p: &Arc<Pack>| {
            t.submit(out, p, Qos::AtLeastOnce.into(), sized(&[8000, 8000]), 4)
        };
        let (p, rx) = pack(2);
        submit(&mut t, &mut out, &p);
        let refused = t.on_refused();
        let (later, later_rx) = pack(2);
        submit(&mut t, &mut out, &later);
        assert!(outcomes(&later_rx).is_empty(), "taken, within the bound");
        refused.answer();
        assert_eq!(outcomes(&rx), vec![Outcome::RemoteError]);
        assert_eq!(t.outstanding(), 2, "the later pack waits");
    }

    /// A pack handed to the client and not written when the connection was lost waits for the
    /// next one; every broker refusing it, the pack is answered then, not at its deadline. Its
    /// messages, written if a broker takes the connection after all, keep later packs'
    /// packet ids in step.
    #[test]
    fn refused_connection_fails_packs_the_client_holds_unwritten() {
        let (mut t, mut out) = connected();
        let (p, rx) = pack(2);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(2), 100);
        t.on_connection_lost(0, &[]);
        assert!(outcomes(&rx).is_empty(), "kept for the next connection");
        t.on_refused().answer();
        assert_eq!(outcomes(&rx), vec![Outcome::RemoteError]);

        t.on_connected(&mut out, Window::default());
        let (later, later_rx) = pack(1);
        t.submit(&mut out, &later, Qos::AtLeastOnce.into(), payloads(1), 100);
        for pkid in 1..=3 {
            t.on_event(&mut out, &written(pkid));
        }
        t.on_event(&mut out, &puback(3));
        assert_eq!(outcomes(&later_rx), vec![Outcome::Delivered]);
        t.on_event(&mut out, &puback(1));
        t.on_event(&mut out, &puback(2));
        assert!(outcomes(&rx).is_empty(), "answered once");
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn bound_and_refusing_channel_fail_fast() {
        let (mut t, mut out) = connected();
        let (p, rx) = pack(3);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(3), 2);
        assert_eq!(outcomes(&rx), vec![Outcome::ConnectionError]);
        assert!(out.published.is_empty());
        out.refuse = true;
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(1), 2);
        assert_eq!(outcomes(&rx), vec![Outcome::ConnectionError]);
    }

    /// A broker acking out of order leaves an early packet id taken while the later ones come
    /// round again: the publish that would get it waits in the tracker until its ack, so
    /// rumqttc never holds one back (it lets a held QoS 2 publish go at PUBCOMP without
    /// keeping it, and the connection fails at its PUBREC).
    #[test]
    fn a_packet_id_still_taken_holds_the_next_publish_back_in_the_tracker() {
        for qos in [Qos::AtLeastOnce, Qos::ExactlyOnce] {
            let mut t = Tracker::default();
            let mut out = Recorder::default();
            t.on_connected(&mut out, Window::agreed(Some(2), None));
            let mut mqtt = Rumqttc::new(2);
            let (a, rx_a) = pack(1);
            let (b, rx_b) = pack(1);
            let (c, rx_c) = pack(1);
            for p in [&a, &b, &c] {
                t.submit(&mut out, p, qos.into(), payloads(1), 100);
            }
            // a = 1, b = 2; the broker completes 2 first, while 1, next in turn, is taken.
            mqtt.take_request(&mut out);
            mqtt.take_request(&mut out);
            mqtt.report(&mut t, &mut out);
            complete(&mut mqtt, &mut t, &mut out, qos, 2);
            assert_eq!(outcomes(&rx_b), vec![Outcome::Delivered], "{qos:?}");
            assert!(
                out.channel.is_empty(),
                "{qos:?}: c handed over on a taken id"
            );
            complete(&mut mqtt, &mut t, &mut out, qos, 1);
            assert_eq!(outcomes(&rx_a), vec![Outcome::Delivered], "{qos:?}");
            mqtt.take_request(&mut out);
            mqtt.report(&mut t, &mut out);
            assert!(mqtt.state.collision.is_none(), "{qos:?}");
            assert!(
                outcomes(&rx_c).is_empty(),
                "{qos:?}: c confirmed by a's ack"
            );
            complete(&mut mqtt, &mut t, &mut out, qos, 1);
            assert_eq!(outcomes(&rx_c), vec![Outcome::Delivered], "{qos:?}");
            assert_eq!(t.outstanding(), 0, "{qos:?}");
        }
    }

    /// Under MQTT 5 each ack lets one message go, through rumqttc's own state and numbering,
    /// also where the broker acknowledges pairs out of order (2, 1, 4, 3, ...): the message
    /// that would take an id still taken waits in the tracker until its ack, and then both go,
    /// so the window stays full but for one slot, and rumqttc holds nothing back itself.
    #[test]
    fn under_mqtt5_acks_out_of_order_refill_the_window_slot_by_slot() {
        let window = Window::agreed(None, Some(20));
        let (mut t, mut out) = mqtt5_connected(window);
        let mut mqtt = Rumqttc::new(window.packet_ids);
        let (p, rx) = pack(100);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(100), 1000);
        let mut in_flight = Vec::new();
        for ack in 0..100 {
            while !out.channel.is_empty() {
                mqtt.take_request(&mut out);
                let Some(rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) =
                    mqtt.state.events.back().cloned()
                else {
                    panic!("rumqttc held a publish back");
                };
                in_flight.push(pkid);
                mqtt.report(&mut t, &mut out);
            }
            if out.published.len() < 100 {
                assert!(
                    in_flight.len() >= 19,
                    "{} in flight at ack {ack}",
                    in_flight.len()
                );
            }
            let pkid = in_flight.remove(if ack % 2 == 0 { 1 } else { 0 });
            mqtt.read(vec![v5_puback(pkid, false)]);
            mqtt.report(&mut t, &mut out);
        }
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
        assert_eq!(t.outstanding(), 0);
    }

    /// The broker's ack (or PUBREC then PUBCOMP) for `pkid`, as rumqttc reports it.
    fn complete(mqtt: &mut Rumqttc, t: &mut Tracker, out: &mut Recorder, qos: Qos, pkid: u16) {
        if qos == Qos::AtLeastOnce {
            mqtt.read(vec![v5_puback(pkid, false)]);
        } else {
            mqtt.read(vec![v5_pubrec(pkid, false)]);
            mqtt.report(t, out);
            mqtt.read(vec![v5_pubcomp(pkid)]);
        }
        mqtt.report(t, out);
    }

    /// A connection of `ids` packet ids whose client writes each publish with the id given
    /// (MQTT 3.1.1's driver), `ids` in flight.
    fn taking_ids(ids: u16) -> (Tracker, Recorder, Rumqttc) {
        taking_ids_in(Window::agreed(Some(ids), None))
    }

    /// [`taking_ids`] with this window.
    fn taking_ids_in(window: Window) -> (Tracker, Recorder, Rumqttc) {
        let taking = Recorder {
            takes_packet_ids: true,
            ..Recorder::default()
        };
        let (t, out) = connected_through(taking, window);
        (t, out, Rumqttc::new(window.packet_ids))
    }

    /// Where the client writes the packet id given (MQTT 3.1.1), an id the broker never
    /// acknowledges (Moquette drops a publish its ACL denies, unacknowledged) is passed over
    /// when the ids come round to it: the connection loses that message's place in the window,
    /// not every message behind it until a new connection. The pack waits for its deadline.
    #[test]
    fn an_id_never_acknowledged_is_passed_over_where_the_client_takes_ids() {
        for qos in [Qos::AtLeastOnce, Qos::ExactlyOnce] {
            let (mut t, mut out, mut mqtt) = taking_ids(3);
            let (dropped, rx_dropped) = pack(1);
            t.submit(&mut out, &dropped, qos.into(), payloads(1), 100);
            mqtt.take_request(&mut out);
            mqtt.report(&mut t, &mut out);
            let mut ids = Vec::new();
            for round in 0..6 {
                let (p, rx) = pack(1);
                t.submit(&mut out, &p, qos.into(), payloads(1), 100);
                let Some(&(_, _, _, id)) = out.channel.front() else {
                    panic!("{qos:?}: held back at message {round} after the dropped one");
                };
                mqtt.take_request(&mut out);
                mqtt.report(&mut t, &mut out);
                complete(&mut mqtt, &mut t, &mut out, qos, id);
                assert_eq!(outcomes(&rx), vec![Outcome::Delivered], "{qos:?}");
                ids.push(id);
            }
            assert_eq!(ids, [2, 3, 2, 3, 2, 3], "{qos:?}");
            assert!(mqtt.state.collision.is_none(), "{qos:?}");
            assert!(outcomes(&rx_dropped).is_empty(), "{qos:?}");
            assert_eq!(t.outstanding(), 1, "{qos:?}");
        }
    }

    /// An appender's records' options at `qos` (the tests' default origin is the status
    /// message's).
    fn records_at(qos: Qos) -> PublishOptions {
        PublishOptions {
            origin: Origin {
                appender: 1,
                endpoint: 1,
            },
            ..qos.into()
        }
    }

    /// Writes one message of its own pack for each of `hows`, in order.
    fn write_each(
        t: &mut Tracker,
        out: &mut Recorder,
        mqtt: &mut Rumqttc,
        hows: &[PublishOptions],
    ) {
        for how in hows {
            let (p, _) = pack(1);
            t.submit(out, &p, *how, payloads(1), 100);
            mqtt.take_request(out);
            mqtt.report(t, out);
        }
    }

    /// Messages the broker passed over (unacknowledged while it acknowledged later ones: it
    /// dropped them) hold their places in the window for good, while the acks of the others
    /// keep the connection from looking stalled: once they hold half of the window the
    /// connection is made anew, not before. The status message, one a connection, is left
    /// out.
    #[test]
    fn messages_passed_over_holding_half_the_window_stall_the_connection() {
        let qos = Qos::AtLeastOnce;
        let (mut t, mut out, mut mqtt) = taking_ids(4);
        let record = records_at(qos);
        write_each(
            &mut t,
            &mut out,
            &mut mqtt,
            &[qos.into(), record, record, record],
        );
        // Past the messages' patience (1 s) since they were written, the broker having
        // acknowledged something all along.
        let later = Instant::now() + Duration::from_secs(2);
        complete(&mut mqtt, &mut t, &mut out, qos, 3);
        t.acked = Some(later);
        assert_eq!(
            t.take_stall(later),
            None,
            "the status message and 2 passed over: one record, a quarter of the window"
        );
        // One more, under the id 3 freed, acknowledged: 2 and 4 passed over.
        write_each(&mut t, &mut out, &mut mqtt, &[record]);
        complete(&mut mqtt, &mut t, &mut out, qos, 3);
        t.acked = Some(later);
        let stall = t.take_stall(later);
        assert_eq!(
            stall.map(|s| s.waited),
            Some(Waited::Passed),
            "records 2 and 4 passed over"
        );
        assert_eq!(stall.map(|s| s.patience), Some(Duration::from_secs(1)));
    }

    /// QoS 2 has a window of its own, smaller than the one it shares with QoS 1: messages
    /// passed over holding half of it stall the connection too.
    #[test]
    fn qos2_messages_passed_over_holding_half_its_window_stall_the_connection() {
        let qos = Qos::ExactlyOnce;
        let (mut t, mut out, mut mqtt) = taking_ids_in(Window {
            acked: 8,
            exactly_once: 4,
            packet_ids: 8,
        });
        write_each(&mut t, &mut out, &mut mqtt, &[records_at(qos); 4]);
        let later = Instant::now() + Duration::from_secs(2);
        complete(&mut mqtt, &mut t, &mut out, qos, 3);
        complete(&mut mqtt, &mut t, &mut out, qos, 4);
        t.acked = Some(later);
        let stall = t.take_stall(later).map(|s| s.waited);
        assert_eq!(stall, Some(Waited::Passed), "2 of QoS 2's 4 passed over");
    }

    /// Passing over taken ids never reaches an id given to a message not written yet, which
    /// no ack shows as taken: here 1, given while 2 was taken, then 3, with 2 freed since.
    #[test]
    fn an_id_given_to_a_message_not_written_yet_is_not_given_again() {
        let qos = Qos::AtLeastOnce;
        let (mut t, mut out, mut mqtt) = taking_ids(3);
        let send = |t: &mut Tracker, out: &mut Recorder| {
            let (p, _) = pack(1);
            t.submit(out, &p, qos.into(), payloads(1), 100);
        };
        for _ in 0..3 {
            send(&mut t, &mut out);
            mqtt.take_request(&mut out);
            mqtt.report(&mut t, &mut out);
        }
        complete(&mut mqtt, &mut t, &mut out, qos, 1);
        complete(&mut mqtt, &mut t, &mut out, qos, 3);
        // 2 still taken: the next two go out as 1 and 3, and stay unwritten.
        send(&mut t, &mut out);
        send(&mut t, &mut out);
        send(&mut t, &mut out);
        let given = |out: &Recorder| out.channel.iter().map(|m| m.3).collect::<Vec<_>>();
        assert_eq!(given(&out), [1, 3], "the third held by the window");
        complete(&mut mqtt, &mut t, &mut out, qos, 2);
        assert_eq!(given(&out), [1, 3], "1 is the unwritten message's");
        assert!(
            t.holder_of(Some(qos)) == Holder::Writes,
            "what frees an id for the third is the unwritten messages' write"
        );
        mqtt.take_request(&mut out);
        mqtt.take_request(&mut out);
        mqtt.report(&mut t, &mut out);
        assert_eq!(given(&out), [2]);
        assert!(mqtt.state.collision.is_none());
    }

    /// An MQTT 5 PUBCOMP with a reason code of 0x80 or more (0x92: the broker does not know
    /// the packet id, so it may not have the message) refuses the record, as a refused PUBREC
    /// does: the pack is answered onRemoteError, and the driver counts the in-flight slot
    /// rumqttc keeps for it. (Before: it was taken for a confirmation, onSuccess.)
    #[test]
    fn a_pubcomp_with_an_error_reason_refuses_its_record() {
        use rumqttc::v5::mqttbytes::v5::{Packet, PubComp, PubCompReason};
        let (mut t, mut out) = connected();
        let mut mqtt = Rumqttc::new(10);
        let (p, rx) = pack(2);
        t.submit(&mut out, &p, Qos::ExactlyOnce.into(), payloads(2), 100);
        mqtt.take_request(&mut out);
        mqtt.take_request(&mut out);
        mqtt.report(&mut t, &mut out);
        mqtt.read(vec![v5_pubrec(1, false), v5_pubrec(2, false)]);
        mqtt.report(&mut t, &mut out);
        let mut comp = PubComp::new(1, None);
        comp.reason = PubCompReason::PacketIdentifierNotFound;
        let refusal = Packet::PubComp(comp);
        let observed = crate::protocol::observe_v5(&rumqttc::v5::Event::Incoming(refusal.clone()));
        mqtt.read(vec![refusal, v5_pubcomp(2)]);
        mqtt.report(&mut t, &mut out);
        assert_eq!(outcomes(&rx), vec![Outcome::RemoteError]);
        assert_eq!(t.outstanding(), 0);
        assert!(
            observed.is_refusal(),
            "a refusal, whose slot the driver counts: {observed:?}"
        );
    }

    /// Mosquitto refuses a publish its ACL denies (MQTT 5 reason 135) and may close the
    /// connection in the same read: rumqttc queues the refusal's event and returns the
    /// error first. The pack was refused, not lost.
    #[test]
    fn refusal_read_with_the_loss_is_a_remote_error() {
        for qos in [Qos::AtLeastOnce, Qos::ExactlyOnce] {
            let (mut t, mut out) = connected();
            let mut mqtt = Rumqttc::new(10);
            let (p, rx) = pack(2);
            t.submit(&mut out, &p, qos.into(), payloads(2), 100);
            mqtt.take_request(&mut out);
            mqtt.take_request(&mut out);
            mqtt.report(&mut t, &mut out);
            let refusal = match qos {
                Qos::ExactlyOnce => v5_pubrec(1, true),
                _ => v5_puback(1, true),
            };
            mqtt.read(vec![refusal]);
            mqtt.lose(&mut t, &mut out);
            assert_eq!(outcomes(&rx), vec![Outcome::RemoteError], "{qos:?}");
            assert_eq!(t.outstanding(), 0);
        }
    }

    /// Acks that arrive with the close confirm their records: failing the pack would make
    /// Kaa send records again that the broker already has.
    #[test]
    fn acks_read_with_the_loss_still_confirm() {
        let (mut t, mut out) = connected();
        let mut mqtt = Rumqttc::new(10);
        let (q1, rx1) = pack(2);
        let (q2, rx2) = pack(1);
        t.submit(&mut out, &q1, Qos::AtLeastOnce.into(), payloads(2), 100);
        t.submit(&mut out, &q2, Qos::ExactlyOnce.into(), payloads(1), 100);
        for _ in 0..3 {
            mqtt.take_request(&mut out);
        }
        mqtt.report(&mut t, &mut out);
        mqtt.read(vec![v5_pubrec(3, false)]);
        mqtt.report(&mut t, &mut out);
        mqtt.read(vec![
            v5_puback(1, false),
            v5_puback(2, false),
            v5_pubcomp(3),
        ]);
        mqtt.lose(&mut t, &mut out);
        assert_eq!(outcomes(&rx1), vec![Outcome::Delivered]);
        assert_eq!(outcomes(&rx2), vec![Outcome::Delivered]);
        assert_eq!(t.outstanding(), 0);
    }

    /// A publish held back (its pkid still taken) when the connection fails: the tracker's
    /// queue must stay in step with rumqttc's, or the next connection's acks confirm the
    /// wrong packs.
    #[test]
    fn held_back_publish_at_the_loss_keeps_the_queue_in_step() {
        let (mut t, mut out) = connected();
        let mut mqtt = Rumqttc::new(2);
        let packs: Vec<_> = (0..4).map(|_| pack(1)).collect();
        for (p, _) in &packs {
            t.submit(&mut out, p, Qos::AtLeastOnce.into(), payloads(1), 100);
        }
        // 0=1, 1=2 written; the broker acks 2; 2 is taken and held back (pkid 1 taken) and
        // the write of that round fails; 3 is still in the channel.
        mqtt.take_request(&mut out);
        mqtt.take_request(&mut out);
        mqtt.report(&mut t, &mut out);
        mqtt.read(vec![v5_puback(2, false)]);
        mqtt.report(&mut t, &mut out);
        mqtt.take_request(&mut out);
        mqtt.lose(&mut t, &mut out);
        let answers: Vec<_> = packs.iter().map(|(_, rx)| outcomes(rx)).collect();
        assert_eq!(
            answers,
            vec![
                vec![Outcome::ConnectionError],
                vec![Outcome::Delivered],
                vec![Outcome::ConnectionError],
                vec![Outcome::ConnectionError],
            ]
        );
        // The next connection: a new pack's ack confirms that pack and nothing else.
        let (e, rx_e) = pack(1);
        t.on_connected(&mut out, Window::default());
        t.submit(&mut out, &e, Qos::AtLeastOnce.into(), payloads(1), 100);
        let mut mqtt = Rumqttc::new(2);
        mqtt.take_request(&mut out);
        mqtt.report(&mut t, &mut out);
        mqtt.read(vec![v5_puback(1, false)]);
        mqtt.report(&mut t, &mut out);
        assert_eq!(outcomes(&rx_e), vec![Outcome::Delivered]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn refused_messages_fail_their_packs_as_remote_errors() {
        crate::test_log::capture();
        let (mut t, mut out) = connected();
        let (q1, rx1) = pack(2);
        let (q2, rx2) = pack(1);
        let denied = || to_topic("not-authorised/x", 2);
        t.submit(&mut out, &q1, from_source(9), denied(), 100);
        let quota = to_topic("refused-for-quota/x", 1);
        t.submit(&mut out, &q2, records_at(Qos::ExactlyOnce), quota, 100);
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &written(2));
        t.on_event(&mut out, &written(3));
        t.on_event(&mut out, &puback(1));
        t.on_event(
            &mut out,
            &Observed::Acked {
                pkid: 2,
                refused: Some(Reason::NOT_AUTHORIZED),
            },
        );
        t.on_event(
            &mut out,
            &Observed::Received {
                pkid: 3,
                refused: Some(Reason::QUOTA_EXCEEDED),
            },
        );
        assert_eq!(outcomes(&rx1), vec![Outcome::RemoteError]);
        assert_eq!(outcomes(&rx2), vec![Outcome::RemoteError]);
        assert_eq!(
            t.outstanding(),
            0,
            "a refused QoS 2 message awaits no PUBCOMP"
        );
        // The operator reads why PacksFailedRemote rose, also where the topic is not refused.
        let said = crate::test_log::lines_with(
            "refused a message to topic 'refused-for-quota/x' (reason 0x97, quota exceeded): its pack fails",
        );
        assert!(said.iter().any(|l| l.starts_with("WARN")), "{said:?}");

        // "Not authorised" refuses the topic: the next pack to it fails unpublished, and the
        // line says why.
        let published = out.published.len();
        let (q3, rx3) = pack(1);
        t.submit(&mut out, &q3, from_source(9), denied(), 100);
        assert_eq!(outcomes(&rx3), vec![Outcome::RemoteError]);
        assert_eq!(out.published.len(), published, "not published");
        let said = crate::test_log::lines_with(
            "a pack to topic 'not-authorised/x' fails unpublished (onRemoteError): the broker refused a message \
             to it (reason 0x87, not authorized) within the last",
        );
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("WARN"), "{said:?}");
    }

    fn to_topic(topic: &str, n: usize) -> Vec<Message> {
        let topic: Arc<str> = Arc::from(topic);
        (0..n)
            .map(|i| Message {
                topic: Arc::clone(&topic),
                payload: vec![i as u8],
                labels: Vec::new(),
            })
            .collect()
    }

    /// What the broker the connection goes back to refused holds for packs that waited while
    /// another was tried: one parked is refused unpublished, one ready in the client (MQTT
    /// 3.1.1, unwritten at the loss) is answered as lost, its message not written; a pack to
    /// another topic waits on. (Before: both went out to that broker, which closed the
    /// connection at them as it had before.)
    #[test]
    fn packs_waiting_at_a_broker_change_are_judged_by_the_broker_gone_to() {
        let (mut t, mut out) = connected();
        let (first, rx) = pack(1);
        t.submit(
            &mut out,
            &first,
            Qos::AtLeastOnce.into(),
            to_topic("denied/x", 1),
            100,
        );
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &not_authorized(1));
        assert_eq!(outcomes(&rx), vec![Outcome::RemoteError]);

        // To another broker, which refuses nothing: a pack to the topic is handed to the
        // client, and the connection is lost before it is written.
        let taught = t.change_broker(Learned::default());
        t.on_connected(&mut out, Window::default());
        let (ready, rx_ready) = pack(1);
        t.submit(
            &mut out,
            &ready,
            Qos::AtLeastOnce.into(),
            to_topic("denied/x", 1),
            100,
        );
        t.on_connection_lost(0, &[]);
        let (parked, rx_parked) = pack(1);
        t.submit(
            &mut out,
            &parked,
            Qos::AtLeastOnce.into(),
            to_topic("denied/x", 1),
            100,
        );
        let (other, rx_other) = pack(1);
        t.submit(
            &mut out,
            &other,
            Qos::AtLeastOnce.into(),
            to_topic("allowed/x", 1),
            100,
        );
        assert!(outcomes(&rx_ready).is_empty() && outcomes(&rx_parked).is_empty());

        // Back to the first.
        let _ = t.change_broker(taught);
        t.judge_waiting_anew();
        assert_eq!(outcomes(&rx_ready), vec![Outcome::ConnectionError]);
        assert_eq!(outcomes(&rx_parked), vec![Outcome::RemoteError]);
        assert!(outcomes(&rx_other).is_empty(), "another topic waits on");
    }

    /// A broker that refused a message for its topic refuses the next one there too, and may
    /// close the connection each time (HiveMQ): a pack to it fails before any of it goes out,
    /// for a while. A refusal of the message itself (quota) teaches nothing of its topic.
    #[test]
    fn a_topic_the_broker_refused_fails_later_packs_unpublished() {
        let (mut t, mut out) = connected();
        let (first, rx_first) = pack(1);
        t.submit(
            &mut out,
            &first,
            Qos::AtLeastOnce.into(),
            to_topic("denied/x", 1),
            100,
        );
        let (quota, rx_quota) = pack(1);
        t.submit(
            &mut out,
            &quota,
            Qos::AtLeastOnce.into(),
            to_topic("busy/x", 1),
            100,
        );
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &written(2));
        for (pkid, reason) in [(1, Reason::NOT_AUTHORIZED), (2, Reason::QUOTA_EXCEEDED)] {
            t.on_event(
                &mut out,
                &Observed::Acked {
                    pkid,
                    refused: Some(reason),
                },
            );
        }
        assert_eq!(outcomes(&rx_first), vec![Outcome::RemoteError]);
        assert_eq!(outcomes(&rx_quota), vec![Outcome::RemoteError]);
        let published = out.published.len();

        let (again, rx_again) = pack(3);
        let mut messages = to_topic("allowed/x", 2);
        messages.extend(to_topic("denied/x", 1));
        t.submit(&mut out, &again, Qos::AtLeastOnce.into(), messages, 100);
        assert_eq!(outcomes(&rx_again), vec![Outcome::RemoteError]);
        assert_eq!(out.published.len(), published, "none of it went out");

        let (busy, rx_busy) = pack(1);
        t.submit(
            &mut out,
            &busy,
            Qos::AtLeastOnce.into(),
            to_topic("busy/x", 1),
            100,
        );
        let (allowed, rx_allowed) = pack(1);
        t.submit(
            &mut out,
            &allowed,
            Qos::AtLeastOnce.into(),
            to_topic("allowed/x", 1),
            100,
        );
        assert_eq!(out.published.len(), published + 2);
        t.on_event(&mut out, &written(3));
        t.on_event(&mut out, &written(4));
        t.on_event(&mut out, &puback(3));
        t.on_event(&mut out, &puback(4));
        assert_eq!(outcomes(&rx_busy), vec![Outcome::Delivered]);
        assert_eq!(outcomes(&rx_allowed), vec![Outcome::Delivered]);
    }

    /// MQTT 5: rumqttc takes no QoS 0 message either while QoS 1 and 2 fill its window. A
    /// QoS 0 message then waits parked, held by that window, and goes first once an ack frees
    /// room, before QoS 1 messages whose turn came earlier; a stall it waits past is the
    /// window's, not a broker that stopped reading (before, it went to the client's channel
    /// and was judged by the writes: "stopped reading"). Under MQTT 3.1.1, whose writes are
    /// the driver's, it goes past the full window.
    #[test]
    fn under_mqtt5_qos0_waits_for_a_full_window_in_the_tracker() {
        for mqtt5 in [true, false] {
            let mut t = Tracker::default();
            let mut out = Recorder {
                stops_at_full_window: mqtt5,
                ..Recorder::default()
            };
            t.on_connected(&mut out, Window::agreed(Some(1), None));
            let (acked, rx_acked) = pack(2);
            t.submit(&mut out, &acked, Qos::AtLeastOnce.into(), payloads(2), 100);
            let (quick, rx_quick) = pack(1);
            t.submit(&mut out, &quick, Qos::AtMostOnce.into(), payloads(1), 100);
            let later = Instant::now() + Duration::from_secs(2);
            if !mqtt5 {
                assert_eq!(out.published.len(), 2, "MQTT 3.1.1: past the window");
                continue;
            }
            assert_eq!(out.published.len(), 1, "waits for the window");
            t.on_event(&mut out, &written(1));
            let stall = t.find_stall(later).map(|s| s.stall.waited);
            assert_eq!(stall, Some(Waited::Window), "held by the window");
            t.on_event(&mut out, &puback(1));
            let qos: Vec<Qos> = out.published.iter().map(|(_, how, _)| how.qos).collect();
            assert_eq!(
                qos,
                [Qos::AtLeastOnce, Qos::AtMostOnce, Qos::AtLeastOnce],
                "goes first once the ack frees the window"
            );
            t.on_event(&mut out, &Observed::Written(0));
            assert_eq!(outcomes(&rx_quick), vec![Outcome::Delivered]);
            t.on_event(&mut out, &written(1));
            t.on_event(&mut out, &puback(1));
            assert_eq!(outcomes(&rx_acked), vec![Outcome::Delivered]);
        }
    }

    /// A pack that waited behind the window while the broker refused its topic (at PUBREC,
    /// QoS 2) is failed, not published, when the window opens.
    #[test]
    fn a_pack_waiting_when_its_topic_is_refused_fails_unpublished() {
        let mut t = Tracker::default();
        let mut out = Recorder::default();
        t.on_connected(&mut out, Window::agreed(None, Some(1)));
        let (first, rx_first) = pack(1);
        t.submit(
            &mut out,
            &first,
            Qos::ExactlyOnce.into(),
            to_topic("denied/x", 1),
            100,
        );
        let (waiting, rx_waiting) = pack(1);
        t.submit(
            &mut out,
            &waiting,
            Qos::ExactlyOnce.into(),
            to_topic("denied/x", 1),
            100,
        );
        assert_eq!(out.published.len(), 1, "the window holds one");
        t.on_event(&mut out, &written(1));
        t.on_event(
            &mut out,
            &Observed::Received {
                pkid: 1,
                refused: Some(Reason::NOT_AUTHORIZED),
            },
        );
        assert_eq!(outcomes(&rx_first), vec![Outcome::RemoteError]);
        assert_eq!(outcomes(&rx_waiting), vec![Outcome::RemoteError]);
        assert_eq!(out.published.len(), 1, "the waiting pack never went out");
        assert_eq!(t.outstanding(), 0);
        // The same topic at another QoS is another question for the broker.
        let (qos1, rx_qos1) = pack(1);
        t.submit(
            &mut out,
            &qos1,
            Qos::AtLeastOnce.into(),
            to_topic("denied/x", 1),
            100,
        );
        assert_eq!(out.published.len(), 2);
        assert!(outcomes(&rx_qos1).is_empty());
    }

    /// A pack waiting for the window whose topics are mixed fails whole when one of them is
    /// refused: none of its messages goes out (they did, up to the refused one, when the
    /// check came only as each went out). With its first message already handed out (a window
    /// of two), it is answered as lost, not as refused unpublished, and what waits of it is not
    /// published.
    #[test]
    fn a_waiting_pack_of_several_topics_fails_whole_when_one_is_refused() {
        for (window, answer) in [(1, Outcome::RemoteError), (2, Outcome::ConnectionError)] {
            let mut t = Tracker::default();
            let mut out = Recorder::default();
            t.on_connected(&mut out, Window::agreed(None, Some(window)));
            t.submit(
                &mut out,
                &pack(1).0,
                Qos::ExactlyOnce.into(),
                to_topic("denied/x", 1),
                100,
            );
            let (mixed, rx_mixed) = pack(3);
            let mut messages = to_topic("allowed/x", 2);
            messages.extend(to_topic("denied/x", 1));
            t.submit(&mut out, &mixed, Qos::ExactlyOnce.into(), messages, 100);
            t.on_event(&mut out, &written(1));
            t.on_event(
                &mut out,
                &Observed::Received {
                    pkid: 1,
                    refused: Some(Reason::NOT_AUTHORIZED),
                },
            );
            assert_eq!(outcomes(&rx_mixed), vec![answer], "window {window}");
            assert_eq!(
                out.published.len(),
                usize::from(window),
                "nothing of it went out beyond the window"
            );
        }
    }

    /// A refusal read together with the close (HiveMQ's PUBACK 0x87 and its DISCONNECT in
    /// one read) is remembered as one read before it.
    #[test]
    fn a_refusal_read_with_the_close_is_remembered() {
        let (mut t, mut out) = connected();
        let (first, rx_first) = pack(1);
        t.submit(
            &mut out,
            &first,
            Qos::AtLeastOnce.into(),
            to_topic("denied/x", 1),
            100,
        );
        t.on_event(&mut out, &written(1));
        let refusal = Observed::Acked {
            pkid: 1,
            refused: Some(Reason::NOT_AUTHORIZED),
        };
        t.on_connection_lost(0, &[refusal]);
        assert_eq!(outcomes(&rx_first), vec![Outcome::RemoteError]);
        t.on_connected(&mut out, Window::default());
        let published = out.published.len();
        let (again, rx_again) = pack(1);
        t.submit(
            &mut out,
            &again,
            Qos::AtLeastOnce.into(),
            to_topic("denied/x", 1),
            100,
        );
        assert_eq!(outcomes(&rx_again), vec![Outcome::RemoteError]);
        assert_eq!(out.published.len(), published);
    }

    /// A one-message pack from `source` to `topic` at QoS 1, written as packet 1 and
    /// acknowledged.
    fn delivered_from(t: &mut Tracker, out: &mut Recorder, source: u64, topic: &str) {
        let (p, rx) = pack(1);
        t.submit(out, &p, from_source(source), to_topic(topic, 1), 100);
        t.on_event(out, &written(1));
        t.on_event(out, &puback(1));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
    }

    /// A tracker on a connection of a window of one message, whose broker took a pack from
    /// `source` to `topic`.
    fn one_at_a_time(source: u64, topic: &str) -> (Tracker, Recorder) {
        let (t, out, _) = took_one(1, source, topic);
        (t, out)
    }

    /// A tracker on a connection of a window of `n` messages, whose broker took a pack from
    /// `source` to `topic`, and that window for the next connections.
    fn took_one(n: u16, source: u64, topic: &str) -> (Tracker, Recorder, Window) {
        let window = Window {
            acked: usize::from(n),
            exactly_once: usize::from(n),
            packet_ids: n,
        };
        let mut t = Tracker::default();
        let mut out = Recorder::default();
        t.on_connected(&mut out, window);
        delivered_from(&mut t, &mut out, source, topic);
        (t, out, window)
    }

    /// A PUBACK refusing packet `pkid` as not authorised (MQTT 5).
    fn not_authorized(pkid: u16) -> Observed {
        Observed::Acked {
            pkid,
            refused: Some(Reason::NOT_AUTHORIZED),
        }
    }

    /// At QoS 1, from the endpoint `source` stands for, through one appender.
    fn from_source(source: u64) -> PublishOptions {
        PublishOptions {
            origin: Origin {
                appender: 1,
                endpoint: source,
            },
            ..Qos::AtLeastOnce.into()
        }
    }

    /// An endpoint whose records make a new topic at every pack (`{event.…}`) could have each
    /// refused, every refusal a close at brokers such as HiveMQ: after three, its packs to
    /// topics the broker never took fail unpublished, while its packs to topics the broker
    /// took, and other endpoints' packs, are published.
    #[test]
    fn an_endpoint_with_three_topics_refused_fails_its_packs_to_new_topics_unpublished() {
        let (mut t, mut out) = connected();
        delivered_from(&mut t, &mut out, 7, "ok/7");
        for i in 0..3u16 {
            let (p, rx) = pack(1);
            t.submit(
                &mut out,
                &p,
                from_source(7),
                to_topic(&format!("d/{i}"), 1),
                100,
            );
            t.on_event(&mut out, &written(2 + i));
            t.on_event(&mut out, &not_authorized(2 + i));
            assert_eq!(outcomes(&rx), vec![Outcome::RemoteError]);
        }
        let published = out.published.len();
        let (new, rx_new) = pack(1);
        t.submit(&mut out, &new, from_source(7), to_topic("d/3", 1), 100);
        assert_eq!(outcomes(&rx_new), vec![Outcome::RemoteError]);
        assert_eq!(out.published.len(), published, "not published");
        let (known, _) = pack(1);
        t.submit(&mut out, &known, from_source(7), to_topic("ok/7", 1), 100);
        let (other, _) = pack(1);
        t.submit(&mut out, &other, from_source(8), to_topic("d/4", 1), 100);
        assert_eq!(out.published.len(), published + 2);
    }

    /// Packs of the endpoint waiting behind the window when it is refused fail then, unpublished,
    /// where they go to topics the broker never took; its pack to a topic the broker took goes
    /// out, and another endpoint's in its turn meanwhile.
    #[test]
    fn an_endpoints_waiting_packs_to_new_topics_fail_when_it_is_refused() {
        let (mut t, mut out) = one_at_a_time(7, "ok/7");
        let mut refused = Vec::new();
        for i in 0..3 {
            let (p, rx) = pack(1);
            t.submit(
                &mut out,
                &p,
                from_source(7),
                to_topic(&format!("d/{i}"), 1),
                100,
            );
            refused.push(rx);
        }
        let (waiting, rx_waiting) = pack(1);
        t.submit(&mut out, &waiting, from_source(7), to_topic("d/3", 1), 100);
        let (known, rx_known) = pack(1);
        t.submit(&mut out, &known, from_source(7), to_topic("ok/7", 1), 100);
        let (other, rx_other) = pack(1);
        t.submit(&mut out, &other, from_source(8), to_topic("d/9", 1), 100);
        let mut answer = |ack: Observed, rx: &mpsc::Receiver<Outcome>, outcome| {
            t.on_event(&mut out, &written(1));
            t.on_event(&mut out, &ack);
            assert_eq!(outcomes(rx), vec![outcome]);
        };
        answer(not_authorized(1), &refused[0], Outcome::RemoteError);
        answer(not_authorized(1), &refused[1], Outcome::RemoteError);
        answer(puback(1), &rx_other, Outcome::Delivered);
        answer(not_authorized(1), &refused[2], Outcome::RemoteError);
        assert_eq!(outcomes(&rx_waiting), vec![Outcome::RemoteError]);
        answer(puback(1), &rx_known, Outcome::Delivered);
        let topics: Vec<&str> = out.published.iter().map(|(t, _, _)| t.as_str()).collect();
        assert_eq!(topics, ["ok/7", "d/0", "d/1", "d/9", "d/2", "ok/7"]);
    }

    /// A pack failed so while it waits behind a pack the window holds back is let go at once:
    /// it counts against no bound, nor against its endpoint's share of one.
    #[test]
    fn a_waiting_pack_failed_for_its_endpoint_is_let_go_at_once() {
        let (mut t, mut out) = one_at_a_time(7, "ok/7");
        let mut refused = Vec::new();
        for i in 0..3 {
            let (p, rx) = pack(1);
            let topic = format!("d/{i}");
            t.submit(&mut out, &p, from_source(7), to_topic(&topic, 1), 100);
            refused.push(rx);
        }
        // Two, so that the second holds it behind the window.
        for _ in 0..2 {
            let (known, _) = pack(1);
            t.submit(&mut out, &known, from_source(7), to_topic("ok/7", 1), 100);
        }
        let (waiting, rx_waiting) = pack(1);
        t.submit(&mut out, &waiting, from_source(7), to_topic("d/3", 1), 100);
        for rx in &refused {
            t.on_event(&mut out, &written(1));
            t.on_event(&mut out, &not_authorized(1));
            assert_eq!(outcomes(rx), vec![Outcome::RemoteError]);
        }
        assert_eq!(outcomes(&rx_waiting), vec![Outcome::RemoteError]);
        assert_eq!(t.outstanding(), 2, "the packs to a topic taken");
    }

    /// With an ACL that denies most topics a template makes, each endpoint's first pack would
    /// cost a close: after eight new topics of one appender refused in a row (each its own
    /// endpoint's), its packs to new topics fail unpublished, those waiting included, but one
    /// now and then, whose ack lets them go again. Packs to topics the broker took, and another
    /// appender's, go out all along.
    #[test]
    fn new_topics_refused_in_a_row_hold_packs_to_new_topics_but_a_probe() {
        let (mut t, mut out) = one_at_a_time(1, "ok");
        let untaken = crate::refused_topics::UNTAKEN;
        for i in 0..untaken {
            let (p, _) = pack(1);
            let topic = format!("d/{i}");
            t.submit(
                &mut out,
                &p,
                from_source(10 + i as u64),
                to_topic(&topic, 1),
                100,
            );
        }
        let (waiting, rx_waiting) = pack(1);
        t.submit(
            &mut out,
            &waiting,
            from_source(50),
            to_topic("d/50", 1),
            100,
        );
        let (known, rx_known) = pack(1);
        t.submit(&mut out, &known, from_source(51), to_topic("ok", 1), 100);
        let other_appender = PublishOptions {
            origin: Origin {
                appender: 2,
                endpoint: 52,
            },
            ..Qos::AtLeastOnce.into()
        };
        let (other, rx_other) = pack(1);
        t.submit(&mut out, &other, other_appender, to_topic("e/52", 1), 100);
        for _ in 0..untaken {
            t.on_event(&mut out, &written(1));
            t.on_event(&mut out, &not_authorized(1));
        }
        assert_eq!(outcomes(&rx_waiting), vec![Outcome::RemoteError]);
        assert!(
            outcomes(&rx_other).is_empty(),
            "another appender's waits on"
        );
        for rx in [&rx_known, &rx_other] {
            t.on_event(&mut out, &written(1));
            t.on_event(&mut out, &puback(1));
            assert_eq!(outcomes(rx), vec![Outcome::Delivered]);
        }

        let (probe, rx_probe) = pack(1);
        t.submit(&mut out, &probe, from_source(60), to_topic("d/60", 1), 100);
        let (held, rx_held) = pack(1);
        t.submit(&mut out, &held, from_source(61), to_topic("d/61", 1), 100);
        assert_eq!(outcomes(&rx_held), vec![Outcome::RemoteError]);
        let (beside, rx_beside) = pack(1);
        t.submit(&mut out, &beside, other_appender, to_topic("e/61", 1), 100);
        assert!(outcomes(&rx_beside).is_empty(), "another appender's: waits");
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &puback(1));
        assert_eq!(outcomes(&rx_probe), vec![Outcome::Delivered], "the probe");
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &puback(1));
        assert_eq!(outcomes(&rx_beside), vec![Outcome::Delivered]);
        let (after, rx_after) = pack(1);
        t.submit(&mut out, &after, from_source(62), to_topic("d/62", 1), 100);
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &puback(1));
        assert_eq!(outcomes(&rx_after), vec![Outcome::Delivered]);
        let topics: Vec<&str> = out.published.iter().map(|(t, _, _)| t.as_str()).collect();
        assert!(
            !topics.contains(&"d/50") && !topics.contains(&"d/61") && topics.contains(&"e/61"),
            "{topics:?}"
        );
    }

    /// Under MQTT 3.1.1 its topics are only ever suspects, each new one blamed once: three
    /// closes blamed on its records' topics count the same.
    #[test]
    fn an_endpoint_blamed_at_three_silent_closes_fails_its_packs_to_new_topics_unpublished() {
        let (mut t, mut out) = connected();
        for i in 0..3 {
            let rx = write_to(&mut t, &mut out, "ok", 1);
            t.on_event(&mut out, &puback(1));
            assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
            let (p, _) = pack(1);
            t.submit(
                &mut out,
                &p,
                from_source(7),
                to_topic(&format!("d/{i}"), 1),
                100,
            );
            t.on_event(&mut out, &written(2));
            assert!(matches!(
                lose(&mut t, TopicClose::Silent),
                Some(Blame::Topic {
                    blame: TopicBlame::Suspect,
                    ..
                })
            ));
            t.on_connected(&mut out, Window::default());
        }
        let published = out.published.len();
        let (new, rx_new) = pack(1);
        t.submit(&mut out, &new, from_source(7), to_topic("d/3", 1), 100);
        assert_eq!(outcomes(&rx_new), vec![Outcome::RemoteError]);
        assert_eq!(out.published.len(), published, "not published");
    }

    /// Submits a one-message pack to `topic` at QoS 1 and writes it as `pkid`.
    fn write_to(
        t: &mut Tracker,
        out: &mut Recorder,
        topic: &str,
        pkid: u16,
    ) -> mpsc::Receiver<Outcome> {
        let (p, rx) = pack(1);
        t.submit(out, &p, Qos::AtLeastOnce.into(), to_topic(topic, 1), 100);
        t.on_event(out, &written(pkid));
        rx
    }

    /// An MQTT 3.1.1 broker that closes the connection at a publish its ACL denies (HiveMQ,
    /// AWS IoT) says nothing: a close just after the first message to a topic it never
    /// acknowledged, on a connection it acknowledged a message on, makes the topic a suspect,
    /// a second one refuses it, and packs to it then fail before any of them goes out, while
    /// other topics are published. A close before any ack on its connection (a broker
    /// flapping) blames nothing.
    #[test]
    fn a_topic_the_broker_closed_at_twice_without_a_reason_fails_later_packs_unpublished() {
        let (mut t, mut out) = connected();
        for (acked_first, expected) in [
            (true, Some(TopicBlame::Suspect)),
            (false, None),
            (true, Some(TopicBlame::Refused)),
        ] {
            // rumqttc numbers each connection afresh.
            let mut pkid = 1;
            if acked_first {
                let allowed = write_to(&mut t, &mut out, "allowed/x", pkid);
                t.on_event(&mut out, &puback(pkid));
                assert_eq!(outcomes(&allowed), vec![Outcome::Delivered]);
                pkid += 1;
            }
            let denied = write_to(&mut t, &mut out, "denied/x", pkid);
            assert_eq!(
                lose(&mut t, TopicClose::Silent),
                expected.map(|blame| Blame::Topic {
                    topic: Arc::from("denied/x"),
                    blame
                }),
                "acked first: {acked_first}"
            );
            assert_eq!(outcomes(&denied), vec![Outcome::ConnectionError]);
            t.on_connected(&mut out, Window::default());
        }
        let published = out.published.len();
        let (again, rx_again) = pack(2);
        let mut messages = to_topic("allowed/x", 1);
        messages.extend(to_topic("denied/x", 1));
        t.submit(&mut out, &again, Qos::AtLeastOnce.into(), messages, 100);
        assert_eq!(outcomes(&rx_again), vec![Outcome::RemoteError]);
        assert_eq!(out.published.len(), published, "none of it went out");
        acknowledged(&mut t, &mut out);
    }

    /// Two closes blamed on one endpoint's records to a topic refuse it to that endpoint's
    /// packs only: what its records hold may be what the broker refuses (one larger than its
    /// packet size). Two closes blamed on another endpoint's messages to it then refuse it to
    /// every endpoint. (Before: one endpoint's oversized record twice had a topic others used
    /// refused to all of them.)
    #[test]
    fn a_topic_blamed_on_one_endpoint_alone_is_refused_to_it_until_another_is_blamed() {
        let (mut t, mut out) = connected();
        let to_shared = |t: &mut Tracker, out: &mut Recorder, endpoint| {
            let (p, rx) = pack(1);
            t.submit(out, &p, from_source(endpoint), to_topic("shared/x", 1), 100);
            rx
        };
        let blamed_on = |t: &mut Tracker, out: &mut Recorder, endpoint| {
            acknowledged(t, out);
            let rx = to_shared(t, out, endpoint);
            t.on_event(out, &written(2));
            let blame = lose(t, TopicClose::Silent);
            assert_eq!(outcomes(&rx), vec![Outcome::ConnectionError]);
            t.on_connected(out, Window::default());
            match blame {
                Some(Blame::Topic { blame, .. }) => blame,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(blamed_on(&mut t, &mut out, 7), TopicBlame::Suspect);
        assert_eq!(blamed_on(&mut t, &mut out, 7), TopicBlame::RefusedToOne);
        let refused = to_shared(&mut t, &mut out, 7);
        assert_eq!(outcomes(&refused), vec![Outcome::RemoteError]);
        // One close proves nothing: it may be at a message written after endpoint 8's.
        assert_eq!(blamed_on(&mut t, &mut out, 8), TopicBlame::Suspect);
        assert_eq!(blamed_on(&mut t, &mut out, 8), TopicBlame::Refused);
        let refused = to_shared(&mut t, &mut out, 9);
        assert_eq!(outcomes(&refused), vec![Outcome::RemoteError]);
    }

    /// A QoS 1 message to `allowed/x` (packet id 1) written and acknowledged: the connection
    /// answered, and the broker takes that topic.
    fn acknowledged(t: &mut Tracker, out: &mut Recorder) {
        let rx = write_to(t, out, "allowed/x", 1);
        t.on_event(out, &puback(1));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
    }

    /// The connection is lost, nothing reported with it, and the close judged `at_topic`.
    fn lose(t: &mut Tracker, at_topic: TopicClose) -> Option<Blame> {
        let lost = t.on_connection_lost(0, &[]);
        t.blame(lost, at_topic, false)
    }

    /// A close blamed on `topic`.
    fn on_topic(topic: &str, blame: TopicBlame) -> Option<Blame> {
        Some(Blame::Topic {
            topic: Arc::from(topic),
            blame,
        })
    }

    /// Submits a one-message pack to `topic` at QoS 0 and writes it.
    fn write_qos0(t: &mut Tracker, out: &mut Recorder, topic: &str) -> mpsc::Receiver<Outcome> {
        let (p, rx) = pack(1);
        t.submit(out, &p, Qos::AtMostOnce.into(), to_topic(topic, 1), 100);
        t.on_event(out, &written(0));
        rx
    }

    /// Nothing acknowledges QoS 0, and HiveMQ closes the connection at a QoS 0 publish its ACL
    /// denies: a close just after a QoS 0 message to a topic the broker was not known to take
    /// is blamed on it as on a QoS 1 message's, twice refuses it, and packs to it then fail
    /// unpublished. The packs written before were answered as written. A connection that
    /// acknowledged nothing and was closed at its first QoS 0 message blames nothing.
    #[test]
    fn a_qos0_topic_the_broker_closed_at_twice_fails_later_packs_unpublished() {
        let (mut t, mut out) = connected();
        write_qos0(&mut t, &mut out, "denied/x");
        assert_eq!(
            lose(&mut t, TopicClose::Silent),
            None,
            "nothing acknowledged"
        );
        t.on_connected(&mut out, Window::default());
        for blame in [TopicBlame::Suspect, TopicBlame::Refused] {
            acknowledged(&mut t, &mut out);
            let denied = write_qos0(&mut t, &mut out, "denied/x");
            assert_eq!(outcomes(&denied), vec![Outcome::Delivered], "written");
            assert_eq!(
                lose(&mut t, TopicClose::Silent),
                on_topic("denied/x", blame)
            );
            t.on_connected(&mut out, Window::default());
        }
        let published = out.published.len();
        let rx = write_qos0(&mut t, &mut out, "denied/x");
        assert_eq!(outcomes(&rx), vec![Outcome::RemoteError]);
        assert_eq!(out.published.len(), published, "not published");
    }

    /// MQTT 5's DISCONNECT "not authorized" says the broker refused what it was sent: blamed
    /// even on a connection that answered nothing yet (a QoS 0 appender's first message).
    #[test]
    fn a_close_refusing_what_was_sent_blames_before_any_answer() {
        let (mut t, mut out) = connected();
        for blame in [TopicBlame::Suspect, TopicBlame::Refused] {
            write_qos0(&mut t, &mut out, "denied/x");
            assert_eq!(
                lose(&mut t, TopicClose::Refusing),
                on_topic("denied/x", blame)
            );
            t.on_connected(&mut out, Window::default());
        }
    }

    /// MQTT 5, a close whose reason went unread on a connection that answered nothing (a QoS 0
    /// appender's, closed at its first message): it refuses a topic a DISCONNECT "not
    /// authorized" made a suspect, but no other, as a broker flapping or another client taking
    /// the id closes so too. On a connection that answered, it blames a QoS 0 message as a
    /// close without a reason under MQTT 3.1.1 does; never a QoS 1 one, which an MQTT 5 broker
    /// refuses with a reason code.
    #[test]
    fn an_unheard_close_before_any_answer_only_refuses_what_was_refused_once() {
        let (mut t, mut out) = connected();
        write_qos0(&mut t, &mut out, "denied/x");
        assert_eq!(lose(&mut t, TopicClose::Unheard), None, "no suspect yet");
        for (close, blame) in [
            (TopicClose::Refusing, TopicBlame::Suspect),
            (TopicClose::Unheard, TopicBlame::Refused),
        ] {
            t.on_connected(&mut out, Window::default());
            write_qos0(&mut t, &mut out, "denied/x");
            assert_eq!(lose(&mut t, close), on_topic("denied/x", blame));
        }
        t.on_connected(&mut out, Window::default());
        assert_eq!(
            outcomes(&write_qos0(&mut t, &mut out, "denied/x")),
            vec![Outcome::RemoteError]
        );
        acknowledged(&mut t, &mut out);
        write_qos0(&mut t, &mut out, "other/x");
        let suspect = on_topic("other/x", TopicBlame::Suspect);
        assert_eq!(lose(&mut t, TopicClose::Unheard), suspect, "answered");
        t.on_connected(&mut out, Window::default());
        write_qos0(&mut t, &mut out, "other/x");
        assert_eq!(
            lose(&mut t, TopicClose::Unheard),
            None,
            "no close said 'not authorized'"
        );
        t.on_connected(&mut out, Window::default());
        acknowledged(&mut t, &mut out);
        write_to(&mut t, &mut out, "qos1/x", 2);
        assert_eq!(lose(&mut t, TopicClose::Unheard), None, "QoS 1");
        t.on_connected(&mut out, Window::default());
        acknowledged(&mut t, &mut out);
        write_qos0(&mut t, &mut out, "other/x");
        assert_eq!(
            lose(&mut t, TopicClose::Unheard),
            on_topic("other/x", TopicBlame::Refused)
        );
        // One of denied/x's closes said "not authorized", which a takeover does not: its
        // refusal outlives one. other/x's closes said nothing: its refusal is forgotten.
        t.on_connected(&mut out, Window::default());
        t.on_taken_over();
        assert_eq!(
            outcomes(&write_qos0(&mut t, &mut out, "denied/x")),
            vec![Outcome::RemoteError]
        );
        assert_eq!(
            outcomes(&write_qos0(&mut t, &mut out, "other/x")),
            vec![Outcome::Delivered]
        );
    }

    /// A DISCONNECT "not authorized" is about what was sent, not a size: with a large QoS 1
    /// message in flight, far beyond the small one acknowledged, the QoS 0 message to a new
    /// topic written after it is blamed, twice refused, and that refusal outlives a takeover, which forgets the
    /// topics refused for closes without a reason.
    #[test]
    fn a_close_refusing_what_was_sent_blames_a_topic_never_a_size() {
        let (mut t, mut out) = connected();
        for blame in [TopicBlame::Suspect, TopicBlame::Refused] {
            acknowledged(&mut t, &mut out);
            let large = Message {
                topic: Arc::from("allowed/x"),
                ..big()
            };
            t.submit(
                &mut out,
                &pack(1).0,
                Qos::AtLeastOnce.into(),
                vec![large],
                100,
            );
            t.on_event(&mut out, &written(2));
            write_qos0(&mut t, &mut out, "denied/x");
            assert_eq!(
                lose(&mut t, TopicClose::Refusing),
                on_topic("denied/x", blame)
            );
            t.on_connected(&mut out, Window::default());
        }
        for blame in [TopicBlame::Suspect, TopicBlame::Refused] {
            acknowledged(&mut t, &mut out);
            write_to(&mut t, &mut out, "silent/x", 2);
            assert_eq!(
                lose(&mut t, TopicClose::Silent),
                on_topic("silent/x", blame)
            );
            t.on_connected(&mut out, Window::default());
        }
        t.on_taken_over();
        assert_eq!(
            outcomes(&write_qos0(&mut t, &mut out, "denied/x")),
            vec![Outcome::RemoteError]
        );
        let (p, rx) = pack(1);
        t.submit(
            &mut out,
            &p,
            Qos::AtLeastOnce.into(),
            to_topic("silent/x", 1),
            100,
        );
        assert_eq!(outcomes(&rx), vec![], "published again");
    }

    /// A QoS 0 message written too long before the close to be blamed does not hide a later
    /// one to a new topic.
    #[test]
    fn a_qos0_message_too_old_to_blame_does_not_hide_a_later_one() {
        let (mut t, mut out) = connected();
        acknowledged(&mut t, &mut out);
        write_qos0(&mut t, &mut out, "old/a");
        std::thread::sleep(QUICK * 3 / 4 + Duration::from_millis(200));
        write_qos0(&mut t, &mut out, "new/b");
        std::thread::sleep(QUICK / 4);
        assert_eq!(
            lose(&mut t, TopicClose::Silent),
            on_topic("new/b", TopicBlame::Suspect)
        );
    }

    /// A connection fallen quiet still answers rumqttc's keep-alive pings: a PINGRESP takes
    /// the QoS 0 topics it outlived, as a write does.
    #[test]
    fn a_pong_takes_the_qos0_topics_the_connection_outlived() {
        let (mut t, mut out) = connected();
        write_qos0(&mut t, &mut out, "quiet/x");
        std::thread::sleep(QUICK + Duration::from_millis(50));
        t.on_event(&mut out, &Observed::Pong);
        assert!(t
            .silent_refusals
            .is_allowed("quiet/x", Qos::AtMostOnce, false));
    }

    /// A QoS 0 message written before one the broker acknowledged was read (in order) and is
    /// not blamed; nor is one the close came more than [`QUICK`] after, and that close
    /// (nor a publish reported with it) does not take its topic either: it may be the broker's
    /// answer to it, slow.
    #[test]
    fn a_qos0_message_read_or_old_is_not_blamed_nor_taken_at_the_close() {
        let (mut t, mut out) = connected();
        write_qos0(&mut t, &mut out, "before/ack");
        acknowledged(&mut t, &mut out);
        assert_eq!(
            lose(&mut t, TopicClose::Silent),
            None,
            "read before the ack"
        );
        t.on_connected(&mut out, Window::default());
        acknowledged(&mut t, &mut out);
        write_qos0(&mut t, &mut out, "slow/x");
        std::thread::sleep(QUICK + Duration::from_millis(50));
        // A publish written in the read that failed, reported with the loss.
        let (p, _) = pack(1);
        t.submit(
            &mut out,
            &p,
            Qos::AtLeastOnce.into(),
            to_topic("allowed/x", 1),
            100,
        );
        let lost = t.on_connection_lost(0, &[written(2)]);
        assert_eq!(
            t.blame(lost, TopicClose::Silent, false),
            None,
            "too long before the close"
        );
        assert!(!t
            .silent_refusals
            .is_allowed("slow/x", Qos::AtMostOnce, false));
    }

    /// Topics written in turn are kept once each, not once per message.
    #[test]
    fn qos0_topics_written_in_turn_are_kept_once_each() {
        let (mut t, mut out) = connected();
        for _ in 0..100 {
            write_qos0(&mut t, &mut out, "a");
            write_qos0(&mut t, &mut out, "b");
        }
        assert_eq!(t.unanswered.written.len(), 2);
    }

    /// A QoS 0 message the connection outlived by [`QUICK`] was read, and the broker
    /// kept the connection: its topic is taken and not blamed at a later close, and the
    /// connection counts as answering though it acknowledged nothing.
    #[test]
    fn a_qos0_topic_the_connection_outlived_is_taken() {
        let (mut t, mut out) = connected();
        write_qos0(&mut t, &mut out, "fixed");
        std::thread::sleep(QUICK + Duration::from_millis(50));
        write_qos0(&mut t, &mut out, "fixed");
        write_qos0(&mut t, &mut out, "new/a");
        assert_eq!(
            lose(&mut t, TopicClose::Silent),
            on_topic("new/a", TopicBlame::Suspect)
        );
    }

    /// A topic the broker acknowledged is never blamed (a fixed topic that worked once, at a
    /// broker restarting twice), nor is any at a close the broker gave a reason for; and of
    /// several new topics the first written is, the broker reading in order.
    #[test]
    fn a_close_is_blamed_only_on_the_first_topic_the_broker_never_took() {
        let (mut t, mut out) = connected();
        let rx = write_to(&mut t, &mut out, "fixed", 1);
        t.on_event(&mut out, &puback(1));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
        for _ in 0..2 {
            write_to(&mut t, &mut out, "fixed", 2);
            assert_eq!(lose(&mut t, TopicClose::Silent), None);
            t.on_connected(&mut out, Window::default());
            // rumqttc numbers each connection afresh.
            write_to(&mut t, &mut out, "fixed", 1);
            t.on_event(&mut out, &puback(1));
        }
        for _ in 0..2 {
            write_to(&mut t, &mut out, "new/a", 2);
            assert_eq!(lose(&mut t, TopicClose::No), None, "a reason was given");
            t.on_connected(&mut out, Window::default());
            write_to(&mut t, &mut out, "fixed", 1);
            t.on_event(&mut out, &puback(1));
        }
        // A large message to a new topic: its topic, not its size, though it passes all the
        // broker acknowledged by far.
        t.submit(
            &mut out,
            &pack(1).0,
            Qos::AtLeastOnce.into(),
            vec![Message {
                topic: Arc::from("new/big"),
                ..big()
            }],
            100,
        );
        t.on_event(&mut out, &written(2));
        assert_eq!(
            lose(&mut t, TopicClose::Silent),
            on_topic("new/big", TopicBlame::Suspect)
        );
        t.on_connected(&mut out, Window::default());
        write_to(&mut t, &mut out, "fixed", 1);
        t.on_event(&mut out, &puback(1));
        std::thread::sleep(Duration::from_millis(2));
        write_to(&mut t, &mut out, "new/b", 2);
        std::thread::sleep(Duration::from_millis(2));
        write_to(&mut t, &mut out, "new/c", 3);
        assert_eq!(
            lose(&mut t, TopicClose::Silent),
            on_topic("new/b", TopicBlame::Suspect)
        );
    }

    /// The broker's receive maximum (MQTT 5) bounds QoS 1 and 2 alike; QoS 0 passes.
    #[test]
    fn the_agreed_window_holds_back_acknowledged_messages_beyond_it() {
        let mut t = Tracker::default();
        let mut out = Recorder::default();
        t.on_connected(&mut out, Window::agreed(None, Some(3)));
        let (p, rx) = pack(5);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(5), 1000);
        assert_eq!(out.published.len(), 3, "only the window goes out");
        let (q0, rx0) = pack(2);
        t.submit(&mut out, &q0, Qos::AtMostOnce.into(), payloads(2), 1000);
        assert_eq!(
            out.published.len(),
            5,
            "QoS 0 takes no slot, and goes past them"
        );
        for pkid in [1, 2, 3, 0, 0] {
            t.on_event(&mut out, &written(pkid));
        }
        assert_eq!(outcomes(&rx0), vec![Outcome::Delivered]);
        t.on_event(&mut out, &puback(1));
        assert_eq!(out.published.len(), 6, "an ack frees one slot");
        t.on_event(&mut out, &puback(2));
        assert_eq!(out.published.len(), 7, "the last QoS 1 one");
        t.on_event(&mut out, &written(4));
        t.on_event(&mut out, &written(5));
        for pkid in 3..=5 {
            t.on_event(&mut out, &puback(pkid));
        }
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
        assert_eq!(t.outstanding(), 0);
    }

    /// A window of 100 QoS 1 messages, all written and none acknowledged, 50 more parked.
    fn a_full_window_of_100() -> (Tracker, Recorder, mpsc::Receiver<Outcome>) {
        let (mut t, mut out) = connected_with(Window::agreed(None, Some(100)));
        let rx = fill_window(&mut t, &mut out, 100, 50);
        (t, out, rx)
    }

    /// One pack's QoS 1 messages: `window` of them written and none acknowledged, `parked`
    /// more waiting.
    fn fill_window(
        t: &mut Tracker,
        out: &mut Recorder,
        window: u16,
        parked: usize,
    ) -> mpsc::Receiver<Outcome> {
        let records = usize::from(window) + parked;
        let (p, rx) = pack(records);
        t.submit(out, &p, Qos::AtLeastOnce.into(), payloads(records), 1000);
        assert_eq!(
            out.published.len(),
            usize::from(window),
            "the window goes out at once"
        );
        for pkid in 1..=window {
            t.on_event(out, &written(pkid));
        }
        rx
    }

    /// A window refills a quarter at a time: each ack freeing one slot wrote one message, one
    /// socket write per message where QoS 0 takes a write per batch.
    #[test]
    fn a_window_refills_a_quarter_at_a_time() {
        let (mut t, mut out, _rx) = a_full_window_of_100();
        for pkid in 1..=24 {
            t.on_event(&mut out, &puback(pkid));
        }
        assert_eq!(out.published.len(), 100, "24 slots free: held");
        t.on_event(&mut out, &puback(25));
        assert_eq!(
            out.published.len(),
            125,
            "a quarter free: all of it at once"
        );
    }

    /// Where the client writes each publish alone (rumqttc's MQTT 5 loop), each ack lets a
    /// message go: waiting for a quarter saves no write, and with nothing written meanwhile a
    /// broker's acks held behind Nagle's algorithm wait for a delayed TCP acknowledgement.
    #[test]
    fn where_each_publish_is_written_alone_each_ack_refills_its_slot() {
        let (mut t, mut out) = mqtt5_connected(Window::agreed(None, Some(20)));
        let rx = fill_window(&mut t, &mut out, 20, 10);
        out.channel.clear();
        for (acked, pkid) in (1..=10).zip(1..) {
            t.on_event(&mut out, &puback(pkid));
            assert_eq!(out.published.len(), 20 + acked, "an ack, a message");
        }
        let ids: Vec<u16> = out.channel.iter().map(|m| m.3).collect();
        assert_eq!(ids, (1..=10).collect::<Vec<_>>(), "the ids the acks freed");
        for pkid in 11..=20 {
            t.on_event(&mut out, &puback(pkid));
        }
        for pkid in 1..=10 {
            t.on_event(&mut out, &written(pkid));
            t.on_event(&mut out, &puback(pkid));
        }
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
    }

    /// A closing connection has a grace of its own for what it still writes: each ack lets the
    /// next message go (the 'offline' status in its turn), and so does a slot already free.
    #[test]
    fn a_closing_connection_refills_each_slot_at_once() {
        let (mut t, mut out, _rx) = a_full_window_of_100();
        t.on_event(&mut out, &puback(1));
        assert_eq!(out.published.len(), 100, "held for the quarter");
        t.closing(&mut out);
        assert_eq!(
            out.published.len(),
            101,
            "the free slot filled at the close"
        );
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &puback(2));
        assert_eq!(out.published.len(), 102, "an ack, a message");
    }

    /// Between refills each ack is the window moving: a slow broker acknowledging all along is
    /// not stalled while the window waits for its quarter.
    #[test]
    fn an_ack_between_refills_moves_the_window() {
        let (mut t, mut out, _rx) = a_full_window_of_100();
        let long_ago = Instant::now().checked_sub(Duration::from_secs(60));
        t.acked_window_moved = long_ago;
        let before = Instant::now();
        t.on_event(&mut out, &puback(1));
        assert_eq!(out.published.len(), 100, "held for the quarter");
        assert!(t.acked_window_moved >= Some(before), "moved at the ack");
    }

    /// QoS 2 messages sharing their window with QoS 1 (`maxInflight`, an MQTT 5 broker's
    /// receive maximum) take each slot an ack frees while no QoS 1 message waits: QoS 1 waits
    /// for a quarter.
    #[test]
    fn qos2_messages_take_each_slot_freed_where_qos1_waits_for_a_quarter() {
        let window = Window::agreed(Some(20), None);
        assert_eq!(window.exactly_once, window.acked, "one window");
        for (qos, after_one_ack) in [(Qos::ExactlyOnce, 21), (Qos::AtLeastOnce, 20)] {
            let (mut t, mut out) = connected_with(window);
            let (p, _rx) = pack(25);
            t.submit(&mut out, &p, qos.into(), payloads(25), 1000);
            for pkid in 1..=20 {
                t.on_event(&mut out, &written(pkid));
            }
            if qos == Qos::ExactlyOnce {
                t.on_event(&mut out, &pubrec(1));
                t.on_event(&mut out, &pubcomp(1));
            } else {
                t.on_event(&mut out, &puback(1));
            }
            assert_eq!(out.published.len(), after_one_ack, "{qos:?}");
        }
    }

    /// QoS 1 messages in a window shared with QoS 2 ones keep their turn: QoS 2 waits for
    /// the quarter with them. (Taking each slot an ack freed, a stream of QoS 2 packs kept the
    /// quarter from coming: another endpoint's QoS 1 message had not gone out after 100 acks,
    /// 120 QoS 2 messages written, most of them submitted after it.)
    #[test]
    fn qos1_messages_keep_their_turn_in_a_window_qos2_takes_slot_by_slot() {
        let (mut t, mut out) = connected_with(Window::agreed(Some(20), None));
        // Another endpoint's QoS 2 packs of 25, one before the QoS 1 message, ten after it.
        let qos2_pack = |t: &mut Tracker, out: &mut Recorder| {
            let (p, rx) = pack(25);
            let how = PublishOptions {
                origin: Origin {
                    appender: 1,
                    endpoint: 2,
                },
                ..Qos::ExactlyOnce.into()
            };
            t.submit(out, &p, how, payloads(25), 1000);
            rx
        };
        let _first = qos2_pack(&mut t, &mut out);
        let (q1, _rx) = pack(1);
        let qos1 = records_at(Qos::AtLeastOnce);
        t.submit(&mut out, &q1, qos1, payloads(1), 1000);
        let _later: Vec<_> = (0..10).map(|_| qos2_pack(&mut t, &mut out)).collect();
        // A broker acknowledging each message in order as it is written; the ids go round
        // the window's 20 in turn.
        let mut acked = 0;
        while acked < out.published.len() && acked < 100 {
            let (pkid, qos) = ((acked % 20) as u16 + 1, out.published[acked].1.qos);
            t.on_event(&mut out, &written(pkid));
            if qos == Qos::AtLeastOnce {
                t.on_event(&mut out, &puback(pkid));
            } else {
                t.on_event(&mut out, &pubrec(pkid));
                t.on_event(&mut out, &pubcomp(pkid));
            }
            acked += 1;
        }
        let turn = out
            .published
            .iter()
            .position(|m| m.1.qos == Qos::AtLeastOnce);
        assert!(turn.is_some_and(|n| n < 50), "QoS 1 went out at {turn:?}");
    }

    /// A QoS 2 message waiting with QoS 1 ones for the quarter is held by the window, which
    /// each ack moves, not by the writes, which stop meanwhile.
    #[test]
    fn a_qos2_message_waiting_for_the_quarter_is_held_by_the_window() {
        let (mut t, mut out) = connected_with(Window::agreed(Some(20), None));
        let (p, _rx) = pack(21);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(21), 1000);
        let (q2, _rx2) = pack(1);
        t.submit(
            &mut out,
            &q2,
            records_at(Qos::ExactlyOnce),
            payloads(1),
            1000,
        );
        for pkid in 1..=20 {
            t.on_event(&mut out, &written(pkid));
        }
        let long_ago = Instant::now().checked_sub(Duration::from_secs(60));
        (t.moved, t.acked_window_moved) = (long_ago, long_ago);
        let before = Instant::now();
        t.on_event(&mut out, &puback(1));
        assert_eq!(out.published.len(), 20, "both wait for the quarter");
        assert!(
            t.moved_for(Qos::ExactlyOnce) >= Some(before),
            "moved at the ack"
        );
    }

    #[test]
    fn qos2_window_holds_back_what_the_broker_would_drop() {
        let (mut t, mut out) = connected();
        let window = Window::default().exactly_once;
        let (p, rx) = pack(window + 5);
        let (q1, rx1) = pack(1);
        t.submit(
            &mut out,
            &p,
            Qos::ExactlyOnce.into(),
            payloads(window + 5),
            1000,
        );
        assert_eq!(out.published.len(), window, "only the window goes out");
        // A QoS 1 message of another appender goes past them: its window has room.
        t.submit(&mut out, &q1, Qos::AtLeastOnce.into(), payloads(1), 1000);
        assert_eq!(out.published.len(), window + 1);
        for pkid in 1..=window as u16 + 1 {
            t.on_event(&mut out, &written(pkid));
        }
        t.on_event(&mut out, &puback(window as u16 + 1));
        assert_eq!(outcomes(&rx1), vec![Outcome::Delivered]);
        t.on_event(&mut out, &pubrec(1));
        assert_eq!(out.published.len(), window + 1, "PUBREC frees no slot");
        t.on_event(&mut out, &pubcomp(1));
        assert_eq!(out.published.len(), window + 2, "PUBCOMP does");
        for pkid in 2..=window as u16 {
            t.on_event(&mut out, &pubrec(pkid));
            t.on_event(&mut out, &pubcomp(pkid));
        }
        assert_eq!(out.published.len(), window + 6, "all released");
        for pkid in 22..=26 {
            t.on_event(&mut out, &written(pkid));
            t.on_event(&mut out, &pubrec(pkid));
            t.on_event(&mut out, &pubcomp(pkid));
        }
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn a_message_unwritten_or_unacknowledged_past_the_limit_stalls_the_connection() {
        let (mut t, mut out) = connected();
        let (p, _rx) = pack(2);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(2), 100);
        let limit = Duration::from_secs(1);
        let later = Instant::now() + Duration::from_secs(2);
        assert!(t.is_stalled(Instant::now()).is_none());
        assert!(
            t.is_stalled(later) == Some(limit),
            "not written for longer than the limit: the socket takes nothing"
        );
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &written(2));
        assert!(t.is_stalled(Instant::now()).is_none());
        assert!(t.is_stalled(later) == Some(limit));
        t.on_event(&mut out, &puback(1));
        t.on_event(&mut out, &puback(2));
        assert!(t.is_stalled(later).is_none(), "acknowledged");
    }

    /// Each message is judged by its own patience once the broker acknowledges: on a
    /// connection two appenders share, one with a short deliveryTimeoutSeconds does not call
    /// the connection stalled over the other's messages, which may wait longer. Before the
    /// broker's first ack, which may be only slow, the longest patience judges them all.
    /// (Before: one limit, the sweeping appender's, for every message, so the short one reset
    /// the connection under the other's packs; then each by its own from the start, so it
    /// reset every connection a slow broker was given before its first ack.)
    #[test]
    fn each_message_waits_as_long_as_its_own_appender_lets_it() {
        let (mut t, mut out) = connected();
        let mut submit = |patience| {
            let (p, rx) = pack(1);
            let how = PublishOptions {
                patience,
                ..Qos::AtLeastOnce.into()
            };
            t.submit(&mut out, &p, how, payloads(1), 100);
            let pkid = t.last_id;
            t.on_event(&mut out, &written(pkid));
            rx
        };
        let _patient = submit(Some(Duration::from_secs(60)));
        let _hasty = submit(Some(Duration::from_secs(1)));
        let _unjudged = submit(None);
        let _acked = submit(Some(Duration::from_secs(1)));
        let later = Instant::now() + Duration::from_secs(2);
        assert_eq!(t.is_stalled(later), None, "no ack yet: within a minute");
        let past_it = Instant::now() + Duration::from_secs(61);
        assert_eq!(t.is_stalled(past_it), Some(Duration::from_secs(60)));
        t.on_event(&mut out, &puback(4));
        let later = Instant::now() + Duration::from_secs(2);
        assert_eq!(t.is_stalled(later), Some(Duration::from_secs(1)), "acked");
        t.on_event(&mut out, &puback(2));
        assert_eq!(t.is_stalled(later), None, "within its own minute");
        assert_eq!(
            t.is_stalled(Instant::now() + Duration::from_secs(3600)),
            Some(Duration::from_secs(60)),
            "a message without patience is never the one"
        );
    }

    /// Before the broker's first ack the status message's patience (a connect and a
    /// keep-alive) does not hold the records' messages: with a long keep-alive a broker silent
    /// since its CONNACK would be kept for minutes. Alone, it is judged by its own.
    #[test]
    fn before_the_first_ack_the_status_message_sets_no_patience_for_records() {
        let submit = |t: &mut Tracker, out: &mut Recorder, appender, secs| {
            let (p, rx) = pack(1);
            let how = PublishOptions {
                patience: Some(Duration::from_secs(secs)),
                origin: Origin {
                    appender,
                    endpoint: 1,
                },
                ..Qos::AtLeastOnce.into()
            };
            t.submit(out, &p, how, payloads(1), usize::MAX);
            let pkid = t.last_id;
            t.on_event(out, &written(pkid));
            rx
        };
        let (mut t, mut out) = connected();
        let _status = submit(&mut t, &mut out, 0, 310);
        let _record = submit(&mut t, &mut out, 1, 30);
        let later = Instant::now() + Duration::from_secs(120);
        assert_eq!(t.is_stalled(later), Some(Duration::from_secs(30)));
        let (mut t, mut out) = connected();
        let _status = submit(&mut t, &mut out, 0, 310);
        assert_eq!(t.is_stalled(later), None, "alone");
        let past_it = Instant::now() + Duration::from_secs(311);
        assert_eq!(t.is_stalled(past_it), Some(Duration::from_secs(310)));
    }

    /// What a message past its patience waited for, and whose patience it was, for the line
    /// that says why the connection is left: to be written, for the window, or for its ack.
    #[test]
    fn a_stall_says_what_the_message_waited_for() {
        let later = Instant::now() + Duration::from_secs(2);
        let (mut t, mut out) = connected_with(Window {
            acked: 1,
            exactly_once: 1,
            packet_ids: 1,
        });
        let (p, _rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(1), 100);
        let taken = t.take_stall(later);
        assert_eq!(taken.map(|s| s.waited), Some(Waited::Written));
        assert_eq!(taken.map(|s| s.status), Some(true), "the connection's own");
        t.on_event(&mut out, &written(1));
        assert_eq!(t.take_stall(later).map(|s| s.waited), Some(Waited::Ack));
        let (mut t, mut out) = connected_with(Window {
            acked: 1,
            exactly_once: 1,
            packet_ids: 1,
        });
        let _held = hold_the_window(&mut t, &mut out, Qos::AtLeastOnce);
        let (q, _rx) = pack(1);
        t.submit(&mut out, &q, from_source(7), payloads(1), 100);
        assert_eq!(t.parked.len(), 1, "behind the window");
        let taken = t.take_stall(later);
        assert_eq!(
            taken.map(|s| (s.waited, s.status)),
            Some((Waited::Window, false))
        );
    }

    /// Whether a message waited past a limit for its ack (a connection that held is said to
    /// have only without one) counts from its write, not from the broker's last ack: one it
    /// never acknowledges among others it does is no sign of a connection that is well.
    #[test]
    fn a_message_never_acknowledged_among_others_has_waited_from_its_write() {
        let (mut t, mut out) = connected();
        let _rx = write_to(&mut t, &mut out, "t", 1);
        let acked = write_to(&mut t, &mut out, "t", 2);
        t.on_event(&mut out, &puback(2));
        assert_eq!(outcomes(&acked), vec![Outcome::Delivered]);
        // Others acknowledged since, the last 20 s after these were written.
        t.acked = Some(Instant::now() + Duration::from_secs(20));
        let limit = Duration::from_secs(30);
        let later = Instant::now() + Duration::from_secs(31);
        assert!(t.waited_past(later, limit));
    }

    /// A message parked behind a window that another appender's patient messages fill is
    /// judged by its own patience too, once no message of its QoS has gone out for that long:
    /// else the connection stayed for the other's minutes, and every pack of the impatient
    /// appender failed meanwhile. One of its QoS gone out since, or no connection, is no
    /// stall; a QoS 0 message going out past the full window is. (Before the QoS waited apart,
    /// any write counted.)
    #[test]
    fn a_message_parked_behind_a_full_window_is_judged_by_its_own_patience() {
        let (mut t, mut out) = one_at_a_time(1, "ok");
        let _held = hold_the_window(&mut t, &mut out, Qos::AtLeastOnce);
        let (q, _rx) = pack(1);
        t.submit(&mut out, &q, Qos::AtLeastOnce.into(), payloads(1), 100);
        assert_eq!(t.parked.len(), 1, "behind the window");
        let later = Instant::now() + Duration::from_secs(2);
        assert_eq!(t.is_stalled(Instant::now()), None);
        assert_eq!(t.is_stalled(later), Some(Duration::from_secs(1)));
        // Another appender's QoS 0 message written past the full window is no progress of it.
        t.moved = Some(later);
        assert_eq!(t.is_stalled(later), Some(Duration::from_secs(1)), "QoS 0");
        t.acked_window_moved = Some(later);
        assert_eq!(t.is_stalled(later), None, "a QoS 1 message went since");
        t.on_connection_lost(0, &[]);
        assert_eq!(
            t.is_stalled(later + Duration::from_secs(2)),
            None,
            "no connection"
        );
    }

    /// Another appender's message of `qos`, of 300 s patience, written as the first packet id:
    /// on a window of one, it holds the window.
    fn hold_the_window(
        t: &mut Tracker,
        out: &mut Recorder,
        qos: Qos,
    ) -> (Arc<Pack>, mpsc::Receiver<Outcome>) {
        let patient = PublishOptions {
            patience: Some(Duration::from_secs(300)),
            ..qos.into()
        };
        let (p, rx) = pack(1);
        t.submit(out, &p, patient, payloads(1), 100);
        t.on_event(out, &written(1));
        (p, rx)
    }

    /// The sweep looks at the connection, then answers the packs past their deadline, which
    /// drops their parked messages: one waiting for another appender's full window passes its
    /// patience at its own pack's deadline. The stall it showed still holds when the driver
    /// looks, unless the window moved since. (Looked at again from the queue alone, the
    /// driver found nothing, and the window's own message held the connection for its 300 s.)
    #[test]
    fn a_stall_the_sweep_found_outlives_the_pack_it_answered() {
        let (mut t, mut out, window) = took_one(1, 1, "ok");
        let _held = hold_the_window(&mut t, &mut out, Qos::AtLeastOnce);
        let later = Instant::now() + Duration::from_secs(2);
        // A pack parked behind the window, found by the sweep and answered at its deadline.
        let found_and_answered = |t: &mut Tracker, out: &mut Recorder| {
            let (q, _rx) = pack(1);
            t.submit(out, &q, Qos::AtLeastOnce.into(), payloads(1), 100);
            assert!(t.sweep_stall(later));
            q.finish(Why::Expired);
            t.prune();
            assert_eq!(t.is_stalled(later), None, "the queue alone shows nothing");
        };
        let one_second = Some(Duration::from_secs(1));

        found_and_answered(&mut t, &mut out);
        assert!(
            !t.sweep_stall(later),
            "another appender's sweep finds nothing"
        );
        assert_eq!(t.take_stall(later).map(|s| s.patience), one_second);
        assert_eq!(t.take_stall(later).map(|s| s.patience), None, "taken once");

        found_and_answered(&mut t, &mut out);
        let (r, _rx) = pack(1);
        t.submit(&mut out, &r, Qos::AtMostOnce.into(), payloads(1), 100);
        t.on_event(&mut out, &written(0));
        assert_eq!(
            t.take_stall(later).map(|s| s.patience),
            one_second,
            "QoS 0 is no progress of the window"
        );

        found_and_answered(&mut t, &mut out);
        t.on_event(&mut out, &puback(1));
        assert_eq!(
            t.take_stall(later).map(|s| s.patience),
            None,
            "the ack freed the window"
        );

        let _held = hold_the_window(&mut t, &mut out, Qos::AtLeastOnce);
        found_and_answered(&mut t, &mut out);
        t.on_connection_lost(0, &[]);
        t.on_connected(&mut out, window);
        assert_eq!(
            t.take_stall(later).map(|s| s.patience),
            None,
            "another connection"
        );
    }

    /// A finding the driver can keep is not given up for one it would look at anew: another
    /// appender's sweep finding a written message past its patience, whose ack comes before
    /// the driver looks, leaves the stall of the full QoS 2 window found before.
    #[test]
    fn a_kept_stall_is_not_given_up_for_a_written_message() {
        let (mut t, mut out) = connected_with(Window {
            acked: 2,
            exactly_once: 1,
            packet_ids: 2,
        });
        let _held = hold_the_window(&mut t, &mut out, Qos::ExactlyOnce);
        // The broker acknowledges: each written message is judged by its own patience.
        t.acked = Some(Instant::now());
        let (b, _rx) = pack(1);
        t.submit(&mut out, &b, Qos::AtLeastOnce.into(), payloads(1), 100);
        t.on_event(&mut out, &written(2));
        let (c, _rx) = pack(1);
        t.submit(&mut out, &c, Qos::ExactlyOnce.into(), payloads(1), 100);
        assert_eq!(t.parked.len(), 1, "behind the QoS 2 window");
        let later = Instant::now() + Duration::from_secs(2);
        assert!(t.sweep_stall(later));
        c.finish(Why::Expired);
        t.prune();
        assert!(t.sweep_stall(later), "the written QoS 1 message");
        t.on_event(&mut out, &puback(2));
        assert_eq!(
            t.take_stall(later).map(|s| s.patience),
            Some(Duration::from_secs(1))
        );
    }

    /// A message parked behind the messages waiting to be written (a slow link) waits while
    /// they go out, whatever their QoS: only a full window holds it to its own QoS's progress.
    /// (Judged by its QoS alone, a QoS 1 message behind another appender's QoS 0 backlog made
    /// the working connection a stall.)
    #[test]
    fn a_message_parked_behind_unwritten_messages_of_another_qos_waits_while_they_go() {
        let (mut t, mut out) = connected();
        let (p, _rx) = pack(UNWRITTEN);
        let backlog = payloads(UNWRITTEN);
        t.submit(&mut out, &p, Qos::AtMostOnce.into(), backlog, 100_000);
        let (q, _rx) = pack(1);
        t.submit(&mut out, &q, Qos::AtLeastOnce.into(), payloads(1), 100_000);
        assert_eq!(
            t.parked.len(),
            1,
            "behind the messages waiting to be written"
        );
        // Two seconds on, past its patience of one, with QoS 0 messages written meanwhile.
        let later = Instant::now() + Duration::from_secs(2);
        t.moved = Some(later);
        assert_eq!(t.is_stalled(later), None);
        t.moved = Some(Instant::now());
        assert_eq!(
            t.is_stalled(later),
            Some(Duration::from_secs(1)),
            "nothing went"
        );
    }

    /// A window full of messages not yet written (a slow link) moves as they are written: a
    /// message parked behind it waits from the last such write, as the written ones wait for
    /// their acks from theirs, and is a stall only once the window has not moved for its
    /// patience. (Judged from when the window's last message went to the client, it was a stall
    /// as soon as the link had taken longer than that to write them.)
    #[test]
    fn a_message_parked_behind_a_window_being_written_waits_from_its_last_write() {
        let (mut t, mut out) = connected();
        t.window.acked = 2;
        let patient = PublishOptions {
            patience: Some(Duration::from_secs(300)),
            ..Qos::AtLeastOnce.into()
        };
        let (window, _rx) = pack(2);
        t.submit(&mut out, &window, patient, payloads(2), 100);
        let hasty = PublishOptions {
            patience: Some(Duration::from_millis(50)),
            ..Qos::AtLeastOnce.into()
        };
        let (parked, _rx) = pack(1);
        t.submit(&mut out, &parked, hasty, payloads(1), 100);
        assert_eq!(t.parked.len(), 1, "behind the full window");
        // The link takes longer than the parked message's patience to write the window.
        std::thread::sleep(Duration::from_millis(100));
        // Judged from just before the writes: a pause here on a busy machine changes nothing.
        let wrote = Instant::now();
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &written(2));
        let after = |ms| wrote + Duration::from_millis(ms);
        assert_eq!(t.is_stalled(after(25)), None, "written just now");
        let patience = t.is_stalled(after(1000));
        assert_eq!(patience, Some(Duration::from_millis(50)), "no ack since");
    }

    /// A full QoS 2 window moves with QoS 2 messages only: QoS 1 messages going out and being
    /// written meanwhile keep no QoS 2 message parked behind it from being judged.
    #[test]
    fn a_full_qos2_window_moves_with_qos2_messages_only() {
        let (mut t, mut out) = connected_with(Window {
            acked: 10,
            exactly_once: 1,
            packet_ids: 10,
        });
        // A pack of one message at `qos`, patient for `millis`.
        let submit = |t: &mut Tracker, out: &mut Recorder, qos, millis| {
            let (p, rx) = pack(1);
            let how = PublishOptions {
                qos,
                patience: Some(Duration::from_millis(millis)),
                ..Qos::AtLeastOnce.into()
            };
            t.submit(out, &p, how, payloads(1), 100);
            rx
        };
        let _patient = submit(&mut t, &mut out, Qos::ExactlyOnce, 300_000);
        t.on_event(&mut out, &written(1));
        let _parked = submit(&mut t, &mut out, Qos::ExactlyOnce, 50);
        assert_eq!(t.parked.len(), 1, "behind the QoS 2 window");
        std::thread::sleep(Duration::from_millis(100));
        let _other = submit(&mut t, &mut out, Qos::AtLeastOnce, 300_000);
        t.on_event(&mut out, &written(2));
        let patience = t.is_stalled(Instant::now());
        assert_eq!(patience, Some(Duration::from_millis(50)));
    }

    /// A message parked behind a packet id still taken (the window wrapped round to a message
    /// never acknowledged) is held by its window, not by what the other QoS write: another
    /// appender's QoS 0 messages going out do not keep the connection from being found stalled.
    #[test]
    fn a_message_parked_behind_a_taken_packet_id_is_judged_by_its_window() {
        let (mut t, mut out) = connected_with(Window {
            acked: 2,
            exactly_once: 2,
            packet_ids: 2,
        });
        let patient = PublishOptions {
            patience: Some(Duration::from_secs(300)),
            ..Qos::AtLeastOnce.into()
        };
        let (held, _rx) = pack(1);
        t.submit(&mut out, &held, patient, payloads(1), 100);
        let (acked, _rx) = pack(1);
        t.submit(&mut out, &acked, Qos::AtLeastOnce.into(), payloads(1), 100);
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &written(2));
        t.on_event(&mut out, &puback(2));
        let (next, _rx) = pack(1);
        t.submit(&mut out, &next, Qos::AtLeastOnce.into(), payloads(1), 100);
        assert_eq!(t.parked.len(), 1, "packet id 1 is still taken");
        let later = Instant::now() + Duration::from_secs(2);
        t.moved = Some(later);
        assert_eq!(t.is_stalled(later), Some(Duration::from_secs(1)));
    }

    /// A message handed to the client and not written when the connection was lost waits
    /// for the next one (MQTT 3.1.1 keeps it ready), and its wait starts again there: the last
    /// connection's stall does not count against the new one at once. (Before: a failover
    /// connection was reset as stalled the moment it was made, again and again.)
    #[test]
    fn a_message_carried_to_the_next_connection_waits_anew() {
        let (mut t, mut out) = connected();
        let (p, _rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtMostOnce.into(), payloads(1), 100);
        t.on_connection_lost(0, &[]);
        // Handed over two seconds ago, past its patience of one.
        t.sent[0].since = Instant::now() - Duration::from_secs(2);
        assert_eq!(t.is_stalled(Instant::now()), Some(Duration::from_secs(1)));
        t.on_connected(&mut out, Window::default());
        assert_eq!(t.is_stalled(Instant::now()), None);
        let later = Instant::now() + Duration::from_secs(2);
        assert_eq!(t.is_stalled(later), Some(Duration::from_secs(1)));
    }

    /// A window of large messages crosses a slow link one message after another, the broker
    /// reading and acknowledging all along: a message still waiting behind the others waits
    /// to be written from the connection's last write, not from when it was handed to the
    /// client. Only a socket that takes nothing for longer than the patience (a broker that
    /// stopped reading) stalls the connection. (Before: the last messages of a window that
    /// took longer than deliveryTimeoutSeconds to cross were judged stalled, and the
    /// connection was reset under every pack in flight on it, again at each retry.)
    #[test]
    fn a_window_written_slower_than_its_patience_waits_from_the_last_write() {
        let (mut t, mut out) = connected();
        let (p, rx) = pack(3);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(3), 100);
        // All three handed over two seconds ago, past their patience of one: the socket has
        // been taking the first all that time.
        let handed = Instant::now() - Duration::from_secs(2);
        for m in &mut t.sent {
            m.since = handed;
        }
        t.on_event(&mut out, &written(1));
        assert_eq!(
            t.is_stalled(Instant::now()),
            None,
            "the socket took one just now: the others wait behind it"
        );
        let later = Instant::now() + Duration::from_secs(2);
        assert_eq!(
            t.is_stalled(later),
            Some(Duration::from_secs(1)),
            "nothing written since: a broker that stopped reading"
        );
        t.on_event(&mut out, &puback(1));
        t.on_event(&mut out, &written(2));
        t.on_event(&mut out, &puback(2));
        assert_eq!(t.is_stalled(Instant::now()), None);
        t.on_event(&mut out, &written(3));
        assert_eq!(t.is_stalled(Instant::now()), None);
        assert_eq!(
            t.is_stalled(later),
            Some(Duration::from_secs(1)),
            "written and not acknowledged: a broker that stopped acknowledging"
        );
        t.on_event(&mut out, &puback(3));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
        assert_eq!(t.is_stalled(later), None);
    }

    /// A broker that stopped reading is found at QoS 0 too, which waits for no ack: its
    /// messages are never written.
    #[test]
    fn an_unwritten_qos0_message_past_the_limit_stalls_the_connection() {
        let (mut t, mut out) = connected();
        let (p, rx) = pack(1);
        t.submit(&mut out, &p, Qos::AtMostOnce.into(), payloads(1), 100);
        let limit = Duration::from_secs(1);
        let later = Instant::now() + Duration::from_secs(2);
        assert!(t.is_stalled(Instant::now()).is_none());
        assert!(t.is_stalled(later) == Some(limit));
        t.on_event(&mut out, &written(0));
        assert_eq!(outcomes(&rx), vec![Outcome::Delivered]);
        assert!(t.is_stalled(later).is_none(), "written: nothing waits");
    }

    fn sized(sizes: &[usize]) -> Vec<Message> {
        sizes
            .iter()
            .map(|&n| Message {
                topic: Arc::from(""),
                payload: vec![b'x'; n],
                labels: Vec::new(),
            })
            .collect()
    }

    /// Message bytes are bounded too, at `PENDING_BYTES_PER_RECORD` per record allowed: one
    /// endpoint's large records cannot make a broker that is away hold more than messages of
    /// 4 KiB would. The bytes come back whichever way a message leaves: confirmed, failed at
    /// a loss, written at QoS 0, dropped with its answered pack, or refused with the connection.
    #[test]
    fn message_bytes_are_bounded_and_given_back_whichever_way_messages_leave() {
        let max = 10; // records, so 40 KiB
        let full = [PENDING_BYTES_PER_RECORD * 5, PENDING_BYTES_PER_RECORD * 5];
        let qos1 = PublishOptions::from(Qos::AtLeastOnce);
        let (mut t, mut out) = connected();
        let (a, a_rx) = pack(2);
        t.submit(&mut out, &a, qos1, sized(&full), max);
        assert_eq!(t.held_bytes(), PENDING_BYTES_PER_RECORD * max);
        assert_eq!(t.outstanding(), 2, "far below the bound on records");
        let (b, b_rx) = pack(1);
        t.submit(&mut out, &b, qos1, sized(&[1]), max);
        assert_eq!(
            outcomes(&b_rx),
            vec![Outcome::ConnectionError],
            "bytes full"
        );
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &written(2));
        t.on_event(&mut out, &puback(1));
        t.on_event(&mut out, &puback(2));
        assert_eq!(outcomes(&a_rx), vec![Outcome::Delivered]);
        assert_eq!(t.held_bytes(), 0, "confirmed");

        let (c, _) = pack(2);
        t.submit(&mut out, &c, qos1, sized(&full), max);
        t.on_event(&mut out, &written(3));
        t.on_connection_lost(1, &[]);
        assert_eq!(t.held_bytes(), 0, "failed at the loss");

        let (d, _) = pack(1);
        t.submit(&mut out, &d, Qos::AtMostOnce.into(), sized(&[100]), max);
        assert_eq!(t.held_bytes(), 100, "parked while disconnected");
        d.finish(Why::Expired);
        t.prune();
        assert_eq!(t.held_bytes(), 0, "dropped with its answered pack");

        let (e, _) = pack(1);
        t.submit(&mut out, &e, Qos::AtMostOnce.into(), sized(&[100]), max);
        let refused = t.on_refused();
        assert_eq!(
            t.held_bytes(),
            0,
            "given back before the messages are freed"
        );
        refused.answer();
        assert_eq!(t.held_bytes(), 0, "and not again");

        t.on_connected(&mut out, Window::default());
        let (f, f_rx) = pack(1);
        t.submit(&mut out, &f, Qos::AtMostOnce.into(), sized(&[100]), max);
        t.on_event(&mut out, &written(0));
        assert_eq!(outcomes(&f_rx), vec![Outcome::Delivered]);
        assert_eq!(t.held_bytes(), 0, "written at QoS 0");

        let (g, _) = pack(1);
        t.submit(&mut out, &g, qos1, sized(&[100]), max);
        t.fail_all(Why::Closed);
        assert_eq!(t.held_bytes(), 0, "failed with the connection");
    }

    /// Messages waiting for the window go out each endpoint's in turn, a pack a turn, each
    /// endpoint's in order: an endpoint's backlog (five packs of four here, on a window of one)
    /// holds another endpoint's pack, which came after it, back by its pack in flight, not
    /// until the whole backlog is acknowledged. Before, in one queue, the other pack waited
    /// for all 20 messages, and on a slow broker reached the window only at its deadline.
    #[test]
    fn waiting_packs_take_the_window_each_endpoints_in_turn() {
        let (mut t, mut out) = one_at_a_time(1, "flood");
        let flood: Vec<_> = (0..5)
            .map(|_| {
                let (p, rx) = pack(4);
                t.submit(&mut out, &p, from_source(1), to_topic("flood", 4), 1000);
                rx
            })
            .collect();
        let (other, other_rx) = pack(2);
        t.submit(&mut out, &other, from_source(2), to_topic("other", 2), 1000);
        let mut acks = 0;
        while outcomes(&other_rx).is_empty() {
            assert!(acks <= 21, "the other endpoint's pack never went out");
            t.on_event(&mut out, &written(1));
            t.on_event(&mut out, &puback(1));
            acks += 1;
        }
        // In one queue: 22 (the flood's 20, then the other's two).
        assert_eq!(acks, 6, "after the flood's pack in flight");
        let topics: Vec<&str> = out.published[1..].iter().map(|(t, _, _)| &t[..]).collect();
        assert_eq!(
            topics,
            ["flood", "flood", "flood", "flood", "other", "other", "flood"]
        );
        // The flood's packs still go out whole, and in order.
        while t.outstanding() > 0 {
            t.on_event(&mut out, &written(1));
            t.on_event(&mut out, &puback(1));
        }
        for rx in &flood {
            assert_eq!(outcomes(rx), vec![Outcome::Delivered]);
        }
        let payloads: Vec<u8> = out.published[1..]
            .iter()
            .filter(|(t, _, _)| t == "flood")
            .map(|(_, _, p)| p[0])
            .collect();
        assert_eq!(payloads, (0..20).map(|i| i % 4).collect::<Vec<u8>>());
    }

    /// A message whose QoS's window is full holds no message of another QoS back, whosever
    /// turn it is: QoS 2 at its window (of one here) lets another endpoint's QoS 1 pack go at
    /// once, and QoS 1 at the whole window lets a QoS 0 pack go. Before, the first endpoint's
    /// turn held them until its next message could go.
    #[test]
    fn a_full_window_of_one_qos_holds_no_other_qos_back() {
        let (mut t, mut out) = connected_with(Window {
            acked: 2,
            exactly_once: 1,
            packet_ids: 2,
        });
        // Each endpoint's pack at its QoS, to a topic named for it: the QoS 2 one first.
        let mut submit = |qos: Qos, source: u64, topic: &str, n: usize| {
            let (p, rx) = pack(n);
            let how = PublishOptions {
                qos,
                ..from_source(source)
            };
            t.submit(&mut out, &p, how, to_topic(topic, n), 100);
            rx
        };
        let twice_rx = submit(Qos::ExactlyOnce, 1, "two", 2);
        let once_rx = submit(Qos::AtLeastOnce, 2, "one", 1);
        let fire_rx = submit(Qos::AtMostOnce, 3, "zero", 1);
        let topics = |out: &Recorder| -> Vec<String> {
            out.published.iter().map(|(t, _, _)| t.clone()).collect()
        };
        assert_eq!(topics(&out), ["two", "one", "zero"]);
        t.on_event(&mut out, &written(1));
        t.on_event(&mut out, &written(2));
        t.on_event(&mut out, &written(0));
        assert_eq!(outcomes(&fire_rx), vec![Outcome::Delivered]);
        t.on_event(&mut out, &puback(2));
        assert_eq!(outcomes(&once_rx), vec![Outcome::Delivered]);
        // The QoS 2 pack's second message waits for its window, then goes.
        assert_eq!(topics(&out).len(), 3);
        t.on_event(&mut out, &pubrec(1));
        t.on_event(&mut out, &pubcomp(1));
        assert_eq!(topics(&out), ["two", "one", "zero", "two"]);
        t.on_event(&mut out, &written(2));
        t.on_event(&mut out, &pubrec(2));
        t.on_event(&mut out, &pubcomp(2));
        assert_eq!(outcomes(&twice_rx), vec![Outcome::Delivered]);
    }

    /// One endpoint's packs hold at most half of either bound while they wait, beyond a first
    /// pack while it holds nothing: a device flooding packs while the broker is away leaves the
    /// other half to the rest, and gets its share back whichever way its messages leave.
    #[test]
    fn one_endpoint_holds_at_most_half_of_the_bounds() {
        let max = 10; // messages, so 40 KiB
                      // Disconnected: every message waits.
        let (mut t, mut out) = (Tracker::default(), Recorder::default());
        let (a, _) = pack(4);
        assert_eq!(
            t.submit(&mut out, &a, from_source(1), sized(&[1; 4]), max),
            None
        );
        let (b, b_rx) = pack(2);
        assert_eq!(
            t.submit(&mut out, &b, from_source(1), sized(&[1; 2]), max),
            Some(Crowded::Endpoint {
                messages: 4,
                bytes: 4,
                max
            })
        );
        assert_eq!(outcomes(&b_rx), vec![Outcome::ConnectionError]);
        let (c, _) = pack(1);
        assert_eq!(
            t.submit(&mut out, &c, from_source(1), sized(&[1]), max),
            None
        );
        // Another endpoint takes the rest, up to the connection's bound.
        let (d, d_rx) = pack(5);
        assert_eq!(
            t.submit(&mut out, &d, from_source(2), sized(&[1; 5]), max),
            None
        );
        assert!(outcomes(&d_rx).is_empty());
        let (e, _) = pack(1);
        assert_eq!(
            t.submit(&mut out, &e, from_source(3), sized(&[1]), max),
            Some(Crowded::Connection)
        );
        // Given back: endpoint 1 holds one message now.
        a.finish(Why::Expired);
        d.finish(Why::Expired);
        t.prune();
        let (f, f_rx) = pack(4);
        assert_eq!(
            t.submit(&mut out, &f, from_source(1), sized(&[1; 4]), max),
            None
        );
        assert!(outcomes(&f_rx).is_empty());
        c.finish(Why::Expired);
        f.finish(Why::Expired);
        t.prune();
        assert_eq!(t.outstanding(), 0);

        // Bytes: a first pack past half of them is taken, nothing more of its endpoint's.
        let big = PENDING_BYTES_PER_RECORD * 6;
        let (g, _) = pack(1);
        assert_eq!(
            t.submit(&mut out, &g, from_source(1), sized(&[big]), max),
            None
        );
        let (h, _) = pack(1);
        assert!(matches!(
            t.submit(&mut out, &h, from_source(1), sized(&[1]), max),
            Some(Crowded::Endpoint { messages: 1, .. })
        ));
        let (i, _) = pack(1);
        assert_eq!(
            t.submit(
                &mut out,
                &i,
                from_source(2),
                sized(&[PENDING_BYTES_PER_RECORD]),
                max
            ),
            None
        );
    }

    /// Kaa hands every pack to every appender, and appenders may share a connection: the
    /// first pack of an endpoint through each appender is taken, the same records the other
    /// appender holds notwithstanding (else the second copy of a pack over a quarter of the
    /// bound failed at every attempt), and the endpoint's share counts both.
    #[test]
    fn an_endpoints_first_pack_through_each_appender_is_taken() {
        let max = 10;
        let through = |appender| PublishOptions {
            origin: Origin {
                appender,
                endpoint: 1,
            },
            ..PublishOptions::from(Qos::AtLeastOnce)
        };
        let (mut t, mut out) = (Tracker::default(), Recorder::default());
        for appender in [1, 2] {
            let (p, rx) = pack(4);
            assert_eq!(
                t.submit(&mut out, &p, through(appender), sized(&[1; 4]), max),
                None
            );
            assert!(outcomes(&rx).is_empty(), "appender {appender}");
        }
        let (p, _) = pack(1);
        assert!(matches!(
            t.submit(&mut out, &p, through(1), sized(&[1]), max),
            Some(Crowded::Endpoint { messages: 8, .. })
        ));
    }

    /// The connection's own messages (the status message) have no share of the bound.
    #[test]
    fn the_connections_own_messages_have_no_share() {
        let (mut t, mut out) = (Tracker::default(), Recorder::default());
        for _ in 0..3 {
            let (p, rx) = pack(1);
            t.submit(&mut out, &p, Qos::AtLeastOnce.into(), sized(&[1]), 4);
            assert!(outcomes(&rx).is_empty());
        }
    }

    /// A message holds its topic and user properties too, and a record's fields can make the
    /// topic long: they count against the bound as its payload does.
    #[test]
    fn topics_and_user_properties_count_against_the_byte_bound() {
        let (mut t, mut out) = connected();
        let qos1 = PublishOptions::from(Qos::AtLeastOnce);
        let message = |topic: usize, label: usize| Message {
            topic: Arc::from("t".repeat(topic)),
            payload: vec![b'x'; 100],
            labels: vec![("k".to_string(), "v".repeat(label))],
        };
        // The topic twice: the client's copy and the tracker's.
        assert_eq!(message(10, 20).bytes(), 100 + 2 * 10 + 1 + 20);
        let fixed: Arc<str> = Arc::from("fixed/topic");
        let shared = Message {
            topic: Arc::clone(&fixed),
            payload: vec![b'x'; 100],
            labels: Vec::new(),
        };
        assert_eq!(
            shared.bytes(),
            100 + fixed.len(),
            "a fixed topic is shared: only the client's copy is per message"
        );
        let (a, a_rx) = pack(1);
        t.submit(
            &mut out,
            &a,
            qos1,
            vec![message(PENDING_BYTES_PER_RECORD, 0)],
            1,
        );
        assert_eq!(
            outcomes(&a_rx),
            vec![Outcome::ConnectionError],
            "a long topic"
        );
        let (b, b_rx) = pack(1);
        t.submit(
            &mut out,
            &b,
            qos1,
            vec![message(1, PENDING_BYTES_PER_RECORD)],
            1,
        );
        assert_eq!(
            outcomes(&b_rx),
            vec![Outcome::ConnectionError],
            "long properties"
        );
        let (c, c_rx) = pack(1);
        t.submit(&mut out, &c, qos1, vec![message(1, 1)], 1);
        assert!(
            outcomes(&c_rx).is_empty(),
            "within the bound: waits for its ack"
        );
        assert_eq!(t.held_bytes(), 100 + 2 + 1 + 1);
    }

    #[test]
    fn fail_all_answers_everything_once() {
        let (mut t, mut out) = connected();
        let (p, rx) = pack(2);
        t.submit(&mut out, &p, Qos::AtLeastOnce.into(), payloads(2), 100);
        t.on_event(&mut out, &written(1));
        t.fail_all(Why::Closed);
        assert_eq!(outcomes(&rx), vec![Outcome::InternalError]);
        assert_eq!(t.outstanding(), 0);
    }
}

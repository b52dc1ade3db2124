//! Topics a broker refused a message to, kept for a while on one connection so that packs to
//! them fail at once instead of being published again.
//!
//! An MQTT 5 broker says so with a reason code (not authorised, topic name invalid), and some
//! then close the connection: HiveMQ sends PUBACK 0x87 and then DISCONNECT 0x87, AWS IoT
//! likewise. Under MQTT 3.1.1 there is no reason code, and those brokers close the connection
//! at the publish without a word ([`SilentRefusals`] learns the topic from its closes). Each
//! pack an endpoint sends to a topic the broker's ACL denies then resets the connection every
//! appender of the node shares, and Kaa sends packs again. Remembering the topic makes that
//! one reset (two without a reason code) per topic and [`LIFE`], whatever the endpoint sends.
//! Where the broker keeps the connection (Mosquitto), it saves a round trip. An endpoint whose
//! records choose their topics could still make a new refused one at every pack: after
//! [`SOURCE_TOPICS`] of them its packs to topics the broker never took fail too; and after
//! new topics of [`UNTAKEN`] endpoints of one appender refused in a row (an ACL denying every
//! endpoint's topic), all its packs to new topics do, but a probe every [`PROBE_EVERY`]. One
//! endpoint alone cannot hold the others' packs so. A refusal is
//! kept with the QoS and retain flag it met: a broker may allow a topic at one and not the
//! other (AWS IoT refuses retained messages without `iot:RetainPublish`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Qos;
use crate::protocol::Origin;

/// How long a refusal holds. An ACL that denies a topic mostly stays so; one changed to allow
/// it lets packs through again within this. Kaa's endpoints send a refused log block again
/// after minutes, so most attempts in a misconfigured deployment meet the memory.
pub(crate) const LIFE: Duration = Duration::from_secs(300);

/// Bytes of topic text kept at most: endpoints choose what goes into a templated topic (up to
/// MQTT's 65,535 bytes each), and the memory must not grow with them. When full, the oldest
/// refusals go first.
const CAPACITY_BYTES: usize = 1 << 20;
/// Refusals kept at most, whatever their size.
const CAPACITY: usize = 4096;

type Key = (Arc<str>, Qos, bool);

/// Why a topic is refused that the broker closed the connection at twice without a reason
/// ([`SilentRefusals`]); what [`RefusedTopics::forget_closes`] forgets.
pub(crate) const CLOSED_AT_TWICE: &str =
    "closed the connection twice, without a reason, just after a message to it";
/// Why a topic is refused that the broker closed the connection at twice, once at least
/// saying it refused what it was sent (MQTT 5's "not authorized"), which another client taking
/// the id does not.
pub(crate) const CLOSED_REFUSING: &str = "closed the connection twice just after a message to it, \
     saying at least once that it refused what it was sent";

/// Topics one endpoint's records through one appender (one [`Origin`]) may have the broker
/// refuse, or close the connection at, each within [`LIFE`] of the last: then its packs to
/// topics the broker never took fail unpublished until [`LIFE`] has passed without another.
/// With a topic made of the records' fields (`{event.…}`) an endpoint chooses a new topic at
/// every pack, and every one the ACL denies would cost the shared connection a close.
pub(crate) const SOURCE_TOPICS: usize = 3;
/// Origins counted at most: when full, the one blamed longest ago goes. So are appenders.
const SOURCES: usize = 4096;

/// Endpoints of one appender whose topics the broker had not taken before it refused (or was
/// blamed for a close at) one after another, with no new topic of the appender taken between,
/// after which its packs to topics the broker never took fail unpublished, but one every
/// [`PROBE_EVERY`]. With an ACL that denies most topics a template makes (`{endpointKeyHash}`
/// under a prefix it denies), each endpoint's first pack would cost the shared connection a
/// close, and thousands of endpoints would keep it closing. Endpoints, not topics: one
/// endpoint's pack can carry as many new topics as records (`{event.…}`), all in flight
/// before the first refusal, and must not hold every other endpoint's packs.
pub(crate) const UNTAKEN: usize = 8;
/// How often a pack to a new topic goes out while they are held, at first: its answer tells
/// whether the broker takes new topics again. Each one refused (or blamed for a close) doubles
/// the time to the next, up to [`LIFE`]: under MQTT 3.1.1 each costs the shared connection a
/// close.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(10);

/// The distinct topics (hashes) of one origin refused or blamed, and when the last was.
#[derive(Debug)]
struct Source {
    topics: Vec<u64>,
    last: Instant,
}

/// The endpoints (hashes, [`UNTAKEN`] at most) whose new topics of one appender were refused
/// or blamed since the broker last took one of them, when the last was, when the last pack to a
/// new topic went out while they were held, and the time from it to the next.
#[derive(Debug)]
struct Untaken {
    endpoints: Vec<u64>,
    last: Instant,
    probed: Option<Instant>,
    probe_every: Duration,
}

/// Entries that each hold for [`LIFE`] from when they were last touched: once the latest has
/// expired they all have, and the map is emptied, so that a lookup costs nothing while
/// nothing is live (the usual case, checked at every pack).
#[derive(Debug)]
struct Lately<K, V> {
    map: HashMap<K, V>,
    latest: Option<Instant>,
}

impl<K, V> Default for Lately<K, V> {
    fn default() -> Self {
        Lately {
            map: HashMap::new(),
            latest: None,
        }
    }
}

impl<K, V> Lately<K, V> {
    /// An entry was added or renewed at `now`.
    fn touched(&mut self, now: Instant) {
        self.latest = Some(now);
    }

    /// Whether any entry may still be live at `now`; empties the map when none is.
    fn live(&mut self, now: Instant) -> bool {
        if self
            .latest
            .is_some_and(|at| now.saturating_duration_since(at) >= LIFE)
        {
            // Not `clear`, which keeps the room a storm of refusals made.
            self.map = HashMap::new();
            self.latest = None;
        }
        !self.map.is_empty()
    }
}

impl<K, V> std::ops::Deref for Lately<K, V> {
    type Target = HashMap<K, V>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<K, V> std::ops::DerefMut for Lately<K, V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

/// A topic refused: why, when, and whose packs to it fail.
#[derive(Debug)]
struct Refusal {
    reason: String,
    at: Instant,
    /// The one endpoint whose packs to it fail (hash): one endpoint's records were blamed at
    /// both closes that taught it, which other causes than the topic (their size) can explain.
    /// `None`: every endpoint's.
    only: Option<u64>,
}

/// The refused topics of one connection, with why and when, and the endpoints whose records
/// made them.
#[derive(Debug, Default)]
pub(crate) struct RefusedTopics {
    topics: Lately<Key, Refusal>,
    /// By origin ([`crate::protocol::PublishOptions::origin`]): topics refused or blamed.
    sources: Lately<Origin, Source>,
    hasher: RandomState,
    /// By appender ([`Origin::appender`]).
    untaken: Lately<u64, Untaken>,
}

/// What one more topic refused or blamed makes ([`RefusedTopics::count`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counted {
    /// Its origin is refused from now on ([`RefusedTopics::refuses_source`]).
    pub(crate) source_refused: bool,
    /// Its appender's packs to new topics are held from now on
    /// ([`RefusedTopics::holds_new_topics`]).
    pub(crate) new_topics_held: bool,
}

impl RefusedTopics {
    /// The broker refused a message to `topic`, at `qos` and `retain`, at `now`, for `reason`:
    /// every endpoint's, or `only` that endpoint's records' (the connection's own messages are
    /// no endpoint's). Whether that is news: the topic was not refused already to the packs it
    /// is now (a refusal of one endpoint's widens to every endpoint's with another's).
    pub(crate) fn note(
        &mut self,
        topic: &Arc<str>,
        (qos, retain): (Qos, bool),
        reason: &str,
        only: Option<Origin>,
        now: Instant,
    ) -> bool {
        self.topics
            .retain(|_, r| now.saturating_duration_since(r.at) < LIFE);
        let key = (Arc::clone(topic), qos, retain);
        let only = only.filter(|o| o.appender != 0).map(|o| o.endpoint);
        let news = if let Some(r) = self.topics.get_mut(&key) {
            r.at = now;
            let widens = r.only.is_some() && r.only != only;
            if widens {
                r.only = None;
                r.reason = reason.to_string();
            }
            widens
        } else {
            // Counted here, not kept: refusals are rare, and the memory small.
            let mut held: usize = self.topics.keys().map(|(t, _, _)| t.len()).sum();
            while held + topic.len() > CAPACITY_BYTES || self.topics.len() >= CAPACITY {
                let Some(oldest) = self
                    .topics
                    .iter()
                    .min_by_key(|(_, r)| r.at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                held -= oldest.0.len();
                self.topics.remove(&oldest);
            }
            let reason = reason.to_string();
            self.topics.insert(
                key,
                Refusal {
                    reason,
                    at: now,
                    only,
                },
            );
            true
        };
        self.topics.touched(now);
        news
    }

    /// Forgets the topics refused for closes without a reason ([`CLOSED_AT_TWICE`]), and what
    /// the topics refused or blamed counted against their endpoints and appenders (relearned
    /// at a refusal each): the closes were another client's, taking the id
    /// (`Tracker::on_taken_over`).
    pub(crate) fn forget_closes(&mut self) {
        self.topics.retain(|_, r| r.reason != CLOSED_AT_TWICE);
        self.sources.clear();
        self.untaken.clear();
    }

    /// Why the broker refused a message like this of `origin`'s records within [`LIFE`] of
    /// `now`, if it did. Costs nothing while no refusal is live.
    pub(crate) fn refuses(
        &mut self,
        topic: &Arc<str>,
        (qos, retain): (Qos, bool),
        origin: Origin,
        now: Instant,
    ) -> Option<&str> {
        self.refusal(topic, (qos, retain), now)
            .filter(|r| {
                r.only
                    .is_none_or(|e| origin.appender != 0 && origin.endpoint == e)
            })
            .map(|r| r.reason.as_str())
    }

    /// Whether messages like this are refused within [`LIFE`] of `now` to every endpoint's
    /// records ([`RefusedTopics::note`] widens one endpoint's refusal at another's).
    pub(crate) fn refuses_everyone(
        &mut self,
        topic: &Arc<str>,
        (qos, retain): (Qos, bool),
        now: Instant,
    ) -> bool {
        self.refusal(topic, (qos, retain), now)
            .is_some_and(|r| r.only.is_none())
    }

    /// The live refusal of messages like this, if any. Costs nothing while none is live.
    fn refusal(
        &mut self,
        topic: &Arc<str>,
        (qos, retain): (Qos, bool),
        now: Instant,
    ) -> Option<&Refusal> {
        if !self.topics.live(now) {
            return None;
        }
        self.topics
            .get(&(Arc::clone(topic), qos, retain))
            .filter(|r| now.saturating_duration_since(r.at) < LIFE)
    }

    /// `topic`, of `origin`'s records, was refused, or blamed for a close, at `now`: its
    /// endpoint one of its appender's [`UNTAKEN`] in a row, if not counted yet, and the topic
    /// one of the origin's [`SOURCE_TOPICS`] (the connection's own messages, appender 0, are not
    /// counted).
    pub(crate) fn count(&mut self, origin: Origin, topic: &str, now: Instant) -> Counted {
        if origin.appender == 0 {
            return Counted::default();
        }
        if !self.untaken.contains_key(&origin.appender) && self.untaken.len() >= SOURCES {
            self.untaken
                .retain(|_, u| now.saturating_duration_since(u.last) < LIFE);
        }
        let fresh = || Untaken {
            endpoints: Vec::new(),
            last: now,
            probed: None,
            probe_every: PROBE_EVERY,
        };
        self.untaken.touched(now);
        let untaken = self.untaken.entry(origin.appender).or_insert_with(fresh);
        if now.saturating_duration_since(untaken.last) >= LIFE {
            // A hold that expired starts its count again.
            *untaken = fresh();
        }
        let mut new_topics_held = false;
        if untaken.endpoints.len() >= UNTAKEN {
            // Held: a probe, refused.
            untaken.probe_every = (untaken.probe_every * 2).min(LIFE);
        } else if !untaken.endpoints.contains(&origin.endpoint) {
            untaken.endpoints.push(origin.endpoint);
            new_topics_held = untaken.endpoints.len() == UNTAKEN;
        }
        untaken.last = now;
        Counted {
            source_refused: self.blame_source(origin, topic, now),
            new_topics_held,
        }
    }

    /// The broker took a message of `appender` to a topic it had not taken before: its new
    /// topics are not held.
    pub(crate) fn new_topic_taken(&mut self, appender: u64) {
        if !self.untaken.is_empty() {
            self.untaken.remove(&appender);
        }
    }

    /// Whether `appender`'s packs to topics the broker never took are held at `now`: it refused
    /// (or closed the connection at) such topics of [`UNTAKEN`] of its endpoints in a row, the
    /// last within [`LIFE`]. Costs nothing while none is counted.
    pub(crate) fn holds_new_topics(&mut self, appender: u64, now: Instant) -> bool {
        self.untaken.live(now)
            && self.untaken.get(&appender).is_some_and(|u| {
                u.endpoints.len() >= UNTAKEN && now.saturating_duration_since(u.last) < LIFE
            })
    }

    /// While `appender`'s new topics are held, whether a pack to one may go out at `now` to
    /// find out whether the broker takes them again: one every [`PROBE_EVERY`], and less often
    /// after each refused.
    pub(crate) fn probe(&mut self, appender: u64, now: Instant) -> bool {
        let Some(untaken) = self.untaken.get_mut(&appender) else {
            return true;
        };
        if untaken
            .probed
            .is_some_and(|at| now.saturating_duration_since(at) < untaken.probe_every)
        {
            return false;
        }
        untaken.probed = Some(now);
        true
    }

    /// Whether that makes [`SOURCE_TOPICS`] distinct topics of `origin`: its packs are refused
    /// from now on.
    fn blame_source(&mut self, source: Origin, topic: &str, now: Instant) -> bool {
        self.sources
            .retain(|_, s| now.saturating_duration_since(s.last) < LIFE);
        if !self.sources.contains_key(&source) && self.sources.len() >= SOURCES {
            if let Some(oldest) = self
                .sources
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(id, _)| *id)
            {
                self.sources.remove(&oldest);
            }
        }
        let hash = self.hasher.hash_one(topic);
        self.sources.touched(now);
        let blamed = self.sources.entry(source).or_insert(Source {
            topics: Vec::new(),
            last: now,
        });
        blamed.last = now;
        if blamed.topics.len() < SOURCE_TOPICS && !blamed.topics.contains(&hash) {
            blamed.topics.push(hash);
            return blamed.topics.len() == SOURCE_TOPICS;
        }
        false
    }

    /// Whether `source`'s records had [`SOURCE_TOPICS`] topics refused or blamed, each within
    /// [`LIFE`] of the last, the last within [`LIFE`] of `now`. Costs nothing while no source
    /// is counted.
    pub(crate) fn refuses_source(&mut self, source: Origin, now: Instant) -> bool {
        self.sources.live(now)
            && self.sources.get(&source).is_some_and(|s| {
                s.topics.len() >= SOURCE_TOPICS && now.saturating_duration_since(s.last) < LIFE
            })
    }
}

/// Topics (their hashes: endpoints choose what templated topics hold) the broker took a message
/// to (acknowledged it, or, at QoS 0, kept the connection [`QUICK`] after it), at most: the
/// newer half, and the half before it. A topic forgotten can be blamed for a close again, and
/// counts against its source again.
const ALLOWED: usize = 65_536;

/// A close this soon after the suspect's write can be the broker's answer to it: it closes as
/// soon as it reads a denied publish. A close later is not blamed on it.
pub(crate) const QUICK: Duration = Duration::from_secs(2);

/// Suspects remembered: several endpoints may publish to denied topics, each sent again at its
/// own pace.
const SUSPECTS: usize = 8;

/// What a broker's closes without a word (MQTT 3.1.1), or refusing what it was sent without
/// naming a message (HiveMQ's MQTT 5 DISCONNECT after a denied QoS 0 publish), teach of the
/// topics it refuses, on one connection across its reconnects.
///
/// HiveMQ and AWS IoT close an MQTT 3.1.1 connection at a publish their ACL denies. So a close
/// is blamed on the first message written after the last one the broker acknowledged, not
/// acknowledged itself, to a topic the broker never acknowledged a message to, within
/// [`QUICK`] of its write (at QoS 0, which nothing acknowledges, the first written since, to
/// a topic not taken: the tracker's `Unanswered`); when the same topic is blamed at a later
/// close too, it is taken as refused. Any one close proves nothing: a broker restarting, or
/// another node taking the client id, closes the connection while messages are in flight. A
/// topic the broker took is never blamed, so a fixed topic that worked once never is; and a
/// close without a word is blamed on nothing on a connection the broker acknowledged no
/// message on, nor kept [`QUICK`] after its first QoS 0 message (the tracker's part; there an
/// MQTT 5 close whose reason went unread only refuses a suspect that a close saying "not
/// authorized" made, `TopicClose::Unheard`): one that closes every connection at once,
/// flapping or taken by another client with the id, is not answering what it was sent
/// (`connection::taken_over_by_another` tells the latter).
#[derive(Debug, Default)]
pub(crate) struct SilentRefusals {
    hasher: RandomState,
    allowed: HashSet<u64>,
    /// The half of [`ALLOWED`] before `allowed`: a topic acknowledged lately is known, however
    /// many new ones come.
    older: HashSet<u64>,
    /// The topic last added to `allowed`: a fixed topic is compared, not hashed, at each ack.
    last_allowed: Option<Key>,
    /// Topics blamed at earlier closes, and when; newest last.
    suspects: VecDeque<Suspect>,
}

/// What a close says of the topic it is blamed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicBlame {
    /// The broker may refuse it.
    Suspect,
    /// Blamed again: the broker most likely refuses it.
    Refused,
    /// Blamed again, both times on one endpoint's records: the broker most likely refuses it,
    /// or what that endpoint sends to it (a record over its packet size, for one); that
    /// endpoint's packs to it fail, the others' go on, until another endpoint's are blamed too.
    RefusedToOne,
}

impl SilentRefusals {
    /// A topic as the broker's ACL judges it: with the message's QoS and retain flag (AWS IoT
    /// refuses retained messages without `iot:RetainPublish`).
    fn hash(&self, topic: &str, qos: Qos, retain: bool) -> u64 {
        self.hasher.hash_one((topic, qos as u8, retain))
    }

    /// The broker acknowledged a message to `topic` at `qos` and `retain` (and refused none), or
    /// kept the connection [`QUICK`] after a QoS 0 one: it allows it. Whether that is news: the
    /// topic was not known to be allowed.
    pub(crate) fn allowed(&mut self, topic: &Arc<str>, qos: Qos, retain: bool) -> bool {
        if self.is_last_allowed(topic, qos, retain) {
            return false;
        }
        let hash = self.hash(topic, qos, retain);
        let news = !self.allowed.contains(&hash) && !self.older.contains(&hash);
        if self.allowed.len() >= ALLOWED / 2 {
            self.older = std::mem::take(&mut self.allowed);
        }
        self.allowed.insert(hash);
        self.suspects.retain(|s| s.hash != hash);
        self.last_allowed = Some((Arc::clone(topic), qos, retain));
        news
    }

    /// Whether `topic` is the one last allowed: asked at every ack and every QoS 0 message
    /// written, so a fixed topic is compared, not hashed.
    fn is_last_allowed(&self, topic: &str, qos: Qos, retain: bool) -> bool {
        self.last_allowed
            .as_ref()
            .is_some_and(|(t, q, r)| (*q, *r) == (qos, retain) && **t == *topic)
    }

    /// The closes were another client's (`Tracker::on_taken_over`): none is a suspect.
    pub(crate) fn forget_suspects(&mut self) {
        self.suspects.clear();
    }

    /// Whether the broker took a message to `topic` at `qos` and `retain`.
    pub(crate) fn is_allowed(&self, topic: &str, qos: Qos, retain: bool) -> bool {
        if self.is_last_allowed(topic, qos, retain) {
            return true;
        }
        let hash = self.hash(topic, qos, retain);
        self.allowed.contains(&hash) || self.older.contains(&hash)
    }

    /// Whether a close that said the broker refused what it was sent blamed `topic` (at its
    /// QoS and retain flag) within [`LIFE`] of `now`, and it is not refused yet.
    pub(crate) fn said_refused(
        &self,
        (topic, qos, retain): (&str, Qos, bool),
        now: Instant,
    ) -> bool {
        let hash = self.hash(topic, qos, retain);
        self.suspects
            .iter()
            .any(|s| s.hash == hash && s.refusing && s.lives(now))
    }

    /// The broker closed the connection at `now`, without a word or refusing what it was sent,
    /// with a message to `topic` (at its QoS and retain flag) written at `written` the first
    /// left unacknowledged after the last one it acknowledged, to a topic it never took
    /// ([`SilentRefusals::is_allowed`]), `refusing` when the close said so. Blamed when the
    /// close came within [`QUICK`] of the write; refused when the topic was blamed at an
    /// earlier close within [`LIFE`], to `origin`'s endpoint only when the earlier close was
    /// blamed on its records too.
    pub(crate) fn blame(
        &mut self,
        (topic, qos, retain): (&str, Qos, bool),
        (written, refusing, origin): (Instant, bool, Origin),
        now: Instant,
    ) -> Option<TopicBlame> {
        if now.saturating_duration_since(written) > QUICK {
            return None;
        }
        let hash = self.hash(topic, qos, retain);
        self.suspects.retain(|s| s.lives(now));
        if let Some(i) = self.suspects.iter().position(|s| s.hash == hash) {
            let earlier = self.suspects.remove(i)?;
            return Some(if earlier.origin.same_endpoint(origin) {
                TopicBlame::RefusedToOne
            } else {
                TopicBlame::Refused
            });
        }
        if self.suspects.len() == SUSPECTS {
            self.suspects.pop_front();
        }
        self.suspects.push_back(Suspect {
            hash,
            at: now,
            origin,
            refusing,
        });
        Some(TopicBlame::Suspect)
    }
}

/// A topic blamed at a close ([`SilentRefusals::blame`]).
#[derive(Debug)]
struct Suspect {
    hash: u64,
    at: Instant,
    /// Whose records the message blamed was.
    origin: Origin,
    /// The close said the broker refused what it was sent (MQTT 5's DISCONNECT "not
    /// authorized"), which neither a broker flapping nor another client taking the id says.
    refusing: bool,
}

impl Suspect {
    /// Whether it is still a suspect at `now`: blamed within [`LIFE`].
    fn lives(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.at) < LIFE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Qos = Qos::AtLeastOnce;

    fn topic(t: &str) -> Arc<str> {
        Arc::from(t)
    }

    #[test]
    fn a_refusal_holds_for_its_life_and_no_longer() {
        let mut r = RefusedTopics::default();
        let t0 = Instant::now();
        let denied = topic("denied/x");
        r.note(
            &denied,
            (Qos::AtLeastOnce, false),
            "reason 0x87, not authorized",
            None,
            t0,
        );
        let later = t0 + LIFE / 2;
        assert_eq!(
            r.refuses(&denied, (Qos::AtLeastOnce, false), Origin::default(), later),
            Some("reason 0x87, not authorized")
        );
        assert_eq!(
            r.refuses(
                &topic("allowed/x"),
                (Qos::AtLeastOnce, false),
                Origin::default(),
                later
            ),
            None
        );
        assert_eq!(
            r.refuses(
                &denied,
                (Qos::AtLeastOnce, false),
                Origin::default(),
                t0 + LIFE
            ),
            None
        );
        assert!(r.topics.is_empty(), "all expired: the memory is emptied");
    }

    /// A broker may refuse a topic retained and take it not retained, or at one QoS only.
    #[test]
    fn a_refusal_is_of_its_qos_and_retain_flag() {
        let mut r = RefusedTopics::default();
        let t0 = Instant::now();
        let t = topic("status/x");
        r.note(
            &t,
            (Qos::AtLeastOnce, true),
            "reason 0x87, not authorized",
            None,
            t0,
        );
        assert!(r
            .refuses(&t, (Qos::AtLeastOnce, true), Origin::default(), t0)
            .is_some());
        assert_eq!(
            r.refuses(&t, (Qos::AtLeastOnce, false), Origin::default(), t0),
            None
        );
        assert_eq!(
            r.refuses(&t, (Qos::ExactlyOnce, true), Origin::default(), t0),
            None
        );
    }

    #[test]
    fn endpoints_cannot_grow_it_past_its_bytes() {
        let mut r = RefusedTopics::default();
        let t0 = Instant::now();
        let long = |i: usize| topic(&format!("{i:0>65000}"));
        let fit = CAPACITY_BYTES / 65000;
        for i in 0..fit {
            r.note(
                &long(i),
                (Qos::AtLeastOnce, false),
                "reason 0x87, not authorized",
                None,
                t0 + Duration::from_millis(i as u64),
            );
        }
        let later = t0 + Duration::from_secs(1);
        r.note(
            &long(fit),
            (Qos::AtLeastOnce, false),
            "reason 0x87, not authorized",
            None,
            later,
        );
        assert!(r.topics.keys().map(|(t, _, _)| t.len()).sum::<usize>() <= CAPACITY_BYTES);
        assert_eq!(r.topics.len(), fit);
        assert_eq!(
            r.refuses(
                &long(0),
                (Qos::AtLeastOnce, false),
                Origin::default(),
                later
            ),
            None,
            "the oldest went"
        );
        assert!(r
            .refuses(
                &long(1),
                (Qos::AtLeastOnce, false),
                Origin::default(),
                later
            )
            .is_some());
        assert!(r
            .refuses(
                &long(fit),
                (Qos::AtLeastOnce, false),
                Origin::default(),
                later
            )
            .is_some());
    }

    #[test]
    fn the_same_topic_blamed_at_two_quick_closes_is_refused() {
        let mut s = SilentRefusals::default();
        let t0 = Instant::now();
        assert_eq!(
            s.blame(
                ("denied/x", Q, false),
                (t0, false, Origin::default()),
                t0 + Duration::from_millis(5)
            ),
            Some(TopicBlame::Suspect),
            "one close proves nothing"
        );
        assert_eq!(
            s.blame(
                ("other/y", Q, false),
                (t0, false, Origin::default()),
                t0 + Duration::from_millis(5)
            ),
            Some(TopicBlame::Suspect),
            "another topic is a suspect of its own"
        );
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(
            s.blame(
                ("denied/x", Q, false),
                (t1, false, Origin::default()),
                t1 + Duration::from_millis(5)
            ),
            Some(TopicBlame::Refused)
        );
    }

    /// A broker closes as soon as it reads a denied publish; a close long after the write
    /// (a broker restarting, another node taking the id) is not its answer to it.
    #[test]
    fn a_close_long_after_the_write_blames_nothing() {
        let mut s = SilentRefusals::default();
        let t0 = Instant::now();
        assert_eq!(
            s.blame(
                ("t", Q, false),
                (t0, false, Origin::default()),
                t0 + QUICK + Duration::from_millis(1)
            ),
            None
        );
        assert_eq!(
            s.blame(
                ("t", Q, false),
                (t0, false, Origin::default()),
                t0 + Duration::from_millis(1)
            ),
            Some(TopicBlame::Suspect)
        );
        assert_eq!(
            s.blame(
                ("t", Q, false),
                (t0, false, Origin::default()),
                t0 + QUICK * 2
            ),
            None,
            "nor teaches anything"
        );
    }

    /// An acknowledgement clears the suspicion, and a suspect too old is forgotten.
    #[test]
    fn an_ack_or_time_clears_a_suspect() {
        let mut s = SilentRefusals::default();
        let t0 = Instant::now();
        let t = topic("flaky/x");
        s.blame((&t, Q, false), (t0, false, Origin::default()), t0);
        s.allowed(&t, Q, false);
        assert!(s.is_allowed(&t, Q, false));
        assert!(!s.is_allowed("flaky/y", Q, false));
        assert!(!s.is_allowed(&t, Q, true), "not retained");
        assert_eq!(
            s.blame((&t, Q, false), (t0, false, Origin::default()), t0),
            Some(TopicBlame::Suspect)
        );
        let late = t0 + LIFE;
        assert_eq!(
            s.blame((&t, Q, false), (late, false, Origin::default()), late),
            Some(TopicBlame::Suspect)
        );
    }

    /// Endpoints choose templated topics: what is kept stays bounded whatever they send.
    #[test]
    fn endpoints_cannot_grow_what_it_keeps() {
        let mut s = SilentRefusals::default();
        let t0 = Instant::now();
        for i in 0..ALLOWED + 10 {
            s.allowed(&topic(&format!("e/{i}")), Q, false);
            s.blame(
                (&format!("d/{i}"), Q, false),
                (t0, false, Origin::default()),
                t0,
            );
        }
        assert!(s.allowed.len() + s.older.len() <= ALLOWED);
        assert!(
            s.is_allowed(&format!("e/{}", ALLOWED / 2 + 10), Q, false),
            "one of the half before is kept"
        );
        assert!(s.suspects.len() <= SUSPECTS);
        assert!(
            s.is_allowed(&format!("e/{}", ALLOWED + 9), Q, false),
            "the latest is kept"
        );
    }

    /// Two closes blamed on one endpoint's records refuse the topic to that endpoint only, and
    /// another endpoint's blamed widens the refusal to every endpoint.
    #[test]
    fn a_topic_blamed_on_one_endpoint_alone_is_refused_to_it_only() {
        let mut s = SilentRefusals::default();
        let t0 = Instant::now();
        let key = ("shared/x", Q, false);
        let blame = |s: &mut SilentRefusals, origin| s.blame(key, (t0, false, origin), t0);
        assert_eq!(blame(&mut s, o(1)), Some(TopicBlame::Suspect));
        assert_eq!(blame(&mut s, o(1)), Some(TopicBlame::RefusedToOne));
        assert_eq!(blame(&mut s, o(1)), Some(TopicBlame::Suspect));
        assert_eq!(blame(&mut s, o(2)), Some(TopicBlame::Refused));
        let mut r = RefusedTopics::default();
        let t = topic("shared/x");
        let how = (Q, false);
        assert!(r.note(&t, how, CLOSED_AT_TWICE, Some(o(1)), t0));
        assert!(r.refuses(&t, how, o(1), t0).is_some());
        assert_eq!(r.refuses(&t, how, o(2), t0), None);
        assert_eq!(
            r.refuses(&t, how, Origin::default(), t0),
            None,
            "the status"
        );
        assert!(!r.refuses_everyone(&t, how, t0));
        assert!(!r.note(&t, how, CLOSED_AT_TWICE, Some(o(1)), t0), "no news");
        assert!(r.note(&t, how, CLOSED_AT_TWICE, Some(o(2)), t0), "widened");
        assert!(r.refuses(&t, how, o(2), t0).is_some());
        assert!(r.refuses_everyone(&t, how, t0));
    }

    /// Endpoint `n`'s records through appender 1.
    fn o(n: u64) -> Origin {
        Origin {
            appender: 1,
            endpoint: n,
        }
    }

    /// An endpoint that had three distinct topics refused or blamed through one appender, each
    /// within the life of a refusal of the last, is refused for a while; a topic counted again
    /// is not another, and other endpoints, the same one through another appender, and the
    /// connection's own messages, are not refused.
    #[test]
    fn a_source_with_three_topics_refused_is_refused_for_a_while() {
        let mut r = RefusedTopics::default();
        let t0 = Instant::now();
        let later = t0 + LIFE / 2;
        let own = Origin::default();
        for (i, at) in [t0, later].into_iter().enumerate() {
            assert!(!r.count(o(7), &format!("d/{i}"), at).source_refused);
            assert!(
                !r.count(o(7), "d/0", at).source_refused,
                "d/0 again is no new topic"
            );
            assert!(!r.count(own, &format!("d/{i}"), at).source_refused);
            assert!(!r.refuses_source(o(7), at));
        }
        assert!(
            r.count(o(7), "d/2", later).source_refused,
            "the third topic"
        );
        let elsewhere = Origin {
            appender: 2,
            endpoint: 7,
        };
        assert!(!r.count(elsewhere, "d/2", later).source_refused);
        assert!(r.refuses_source(o(7), later));
        assert!(!r.refuses_source(o(8), later));
        assert!(!r.refuses_source(elsewhere, later));
        assert!(!r.refuses_source(own, later));
        assert!(!r.refuses_source(o(7), later + LIFE), "for a while");
        assert!(r.sources.is_empty(), "all expired: forgotten");
        assert!(
            !r.count(o(7), "d/3", later + LIFE).source_refused,
            "counted anew"
        );
    }

    #[test]
    fn endpoints_cannot_grow_the_sources_counted() {
        let mut r = RefusedTopics::default();
        let t0 = Instant::now();
        for source in 1..=(SOURCES as u64 + 10) {
            r.count(o(source), "d", t0 + Duration::from_millis(source));
        }
        assert_eq!(r.sources.len(), SOURCES);
        assert!(!r.sources.contains_key(&o(1)), "the oldest went");
    }

    /// New topics of eight endpoints of one appender refused in a row hold its packs to new
    /// topics, but one after ten seconds, and twice as long after each probe refused; a new
    /// topic of it taken lets them go again, and so does time. Another appender's are not held,
    /// and one endpoint's many topics (one pack's, in flight together) count once.
    #[test]
    fn new_topics_refused_in_a_row_hold_new_topics_but_a_probe() {
        let mut r = RefusedTopics::default();
        let t0 = Instant::now();
        for i in 0..20 {
            assert!(!r.count(o(1), &format!("one/{i}"), t0).new_topics_held);
        }
        assert!(!r.holds_new_topics(1, t0), "one endpoint's topics alone");
        for i in 2..UNTAKEN as u64 {
            assert!(!r.count(o(i), &format!("d/{i}"), t0).new_topics_held);
        }
        assert!(!r.holds_new_topics(1, t0));
        assert!(r.count(o(99), "d/99", t0).new_topics_held, "the eighth");
        assert!(r.holds_new_topics(1, t0));
        assert!(!r.holds_new_topics(2, t0), "another appender's");
        assert!(r.probe(1, t0), "one goes out at once");
        assert!(!r.probe(1, t0 + PROBE_EVERY / 2));
        let t1 = t0 + PROBE_EVERY;
        assert!(r.probe(1, t1));
        assert!(!r.count(o(98), "d/98", t1).new_topics_held, "told once");
        assert!(!r.probe(1, t1 + PROBE_EVERY), "refused: twice as long");
        assert!(r.probe(1, t1 + PROBE_EVERY * 2));
        assert!(!r.holds_new_topics(1, t1 + LIFE), "for a while");
        assert!(r.untaken.is_empty(), "all expired: forgotten");
        assert!(!r.count(o(97), "d/97", t1 + LIFE).new_topics_held);
        r.new_topic_taken(1);
        assert!(r.untaken.is_empty(), "a new topic taken");
    }
}

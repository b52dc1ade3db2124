//! Topics an MQTT 5 broker refused a message to (not authorised, topic name invalid), kept
//! for a while on one connection so that packs to them fail at once instead of being
//! published again.
//!
//! Some brokers close the connection after such a refusal: HiveMQ sends PUBACK 0x87 and then
//! DISCONNECT 0x87, AWS IoT likewise. Each pack an endpoint sends to a topic the broker's ACL
//! denies then resets the connection every appender of the node shares, and Kaa sends packs
//! again. Remembering the topic makes that one reset per topic and [`LIFE`], whatever the
//! endpoint sends. Where the broker keeps the connection (Mosquitto), it saves a round trip.
//! A refusal is kept with the QoS and retain flag it met: a broker may allow a topic at one
//! and not the other (AWS IoT refuses retained messages without `iot:RetainPublish`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Qos;

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

/// The refused topics of one connection, with why and when.
#[derive(Debug, Default)]
pub(crate) struct RefusedTopics {
    topics: HashMap<Key, (String, Instant)>,
    /// The latest refusal: once it has expired, they all have.
    latest: Option<Instant>,
}

impl RefusedTopics {
    /// The broker refused a message to `topic`, at `qos` and `retain`, at `now`, for `reason`.
    pub(crate) fn note(
        &mut self,
        topic: &Arc<str>,
        qos: Qos,
        retain: bool,
        reason: &str,
        now: Instant,
    ) {
        self.topics
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < LIFE);
        let key = (Arc::clone(topic), qos, retain);
        if let Some((_, at)) = self.topics.get_mut(&key) {
            *at = now;
        } else {
            // Counted here, not kept: refusals are rare, and the memory small.
            let mut held: usize = self.topics.keys().map(|(t, _, _)| t.len()).sum();
            while held + topic.len() > CAPACITY_BYTES || self.topics.len() >= CAPACITY {
                let Some(oldest) = self
                    .topics
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                held -= oldest.0.len();
                self.topics.remove(&oldest);
            }
            self.topics.insert(key, (reason.to_string(), now));
        }
        self.latest = Some(now);
    }

    /// Why the broker refused a message like this within [`LIFE`] of `now`, if it did. Costs
    /// nothing while no refusal is live.
    pub(crate) fn refuses(
        &mut self,
        topic: &Arc<str>,
        qos: Qos,
        retain: bool,
        now: Instant,
    ) -> Option<&str> {
        if self
            .latest
            .is_some_and(|at| now.saturating_duration_since(at) >= LIFE)
        {
            self.topics.clear();
            self.latest = None;
        }
        if self.topics.is_empty() {
            return None;
        }
        self.topics
            .get(&(Arc::clone(topic), qos, retain))
            .filter(|(_, at)| now.saturating_duration_since(*at) < LIFE)
            .map(|(reason, _)| reason.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(t: &str) -> Arc<str> {
        Arc::from(t)
    }

    #[test]
    fn a_refusal_holds_for_its_life_and_no_longer() {
        let mut r = RefusedTopics::default();
        let t0 = Instant::now();
        let denied = topic("denied/x");
        r.note(&denied, Qos::AtLeastOnce, false, "NotAuthorized", t0);
        let later = t0 + LIFE / 2;
        assert_eq!(
            r.refuses(&denied, Qos::AtLeastOnce, false, later),
            Some("NotAuthorized")
        );
        assert_eq!(
            r.refuses(&topic("allowed/x"), Qos::AtLeastOnce, false, later),
            None
        );
        assert_eq!(r.refuses(&denied, Qos::AtLeastOnce, false, t0 + LIFE), None);
        assert!(r.topics.is_empty(), "all expired: the memory is emptied");
    }

    /// A broker may refuse a topic retained and take it not retained, or at one QoS only.
    #[test]
    fn a_refusal_is_of_its_qos_and_retain_flag() {
        let mut r = RefusedTopics::default();
        let t0 = Instant::now();
        let t = topic("status/x");
        r.note(&t, Qos::AtLeastOnce, true, "NotAuthorized", t0);
        assert!(r.refuses(&t, Qos::AtLeastOnce, true, t0).is_some());
        assert_eq!(r.refuses(&t, Qos::AtLeastOnce, false, t0), None);
        assert_eq!(r.refuses(&t, Qos::ExactlyOnce, true, t0), None);
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
                Qos::AtLeastOnce,
                false,
                "NotAuthorized",
                t0 + Duration::from_millis(i as u64),
            );
        }
        let later = t0 + Duration::from_secs(1);
        r.note(&long(fit), Qos::AtLeastOnce, false, "NotAuthorized", later);
        assert!(r.topics.keys().map(|(t, _, _)| t.len()).sum::<usize>() <= CAPACITY_BYTES);
        assert_eq!(r.topics.len(), fit);
        assert_eq!(
            r.refuses(&long(0), Qos::AtLeastOnce, false, later),
            None,
            "the oldest went"
        );
        assert!(r
            .refuses(&long(1), Qos::AtLeastOnce, false, later)
            .is_some());
        assert!(r
            .refuses(&long(fit), Qos::AtLeastOnce, false, later)
            .is_some());
    }
}

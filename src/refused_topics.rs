//! Topics an MQTT 5 broker refused a message to (not authorised, topic name invalid), kept
//! for a while on one connection so that packs to them fail at once instead of being
//! published again.
//!
//! Some brokers close the connection after such a refusal: HiveMQ sends PUBACK 0x87 and then
//! DISCONNECT 0x87, AWS IoT likewise. Each pack an endpoint sends to a topic the broker's ACL
//! denies then resets the connection every appender of the node shares, and Kaa sends packs
//! again. Remembering the topic makes that one reset per topic and [`LIFE`], whatever the
//! endpoint sends. Where the broker keeps the connection (Mosquitto), it saves a round trip.
//! A topic made from records (a template) is one per endpoint, so an endpoint's own topic
//! refused does not hold back another's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a refusal holds. An ACL that denies a topic mostly stays so; one changed to allow
/// it lets packs through again within this. Kaa's endpoints send a refused log block again
/// after minutes, so most attempts in a misconfigured deployment meet the memory.
pub(crate) const LIFE: Duration = Duration::from_secs(300);

/// Topics remembered at most: endpoints choose what goes into a templated topic, and the
/// memory must not grow with them. When full, expired ones go first, then the oldest.
const CAPACITY: usize = 1024;

/// The refused topics of one connection, with why and when.
#[derive(Debug, Default)]
pub(crate) struct RefusedTopics {
    topics: HashMap<Arc<str>, (String, Instant)>,
}

impl RefusedTopics {
    /// The broker refused a message to `topic` at `now`, for `reason`.
    pub(crate) fn note(&mut self, topic: &Arc<str>, reason: &str, now: Instant) {
        if self.topics.len() >= CAPACITY && !self.topics.contains_key(topic) {
            self.topics
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < LIFE);
            if self.topics.len() >= CAPACITY {
                if let Some(oldest) = self
                    .topics
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(t, _)| Arc::clone(t))
                {
                    self.topics.remove(&oldest);
                }
            }
        }
        self.topics
            .insert(Arc::clone(topic), (reason.to_string(), now));
    }

    /// Why the broker refused `topic` within [`LIFE`] of `now`, if it did.
    pub(crate) fn refuses(&self, topic: &str, now: Instant) -> Option<&str> {
        self.topics
            .get(topic)
            .filter(|(_, at)| now.saturating_duration_since(*at) < LIFE)
            .map(|(reason, _)| reason.as_str())
    }

    /// How many topics it holds, expired ones included until they are pushed out.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.topics.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_holds_for_its_life_and_no_longer() {
        let mut r = RefusedTopics::default();
        let t0 = Instant::now();
        let denied: Arc<str> = "denied/x".into();
        r.note(&denied, "NotAuthorized", t0);
        assert_eq!(r.refuses("denied/x", t0 + LIFE / 2), Some("NotAuthorized"));
        assert_eq!(r.refuses("allowed/x", t0), None);
        assert_eq!(r.refuses("denied/x", t0 + LIFE), None);
    }

    #[test]
    fn endpoints_cannot_grow_it_past_its_capacity() {
        let mut r = RefusedTopics::default();
        let t0 = Instant::now();
        for i in 0..CAPACITY {
            r.note(
                &format!("t/{i}").into(),
                "NotAuthorized",
                t0 + Duration::from_millis(i as u64),
            );
        }
        let later = t0 + Duration::from_secs(1);
        r.note(&"t/new".into(), "NotAuthorized", later);
        assert_eq!(r.len(), CAPACITY);
        assert_eq!(r.refuses("t/0", later), None, "the oldest went");
        assert!(r.refuses("t/1", later).is_some());
        assert!(r.refuses("t/new", later).is_some());
        // Once they have expired, they all go at the next new topic.
        let expired = t0 + LIFE + Duration::from_secs(2);
        r.note(&"t/newer".into(), "NotAuthorized", expired);
        assert_eq!(r.len(), 1);
    }
}

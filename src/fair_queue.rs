//! A queue that takes its items from each key in turn, each key's in the order they came: a
//! turn takes one batch (the items queued together), up to [`TURN`] of them.
//!
//! The messages waiting for a connection's window wait in one of these, keyed by endpoint, a
//! pack's messages one batch: endpoints are untrusted, and in one first-in-first-out queue an
//! endpoint uploading without pause (up to half of `maxPendingRecords`) held every other
//! endpoint's packs behind its own, so that on a broker slower than that backlog over
//! `deliveryTimeoutSeconds` every other pack reached the window only at its deadline and
//! failed. Turns of one message each would make packs that wait together finish together, so
//! that on such a broker all of them miss their deadline where only the last would have; a
//! turn of one pack lets the first finish first.

use std::collections::{HashMap, VecDeque};

/// The most items one turn takes: a larger pack holds the others back no longer than that
/// (as many messages as may wait unwritten in the MQTT client), and smaller packs go out
/// whole.
pub const TURN: usize = crate::delivery::UNWRITTEN;

/// Keys queued at most before the queue gives back the memory they took once it empties
/// (a burst of many endpoints' packs).
const KEPT_KEYS: usize = 1024;

pub struct FairQueue<T> {
    /// Each key's items, with the batch each came in; a key leaves with its last item.
    queues: HashMap<u64, VecDeque<(u64, T)>>,
    /// The keys with items, the one whose turn it is first.
    turns: VecDeque<u64>,
    /// Items taken in the current turn.
    taken: usize,
    /// The number of the next batch.
    batch: u64,
    len: usize,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        FairQueue {
            queues: HashMap::new(),
            turns: VecDeque::new(),
            taken: 0,
            batch: 0,
            len: 0,
        }
    }
}

impl<T> FairQueue<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `items`, one batch, behind `key`'s earlier ones; a key new to the queue takes its
    /// turn last.
    pub fn extend(&mut self, key: u64, items: impl IntoIterator<Item = T>) {
        let batch = self.batch;
        self.batch += 1;
        let queue = self.queues.entry(key).or_default();
        let before = queue.len();
        queue.extend(items.into_iter().map(|item| (batch, item)));
        self.len += queue.len() - before;
        if before == 0 && !queue.is_empty() {
            self.turns.push_back(key);
        } else if queue.is_empty() {
            self.queues.remove(&key);
        }
    }

    /// The item whose turn it is.
    pub fn front(&self) -> Option<&T> {
        let key = self.turns.front()?;
        self.queues.get(key)?.front().map(|(_, item)| item)
    }

    /// Takes the item whose turn it is. The turn stays with its key while the key's next item
    /// is of the same batch, up to [`TURN`] items; then that key waits for every other key's.
    pub fn pop_front(&mut self) -> Option<T> {
        let key = *self.turns.front()?;
        let queue = self.queues.get_mut(&key)?;
        let (batch, item) = queue.pop_front()?;
        self.len -= 1;
        self.taken += 1;
        match queue.front() {
            None => {
                self.queues.remove(&key);
                self.turns.pop_front();
                self.taken = 0;
                self.give_back_memory();
            }
            Some(&(next, _)) if next == batch && self.taken < TURN => {}
            Some(_) => {
                self.turns.rotate_left(1);
                self.taken = 0;
            }
        }
        Some(item)
    }

    /// Every item, key by key (each key's in order): the items of one batch are next to each
    /// other.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.turns.iter().flat_map(|k| {
            self.queues
                .get(k)
                .into_iter()
                .flatten()
                .map(|(_, item)| item)
        })
    }

    /// Takes every item, key by key.
    pub fn drain(&mut self) -> impl Iterator<Item = T> {
        self.len = 0;
        self.taken = 0;
        let mut queues = std::mem::take(&mut self.queues);
        std::mem::take(&mut self.turns)
            .into_iter()
            .flat_map(move |k| {
                queues
                    .remove(&k)
                    .into_iter()
                    .flatten()
                    .map(|(_, item)| item)
            })
    }

    /// Keeps the items `keep` says to, in their order and turns. A turn whose batch is gone
    /// ends: the key's next batch waits for the other keys.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let turn = self.turn();
        for queue in self.queues.values_mut() {
            queue.retain(|(_, item)| keep(item));
        }
        self.queues.retain(|_, q| !q.is_empty());
        let queues = &self.queues;
        self.turns.retain(|k| queues.contains_key(k));
        self.len = self.queues.values().map(VecDeque::len).sum();
        match (turn, self.turn()) {
            (before, after) if before == after => {}
            (Some((was, _)), Some((key, _))) if was == key && self.taken > 0 => {
                self.turns.rotate_left(1);
                self.taken = 0;
            }
            _ => self.taken = 0,
        }
        self.give_back_memory();
    }

    /// The key whose turn it is, and the batch of its next item.
    fn turn(&self) -> Option<(u64, u64)> {
        let key = *self.turns.front()?;
        Some((key, self.queues.get(&key)?.front()?.0))
    }

    /// Empty after a burst of many keys: the memory they took goes back.
    fn give_back_memory(&mut self) {
        if self.len == 0 && self.queues.capacity() > KEPT_KEYS {
            self.queues.shrink_to_fit();
            self.turns.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(q: &mut FairQueue<(u64, u32)>) -> Vec<(u64, u32)> {
        std::iter::from_fn(|| q.pop_front()).collect()
    }

    /// Each key takes a turn of one batch, the keys in the order they came, each key's items in
    /// order; a key that comes back after it left waits for the keys already waiting.
    #[test]
    fn keys_take_turns_of_a_batch_each_in_order() {
        let mut q = FairQueue::default();
        q.extend(7, (0..4).map(|i| (7, i)));
        q.extend(3, (0..2).map(|i| (3, i)));
        q.extend(7, [(7, 4)]);
        q.extend(5, [(5, 0)]);
        q.extend(9, []);
        q.extend(3, []);
        assert_eq!(q.len(), 8);
        assert_eq!(q.front(), Some(&(7, 0)));
        let expected = [
            (7, 0),
            (7, 1),
            (7, 2),
            (7, 3),
            (3, 0),
            (3, 1),
            (5, 0),
            (7, 4),
        ];
        assert_eq!(taken(&mut q), expected);
        assert!(q.is_empty());
        assert_eq!(q.front(), None);
        q.extend(3, [(3, 2)]);
        q.extend(7, [(7, 5)]);
        q.extend(7, [(7, 6)]);
        assert_eq!(q.pop_front(), Some((3, 2)));
        q.extend(3, [(3, 3)]);
        assert_eq!(taken(&mut q), [(7, 5), (3, 3), (7, 6)]);
    }

    /// A batch larger than [`TURN`] gives the turn away after that many items.
    #[test]
    fn a_turn_takes_at_most_turn_items() {
        let mut q = FairQueue::default();
        let big = TURN as u32 + 10;
        q.extend(1, (0..big).map(|i| (1, i)));
        q.extend(2, [(2, 0)]);
        let order = taken(&mut q);
        assert_eq!(order[TURN], (2, 0));
        assert_eq!(order.len(), TURN + 11);
        assert!(order[..TURN]
            .iter()
            .chain(&order[TURN + 1..])
            .all(|&(k, _)| k == 1));
    }

    /// Each turn counts its own items: after a turn of [`TURN`], the next key's turn takes as
    /// many.
    #[test]
    fn each_turn_takes_turn_items_afresh() {
        let mut q = FairQueue::default();
        let big = TURN as u32 + 10;
        q.extend(1, (0..big).map(|i| (1, i)));
        q.extend(2, (0..big).map(|i| (2, i)));
        let keys: Vec<u64> = taken(&mut q).into_iter().map(|(k, _)| k).collect();
        let runs: Vec<(u64, usize)> = keys
            .chunk_by(|a, b| a == b)
            .map(|r| (r[0], r.len()))
            .collect();
        assert_eq!(runs, [(1, TURN), (2, TURN), (1, 10), (2, 10)]);
    }

    /// A turn whose batch `retain` removed ends there: the key's next batch waits for the
    /// other keys (a pack answered at its deadline while its messages went out).
    #[test]
    fn a_turn_ends_with_its_batch_removed() {
        let mut q = FairQueue::default();
        q.extend(1, [(1, 0), (1, 1), (1, 2)]);
        q.extend(1, [(1, 10), (1, 11)]);
        q.extend(2, [(2, 0)]);
        assert_eq!(q.pop_front(), Some((1, 0)));
        q.retain(|&(k, i)| k != 1 || i >= 10);
        assert_eq!(q.front(), Some(&(2, 0)));
        assert_eq!(taken(&mut q), [(2, 0), (1, 10), (1, 11)]);
        // Items removed from a turn whose batch goes on leave it going.
        q.extend(1, [(1, 20), (1, 21), (1, 22)]);
        q.extend(2, [(2, 1)]);
        assert_eq!(q.pop_front(), Some((1, 20)));
        q.retain(|&(_, i)| i != 21);
        assert_eq!(taken(&mut q), [(1, 22), (2, 1)]);
    }

    /// `iter` and `drain` give each key's items together; `retain` keeps order and turns.
    #[test]
    fn iter_drain_and_retain_keep_each_keys_items_together() {
        let mut q = FairQueue::default();
        q.extend(1, [(1, 0), (1, 1)]);
        q.extend(2, [(2, 0), (2, 1), (2, 2)]);
        q.extend(3, [(3, 0)]);
        let all: Vec<_> = q.iter().copied().collect();
        assert_eq!(all, [(1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (3, 0)]);
        q.retain(|&(k, i)| k != 1 && i != 1);
        assert_eq!(q.len(), 3);
        assert_eq!(q.front(), Some(&(2, 0)));
        q.extend(1, [(1, 2)]);
        let drained: Vec<_> = q.drain().collect();
        assert_eq!(drained, [(2, 0), (2, 2), (3, 0), (1, 2)]);
        assert!(q.is_empty());
        assert_eq!(q.pop_front(), None);
        q.extend(4, [(4, 0)]);
        assert_eq!(taken(&mut q), [(4, 0)]);
    }
}

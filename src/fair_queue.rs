//! A queue that takes its items from each key in turn, each key's items in the order they came.
//!
//! The messages waiting for a connection's window wait in one of these, keyed by endpoint:
//! endpoints are untrusted, and in one first-in-first-out queue an endpoint uploading without
//! pause (up to half of `maxPendingRecords`) held every other endpoint's packs behind its own,
//! so that on a broker slower than that backlog over `deliveryTimeoutSeconds` every other
//! pack reached the window only at its deadline and failed.

use std::collections::{HashMap, VecDeque};

pub struct FairQueue<T> {
    /// Each key's items; a key leaves with its last item.
    queues: HashMap<u64, VecDeque<T>>,
    /// The keys with items, the next to give one first.
    turns: VecDeque<u64>,
    len: usize,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        FairQueue {
            queues: HashMap::new(),
            turns: VecDeque::new(),
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

    /// Queues `items` behind `key`'s earlier ones; a key new to the queue takes its turn last.
    pub fn extend(&mut self, key: u64, items: impl IntoIterator<Item = T>) {
        let queue = self.queues.entry(key).or_default();
        let was_empty = queue.is_empty();
        let before = queue.len();
        queue.extend(items);
        self.len += queue.len() - before;
        if was_empty && !queue.is_empty() {
            self.turns.push_back(key);
        } else if queue.is_empty() {
            self.queues.remove(&key);
        }
    }

    /// The item whose turn it is.
    pub fn front(&self) -> Option<&T> {
        self.turns.front().and_then(|k| self.queues.get(k)?.front())
    }

    /// Takes the item whose turn it is; its key's next item waits for every other key's.
    pub fn pop_front(&mut self) -> Option<T> {
        let key = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&key)?;
        let item = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&key);
        } else {
            self.turns.push_back(key);
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// Every item, key by key (each key's in order): the items of one key that came together
    /// are next to each other.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.turns
            .iter()
            .flat_map(|k| self.queues.get(k).into_iter().flatten())
    }

    /// Takes every item, key by key.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.len = 0;
        let mut queues = std::mem::take(&mut self.queues);
        self.turns
            .drain(..)
            .flat_map(move |k| queues.remove(&k).into_iter().flatten())
    }

    /// Keeps the items `keep` says to, in their order and turns.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for queue in self.queues.values_mut() {
            queue.retain(&mut keep);
        }
        self.queues.retain(|_, q| !q.is_empty());
        let queues = &self.queues;
        self.turns.retain(|k| queues.contains_key(k));
        self.len = self.queues.values().map(VecDeque::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(q: &mut FairQueue<(u64, u32)>) -> Vec<(u64, u32)> {
        std::iter::from_fn(|| q.pop_front()).collect()
    }

    /// Each key gives one item in turn, in the order the keys came, each key's in its order.
    #[test]
    fn keys_take_turns_and_each_keeps_its_order() {
        let mut q = FairQueue::default();
        q.extend(7, (0..4).map(|i| (7, i)));
        q.extend(3, (0..2).map(|i| (3, i)));
        q.extend(7, [(7, 4)]);
        q.extend(5, [(5, 0)]);
        q.extend(9, []);
        assert_eq!(q.len(), 8);
        assert_eq!(q.front(), Some(&(7, 0)));
        let expected = [
            (7, 0),
            (3, 0),
            (5, 0),
            (7, 1),
            (3, 1),
            (7, 2),
            (7, 3),
            (7, 4),
        ];
        assert_eq!(taken(&mut q), expected);
        assert!(q.is_empty());
        assert_eq!(q.front(), None);
        // A key that comes back after it left takes its turn after the keys waiting.
        q.extend(3, [(3, 2)]);
        q.extend(7, [(7, 5), (7, 6)]);
        assert_eq!(q.pop_front(), Some((3, 2)));
        q.extend(3, [(3, 3)]);
        assert_eq!(taken(&mut q), [(7, 5), (3, 3), (7, 6)]);
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

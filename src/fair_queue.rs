//! A queue that takes its items from each key in turn, each key's in the order they came: a
//! turn takes one batch (the items queued together), up to [`TURN`] of them. Items are of a
//! class too, and a class that cannot go now does not hold another's back.
//!
//! The messages waiting for a connection's window wait in one of these, keyed by endpoint, a
//! pack's messages one batch: endpoints are untrusted, and in one first-in-first-out queue an
//! endpoint uploading without pause (up to half of `maxPendingRecords`) held every other
//! endpoint's packs behind its own, so that on a broker slower than that backlog over
//! `deliveryTimeoutSeconds` every other pack reached the window only at its deadline and
//! failed. Turns of one message each would make packs that wait together finish together, so
//! that on such a broker all of them miss their deadline where only the last would have; a
//! turn of one pack lets the first finish first. The class is the message's QoS, each with its
//! own window: a QoS 2 message at a full QoS 2 window held the QoS 0 and 1 messages of every
//! endpoint whose turn came after it.

use std::collections::{HashMap, VecDeque};

/// The most items one turn takes: a larger pack holds the others back no longer than that
/// (as many messages as may wait unwritten in the MQTT client), and smaller packs go out
/// whole.
pub const TURN: usize = crate::delivery::UNWRITTEN;

/// Keys queued at most before the queue gives back the memory they took once it empties
/// (a burst of many endpoints' packs).
const KEPT_KEYS: usize = 1024;

/// `N` classes of items, each taking its keys in turn; of the classes whose next item may
/// go, the one whose turn came first goes. (By the item's arrival instead, a key's items of
/// one class would wait for all of an older backlog of another's.)
pub struct FairQueue<T, const N: usize> {
    classes: [Turns<T>; N],
    /// Numbers batches and turns, in the order they come.
    clock: u64,
}

impl<T, const N: usize> Default for FairQueue<T, N> {
    fn default() -> Self {
        FairQueue {
            classes: std::array::from_fn(|_| Turns::default()),
            clock: 0,
        }
    }
}

/// The next number of `clock`.
fn tick(clock: &mut u64) -> u64 {
    *clock += 1;
    *clock
}

impl<T, const N: usize> FairQueue<T, N> {
    pub fn len(&self) -> usize {
        self.classes.iter().map(|c| c.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.iter().all(|c| c.len == 0)
    }

    /// Whether items of `class` wait.
    pub fn has(&self, class: usize) -> bool {
        self.classes[class].len > 0
    }

    /// Queues `items`, one batch of class `class`, behind `key`'s earlier ones of that class;
    /// a key new to the class takes its turn last.
    pub fn extend(&mut self, key: u64, class: usize, items: impl IntoIterator<Item = T>) {
        let batch = tick(&mut self.clock);
        self.classes[class].extend(key, batch, items, &mut self.clock);
    }

    /// Takes the next item of a class whose next item `may_go`, the one whose turn came first.
    pub fn pop_where(&mut self, may_go: impl Fn(&T) -> bool) -> Option<T> {
        let (_, class) = (self.classes.iter().enumerate())
            .filter(|(_, c)| c.len > 0)
            .filter_map(|(i, c)| {
                c.front()
                    .filter(|(_, item)| may_go(item))
                    .map(|(turn, _)| (turn, i))
            })
            .min()?;
        self.classes[class].pop_front(&mut self.clock)
    }

    /// Every item, class by class, key by key (each key's in order): the items of one batch
    /// are next to each other.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.classes.iter().flat_map(Turns::iter)
    }

    /// Every item, mutably, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.classes
            .iter_mut()
            .flat_map(|c| c.queues.values_mut().flatten().map(|(_, item)| item))
    }

    /// Takes every item, class by class, key by key.
    pub fn drain(&mut self) -> impl Iterator<Item = T> {
        let classes =
            std::mem::replace(&mut self.classes, std::array::from_fn(|_| Turns::default()));
        classes.into_iter().flat_map(Turns::into_items)
    }

    /// Keeps the items `keep` says to, in their order and turns. A turn whose batch is gone
    /// ends: the key's next batch waits for the other keys.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for class in &mut self.classes {
            class.retain(&mut keep, &mut self.clock);
        }
    }
}

/// One class's items, its keys in turn.
struct Turns<T> {
    /// Each key's items, with the batch each came in; a key leaves with its last item.
    queues: HashMap<u64, VecDeque<(u64, T)>>,
    /// The keys with items, the one whose turn it is first, each with when it joined the
    /// line ([`tick`]).
    turns: VecDeque<(u64, u64)>,
    /// Items taken in the current turn.
    taken: usize,
    len: usize,
}

impl<T> Default for Turns<T> {
    fn default() -> Self {
        Turns {
            queues: HashMap::new(),
            turns: VecDeque::new(),
            taken: 0,
            len: 0,
        }
    }
}

impl<T> Turns<T> {
    fn extend(
        &mut self,
        key: u64,
        batch: u64,
        items: impl IntoIterator<Item = T>,
        clock: &mut u64,
    ) {
        let queue = self.queues.entry(key).or_default();
        let before = queue.len();
        queue.extend(items.into_iter().map(|item| (batch, item)));
        self.len += queue.len() - before;
        if before == 0 && !queue.is_empty() {
            self.turns.push_back((key, tick(clock)));
        } else if queue.is_empty() {
            self.queues.remove(&key);
        }
    }

    /// The item whose turn it is, with when its key joined the line.
    fn front(&self) -> Option<(u64, &T)> {
        let &(key, since) = self.turns.front()?;
        self.queues
            .get(&key)?
            .front()
            .map(|(_, item)| (since, item))
    }

    /// The key whose turn it is goes to the back of the line.
    fn next_turn(&mut self, clock: &mut u64) {
        if let Some((key, _)) = self.turns.pop_front() {
            self.turns.push_back((key, tick(clock)));
        }
        self.taken = 0;
    }

    /// Takes the item whose turn it is. The turn stays with its key while the key's next item
    /// is of the same batch, up to [`TURN`] items; then that key waits for every other key's.
    fn pop_front(&mut self, clock: &mut u64) -> Option<T> {
        let (key, _) = *self.turns.front()?;
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
            Some(_) => self.next_turn(clock),
        }
        Some(item)
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.turns.iter().flat_map(|(k, _)| {
            self.queues
                .get(k)
                .into_iter()
                .flatten()
                .map(|(_, item)| item)
        })
    }

    fn into_items(self) -> impl Iterator<Item = T> {
        let mut queues = self.queues;
        self.turns.into_iter().flat_map(move |(k, _)| {
            queues
                .remove(&k)
                .into_iter()
                .flatten()
                .map(|(_, item)| item)
        })
    }

    fn retain(&mut self, mut keep: impl FnMut(&T) -> bool, clock: &mut u64) {
        let turn = self.turn();
        for queue in self.queues.values_mut() {
            queue.retain(|(_, item)| keep(item));
        }
        self.queues.retain(|_, q| !q.is_empty());
        let queues = &self.queues;
        self.turns.retain(|(k, _)| queues.contains_key(k));
        self.len = self.queues.values().map(VecDeque::len).sum();
        match (turn, self.turn()) {
            (before, after) if before == after => {}
            (Some((was, _)), Some((key, _))) if was == key && self.taken > 0 => {
                self.next_turn(clock)
            }
            _ => self.taken = 0,
        }
        self.give_back_memory();
    }

    /// The key whose turn it is, and the batch of its next item.
    fn turn(&self) -> Option<(u64, u64)> {
        let (key, _) = *self.turns.front()?;
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

    /// One class: the turns alone.
    type Queue = FairQueue<(u64, u32), 1>;

    fn put(q: &mut Queue, key: u64, items: impl IntoIterator<Item = (u64, u32)>) {
        q.extend(key, 0, items);
    }

    fn next(q: &mut Queue) -> Option<(u64, u32)> {
        q.pop_where(|_| true)
    }

    fn taken(q: &mut Queue) -> Vec<(u64, u32)> {
        std::iter::from_fn(|| next(q)).collect()
    }

    /// Each key takes a turn of one batch, the keys in the order they came, each key's items in
    /// order; a key that comes back after it left waits for the keys already waiting.
    #[test]
    fn keys_take_turns_of_a_batch_each_in_order() {
        let mut q = Queue::default();
        put(&mut q, 7, (0..4).map(|i| (7, i)));
        put(&mut q, 3, (0..2).map(|i| (3, i)));
        put(&mut q, 7, [(7, 4)]);
        put(&mut q, 5, [(5, 0)]);
        put(&mut q, 9, []);
        put(&mut q, 3, []);
        assert_eq!(q.len(), 8);
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
        assert_eq!(next(&mut q), None);
        put(&mut q, 3, [(3, 2)]);
        put(&mut q, 7, [(7, 5)]);
        put(&mut q, 7, [(7, 6)]);
        assert_eq!(next(&mut q), Some((3, 2)));
        put(&mut q, 3, [(3, 3)]);
        assert_eq!(taken(&mut q), [(7, 5), (3, 3), (7, 6)]);
    }

    /// A batch larger than [`TURN`] gives the turn away after that many items.
    #[test]
    fn a_turn_takes_at_most_turn_items() {
        let mut q = Queue::default();
        let big = TURN as u32 + 10;
        put(&mut q, 1, (0..big).map(|i| (1, i)));
        put(&mut q, 2, [(2, 0)]);
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
        let mut q = Queue::default();
        let big = TURN as u32 + 10;
        put(&mut q, 1, (0..big).map(|i| (1, i)));
        put(&mut q, 2, (0..big).map(|i| (2, i)));
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
        let mut q = Queue::default();
        put(&mut q, 1, [(1, 0), (1, 1), (1, 2)]);
        put(&mut q, 1, [(1, 10), (1, 11)]);
        put(&mut q, 2, [(2, 0)]);
        assert_eq!(next(&mut q), Some((1, 0)));
        q.retain(|&(k, i)| k != 1 || i >= 10);
        assert_eq!(taken(&mut q), [(2, 0), (1, 10), (1, 11)]);
        // Items removed from a turn whose batch goes on leave it going.
        put(&mut q, 1, [(1, 20), (1, 21), (1, 22)]);
        put(&mut q, 2, [(2, 1)]);
        assert_eq!(next(&mut q), Some((1, 20)));
        q.retain(|&(_, i)| i != 21);
        assert_eq!(taken(&mut q), [(1, 22), (2, 1)]);
    }

    /// A class whose next item may not go holds no other class's items back; of the classes
    /// whose next item may go, the one whose item came first goes.
    #[test]
    fn a_class_that_cannot_go_holds_no_other_back() {
        let mut q = FairQueue::<(usize, u32), 3>::default();
        q.extend(1, 2, [(2, 0), (2, 1)]);
        q.extend(2, 0, [(0, 0)]);
        q.extend(3, 1, [(1, 0)]);
        q.extend(4, 0, [(0, 1)]);
        assert_eq!(q.pop_where(|&(c, _)| c != 2), Some((0, 0)));
        assert_eq!(q.pop_where(|&(c, _)| c != 2), Some((1, 0)));
        assert_eq!(q.pop_where(|&(c, _)| c == 2), Some((2, 0)));
        assert_eq!(q.pop_where(|_| false), None);
        assert_eq!(q.len(), 2);
        let rest: Vec<_> = std::iter::from_fn(|| q.pop_where(|_| true)).collect();
        assert_eq!(rest, [(2, 1), (0, 1)]);
        assert!(q.is_empty());
    }

    /// Across classes keys keep their turns too: a key that came after another's backlog,
    /// with a batch in each of two classes (an endpoint's pack through appenders of two QoS),
    /// has both go after one turn of the backlog in each class. (Compared by arrival, its
    /// second class's batch waited for all of the backlog's first class.)
    #[test]
    fn a_keys_batches_of_two_classes_each_wait_one_turn_of_a_backlog() {
        let mut q = FairQueue::<(u64, usize, u32), 2>::default();
        for i in 0..5 {
            q.extend(1, 0, [(1, 0, i)]);
            q.extend(1, 1, [(1, 1, i)]);
        }
        q.extend(2, 0, [(2, 0, 0)]);
        q.extend(2, 1, [(2, 1, 0)]);
        let order: Vec<_> = std::iter::from_fn(|| q.pop_where(|_| true)).collect();
        assert_eq!(
            order[..4],
            [(1, 0, 0), (1, 1, 0), (2, 0, 0), (2, 1, 0)],
            "{order:?}"
        );
        assert_eq!(order.len(), 12);
    }

    /// `iter` and `drain` give each key's items together; `retain` keeps order and turns.
    #[test]
    fn iter_drain_and_retain_keep_each_keys_items_together() {
        let mut q = Queue::default();
        put(&mut q, 1, [(1, 0), (1, 1)]);
        put(&mut q, 2, [(2, 0), (2, 1), (2, 2)]);
        put(&mut q, 3, [(3, 0)]);
        let all: Vec<_> = q.iter().copied().collect();
        assert_eq!(all, [(1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (3, 0)]);
        q.retain(|&(k, i)| k != 1 && i != 1);
        assert_eq!(q.len(), 3);
        put(&mut q, 1, [(1, 2)]);
        let drained: Vec<_> = q.drain().collect();
        assert_eq!(drained, [(2, 0), (2, 2), (3, 0), (1, 2)]);
        assert!(q.is_empty());
        assert_eq!(next(&mut q), None);
        put(&mut q, 4, [(4, 0)]);
        assert_eq!(taken(&mut q), [(4, 0)]);
    }
}

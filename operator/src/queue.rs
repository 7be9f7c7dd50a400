//! Capacity as a queue: at most `max_running` sandboxes at once; waiting Executions start in
//! submission order (creationTimestamp, then name, then namespace).
//!
//! The store of Executions lags behind the operator's own status writes, so the operator
//! keeps local overrides for the Executions it has just started or finished; the store wins
//! again once it has caught up.

use std::collections::HashMap;

/// An Execution, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

/// Whether an Execution holds a sandbox slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    /// Pending (or not yet looked at): waiting for a slot.
    Waiting,
    /// Processing: its sandbox holds a slot.
    Running,
    /// Completed, Failed or being deleted: holds nothing.
    Done,
}

/// One Execution as the queue sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Key,
    /// creationTimestamp, as sortable text (RFC 3339 in UTC) or a number.
    pub created: String,
    pub slot: Slot,
}

/// What to do with a waiting Execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Admit,
    /// Wait: `position` (1-based) in the queue, `running` sandboxes now.
    Wait {
        position: usize,
        running: usize,
    },
}

/// The waiting Executions in the order they start.
pub fn waiting_order(entries: &[Entry]) -> Vec<&Entry> {
    let mut w: Vec<&Entry> = entries.iter().filter(|e| e.slot == Slot::Waiting).collect();
    w.sort_by(|a, b| {
        (a.created.as_str(), a.key.name.as_str(), a.key.namespace.as_str()).cmp(&(
            b.created.as_str(),
            b.key.name.as_str(),
            b.key.namespace.as_str(),
        ))
    });
    w
}

/// May `candidate` start now?
pub fn decide(entries: &[Entry], max_running: usize, candidate: &Key) -> Decision {
    let running = entries.iter().filter(|e| e.slot == Slot::Running).count();
    let free = max_running.saturating_sub(running);
    let order = waiting_order(entries);
    let position = order.iter().position(|e| &e.key == candidate).unwrap_or(order.len());
    if position < free {
        Decision::Admit
    } else {
        Decision::Wait { position: position + 1, running }
    }
}

/// The waiting Executions that may start now (to wake them when a slot frees).
pub fn startable(entries: &[Entry], max_running: usize) -> Vec<Key> {
    let running = entries.iter().filter(|e| e.slot == Slot::Running).count();
    let free = max_running.saturating_sub(running);
    waiting_order(entries).into_iter().take(free).map(|e| e.key.clone()).collect()
}

/// The operator's own knowledge of slots, ahead of the store.
#[derive(Debug, Default)]
pub struct Overrides {
    local: HashMap<Key, Slot>,
}

impl Overrides {
    pub fn set(&mut self, key: Key, slot: Slot) {
        self.local.insert(key, slot);
    }

    pub fn clear(&mut self, key: &Key) {
        self.local.remove(key);
    }

    /// Merge the store's view with the local one: a local slot further along
    /// (Waiting < Running < Done) wins; once the store has caught up, or the Execution is
    /// gone, the local entry is dropped.
    pub fn merge(&mut self, mut store: Vec<Entry>) -> Vec<Entry> {
        let present: HashMap<Key, Slot> = store.iter().map(|e| (e.key.clone(), e.slot)).collect();
        self.local.retain(|k, local| present.get(k).is_some_and(|s| *s < *local));
        for e in &mut store {
            if let Some(local) = self.local.get(&e.key) {
                e.slot = *local;
            }
        }
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, created: &str, slot: Slot) -> Entry {
        Entry { key: key(name), created: created.into(), slot }
    }

    fn key(name: &str) -> Key {
        Key { namespace: "ns".into(), name: name.into() }
    }

    #[test]
    fn waiting_ones_start_in_submission_order() {
        let entries = vec![
            e("c", "2026-01-01T00:00:02Z", Slot::Waiting),
            e("b", "2026-01-01T00:00:01Z", Slot::Waiting),
            e("a", "2026-01-01T00:00:02Z", Slot::Waiting),
            e("r", "2026-01-01T00:00:00Z", Slot::Running),
            e("d", "2026-01-01T00:00:00Z", Slot::Done),
        ];
        let order: Vec<&str> = waiting_order(&entries).iter().map(|e| e.key.name.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"], "time first, then name");
        // 3 slots, one running: the first two waiting may start.
        assert_eq!(decide(&entries, 3, &key("b")), Decision::Admit);
        assert_eq!(decide(&entries, 3, &key("a")), Decision::Admit);
        assert_eq!(decide(&entries, 3, &key("c")), Decision::Wait { position: 3, running: 1 });
        assert_eq!(startable(&entries, 3), [key("b"), key("a")]);
        // Full: nobody starts.
        assert_eq!(decide(&entries, 1, &key("b")), Decision::Wait { position: 1, running: 1 });
        assert!(startable(&entries, 1).is_empty());
    }

    #[test]
    fn overrides_lead_until_the_store_catches_up() {
        let mut o = Overrides::default();
        o.set(key("a"), Slot::Running);
        o.set(key("r"), Slot::Done);
        o.set(key("gone"), Slot::Running);
        let store = vec![e("a", "1", Slot::Waiting), e("r", "0", Slot::Running), e("b", "2", Slot::Waiting)];
        let merged = o.merge(store.clone());
        assert_eq!(merged[0].slot, Slot::Running);
        assert_eq!(merged[1].slot, Slot::Done);
        assert_eq!(decide(&merged, 1, &key("b")), Decision::Wait { position: 1, running: 1 });
        assert_eq!(o.local.len(), 2, "the deleted Execution's override is dropped");
        // The store catches up: overrides are dropped, the store's view stands.
        let caught_up = vec![e("a", "1", Slot::Running), e("r", "0", Slot::Done), e("b", "2", Slot::Waiting)];
        assert_eq!(o.merge(caught_up.clone()), caught_up);
        assert!(o.local.is_empty());
    }
}

//! Capacity as a queue: the admission order is [`rce_api::queue`]'s (shared with the shim,
//! which reports positions); this module adds the operator's local view.
//!
//! The store of Executions lags behind the operator's own status writes, so the operator
//! keeps local overrides for the Executions it has just started or finished; the store wins
//! again once it has caught up.

use std::collections::HashMap;

pub use rce_api::queue::{
    decide, position, running, startable, submitted_key, waiting_order, Decision, Entry, Key, Limits, Slot,
    Wait,
};

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
    fn overrides_lead_until_the_store_catches_up() {
        let mut o = Overrides::default();
        o.set(key("a"), Slot::Running);
        o.set(key("r"), Slot::Done);
        o.set(key("gone"), Slot::Running);
        let store = vec![e("a", "1", Slot::Waiting), e("r", "0", Slot::Running), e("b", "2", Slot::Waiting)];
        let merged = o.merge(store.clone());
        assert_eq!(merged[0].slot, Slot::Running);
        assert_eq!(merged[1].slot, Slot::Done);
        assert_eq!(
            decide(&merged, &Limits::of(1), &key("b")),
            Decision::Wait { position: 1, running: 1, why: Wait::Capacity }
        );
        assert_eq!(o.local.len(), 2, "the deleted Execution's override is dropped");
        // The store catches up: overrides are dropped, the store's view stands.
        let caught_up = vec![e("a", "1", Slot::Running), e("r", "0", Slot::Done), e("b", "2", Slot::Waiting)];
        assert_eq!(o.merge(caught_up.clone()), caught_up);
        assert!(o.local.is_empty());
    }
}

//! The admission order of waiting Executions, shared by the operator (which admits them) and
//! the shim (which reports a queue position on request).
//!
//! Capacity is cluster-wide: `capacity` sandboxes may run at once, counted over every
//! operator replica. Waiting Executions are admitted in submission order within a namespace
//! and fairly across namespaces: the next one admitted is the first waiting one of the
//! namespace that would then run the fewest sandboxes (a namespace's `k`-th waiting Execution
//! ranks as `running(ns) + k`), ties broken by submission time, then name, then namespace.
//! With a per-namespace share, a namespace never runs more than that many at once.
//!
//! Submission time: the creationTimestamp has one-second resolution, so Executions created
//! in the same second would be ordered by name (a random UUID for the shim's). The shim
//! stamps [`SUBMITTED_ANNOTATION`] with microseconds as it creates an Execution; it counts
//! only when it lies within [`SUBMITTED_SKEW_SECS`] of the creationTimestamp (an annotation
//! cannot move an Execution ahead of others by more than that), else the creationTimestamp
//! is used.

use std::collections::HashMap;

/// Annotation with the submission time (RFC 3339, UTC, microseconds) set by the shim.
pub const SUBMITTED_ANNOTATION: &str = "rce.dev/submitted-at";
/// How far the annotation may lie from the creationTimestamp and still count.
pub const SUBMITTED_SKEW_SECS: i64 = 2;

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
    /// Submission time as sortable text (see [`submitted_key`]).
    pub created: String,
    pub slot: Slot,
}

/// How many may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sandboxes at once, cluster-wide.
    pub capacity: usize,
    /// Sandboxes at once per namespace (0: no cap beyond the fair order).
    pub per_namespace: usize,
}

impl Limits {
    pub fn of(capacity: usize) -> Self {
        Limits { capacity, per_namespace: 0 }
    }
}

/// Why a waiting Execution waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Every slot of the cluster is taken (or others are ahead).
    Capacity,
    /// Its namespace runs its whole share.
    NamespaceShare,
}

/// What to do with a waiting Execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Admit,
    /// Wait: `position` (1-based) in the admission order, `running` sandboxes now.
    Wait {
        position: usize,
        running: usize,
        why: Wait,
    },
}

/// The sort key of a submission time: fixed-width RFC 3339 in UTC with microseconds, from
/// the annotation when it lies close enough to the creationTimestamp, else from the latter.
pub fn submitted_key(creation: Option<&str>, annotation: Option<&str>) -> String {
    use chrono::{DateTime, SecondsFormat, Utc};
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc));
    let created = creation.and_then(parse);
    let stamped = annotation.and_then(parse);
    let t = match (created, stamped) {
        (Some(c), Some(s)) if (s - c).num_seconds().abs() <= SUBMITTED_SKEW_SECS => Some(s),
        (Some(c), _) => Some(c),
        (None, s) => s,
    };
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true)).unwrap_or_default()
}

/// The waiting Executions in admission order, each with whether it may be admitted at all
/// (false: its namespace's share is full).
pub fn waiting_order<'a>(entries: &'a [Entry], limits: &Limits) -> Vec<(&'a Entry, bool)> {
    let mut running: HashMap<&str, usize> = HashMap::new();
    for e in entries.iter().filter(|e| e.slot == Slot::Running) {
        *running.entry(e.key.namespace.as_str()).or_default() += 1;
    }
    let mut by_ns: HashMap<&str, Vec<&Entry>> = HashMap::new();
    for e in entries.iter().filter(|e| e.slot == Slot::Waiting) {
        by_ns.entry(e.key.namespace.as_str()).or_default().push(e);
    }
    let mut ranked: Vec<(usize, &Entry)> = Vec::new();
    for (ns, mut list) in by_ns {
        list.sort_by(|a, b| {
            (a.created.as_str(), a.key.name.as_str()).cmp(&(b.created.as_str(), b.key.name.as_str()))
        });
        let base = running.get(ns).copied().unwrap_or(0);
        ranked.extend(list.into_iter().enumerate().map(|(i, e)| (base + i, e)));
    }
    ranked.sort_by(|(ra, a), (rb, b)| {
        (*ra, a.created.as_str(), a.key.name.as_str(), a.key.namespace.as_str()).cmp(&(
            *rb,
            b.created.as_str(),
            b.key.name.as_str(),
            b.key.namespace.as_str(),
        ))
    });
    ranked
        .into_iter()
        .map(|(rank, e)| (e, limits.per_namespace == 0 || rank < limits.per_namespace))
        .collect()
}

/// Sandboxes running now.
pub fn running(entries: &[Entry]) -> usize {
    entries.iter().filter(|e| e.slot == Slot::Running).count()
}

/// May `candidate` start now?
pub fn decide(entries: &[Entry], limits: &Limits, candidate: &Key) -> Decision {
    let running = running(entries);
    let free = limits.capacity.saturating_sub(running);
    let order = waiting_order(entries, limits);
    let Some(position) = order.iter().position(|(e, _)| &e.key == candidate) else {
        return Decision::Wait { position: order.len() + 1, running, why: Wait::Capacity };
    };
    if !order[position].1 {
        return Decision::Wait { position: position + 1, running, why: Wait::NamespaceShare };
    }
    let admissible_ahead = order[..position].iter().filter(|(_, ok)| *ok).count();
    if admissible_ahead < free {
        Decision::Admit
    } else {
        Decision::Wait { position: position + 1, running, why: Wait::Capacity }
    }
}

/// The waiting Executions that may start now (to wake them when a slot frees).
pub fn startable(entries: &[Entry], limits: &Limits) -> Vec<Key> {
    let free = limits.capacity.saturating_sub(running(entries));
    waiting_order(entries, limits)
        .into_iter()
        .filter(|(_, ok)| *ok)
        .take(free)
        .map(|(e, _)| e.key.clone())
        .collect()
}

/// The 1-based position of `candidate` among the waiting Executions (None: not waiting).
pub fn position(entries: &[Entry], limits: &Limits, candidate: &Key) -> Option<usize> {
    waiting_order(entries, limits).iter().position(|(e, _)| &e.key == candidate).map(|p| p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ns: &str, name: &str, created: &str, slot: Slot) -> Entry {
        Entry { key: key(ns, name), created: created.into(), slot }
    }

    fn key(ns: &str, name: &str) -> Key {
        Key { namespace: ns.into(), name: name.into() }
    }

    fn names(entries: &[Entry], limits: &Limits) -> Vec<String> {
        waiting_order(entries, limits)
            .iter()
            .map(|(e, _)| format!("{}/{}", e.key.namespace, e.key.name))
            .collect()
    }

    #[test]
    fn one_namespace_starts_in_submission_order() {
        let entries = vec![
            e("ns", "c", "2026-01-01T00:00:02.000000Z", Slot::Waiting),
            e("ns", "b", "2026-01-01T00:00:01.000000Z", Slot::Waiting),
            e("ns", "a", "2026-01-01T00:00:02.000000Z", Slot::Waiting),
            e("ns", "r", "2026-01-01T00:00:00.000000Z", Slot::Running),
            e("ns", "d", "2026-01-01T00:00:00.000000Z", Slot::Done),
        ];
        assert_eq!(names(&entries, &Limits::of(3)), ["ns/b", "ns/a", "ns/c"], "time first, then name");
        assert_eq!(decide(&entries, &Limits::of(3), &key("ns", "b")), Decision::Admit);
        assert_eq!(decide(&entries, &Limits::of(3), &key("ns", "a")), Decision::Admit);
        assert_eq!(
            decide(&entries, &Limits::of(3), &key("ns", "c")),
            Decision::Wait { position: 3, running: 1, why: Wait::Capacity }
        );
        assert_eq!(startable(&entries, &Limits::of(3)), [key("ns", "b"), key("ns", "a")]);
        assert!(startable(&entries, &Limits::of(1)).is_empty());
        assert_eq!(position(&entries, &Limits::of(1), &key("ns", "c")), Some(3));
        assert_eq!(position(&entries, &Limits::of(1), &key("ns", "r")), None);
    }

    #[test]
    fn namespaces_take_turns_whoever_submitted_first() {
        // "big" submitted 4 before "small" submitted 2; "big" already runs one.
        let mut entries = vec![e("big", "r", "2026-01-01T00:00:00.000000Z", Slot::Running)];
        for i in 0..4 {
            entries.push(e(
                "big",
                &format!("b{i}"),
                &format!("2026-01-01T00:00:0{i}.000000Z"),
                Slot::Waiting,
            ));
        }
        for i in 0..2 {
            entries.push(e(
                "small",
                &format!("s{i}"),
                &format!("2026-01-01T00:00:0{}.000000Z", 5 + i),
                Slot::Waiting,
            ));
        }
        assert_eq!(
            names(&entries, &Limits::of(10)),
            ["small/s0", "big/b0", "small/s1", "big/b1", "big/b2", "big/b3"],
            "the namespace running fewer goes first; then turns; a namespace's own order is kept"
        );
    }

    #[test]
    fn a_namespace_share_caps_it_while_others_go_on() {
        let mut entries = vec![
            e("big", "r1", "2026-01-01T00:00:00.000000Z", Slot::Running),
            e("big", "r2", "2026-01-01T00:00:00.000000Z", Slot::Running),
        ];
        entries.push(e("big", "b0", "2026-01-01T00:00:01.000000Z", Slot::Waiting));
        entries.push(e("small", "s0", "2026-01-01T00:00:02.000000Z", Slot::Waiting));
        let limits = Limits { capacity: 10, per_namespace: 2 };
        assert_eq!(
            decide(&entries, &limits, &key("big", "b0")),
            Decision::Wait { position: 2, running: 2, why: Wait::NamespaceShare }
        );
        assert_eq!(decide(&entries, &limits, &key("small", "s0")), Decision::Admit);
        assert_eq!(startable(&entries, &limits), [key("small", "s0")]);
    }

    #[test]
    fn the_annotation_orders_within_the_second_but_cannot_jump_the_queue() {
        let c = Some("2026-01-01T00:00:05Z");
        assert_eq!(submitted_key(c, Some("2026-01-01T00:00:04.999123Z")), "2026-01-01T00:00:04.999123Z");
        assert_eq!(
            submitted_key(c, Some("2025-01-01T00:00:00Z")),
            "2026-01-01T00:00:05.000000Z",
            "forged: ignored"
        );
        assert_eq!(submitted_key(c, Some("nonsense")), "2026-01-01T00:00:05.000000Z");
        assert_eq!(submitted_key(c, None), "2026-01-01T00:00:05.000000Z");
        assert!(
            submitted_key(c, Some("2026-01-01T00:00:05.000001Z"))
                > submitted_key(c, Some("2026-01-01T00:00:04.999999Z"))
        );
    }
}

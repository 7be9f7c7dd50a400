//! All-active replicas: every operator replica reconciles a share of the Executions (and of
//! the WarmPools), so none is a bottleneck and losing one stops nothing.
//!
//! Membership: each replica holds a `coordination.k8s.io` Lease of its own, named
//! `<group>.<identity>` in the lease namespace, renewed by `kube-lease-manager`; each
//! watches the group's Leases, and the live members are those whose holder is set and whose
//! `renewTime + leaseDurationSeconds` lies ahead. A replica that is not holding its own
//! Lease owns nothing.
//!
//! Assignment: rendezvous hashing of the object's UID over the live members (the member
//! with the highest hash of `uid, member` owns it), so that a membership change moves only
//! the objects of the member that came or went. On every change every Execution is woken:
//! the new owner of each picks it up where the status says it is (a running sandbox is
//! followed, never recreated; a pending one is started).
//!
//! Exactly once does not rest on the assignment (two replicas may briefly both believe they
//! own an object while their views of the Leases differ) but on the API: deterministic names
//! per attempt (the sandbox Pod, the attempt lock of [`crate::attempt`]), create conflicts,
//! and status writes guarded by resourceVersion. The assignment only keeps replicas from
//! doing the same work twice.

use std::{collections::BTreeSet, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    api::{Api, DeleteParams},
    runtime::{reflector, watcher, WatchStreamExt},
    Client, ResourceExt,
};
use tokio::sync::watch;

/// The live members as one replica sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// Identities, sorted.
    pub live: Vec<String>,
    /// Whether this replica holds its own Lease.
    pub holding: bool,
}

/// Who owns `uid` among `members` (None: nobody is live).
pub fn owner<'a>(uid: &str, members: &'a [String]) -> Option<&'a str> {
    members.iter().max_by_key(|m| (weight(uid, m), m.as_str())).map(String::as_str)
}

/// The rendezvous weight of `member` for `uid`: FNV-1a of both, then SplitMix64's
/// finalizer (FNV alone spreads similar inputs poorly).
fn weight(uid: &str, member: &str) -> u64 {
    let mut key = Vec::with_capacity(uid.len() + member.len() + 1);
    key.extend_from_slice(uid.as_bytes());
    key.push(0);
    key.extend_from_slice(member.as_bytes());
    let mut z = crate::names::fnv1a(&key);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// This replica's view of the group.
#[derive(Clone)]
pub struct Shard {
    pub identity: String,
    pub group: String,
    members: watch::Receiver<Members>,
}

impl Shard {
    /// A shard that owns everything (a single process without membership: unit tests).
    pub fn solo(identity: &str) -> Self {
        let (_tx, rx) = watch::channel(Members { live: vec![identity.to_string()], holding: true });
        Shard { identity: identity.into(), group: String::new(), members: rx }
    }

    /// Does this replica own the object with `uid`?
    pub fn owns(&self, uid: &str) -> bool {
        let m = self.members.borrow();
        m.holding && owner(uid, &m.live) == Some(self.identity.as_str())
    }

    pub fn members(&self) -> Members {
        self.members.borrow().clone()
    }

    /// A receiver that sees every change of the membership.
    pub fn changes(&self) -> watch::Receiver<Members> {
        self.members.clone()
    }
}

/// The Lease name of `identity` in `group`.
pub fn lease_name(group: &str, identity: &str) -> String {
    format!("{group}.{identity}")
}

/// Is `lease` a live member's (holder set, not expired at `now`)?
fn live_holder(lease: &Lease, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    let renewed =
        chrono::DateTime::parse_from_rfc3339(&renewed.0.to_string()).ok()?.with_timezone(&chrono::Utc);
    (renewed + chrono::Duration::seconds(secs) > now).then_some(holder)
}

/// Expired Leases of the group older than this are deleted by whoever sees them (replicas
/// that went away without releasing theirs, e.g. killed Pods with generated names).
const STALE_LEASE_GC: chrono::Duration = chrono::Duration::minutes(10);

/// Join the group: this replica's view of it, and the future that keeps it up to date until
/// `shutdown` (run it with the operator's other tasks: dropped, it stops renewing the
/// Lease, as a crash would); on shutdown the own Lease is released and deleted (the others
/// take over at once).
pub async fn join(
    client: Client,
    namespace: &str,
    group: &str,
    identity: &str,
    lease_seconds: u64,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(Shard, futures::future::BoxFuture<'static, ()>)> {
    use kube_lease_manager::LeaseManagerBuilder;
    let name = lease_name(group, identity);
    let lease_seconds = lease_seconds.max(3);
    let grace = (lease_seconds / 3).max(1);
    let manager = LeaseManagerBuilder::new(client.clone(), &name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(lease_seconds)
        .with_grace(grace)
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("membership Lease {namespace}/{name}: {e}"))?;
    let (mut holding, held_task) = manager.watch().await;

    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let (store, writer) = reflector::store::<Lease>();
    let leases = reflector::reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .touched_objects();

    let (tx, rx) = watch::channel(Members::default());
    let shard = Shard { identity: identity.to_string(), group: group.to_string(), members: rx };
    let prefix = format!("{group}.");
    let me = identity.to_string();
    let lease_ns = namespace.to_string();
    let mut missing_since: Option<chrono::DateTime<chrono::Utc>> = None;
    let task = Box::pin(async move {
        tokio::pin!(leases);
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {}
                ev = leases.next() => {
                    if let Some(Err(e)) = ev {
                        tracing::warn!(error = %e, "watching membership Leases");
                    }
                }
                changed = holding.changed() => {
                    if changed.is_err() {
                        tracing::error!("the membership Lease manager stopped");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            let now = chrono::Utc::now();
            let mut live = BTreeSet::new();
            for l in store.state() {
                if !l.name_any().starts_with(&prefix) {
                    continue;
                }
                match live_holder(&l, now) {
                    Some(h) if l.name_any() == format!("{prefix}{h}") => {
                        live.insert(h);
                    }
                    _ => {
                        // Last sign of life: the renewal, else the creation (a Lease just
                        // created holds nobody yet).
                        let renewed = l
                            .spec
                            .as_ref()
                            .and_then(|s| s.renew_time.as_ref())
                            .map(|t| t.0.to_string())
                            .or_else(|| l.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()))
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
                        let stale = renewed.is_some_and(|t| now.signed_duration_since(t) > STALE_LEASE_GC);
                        if stale && l.name_any() != format!("{prefix}{me}") {
                            let dp = DeleteParams {
                                preconditions: Some(kube::api::Preconditions {
                                    uid: l.uid(),
                                    resource_version: l.resource_version(),
                                }),
                                ..Default::default()
                            };
                            let _ = api.delete(&l.name_any(), &dp).await;
                        }
                    }
                }
            }
            // The own Lease deleted under the manager (which does not create it again): create
            // it again, empty; the manager then takes it.
            let own = format!("{prefix}{me}");
            if store.get(&kube::runtime::reflector::ObjectRef::new(&own).within(&lease_ns)).is_none() {
                let since = *missing_since.get_or_insert(now);
                if now.signed_duration_since(since) > chrono::Duration::seconds(2) {
                    let lease = Lease {
                        metadata: kube::api::ObjectMeta { name: Some(own.clone()), ..Default::default() },
                        spec: None,
                    };
                    match api.create(&Default::default(), &lease).await {
                        Ok(_) => tracing::warn!(lease = %own, "membership Lease was gone; created it again"),
                        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                        Err(e) => {
                            tracing::warn!(lease = %own, error = %e, "cannot create the membership Lease")
                        }
                    }
                    missing_since = None;
                }
            } else {
                missing_since = None;
            }
            let live: Vec<String> = live.into_iter().collect();
            let next = Members { holding: *holding.borrow() && live.contains(&me), live };
            tx.send_if_modified(|cur| {
                if *cur != next {
                    tracing::info!(identity = %me, members = ?next.live, holding = next.holding, "operator membership");
                    *cur = next;
                    true
                } else {
                    false
                }
            });
        }
        // Leave: release (the manager does on the receiver's drop) and delete the Lease, so
        // that the others take this replica's share at once.
        drop(holding);
        let _ = tokio::time::timeout(Duration::from_secs(5), held_task).await;
        let _ = api.delete(&lease_name(&prefix[..prefix.len() - 1], &me), &DeleteParams::default()).await;
        tracing::info!(identity = %me, "left the operator group");
    });
    Ok((shard, task))
}

/// A stream with an item at every membership change (for `reconcile_all_on`).
pub fn change_stream(rx: watch::Receiver<Members>) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.changed().await.ok().map(|_| ((), rx)) })
}

/// Wait until this replica holds its Lease and sees itself live (bounded).
pub async fn wait_joined(shard: &Shard, timeout: Duration) -> bool {
    let mut rx = shard.changes();
    let me = shard.identity.clone();
    tokio::time::timeout(timeout, rx.wait_for(|m| m.holding && m.live.contains(&me)))
        .await
        .is_ok_and(|r| r.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("operator-{i}")).collect()
    }

    #[test]
    fn every_uid_has_exactly_one_owner_and_the_shares_are_even() {
        let m = members(3);
        let mut counts = std::collections::HashMap::new();
        for i in 0..3000 {
            let uid = format!("{i:08x}-0000-4000-8000-000000000000");
            *counts.entry(owner(&uid, &m).unwrap().to_string()).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3);
        for (who, n) in counts {
            assert!((800..1200).contains(&n), "{who} owns {n} of 3000");
        }
        assert_eq!(owner("x", &[]), None);
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_share() {
        let three = members(3);
        let two: Vec<String> = three.iter().filter(|m| *m != "operator-2").cloned().collect();
        for i in 0..1000 {
            let uid = format!("uid-{i}");
            let before = owner(&uid, &three).unwrap();
            let after = owner(&uid, &two).unwrap();
            if before != "operator-2" {
                assert_eq!(before, after, "{uid} moved although its owner stayed");
            }
        }
    }

    #[test]
    fn a_lease_is_live_until_renew_plus_duration() {
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "g.a"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 10, "renewTime": "2026-01-01T00:00:00.000000Z"}
        }))
        .unwrap();
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        assert_eq!(live_holder(&lease, at("2026-01-01T00:00:09Z")).as_deref(), Some("a"));
        assert_eq!(live_holder(&lease, at("2026-01-01T00:00:11Z")), None);
        let released: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "g.a"}, "spec": {"leaseDurationSeconds": 10, "renewTime": "2026-01-01T00:00:00Z"}
        }))
        .unwrap();
        assert_eq!(live_holder(&released, at("2026-01-01T00:00:01Z")), None);
    }

    #[test]
    fn a_solo_shard_owns_everything() {
        let s = Shard::solo("me");
        assert!(s.owns("anything"));
    }
}

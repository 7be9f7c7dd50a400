//! The attempt lock: before an attempt of an Execution starts anywhere (a cold sandbox Pod
//! created, a warm Pod sent the run), a ConfigMap named after that attempt's sandbox
//! (`<pod name>.attempt`, owned by the Execution) is created, saying how it runs. The API
//! server lets exactly one create succeed, so whatever the replicas believe about who owns
//! the Execution, attempt `n` runs one way, once:
//!
//! - a replica that loses the create reads the lock and follows it (a cold attempt: the Pod
//!   of that deterministic name, created by it or by whoever holds the lock — a create
//!   conflict again, so one Pod; a warm attempt: the claimed warm Pod it names, whose runner
//!   runs a run id at most once);
//! - a retry after a lost sandbox is attempt `n + 1`, locked the same way, so two replicas
//!   that both saw the sandbox lost retry once between them.
//!
//! The locks go with their Execution (garbage collection of the owner reference).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    api::{Api, ObjectMeta, PostParams},
    Client, Resource, ResourceExt,
};
use rce_api::Execution;

use crate::{names, sandbox::MANAGER};

/// Label on every attempt lock.
pub const LOCK_LABEL: &str = "rce.dev/attempt-lock";

/// How an attempt runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// In the cold sandbox Pod of the attempt's name.
    Cold,
    /// In the named warm Pod (claimed for this Execution).
    Warm { pod: String },
}

/// The outcome of taking a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locked {
    /// This call created it: the attempt is this replica's to start.
    Mine,
    /// It existed: the attempt runs as it says (started by `by`).
    Taken { how: How, by: String },
    /// A ConfigMap of the name exists that is not this Execution's lock: never touched.
    Foreign,
}

/// Name of the lock of `attempt`.
pub fn lock_name(exec: &Execution, attempt: u32) -> String {
    format!("{}.attempt", names::pod_name(&exec.name_any(), &exec.uid().unwrap_or_default(), attempt))
}

fn lock(exec: &Execution, attempt: u32, how: &How, identity: &str) -> ConfigMap {
    let mut data = BTreeMap::from([
        ("attempt".to_string(), attempt.to_string()),
        ("by".to_string(), identity.to_string()),
    ]);
    match how {
        How::Cold => {
            data.insert("how".into(), "cold".into());
        }
        How::Warm { pod } => {
            data.insert("how".into(), "warm".into());
            data.insert("pod".into(), pod.clone());
        }
    }
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(lock_name(exec, attempt)),
            namespace: exec.namespace(),
            labels: Some(BTreeMap::from([
                (LOCK_LABEL.to_string(), "true".to_string()),
                (rce_api::EXECUTION_LABEL.to_string(), names::label_value(&exec.name_any())),
            ])),
            owner_references: exec.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

/// What a lock says (None: not a lock of `exec`).
pub fn read(cm: &ConfigMap, exec: &Execution) -> Option<(How, String)> {
    let ours = cm
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(&o.uid) == exec.uid().as_ref() && o.kind == "Execution");
    if !ours {
        return None;
    }
    let data = cm.data.as_ref()?;
    let by = data.get("by").cloned().unwrap_or_default();
    match data.get("how").map(String::as_str) {
        Some("cold") => Some((How::Cold, by)),
        Some("warm") => Some((How::Warm { pod: data.get("pod").cloned().unwrap_or_default() }, by)),
        _ => None,
    }
}

/// Take the lock of `attempt` for running it `how`.
pub async fn take(
    client: &Client,
    exec: &Execution,
    attempt: u32,
    how: How,
    identity: &str,
) -> kube::Result<Locked> {
    let ns = exec.namespace().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    let mut tries = 0;
    loop {
        match api.create(&pp, &lock(exec, attempt, &how, identity)).await {
            Ok(_) => return Ok(Locked::Mine),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                match api.get_opt(&lock_name(exec, attempt)).await? {
                    Some(cm) => {
                        return Ok(match read(&cm, exec) {
                            Some((how, by)) => Locked::Taken { how, by },
                            None => Locked::Foreign,
                        })
                    }
                    // Gone again since (its Execution's old namesake collected): once more.
                    None if tries < 2 => tries += 1,
                    None => return Ok(Locked::Foreign),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> Execution {
        let mut e = Execution::new("hello", Default::default());
        e.metadata.namespace = Some("ns".into());
        e.metadata.uid = Some("0123456789abcdef0123456789abcdef".into());
        e
    }

    #[test]
    fn a_lock_names_its_attempt_and_reads_back() {
        let e = exec();
        assert_eq!(lock_name(&e, 2), "hello-0123456789abcdef0123456789abcdef-2.attempt");
        let cm = lock(&e, 2, &How::Warm { pod: "p".into() }, "operator-1");
        assert_eq!(read(&cm, &e), Some((How::Warm { pod: "p".into() }, "operator-1".into())));
        let cold = lock(&e, 1, &How::Cold, "operator-2");
        assert_eq!(read(&cold, &e), Some((How::Cold, "operator-2".into())));
        let mut other = exec();
        other.metadata.uid = Some("ffffffffffffffffffffffffffffffff".into());
        assert_eq!(read(&cm, &other), None, "another Execution's (same name, earlier uid)");
    }
}

//! Result callbacks are claimed in the API before they are sent (`status.callback.sending`),
//! so that of several operators acting on one Execution only one sends. An operator of this
//! checkout, in a namespace of the test's own, meets finished Executions whose callback
//! status was set as another operator would have left it: claimed a moment ago (a live
//! sender: waited out, sent only once the claim is stale), claimed long ago (a dead sender:
//! taken over at once), recorded (never sent again), or nothing (claimed, sent, recorded).
//! The callbacks go to a listener of the test on loopback, one path per Execution.
//!
//! Needs the Execution CRD with `status.callback.sending` installed (`crds/rce.dev.yaml`):
//! an older CRD prunes the claim, and the test fails on that.
#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context as _, Result};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use rce_api::{CallbackStatus, Execution};
use rce_operator::callback::CLAIM_STALE;
use rce_tests::{
    exec::{remove_executions, strip_finalizers},
    operator::{OwnOperator, LABEL, TURN},
    TestNamespace,
};
use serde_json::json;

/// How long before the claim of the "fresh" Execution becomes stale, from its creation.
const FRESH_LEFT: Duration = Duration::from_secs(15);

/// RFC 3339, `ago` before now.
fn stamp(ago: Duration) -> String {
    let ago = SignedDuration::try_from(ago).expect("a duration");
    Timestamp::now().checked_sub(ago).expect("a time").to_string()
}

fn claim(by: &str, ago: Duration) -> serde_json::Value {
    json!({"attempts": 0, "delivered": false, "sending": {"by": by, "since": stamp(ago)}})
}

/// A finished Execution for the test's operator, its callback to `/hook/<name>`, its
/// `status.callback` set to `callback`.
async fn finished(ns: &TestNamespace, name: &str, port: u16, callback: serde_json::Value) -> Result<()> {
    let api = ns.api::<Execution>();
    let exec: Execution = serde_json::from_value(json!({
        "apiVersion": "rce.dev/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name, "labels": {LABEL: ns.name}},
        "spec": {
            "language": "python",
            "source": "print(1)",
            "callback": {"url": format!("http://127.0.0.1:{port}/hook/{name}")},
        },
    }))?;
    api.create(&PostParams::default(), &exec).await?;
    let mut status =
        json!({"phase": "Completed", "finishedAt": stamp(Duration::ZERO), "message": "set by the test"});
    if !callback.is_null() {
        status["callback"] = callback;
    }
    let patched =
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({ "status": status }))).await?;
    if let Some(sent) = status.get("callback").and_then(|c| c.get("sending")) {
        let kept = patched.status.and_then(|s| s.callback).and_then(|c| c.sending);
        ensure!(
            kept.is_some(),
            "status.callback.sending {sent} was pruned: the installed Execution CRD is older than crds/rce.dev.yaml"
        );
    }
    Ok(())
}

async fn callback_of(ns: &TestNamespace, name: &str) -> Result<Option<CallbackStatus>> {
    Ok(ns.api::<Execution>().get(name).await?.status.and_then(|s| s.callback))
}

#[tokio::test]
async fn a_callback_claimed_by_a_live_operator_is_waited_out_a_dead_ones_taken_over_once() -> Result<()> {
    let _turn = TURN.lock().await;
    let ns = TestNamespace::new("once-cb").await?;
    let result = scenario(&ns).await;
    // (No operator serves them any more: their finalizer goes first.)
    strip_finalizers(&ns).await?;
    remove_executions(&[&ns]).await?;
    ns.cleanup().await?;
    result
}

async fn scenario(ns: &TestNamespace) -> Result<()> {
    // The destination: every PUT counted by path, with when it came.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let got: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    let seen = got.clone();
    let hook = tokio::spawn(async move {
        let route = axum::routing::put(move |axum::extract::Path(name): axum::extract::Path<String>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().entry(name).or_default().push(Instant::now());
                "ok"
            }
        });
        let _ = axum::serve(listener, axum::Router::new().route("/hook/{name}", route)).await;
    });
    let count = |name: &str| got.lock().unwrap().get(name).map_or(0, Vec::len);

    let other = "another-operator-0";
    // Claimed by another operator a moment ago: it may be sending right now.
    finished(ns, "fresh", port, claim(other, CLAIM_STALE - FRESH_LEFT)).await?;
    let fresh_stale_at = Instant::now() + FRESH_LEFT;
    // Claimed long ago: that operator died mid-send.
    finished(ns, "stale", port, claim(other, CLAIM_STALE + Duration::from_secs(600))).await?;
    // Sent and recorded by another operator.
    finished(ns, "done", port, json!({"attempts": 1, "delivered": true, "httpStatus": 200})).await?;
    // Nothing yet.
    finished(ns, "new", port, serde_json::Value::Null).await?;

    let mut config = OwnOperator::config(std::slice::from_ref(&ns.name))?;
    config.callback_allow = rce_api::callback::Policy::parse("127.0.0.1/32").map_err(anyhow::Error::msg)?;
    let operator = OwnOperator::start(config);

    // The dead sender's and the unclaimed one: sent once, at once; recorded, the claim gone.
    let until = Instant::now() + Duration::from_secs(30);
    while (count("stale") == 0 || count("new") == 0) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in ["stale", "new"] {
        ensure!(count(name) == 1, "{name}: {} callbacks within 30 s: {:?}", count(name), got.lock().unwrap());
    }
    ensure!(
        Instant::now() < fresh_stale_at,
        "too slow to tell the fresh claim apart (the machine is loaded)"
    );
    // The live one's: not sent while its claim is fresh.
    while Instant::now() + Duration::from_secs(1) < fresh_stale_at {
        ensure!(
            count("fresh") == 0,
            "a callback claimed by a live operator was sent: {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let claimed = callback_of(ns, "fresh").await?.context("fresh: no callback status")?;
    ensure!(
        claimed.sending.as_ref().is_some_and(|c| c.by == other),
        "fresh: the live claim was replaced: {claimed:?}"
    );
    // Once stale, it is taken over: sent once.
    let until = fresh_stale_at + Duration::from_secs(30);
    while count("fresh") == 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(count("fresh") == 1, "fresh: {} callbacks after its claim went stale", count("fresh"));
    let sent_at = got.lock().unwrap()["fresh"][0];
    ensure!(sent_at + Duration::from_millis(500) >= fresh_stale_at, "fresh: sent before its claim was stale");
    // Nothing more comes, and every outcome is recorded with the claim gone.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let counts: HashMap<String, usize> =
        got.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.len())).collect();
    ensure!(
        counts == HashMap::from([("fresh".into(), 1), ("stale".into(), 1), ("new".into(), 1)]),
        "callbacks per Execution: {counts:?} (done: never)"
    );
    for name in ["fresh", "stale", "new", "done"] {
        let cb = callback_of(ns, name).await?.with_context(|| format!("{name}: no callback status"))?;
        ensure!(cb.delivered && cb.sending.is_none() && cb.http_status == Some(200), "{name}: {cb:?}");
        if name != "done" {
            ensure!(cb.attempts == 1, "{name}: {cb:?}");
        }
    }
    println!(
        "callbacks: {counts:?}; fresh claim sent {:?} after it went stale",
        sent_at.saturating_duration_since(fresh_stale_at)
    );
    hook.abort();
    drop(operator);
    Ok(())
}

#[tokio::test]
async fn two_operators_that_both_consider_a_callback_send_it_once() -> Result<()> {
    let ns = TestNamespace::new("once-cb2").await?;
    let result = race(&ns).await;
    strip_finalizers(&ns).await?;
    remove_executions(&[&ns]).await?;
    ns.cleanup().await?;
    result
}

/// Two operators' callbacks (identities of their own), no operator loop: both are handed
/// the same finished Executions at the same moment, as two replicas whose ownership
/// overlapped would be.
async fn race(ns: &TestNamespace) -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let got: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen = got.clone();
    let hook = tokio::spawn(async move {
        let route = axum::routing::put(move |axum::extract::Path(name): axum::extract::Path<String>| {
            let seen = seen.clone();
            async move {
                // A slow destination: the other operator has all the time to send too.
                tokio::time::sleep(Duration::from_millis(300)).await;
                *seen.lock().unwrap().entry(name).or_default() += 1;
                "ok"
            }
        });
        let _ = axum::serve(listener, axum::Router::new().route("/hook/{name}", route)).await;
    });
    let names: Vec<String> = (0..8).map(|i| format!("race-{i}")).collect();
    for name in &names {
        finished(ns, name, port, serde_json::Value::Null).await?;
    }
    let client = rce_tests::client().await?;
    let policy = rce_api::callback::Policy::parse("127.0.0.1/32").map_err(anyhow::Error::msg)?;
    let a = rce_operator::callback::Callbacks::with_identity(policy.clone(), "replica-a");
    let b = rce_operator::callback::Callbacks::with_identity(policy, "replica-b");
    let api = ns.api::<Execution>();
    for name in &names {
        let exec = api.get(name).await?;
        a.consider(&exec, &client);
        b.consider(&exec, &client);
    }
    let until = Instant::now() + Duration::from_secs(30);
    let recorded = |cb: &Option<CallbackStatus>| cb.as_ref().is_some_and(|c| c.sending.is_none());
    loop {
        let mut done = 0;
        for name in &names {
            let cb = callback_of(ns, name).await?;
            if recorded(&cb) {
                done += 1;
            }
        }
        if done == names.len() || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A little longer: a second send would have come by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = got.lock().unwrap().clone();
    for name in &names {
        ensure!(counts.get(name) == Some(&1), "{name}: {:?} callbacks (all: {counts:?})", counts.get(name));
        let cb = callback_of(ns, name).await?.with_context(|| format!("{name}: nothing recorded"))?;
        ensure!(cb.delivered && cb.attempts == 1 && cb.sending.is_none(), "{name}: {cb:?}");
    }
    println!("{} Executions, each called back once: {counts:?}", names.len());
    hook.abort();
    drop((a, b));
    Ok(())
}

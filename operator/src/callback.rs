//! Result callbacks (`spec.callback`, Judge0's `callback_url`): once an Execution is
//! terminal, its result is PUT to the URL, as JSON, at most once it is recorded.
//!
//! Only destinations that `--callback-allow` admits are called ([`rce_api::callback`]): the
//! host is resolved here, each address is checked, and the connection goes to exactly the
//! address checked (no redirects are followed, no proxy is used), so a name that resolves to
//! a private address cannot reach it. Up to [`MAX_TRIES`] tries of [`TIMEOUT_SECS`] each (as
//! Judge0); any HTTP answer counts as delivered (as Judge0 counts it). `https` is refused for
//! now. How it went is recorded in `status.callback` (a status patch afterwards), so an
//! operator restarted after that does not send it again.
//!
//! Once per Execution whatever the number of replicas: before the first try the sender
//! claims the sending in the API, `status.callback.sending` = its identity and the time (a
//! merge patch carrying the `resourceVersion` it read: a precondition). Only the writer of
//! the claim sends; a conflict means the Execution changed since it was read (another replica
//! claimed it, or anything else), and it is read again and decided again. A claim by another
//! identity younger than [`CLAIM_STALE`] (the longest send: every try its whole timeout, the
//! pauses between; and a margin for the record and for clocks apart) is waited out, then
//! looked at again; an older one is a dead sender's and is taken over (the same claim, at the
//! version read: of several takers one wins). A claim by this very identity seen before
//! claiming is an earlier life's (a restart) and is taken over at once. So a live claimant is
//! never doubled, and a dead one's callback is still sent: at least once overall (a sender
//! killed between its send and its record is sent again by whoever takes over), at most once
//! per live claimant. The body is built before the claim, so nothing slow stands between the
//! claim and the send. The outcome replaces the claim (again at the version read); an outcome
//! already recorded by another sender is only replaced by a delivery it lacks.
//!
//! Deliveries run in tasks of their own (a slow destination does not hold a reconcile), owned
//! by [`Callbacks`]: dropped with the operator, as everything else.

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, SecondsFormat, Utc};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    api::{Api, Patch, PatchParams},
    Client, ResourceExt,
};
use rce_api::{
    callback::{Policy, Target, MAX_TRIES, TIMEOUT_SECS},
    CallbackClaim, CallbackFormat, CallbackStatus, Execution,
};
use tokio::task::JoinSet;

use crate::sandbox::MANAGER;

/// Pause between two tries.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Largest callback body.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Age past which a claim to send a callback is a dead sender's: the longest send
/// ([`MAX_TRIES`] × [`TIMEOUT_SECS`], the pauses between) and a minute for the record after
/// it and for the clocks of two replicas apart.
pub const CLAIM_STALE: Duration = Duration::from_secs(MAX_TRIES as u64 * TIMEOUT_SECS + 60);
/// Status writes (claim, record) tried at most this many times in a row.
const WRITE_TRIES: u32 = 10;

/// The callbacks of one operator process.
pub struct Callbacks {
    shared: Arc<Shared>,
    tasks: Mutex<JoinSet<()>>,
}

struct Shared {
    policy: Policy,
    /// Who this operator is in a claim (`status.callback.sending.by`).
    identity: String,
    /// Executions (by uid) whose callback is under way or done in this process.
    handled: Mutex<HashSet<String>>,
}

impl Callbacks {
    /// Callbacks that claim under an identity of their own: the host name and a random
    /// suffix (unique to the process).
    pub fn new(policy: Policy) -> Self {
        let host = crate::config::host_name();
        Self::with_identity(policy, &format!("{host}-{:08x}", rand::random::<u32>()))
    }

    /// Callbacks that claim as `identity` (the replica's, unique among the live ones).
    pub fn with_identity(policy: Policy, identity: &str) -> Self {
        Callbacks {
            shared: Arc::new(Shared { policy, identity: identity.to_string(), handled: Mutex::default() }),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// The identity claims are made under.
    pub fn identity(&self) -> &str {
        &self.shared.identity
    }

    /// Start the callback of `exec` if it is terminal, has one and has not recorded it yet.
    pub fn consider(&self, exec: &Execution, client: &Client) {
        let Some(uid) = exec.uid() else { return };
        if !needs_callback(exec) {
            return;
        }
        if !self.shared.handled.lock().unwrap_or_else(|p| p.into_inner()).insert(uid) {
            return;
        }
        let (shared, client, exec) = (self.shared.clone(), client.clone(), exec.clone());
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { shared.run(exec, client).await });
    }

    /// The Execution is gone: forget it.
    pub fn forget(&self, exec: &Execution) {
        if let Some(uid) = exec.uid() {
            self.shared.handled.lock().unwrap_or_else(|p| p.into_inner()).remove(&uid);
        }
    }
}

/// Terminal, with a callback, no outcome recorded (none, or only a claim to send it).
pub fn needs_callback(exec: &Execution) -> bool {
    let st = exec.status.as_ref();
    exec.spec.callback.is_some()
        && exec.metadata.deletion_timestamp.is_none()
        && st.and_then(|s| s.phase).is_some_and(|p| p.is_terminal())
        && st.and_then(|s| s.callback.as_ref()).is_none_or(|c| c.sending.is_some())
}

/// What to do about a callback whose `status.callback` is `recorded`, for the operator `me`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Claim the sending (nobody has, or the claimant is gone).
    Claim,
    /// Another live operator may be sending it: look again after this long.
    Wait(Duration),
    /// Its outcome is recorded.
    Done,
}

fn decide(recorded: Option<&CallbackStatus>, me: &str, now: DateTime<Utc>) -> Decision {
    let Some(recorded) = recorded else { return Decision::Claim };
    let Some(claim) = &recorded.sending else { return Decision::Done };
    if claim.by == me {
        // This identity's, yet not this process's task (it decides before it claims): a
        // claim of an earlier life of this operator, which sends no more.
        return Decision::Claim;
    }
    let Ok(since) = DateTime::parse_from_rfc3339(&claim.since) else { return Decision::Claim };
    let age = (now - since.with_timezone(&Utc)).to_std().unwrap_or(Duration::ZERO);
    match CLAIM_STALE.checked_sub(age) {
        Some(left) if !left.is_zero() => Decision::Wait(left),
        _ => Decision::Claim,
    }
}

/// Should `outcome` replace what `current` records? Yes over nothing or a claim (the outcome
/// of a send ends it, whoever claimed since); over another sender's outcome only when this
/// one was delivered and that one was not.
fn replaces(current: Option<&CallbackStatus>, outcome: &CallbackStatus) -> bool {
    match current {
        None => true,
        Some(c) if c.sending.is_some() => true,
        Some(c) => outcome.delivered && !c.delivered,
    }
}

/// The merge patch that writes `callback` over `status.callback` (every field set, so
/// nothing of an earlier claim or outcome stays), at `resource_version`.
fn callback_patch(resource_version: Option<String>, callback: &CallbackStatus) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "resourceVersion": resource_version },
        "status": { "callback": {
            "attempts": callback.attempts,
            "delivered": callback.delivered,
            "httpStatus": callback.http_status,
            "error": callback.error,
            "sending": callback.sending,
        } },
    })
}

/// How a conditional status write went.
enum Wrote {
    Done(Box<Execution>),
    /// The Execution changed since it was read (409).
    Conflict,
    /// It is gone.
    Gone,
    Failed(kube::Error),
}

async fn write(api: &Api<Execution>, exec: &Execution, callback: &CallbackStatus) -> Wrote {
    let patch = callback_patch(exec.resource_version(), callback);
    match api.patch_status(&exec.name_any(), &PatchParams::apply(MANAGER), &Patch::Merge(&patch)).await {
        Ok(e) => Wrote::Done(Box::new(e)),
        Err(kube::Error::Api(s)) if s.is_conflict() => Wrote::Conflict,
        Err(kube::Error::Api(s)) if s.is_not_found() => Wrote::Gone,
        Err(e) => Wrote::Failed(e),
    }
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Shared {
    async fn run(&self, exec: Execution, client: Client) {
        let (name, uid) = (exec.name_any(), exec.uid());
        let ns = exec.namespace().unwrap_or_default();
        let api = Api::<Execution>::namespaced(client.clone(), &ns);
        let forget = || {
            self.handled.lock().unwrap_or_else(|p| p.into_inner()).remove(&uid.clone().unwrap_or_default())
        };
        let mut failures = 0;
        let (exec, claim, body) = loop {
            // The latest copy: the cache may be behind a record or a claim made already.
            let exec = match api.get_opt(&name).await {
                Ok(Some(e)) if e.uid() == uid => e,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(execution = %name, error = %e, "reading the Execution for its callback");
                    forget();
                    return;
                }
            };
            if !needs_callback(&exec) {
                return;
            }
            let recorded = exec.status.as_ref().and_then(|s| s.callback.as_ref());
            match decide(recorded, &self.identity, Utc::now()) {
                Decision::Done => return,
                Decision::Wait(d) => {
                    let by = recorded.and_then(|c| c.sending.as_ref()).map(|c| c.by.clone());
                    tracing::debug!(execution = %name, by = ?by, wait = ?d, "another operator claimed the callback");
                    tokio::time::sleep(d + Duration::from_secs(1)).await;
                    continue;
                }
                Decision::Claim => {}
            }
            if self.policy.is_off() && recorded.is_none() {
                // Nothing will be sent from any replica: no claim, the refusal recorded at once
                // (every replica would record the same).
                let outcome =
                    deliver(&self.policy, exec.spec.callback.as_ref().map_or("", |c| &c.url), &[]).await;
                record(&api, &exec, &outcome).await;
                return;
            }
            if let Some(old) = recorded.and_then(|c| c.sending.as_ref()) {
                tracing::info!(execution = %name, by = %old.by, since = %old.since, "taking over a stale callback claim");
            }
            // Built before the claim: nothing slow stands between the claim and the send.
            let body = body(&exec, &client).await;
            let claim = CallbackClaim { by: self.identity.clone(), since: now_rfc3339() };
            let claimed = CallbackStatus { sending: Some(claim.clone()), ..Default::default() };
            match write(&api, &exec, &claimed).await {
                Wrote::Done(e) => {
                    let kept =
                        e.status.as_ref().and_then(|s| s.callback.as_ref()).and_then(|c| c.sending.as_ref());
                    if kept != Some(&claim) {
                        // Still this operator's alone (the write was at the version read), but
                        // the claim reads as an outcome: nobody takes it over if this one dies.
                        tracing::warn!(execution = %name, "the callback claim was not kept (pruned): the installed Execution CRD predates status.callback.sending; apply crds/rce.dev.yaml");
                    }
                    break (*e, claim, body);
                }
                Wrote::Conflict => {}
                Wrote::Gone => return,
                Wrote::Failed(e) => {
                    failures += 1;
                    if failures >= WRITE_TRIES {
                        tracing::warn!(execution = %name, error = %e, "claiming the callback failed; left for a later reconcile");
                        forget();
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        // The claim is written: this operator sends.
        let outcome = match body {
            Ok(body) => {
                deliver(&self.policy, exec.spec.callback.as_ref().map_or("", |c| &c.url), &body).await
            }
            Err(why) => CallbackStatus { error: Some(why), ..Default::default() },
        };
        tracing::info!(
            execution = %name, namespace = %ns, attempts = outcome.attempts,
            delivered = outcome.delivered, http_status = ?outcome.http_status, error = ?outcome.error,
            claimed_since = %claim.since, "result callback"
        );
        record(&api, &exec, &outcome).await;
    }
}

/// `status.callback` = `outcome` (the claim gone), at the version read: a conflict is read
/// again and decided again ([`replaces`]), a failure tried again (the API may be briefly
/// away), a few times.
async fn record(api: &Api<Execution>, exec: &Execution, outcome: &CallbackStatus) {
    let outcome = CallbackStatus { sending: None, ..outcome.clone() };
    let mut current = exec.clone();
    for _ in 0..WRITE_TRIES {
        if !replaces(current.status.as_ref().and_then(|s| s.callback.as_ref()), &outcome) {
            return;
        }
        match write(api, &current, &outcome).await {
            Wrote::Done(_) | Wrote::Gone => return,
            Wrote::Conflict => {}
            Wrote::Failed(e) => {
                tracing::warn!(execution = %exec.name_any(), error = %e, "recording the callback; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        current = match api.get_opt(&exec.name_any()).await {
            Ok(Some(e)) if e.uid() == exec.uid() => e,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(execution = %exec.name_any(), error = %e, "reading the Execution to record its callback");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
    }
    tracing::warn!(execution = %exec.name_any(), "the callback's outcome could not be recorded");
}

/// The body for the callback's format.
async fn body(exec: &Execution, client: &Client) -> Result<Vec<u8>, String> {
    let format = exec.spec.callback.as_ref().map(|c| c.format).unwrap_or_default();
    match format {
        // The status document, as in Redis (outputs beyond the excerpt: see `status.output`).
        CallbackFormat::Rce => {
            serde_json::to_vec(&crate::controller::document(exec)).map_err(|e| format!("encoding: {e}"))
        }
        CallbackFormat::Judge0 => {
            let stored = exec.status.as_ref().and_then(|s| s.output.as_ref());
            Ok(match stored {
                None => judge0_body(exec),
                Some(stored) => {
                    let bytes = stored_bytes(exec, stored, client).await?;
                    match rce_api::judge0::Outputs::from_stored(stored, &bytes) {
                        Some(outputs) => rce_api::judge0::callback_body_with(exec, outputs),
                        None => return Err("the stored output does not have the recorded length".into()),
                    }
                }
            })
        }
    }
}

/// The Judge0 rendering (the domain core's, shared with the shim).
fn judge0_body(exec: &Execution) -> Vec<u8> {
    rce_api::judge0::callback_body(exec)
}

/// The concatenated parts of the Execution's output ConfigMaps.
async fn stored_bytes(
    exec: &Execution,
    stored: &rce_api::StoredOutput,
    client: &Client,
) -> Result<Vec<u8>, String> {
    let api = Api::<ConfigMap>::namespaced(client.clone(), &exec.namespace().unwrap_or_default());
    let mut bytes = Vec::new();
    for name in &stored.config_maps {
        let cm = api
            .get_opt(name)
            .await
            .map_err(|e| format!("reading the output ConfigMap {name}: {e}"))?
            .filter(|cm| crate::outputs::owned_by(cm, exec))
            .ok_or_else(|| format!("the output ConfigMap {name} is missing"))?;
        bytes.extend_from_slice(crate::outputs::part_of(&cm).unwrap_or_default());
    }
    Ok(bytes)
}

/// PUT `body` to `url` under `policy`: up to [`MAX_TRIES`] tries of [`TIMEOUT_SECS`].
pub async fn deliver(policy: &Policy, url: &str, body: &[u8]) -> CallbackStatus {
    let mut st = CallbackStatus::default();
    let target = match policy.check_url(url) {
        Ok(t) => t,
        Err(e) => {
            st.error = Some(e.0);
            return st;
        }
    };
    if target.url.scheme() == "https" {
        st.error = Some(format!("callback URL {url:?} is not called: https callbacks are not supported yet"));
        return st;
    }
    if body.len() > MAX_BODY {
        st.error = Some(format!("the callback body is {} bytes; at most {MAX_BODY} are sent", body.len()));
        return st;
    }
    let timeout = Duration::from_secs(TIMEOUT_SECS);
    for n in 1..=MAX_TRIES {
        st.attempts = n;
        let tried = tokio::time::timeout(timeout, attempt(policy, &target, body)).await;
        match tried {
            Ok(Ok(code)) => {
                st.delivered = true;
                st.http_status = Some(code);
                st.error = None;
                return st;
            }
            Ok(Err(Try::Refused(why))) => {
                st.error = Some(why);
                return st;
            }
            Ok(Err(Try::Failed(why))) => st.error = Some(why),
            Err(_) => st.error = Some(format!("no answer within {TIMEOUT_SECS} s")),
        }
        if n < MAX_TRIES {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    st
}

/// Why one try did not get an answer.
#[derive(Debug)]
enum Try {
    /// No address of the host is admitted: trying again changes nothing.
    Refused(String),
    Failed(String),
}

/// The address to connect to: the first one of the host that the policy admits.
async fn address(policy: &Policy, target: &Target) -> Result<SocketAddr, Try> {
    let candidates: Vec<IpAddr> = match target.ip {
        Some(ip) => vec![ip],
        None => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| Try::Failed(format!("cannot resolve {}: {e}", target.host)))?
            .map(|a| a.ip())
            .collect(),
    };
    candidates
        .iter()
        .find(|ip| policy.admits(&target.host, **ip))
        .map(|ip| SocketAddr::new(*ip, target.port))
        .ok_or_else(|| {
            let list: Vec<String> = candidates.iter().map(ToString::to_string).collect();
            Try::Refused(format!(
                "callback host {} resolves to {} which the server's callback allow-list does not admit",
                target.host,
                if list.is_empty() { "no address".to_string() } else { list.join(", ") }
            ))
        })
}

/// One PUT over a connection to exactly the admitted address; the answer's status.
async fn attempt(policy: &Policy, target: &Target, body: &[u8]) -> Result<u16, Try> {
    let addr = address(policy, target).await?;
    let failed = |what: &str, e: &dyn std::fmt::Display| Try::Failed(format!("{what} {addr}: {e}"));
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| failed("cannot connect to", &e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| failed("HTTP handshake with", &e))?;
    let conn = tokio::spawn(conn);
    let mut path = target.url.path().to_string();
    if let Some(q) = target.url.query() {
        path.push('?');
        path.push_str(q);
    }
    let host = match (target.url.host_str(), target.url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => target.host.clone(),
    };
    let req = http::Request::put(path)
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "rce-operator")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| failed("building the request to", &e))?;
    let result = sender.send_request(req).await;
    let answer = match result {
        Ok(resp) => {
            let code = resp.status().as_u16();
            // Read (and drop) a little of the answer, so the peer is not cut off mid-write.
            let _ = tokio::time::timeout(Duration::from_millis(200), resp.into_body().collect()).await;
            Ok(code)
        }
        Err(e) => Err(failed("PUT to", &e)),
    };
    conn.abort();
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(by: &str, since: DateTime<Utc>) -> CallbackStatus {
        let since = since.to_rfc3339_opts(SecondsFormat::Millis, true);
        CallbackStatus { sending: Some(CallbackClaim { by: by.into(), since }), ..Default::default() }
    }

    #[test]
    fn a_live_claim_is_waited_out_a_stale_or_own_one_taken_over_an_outcome_left() {
        let now = Utc::now();
        let stale = chrono::Duration::from_std(CLAIM_STALE).unwrap();
        assert_eq!(decide(None, "me", now), Decision::Claim);
        // Another operator's claim, 10 s old: wait until it would be stale.
        let fresh = claimed("other", now - chrono::Duration::seconds(10));
        match decide(Some(&fresh), "me", now) {
            Decision::Wait(d) => {
                let left = CLAIM_STALE - Duration::from_secs(10);
                assert!(d <= left && d + Duration::from_secs(1) > left, "{d:?}");
            }
            other => panic!("{other:?}"),
        }
        // From a clock ahead of this one: still waited for, at most the whole staleness.
        let ahead = claimed("other", now + chrono::Duration::seconds(5));
        assert_eq!(decide(Some(&ahead), "me", now), Decision::Wait(CLAIM_STALE));
        // As old as a send can take and the margin: the sender is gone.
        assert_eq!(decide(Some(&claimed("other", now - stale)), "me", now), Decision::Claim);
        assert_eq!(decide(Some(&claimed("other", now - stale * 10)), "me", now), Decision::Claim);
        // This identity's own, seen before claiming: an earlier life's.
        assert_eq!(decide(Some(&claimed("me", now)), "me", now), Decision::Claim);
        // An unreadable time cannot prove a live sender.
        let garbled = CallbackStatus {
            sending: Some(CallbackClaim { by: "other".into(), since: "yesterday".into() }),
            ..Default::default()
        };
        assert_eq!(decide(Some(&garbled), "me", now), Decision::Claim);
        // An outcome (delivered or not): done.
        let sent =
            CallbackStatus { attempts: 1, delivered: true, http_status: Some(200), ..Default::default() };
        assert_eq!(decide(Some(&sent), "me", now), Decision::Done);
        let failed = CallbackStatus { attempts: 3, error: Some("no".into()), ..Default::default() };
        assert_eq!(decide(Some(&failed), "me", now), Decision::Done);
        // The longest send fits well within the staleness.
        assert!(CLAIM_STALE > Duration::from_secs(MAX_TRIES as u64 * TIMEOUT_SECS) + RETRY_PAUSE * MAX_TRIES);
    }

    #[test]
    fn an_outcome_replaces_a_claim_and_only_a_worse_outcome() {
        let now = Utc::now();
        let sent =
            CallbackStatus { attempts: 1, delivered: true, http_status: Some(200), ..Default::default() };
        let failed = CallbackStatus { attempts: 3, error: Some("no".into()), ..Default::default() };
        assert!(replaces(None, &failed));
        assert!(replaces(Some(&claimed("me", now)), &failed));
        assert!(replaces(Some(&claimed("other", now)), &sent));
        assert!(replaces(Some(&failed), &sent));
        assert!(!replaces(Some(&sent), &sent));
        assert!(!replaces(Some(&sent), &failed));
        assert!(!replaces(Some(&failed), &failed));
    }

    #[test]
    fn the_patches_carry_the_version_read_and_every_field() {
        let claim = claimed("me", Utc::now());
        let p = callback_patch(Some("42".into()), &claim);
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        let cb = &p["status"]["callback"];
        assert_eq!(cb["sending"]["by"], "me");
        // An earlier outcome's fields are cleared by the claim, the claim by the outcome.
        assert!(cb["httpStatus"].is_null() && cb["error"].is_null(), "{p}");
        assert!(cb.as_object().unwrap().contains_key("httpStatus"), "{p}");
        let out =
            CallbackStatus { attempts: 2, delivered: true, http_status: Some(204), ..Default::default() };
        let p = callback_patch(Some("43".into()), &out);
        let cb = &p["status"]["callback"];
        assert_eq!((cb["attempts"].as_u64(), cb["delivered"].as_bool()), (Some(2), Some(true)));
        assert!(cb.as_object().unwrap().contains_key("sending") && cb["sending"].is_null(), "{p}");
    }

    #[tokio::test]
    async fn refused_destinations_are_never_called() {
        // Off by default.
        let st = deliver(&Policy::default(), "http://127.0.0.1:9/cb", b"{}").await;
        assert_eq!((st.attempts, st.delivered), (0, false));
        assert!(st.error.as_deref().unwrap().contains("not enabled"), "{st:?}");
        // `public` does not admit loopback, private or metadata addresses.
        let public = Policy::parse("public").unwrap();
        for url in ["http://127.0.0.1:9/", "http://10.0.0.1/", "http://169.254.169.254/", "http://[::1]:9/"] {
            let st = deliver(&public, url, b"{}").await;
            assert_eq!(st.attempts, 0, "{url}");
            assert!(st.error.as_deref().unwrap().contains("not admitted"), "{url}: {st:?}");
        }
        // A name that resolves to loopback is refused at the address.
        let st = deliver(&Policy::parse("localhost").unwrap(), "http://localhost:9/", b"{}").await;
        assert!(!st.delivered && st.error.as_deref().unwrap().contains("not admitted"), "{st:?}");
        let st = deliver(&Policy::parse("127.0.0.1/32").unwrap(), "https://127.0.0.1:9/", b"{}").await;
        assert!(st.error.as_deref().unwrap().contains("https"), "{st:?}");
    }

    #[tokio::test]
    async fn a_put_with_the_body_and_then_no_more() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"{\"a\":1}") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.unwrap();
            String::from_utf8(got).unwrap()
        });
        let policy = Policy::parse("127.0.0.1/32").unwrap();
        let st = deliver(&policy, &format!("http://127.0.0.1:{port}/cb?x=1"), b"{\"a\":1}").await;
        assert_eq!(
            st,
            CallbackStatus {
                attempts: 1,
                delivered: true,
                http_status: Some(204),
                error: None,
                sending: None
            }
        );
        let req = server.await.unwrap();
        assert!(req.starts_with("PUT /cb?x=1 HTTP/1.1\r\n"), "{req}");
        let lower = req.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/json"), "{req}");
        assert!(lower.contains(&format!("host: 127.0.0.1:{port}")), "{req}");
        // Nothing listens any more: every try fails, and says why.
        let st = deliver(&policy, &format!("http://127.0.0.1:{port}/cb"), b"{}").await;
        assert_eq!((st.attempts, st.delivered), (MAX_TRIES, false));
        assert!(st.error.as_deref().unwrap().contains("cannot connect"), "{st:?}");
    }
}

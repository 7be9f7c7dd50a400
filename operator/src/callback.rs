//! Result callbacks (`spec.callback`, Judge0's `callback_url`): once an Execution is
//! terminal, its result is PUT to the URL, as JSON, at most once it is recorded.
//!
//! Only destinations that `--callback-allow` admits are called ([`rce_api::callback`]): the
//! host is resolved here, each address is checked, and the connection goes to exactly the
//! address checked (no redirects are followed, no proxy is used), so a name that resolves to
//! a private address cannot reach it. Up to [`MAX_TRIES`] tries of [`TIMEOUT_SECS`] each (as
//! Judge0); any HTTP answer counts as delivered (as Judge0 counts it). `https` is refused for
//! now. How it went is recorded in `status.callback` (a status patch afterwards), so an
//! operator restarted after that does not send it again; one killed between the send and the
//! record sends it again (at least once).
//!
//! Deliveries run in tasks of their own (a slow destination does not hold a reconcile), owned
//! by [`Callbacks`]: dropped with the operator, as everything else.

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    api::{Api, Patch, PatchParams},
    Client, ResourceExt,
};
use rce_api::{
    callback::{Policy, Target, MAX_TRIES, TIMEOUT_SECS},
    CallbackFormat, CallbackStatus, Execution,
};
use tokio::task::JoinSet;

use crate::sandbox::MANAGER;

/// Pause between two tries.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Largest callback body.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The callbacks of one operator process.
pub struct Callbacks {
    shared: Arc<Shared>,
    tasks: Mutex<JoinSet<()>>,
}

struct Shared {
    policy: Policy,
    /// Executions (by uid) whose callback is under way or done in this process.
    handled: Mutex<HashSet<String>>,
}

impl Callbacks {
    pub fn new(policy: Policy) -> Self {
        Callbacks {
            shared: Arc::new(Shared { policy, handled: Mutex::default() }),
            tasks: Mutex::new(JoinSet::new()),
        }
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

/// Terminal, with a callback, none recorded.
pub fn needs_callback(exec: &Execution) -> bool {
    let st = exec.status.as_ref();
    exec.spec.callback.is_some()
        && exec.metadata.deletion_timestamp.is_none()
        && st.and_then(|s| s.phase).is_some_and(|p| p.is_terminal())
        && st.and_then(|s| s.callback.as_ref()).is_none()
}

impl Shared {
    async fn run(&self, exec: Execution, client: Client) {
        let ns = exec.namespace().unwrap_or_default();
        let api = Api::<Execution>::namespaced(client.clone(), &ns);
        // The latest copy: the cache may be behind a record made already.
        let exec = match api.get_opt(&exec.name_any()).await {
            Ok(Some(e)) if e.uid() == exec.uid() => e,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(execution = %exec.name_any(), error = %e, "reading the Execution for its callback");
                self.handled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&exec.uid().unwrap_or_default());
                return;
            }
        };
        if !needs_callback(&exec) {
            return;
        }
        let outcome = match body(&exec, &client).await {
            Ok(body) => {
                deliver(&self.policy, exec.spec.callback.as_ref().map_or("", |c| &c.url), &body).await
            }
            Err(why) => CallbackStatus { error: Some(why), ..Default::default() },
        };
        tracing::info!(
            execution = %exec.name_any(), namespace = %ns, attempts = outcome.attempts,
            delivered = outcome.delivered, http_status = ?outcome.http_status, error = ?outcome.error,
            "result callback"
        );
        record(&api, &exec, &outcome).await;
    }
}

/// `status.callback`, with a few tries (the API may be briefly away).
async fn record(api: &Api<Execution>, exec: &Execution, outcome: &CallbackStatus) {
    let patch = serde_json::json!({ "status": { "callback": outcome } });
    for _ in 0..5 {
        match api.patch_status(&exec.name_any(), &PatchParams::apply(MANAGER), &Patch::Merge(&patch)).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.is_not_found() => return,
            Err(e) => {
                tracing::warn!(execution = %exec.name_any(), error = %e, "recording the callback; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
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
        assert_eq!(st, CallbackStatus { attempts: 1, delivered: true, http_status: Some(204), error: None });
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

//! The Redis status mirror: `GET` of a status document, `SUBSCRIBE` to its channel, the
//! shared rate-limit buckets, the operator's capacity document. Connections are lazy and
//! bounded by timeouts, so a dead Redis degrades the shim to the Kubernetes API instead of
//! hanging it.
//!
//! Subscriptions: one pub/sub connection per replica (the [`Hub`]), whatever the number of
//! streaming clients (SSE, WebSocket, `wait=true`, Piston): a channel is subscribed while at
//! least one client follows it (reference counted) and its messages fan out through a
//! broadcast. When the connection is lost, every follower gets [`Published::Lost`] (it polls
//! the Kubernetes API meanwhile); the hub reconnects with backoff, subscribes every live
//! channel again, and says [`Published::Resumed`] (the follower re-reads the document: an
//! update may have been published in between).
//!
//! Connection names (`CLIENT LIST`): `rce-shim-<pid>-<n>-pubsub` for the hub,
//! `rce-shim-<pid>-<n>-live` for a live-output reader (`n` numbers the stores of a process).

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, OnceLock, Weak,
    },
    time::Duration,
};

use futures::{future::BoxFuture, stream::BoxStream, StreamExt};
use rce_api::redis_keys::{live_key, status_channel, status_key, stdin_key, StatusDocument, LIVE_TTL_SECS};
use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, AsyncCommands, PushInfo, PushKind};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{
    auth::{digest, Rate},
    backend::{BackendError, Capacity, Live, Published, StatusStore, StdinEntry},
};

/// Prefix of a shared rate-limit bucket's key; the rest is the SHA-256 of the bucket's id.
pub const RATE_LIMIT_PREFIX: &str = "rce:ratelimit:";
/// The operator's capacity document.
pub const CAPACITY_KEY: &str = "rce:capacity";

/// The token bucket, atomically, on Redis's clock (`TIME`), so replicas whose clocks
/// disagree still agree. KEYS[1] the bucket; ARGV rate (tokens/s) and burst. The bucket is a
/// hash `{t: tokens, at: microseconds}` that expires once it would be full again. Returns
/// `{1, 0}` admitted or `{0, seconds to wait}` (the deficit over the rate, rounded up: the
/// in-process bucket's Retry-After).
pub const TOKEN_BUCKET_LUA: &str = r#"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = tokens + (now - at) / 1000000 * rate
  at = now
end
if tokens > burst then tokens = burst end
local ok, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
elseif rate <= 0 then
  wait = 60
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'at', string.format('%.0f', at))
local ttl = 60000
if rate > 0 then ttl = math.ceil((burst - tokens) / rate * 1000) + 1000 end
redis.call('PEXPIRE', KEYS[1], ttl)
return {ok, wait}
"#;

/// The SHA-1 of [`TOKEN_BUCKET_LUA`] (its `EVALSHA` name).
fn script_sha() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| {
        use sha1::Digest;
        sha1::Sha1::digest(TOKEN_BUCKET_LUA.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// The Redis key of a bucket.
pub fn rate_limit_key(bucket: &str) -> String {
    format!("{RATE_LIMIT_PREFIX}{}", digest(bucket))
}

/// How long one `XREAD BLOCK` waits (ms) before the reader looks again (a reader whose
/// consumer went away is dropped at the latest then).
const LIVE_BLOCK_MS: u64 = 1000;
/// Entries read per `XREAD`: the most a live reader holds before its consumer takes them.
const LIVE_BATCH: usize = 100;

pub struct RedisStatus {
    client: redis::Client,
    conn: ConnectionManager,
    timeout: Duration,
    /// `rce-shim-<pid>-<n>`: the start of this store's connection names.
    name: String,
    hub: OnceLock<Arc<Hub>>,
}

impl RedisStatus {
    pub fn new(url: &str) -> anyhow::Result<RedisStatus> {
        static STORES: AtomicU64 = AtomicU64::new(0);
        let name = format!("rce-shim-{}-{}", std::process::id(), STORES.fetch_add(1, Ordering::Relaxed) + 1);
        let client = redis::Client::open(url)?;
        let timeout = Duration::from_secs(2);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(RedisStatus { client, conn, timeout, name, hub: OnceLock::new() })
    }

    /// The start of this store's connection names (`rce-shim-<pid>-<n>`).
    pub fn client_name(&self) -> &str {
        &self.name
    }

    /// The pub/sub hub (started on first use).
    fn hub(&self) -> anyhow::Result<&Arc<Hub>> {
        if let Some(h) = self.hub.get() {
            return Ok(h);
        }
        // RESP3: subscriptions and commands (CLIENT SETNAME, PING) on one connection.
        let info = self.client.get_connection_info().clone();
        let resp3 = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3))?;
        let hub = Hub::start(client, format!("{}-pubsub", self.name), self.timeout);
        Ok(self.hub.get_or_init(|| hub))
    }
}

/// A channel followed by at least one client.
struct Channel {
    tx: broadcast::Sender<Published>,
    refs: usize,
    /// A follower was told [`Published::Lost`]: say [`Published::Resumed`] once subscribed.
    lost: bool,
}

enum Cmd {
    /// Subscribe (if not yet); answer whether it is subscribed now.
    Sub(String, oneshot::Sender<bool>),
    /// Unsubscribe, if no client follows it any more.
    Unsub(String),
}

/// One pub/sub connection for every follower of this replica (see the module's
/// documentation).
pub struct Hub {
    channels: Mutex<HashMap<String, Channel>>,
    cmds: mpsc::UnboundedSender<Cmd>,
    connected: AtomicBool,
    /// Turns true once the first connection attempt is over (either way).
    tried: tokio::sync::watch::Sender<bool>,
    timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Backoff between connection attempts: from 100 ms, doubling, to 5 s.
const HUB_BACKOFF_MIN: Duration = Duration::from_millis(100);
const HUB_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the hub checks that its connection still answers.
const HUB_PING_EVERY: Duration = Duration::from_secs(5);

impl Hub {
    fn start(client: redis::Client, name: String, timeout: Duration) -> Arc<Hub> {
        let (cmds, rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub {
            channels: Mutex::new(HashMap::new()),
            cmds,
            connected: AtomicBool::new(false),
            tried: tokio::sync::watch::channel(false).0,
            timeout,
        });
        tokio::spawn(hub_loop(Arc::downgrade(&hub), client, name, timeout, rx));
        hub
    }

    /// Tell every follower the connection is lost.
    fn lost(&self) {
        for c in lock(&self.channels).values_mut() {
            c.lost = true;
            let _ = c.tx.send(Published::Lost);
        }
    }

    /// Tell the followers told [`Published::Lost`] that they are subscribed again.
    fn resumed(&self) {
        for c in lock(&self.channels).values_mut().filter(|c| c.lost) {
            c.lost = false;
            let _ = c.tx.send(Published::Resumed);
        }
    }

    /// Follow `channel`: resolves once it is subscribed (or at once, starting with
    /// [`Published::Lost`], when Redis is unreachable).
    async fn follow(self: &Arc<Hub>, channel: String) -> BoxStream<'static, Published> {
        let rx = {
            let mut map = lock(&self.channels);
            let c = map.entry(channel.clone()).or_insert_with(|| Channel {
                tx: broadcast::channel(64).0,
                refs: 0,
                lost: false,
            });
            c.refs += 1;
            c.tx.subscribe()
        };
        let guard = Follower { hub: self.clone(), channel: channel.clone() };
        // The hub's first connection may still be on its way (the first follower starts it).
        let mut tried = self.tried.subscribe();
        let _ = tokio::time::timeout(self.timeout, tried.wait_for(|t| *t)).await;
        let subscribed = self.connected.load(Ordering::Acquire) && {
            let (ack, answer) = oneshot::channel();
            self.cmds.send(Cmd::Sub(channel.clone(), ack)).is_ok()
                && matches!(tokio::time::timeout(self.timeout, answer).await, Ok(Ok(true)))
        };
        if !subscribed {
            if let Some(c) = lock(&self.channels).get_mut(&channel) {
                c.lost = true;
            }
            // Connected in the meantime: subscribe, and the hub says Resumed.
            if self.connected.load(Ordering::Acquire) {
                let _ = self.cmds.send(Cmd::Sub(channel.clone(), oneshot::channel().0));
            }
        }
        let first = (!subscribed).then_some(Published::Lost);
        let rest = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
            match rx.recv().await {
                Ok(p) => Some((p, (rx, guard))),
                // Messages were dropped for this slow follower: it re-reads.
                Err(broadcast::error::RecvError::Lagged(_)) => Some((Published::Resumed, (rx, guard))),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        futures::stream::iter(first).chain(rest).boxed()
    }
}

/// One client following a channel; unsubscribes the channel when the last one goes.
struct Follower {
    hub: Arc<Hub>,
    channel: String,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let mut map = lock(&self.hub.channels);
        if let Some(c) = map.get_mut(&self.channel) {
            c.refs = c.refs.saturating_sub(1);
            if c.refs == 0 {
                map.remove(&self.channel);
                let _ = self.hub.cmds.send(Cmd::Unsub(self.channel.clone()));
            }
        }
    }
}

/// The channel and payload of a pub/sub message.
fn message_of(push: PushInfo) -> Option<(String, StatusDocument)> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let channel = text(push.data.first()?)?;
    let payload = text(push.data.get(1)?)?;
    Some((channel, serde_json::from_str(&payload).ok()?))
}

/// The hub's connection: connect, subscribe every live channel, serve subscriptions and fan
/// messages out until the connection breaks; then tell every follower, back off, and again.
async fn hub_loop(
    hub: Weak<Hub>,
    client: redis::Client,
    name: String,
    timeout: Duration,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut backoff = HUB_BACKOFF_MIN;
    loop {
        let (push_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(push_tx);
        let connected = tokio::time::timeout(timeout, async {
            let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
            redis::cmd("CLIENT").arg("SETNAME").arg(&name).query_async::<()>(&mut conn).await?;
            Ok::<_, redis::RedisError>(conn)
        })
        .await;
        if let Ok(Ok(mut conn)) = connected {
            let Some(h) = hub.upgrade() else { return };
            let live: Vec<String> = lock(&h.channels).keys().cloned().collect();
            let resubscribed = live.is_empty()
                || matches!(tokio::time::timeout(timeout, conn.subscribe(&live)).await, Ok(Ok(())));
            if resubscribed {
                let mut subscribed: HashSet<String> = live.into_iter().collect();
                h.connected.store(true, Ordering::Release);
                let _ = h.tried.send_replace(true);
                tracing::info!(connection = %name, channels = subscribed.len(), "redis pub/sub connected");
                // Followers that came while it was down, or saw it go: re-read.
                h.resumed();
                backoff = HUB_BACKOFF_MIN;
                drop(h);
                let mut ping =
                    tokio::time::interval_at(tokio::time::Instant::now() + HUB_PING_EVERY, HUB_PING_EVERY);
                loop {
                    tokio::select! {
                        cmd = cmds.recv() => match cmd {
                            None => return,
                            Some(Cmd::Sub(channel, ack)) => {
                                if !subscribed.contains(&channel) {
                                    if !matches!(tokio::time::timeout(timeout, conn.subscribe(&channel)).await, Ok(Ok(()))) {
                                        let _ = ack.send(false);
                                        break;
                                    }
                                    subscribed.insert(channel.clone());
                                }
                                let _ = ack.send(true);
                                let Some(h) = hub.upgrade() else { return };
                                let mut map = lock(&h.channels);
                                if let Some(c) = map.get_mut(&channel).filter(|c| c.lost) {
                                    c.lost = false;
                                    let _ = c.tx.send(Published::Resumed);
                                }
                            }
                            Some(Cmd::Unsub(channel)) => {
                                let Some(h) = hub.upgrade() else { return };
                                let followed = lock(&h.channels).contains_key(&channel);
                                if !followed && subscribed.remove(&channel)
                                    && !matches!(tokio::time::timeout(timeout, conn.unsubscribe(&channel)).await, Ok(Ok(())))
                                {
                                    break;
                                }
                            }
                        },
                        push = pushes.recv() => match push {
                            None => break,
                            Some(p) if p.kind == PushKind::Disconnection => break,
                            Some(p) if p.kind == PushKind::Message => {
                                let Some(h) = hub.upgrade() else { return };
                                if let Some((channel, doc)) = message_of(p) {
                                    if let Some(c) = lock(&h.channels).get(&channel) {
                                        let _ = c.tx.send(Published::Doc(Box::new(doc)));
                                    }
                                }
                            }
                            Some(_) => {}
                        },
                        _ = ping.tick() => {
                            let pong = tokio::time::timeout(timeout, redis::cmd("PING").query_async::<redis::Value>(&mut conn)).await;
                            if !matches!(pong, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
            }
            let Some(h) = hub.upgrade() else { return };
            if h.connected.swap(false, Ordering::AcqRel) {
                tracing::warn!(connection = %name, "redis pub/sub connection lost; followers poll until it is back");
            }
            h.lost();
        }
        match hub.upgrade() {
            Some(h) => {
                let _ = h.tried.send_replace(true);
            }
            None => return,
        }
        // Back off; subscriptions asked meanwhile are answered "not subscribed".
        let until = tokio::time::Instant::now() + backoff;
        backoff = (backoff * 2).min(HUB_BACKOFF_MAX);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                cmd = cmds.recv() => match cmd {
                    None => return,
                    Some(Cmd::Sub(_, ack)) => { let _ = ack.send(false); }
                    Some(Cmd::Unsub(_)) => {}
                },
            }
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(format!("redis: {e}"))
}

impl StatusStore for RedisStatus {
    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'_, Result<Option<StatusDocument>, BackendError>> {
        let key = status_key(namespace, name);
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let raw: Option<String> = tokio::time::timeout(self.timeout, conn.get(&key))
                .await
                .map_err(|_| unavailable("timed out"))?
                .map_err(unavailable)?;
            match raw {
                None => Ok(None),
                Some(s) => match serde_json::from_str(&s) {
                    Ok(doc) => Ok(Some(doc)),
                    Err(e) => {
                        tracing::warn!(%key, error = %e, "unreadable status document; ignoring it");
                        Ok(None)
                    }
                },
            }
        })
    }

    fn subscribe(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Published>, BackendError>> {
        let channel = status_channel(namespace, name);
        Box::pin(async move {
            let hub = self.hub().map_err(unavailable)?;
            Ok(hub.follow(channel).await)
        })
    }

    fn take_token(&self, bucket: &str, rate: Rate) -> BoxFuture<'_, Result<Result<(), u64>, BackendError>> {
        let key = rate_limit_key(bucket);
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let eval = |cmd: &str, body: &str| {
                let mut c = redis::cmd(cmd);
                c.arg(body).arg(1).arg(&key).arg(rate.per_sec).arg(rate.burst);
                c
            };
            let reply: redis::RedisResult<(i64, i64)> =
                match eval("EVALSHA", script_sha()).query_async(&mut conn).await {
                    Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                        eval("EVAL", TOKEN_BUCKET_LUA).query_async(&mut conn).await
                    }
                    other => other,
                };
            let (ok, wait) = reply.map_err(unavailable)?;
            Ok(if ok == 1 { Ok(()) } else { Err(u64::try_from(wait).unwrap_or(1).max(1)) })
        })
    }

    fn capacity(&self) -> BoxFuture<'_, Option<Capacity>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let raw: Option<String> =
                tokio::time::timeout(self.timeout, conn.get(CAPACITY_KEY)).await.ok()?.ok()?;
            serde_json::from_str(&raw?).ok()
        })
    }

    fn live(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Live>, BackendError>> {
        let key = live_key(namespace, name);
        Box::pin(async move {
            // A connection of its own: a blocking read would stall every other request on
            // the multiplexed one.
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout + Duration::from_millis(LIVE_BLOCK_MS)));
            let conn = tokio::time::timeout(
                self.timeout,
                self.client.get_multiplexed_async_connection_with_config(&config),
            )
            .await
            .map_err(|_| unavailable("timed out"))?
            .map_err(unavailable)?;
            let mut conn = conn;
            let _ = redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(format!("{}-live", self.name))
                .query_async::<()>(&mut conn)
                .await;
            let state = Some((conn, key, "0".to_string()));
            let batches = futures::stream::unfold(state, |state| async move {
                let (mut conn, key, mut last) = state?;
                loop {
                    let reply: redis::RedisResult<redis::Value> = redis::cmd("XREAD")
                        .arg("COUNT")
                        .arg(LIVE_BATCH)
                        .arg("BLOCK")
                        .arg(LIVE_BLOCK_MS)
                        .arg("STREAMS")
                        .arg(&key)
                        .arg(&last)
                        .query_async(&mut conn)
                        .await;
                    let entries = match reply {
                        Ok(v) => stream_entries(v),
                        Err(e) => {
                            tracing::warn!(%key, error = %e, "live stream read failed; no more live output");
                            return None;
                        }
                    };
                    if entries.is_empty() {
                        continue;
                    }
                    let mut out = Vec::with_capacity(entries.len());
                    let mut ended = false;
                    for (id, entry) in entries {
                        last = id;
                        if let Some(e) = entry {
                            ended |= e == Live::End;
                            out.push(e);
                            if ended {
                                break;
                            }
                        }
                    }
                    let next = if ended { None } else { Some((conn, key, last)) };
                    return Some((futures::stream::iter(out), next));
                }
            });
            Ok(batches.flatten().boxed())
        })
    }

    fn send_stdin(
        &self,
        namespace: &str,
        name: &str,
        entry: StdinEntry,
    ) -> BoxFuture<'_, Result<(), BackendError>> {
        let key = stdin_key(namespace, name);
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let mut xadd = redis::cmd("XADD");
            xadd.arg(&key).arg("*");
            for (f, v) in entry.fields() {
                xadd.arg(f).arg(v);
            }
            let mut pipe = redis::pipe();
            pipe.add_command(xadd).ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(LIVE_TTL_SECS).ignore();
            tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut conn))
                .await
                .map_err(|_| unavailable("timed out"))?
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn ping(&self) -> BoxFuture<'_, bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            matches!(
                tokio::time::timeout(self.timeout, redis::cmd("PING").query_async::<String>(&mut conn)).await,
                Ok(Ok(_))
            )
        })
    }
}

/// The entries of an `XREAD` reply for one stream (RESP2 arrays or RESP3 maps): each entry's
/// id and, when its kind is known, the entry. Nil (the block timed out): none.
fn stream_entries(reply: redis::Value) -> Vec<(String, Option<Live>)> {
    use redis::Value as V;
    let streams: Vec<(V, V)> = match reply {
        V::Array(items) => items
            .into_iter()
            .filter_map(|s| match s {
                V::Array(mut kv) if kv.len() == 2 => {
                    let v = kv.pop()?;
                    Some((kv.pop()?, v))
                }
                _ => None,
            })
            .collect(),
        V::Map(pairs) => pairs,
        _ => return Vec::new(),
    };
    let text = |v: &V| match v {
        V::BulkString(b) => Some(b.clone()),
        V::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    };
    let mut out = Vec::new();
    for (_, entries) in streams {
        let V::Array(entries) = entries else { continue };
        for e in entries {
            let V::Array(parts) = e else { continue };
            let [id, fields] = <[V; 2]>::try_from(parts).unwrap_or([V::Nil, V::Nil]);
            let Some(id) = text(&id).map(|b| String::from_utf8_lossy(&b).into_owned()) else { continue };
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = match fields {
                V::Array(f) => {
                    f.chunks(2).filter_map(|c| Some((text(c.first()?)?, text(c.get(1)?)?))).collect()
                }
                V::Map(m) => m.iter().filter_map(|(k, v)| Some((text(k)?, text(v)?))).collect(),
                _ => Vec::new(),
            };
            let field = |name: &[u8]| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let entry = field(b"k").and_then(|k| Live::from_fields(&k, field(b"d")));
            out.push((id, entry));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value as V;

    fn bulk(s: &str) -> V {
        V::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn xread_replies_become_entries() {
        let entry = |id: &str, f: Vec<V>| V::Array(vec![bulk(id), V::Array(f)]);
        let reply = V::Array(vec![V::Array(vec![
            bulk("rce:live:ns:x"),
            V::Array(vec![
                entry("1-0", vec![bulk("k"), bulk("stage"), bulk("d"), bulk("run")]),
                entry("2-0", vec![bulk("k"), bulk("stdout"), bulk("d"), V::BulkString(vec![0xff, b'a'])]),
                entry("3-0", vec![bulk("k"), bulk("later-kind")]),
                entry("4-0", vec![bulk("k"), bulk("end")]),
            ]),
        ])]);
        let got = stream_entries(reply);
        assert_eq!(
            got,
            vec![
                ("1-0".into(), Some(Live::Stage("run".into()))),
                (
                    "2-0".into(),
                    Some(Live::Output { stream: crate::backend::OutStream::Stdout, data: vec![0xff, b'a'] })
                ),
                ("3-0".into(), None),
                ("4-0".into(), Some(Live::End)),
            ]
        );
        assert!(stream_entries(V::Nil).is_empty());
    }
}

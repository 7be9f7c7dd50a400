//! Live output and interactive stdin through Redis Streams ([`rce_api::redis_keys::live_key`],
//! [`rce_api::redis_keys::stdin_key`]).
//!
//! Redis stays a cache here too: the live stream is a convenience for watchers, the record is
//! the status (and its output ConfigMaps). Writes are queued (bounded) and sent by one
//! background task; when Redis is slow or down, entries are dropped and counted, never
//! waited for. An interactive run reads its stdin with a connection of its own (a blocking
//! XREAD would hold up every other command on a shared one).

use std::time::Duration;

use rce_api::redis_keys::{live_key, stdin_key, LIVE_MAXLEN, LIVE_TTL_SECS};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use tokio::sync::mpsc;

/// Entries waiting to be written, at most.
const QUEUE: usize = 8192;

/// One entry of a live stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub namespace: String,
    pub name: String,
    /// `stdout`, `stderr`, `stage` or `end`.
    pub kind: &'static str,
    pub data: Vec<u8>,
}

/// Handle to the live-stream writer; cheap to clone.
#[derive(Clone)]
pub struct Live {
    tx: mpsc::Sender<Entry>,
    url: String,
    timeout: Duration,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Live {
    /// A writer for Redis at `url`, and its task (to be spawned).
    pub fn new(
        url: &str,
        timeout: Duration,
    ) -> (Live, impl std::future::Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let live = Live { tx, url: url.to_string(), timeout, dropped: std::sync::Arc::default() };
        (live, writer(url.to_string(), timeout, rx))
    }

    /// Queue an entry; dropped (and counted) when the queue is full.
    pub fn push(&self, namespace: &str, name: &str, kind: &'static str, data: &[u8]) {
        let e = Entry { namespace: namespace.into(), name: name.into(), kind, data: data.to_vec() };
        if self.tx.try_send(e).is_err() {
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Entries dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The stdin of an interactive Execution, read from its stdin stream from the start.
    pub async fn stdin(&self, namespace: &str, name: &str) -> Option<StdinReader> {
        let client = redis::Client::open(self.url.as_str()).ok()?;
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None);
        let conn =
            tokio::time::timeout(self.timeout * 2, client.get_multiplexed_async_connection_with_config(&cfg))
                .await
                .ok()?
                .ok()?;
        Some(StdinReader { conn, key: stdin_key(namespace, name), last: "0".into() })
    }
}

/// What an interactive client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdinEntry {
    Data(Vec<u8>),
    Eof,
    Signal(String),
}

/// Reads an Execution's stdin stream in order.
pub struct StdinReader {
    conn: MultiplexedConnection,
    key: String,
    last: String,
}

impl StdinReader {
    /// The entries that arrived after the last ones returned, waiting up to `block` for some.
    pub async fn next(&mut self, block: Duration) -> redis::RedisResult<Vec<StdinEntry>> {
        let reply: redis::Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(256)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(&self.last)
            .query_async(&mut self.conn)
            .await?;
        let mut out = Vec::new();
        for (id, fields) in stream_entries(&reply) {
            self.last = id;
            let get = |k: &str| fields.iter().find(|(f, _)| f == k.as_bytes()).map(|(_, v)| v.clone());
            match get("k").as_deref() {
                Some(b"data") => out.push(StdinEntry::Data(get("d").unwrap_or_default())),
                Some(b"eof") => out.push(StdinEntry::Eof),
                Some(b"signal") => out.push(StdinEntry::Signal(
                    String::from_utf8_lossy(&get("d").unwrap_or_default()).into_owned(),
                )),
                _ => {}
            }
        }
        Ok(out)
    }
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The entries of an XREAD reply of one stream: (id, fields).
fn stream_entries(reply: &redis::Value) -> Vec<(String, Fields)> {
    use redis::Value;
    let bytes = |v: &Value| match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    };
    let mut out = Vec::new();
    // RESP2: [[key, [[id, [f, v, ...]], ...]]]; RESP3 may give a map {key: [...]}.
    let streams: Vec<&Value> = match reply {
        Value::Array(a) => a.iter().collect(),
        Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
        _ => return out,
    };
    for s in streams {
        let entries = match s {
            Value::Array(kv) if kv.len() == 2 => &kv[1],
            other => other,
        };
        let Value::Array(entries) = entries else { continue };
        for e in entries {
            let Value::Array(pair) = e else { continue };
            let (Some(id), Some(Value::Array(fv))) = (pair.first().and_then(bytes), pair.get(1)) else {
                continue;
            };
            let fv: Vec<Vec<u8>> = fv.iter().filter_map(bytes).collect();
            let fields =
                fv.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone())).collect();
            out.push((String::from_utf8_lossy(&id).into_owned(), fields));
        }
    }
    out
}

async fn writer(url: String, timeout: Duration, mut rx: mpsc::Receiver<Entry>) {
    let Ok(client) = redis::Client::open(url.as_str()) else {
        tracing::error!(%url, "invalid Redis URL; live output is off");
        return;
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2));
    let mut conn: Option<ConnectionManager> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone()).ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut pipe = redis::pipe();
        for e in &batch {
            let key = live_key(&e.namespace, &e.name);
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(LIVE_MAXLEN)
                .arg("*")
                .arg("k")
                .arg(e.kind)
                .arg("d")
                .arg(&e.data[..])
                .ignore()
                .expire(&key, LIVE_TTL_SECS as i64)
                .ignore();
        }
        match tokio::time::timeout(timeout * 2, pipe.query_async::<()>(c)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "live output not written"),
            Err(_) => tracing::debug!("live output write timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn xread_replies_are_read() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            b("rce:stdin:ns:e"),
            Value::Array(vec![
                Value::Array(vec![b("1-0"), Value::Array(vec![b("k"), b("data"), b("d"), b("hi\n")])]),
                Value::Array(vec![b("1-1"), Value::Array(vec![b("k"), b("eof")])]),
            ]),
        ])]);
        let e = stream_entries(&reply);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].0, "1-0");
        assert_eq!(e[0].1, vec![(b"k".to_vec(), b"data".to_vec()), (b"d".to_vec(), b"hi\n".to_vec())]);
        assert_eq!(e[1].1, vec![(b"k".to_vec(), b"eof".to_vec())]);
        assert!(stream_entries(&Value::Nil).is_empty());
    }
}

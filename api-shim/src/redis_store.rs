//! The Redis status mirror: `GET` of a status document, `SUBSCRIBE` to its channel.
//! Connections are lazy and bounded by timeouts, so a dead Redis degrades the shim to the
//! Kubernetes API instead of hanging it.

use std::time::Duration;

use futures::{future::BoxFuture, stream::BoxStream, StreamExt};
use rce_api::redis_keys::{live_key, status_channel, status_key, stdin_key, StatusDocument, LIVE_TTL_SECS};
use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, AsyncCommands};

use crate::backend::{BackendError, Live, StatusStore, StdinEntry};

/// How long one `XREAD BLOCK` waits (ms) before the reader looks again (a reader whose
/// consumer went away is dropped at the latest then).
const LIVE_BLOCK_MS: u64 = 1000;
/// Entries read per `XREAD`: the most a live reader holds before its consumer takes them.
const LIVE_BATCH: usize = 100;

pub struct RedisStatus {
    client: redis::Client,
    conn: ConnectionManager,
    timeout: Duration,
}

impl RedisStatus {
    pub fn new(url: &str) -> anyhow::Result<RedisStatus> {
        let client = redis::Client::open(url)?;
        let timeout = Duration::from_secs(2);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(RedisStatus { client, conn, timeout })
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
    ) -> BoxFuture<'_, Result<BoxStream<'static, StatusDocument>, BackendError>> {
        let channel = status_channel(namespace, name);
        Box::pin(async move {
            let mut pubsub = tokio::time::timeout(self.timeout, self.client.get_async_pubsub())
                .await
                .map_err(|_| unavailable("timed out"))?
                .map_err(unavailable)?;
            tokio::time::timeout(self.timeout, pubsub.subscribe(&channel))
                .await
                .map_err(|_| unavailable("timed out"))?
                .map_err(unavailable)?;
            let stream = pubsub.into_on_message().filter_map(|msg| async move {
                let payload: String = msg.get_payload().ok()?;
                serde_json::from_str::<StatusDocument>(&payload).ok()
            });
            Ok(stream.boxed())
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

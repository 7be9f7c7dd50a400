//! The Redis status mirror: `GET` of a status document, `SUBSCRIBE` to its channel.
//! Connections are lazy and bounded by timeouts, so a dead Redis degrades the shim to the
//! Kubernetes API instead of hanging it.

use std::time::Duration;

use futures::{future::BoxFuture, stream::BoxStream, StreamExt};
use rce_api::redis_keys::{status_channel, status_key, StatusDocument};
use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, AsyncCommands};

use crate::backend::{BackendError, StatusStore};

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

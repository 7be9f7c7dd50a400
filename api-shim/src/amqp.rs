//! The RabbitMQ path (cargo feature `amqp`, used when `--amqp-url` is set): a submission is
//! published, persistent, mandatory and publisher-confirmed, to a durable queue; a consumer
//! turns each message into an Execution and acks only once the Execution exists (its name is
//! the jobId, so a redelivery's `409 AlreadyExists` counts as existing and is acked). Without
//! the feature none of this is compiled.
//!
//! One supervisor task per shim owns the connection: it connects (capped exponential backoff
//! with jitter between attempts), declares the topology, opens a confirm-mode publishing
//! channel and (unless `--amqp-consume=false`) a consuming channel with the prefetch limit,
//! and starts over when anything on the connection fails. While there is no connection a
//! submission is answered `503` with `Retry-After`; a jobId is returned only for a message the
//! broker confirmed.
//!
//! Topology, for a work queue `Q`: the fanout exchange `Q.dlx` and the queue `Q.dead` bound
//! to it (both durable), and `Q` durable with `x-dead-letter-exchange = Q.dlx`. A message that
//! can never become an Execution (unreadable, or refused by the API server with a 4xx other
//! than 408/409/429) is first published again to `Q` with the header [`REASON_HEADER`] saying
//! why, then acked; that copy, on arrival, is rejected without requeue, so RabbitMQ moves it
//! to `Q.dead` with its `x-death` headers (reason `rejected`) next to ours. Transient failures
//! (API server unreachable, timeouts, 5xx, 429) are requeued after a pause.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use axum::http::StatusCode;
use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    protocol::{AMQPErrorKind, AMQPSoftError},
    publisher_confirm::Confirmation,
    types::{AMQPValue, FieldTable, LongString},
    BasicProperties, Channel, Connection, ConnectionProperties, ErrorKind, Event, ExchangeKind,
};
use rce_api::Execution;
use tokio::sync::Notify;

use crate::{
    backend::{BackendError, Cluster},
    error::ApiError,
};

/// The header carrying, on a dead-lettered message, why it could not become an Execution.
pub const REASON_HEADER: &str = "x-rce-reason";

/// TEST ONLY: milliseconds the consumer sleeps between creating an Execution and acking its
/// message, so that a test can kill the consumer in that window. Never set it in production.
pub const TEST_PAUSE_ENV: &str = "RCE_AMQP_TEST_PAUSE_BEFORE_ACK_MS";

/// Longest wait for the broker's confirmation of one published message.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before a transiently failed message is requeued.
const REQUEUE_DELAY: Duration = Duration::from_secs(1);
/// Reconnection backoff: first delay, ceiling.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// The dead-letter exchange of work queue `queue`.
pub fn dead_letter_exchange(queue: &str) -> String {
    format!("{queue}.dlx")
}

/// The dead-letter queue of work queue `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// What the AMQP path needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub queue: String,
    /// Unacked messages per consumer (the channel's prefetch), also how many are handled at once.
    pub prefetch: u16,
    /// Run a consumer in this shim (false: publish only).
    pub consume: bool,
    /// TEST ONLY ([`TEST_PAUSE_ENV`]).
    pub pause_before_ack: Option<Duration>,
}

impl Settings {
    pub fn from_config(config: &crate::Config) -> Option<Settings> {
        let url = config.amqp_url.clone()?;
        let pause_before_ack = std::env::var(TEST_PAUSE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        Some(Settings {
            url,
            queue: config.amqp_queue.clone(),
            prefetch: config.amqp_prefetch.max(1),
            consume: config.amqp_consume,
            pause_before_ack,
        })
    }
}

/// The live connection's publishing channel, and how to report it broken.
#[derive(Clone)]
struct Session {
    channel: Channel,
    dead: Arc<Notify>,
}

impl Session {
    fn broken(&self) {
        self.dead.notify_one();
    }
}

/// What the supervisor shares with the publishers.
struct Link {
    session: RwLock<Option<Session>>,
    /// Seconds until the next connection attempt, for `Retry-After`.
    retry_after: AtomicU64,
}

impl Link {
    fn current(&self) -> Option<Session> {
        self.session.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn set(&self, session: Option<Session>) {
        *self.session.write().unwrap_or_else(|e| e.into_inner()) = session;
    }
}

pub struct Publisher {
    link: Arc<Link>,
    queue: String,
    cluster: Arc<dyn Cluster>,
}

/// `503` with `Retry-After`: the broker is unreachable or did not confirm.
fn broker_unavailable(retry_after: u64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the submission queue is temporarily unavailable; nothing was queued, try again",
    );
    e.retry_after = Some(retry_after.max(1));
    e
}

impl Publisher {
    /// Is there a connection to the broker right now?
    pub fn connected(&self) -> bool {
        self.link.current().is_some()
    }

    /// Publish the Execution; return once the broker has confirmed it (and, briefly, until
    /// the consumer has created it, so an immediate status read finds it). Not confirmed
    /// (no connection, a failure, a nack, a return, no answer in time): `503` + `Retry-After`.
    pub async fn publish(&self, ex: Execution) -> Result<Execution, ApiError> {
        let payload = serde_json::to_vec(&ex).map_err(|e| {
            tracing::error!(error = %e, "serializing the Execution failed");
            ApiError::internal()
        })?;
        let unavailable = || broker_unavailable(self.link.retry_after.load(Ordering::Relaxed));
        let Some(session) = self.link.current() else {
            tracing::warn!("no connection to RabbitMQ; refusing the submission");
            return Err(unavailable());
        };
        let props =
            BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
        match publish_confirmed(&session.channel, &self.queue, &payload, props).await {
            Ok(()) => {}
            Err(Unconfirmed::Broken(e)) => {
                tracing::error!(error = %e, "publishing the submission failed; reconnecting");
                session.broken();
                return Err(broker_unavailable(1));
            }
            Err(Unconfirmed::Refused(why)) => {
                tracing::error!(why, "the broker did not take the submission");
                return Err(unavailable());
            }
        }
        let ns = ex.metadata.namespace.clone().unwrap_or_default();
        let name = ex.metadata.name.clone().unwrap_or_default();
        for _ in 0..40 {
            if let Ok(Some(created)) = self.cluster.get(&ns, &name).await {
                return Ok(created);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(ex)
    }
}

enum Unconfirmed {
    /// The channel or connection failed.
    Broken(lapin::Error),
    /// Nacked, returned (unroutable) or unanswered.
    Refused(&'static str),
}

/// Publish persistent and mandatory to `queue` through the default exchange; Ok only once
/// the broker has confirmed it (an unroutable message is returned, and that is no success).
async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    payload: &[u8],
    props: BasicProperties,
) -> Result<(), Unconfirmed> {
    let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
    let confirm = async { channel.basic_publish("", queue, opts, payload, props).await?.await };
    match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
        Err(_) => Err(Unconfirmed::Refused("no confirmation in time")),
        Ok(Err(e)) => Err(Unconfirmed::Broken(e)),
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(_)))) => Err(Unconfirmed::Refused("returned: the queue does not exist")),
        Ok(Ok(Confirmation::Nack(_))) => Err(Unconfirmed::Refused("nacked")),
        Ok(Ok(Confirmation::NotRequested)) => Err(Unconfirmed::Refused("confirms are not on")),
    }
}

/// Start the supervisor (connection, topology, consumer) and return the publisher once the
/// first connection attempt is over. A broker that cannot be reached is retried in the
/// background (submissions get `503` meanwhile); a work queue that exists with other
/// arguments (an older rce declared it without dead-lettering) is an error: the shim stops.
pub async fn connect(settings: Settings, cluster: Arc<dyn Cluster>) -> anyhow::Result<Publisher> {
    let link = Arc::new(Link { session: RwLock::new(None), retry_after: AtomicU64::new(1) });
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(supervise(settings.clone(), link.clone(), cluster.clone(), first_tx));
    match first_rx.await {
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) => tracing::info!(queue = %settings.queue, "submissions go through RabbitMQ"),
        Err(_) => tracing::warn!(
            queue = %settings.queue,
            "RabbitMQ is not reachable yet; submissions get 503 until it is (retrying)"
        ),
    }
    Ok(Publisher { link, queue: settings.queue, cluster })
}

/// Delay before reconnection attempt `attempt` (0-based): capped exponential, 50-100 % jitter.
pub fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_FIRST.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(BACKOFF_CAP);
    let r = uuid::Uuid::new_v4().as_u128() as u64;
    let frac = 0.5 + 0.5 * (r as f64 / u64::MAX as f64);
    capped.mul_f64(frac)
}

fn precondition_failed(e: &lapin::Error) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(a)
        if *a.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED))
}

async fn supervise(
    settings: Settings,
    link: Arc<Link>,
    cluster: Arc<dyn Cluster>,
    first: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
) {
    let mut first = Some(first);
    let mut attempt: u32 = 0;
    loop {
        match open(&settings, cluster.clone()).await {
            Ok((conn, session, tasks)) => {
                if attempt > 0 {
                    tracing::info!(attempts = attempt + 1, "reconnected to RabbitMQ");
                }
                attempt = 0;
                link.retry_after.store(1, Ordering::Relaxed);
                let dead = session.dead.clone();
                link.set(Some(session));
                if let Some(tx) = first.take() {
                    let _ = tx.send(Ok(()));
                }
                dead.notified().await;
                link.set(None);
                tracing::warn!("the connection to RabbitMQ is lost; reconnecting");
                for task in tasks {
                    task.abort();
                }
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(320, "reconnecting")).await;
            }
            Err(e) if precondition_failed(&e) => {
                let msg = format!(
                    "the queue {q:?} exists with other arguments than this version declares \
                     (x-dead-letter-exchange={dlx:?}): an older rce declared it without a \
                     dead-letter queue. Drain and delete it (rabbitmqctl delete_queue {q}) or \
                     set --amqp-queue to a new name: {e}",
                    q = settings.queue,
                    dlx = dead_letter_exchange(&settings.queue),
                );
                if let Some(tx) = first.take() {
                    let _ = tx.send(Err(anyhow::anyhow!(msg)));
                    return;
                }
                tracing::error!("{msg}");
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "connecting to RabbitMQ failed");
                // Not reachable at start: let the shim serve (503s) while this keeps trying.
                drop(first.take());
            }
        }
        let delay = backoff(attempt);
        link.retry_after.store(delay.as_secs_f64().ceil().max(1.0) as u64, Ordering::Relaxed);
        tokio::time::sleep(delay).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Declare the dead-letter exchange and queue, then the work queue pointing at them.
async fn declare(channel: &Channel, queue: &str) -> lapin::Result<()> {
    let dlx = dead_letter_exchange(queue);
    let dlq = dead_letter_queue(queue);
    let durable_x = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel.exchange_declare(&dlx, ExchangeKind::Fanout, durable_x, FieldTable::default()).await?;
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    channel.queue_declare(&dlq, durable, FieldTable::default()).await?;
    channel.queue_bind(&dlq, &dlx, "", QueueBindOptions::default(), FieldTable::default()).await?;
    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(dlx.as_str().into()));
    channel.queue_declare(queue, durable, args).await?;
    Ok(())
}

type Opened = (Connection, Session, Vec<tokio::task::JoinHandle<()>>);

/// One connection: topology, publishing channel, consumer (when enabled).
async fn open(settings: &Settings, cluster: Arc<dyn Cluster>) -> lapin::Result<Opened> {
    let conn = Connection::connect(&settings.url, ConnectionProperties::default()).await?;
    let dead = Arc::new(Notify::new());
    let mut events = conn.events_listener();
    let on_error = dead.clone();
    let watcher = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Event::Error(e) => {
                    tracing::warn!(error = %e, "RabbitMQ connection error");
                    on_error.notify_one();
                }
                Event::ConnectionBlocked(why) => tracing::warn!(why, "RabbitMQ blocks publishing"),
                Event::ConnectionUnblocked => tracing::info!("RabbitMQ unblocked publishing"),
                _ => {}
            }
        }
    });
    let publish = conn.create_channel().await?;
    declare(&publish, &settings.queue).await?;
    publish.confirm_select(ConfirmSelectOptions::default()).await?;
    let session = Session { channel: publish, dead: dead.clone() };
    let mut tasks = vec![watcher];
    if settings.consume {
        let consume = conn.create_channel().await?;
        consume.basic_qos(settings.prefetch, BasicQosOptions::default()).await?;
        let consumer = consume
            .basic_consume(&settings.queue, "", BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        let ctx = Arc::new(Consuming {
            cluster,
            session: session.clone(),
            queue: settings.queue.clone(),
            pause_before_ack: settings.pause_before_ack,
        });
        let prefetch = usize::from(settings.prefetch);
        tasks.push(tokio::spawn(async move {
            consumer
                .take_while(|d| {
                    if let Err(e) = d {
                        tracing::warn!(error = %e, "the AMQP consumer failed");
                    }
                    futures::future::ready(d.is_ok())
                })
                .for_each_concurrent(prefetch, |d| {
                    let ctx = ctx.clone();
                    async move {
                        if let Ok(d) = d {
                            ctx.handle(d).await;
                        }
                    }
                })
                .await;
            ctx.session.broken();
        }));
    }
    Ok((conn, session, tasks))
}

struct Consuming {
    cluster: Arc<dyn Cluster>,
    session: Session,
    queue: String,
    pause_before_ack: Option<Duration>,
}

/// Why a message can never become an Execution; `None`: try again later.
pub fn refusal(err: &BackendError) -> Option<String> {
    match err {
        BackendError::Rejected { code, reason, message }
            if (400..500).contains(code) && ![408, 409, 429].contains(code) =>
        {
            Some(format!("the API server refused it: {code} {reason}: {message}"))
        }
        _ => None,
    }
}

fn header_text(d: &Delivery, key: &str) -> Option<String> {
    match d.properties.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => Some(String::new()),
    }
}

impl Consuming {
    async fn handle(&self, d: Delivery) {
        if let Some(reason) = header_text(&d, REASON_HEADER) {
            // Our own marked copy: let RabbitMQ dead-letter it (x-death reason `rejected`).
            tracing::info!(reason, "dead-lettering a submission message");
            let _ = d.nack(BasicNackOptions { requeue: false, ..Default::default() }).await;
            return;
        }
        let ex: Execution = match serde_json::from_slice(&d.data) {
            Ok(ex) => ex,
            Err(e) => return self.dead_letter(d, format!("unreadable JSON: {e}")).await,
        };
        if ex.metadata.name.as_deref().unwrap_or("").is_empty()
            || ex.metadata.namespace.as_deref().unwrap_or("").is_empty()
        {
            return self
                .dead_letter(d, "the Execution has no metadata.name or metadata.namespace".into())
                .await;
        }
        let name = ex.metadata.name.clone().unwrap_or_default();
        match self.cluster.create(ex).await {
            Ok(_) => {
                if let Some(pause) = self.pause_before_ack {
                    tracing::info!(%name, ?pause, "created; pausing before the ack (test hook)");
                    tokio::time::sleep(pause).await;
                }
                let _ = d.ack(BasicAckOptions::default()).await;
            }
            Err(BackendError::Rejected { code: 409, .. }) => {
                tracing::info!(%name, redelivered = d.redelivered, "the Execution already exists; acked");
                let _ = d.ack(BasicAckOptions::default()).await;
            }
            Err(e) => match refusal(&e) {
                Some(reason) => self.dead_letter(d, reason).await,
                None => {
                    tracing::warn!(%name, error = %e, "creating a queued Execution failed; requeueing it");
                    tokio::time::sleep(REQUEUE_DELAY).await;
                    let _ = d.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
                }
            },
        }
    }

    /// Publish the message again, marked with why, then ack the original; the marked copy is
    /// rejected on arrival and so dead-lettered. Not confirmed: requeue the original.
    async fn dead_letter(&self, d: Delivery, reason: String) {
        let reason: String = reason.chars().take(1000).collect();
        tracing::error!(%reason, "a queued submission cannot become an Execution; dead-lettering it");
        let mut headers = d.properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(LongString::from(reason.as_bytes())));
        let props = d.properties.clone().with_headers(headers).with_delivery_mode(2);
        match publish_confirmed(&self.session.channel, &self.queue, &d.data, props).await {
            Ok(()) => {
                let _ = d.ack(BasicAckOptions::default()).await;
            }
            Err(e) => {
                if let Unconfirmed::Broken(e) = &e {
                    tracing::warn!(error = %e, "marking a message for the dead-letter queue failed");
                    self.session.broken();
                }
                tokio::time::sleep(REQUEUE_DELAY).await;
                let _ = d.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for attempt in 0..40 {
            let d = backoff(attempt);
            let full = BACKOFF_FIRST.saturating_mul(1u32 << attempt.min(16)).min(BACKOFF_CAP);
            assert!(
                d <= full && d >= full / 2,
                "attempt {attempt}: {d:?} outside [{:?}, {full:?}]",
                full / 2
            );
        }
        assert!(backoff(20) >= BACKOFF_CAP / 2);
        let samples: std::collections::BTreeSet<_> = (0..20).map(|_| backoff(5)).collect();
        assert!(samples.len() > 1, "jitter varies the delay");
    }

    #[test]
    fn only_permanent_refusals_are_dead_lettered() {
        let rejected = |code: u16| BackendError::Rejected {
            code,
            reason: "Invalid".into(),
            message: "spec.language: Required value".into(),
        };
        let r = refusal(&rejected(422)).unwrap();
        assert!(r.contains("422") && r.contains("spec.language"), "{r}");
        assert!(refusal(&rejected(403)).is_some());
        for transient in [408, 409, 429, 500, 503] {
            assert!(refusal(&rejected(transient)).is_none(), "{transient}");
        }
        assert!(refusal(&BackendError::Unavailable("timed out".into())).is_none());
    }
}

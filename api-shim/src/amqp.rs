//! The RabbitMQ path (cargo feature `amqp`, used when `--amqp-url` is set): a submission is
//! published, persistent and publisher-confirmed, to a durable queue; a consumer turns each
//! message into an Execution and acks only once the Execution exists (an `AlreadyExists` from a
//! redelivery counts as existing). Without the feature none of this is compiled.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions,
    },
    publisher_confirm::Confirmation,
    types::FieldTable,
    BasicProperties, Channel, Connection, ConnectionProperties,
};
use rce_api::Execution;

use crate::{
    backend::{BackendError, Cluster},
    error::ApiError,
};

pub struct Publisher {
    channel: Channel,
    queue: String,
    cluster: Arc<dyn Cluster>,
}

impl Publisher {
    /// Publish the Execution; return once the broker has confirmed it (and, briefly, until
    /// the consumer has created it, so an immediate status read finds it).
    pub async fn publish(&self, ex: Execution) -> Result<Execution, ApiError> {
        let payload = serde_json::to_vec(&ex).map_err(|e| {
            tracing::error!(error = %e, "serializing the Execution failed");
            ApiError::internal()
        })?;
        let props =
            BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
        let confirm = self
            .channel
            .basic_publish("", &self.queue, BasicPublishOptions::default(), &payload, props)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "publishing the submission failed");
                ApiError::unavailable()
            })?
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "the broker did not confirm the submission");
                ApiError::unavailable()
            })?;
        if matches!(confirm, Confirmation::Nack(_)) {
            tracing::error!("the broker refused the submission");
            return Err(ApiError::unavailable());
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

/// Connect, declare the queue, start the consumer (which creates the Executions through
/// `cluster`), and return the publisher.
pub async fn connect(url: &str, queue: &str, cluster: Arc<dyn Cluster>) -> anyhow::Result<Publisher> {
    let queue = queue.to_string();
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let publish = conn.create_channel().await?;
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    publish.queue_declare(&queue, durable, FieldTable::default()).await?;
    publish.confirm_select(ConfirmSelectOptions::default()).await?;
    let consume = conn.create_channel().await?;
    consume.basic_qos(16, BasicQosOptions::default()).await?;
    let consumer = consume
        .basic_consume(&queue, "rce-api-shim", BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let consumer_cluster = cluster.clone();
    tokio::spawn(async move {
        // Keep the connection alive as long as the consumer runs.
        let _conn = conn;
        run_consumer(consumer, consumer_cluster).await;
    });
    tracing::info!(%queue, "submissions go through RabbitMQ");
    Ok(Publisher { channel: publish, queue, cluster })
}

async fn run_consumer(mut consumer: lapin::Consumer, cluster: Arc<dyn Cluster>) {
    while let Some(delivery) = consumer.next().await {
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "AMQP consumer error");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let ex: Execution = match serde_json::from_slice(&delivery.data) {
            Ok(ex) => ex,
            Err(e) => {
                tracing::error!(error = %e, "dropping an unreadable submission message");
                let _ = delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await;
                continue;
            }
        };
        match cluster.create(ex).await {
            Ok(_) | Err(BackendError::Rejected { code: 409, .. }) => {
                let _ = delivery.ack(BasicAckOptions::default()).await;
            }
            Err(BackendError::Rejected { code, message, .. }) if (400..500).contains(&code) => {
                tracing::error!(code, %message, "the apiserver refused a queued submission; dropping it");
                let _ = delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "creating a queued Execution failed; requeueing it");
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
            }
        }
    }
}

//! The rce operator: reconciles Executions into hardened sandbox Pods and records their
//! results in the status and in Redis.
//!
//! Pure modules (no cluster access): [`config`], [`names`], [`validate`], [`sandbox`],
//! [`outcome`], [`outputs`], [`status`], [`queue`]. [`controller`] talks to the cluster, [`mirror`] to
//! Redis, [`metrics`] serves /metrics and /healthz.

pub mod attach;
pub mod attempt;
pub mod callback;
pub mod capacity;
pub mod claim;
pub mod config;
pub mod controller;
pub mod decide;
pub mod error;
pub mod live;
pub mod metrics;
pub mod mirror;
pub mod names;
pub mod outcome;
pub mod outputs;
pub mod pool;
pub mod queue;
pub mod sandbox;
pub mod shard;
pub mod status;
pub mod validate;
pub mod warm;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    api::Api,
    client::ClientBuilder,
    runtime::{
        controller::{self as kc, Controller},
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef},
        watcher, WatchStreamExt,
    },
    Client,
};
use rce_api::{Execution, Runtime, SANDBOX_LABEL};
use tower::limit::RateLimitLayer;

pub use config::Config;
pub use error::Error;

/// A Kubernetes client from KUBECONFIG or the in-cluster configuration, with the client-side
/// request rate of `config` (kube has no QPS setting of its own; a tower rate limit in front
/// of the client's buffer does the same).
pub async fn client(config: &Config) -> anyhow::Result<Client> {
    let kc = kube::Config::infer().await.context("no Kubernetes configuration (KUBECONFIG?)")?;
    let builder = ClientBuilder::try_from(kc).context("building the Kubernetes client")?;
    if config.kube_qps == 0 {
        return Ok(builder.build());
    }
    let burst = config.kube_burst.max(1);
    let per = Duration::from_secs_f64(burst as f64 / config.kube_qps as f64);
    Ok(builder.with_layer(&RateLimitLayer::new(burst, per)).build())
}

fn api<K>(client: &Client, namespaces: &[String]) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespaces {
        [one] => Api::namespaced(client.clone(), one),
        _ => Api::all(client.clone()),
    }
}

/// The watch of the objects the operator serves: those its `--selector` selects.
fn selected(config: &Config) -> watcher::Config {
    let wc = watcher::Config::default();
    match config.selector.trim() {
        "" => wc,
        s => wc.labels(s),
    }
}

/// Resolves once `tx` says the operator stops.
fn shutdown_member(
    tx: &tokio::sync::watch::Sender<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = tx.subscribe();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Drive a reflector's stream, logging its errors.
async fn drain_stream<T>(
    stream: impl futures::Stream<Item = Result<T, watcher::Error>> + Send,
    what: &'static str,
) {
    futures::pin_mut!(stream);
    while let Some(r) = stream.next().await {
        if let Err(e) = r {
            tracing::warn!(error = %e, "watching {what}");
        }
    }
}

/// Run the operator until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    run_until(config, shutdown_signal()).await
}

pub use rce_api::shutdown::shutdown_signal;

/// Run the operator until `shutdown` resolves (then finish the reconciliations in flight).
/// Dropping the returned future stops everything at once, as a crash would: every
/// background task lives in one `JoinSet` owned by this future.
pub async fn run_until(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let client = client(&config).await?;
    let namespaces = config.watched_namespaces();
    // Set when the operator stops (the membership task leaves the group on it).
    let (shutdown_tx, _) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(metrics::Metrics::default());
    let mut tasks = tokio::task::JoinSet::new();

    let mirror = mirror::Mirror::new(metrics.clone());
    tasks.spawn(mirror.clone().run(config.redis_url.clone(), Duration::from_millis(config.redis_timeout_ms)));

    let addr = config.metrics_addr;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let m = metrics.clone();
    tasks.spawn(async move {
        if let Err(e) = metrics::serve(listener, m).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });

    // Runtimes: a cluster-wide cache, looked up by name or alias.
    let (runtimes, writer) = reflector::store::<Runtime>();
    let rt_stream =
        reflector::reflector(writer, watcher(Api::<Runtime>::all(client.clone()), Default::default()))
            .default_backoff()
            .applied_objects();
    tasks.spawn(rt_stream.for_each(|r| async move {
        if let Err(e) = r {
            tracing::warn!(error = %e, "watching Runtimes");
        }
    }));

    // Sandbox Pods: a cache (to clean up) that also triggers their Executions.
    let (pods, pod_writer) = reflector::store::<Pod>();
    let pod_stream = reflector::reflector(
        pod_writer,
        watcher(
            api::<Pod>(&client, &namespaces),
            watcher::Config::default().labels(&format!("{SANDBOX_LABEL}=true")),
        ),
    )
    .default_backoff()
    .touched_objects();

    // WarmPools (the operator's selector, as for Executions), the cache the pool controller
    // runs over, and their Pods.
    let (pools, pool_writer) = reflector::store::<rce_api::WarmPool>();
    let pool_stream = reflector::reflector(
        pool_writer,
        watcher(api::<rce_api::WarmPool>(&client, &namespaces), selected(&config)),
    )
    .default_backoff()
    .applied_objects();
    let (warm_pods, warm_pod_writer) = reflector::store::<Pod>();
    let warm_pod_stream = reflector::reflector(
        warm_pod_writer,
        watcher(
            api::<Pod>(&client, &namespaces),
            watcher::Config::default().labels(rce_api::warmpool::POOL_LABEL),
        ),
    )
    .default_backoff()
    .touched_objects();
    // Membership among the replicas (shard.rs): this replica's Lease, the group's view.
    let identity = config.identity();
    let group = config.shard_group();
    let lease_ns = config.lease_namespace();
    let (shard, membership) = shard::join(
        client.clone(),
        &lease_ns,
        &group,
        &identity,
        config.lease_seconds,
        futures::FutureExt::shared(shutdown_member(&shutdown_tx)),
    )
    .await?;
    let (left_tx, left_rx) = tokio::sync::oneshot::channel::<()>();
    tasks.spawn(async move {
        membership.await;
        let _ = left_tx.send(());
    });
    if !shard::wait_joined(&shard, Duration::from_secs(20)).await {
        tracing::warn!(%identity, %group, "not a live member after 20 s; owning nothing until the Lease is held");
    }

    // Capacity: the nodes, their Leases and every Pod bound to them (capacity.rs).
    let (nodes, node_writer) = reflector::store::<k8s_openapi::api::core::v1::Node>();
    tasks.spawn(drain_stream(
        reflector::reflector(node_writer, watcher(Api::all(client.clone()), Default::default()))
            .default_backoff()
            .touched_objects(),
        "Nodes",
    ));
    let (node_leases, node_lease_writer) = reflector::store::<k8s_openapi::api::coordination::v1::Lease>();
    tasks.spawn(drain_stream(
        reflector::reflector(
            node_lease_writer,
            watcher(Api::namespaced(client.clone(), "kube-node-lease"), Default::default()),
        )
        .default_backoff()
        .touched_objects(),
        "node Leases",
    ));
    // Every Pod's requests count against its node: all of them where the operator may read
    // them (an operator with a cluster-wide role, the local engine's and the tests'); one
    // confined to some namespaces by its RBAC (the chart's) reads only theirs, and capacity
    // then leaves other workloads' requests to the scheduler.
    let pods_for_capacity =
        match Api::<Pod>::all(client.clone()).list_metadata(&kube::api::ListParams::default().limit(1)).await
        {
            Err(kube::Error::Api(s)) if s.code == 403 => {
                tracing::info!(
                    "Pods of other namespaces may not be read: capacity counts the watched namespaces' Pods"
                );
                api::<Pod>(&client, &namespaces)
            }
            _ => Api::<Pod>::all(client.clone()),
        };
    let (all_pods, all_pod_writer) = reflector::store::<Pod>();
    tasks.spawn(drain_stream(
        reflector::reflector(
            all_pod_writer,
            watcher(
                pods_for_capacity,
                watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed"),
            ),
        )
        .default_backoff()
        .touched_objects(),
        "Pods",
    ));
    let capacity = capacity::Capacity {
        nodes,
        node_leases,
        pods: all_pods,
        lost_after: Duration::from_secs(config.node_lost_seconds),
    };

    let sessions = Arc::new(attach::Sessions::default());
    let warm = Arc::new(claim::Warm::new(
        client.clone(),
        pools.clone(),
        warm_pods,
        runtimes.clone(),
        config.sandbox(),
        metrics.clone(),
    ));
    let shutdown = futures::FutureExt::shared(shutdown);
    {
        let (tx, s) = (shutdown_tx.clone(), shutdown.clone());
        tasks.spawn(async move {
            s.await;
            let _ = tx.send(true);
        });
    }

    let (wake_tx, wake_rx) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<Execution>>();
    let wake = futures::stream::unfold(wake_rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });

    let controller = Controller::new(api::<Execution>(&client, &namespaces), selected(&config))
        .with_config(kc::Config::default().concurrency(config.concurrency))
        .owns_stream(pod_stream)
        .reconcile_on(wake)
        // A membership change: every Execution is looked at again, so the new owner of each
        // picks it up (the others return at once).
        .reconcile_all_on(shard::change_stream(shard.changes()))
        .graceful_shutdown_on(shutdown.clone());
    let recorder = Recorder::new(client.clone(), Reporter::from("rce-operator"));
    let callbacks = callback::Callbacks::with_identity(config.callback_allow.clone(), &identity);
    let (live, live_writer) =
        live::Live::new(&config.redis_url, Duration::from_millis(config.redis_timeout_ms));
    tasks.spawn(live_writer);
    let ctx = Arc::new(
        controller::Context::new(
            client.clone(),
            config.clone(),
            controller.store(),
            runtimes.clone(),
            pods,
            pools.clone(),
            sessions.clone(),
            recorder.clone(),
            metrics.clone(),
            mirror,
            wake_tx,
            callbacks,
        )
        .with_warm(warm.clone())
        .with_live(live)
        .with_shard(shard.clone())
        .with_capacity(capacity),
    );
    let lost = ctx.clone();
    tasks.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            controller::remove_from_lost_nodes(&lost).await;
        }
    });

    let g = ctx.clone();
    tasks.spawn(async move {
        loop {
            g.refresh_gauges();
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });

    let pool_ctx = Arc::new(
        pool::Context::new(
            client.clone(),
            namespaces.clone(),
            config.sandbox(),
            warm.clone(),
            sessions,
            recorder,
            metrics.clone(),
            Duration::from_secs(config.start_timeout_seconds),
        )
        .with_shard(shard.clone()),
    );
    // The pool controller judges each pool by its Runtime: not before the Runtime cache is
    // filled (a pool reconciled first would be marked Invalid, "Runtime not found", with a
    // Warning Event, until its recheck 10 s later).
    runtimes.wait_until_ready().await.context("the Runtime cache never filled (is the CRD installed?)")?;
    tasks.spawn(pool::run(pool_stream, pools, warm_pod_stream, pool_ctx, shutdown));
    // Executions are judged against the warm Pods' claims (a restarted operator follows
    // them): the Pod cache first, for a while (without it, where the pool watch is refused,
    // Executions still run cold).
    if tokio::time::timeout(Duration::from_secs(10), warm.pods.wait_until_ready()).await.is_err() {
        tracing::warn!("the warm Pod cache did not fill within 10 s; going on without waiting");
    }

    tracing::info!(
        namespaces = ?namespaces,
        selector = %config.selector,
        %identity,
        %group,
        lease_namespace = %lease_ns,
        max_running = config.max_running,
        concurrency = config.concurrency,
        "rce operator starting"
    );
    controller::drain(controller.run(controller::reconcile, controller::error_policy, ctx)).await;
    // Leave the group (release and delete the Lease) before the rest stops.
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(6), left_rx).await;
    tasks.shutdown().await;
    tracing::info!("rce operator stopped");
    Ok(())
}

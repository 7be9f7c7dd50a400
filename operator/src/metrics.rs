//! Prometheus metrics and the /metrics + /healthz HTTP server.

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseVerdict {
    pub phase: String,
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub error: String,
}

/// A warm pool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    pub namespace: String,
    pub pool: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Executions by phase and verdict, as currently seen in the cluster.
    pub executions: Family<PhaseVerdict, Gauge>,
    /// Executions finished by this process, by phase and verdict.
    pub finished: Family<PhaseVerdict, Counter>,
    pub reconciliations: Counter,
    pub reconcile_errors: Family<ErrorLabel, Counter>,
    /// Executions waiting for a sandbox slot.
    pub queue_depth: Gauge,
    /// Sandboxes running now.
    pub running: Gauge,
    /// Sandbox Pod created → container started, seconds.
    pub sandbox_start: Histogram,
    /// Execution created → result recorded, seconds.
    pub end_to_end: Histogram,
    pub redis_errors: Counter,
    /// Status documents waiting to be written to Redis.
    pub redis_pending: Gauge,
    /// Claim start → the warm Pod's claim patched, seconds.
    pub claim_seconds: Histogram,
    /// Executions that ran in a warm Pod, by pool.
    pub warm_hits: Family<PoolLabel, Counter>,
    /// Executions that fitted a pool but found no Pod to claim and ran cold, by pool.
    pub warm_misses: Family<PoolLabel, Counter>,
    /// Pods of each pool (starting, idle or busy; not being deleted).
    pub pool_size: Family<PoolLabel, Gauge>,
    /// Idle, ready, claimable Pods of each pool.
    pub pool_ready: Family<PoolLabel, Gauge>,
    /// Claimed Pods of each pool.
    pub pool_busy: Family<PoolLabel, Gauge>,
    /// Unix time of the last successful store scan (for /healthz).
    pub heartbeat: Arc<AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rce");
        let m = Metrics {
            executions: Family::default(),
            finished: Family::default(),
            reconciliations: Counter::default(),
            reconcile_errors: Family::default(),
            queue_depth: Gauge::default(),
            running: Gauge::default(),
            sandbox_start: Histogram::new(exponential_buckets(0.1, 1.6, 14)),
            end_to_end: Histogram::new(exponential_buckets(0.25, 1.6, 16)),
            redis_errors: Counter::default(),
            redis_pending: Gauge::default(),
            claim_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            warm_hits: Family::default(),
            warm_misses: Family::default(),
            pool_size: Family::default(),
            pool_ready: Family::default(),
            pool_busy: Family::default(),
            heartbeat: Arc::new(AtomicI64::new(now_secs())),
            registry: Registry::default(),
        };
        registry.register("executions", "Executions by phase and verdict", m.executions.clone());
        registry.register("executions_finished", "Executions finished by this operator", m.finished.clone());
        registry.register("reconciliations", "Reconciliations run", m.reconciliations.clone());
        registry.register("reconcile_errors", "Reconciliation errors by kind", m.reconcile_errors.clone());
        registry.register("queue_depth", "Executions waiting for a sandbox slot", m.queue_depth.clone());
        registry.register("running_sandboxes", "Sandbox Pods running now", m.running.clone());
        registry.register(
            "sandbox_start_seconds",
            "Time from sandbox Pod creation to its container's start",
            m.sandbox_start.clone(),
        );
        registry.register(
            "execution_seconds",
            "Time from Execution creation to its recorded result",
            m.end_to_end.clone(),
        );
        registry.register("redis_errors", "Failed Redis mirror writes", m.redis_errors.clone());
        registry.register(
            "redis_pending",
            "Status documents waiting to be mirrored to Redis",
            m.redis_pending.clone(),
        );
        registry.register(
            "warm_claim_seconds",
            "Time from the start of a warm Pod claim to its claim patched",
            m.claim_seconds.clone(),
        );
        registry.register("warm_hits", "Executions that ran in a warm Pod", m.warm_hits.clone());
        registry.register(
            "warm_misses",
            "Executions that fitted a warm pool but found no Pod to claim and ran cold",
            m.warm_misses.clone(),
        );
        registry.register("warm_pool_pods", "Pods of a warm pool (not being deleted)", m.pool_size.clone());
        registry.register("warm_pool_ready", "Idle, ready Pods of a warm pool", m.pool_ready.clone());
        registry.register("warm_pool_busy", "Claimed Pods of a warm pool", m.pool_busy.clone());
        Metrics { registry, ..m }
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Metrics {
    pub fn error(&self, label: &str) {
        self.reconcile_errors.get_or_create(&ErrorLabel { error: label.to_string() }).inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn beat(&self) {
        self.heartbeat.store(now_secs(), Ordering::Relaxed);
    }
}

/// The HTTP app: `/metrics` and `/healthz` (unhealthy when the operator's periodic scan
/// has not run for a minute).
pub fn app(metrics: Arc<Metrics>) -> Router {
    Router::new().route("/metrics", get(metrics_handler)).route("/healthz", get(health)).with_state(metrics)
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.render())
}

async fn health(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let age = now_secs() - m.heartbeat.load(Ordering::Relaxed);
    if age <= 60 {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("no progress for {age} s\n"))
    }
}

/// Serve [`app`] on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics and /healthz");
    }
    axum::serve(listener, app(metrics)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_their_names() {
        let m = Metrics::default();
        m.error("kube");
        m.finished
            .get_or_create(&PhaseVerdict { phase: "Completed".into(), verdict: "Accepted".into() })
            .inc();
        m.queue_depth.set(3);
        m.sandbox_start.observe(0.8);
        let pool = PoolLabel { namespace: "a".into(), pool: "py".into() };
        m.warm_hits.get_or_create(&pool).inc_by(2);
        m.pool_ready.get_or_create(&pool).set(3);
        m.claim_seconds.observe(0.004);
        let text = m.render();
        for needle in [
            "rce_reconcile_errors_total{error=\"kube\"} 1",
            "rce_executions_finished_total{phase=\"Completed\",verdict=\"Accepted\"} 1",
            "rce_queue_depth 3",
            "rce_sandbox_start_seconds_count 1",
            "rce_running_sandboxes 0",
            "rce_warm_hits_total{namespace=\"a\",pool=\"py\"} 2",
            "rce_warm_pool_ready{namespace=\"a\",pool=\"py\"} 3",
            "rce_warm_claim_seconds_count 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}

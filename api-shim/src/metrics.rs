//! Prometheus metrics: requests by route and status, latency by route, and shim counters.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

/// The shim's metrics (cheap to clone: every handle shares one registry).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub submissions: Counter,
    pub create_latency: Histogram,
    pub queue_full: Counter,
    pub rate_limited: Counter,
    /// Requests limited by the replica's own bucket because the shared one (Redis) did not answer.
    pub rate_limit_local: Counter,
    pub auth_failures: Counter,
    pub pending: Gauge,
}

fn buckets() -> impl Iterator<Item = f64> {
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0].into_iter()
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rce_shim");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
            Histogram::new(buckets())
        });
        let submissions = Counter::default();
        let create_latency = Histogram::new(buckets());
        let queue_full = Counter::default();
        let rate_limited = Counter::default();
        let rate_limit_local = Counter::default();
        let auth_failures = Counter::default();
        let pending = Gauge::default();
        registry.register("http_requests", "HTTP requests by route, method and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        registry.register("submissions", "Executions created", submissions.clone());
        registry.register(
            "execution_create_duration_seconds",
            "Time to create an Execution in the Kubernetes API",
            create_latency.clone(),
        );
        registry.register(
            "queue_full_rejections",
            "Submissions refused because the queue was full",
            queue_full.clone(),
        );
        registry.register("rate_limited", "Requests refused by the rate limiter", rate_limited.clone());
        registry.register(
            "rate_limit_local_fallbacks",
            "Requests limited by this replica's own bucket: the shared one (Redis) did not answer",
            rate_limit_local.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests refused for missing or bad credentials",
            auth_failures.clone(),
        );
        registry.register("pending_executions", "Pending Executions at the last submission", pending.clone());
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            latency,
            submissions,
            create_latency,
            queue_full,
            rate_limited,
            rate_limit_local,
            auth_failures,
            pending,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = encode(&mut out, &reg) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Middleware: count and time every request by its route template.
pub async fn track(State(m): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    m.requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    m.latency.get_or_create(&RouteLabels { route, method }).observe(started.elapsed().as_secs_f64());
    resp
}

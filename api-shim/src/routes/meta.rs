//! Health, readiness, metrics, the OpenAPI document and the playground page.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{Html, IntoResponse, Response},
    Extension, Json,
};
use serde_json::{json, Value};

use crate::state::AppState;

/// Liveness (the seed's `GET /health`).
#[utoipa::path(get, path = "/health", tag = "meta", responses((status = 200, description = "{status: ok}")))]
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the caches are synced and Redis answers.
#[utoipa::path(get, path = "/ready", tag = "meta", responses((status = 200), (status = 503)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let cluster = state.cluster.ready();
    let redis = state.status.ping().await;
    let code = if cluster { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({ "cluster": cluster, "redis": redis })))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "meta", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(p) = state.cluster.pending() {
        state.metrics.pending.set(p as i64);
    }
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.encode(),
    )
        .into_response()
}

/// The OpenAPI document, as the router built it (put into every request by `routes::app`).
#[derive(Clone)]
pub struct Document(pub Arc<utoipa::openapi::OpenApi>);

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200)))]
pub async fn openapi(Extension(doc): Extension<Document>) -> Json<utoipa::openapi::OpenApi> {
    Json(doc.0.as_ref().clone())
}

const PLAYGROUND: &str = include_str!("../../static/playground.html");
/// The playground's script: CodeMirror 6 and the page's code, bundled at build time from
/// `api-shim/playground` by `hack/playground.sh` (run by `build.rs`); never fetched elsewhere.
const PLAYGROUND_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/playground.js"));

/// The playground page.
#[utoipa::path(get, path = "/", tag = "meta", responses((status = 200, description = "An HTML page to try the API", content_type = "text/html")))]
pub async fn playground() -> Html<&'static str> {
    Html(PLAYGROUND)
}

/// The playground page's script (its code editor included).
#[utoipa::path(get, path = "/playground.js", tag = "meta", responses((status = 200, description = "The playground's script", content_type = "text/javascript")))]
pub async fn playground_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        PLAYGROUND_JS,
    )
        .into_response()
}

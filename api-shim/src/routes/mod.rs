//! The router: every surface, each with its error shape, behind one set of layers.

pub mod judge0;
pub mod meta;
pub mod native;
pub mod piston;
pub mod raw;
pub mod seed;

use std::time::Duration;

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::{header, HeaderName, HeaderValue, Method},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    trace::TraceLayer,
};

use crate::{
    auth::require_tenant,
    error::{render, ApiError, BodyLimit, Flavor},
    metrics,
    state::AppState,
};

/// Build the whole application.
pub fn app(state: AppState) -> Router {
    let auth = || middleware::from_fn_with_state(state.clone(), require_tenant);
    let flavor = |f: Flavor| middleware::map_response(move |r: Response| render(f, r));

    let seed = Router::new()
        .route("/api/execute", post(seed::execute))
        .route("/api/status/{job_id}", get(seed::status))
        .route_layer(auth())
        .layer(flavor(Flavor::Seed));

    let native = Router::new()
        .route("/api/executions", post(native::create))
        .route("/api/executions/{id}", get(native::get_one))
        .route("/api/executions/{id}/events", get(native::events))
        .route("/api/executions/{id}/ws", get(native::ws))
        .route_layer(auth())
        .route("/api/languages", get(native::languages));

    let judge0 = Router::new()
        .route("/submissions", post(judge0::handlers::create))
        .route("/submissions/batch", post(judge0::handlers::batch_create).get(judge0::handlers::batch_get))
        .route("/submissions/{token}", get(judge0::handlers::get_one).delete(judge0::handlers::delete_one))
        .route_layer(auth())
        .route("/languages", get(judge0::handlers::languages))
        .route("/languages/all", get(judge0::handlers::languages_all))
        .route("/languages/{id}", get(judge0::handlers::language))
        .route("/statuses", get(judge0::handlers::statuses))
        .route("/about", get(judge0::handlers::about))
        .route("/version", get(judge0::handlers::version))
        .route("/config_info", get(judge0::handlers::config_info))
        .layer(flavor(Flavor::Judge0));

    let piston = Router::new()
        .route("/api/v2/execute", post(piston::handlers::execute))
        .route_layer(auth())
        .route("/api/v2/runtimes", get(piston::handlers::runtimes))
        .route("/api/v2/piston/execute", post(piston::handlers::execute).route_layer(auth()))
        .route("/api/v2/piston/runtimes", get(piston::handlers::runtimes))
        .layer(flavor(Flavor::Piston));

    let meta = Router::new()
        .route("/", get(meta::playground))
        .route("/health", get(meta::health))
        .route("/ready", get(meta::ready))
        .route("/metrics", get(meta::metrics))
        .route("/openapi.json", get(meta::openapi));

    let body_limit = state.config.body_limit;
    Router::new()
        .merge(seed)
        .merge(native)
        .merge(judge0)
        .merge(piston)
        .merge(meta)
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |mut req: Request, next: Next| {
            req.extensions_mut().insert(BodyLimit(body_limit));
            next.run(req)
        }))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(TraceLayer::new_for_http())
        .layer(cors(&state.config.cors_origins))
        .with_state(state)
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such route")
}

/// Bound the time to produce a response (streams, once started, are not cut).
async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.request_timeout_secs);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::timeout().into_response(),
    }
}

pub fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-auth-token"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

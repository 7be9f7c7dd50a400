//! The router: every surface, each with its error shape, behind one set of layers. The
//! routes and the OpenAPI document are built from one list ([`table`]): a route enters it
//! through `routes!` with its handler's `#[utoipa::path]`, so it cannot be served undocumented.

pub mod judge0;
pub mod meta;
pub mod native;
pub mod piston;
pub mod raw;
pub mod seed;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::{header, HeaderName, HeaderValue, Method},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Extension, Router,
};
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    normalize_path::NormalizePath,
    trace::TraceLayer,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::require_tenant,
    error::{render, ApiError, BodyLimit, Flavor},
    metrics, openapi,
    state::AppState,
};

/// Build the whole application: [`router`] behind one path normalization, so that every
/// surface accepts a trailing slash (`POST /submissions/?wait=true` is `/submissions?wait=true`,
/// as Rails routing and Piston's express accept it). axum matches a route before any of the
/// router's own layers run, so the normalization wraps the router as a service.
pub fn app(state: AppState) -> Router {
    Router::new().fallback_service(NormalizePath::trim_trailing_slash(router(state)))
}

/// The routes with their layers, paths taken as they come (no normalization).
pub fn router(state: AppState) -> Router {
    let (router, doc) = table(&state).split_for_parts();
    let body_limit = state.config.body_limit;
    router
        .fallback(fallback)
        .layer(Extension(meta::Document(Arc::new(doc))))
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

/// Every route with its documentation, surface by surface. Routes above a surface's
/// `route_layer(auth())` need credentials (when auth is on); those below it are public.
pub fn table(state: &AppState) -> OpenApiRouter<AppState> {
    let auth = || middleware::from_fn_with_state(state.clone(), require_tenant);
    let flavor = |f: Flavor| middleware::map_response(move |r: Response| render(f, r));

    let seed = OpenApiRouter::default()
        .routes(routes!(seed::execute))
        .routes(routes!(seed::status))
        .route_layer(auth())
        .layer(flavor(Flavor::Seed));

    // A submission with test cases may carry their data: its own, larger body limit (the
    // data, JSON-escaped, beside the usual body).
    let with_tests = state.config.body_limit + 2 * state.config.tests.max_test_data_bytes;
    let create = OpenApiRouter::default()
        .routes(routes!(native::create))
        .route_layer(auth())
        .layer(DefaultBodyLimit::max(with_tests))
        .layer(middleware::from_fn(move |mut req: Request, next: Next| {
            req.extensions_mut().insert(BodyLimit(with_tests));
            next.run(req)
        }));
    let native = OpenApiRouter::default()
        .merge(create)
        .routes(routes!(native::get_one))
        .routes(routes!(native::events))
        .routes(routes!(native::ws))
        .route_layer(auth())
        .routes(routes!(native::languages));

    let judge0 = judge0::routes(state);

    // Piston's paths are relative: the same routes under `/api/v2` and `/api/v2/piston`.
    use piston::handlers as p;
    let piston = || {
        OpenApiRouter::default()
            .routes(routes!(p::execute))
            .routes(routes!(piston::connect::connect))
            .route_layer(auth())
            .routes(routes!(p::runtimes))
            .layer(flavor(Flavor::Piston))
    };

    let meta = OpenApiRouter::default()
        .routes(routes!(meta::playground))
        .routes(routes!(meta::playground_js))
        .routes(routes!(meta::health))
        .routes(routes!(meta::ready))
        .routes(routes!(meta::metrics))
        .routes(routes!(meta::openapi));

    OpenApiRouter::with_openapi(openapi::frame())
        .merge(seed)
        .merge(native)
        .merge(judge0)
        .nest("/api/v2", piston())
        .nest("/api/v2/piston", piston())
        .merge(meta)
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

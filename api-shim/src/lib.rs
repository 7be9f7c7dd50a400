//! rce's REST front. A stateless axum service: submissions become `Execution` custom
//! resources; status is read from the Redis mirror the operator maintains (falling back to the
//! Execution's own status); language lists come from the cluster's `Runtime` objects.
//!
//! Surfaces: the seed executor's API (`/api/execute`, `/api/status/{id}`), a Judge0 CE 1.13.1
//! compatible one (`/submissions`, ...), a Piston v2 compatible one (`/api/v2/...`), rce's own
//! (`/api/executions/...` with SSE and WebSocket streams), plus `/openapi.json`, `/metrics`
//! and a playground page at `/`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod backend;
pub mod catalog;
pub mod config;
pub mod error;
pub mod kube_backend;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod outputs;
pub mod redis_store;
pub mod routes;
pub mod state;
pub mod submit;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod views;

#[cfg(feature = "amqp")]
pub mod amqp;

pub use config::Config;
pub use routes::app;
pub use state::AppState;

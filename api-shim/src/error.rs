//! One error type for every handler, extractor and middleware. Its response carries the
//! error itself as an extension, so each API surface re-renders it in the shape its clients
//! expect (see [`Flavor`]): rce's own `{error: {code, message}}`, the seed's
//! `{error: "...", code}`, Judge0's `{"error": "..."}` or field errors, Piston's
//! `{"message": "..."}`. Internal errors are logged where they happen and never echoed.

use axum::{
    extract::{FromRequest, Request},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Short machine-readable code, e.g. `unknown_language`.
    pub code: &'static str,
    /// Text safe to show to the client.
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// Extra machine-readable details (e.g. the known languages).
    pub details: Option<Box<Value>>,
    /// Judge0-style field errors, `{"field": ["message"]}`.
    pub fields: Option<Box<Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None, details: None, fields: None }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    }
    pub fn unknown_language(language: &str, known: Vec<String>) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_language",
            format!("unknown language {language:?}; known languages: {}", known.join(", ")),
        );
        e.details = Some(Box::new(json!({ "known": known })));
        e
    }
    pub fn limit(err: &rce_api::LimitError) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded", err.to_string());
        e.details =
            Some(Box::new(json!({ "field": err.field, "requested": err.requested, "maximum": err.maximum })));
        e
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down");
        e.retry_after = Some(retry_after.max(1));
        e
    }
    pub fn queue_full(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            "too many executions are waiting to run; try again later",
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }
    /// A dependency (Kubernetes API, Redis) is unreachable. The cause is logged by the caller.
    pub fn unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable",
        );
        e.retry_after = Some(2);
        e
    }
    /// The shim has not yet read the Runtime catalog (just started, or the API server is slow).
    pub fn starting() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting",
            "the service is starting: the language catalog is not loaded yet",
        );
        e.retry_after = Some(1);
        e
    }
    /// Something went wrong inside; the cause is logged by the caller, never returned.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
    pub fn timeout() -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", "the request took too long")
    }
    pub fn with_fields(mut self, fields: Value) -> Self {
        self.fields = Some(Box::new(fields));
        self
    }

    /// rce's own body: `{error: {code, message, ...details}}`.
    pub fn native_body(&self) -> Value {
        let mut inner = json!({ "code": self.code, "message": self.message });
        if let (Some(Value::Object(d)), Some(obj)) = (self.details.as_deref(), inner.as_object_mut()) {
            for (k, v) in d {
                obj.insert(k.clone(), v.clone());
            }
        }
        json!({ "error": inner })
    }

    fn respond(&self, body: Value) -> Response {
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp.extensions_mut().insert(self.clone());
        resp
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond(self.native_body())
    }
}

/// Which client family a route serves, and so which error shape it answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Native,
    Seed,
    Judge0,
    Piston,
}

impl Flavor {
    /// Its name, as written on each Execution in the `rce.dev/api` annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Native => "rce",
            Flavor::Seed => "seed",
            Flavor::Judge0 => "judge0",
            Flavor::Piston => "piston",
        }
    }

    pub fn body(self, e: &ApiError) -> Value {
        match self {
            Flavor::Native => e.native_body(),
            Flavor::Seed => {
                let mut b = json!({ "error": e.message, "code": e.code });
                if let (Some(Value::Object(d)), Some(obj)) = (e.details.as_deref(), b.as_object_mut()) {
                    for (k, v) in d {
                        obj.insert(k.clone(), v.clone());
                    }
                }
                b
            }
            Flavor::Judge0 => e.fields.as_deref().cloned().unwrap_or_else(|| json!({ "error": e.message })),
            Flavor::Piston => json!({ "message": e.message }),
        }
    }
}

/// Middleware body: re-render an [`ApiError`] response in this flavor's shape.
pub async fn render(flavor: Flavor, resp: Response) -> Response {
    if flavor == Flavor::Native {
        return resp;
    }
    match resp.extensions().get::<ApiError>() {
        Some(e) => e.respond(flavor.body(e)),
        None => resp,
    }
}

/// A JSON body: over the body limit → 413, not JSON → 400, wrong shape → 422.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Read the body within the configured limit (`DefaultBodyLimit`).
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    let limit = req.extensions().get::<BodyLimit>().map(|l| l.0).unwrap_or(0);
    axum::body::Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::bad_request("could not read the request body")
        }
    })
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid(format!("invalid request body: {e}")),
        _ => ApiError::malformed_json(format!("malformed JSON: {e}")),
    })
}

/// The body limit in force, put into request extensions so a 413 can say it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

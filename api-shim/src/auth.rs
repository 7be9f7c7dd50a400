//! Who is calling, and how fast they may call. Credentials: an API key or a JWT (HS256 or
//! RS256), given as `Authorization: Bearer …`, `X-API-Key`, Judge0's `X-Auth-Token`, or (for
//! browsers' EventSource and WebSocket, which cannot set headers) `?api_key=` / `?access_token=`.
//! Each credential maps to a tenant namespace and a token-bucket rate.
//!
//! The buckets live in Redis (`rce:ratelimit:<sha256 of the credential>`, see
//! [`crate::redis_store`]), shared by every shim replica, so a rate of R/s holds across them.
//! When Redis cannot answer, each replica falls back to a bucket of its own process (logged,
//! and counted in `rce_shim_rate_limit_local_fallbacks`); a request is never refused because
//! Redis is down.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::HeaderMap,
    middleware::Next,
    response::Response,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rce_api::names::is_dns_label;
use serde::Deserialize;

use crate::{backend::StatusStore, config::Config, error::ApiError, metrics::Metrics};

/// How long the shared bucket may take to answer before the local one decides.
const SHARED_TIMEOUT: Duration = Duration::from_millis(300);
/// After the shared bucket failed: how long to use the local one before trying again.
const SHARED_RETRY: Duration = Duration::from_secs(1);

/// The caller, as the handlers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Namespace its Executions live in; it sees no others.
    pub namespace: String,
    /// Who it is: API key id, JWT subject, or `anonymous`.
    pub subject: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

/// A caller's rate and the bucket it draws from: the same credential gives the same bucket
/// on every replica (an API key's is a digest of the key itself, not of its position in the
/// configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    pub rate: Rate,
    pub bucket: String,
}

/// The hex SHA-256 of `s`.
pub fn digest(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

struct KeyEntry {
    namespace: String,
    rate: Rate,
    /// A printable id for logs and annotations (never the key itself).
    id: String,
}

/// The credentials and the rate limiter (cheap to clone: one shared copy).
#[derive(Clone)]
pub struct Auth(Arc<Inner>);

struct Inner {
    enabled: bool,
    keys: HashMap<String, KeyEntry>,
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    default_namespace: String,
    default_rate: Rate,
    anonymous_rate: Option<Rate>,
    limiter: RateLimiter,
    /// The shared buckets (Redis), once attached.
    shared: OnceLock<Arc<dyn StatusStore>>,
    /// Until when the shared buckets are skipped after a failure.
    shared_down_until: Mutex<Option<Instant>>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    ns: Option<String>,
}

impl Auth {
    pub fn from_config(c: &Config) -> anyhow::Result<Auth> {
        let default_rate = Rate { per_sec: c.rate, burst: f64::from(c.burst.max(1)) };
        let mut keys = HashMap::new();
        for (i, k) in c.all_api_keys()?.into_iter().enumerate() {
            let rate = Rate {
                per_sec: k.rate.unwrap_or(default_rate.per_sec),
                burst: k.burst.map(f64::from).unwrap_or(default_rate.burst),
            };
            let namespace = k.namespace.clone().unwrap_or_else(|| c.namespace.clone());
            keys.insert(k.key, KeyEntry { namespace, rate, id: format!("key-{}", i + 1) });
        }
        let hs256 = c.jwt_hs256_secret.as_ref().map(|s| DecodingKey::from_secret(s.as_bytes()));
        let rs256 = match &c.jwt_rs256_public_key {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading RS256 public key {}: {e}", path.display()))?;
                Some(DecodingKey::from_rsa_pem(&pem)?)
            }
            None => None,
        };
        if c.auth && keys.is_empty() && hs256.is_none() && rs256.is_none() {
            anyhow::bail!("--auth is on but no API key or JWT key is configured");
        }
        Ok(Auth(Arc::new(Inner {
            enabled: c.auth,
            keys,
            hs256,
            rs256,
            default_namespace: c.namespace.clone(),
            default_rate,
            anonymous_rate: (c.anonymous_rate > 0.0)
                .then_some(Rate { per_sec: c.anonymous_rate, burst: (c.anonymous_rate * 2.0).max(1.0) }),
            limiter: RateLimiter::default(),
            shared: OnceLock::new(),
            shared_down_until: Mutex::new(None),
        })))
    }

    /// Draw tokens from the shared buckets of `store` from now on (once; later calls are
    /// ignored).
    pub fn share_buckets(&self, store: Arc<dyn StatusStore>) {
        let _ = self.0.shared.set(store);
    }

    pub fn enabled(&self) -> bool {
        self.0.enabled
    }

    /// Take one token from the caller's bucket; `Err(seconds)` to wait. The shared bucket
    /// when it answers, else this process's own.
    pub async fn take(&self, quota: &Quota, metrics: &Metrics) -> Result<(), u64> {
        if let Some(store) = self.0.shared.get() {
            let skip = {
                let down = self.0.shared_down_until.lock().unwrap_or_else(|p| p.into_inner());
                down.is_some_and(|t| Instant::now() < t)
            };
            if !skip {
                let answer =
                    tokio::time::timeout(SHARED_TIMEOUT, store.take_token(&quota.bucket, quota.rate)).await;
                match answer {
                    Ok(Ok(verdict)) => {
                        let mut down = self.0.shared_down_until.lock().unwrap_or_else(|p| p.into_inner());
                        if down.take().is_some() {
                            tracing::info!("shared rate-limit buckets answer again");
                        }
                        return verdict;
                    }
                    Ok(Err(e)) => self.shared_failed(&e.to_string()),
                    Err(_) => self.shared_failed("timed out"),
                }
            }
            metrics.rate_limit_local.inc();
        }
        self.0.limiter.check(&quota.bucket, quota.rate)
    }

    fn shared_failed(&self, why: &str) {
        let mut down = self.0.shared_down_until.lock().unwrap_or_else(|p| p.into_inner());
        if down.is_none() {
            tracing::warn!(error = why, "shared rate-limit buckets unreachable; limiting per replica");
        }
        *down = Some(Instant::now() + SHARED_RETRY);
    }

    /// Identify the caller; `Ok((tenant, quota))`, quota `None` meaning unlimited.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<(Tenant, Option<Quota>), ApiError> {
        let a = &self.0;
        if !a.enabled {
            let tenant = Tenant {
                namespace: a.default_namespace.clone(),
                subject: peer.map(|p| format!("ip:{p}")).unwrap_or_else(|| "anonymous".into()),
            };
            let quota = a.anonymous_rate.map(|rate| Quota { rate, bucket: tenant.subject.clone() });
            return Ok((tenant, quota));
        }
        let token = credential(headers)
            .or(query_token)
            .ok_or_else(|| ApiError::unauthorized("credentials required: an API key or a bearer token"))?;
        if let Some(k) = a.keys.get(token) {
            let quota = Quota { rate: k.rate, bucket: format!("key:{}", digest(token)) };
            return Ok((Tenant { namespace: k.namespace.clone(), subject: k.id.clone() }, Some(quota)));
        }
        if token.split('.').count() == 3 && (a.hs256.is_some() || a.rs256.is_some()) {
            return self.verify_jwt(token).map(|t| {
                let quota = Quota { rate: a.default_rate, bucket: t.subject.clone() };
                (t, Some(quota))
            });
        }
        Err(ApiError::unauthorized("invalid credentials"))
    }

    fn verify_jwt(&self, token: &str) -> Result<Tenant, ApiError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| ApiError::unauthorized("invalid bearer token"))?;
        let key = match header.alg {
            Algorithm::HS256 => self.0.hs256.as_ref(),
            Algorithm::RS256 => self.0.rs256.as_ref(),
            _ => None,
        }
        .ok_or_else(|| ApiError::unauthorized("unsupported token algorithm"))?;
        let validation = Validation::new(header.alg);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|_| ApiError::unauthorized("invalid or expired bearer token"))?;
        let claims = data.claims;
        if claims.sub.is_empty() {
            return Err(ApiError::unauthorized("the token has no subject"));
        }
        let namespace = match claims.ns {
            Some(ns) if is_dns_label(&ns) => ns,
            Some(_) => {
                return Err(ApiError::forbidden("the token's namespace is not a valid namespace name"))
            }
            None => self.0.default_namespace.clone(),
        };
        Ok(Tenant { namespace, subject: format!("jwt:{}", claims.sub) })
    }
}

/// The credential from the headers, in order: Authorization Bearer, X-API-Key, X-Auth-Token.
fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(rest) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(rest.trim());
        }
    }
    ["x-api-key", "x-auth-token"]
        .into_iter()
        .find_map(|h| headers.get(h).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty()))
}

fn query_credential(query: Option<&str>) -> Option<String> {
    let q = query?;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if (k == "api_key" || k == "access_token") && !v.is_empty() {
            return Some(percent_decode(v));
        }
    }
    None
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' => match (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Token buckets, one per credential.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Take one token; `Err(seconds)` to wait when the bucket is empty.
    pub fn check(&self, key: &str, rate: Rate) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Forget buckets that have refilled: they hold no state worth keeping.
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate.per_sec < rate.burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((rate.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate.per_sec).min(rate.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if rate.per_sec <= 0.0 {
            Err(60)
        } else {
            Err(((1.0 - *tokens) / rate.per_sec).ceil() as u64)
        }
    }
}

/// Middleware: authenticate, rate-limit, and put the [`Tenant`] into the request.
pub async fn require_tenant(
    State(auth): State<Auth>,
    State(metrics): State<Metrics>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let query_token = query_credential(req.uri().query());
    let (tenant, quota) = match auth.authenticate(req.headers(), query_token.as_deref(), peer) {
        Ok(t) => t,
        Err(e) => {
            metrics.auth_failures.inc();
            return axum::response::IntoResponse::into_response(e);
        }
    };
    if let Some(quota) = quota {
        if let Err(wait) = auth.take(&quota, &metrics).await {
            metrics.rate_limited.inc();
            return axum::response::IntoResponse::into_response(ApiError::rate_limited(wait));
        }
    }
    req.extensions_mut().insert(tenant);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refuses_with_retry_after() {
        let l = RateLimiter::default();
        let r = Rate { per_sec: 0.5, burst: 3.0 };
        for _ in 0..3 {
            assert!(l.check("k", r).is_ok());
        }
        let wait = l.check("k", r).unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        // Another key has its own bucket.
        assert!(l.check("other", r).is_ok());
    }

    #[tokio::test]
    async fn without_the_shared_buckets_the_local_one_limits_and_is_counted() {
        use clap::Parser;
        let config = Config::parse_from(["rce-api-shim", "--auth", "--api-key", "secret-key-1:ns:1:2"]);
        let auth = Auth::from_config(&config).unwrap();
        // The in-memory store has no shared buckets: every answer is the local bucket's.
        auth.share_buckets(Arc::new(crate::testing::MemoryStatus::default()));
        let metrics = Metrics::default();
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "secret-key-1".parse().unwrap());
        let (_, quota) = auth.authenticate(&h, None, None).unwrap();
        let quota = quota.unwrap();
        assert_eq!(
            quota.bucket,
            format!("key:{}", digest("secret-key-1")),
            "the key's digest, not its position"
        );
        assert_eq!(auth.take(&quota, &metrics).await, Ok(()));
        assert_eq!(auth.take(&quota, &metrics).await, Ok(()));
        assert_eq!(auth.take(&quota, &metrics).await, Err(1));
        assert_eq!(metrics.rate_limit_local.get(), 3);
    }

    #[test]
    fn credentials_come_from_every_header_and_the_query() {
        let mut h = HeaderMap::new();
        h.insert("x-auth-token", "tok-1".parse().unwrap());
        assert_eq!(credential(&h), Some("tok-1"));
        h.insert("authorization", "Bearer tok-2".parse().unwrap());
        assert_eq!(credential(&h), Some("tok-2"));
        assert_eq!(query_credential(Some("a=1&api_key=k%2Fx")), Some("k/x".into()));
        assert_eq!(query_credential(Some("access_token=abc")), Some("abc".into()));
        assert_eq!(query_credential(Some("x=1")), None);
    }
}

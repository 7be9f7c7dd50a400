//! All configuration in one clap struct; every flag has an environment fallback.

use std::{net::SocketAddr, path::PathBuf, str::FromStr};

use clap::Parser;
use rce_api::{callback::Policy, cli::LogFormat, names::is_dns_label, LimitCaps};

/// The dev-server origins of the seed's browser frontend (Vite, CRA, the nginx gateway).
pub const DEFAULT_CORS_ORIGINS: &str = "http://localhost:5173,http://127.0.0.1:5173,http://localhost:3000,\
http://127.0.0.1:3000,http://localhost:8080,http://127.0.0.1:8080";

#[derive(Parser, Debug, Clone)]
#[command(name = "rce-api-shim", version, about = "rce's REST front (seed, Judge0 and Piston compatible)")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "RCE_SHIM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Redis holding the operator's status mirror.
    #[arg(long, env = "RCE_REDIS_URL", default_value = "redis://127.0.0.1:16379")]
    pub redis_url: String,

    /// Namespace for Executions of unauthenticated callers and of keys without a namespace.
    #[arg(long, env = "RCE_SHIM_NAMESPACE", default_value = "default")]
    pub namespace: String,

    /// Largest accepted request body in bytes (checked before any parsing; over it → 413).
    #[arg(long, env = "RCE_SHIM_BODY_LIMIT", default_value_t = 256 * 1024)]
    pub body_limit: usize,

    /// Longest a `wait=true` (Judge0) or Piston request waits for the result, in seconds.
    #[arg(long, env = "RCE_SHIM_WAIT_MAX_SECS", default_value_t = 30)]
    pub wait_max_secs: u64,

    /// Longest a live stream (SSE / WebSocket) stays open, in seconds.
    #[arg(long, env = "RCE_SHIM_STREAM_MAX_SECS", default_value_t = 600)]
    pub stream_max_secs: u64,

    /// Time limit for producing a response, in seconds (must exceed the wait maximum).
    #[arg(long, env = "RCE_SHIM_REQUEST_TIMEOUT_SECS", default_value_t = 45)]
    pub request_timeout_secs: u64,

    /// Require credentials (API key or JWT). Off by default for local use.
    #[arg(long, env = "RCE_SHIM_AUTH", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub auth: bool,

    /// API keys, comma separated, each `KEY[:NAMESPACE[:RATE[:BURST]]]` (RATE in requests/s).
    #[arg(long = "api-key", env = "RCE_SHIM_API_KEYS", value_delimiter = ',')]
    pub api_keys: Vec<ApiKeySpec>,

    /// File with one API key spec per line (same format as --api-key; `#` starts a comment).
    #[arg(long, env = "RCE_SHIM_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// HS256 secret for JWTs (claims: `sub` required, `ns` optional namespace, `exp`).
    #[arg(long, env = "RCE_SHIM_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,

    /// PEM file with the RS256 public key for JWTs.
    #[arg(long, env = "RCE_SHIM_JWT_RS256_PUBLIC_KEY")]
    pub jwt_rs256_public_key: Option<PathBuf>,

    /// Default request rate per credential (requests per second; token bucket).
    #[arg(long, env = "RCE_SHIM_RATE", default_value_t = 10.0)]
    pub rate: f64,

    /// Default burst per credential.
    #[arg(long, env = "RCE_SHIM_BURST", default_value_t = 20)]
    pub burst: u32,

    /// Rate per client address when auth is off (0 = unlimited).
    #[arg(long, env = "RCE_SHIM_ANONYMOUS_RATE", default_value_t = 0.0)]
    pub anonymous_rate: f64,

    /// Origins allowed by CORS, comma separated; `*` allows any.
    #[arg(long = "cors-origin", env = "RCE_SHIM_CORS_ORIGINS", value_delimiter = ',',
          default_value = DEFAULT_CORS_ORIGINS)]
    pub cors_origins: Vec<String>,

    /// Refuse new submissions with 503 when this many Executions are Pending (0 = never).
    #[arg(long, env = "RCE_SHIM_MAX_PENDING", default_value_t = 200)]
    pub max_pending: usize,

    /// Seconds suggested in `Retry-After` when the queue is full.
    #[arg(long, env = "RCE_SHIM_RETRY_AFTER_SECS", default_value_t = 5)]
    pub retry_after_secs: u64,

    /// Most submissions in one Judge0 batch.
    #[arg(long, env = "RCE_SHIM_MAX_BATCH", default_value_t = 20)]
    pub max_batch: usize,

    /// Extra labels put on every Execution this shim creates, comma separated `key=value`
    /// (e.g. `rce.dev/operator=NAME` to route them to a dedicated operator).
    #[arg(long = "execution-label", env = "RCE_SHIM_EXECUTION_LABELS", value_delimiter = ',')]
    pub execution_labels: Vec<String>,

    /// Result-callback destinations (Judge0's `callback_url`), comma separated: `public`,
    /// CIDRs (`127.0.0.1/32`), host names. Loopback, link-local, private and cluster ranges
    /// are refused unless listed. Empty (the default): callbacks are off, and a submission
    /// asking for one is refused. The operator takes the same flag; it makes the call.
    #[arg(long, env = "RCE_CALLBACK_ALLOW", default_value = "", value_parser = Policy::parse)]
    pub callback_allow: Policy,

    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "RCE_LOG", default_value = "info,tower_http=info")]
    pub log: String,

    /// Log format.
    #[arg(long, env = "RCE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The ceilings on every limit: the operator's `--cap-*` flags, given to the shim too so
    /// that it refuses at once what the operator would refuse.
    #[command(flatten)]
    pub caps: LimitCaps,

    /// The bounds on test cases (`--max-tests*`; the operator takes the same flags).
    #[command(flatten)]
    pub tests: rce_api::TestCaps,

    /// RabbitMQ URL: when set (and built with the `amqp` feature), submissions go through a
    /// durable queue whose consumer creates the Executions.
    #[cfg(feature = "amqp")]
    #[arg(long, env = "RCE_AMQP_URL")]
    pub amqp_url: Option<String>,

    /// Name of the durable submission queue.
    #[cfg(feature = "amqp")]
    #[arg(long, env = "RCE_AMQP_QUEUE", default_value = "rce.submissions")]
    pub amqp_queue: String,

    /// Unacked submission messages per consumer (the channel's prefetch).
    #[cfg(feature = "amqp")]
    #[arg(long, env = "RCE_AMQP_PREFETCH", default_value_t = 16)]
    pub amqp_prefetch: u16,

    /// Consume the queue in this shim (false: this replica only publishes).
    #[cfg(feature = "amqp")]
    #[arg(long, env = "RCE_AMQP_CONSUME", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub amqp_consume: bool,
}

impl Config {
    /// The configuration with every default, as used by tests.
    pub fn defaults() -> Self {
        Config::parse_from(["rce-api-shim"])
    }

    /// The extra Execution labels as a map.
    pub fn labels(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        self.execution_labels
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match l.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
                _ => anyhow::bail!("--execution-label {l:?} is not key=value"),
            })
            .collect()
    }

    /// All API keys: the flag/env ones plus those of the keys file.
    pub fn all_api_keys(&self) -> anyhow::Result<Vec<ApiKeySpec>> {
        let mut keys = self.api_keys.clone();
        if let Some(path) = &self.api_keys_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading API keys file {}: {e}", path.display()))?;
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                if !line.is_empty() {
                    keys.push(line.parse().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
                }
            }
        }
        Ok(keys)
    }
}

/// One API key: `KEY[:NAMESPACE[:RATE[:BURST]]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeySpec {
    pub key: String,
    pub namespace: Option<String>,
    pub rate: Option<f64>,
    pub burst: Option<u32>,
}

impl FromStr for ApiKeySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.trim().split(':');
        let key = parts.next().unwrap_or("").to_string();
        if key.len() < 8 {
            return Err("an API key must have at least 8 characters".into());
        }
        let namespace = parts.next().filter(|n| !n.is_empty()).map(str::to_string);
        if let Some(ns) = &namespace {
            if !is_dns_label(ns) {
                return Err(format!("namespace {ns:?} is not a valid Kubernetes namespace name"));
            }
        }
        let rate = match parts.next().filter(|r| !r.is_empty()) {
            Some(r) => Some(r.parse::<f64>().map_err(|_| format!("bad rate {r:?}"))?),
            None => None,
        };
        let burst = match parts.next().filter(|b| !b.is_empty()) {
            Some(b) => Some(b.parse::<u32>().map_err(|_| format!("bad burst {b:?}"))?),
            None => None,
        };
        if parts.next().is_some() {
            return Err("too many ':' in API key spec".into());
        }
        Ok(ApiKeySpec { key, namespace, rate, burst })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_local_and_safe() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.redis_url, "redis://127.0.0.1:16379");
        assert!(!c.auth);
        assert!(c.cors_origins.iter().any(|o| o == "http://localhost:5173"));
        assert!(c.request_timeout_secs > c.wait_max_secs);
        assert!(c.callback_allow.is_off(), "callbacks are off unless allowed");
    }

    #[test]
    fn the_callback_policy_is_parsed_from_the_flag() {
        let c = Config::parse_from(["x", "--callback-allow", "127.0.0.1/32, hooks.example.com"]);
        assert!(c.callback_allow.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(c.callback_allow.check_url("http://10.0.0.1/hook").is_err());
        assert!(Config::try_parse_from(["x", "--callback-allow", "not a host!"]).is_err());
        let off = Config::defaults().callback_allow;
        let e = off.check_url("http://127.0.0.1:9000/hook").unwrap_err();
        assert!(e.0.contains("callbacks are not enabled"), "{e}");
    }

    #[test]
    fn api_key_specs_parse() {
        let k: ApiKeySpec = "secret-key-1:team-a:2.5:7".parse().unwrap();
        assert_eq!(k.key, "secret-key-1");
        assert_eq!(k.namespace.as_deref(), Some("team-a"));
        assert_eq!(k.rate, Some(2.5));
        assert_eq!(k.burst, Some(7));
        let k: ApiKeySpec = "secret-key-2".parse().unwrap();
        assert_eq!(k.namespace, None);
        assert!("short".parse::<ApiKeySpec>().is_err());
        assert!("secret-key-3:Bad_NS".parse::<ApiKeySpec>().is_err());
        let c = Config::parse_from(["x", "--auth", "--api-key", "aaaaaaaa:ns1,bbbbbbbb"]);
        assert!(c.auth);
        assert_eq!(c.api_keys.len(), 2);
    }
}

//! The rce operator binary: configuration, logging, run.
use clap::Parser;
use tracing_subscriber::{fmt, EnvFilter};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = rce_operator::Config::parse();
    let filter = EnvFilter::try_from_env("RCE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var("RCE_LOG_FORMAT").as_deref() == Ok("json") {
        fmt().json().with_env_filter(filter).init();
    } else {
        fmt().with_env_filter(filter).init();
    }
    rce_operator::run(config).await
}

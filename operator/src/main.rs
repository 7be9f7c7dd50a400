//! The rce operator binary: configuration, logging, run.
use clap::Parser;
use rce_operator::config::LogFormat;
use tracing_subscriber::{fmt, EnvFilter};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = rce_operator::Config::parse();
    let filter = EnvFilter::try_new(&config.log)
        .map_err(|e| anyhow::anyhow!("--log / RCE_LOG {:?} is not a log filter: {e}", config.log))?;
    match config.log_format {
        LogFormat::Json => fmt().json().with_env_filter(filter).init(),
        LogFormat::Text => fmt().with_env_filter(filter).init(),
    }
    rce_operator::run(config).await
}

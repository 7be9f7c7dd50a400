use std::{net::SocketAddr, sync::Arc};

use clap::Parser;
use rce_api::cli::LogFormat;
use rce_api_shim::{app, kube_backend::KubeCluster, redis_store::RedisStatus, AppState, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_tracing(&config)?;
    let client = kube::Client::try_default().await?;
    let cluster = KubeCluster::start(client);
    let status = Arc::new(RedisStatus::new(&config.redis_url)?);
    let listen = config.listen;
    let state = AppState::new(config, cluster, status)?;
    #[cfg(feature = "amqp")]
    let state = state.wire_amqp().await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "rce-api-shim listening");
    axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

fn init_tracing(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .map_err(|e| anyhow::anyhow!("--log / RCE_LOG {:?} is not a log filter: {e}", config.log))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

async fn shutdown() {
    rce_api::shutdown::shutdown_signal().await;
    tracing::info!("shutting down");
}

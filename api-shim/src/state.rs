//! Shared application state. Middleware takes only the parts it needs, as sub-states
//! ([`Auth`], [`Metrics`]: `State<Auth>` through [`FromRef`]), so the modules below this one
//! never name `AppState`.

use std::{ops::Deref, sync::Arc, time::Duration};

use axum::extract::FromRef;

use crate::{
    auth::Auth,
    backend::{Cluster, StatusStore},
    config::Config,
    metrics::Metrics,
};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub cluster: Arc<dyn Cluster>,
    pub status: Arc<dyn StatusStore>,
    pub auth: Auth,
    pub metrics: Metrics,
    /// How often a watcher re-reads the status (×4 while a Redis subscription is active).
    pub poll_interval: Duration,
    /// Labels put on every created Execution (from `--execution-label`).
    pub labels: std::collections::BTreeMap<String, String>,
    #[cfg(feature = "amqp")]
    pub amqp: Option<Arc<crate::amqp::Publisher>>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The Runtime catalog, or 503 `starting` until the shim has read it once.
    pub fn runtimes(&self) -> Result<Vec<std::sync::Arc<rce_api::Runtime>>, crate::error::ApiError> {
        self.cluster.runtimes().ok_or_else(crate::error::ApiError::starting)
    }

    pub fn new(
        config: Config,
        cluster: Arc<dyn Cluster>,
        status: Arc<dyn StatusStore>,
    ) -> anyhow::Result<AppState> {
        let auth = Auth::from_config(&config)?;
        auth.share_buckets(status.clone());
        let labels = config.labels()?;
        Ok(AppState(Arc::new(Inner {
            config,
            cluster,
            status,
            auth,
            metrics: Metrics::default(),
            poll_interval: Duration::from_millis(500),
            labels,
            #[cfg(feature = "amqp")]
            amqp: None,
        })))
    }

    /// Same, with a different watcher poll interval (tests).
    pub fn with_poll_interval(self, every: Duration) -> AppState {
        let inner =
            Arc::try_unwrap(self.0).unwrap_or_else(|_| panic!("with_poll_interval on a shared state"));
        AppState(Arc::new(Inner { poll_interval: every, ..inner }))
    }

    #[cfg(feature = "amqp")]
    pub fn with_amqp(self, publisher: Arc<crate::amqp::Publisher>) -> AppState {
        let inner = Arc::try_unwrap(self.0).unwrap_or_else(|_| panic!("with_amqp on a shared state"));
        AppState(Arc::new(Inner { amqp: Some(publisher), ..inner }))
    }

    /// With `--amqp-url` set: connect, start the consumer, and send submissions through the
    /// queue from now on. Without it, the state as it is.
    #[cfg(feature = "amqp")]
    pub async fn wire_amqp(self) -> anyhow::Result<AppState> {
        let Some(settings) = crate::amqp::Settings::from_config(&self.config) else {
            return Ok(self);
        };
        let publisher = crate::amqp::connect(settings, self.cluster.clone()).await?;
        Ok(self.with_amqp(Arc::new(publisher)))
    }

    /// The ceilings on every limit (the operator's, given to the shim by the same flags).
    pub fn cap(&self) -> rce_api::ResolvedLimits {
        self.config.caps.limits()
    }

    /// Which result-callback destinations are admitted (`--callback-allow`); check a
    /// submission's URL with `state.callback_policy().check_url(url)`.
    pub fn callback_policy(&self) -> &rce_api::callback::Policy {
        &self.config.callback_allow
    }

    pub fn wait_max(&self) -> Duration {
        Duration::from_secs(self.config.wait_max_secs)
    }
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Auth {
        state.auth.clone()
    }
}

impl FromRef<AppState> for Metrics {
    fn from_ref(state: &AppState) -> Metrics {
        state.metrics.clone()
    }
}

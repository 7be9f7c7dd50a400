//! Shared helpers for the tests in `tests/tests/`, which run against a real cluster: a real
//! kube-apiserver and kubelet running real Pods (the local cluster of `make up`, or whatever
//! `KUBECONFIG` points at). They fail, never skip, when no cluster is reachable.

pub mod broker;
pub mod exec;
pub mod operator;
pub mod redis;
pub mod replicas;
pub mod shim;
pub mod warm;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use rand::Rng;

/// A client for the test cluster; an error that says what to do when there is none.
pub async fn client() -> Result<Client> {
    let client = Client::try_default().await.context(
        "no Kubernetes cluster configured: run `make up` and `eval \"$(make env)\"`, or `make test`",
    )?;
    client
        .apiserver_version()
        .await
        .context("the Kubernetes API server is not reachable: is the cluster up (`make up`)?")?;
    Ok(client)
}

/// A random DNS-safe suffix.
pub fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..8).map(|_| (b'a' + rng.random_range(0..26u8)) as char).collect()
}

/// A namespace of its own for one test, labelled `rce.dev/test=true`, removed by
/// [`TestNamespace::cleanup`] (and by `make test` for any a failed test left behind).
pub struct TestNamespace {
    pub client: Client,
    pub name: String,
}

impl TestNamespace {
    pub async fn new(prefix: &str) -> Result<Self> {
        let client = client().await?;
        let name = format!("{prefix}-{}", random_suffix());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"rce.dev/test": "true"}}
        }))?;
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await?;
        // The controller-manager creates the namespace's default ServiceAccount; pods wait for it.
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &name);
        for _ in 0..100 {
            if sa.get_opt("default").await?.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self { client, name })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    pub async fn cleanup(self) -> Result<()> {
        Api::<Namespace>::all(self.client.clone()).delete(&self.name, &DeleteParams::background()).await?;
        Ok(())
    }
}

/// The small local image the cluster's own tests run (busybox), from `RCE_TEST_IMAGE`.
pub fn test_image() -> Result<String> {
    std::env::var("RCE_TEST_IMAGE").context("RCE_TEST_IMAGE is not set: run `eval \"$(make env)\"`")
}

/// Wait until the Pod's first container has terminated; return (exit code, reason).
pub async fn wait_terminated(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<(i32, String)> {
    let cond = |p: Option<&Pod>| terminated(p).is_some();
    tokio::time::timeout(timeout, await_condition(pods.clone(), name, cond))
        .await
        .with_context(|| format!("pod {name} did not terminate within {timeout:?}"))??;
    let pod = pods.get(name).await?;
    match terminated(Some(&pod)) {
        Some(t) => Ok(t),
        None => bail!("pod {name} lost its terminated state"),
    }
}

fn terminated(p: Option<&Pod>) -> Option<(i32, String)> {
    let st = p?.status.as_ref()?.container_statuses.as_ref()?.first()?.state.as_ref()?.terminated.as_ref()?;
    Some((st.exit_code, st.reason.clone().unwrap_or_default()))
}

/// The log of a Pod's only container, read through the API (apiserver → kubelet).
pub async fn pod_log(pods: &Api<Pod>, name: &str) -> Result<String> {
    Ok(pods.logs(name, &LogParams::default()).await?)
}

/// Name of a Pod, for messages.
pub fn pod_name(p: &Pod) -> String {
    p.name_any()
}

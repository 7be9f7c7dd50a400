//! Turning a validated submission into an `Execution`, the same way for every surface.

use std::{collections::BTreeMap, sync::Arc};

use kube::api::ObjectMeta;
use rce_api::{Execution, ExecutionSpec, Limits, Runtime, SourceFile};

use crate::{
    auth::Tenant,
    backend::{wait_terminal, BackendError, ExecView},
    catalog,
    error::{ApiError, Flavor},
    state::AppState,
};

/// Annotation naming the API surface a submission came through.
pub const API_ANNOTATION: &str = "rce.dev/api";
/// Annotation with the Judge0 language id a submission asked for.
pub const JUDGE0_ID_ANNOTATION: &str = "rce.dev/judge0-language-id";
/// Annotation naming the credential (key id or JWT subject) that submitted it.
pub const SUBJECT_ANNOTATION: &str = "rce.dev/submitted-by";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "rce-api-shim");

/// The program: one source text or several files.
#[derive(Debug, Clone)]
pub enum Program {
    Source(String),
    Files(Vec<SourceFile>),
}

#[derive(Debug, Clone)]
pub struct Submission {
    pub runtime: Arc<Runtime>,
    pub program: Program,
    pub stdin: Option<String>,
    pub args: Vec<String>,
    pub limits: Option<Limits>,
    pub expected_output: Option<String>,
    /// Which surface it came through (written on the Execution as `rce.dev/api`).
    pub api: Flavor,
    pub annotations: BTreeMap<String, String>,
}

/// A fresh Execution name: a v4 UUID, DNS-safe and usable as a Judge0 token.
pub fn new_name() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Is `id` something we could have generated? Cheap guard before any lookup.
pub fn plausible_name(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 253
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Refuse new work while too many Executions wait for capacity.
pub fn check_backpressure(state: &AppState, incoming: usize) -> Result<(), ApiError> {
    let max = state.config.max_pending;
    if max == 0 {
        return Ok(());
    }
    if let Some(pending) = state.cluster.pending() {
        state.metrics.pending.set(pending as i64);
        if pending + incoming > max {
            state.metrics.queue_full.inc();
            return Err(ApiError::queue_full(state.config.retry_after_secs));
        }
    }
    Ok(())
}

/// Build the Execution object (pure).
pub fn build(
    tenant: &Tenant,
    name: &str,
    sub: &Submission,
    extra_labels: &BTreeMap<String, String>,
) -> Execution {
    let (source, files) = match &sub.program {
        Program::Source(s) => (Some(s.clone()), None),
        Program::Files(f) => (None, Some(f.clone())),
    };
    let spec = ExecutionSpec {
        language: catalog::name(&sub.runtime).to_string(),
        source,
        files,
        stdin: sub.stdin.clone(),
        args: sub.args.clone(),
        limits: sub.limits,
        expected_output: sub.expected_output.clone(),
        ..Default::default()
    };
    let mut annotations = sub.annotations.clone();
    annotations.insert(API_ANNOTATION.into(), sub.api.as_str().into());
    annotations.insert(SUBJECT_ANNOTATION.into(), tenant.subject.clone());
    // The submission time to the microsecond: the queue's order among Executions created in
    // the same second (the creationTimestamp has whole seconds).
    annotations.insert(
        rce_api::queue::SUBMITTED_ANNOTATION.into(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    );
    Execution {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(tenant.namespace.clone()),
            labels: Some({
                let mut l = extra_labels.clone();
                l.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
                l
            }),
            annotations: Some(annotations),
            // The operator's own finalizer, set at once (it would add it first thing).
            finalizers: Some(vec![rce_api::FINALIZER.to_string()]),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// Validate limits, apply back-pressure, create the Execution. Returns the created object.
pub async fn submit(state: &AppState, tenant: &Tenant, sub: Submission) -> Result<Execution, ApiError> {
    catalog::resolve_limits(&sub.runtime, sub.limits.as_ref(), &state.cap())
        .map_err(|e| ApiError::limit(&e))?;
    let name = new_name();
    submit_execution(state, build(tenant, &name, &sub, &state.labels)).await
}

/// Apply back-pressure, then create the Execution (or publish it, with a queue). For a
/// surface that builds the Execution itself (the spec fields [`Submission`] does not carry).
pub async fn submit_execution(state: &AppState, ex: Execution) -> Result<Execution, ApiError> {
    check_backpressure(state, 1)?;
    #[cfg(feature = "amqp")]
    if let Some(p) = &state.amqp {
        return p.publish(ex).await;
    }
    create(state, ex).await
}

/// Wait for an Execution's terminal status, up to `--wait-max-secs` (Judge0's `wait=true`,
/// Piston's execute); the last view seen either way.
pub async fn wait_result(state: &AppState, namespace: &str, name: &str) -> Result<ExecView, ApiError> {
    wait_terminal(&*state.cluster, &*state.status, state.poll_interval, namespace, name, state.wait_max())
        .await
}

pub async fn create(state: &AppState, ex: Execution) -> Result<Execution, ApiError> {
    let started = std::time::Instant::now();
    let result = state.cluster.create(ex).await;
    state.metrics.create_latency.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(created) => {
            state.metrics.submissions.inc();
            Ok(created)
        }
        Err(BackendError::Rejected { code: 422, message, .. }) => {
            tracing::warn!(%message, "the apiserver refused the Execution");
            Err(ApiError::invalid("the submission was refused by the cluster's validation"))
        }
        Err(BackendError::Rejected { code: code @ (401 | 403 | 404), message, .. }) => {
            // A tenant namespace that does not exist, or RBAC that does not allow it: the
            // operator of this shim must fix its configuration; the client learns nothing more.
            tracing::error!(code, %message, "the apiserver refused to create the Execution");
            Err(ApiError::internal())
        }
        Err(e) => {
            tracing::error!(error = %e, "creating the Execution failed");
            Err(ApiError::unavailable())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::seed_runtimes;

    #[test]
    fn the_api_annotation_names_the_surface() {
        let tenant = Tenant { namespace: "default".into(), subject: "anonymous".into() };
        let runtime = Arc::new(seed_runtimes().remove(0));
        for (api, name) in [
            (Flavor::Native, "rce"),
            (Flavor::Seed, "seed"),
            (Flavor::Judge0, "judge0"),
            (Flavor::Piston, "piston"),
        ] {
            let sub = Submission {
                runtime: runtime.clone(),
                program: Program::Source("1".into()),
                stdin: None,
                args: vec![],
                limits: None,
                expected_output: None,
                api,
                annotations: Default::default(),
            };
            let ex = build(&tenant, "x", &sub, &BTreeMap::new());
            let annotations = ex.metadata.annotations.unwrap();
            assert_eq!(annotations[API_ANNOTATION], name);
            let stamp = &annotations[rce_api::queue::SUBMITTED_ANNOTATION];
            assert!(
                stamp.len() == "2026-01-01T00:00:00.000000Z".len() && stamp.ends_with('Z'),
                "microseconds, UTC: {stamp}"
            );
        }
    }
}

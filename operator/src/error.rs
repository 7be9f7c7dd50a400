//! The operator's one error type.

/// Errors of a reconciliation. None of them is about the Execution being invalid: an invalid
/// Execution ends `Failed` with a message, it is not an error of the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    #[error("a Pod named {0} was in the way when the sandbox was created and is gone now; retrying")]
    ForeignPod(String),

    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),

    #[error("test data not there yet: {0}")]
    TestDataPending(String),
}

impl Error {
    /// A short label for the `rce_reconcile_errors_total` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.is_conflict() => "conflict",
            Error::Kube(kube::Error::Api(_)) => "kube_api",
            Error::Kube(_) => "kube",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.metric_label(),
                _ => "finalizer",
            },
            Error::ForeignPod(_) => "foreign_pod",
            Error::Encode(_) => "encode",
            Error::TestDataPending(_) => "test_data_pending",
        }
    }

    /// A write based on an outdated copy of the object: retry soon, it is not a fault.
    pub fn is_conflict(&self) -> bool {
        self.metric_label() == "conflict"
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short_and_see_through_the_finalizer() {
        let conflict = kube::Error::Api(Box::new(kube::core::Status {
            code: 409,
            reason: "Conflict".into(),
            ..Default::default()
        }));
        let e =
            Error::Finalizer(Box::new(kube::runtime::finalizer::Error::ApplyFailed(Error::Kube(conflict))));
        assert_eq!(e.metric_label(), "conflict");
        assert!(e.is_conflict());
        assert_eq!(Error::ForeignPod("p".into()).metric_label(), "foreign_pod");
    }
}

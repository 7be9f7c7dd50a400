//! Judge0's status table, and the status of an Execution in it: the domain core's
//! ([`rce_api::judge0::outcome`]; the mapping is in its module docs).

pub use rce_api::judge0::{status_description, STATUSES};

use crate::backend::ExecView;

/// The Judge0 status id of an Execution.
pub fn status_id(view: &ExecView) -> u32 {
    rce_api::judge0::status_id(&view.status)
}

/// Judge0's `message` for an Execution (isolate's words).
pub fn message(view: &ExecView) -> Option<String> {
    rce_api::judge0::outcome(&view.status).message
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_api::{ExecutionStatus, Phase, Verdict};

    fn view(verdict: Verdict, signal: Option<&str>, exit: Option<i32>) -> ExecView {
        ExecView {
            namespace: "default".into(),
            name: "t".into(),
            language: "python".into(),
            created_at: None,
            status: ExecutionStatus {
                phase: Some(Phase::Completed),
                verdict: Some(verdict),
                signal: signal.map(str::to_string),
                exit_code: exit,
                ..Default::default()
            },
            spec: None,
            annotations: Default::default(),
        }
    }

    #[test]
    fn every_other_signal_is_runtime_error_other_with_its_number() {
        for (name, number) in
            [("SIGSTKFLT", 16), ("SIGRTMIN+2", 36), ("SIGUSR1", 10), ("SIGSYS", 31), ("SIG99", 99)]
        {
            let v = view(Verdict::RuntimeError, Some(name), None);
            assert_eq!(status_id(&v), 12, "{name}");
            assert_eq!(message(&v), Some(format!("Caught fatal signal {number}")), "{name}");
        }
        let v = view(Verdict::RuntimeError, None, Some(3));
        assert_eq!((status_id(&v), message(&v).as_deref()), (11, Some("Exited with error status 3")));
        assert_eq!(status_description(11), "Runtime Error (NZEC)");
    }
}

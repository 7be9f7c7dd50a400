//! Judge0's status table, and the status of an Execution in it (see the module docs of
//! `routes::judge0` for the mapping).

use rce_api::{Phase, Signal, Verdict};

use crate::backend::ExecView;

pub const STATUSES: [(u32, &str); 14] = [
    (1, "In Queue"),
    (2, "Processing"),
    (3, "Accepted"),
    (4, "Wrong Answer"),
    (5, "Time Limit Exceeded"),
    (6, "Compilation Error"),
    (7, "Runtime Error (SIGSEGV)"),
    (8, "Runtime Error (SIGXFSZ)"),
    (9, "Runtime Error (SIGFPE)"),
    (10, "Runtime Error (SIGABRT)"),
    (11, "Runtime Error (NZEC)"),
    (12, "Runtime Error (Other)"),
    (13, "Internal Error"),
    (14, "Exec Format Error"),
];

pub fn status_description(id: u32) -> &'static str {
    STATUSES.iter().find(|(i, _)| *i == id).map_or("Unknown", |(_, d)| d)
}

/// Signal number of a signal name (the core's one table: "SIGSEGV", "SEGV", "SIGRTMIN+2",
/// "11").
pub fn signal_number(signal: &str) -> Option<i32> {
    Signal::parse(signal).map(Signal::number)
}

/// The Judge0 status id of an Execution (see the module docs).
pub fn status_id(view: &ExecView) -> u32 {
    match view.phase() {
        Phase::Pending => 1,
        Phase::Processing => 2,
        Phase::Failed => 13,
        Phase::Completed => match view.status.verdict {
            Some(Verdict::Accepted) => 3,
            Some(Verdict::WrongAnswer) => 4,
            Some(Verdict::TimeLimitExceeded) => 5,
            Some(Verdict::CompilationError) => 6,
            Some(Verdict::OutputLimitExceeded) => 8,
            Some(Verdict::MemoryLimitExceeded) => 12,
            // isolate's statuses: four signals have their own, every other is "Other".
            Some(Verdict::RuntimeError) => match view.status.signal.as_deref().and_then(Signal::parse) {
                Some(Signal::SEGV) => 7,
                Some(Signal::XFSZ) => 8,
                Some(Signal::FPE) => 9,
                Some(Signal::ABRT) => 10,
                Some(_) => 12,
                None => 11,
            },
            Some(Verdict::InternalError | Verdict::Cancelled) | None => 13,
        },
    }
}

/// Judge0's `message`: rce's own reason, else the text Judge0 gives an error exit or a signal.
pub fn message(view: &ExecView) -> Option<String> {
    if let Some(m) = &view.status.message {
        return Some(m.clone());
    }
    match status_id(view) {
        11 => view.status.exit_code.map(|c| format!("Exited with error status {c}")),
        7..=10 | 12 => {
            view.status.signal.as_deref().and_then(signal_number).map(|n| format!("Exited with signal {n}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_api::ExecutionStatus;

    fn view(phase: Phase, verdict: Option<Verdict>, signal: Option<&str>, exit: Option<i32>) -> ExecView {
        ExecView {
            namespace: "default".into(),
            name: "t".into(),
            language: "python".into(),
            created_at: None,
            status: ExecutionStatus {
                phase: Some(phase),
                verdict,
                signal: signal.map(str::to_string),
                exit_code: exit,
                ..Default::default()
            },
            spec: None,
            annotations: Default::default(),
        }
    }

    #[test]
    fn verdicts_map_to_judge0_status_ids() {
        use Verdict::*;
        let c = Phase::Completed;
        assert_eq!(status_id(&view(Phase::Pending, None, None, None)), 1);
        assert_eq!(status_id(&view(Phase::Processing, None, None, None)), 2);
        assert_eq!(status_id(&view(c, Some(Accepted), None, Some(0))), 3);
        assert_eq!(status_id(&view(c, Some(WrongAnswer), None, Some(0))), 4);
        assert_eq!(status_id(&view(c, Some(TimeLimitExceeded), Some("SIGKILL"), None)), 5);
        assert_eq!(status_id(&view(c, Some(CompilationError), None, Some(1))), 6);
        assert_eq!(status_id(&view(c, Some(RuntimeError), Some("SIGSEGV"), None)), 7);
        assert_eq!(status_id(&view(c, Some(RuntimeError), Some("SIGXFSZ"), None)), 8);
        assert_eq!(status_id(&view(c, Some(OutputLimitExceeded), None, None)), 8);
        assert_eq!(status_id(&view(c, Some(RuntimeError), Some("SIGFPE"), None)), 9);
        assert_eq!(status_id(&view(c, Some(RuntimeError), Some("SIGABRT"), None)), 10);
        assert_eq!(status_id(&view(c, Some(RuntimeError), None, Some(1))), 11);
        // The process limit: stopped by the runner, no signal or exit code of its own.
        assert_eq!(status_id(&view(c, Some(RuntimeError), None, None)), 11);
        assert_eq!(status_id(&view(c, Some(RuntimeError), Some("SIGKILL"), None)), 12);
        assert_eq!(status_id(&view(c, Some(MemoryLimitExceeded), Some("SIGKILL"), None)), 12);
        assert_eq!(status_id(&view(Phase::Failed, Some(InternalError), None, None)), 13);
        assert_eq!(status_description(11), "Runtime Error (NZEC)");
        let v = view(c, Some(RuntimeError), None, Some(3));
        assert_eq!(message(&v).as_deref(), Some("Exited with error status 3"));
    }

    #[test]
    fn every_other_signal_is_runtime_error_other_with_its_number() {
        let c = Phase::Completed;
        for (name, number) in
            [("SIGSTKFLT", 16), ("SIGRTMIN+2", 36), ("SIGUSR1", 10), ("SIGSYS", 31), ("SIG99", 99)]
        {
            let v = view(c, Some(Verdict::RuntimeError), Some(name), None);
            assert_eq!(status_id(&v), 12, "{name}");
            assert_eq!(signal_number(name), Some(number), "{name}");
            assert_eq!(message(&v), Some(format!("Exited with signal {number}")), "{name}");
        }
    }
}

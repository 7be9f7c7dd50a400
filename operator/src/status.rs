//! Pure status transitions: what the status becomes at each step.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rce_api::{Condition, ExecutionStatus, Phase, Verdict};

/// `json` with every character YAML does not allow raw (DEL, C1 controls except NEL,
/// surrogates cannot occur, U+FFFE, U+FFFF) written as a `\uXXXX` escape. Such characters
/// can only stand inside JSON strings, where the escape means the same character.
pub fn yaml_safe_json(json: &str) -> String {
    let bad = |c: char| matches!(c, '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}');
    if !json.chars().any(bad) {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if bad(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// RFC 3339 text of a time, in UTC, to the second.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Set (or add) a condition; its lastTransitionTime changes only when its status does.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) {
    let status = rce_api::ConditionStatus::from(status);
    let message = (!message.is_empty()).then(|| message.to_string());
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(now.to_string());
            }
            c.status = status;
            c.reason = Some(reason.to_string());
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: Some(reason.to_string()),
            message,
            last_transition_time: Some(now.to_string()),
            observed_generation: generation,
        }),
    }
}

/// A valid Execution waiting for a sandbox slot.
pub fn pending(
    old: &ExecutionStatus,
    created: Option<&str>,
    generation: Option<i64>,
    why: &str,
    now: &str,
) -> ExecutionStatus {
    let mut st = old.clone();
    st.phase = Some(Phase::Pending);
    st.observed_generation = generation;
    if st.submitted_at.is_none() {
        st.submitted_at = Some(created.unwrap_or(now).to_string());
    }
    set_condition(&mut st.conditions, "Valid", true, "Valid", "", generation, now);
    set_condition(&mut st.conditions, "Scheduled", false, "Queued", why, generation, now);
    set_condition(&mut st.conditions, "Ready", false, "Pending", "", generation, now);
    st
}

/// The sandbox Pod of `attempt` exists.
pub fn processing(
    old: &ExecutionStatus,
    pod: &str,
    attempt: u32,
    message: Option<String>,
    now: &str,
) -> ExecutionStatus {
    let mut st = old.clone();
    let same_pod = st.pod_name.as_deref() == Some(pod) && st.attempts == Some(attempt);
    st.phase = Some(Phase::Processing);
    st.pod_name = Some(pod.to_string());
    st.attempts = Some(attempt);
    if !same_pod || st.started_at.is_none() {
        st.started_at = Some(now.to_string());
    }
    st.message = message;
    let g = st.observed_generation;
    set_condition(
        &mut st.conditions,
        "Scheduled",
        true,
        "SandboxCreated",
        &format!("sandbox Pod {pod} created (attempt {attempt})"),
        g,
        now,
    );
    set_condition(&mut st.conditions, "Ready", false, "Running", "", g, now);
    st
}

/// Merge a result (from [`crate::outcome::finish`]) into the status and close it.
pub fn finished(old: &ExecutionStatus, result: ExecutionStatus, now: &str) -> ExecutionStatus {
    let keep = old.clone();
    let mut st = ExecutionStatus {
        submitted_at: keep.submitted_at,
        started_at: keep.started_at,
        pod_name: keep.pod_name,
        warm_pool: keep.warm_pool,
        attempts: keep.attempts,
        observed_generation: keep.observed_generation,
        conditions: keep.conditions,
        finished_at: Some(now.to_string()),
        ..result
    };
    let g = st.observed_generation;
    let verdict = st.verdict.unwrap_or(Verdict::InternalError);
    let reason = if st.phase == Some(Phase::Failed) { "Failed" } else { verdict.as_str() };
    let message = st.message.clone().unwrap_or_else(|| verdict.as_str().to_string());
    set_condition(&mut st.conditions, "Ready", true, reason, &message, g, now);
    st
}

/// Why an Execution ended Failed: the Ready condition's reason and the event's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// The submission itself is refused (also on the Valid condition).
    Invalid,
    /// A Pod not of this Execution holds its sandbox's name.
    SandboxNameTaken,
    /// The sandbox Pod went away twice before it reported.
    SandboxLost,
    /// The kubelet evicted the sandbox Pod.
    Evicted,
    /// The sandbox Pod did not start in time.
    StartTimeout,
    /// The sandbox's image could not be had: the kubelet's reason (ErrImagePull, …).
    Image(String),
    /// No result was recorded within the sandbox's deadline and a margin.
    ResultTimeout,
    /// The API server refused the result's status.
    StatusRefused,
    /// The full output could not be stored beside the status (a ConfigMap of its name is
    /// not the Execution's, or the API server refused one).
    OutputNotStored,
}

impl FailReason {
    pub fn as_str(&self) -> &str {
        match self {
            FailReason::Invalid => "Invalid",
            FailReason::SandboxNameTaken => "SandboxNameTaken",
            FailReason::SandboxLost => "SandboxLost",
            FailReason::Evicted => "Evicted",
            FailReason::StartTimeout => "StartTimeout",
            FailReason::Image(reason) => reason,
            FailReason::ResultTimeout => "ResultTimeout",
            FailReason::StatusRefused => "StatusRefused",
            FailReason::OutputNotStored => "OutputNotStored",
        }
    }
}

impl std::fmt::Display for FailReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Execution cannot run: phase Failed, verdict InternalError, `reason` on the Ready
/// condition (an invalid submission also on the Valid condition).
pub fn failed(
    old: &ExecutionStatus,
    reason: &FailReason,
    message: &str,
    generation: Option<i64>,
    now: &str,
) -> ExecutionStatus {
    let mut st = old.clone();
    st.phase = Some(Phase::Failed);
    st.verdict = Some(Verdict::InternalError);
    st.message = Some(message.to_string());
    st.finished_at = Some(now.to_string());
    if st.observed_generation.is_none() {
        st.observed_generation = generation;
    }
    if st.submitted_at.is_none() {
        st.submitted_at = Some(now.to_string());
    }
    let g = st.observed_generation;
    if *reason == FailReason::Invalid {
        set_condition(&mut st.conditions, "Valid", false, reason.as_str(), message, g, now);
    }
    set_condition(&mut st.conditions, "Ready", true, reason.as_str(), message, g, now);
    st
}

/// What to do with a finished Execution given its TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Keep,
    DeleteNow,
    After(Duration),
}

pub fn expiry(finished_at: Option<&str>, ttl: Option<Duration>, now: DateTime<Utc>) -> Expiry {
    let Some(ttl) = ttl else { return Expiry::Keep };
    let Some(done) = finished_at.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return Expiry::After(ttl);
    };
    let age = now.signed_duration_since(done.with_timezone(&Utc)).to_std().unwrap_or_default();
    if age >= ttl {
        Expiry::DeleteNow
    } else {
        Expiry::After(ttl - age + Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_for_an_apply_patch_escapes_what_yaml_refuses() {
        let v = serde_json::json!({"stdout": "answer\u{7f}\u{80}\u{85}\u{9f}\u{fffe}<é\n"});
        let raw = serde_json::to_string(&v).unwrap();
        assert!(raw.contains('\u{7f}'), "serde_json writes DEL raw");
        let safe = yaml_safe_json(&raw);
        assert!(!safe.chars().any(|c| matches!(c, '\u{7f}' | '\u{80}' | '\u{9f}' | '\u{fffe}')), "{safe}");
        assert!(safe.contains('\u{85}'), "NEL is allowed in YAML");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
        assert_eq!(yaml_safe_json("{\"a\":\"plain\"}"), "{\"a\":\"plain\"}");
    }

    #[test]
    fn pending_is_stable_so_reconciling_again_writes_nothing() {
        let a = pending(
            &ExecutionStatus::default(),
            Some("2026-01-01T00:00:00Z"),
            Some(1),
            "waiting",
            "2026-01-01T00:00:01Z",
        );
        assert_eq!(a.phase, Some(Phase::Pending));
        assert_eq!(a.submitted_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(a.observed_generation, Some(1));
        let b = pending(&a, Some("2026-01-01T00:00:00Z"), Some(1), "waiting", "2026-01-01T00:00:09Z");
        assert_eq!(a, b);
        let c = a.conditions.iter().find(|c| c.type_ == "Scheduled").unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", Some("Queued")));
    }

    #[test]
    fn processing_then_finished_keeps_the_history() {
        let p = pending(&ExecutionStatus::default(), Some("t0"), Some(1), "waiting", "t1");
        let r = processing(&p, "e-1", 1, None, "t2");
        assert_eq!(
            (r.phase, r.pod_name.as_deref(), r.attempts),
            (Some(Phase::Processing), Some("e-1"), Some(1))
        );
        assert_eq!(r.started_at.as_deref(), Some("t2"));
        // Adopting the same Pod again keeps startedAt.
        assert_eq!(processing(&r, "e-1", 1, None, "t3").started_at.as_deref(), Some("t2"));
        let retry = processing(&r, "e-2", 2, Some("retrying".into()), "t4");
        assert_eq!((retry.started_at.as_deref(), retry.attempts), (Some("t4"), Some(2)));
        let result = ExecutionStatus {
            phase: Some(Phase::Completed),
            verdict: Some(Verdict::Accepted),
            stdout: Some("hi".into()),
            ..Default::default()
        };
        let f = finished(&r, result, "t5");
        assert_eq!((f.phase, f.verdict), (Some(Phase::Completed), Some(Verdict::Accepted)));
        assert_eq!(
            (f.submitted_at.as_deref(), f.started_at.as_deref(), f.finished_at.as_deref()),
            (Some("t0"), Some("t2"), Some("t5"))
        );
        assert_eq!(f.pod_name.as_deref(), Some("e-1"));
        let ready = f.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("True", Some("Accepted")));
        let sched = f.conditions.iter().find(|c| c.type_ == "Scheduled").unwrap();
        assert_eq!(sched.last_transition_time.as_deref(), Some("t2"));
    }

    #[test]
    fn invalid_executions_fail_with_reason_invalid() {
        let f = failed(
            &ExecutionStatus::default(),
            &FailReason::Invalid,
            "unknown language \"cobol\"",
            Some(1),
            "t",
        );
        assert_eq!((f.phase, f.verdict), (Some(Phase::Failed), Some(Verdict::InternalError)));
        let valid = f.conditions.iter().find(|c| c.type_ == "Valid").unwrap();
        assert_eq!((valid.status.as_str(), valid.reason.as_deref()), ("False", Some("Invalid")));
        assert_eq!(f.message.as_deref(), Some("unknown language \"cobol\""));
    }

    #[test]
    fn finished_executions_expire_after_the_ttl() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T01:00:00Z").unwrap().with_timezone(&Utc);
        let h = Some(Duration::from_secs(3600));
        assert_eq!(expiry(Some("2026-01-01T00:00:00Z"), h, now), Expiry::DeleteNow);
        assert_eq!(expiry(Some("2026-01-01T00:59:00Z"), h, now), Expiry::After(Duration::from_secs(3541)));
        assert_eq!(expiry(Some("2026-01-01T00:00:00Z"), None, now), Expiry::Keep);
    }
}

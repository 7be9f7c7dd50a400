//! What to do with a Processing Execution, from what is known of its sandbox Pod and how long
//! it has been running (pure: plain values in, a [`Decision`] out). The controller gathers
//! the facts, calls [`processing`] and carries the decision out.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::{
    config::Config,
    outcome::{self, PodView, Termination},
    status::FailReason,
};

/// How often a running sandbox is looked at without a Pod event.
pub const RUNNING_RECHECK: Duration = Duration::from_secs(30);
/// Longest pause while a sandbox waits to start without trouble.
const STARTING_RECHECK: Duration = Duration::from_secs(10);
/// Past the end of the image-error grace, so the next look is past it.
const GRACE_SLACK: Duration = Duration::from_millis(100);

/// What the operator knows of a sandbox Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    pub view: PodView,
    /// Time since the Pod was created.
    pub age: Duration,
    /// The sandbox container's image, for messages.
    pub image: Option<String>,
    /// The Pod's activeDeadlineSeconds.
    pub active_deadline: Option<Duration>,
}

impl PodFacts {
    /// The facts of `pod`, created `age` ago.
    pub fn of(pod: &Pod, age: Duration) -> Self {
        let spec = pod.spec.as_ref();
        PodFacts {
            view: outcome::view(pod),
            age,
            image: spec.and_then(|s| s.containers.first()).and_then(|c| c.image.clone()),
            active_deadline: spec
                .and_then(|s| s.active_deadline_seconds)
                .map(|d| Duration::from_secs(d.max(0) as u64)),
        }
    }
}

/// Where the operator has looked for the sandbox Pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox<'a> {
    /// A live copy of the Execution's Pod in the cache.
    Cached(&'a PodFacts),
    /// No live copy in the cache, and the API has not been asked yet.
    NotCached,
    /// The API's answer after a cache miss: `None` when it has no Pod of this Execution by
    /// that name.
    Fetched(Option<&'a PodFacts>),
}

/// The operator's time limits for a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long an image or container-config problem may last before the Execution fails.
    pub image_error_grace: Duration,
    /// How long a Pod may take to start without a known problem.
    pub start_timeout: Duration,
    /// Past the sandbox's deadline plus this, an Execution with no result fails.
    pub result_margin: Duration,
    /// The deadline assumed when the Pod is not at hand: the largest any sandbox gets.
    pub fallback_deadline: Duration,
}

impl Timeouts {
    pub fn of(config: &Config) -> Self {
        Timeouts {
            image_error_grace: Duration::from_secs(config.image_error_grace_seconds),
            start_timeout: Duration::from_secs(config.start_timeout_seconds),
            result_margin: Duration::from_secs(config.result_margin_seconds),
            fallback_deadline: Duration::from_secs(
                // The compile stage and up to MAX_RUNS runs, a second apart.
                (config.cap().wall_time_ms.div_ceil(1000) + 1) * (u64::from(rce_api::MAX_RUNS) + 1)
                    + config.sandbox.start_margin_seconds,
            ),
        }
    }
}

/// What to do with a Processing Execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The cache has no live copy of the Pod: read it from the API, then decide again
    /// (with [`Sandbox::Fetched`]).
    LookUp,
    /// Nothing to do yet: look again after this long (or on a Pod event).
    Requeue(Duration),
    /// The container has terminated: read the result from the Pod's log.
    ReadResult(Termination),
    /// The sandbox went away before it reported: start `attempt` with `message` (an event
    /// and the status message).
    Retry { attempt: u32, message: String },
    /// The Execution ends Failed: `reason` for the condition and the event, and `message`.
    Fail { reason: FailReason, message: String },
}

fn fail(reason: FailReason, message: String) -> Decision {
    Decision::Fail { reason, message }
}

/// Decide for a Processing Execution on `attempt` whose sandbox Pod is `pod_name`, started
/// `since_start` ago (`None`: no usable startedAt).
///
/// The watchdog comes first, before anything is read from the API: whatever goes wrong
/// later (a log that cannot be read, a status that cannot be written), past the sandbox's
/// deadline and a margin the Execution fails. It is checked once per reconciliation, so not
/// again after a look-up.
pub fn processing(
    sandbox: Sandbox<'_>,
    since_start: Option<Duration>,
    attempt: u32,
    pod_name: &str,
    t: &Timeouts,
) -> Decision {
    let before_lookup = match sandbox {
        Sandbox::Cached(f) => Some(Some(f)),
        Sandbox::NotCached => Some(None),
        Sandbox::Fetched(_) => None,
    };
    if let Some(facts) = before_lookup {
        let deadline = facts.and_then(|f| f.active_deadline).unwrap_or(t.fallback_deadline);
        let limit = deadline + t.result_margin;
        if since_start.is_some_and(|age| age > limit) {
            return fail(
                FailReason::ResultTimeout,
                format!(
                    "no result was recorded within {} s of the sandbox's start (its deadline plus {} s); giving up",
                    limit.as_secs(),
                    t.result_margin.as_secs()
                ),
            );
        }
    }
    let f = match sandbox {
        Sandbox::Cached(f) | Sandbox::Fetched(Some(f)) => f,
        Sandbox::NotCached => return Decision::LookUp,
        Sandbox::Fetched(None) => return lost(attempt, pod_name),
    };
    match &f.view {
        PodView::Deleting => lost(attempt, pod_name),
        PodView::Evicted { message } => {
            fail(FailReason::Evicted, format!("the sandbox Pod {pod_name} was evicted: {message}"))
        }
        PodView::Starting { problem: Some((reason, message)), .. } => {
            if f.age >= t.image_error_grace {
                fail(
                    FailReason::Image(reason.clone()),
                    format!(
                        "the sandbox could not start: {reason} for image {}: {message}",
                        f.image.as_deref().unwrap_or_default()
                    ),
                )
            } else {
                Decision::Requeue(t.image_error_grace - f.age + GRACE_SLACK)
            }
        }
        PodView::Starting { problem: None, waiting } => {
            if f.age >= t.start_timeout {
                fail(
                    FailReason::StartTimeout,
                    format!(
                        "the sandbox Pod {pod_name} did not start within {} s ({})",
                        t.start_timeout.as_secs(),
                        waiting.as_deref().unwrap_or("no reason given")
                    ),
                )
            } else {
                Decision::Requeue((t.start_timeout - f.age).min(STARTING_RECHECK))
            }
        }
        PodView::Running => Decision::Requeue(RUNNING_RECHECK),
        PodView::Terminated(term) => Decision::ReadResult(term.clone()),
    }
}

/// The sandbox Pod vanished (or is being deleted) before it reported: retry once.
fn lost(attempt: u32, pod_name: &str) -> Decision {
    if attempt >= 2 {
        return fail(
            FailReason::SandboxLost,
            format!(
                "the sandbox Pod {pod_name} was deleted before the program finished (attempt {attempt}); giving up"
            ),
        );
    }
    let next = attempt + 1;
    Decision::Retry {
        attempt: next,
        message: format!(
            "the sandbox Pod {pod_name} was deleted before the program finished; retrying (attempt {next})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "hello-0123-1";

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            image_error_grace: secs(5),
            start_timeout: secs(120),
            result_margin: secs(60),
            fallback_deadline: secs(200),
        }
    }

    fn pod(view: PodView, age: Duration) -> PodFacts {
        PodFacts { view, age, image: Some("rce/python:1".into()), active_deadline: Some(secs(20)) }
    }

    fn starting(waiting: Option<&str>) -> PodView {
        PodView::Starting { problem: None, waiting: waiting.map(str::to_string) }
    }

    fn image_problem() -> PodView {
        PodView::Starting {
            problem: Some(("ErrImagePull".into(), "connection refused".into())),
            waiting: None,
        }
    }

    fn decide(sandbox: Sandbox<'_>, since_start: Option<Duration>, attempt: u32) -> Decision {
        processing(sandbox, since_start, attempt, POD, &timeouts())
    }

    fn failed(reason: &str, message: &str) -> Decision {
        let reason = match reason {
            "ResultTimeout" => FailReason::ResultTimeout,
            "Evicted" => FailReason::Evicted,
            "StartTimeout" => FailReason::StartTimeout,
            "SandboxLost" => FailReason::SandboxLost,
            image => FailReason::Image(image.into()),
        };
        Decision::Fail { reason, message: message.into() }
    }

    #[test]
    fn timeouts_come_from_the_configuration() {
        let mut c = Config::defaults();
        c.image_error_grace_seconds = 7;
        c.start_timeout_seconds = 90;
        c.result_margin_seconds = 45;
        c.sandbox.caps.cap_wall_time_ms = 10_500;
        c.sandbox.start_margin_seconds = 15;
        assert_eq!(
            Timeouts::of(&c),
            Timeouts {
                image_error_grace: secs(7),
                start_timeout: secs(90),
                result_margin: secs(45),
                // 11 s (rounded up) and a second, for the compile stage and 20 runs, plus
                // the start margin.
                fallback_deadline: secs(12 * 21 + 15),
            }
        );
    }

    #[test]
    fn facts_are_read_from_the_pod() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": POD},
            "spec": {
                "activeDeadlineSeconds": 25,
                "containers": [{"name": "runner", "image": "rce/bash:1"}],
            },
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "runner", "image": "rce/bash:1", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {}},
            }]},
        }))
        .expect("a Pod");
        let f = PodFacts::of(&p, secs(3));
        assert_eq!(
            f,
            PodFacts {
                view: PodView::Running,
                age: secs(3),
                image: Some("rce/bash:1".into()),
                active_deadline: Some(secs(25))
            }
        );
        let bare: Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": POD}})).expect("a Pod");
        let f = PodFacts::of(&bare, secs(0));
        assert_eq!((f.image, f.active_deadline), (None, None));
        assert_eq!(f.view, starting(None));
    }

    #[test]
    fn a_running_sandbox_is_looked_at_again_later() {
        let f = pod(PodView::Running, secs(3));
        assert_eq!(decide(Sandbox::Cached(&f), Some(secs(3)), 1), Decision::Requeue(RUNNING_RECHECK));
        assert_eq!(decide(Sandbox::Fetched(Some(&f)), Some(secs(3)), 1), Decision::Requeue(RUNNING_RECHECK));
    }

    #[test]
    fn a_terminated_sandbox_has_its_result_read() {
        let t = Termination { exit_code: Some(0), reason: Some("Completed".into()), ..Default::default() };
        let f = pod(PodView::Terminated(t.clone()), secs(4));
        assert_eq!(decide(Sandbox::Cached(&f), Some(secs(4)), 1), Decision::ReadResult(t.clone()));
        assert_eq!(decide(Sandbox::Fetched(Some(&f)), None, 2), Decision::ReadResult(t));
    }

    #[test]
    fn a_pod_missing_from_the_cache_is_looked_up_first() {
        assert_eq!(decide(Sandbox::NotCached, Some(secs(5)), 1), Decision::LookUp);
        assert_eq!(decide(Sandbox::NotCached, None, 2), Decision::LookUp);
    }

    #[test]
    fn a_lookup_is_never_asked_for_twice() {
        let views = [
            PodView::Running,
            PodView::Deleting,
            starting(None),
            image_problem(),
            PodView::Evicted { message: "m".into() },
            PodView::Terminated(Termination::default()),
        ];
        for v in views {
            let f = pod(v, secs(1));
            assert_ne!(decide(Sandbox::Fetched(Some(&f)), Some(secs(1)), 1), Decision::LookUp);
        }
        assert_ne!(decide(Sandbox::Fetched(None), Some(secs(1)), 1), Decision::LookUp);
    }

    #[test]
    fn a_lost_first_sandbox_is_retried_once() {
        let want = Decision::Retry {
            attempt: 2,
            message: format!(
                "the sandbox Pod {POD} was deleted before the program finished; retrying (attempt 2)"
            ),
        };
        assert_eq!(decide(Sandbox::Fetched(None), Some(secs(2)), 1), want);
        let deleting = pod(PodView::Deleting, secs(2));
        assert_eq!(decide(Sandbox::Fetched(Some(&deleting)), Some(secs(2)), 1), want);
    }

    #[test]
    fn a_lost_second_sandbox_fails_the_execution() {
        let want = failed(
            "SandboxLost",
            &format!("the sandbox Pod {POD} was deleted before the program finished (attempt 2); giving up"),
        );
        assert_eq!(decide(Sandbox::Fetched(None), Some(secs(2)), 2), want);
        let deleting = pod(PodView::Deleting, secs(2));
        assert_eq!(decide(Sandbox::Fetched(Some(&deleting)), Some(secs(2)), 2), want);
    }

    #[test]
    fn an_evicted_sandbox_fails_with_the_kubelets_message() {
        let f = pod(PodView::Evicted { message: "The node was low on resource: memory.".into() }, secs(9));
        assert_eq!(
            decide(Sandbox::Cached(&f), Some(secs(9)), 1),
            failed(
                "Evicted",
                &format!("the sandbox Pod {POD} was evicted: The node was low on resource: memory.")
            )
        );
    }

    #[test]
    fn an_image_problem_gets_a_grace_then_fails_with_the_image() {
        let young = pod(image_problem(), secs(2));
        assert_eq!(
            decide(Sandbox::Cached(&young), Some(secs(2)), 1),
            Decision::Requeue(secs(3) + Duration::from_millis(100))
        );
        let want = failed(
            "ErrImagePull",
            "the sandbox could not start: ErrImagePull for image rce/python:1: connection refused",
        );
        for age in [secs(5), secs(6)] {
            let old = pod(image_problem(), age);
            assert_eq!(decide(Sandbox::Cached(&old), Some(age), 1), want, "at {age:?}");
        }
        let nameless = PodFacts { image: None, ..pod(image_problem(), secs(5)) };
        assert_eq!(
            decide(Sandbox::Cached(&nameless), Some(secs(5)), 1),
            failed(
                "ErrImagePull",
                "the sandbox could not start: ErrImagePull for image : connection refused"
            )
        );
    }

    #[test]
    fn a_slow_start_is_waited_for_then_fails() {
        let young = pod(starting(Some("ContainerCreating: ")), secs(1));
        assert_eq!(decide(Sandbox::Cached(&young), Some(secs(1)), 1), Decision::Requeue(STARTING_RECHECK));
        let near = pod(starting(None), secs(115));
        assert_eq!(decide(Sandbox::Cached(&near), Some(secs(1)), 1), Decision::Requeue(secs(5)));
        let late = pod(starting(Some("Unschedulable: 0/1 nodes are available")), secs(120));
        assert_eq!(
            decide(Sandbox::Cached(&late), Some(secs(1)), 1),
            failed(
                "StartTimeout",
                &format!(
                    "the sandbox Pod {POD} did not start within 120 s (Unschedulable: 0/1 nodes are available)"
                )
            )
        );
        let silent = pod(starting(None), secs(121));
        assert_eq!(
            decide(Sandbox::Cached(&silent), Some(secs(1)), 1),
            failed(
                "StartTimeout",
                &format!("the sandbox Pod {POD} did not start within 120 s (no reason given)")
            )
        );
    }

    #[test]
    fn the_watchdog_uses_the_pods_deadline_plus_the_margin() {
        // Deadline 20 s + margin 60 s: at 80 s it still waits, past it the Execution fails.
        let f = pod(PodView::Running, secs(81));
        assert_eq!(decide(Sandbox::Cached(&f), Some(secs(80)), 1), Decision::Requeue(RUNNING_RECHECK));
        let want = failed(
            "ResultTimeout",
            "no result was recorded within 80 s of the sandbox's start (its deadline plus 60 s); giving up",
        );
        assert_eq!(decide(Sandbox::Cached(&f), Some(secs(81)), 1), want);
        // Before the result is read: a terminated Pod past the limit fails too.
        let done = pod(PodView::Terminated(Termination::default()), secs(81));
        assert_eq!(decide(Sandbox::Cached(&done), Some(secs(81)), 1), want);
    }

    #[test]
    fn the_watchdog_assumes_the_largest_deadline_without_the_pod() {
        // Fallback 200 s + margin 60 s.
        assert_eq!(decide(Sandbox::NotCached, Some(secs(260)), 1), Decision::LookUp);
        assert_eq!(
            decide(Sandbox::NotCached, Some(secs(261)), 2),
            failed(
                "ResultTimeout",
                "no result was recorded within 260 s of the sandbox's start (its deadline plus 60 s); giving up"
            )
        );
        let no_deadline = PodFacts { active_deadline: None, ..pod(PodView::Running, secs(261)) };
        assert_eq!(
            decide(Sandbox::Cached(&no_deadline), Some(secs(260)), 1),
            Decision::Requeue(RUNNING_RECHECK)
        );
        assert!(matches!(
            decide(Sandbox::Cached(&no_deadline), Some(secs(261)), 1),
            Decision::Fail { reason, .. } if reason.as_str() == "ResultTimeout"
        ));
    }

    #[test]
    fn the_watchdog_needs_a_start_time_and_runs_once_per_reconciliation() {
        let f = pod(PodView::Running, secs(10_000));
        assert_eq!(decide(Sandbox::Cached(&f), None, 1), Decision::Requeue(RUNNING_RECHECK));
        assert_eq!(decide(Sandbox::NotCached, None, 1), Decision::LookUp);
        // Already checked before the look-up: the fetched Pod is judged on what it says.
        assert_eq!(
            decide(Sandbox::Fetched(Some(&f)), Some(secs(10_000)), 1),
            Decision::Requeue(RUNNING_RECHECK)
        );
        assert!(matches!(
            decide(Sandbox::Fetched(None), Some(secs(10_000)), 1),
            Decision::Retry { attempt: 2, .. }
        ));
    }
}

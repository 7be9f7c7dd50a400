//! `reconcile` against a mocked API server (`tower_test::mock`): each scenario runs one
//! reconciliation over a `kube::Client` whose transport is the mock, answers every request
//! the operator sends, and asserts the exact requests (method, path and query, body fields)
//! in order, and nothing more. No cluster, no Redis: the mirror only queues.

use std::{sync::Arc, time::Duration};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    client::Body,
    runtime::{
        controller::Action,
        events::{Recorder, Reporter},
        reflector::{self, store::Writer, Store},
        watcher,
    },
    Client,
};
use rce_api::{Execution, Runtime};
use rce_operator::{
    controller::{self, Context, FINALIZER},
    metrics::Metrics,
    mirror::Mirror,
    names, Config,
};
use serde_json::{json, Value};
use tower_test::mock;

const NS: &str = "t";
const NAME: &str = "hello";
const UID: &str = "0c5b4a1e-6f0d-4a8e-9d7e-2b3c4d5e6f70";
const EXECUTIONS: &str = "/apis/rce.dev/v1alpha1/namespaces/t/executions";
const PODS: &str = "/api/v1/namespaces/t/pods";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/t/events";
const CONFIGMAPS: &str = "/api/v1/namespaces/t/configmaps";
const POLICY: &str =
    "/apis/networking.k8s.io/v1/namespaces/t/networkpolicies/rce-sandbox-deny-all?&force=true&fieldManager=rce-operator";

/// One request the operator sent.
#[derive(Debug, Clone)]
struct Sent {
    method: Method,
    /// Path and query.
    uri: String,
    body: Value,
}

/// The mocked API server's answer to one request.
type Answer = (StatusCode, Value);

fn not_found(what: &str) -> Answer {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{what} not found"), "reason": "NotFound", "code": 404,
    });
    (StatusCode::NOT_FOUND, status)
}

/// Answer each request with `answer` until the client is gone; return what was sent.
fn serve(
    handle: mock::Handle<Request<Body>, Response<Body>>,
    mut answer: impl FnMut(&Sent) -> Answer + Send + 'static,
) -> tokio::task::JoinHandle<Vec<Sent>> {
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        let mut sent = Vec::new();
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.expect("a request body").to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("a JSON request body")
            };
            let uri = parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default();
            let s = Sent { method: parts.method, uri, body };
            let (code, value) = answer(&s);
            // A Pod log is text, not JSON.
            let raw = match (&value, s.uri.contains("/log?")) {
                (Value::String(text), true) => text.as_bytes().to_vec(),
                _ => serde_json::to_vec(&value).expect("JSON"),
            };
            sent.push(s);
            let response = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(raw))
                .expect("a response");
            respond.send_response(response);
        }
        sent
    })
}

fn fill<K>(items: &[K]) -> Store<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, mut writer): (Store<K>, Writer<K>) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for item in items {
        writer.apply_watcher_event(&watcher::Event::InitApply(item.clone()));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    store
}

/// The operator's context over `client`, with these caches and finished Executions kept.
fn context(client: Client, config: Config, executions: &[Execution], pods: &[Pod]) -> Arc<Context> {
    let metrics = Arc::new(Metrics::default());
    let recorder = Recorder::new(client.clone(), Reporter::from("rce-operator"));
    let (wake, _) = tokio::sync::mpsc::unbounded_channel();
    Arc::new(Context::new(
        client,
        config,
        fill(executions),
        fill(&[python()]),
        fill(pods),
        fill(&[]),
        Default::default(),
        recorder,
        metrics.clone(),
        Mirror::new(metrics),
        wake,
        rce_operator::callback::Callbacks::new(Default::default()),
    ))
}

fn config() -> Config {
    let mut c = Config::defaults();
    c.ttl_seconds = 0;
    c
}

/// Run one reconciliation of `exec` against a mocked API server answering with `answer`;
/// return its result and the requests sent.
async fn reconcile(
    exec: &Execution,
    config: Config,
    others: &[Execution],
    answer: impl FnMut(&Sent) -> Answer + Send + 'static,
) -> (Action, Vec<Sent>) {
    reconcile_with_pods(exec, config, others, &[], answer).await
}

/// [`reconcile`] with these sandbox Pods in the cache.
async fn reconcile_with_pods(
    exec: &Execution,
    config: Config,
    others: &[Execution],
    pods: &[Pod],
    answer: impl FnMut(&Sent) -> Answer + Send + 'static,
) -> (Action, Vec<Sent>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = serve(handle, answer);
    let client = Client::new(service, "default");
    let mut cached = others.to_vec();
    cached.push(exec.clone());
    let ctx = context(client, config, &cached, pods);
    let action =
        tokio::time::timeout(Duration::from_secs(10), controller::reconcile(Arc::new(exec.clone()), ctx))
            .await
            .expect("reconcile finished within 10 s")
            .expect("reconcile succeeded");
    let sent = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the client was dropped")
        .expect("the mock server did not panic");
    (action, sent)
}

fn python() -> Runtime {
    serde_json::from_value(json!({
        "apiVersion": "rce.dev/v1alpha1",
        "kind": "Runtime",
        "metadata": {"name": "python"},
        "spec": {"version": "3.11", "image": "rce/python:1", "sourceFile": "main.py", "run": ["python3", "{file}"]},
    }))
    .expect("a Runtime")
}

/// An Execution in `NS` with the finalizer (unless `finalized` is false) and `status`.
fn execution(spec: Value, finalized: bool, status: Value) -> Execution {
    let mut v = json!({
        "apiVersion": "rce.dev/v1alpha1",
        "kind": "Execution",
        "metadata": {
            "name": NAME, "namespace": NS, "uid": UID, "resourceVersion": "7", "generation": 1,
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": spec,
    });
    if finalized {
        v["metadata"]["finalizers"] = json!([FINALIZER]);
    }
    if !status.is_null() {
        v["status"] = status;
    }
    serde_json::from_value(v).expect("an Execution")
}

fn hello() -> Value {
    json!({"language": "python", "source": "print('hi')"})
}

fn pod_name(attempt: u32) -> String {
    names::pod_name(NAME, UID, attempt)
}

/// `exec` as the API server returns it after a status patch with `patch`.
fn with_status(exec: &Execution, patch: &Value) -> Value {
    let mut v = serde_json::to_value(exec).expect("JSON");
    v["status"] = patch["status"].clone();
    v
}

fn status_uri() -> String {
    format!("{EXECUTIONS}/{NAME}/status?&force=true&fieldManager=rce-operator")
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

/// (method, uri) of each request, to compare whole sequences.
fn calls(sent: &[Sent]) -> Vec<(Method, String)> {
    sent.iter().map(|s| (s.method.clone(), s.uri.clone())).collect()
}

fn call(method: Method, uri: impl Into<String>) -> (Method, String) {
    (method, uri.into())
}

/// A mocked API server that answers the usual requests of these scenarios: status patches
/// and finalizer patches return the Execution, gets of the Execution return `exec`, the
/// Runtimes are `python`, the sandbox Pods are not found, creates and applies echo the body.
fn usual(exec: Execution) -> impl FnMut(&Sent) -> Answer + Send + 'static {
    let exec_uri = format!("{EXECUTIONS}/{NAME}");
    move |s: &Sent| {
        let me = serde_json::to_value(&exec).expect("JSON");
        match s.method.clone() {
            Method::PATCH if s.uri.starts_with(&format!("{exec_uri}/status")) => {
                (StatusCode::OK, with_status(&exec, &s.body))
            }
            Method::PATCH if s.uri.starts_with(&format!("{exec_uri}?")) => (StatusCode::OK, me),
            Method::GET if s.uri == exec_uri => (StatusCode::OK, me),
            Method::GET if s.uri.starts_with("/apis/rce.dev/v1alpha1/runtimes") => (
                StatusCode::OK,
                json!({"apiVersion": "rce.dev/v1alpha1", "kind": "RuntimeList", "metadata": {}, "items": [python()]}),
            ),
            Method::GET if s.uri.starts_with(&format!("{PODS}/")) => not_found("pods"),
            Method::POST | Method::PATCH => (StatusCode::CREATED, s.body.clone()),
            _ => not_found("unexpected request"),
        }
    }
}

#[tokio::test]
async fn a_new_execution_gets_the_finalizer_and_goes_on_in_the_same_reconcile() {
    let exec = execution(hello(), false, Value::Null);
    let with = execution(hello(), true, Value::Null);
    let mut usual = usual(with.clone());
    let answer = move |s: &Sent| usual(s);
    let (_, sent) = reconcile(&exec, config(), &[], answer).await;
    assert_eq!(sent[0].method, Method::PATCH);
    assert_eq!(sent[0].uri, format!("{EXECUTIONS}/{NAME}?"));
    assert_eq!(
        sent[0].body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    );
    // No second finalizer patch and no wait for its watch event: the next request is the
    // Pending status.
    assert!(sent.len() > 1, "{:?}", calls(&sent));
    assert_eq!(
        (sent[1].method.clone(), sent[1].uri.clone()),
        (Method::PATCH, status_uri()),
        "{:?}",
        calls(&sent)
    );
    assert_eq!(sent[1].body["status"]["phase"], "Pending");
}

#[tokio::test]
async fn a_valid_execution_is_pending_then_gets_its_sandbox() {
    let exec = execution(hello(), true, Value::Null);
    let (action, sent) = reconcile(&exec, config(), &[], usual(exec.clone())).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    assert_eq!(
        calls(&sent),
        [
            call(Method::PATCH, status_uri()),
            call(Method::GET, format!("{EXECUTIONS}/{NAME}")),
            call(Method::PATCH, POLICY),
            call(Method::POST, format!("{CONFIGMAPS}?&fieldManager=rce-operator")),
            call(Method::POST, format!("{PODS}?&fieldManager=rce-operator")),
            call(Method::PATCH, status_uri()),
            call(Method::POST, format!("{EVENTS}?")),
        ]
    );
    // Pending: valid, queued, not ready; guarded by the resourceVersion it was read at.
    let pending = &sent[0].body;
    assert_eq!(pending["metadata"]["resourceVersion"], "7");
    assert_eq!(pending["status"]["phase"], "Pending");
    assert_eq!(pending["status"]["submittedAt"], "2025-01-01T00:00:00Z");
    assert_eq!(condition(&pending["status"], "Valid")["status"], "True");
    assert_eq!(condition(&pending["status"], "Scheduled")["reason"], "Queued");
    // The deny-all policy, then the Pod of attempt 1, owned by the Execution.
    assert_eq!(sent[2].body["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    // The attempt's lock before its sandbox: attempt 1 runs cold, owned by the Execution.
    let lock = &sent[3].body;
    assert_eq!(lock["metadata"]["name"], format!("{}.attempt", pod_name(1)));
    assert_eq!((&lock["data"]["how"], &lock["data"]["attempt"]), (&json!("cold"), &json!("1")));
    assert_eq!(lock["metadata"]["ownerReferences"][0]["uid"], UID);
    let pod = &sent[4].body;
    assert_eq!(pod["metadata"]["name"], pod_name(1));
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["uid"], &owner["controller"]),
        (&json!("Execution"), &json!(UID), &json!(true))
    );
    assert_eq!(pod["spec"]["containers"][0]["image"], "rce/python:1");
    // Processing, attempt 1, and the event saying so.
    let processing = &sent[5].body["status"];
    assert_eq!(processing["phase"], "Processing");
    assert_eq!(processing["attempts"], 1);
    assert_eq!(processing["podName"], pod_name(1));
    assert_eq!(sent[6].body["reason"], "SandboxCreated");
    assert_eq!(sent[6].body["note"], format!("sandbox Pod {} created (attempt 1)", pod_name(1)));
}

#[tokio::test]
async fn a_valid_execution_waits_while_every_slot_is_taken() {
    let exec = execution(hello(), true, Value::Null);
    let mut busy = execution(hello(), true, json!({"phase": "Processing", "attempts": 1}));
    busy.metadata.name = Some("busy".into());
    busy.metadata.uid = Some("1d6c5b2f-7a1e-4b9f-8e8f-3c4d5e6f7081".into());
    let mut c = config();
    c.max_running = 1;
    let (action, sent) = reconcile(&exec, c, &[busy], usual(exec.clone())).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    assert_eq!(calls(&sent), [call(Method::PATCH, status_uri())], "no sandbox while the slot is taken");
    let status = &sent[0].body["status"];
    assert_eq!(status["phase"], "Pending");
    assert_eq!(
        condition(status, "Scheduled")["message"],
        "waiting for a free sandbox slot (at most 1 run at once)"
    );
}

#[tokio::test]
async fn an_invalid_execution_fails_with_the_precise_message() {
    let exec = execution(json!({"language": "cobol", "source": "DISPLAY 'HI'."}), true, Value::Null);
    let (action, sent) = reconcile(&exec, config(), &[], usual(exec.clone())).await;
    assert_eq!(action, Action::await_change());
    assert_eq!(
        calls(&sent),
        [
            // Not in the cache: the Runtimes are listed again before the language is refused.
            call(Method::GET, "/apis/rce.dev/v1alpha1/runtimes?"),
            call(Method::PATCH, status_uri()),
            call(Method::POST, format!("{EVENTS}?")),
        ]
    );
    let want = "unknown language \"cobol\"; known languages: python";
    let status = &sent[1].body["status"];
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["verdict"], "InternalError");
    assert_eq!(status["message"], want);
    assert_eq!(status.get("podName"), None, "no sandbox for an invalid Execution");
    let valid = condition(status, "Valid");
    assert_eq!(
        (&valid["status"], &valid["reason"], &valid["message"]),
        (&json!("False"), &json!("Invalid"), &json!(want))
    );
    assert_eq!((&sent[2].body["type"], &sent[2].body["reason"]), (&json!("Warning"), &json!("Invalid")));
    assert_eq!(sent[2].body["note"], want);
}

fn processing_status(attempt: u32) -> Value {
    json!({
        "phase": "Processing",
        "attempts": attempt,
        "podName": pod_name(attempt),
        "submittedAt": "2025-01-01T00:00:00Z",
        "startedAt": rce_operator::status::rfc3339(chrono::Utc::now()),
    })
}

#[tokio::test]
async fn a_processing_execution_whose_first_pod_is_gone_is_retried() {
    let exec = execution(hello(), true, processing_status(1));
    let (action, sent) = reconcile(&exec, config(), &[], usual(exec.clone())).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    assert_eq!(
        calls(&sent),
        [
            // Not in the cache: both read again from the API before anything drastic.
            call(Method::GET, format!("{EXECUTIONS}/{NAME}")),
            call(Method::GET, format!("{PODS}/{}", pod_name(1))),
            call(Method::POST, format!("{EVENTS}?")),
            call(Method::PATCH, POLICY),
            call(Method::POST, format!("{CONFIGMAPS}?&fieldManager=rce-operator")),
            call(Method::POST, format!("{PODS}?&fieldManager=rce-operator")),
            call(Method::PATCH, status_uri()),
            call(Method::POST, format!("{EVENTS}?")),
        ]
    );
    let why = format!(
        "the sandbox Pod {} was deleted before the program finished; retrying (attempt 2)",
        pod_name(1)
    );
    assert_eq!((&sent[2].body["reason"], &sent[2].body["note"]), (&json!("SandboxLost"), &json!(why)));
    assert_eq!(sent[4].body["metadata"]["name"], format!("{}.attempt", pod_name(2)));
    assert_eq!(sent[5].body["metadata"]["name"], pod_name(2));
    assert_eq!(sent[5].body["metadata"]["labels"]["rce.dev/attempt"], "2");
    let status = &sent[6].body["status"];
    assert_eq!((&status["phase"], &status["attempts"]), (&json!("Processing"), &json!(2)));
    assert_eq!((&status["podName"], &status["message"]), (&json!(pod_name(2)), &json!(why)));
    assert_eq!(sent[7].body["reason"], "SandboxCreated");
}

#[tokio::test]
async fn a_processing_execution_whose_second_pod_is_gone_fails() {
    let exec = execution(hello(), true, processing_status(2));
    let (action, sent) = reconcile(&exec, config(), &[], usual(exec.clone())).await;
    assert_eq!(action, Action::await_change());
    let pod = format!("{PODS}/{}", pod_name(2));
    assert_eq!(
        calls(&sent),
        [
            call(Method::GET, format!("{EXECUTIONS}/{NAME}")),
            call(Method::GET, pod.clone()),
            call(Method::PATCH, status_uri()),
            call(Method::POST, format!("{EVENTS}?")),
            // Its own Pod is deleted only if it is there (it is not): no DELETE.
            call(Method::GET, pod),
        ]
    );
    let why = format!(
        "the sandbox Pod {} was deleted before the program finished (attempt 2); giving up",
        pod_name(2)
    );
    let status = &sent[2].body["status"];
    assert_eq!((&status["phase"], &status["verdict"]), (&json!("Failed"), &json!("InternalError")));
    assert_eq!(status["message"], why);
    assert_eq!(condition(status, "Ready")["reason"], "SandboxLost");
    assert_eq!((&sent[3].body["reason"], &sent[3].body["note"]), (&json!("SandboxLost"), &json!(why)));
}

#[tokio::test]
async fn a_deleted_execution_has_its_finalizer_removed() {
    let mut exec = execution(hello(), true, json!({"phase": "Completed", "verdict": "Accepted"}));
    exec.metadata.deletion_timestamp = serde_json::from_value(json!("2025-01-01T00:01:00Z")).expect("a time");
    let (action, sent) = reconcile(&exec, config(), &[], usual(exec.clone())).await;
    assert_eq!(action, Action::await_change());
    assert_eq!(calls(&sent), [call(Method::PATCH, format!("{EXECUTIONS}/{NAME}?"))]);
    assert_eq!(
        sent[0].body,
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ])
    );
}

/// The sandbox Pod of attempt 1 of `exec`, terminated, and its log: the runner's result line
/// with `stdout`, sealed with the Pod's key.
fn terminated_sandbox(exec: &Execution, stdout: &[u8]) -> (Pod, String) {
    use rce_api::protocol::{Outcome, RunResult, StageResult};
    let settings = Config::defaults().sandbox();
    let plan = rce_operator::validate::plan(&exec.spec, &python(), &settings).expect("a plan");
    let key = rce_operator::sandbox::new_result_key();
    let mut pod = rce_operator::sandbox::build_pod(exec, 1, &plan, &python(), &settings, &key);
    pod.status = Some(
        serde_json::from_value(json!({
            "phase": "Succeeded",
            "containerStatuses": [{"name": "runner", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
        }))
        .expect("a Pod status"),
    );
    pod.metadata.uid = Some("pod-uid-1".into());
    let result = RunResult {
        tests: vec![],
        run_id: rce_operator::sandbox::run_id(UID, 1),
        outcome: Outcome::Ran,
        compile: None,
        run: Some(StageResult { exit_code: Some(0), stdout: stdout.to_vec(), ..Default::default() }),
        message: None,
        runs: 1,
    };
    let key = rce_api::mac::unhex(&key).expect("a hex key");
    (pod, format!("{}\n", rce_api::protocol::seal(&result, Some(&key))))
}

const CONFIG_MAPS: &str = "/api/v1/namespaces/t/configmaps";

#[tokio::test]
async fn a_large_output_is_stored_in_owned_config_maps_before_the_status_names_them() {
    use base64::Engine as _;
    let exec = execution(hello(), true, processing_status(1));
    let stdout = vec![b'x'; rce_api::STATUS_EXCERPT_BYTES + 100];
    let (pod, log) = terminated_sandbox(&exec, &stdout);
    let mut usual = usual(exec.clone());
    let answer = move |s: &Sent| {
        if s.uri.contains("/log?") {
            return (StatusCode::OK, Value::String(log.clone()));
        }
        usual(s)
    };
    let (_, sent) = reconcile_with_pods(&exec, config(), &[], &[pod], answer).await;
    let order = calls(&sent);
    let cm = order
        .iter()
        .position(|c| *c == call(Method::POST, format!("{CONFIG_MAPS}?&fieldManager=rce-operator")))
        .expect("a ConfigMap created");
    let status = order.iter().position(|c| *c == call(Method::PATCH, status_uri())).expect("a status");
    assert!(cm < status, "the ConfigMap comes first: {order:?}");
    let body = &sent[cm].body;
    assert_eq!(body["metadata"]["name"], format!("{NAME}-output-0"));
    let owner = &body["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["uid"], &owner["controller"]),
        (&json!("Execution"), &json!(UID), &json!(true))
    );
    let part = base64::engine::general_purpose::STANDARD
        .decode(body["binaryData"]["part"].as_str().expect("a part"))
        .expect("base64");
    assert_eq!(part, stdout);
    let st = &sent[status].body["status"];
    assert_eq!((&st["phase"], &st["verdict"]), (&json!("Completed"), &json!("Accepted")));
    assert_eq!(st["stdout"].as_str().map(str::len), Some(rce_api::STATUS_EXCERPT_BYTES));
    assert_eq!(
        st["output"],
        json!({"configMaps": [format!("{NAME}-output-0")], "stdoutBytes": stdout.len(), "stderrBytes": 0, "compileOutputBytes": 0})
    );
}

#[tokio::test]
async fn a_config_map_of_the_name_that_is_not_the_executions_is_left_alone() {
    let exec = execution(hello(), true, processing_status(1));
    let (pod, log) = terminated_sandbox(&exec, &vec![b'y'; rce_api::STATUS_EXCERPT_BYTES * 2]);
    let mut usual = usual(exec.clone());
    let foreign = format!("{CONFIG_MAPS}/{NAME}-output-0");
    let theirs = foreign.clone();
    let answer = move |s: &Sent| {
        if s.uri.contains("/log?") {
            return (StatusCode::OK, Value::String(log.clone()));
        }
        if s.method == Method::POST && s.uri.starts_with(CONFIG_MAPS) {
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "configmaps \"hello-output-0\" already exists", "reason": "AlreadyExists", "code": 409});
            return (StatusCode::CONFLICT, status);
        }
        if s.method == Method::GET && s.uri == theirs {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "hello-output-0", "namespace": NS}, "data": {"mine": "yes"}});
            return (StatusCode::OK, cm);
        }
        usual(s)
    };
    let (_, sent) = reconcile_with_pods(&exec, config(), &[], &[pod], answer).await;
    assert!(
        !sent.iter().any(|s| s.uri.starts_with(&foreign) && s.method != Method::GET),
        "the foreign ConfigMap was written: {:?}",
        calls(&sent)
    );
    let status = sent.iter().find(|s| s.uri == status_uri()).expect("a status");
    let st = &status.body["status"];
    assert_eq!((&st["phase"], &st["verdict"]), (&json!("Failed"), &json!("InternalError")));
    assert_eq!(condition(st, "Ready")["reason"], "OutputNotStored");
    assert_eq!(
        st["message"],
        format!(
            "a ConfigMap named {NAME}-output-0 already exists in namespace {NS} and is not this Execution's; \
             it was left alone and the full output was not stored"
        )
    );
    assert!(st.get("output").is_none() && st.get("stdout").is_none(), "{st}");
}

/// Reconcile `exec` once, keeping the operator's context (and so its callback tasks) until
/// the mocked API server has answered `expect` requests or 5 s have passed.
async fn reconcile_and_wait(exec: &Execution, expect: usize) -> Vec<Sent> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let mut usual = usual(exec.clone());
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = serve(handle, move |s| {
        counter.fetch_add(1, Ordering::SeqCst);
        usual(s)
    });
    let ctx = context(Client::new(service, "default"), config(), std::slice::from_ref(exec), &[]);
    controller::reconcile(Arc::new(exec.clone()), ctx.clone()).await.expect("reconcile succeeded");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while seen.load(Ordering::SeqCst) < expect && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let a request beyond those expected show itself.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(ctx);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the client was dropped")
        .expect("the mock server did not panic")
}

#[tokio::test]
async fn a_terminal_execution_records_a_refused_callback_once() {
    let spec =
        json!({"language": "python", "source": "print(1)", "callback": {"url": "http://127.0.0.1:9/cb"}});
    let exec = execution(spec.clone(), true, json!({"phase": "Completed", "verdict": "Accepted"}));
    let sent = reconcile_and_wait(&exec, 2).await;
    // The delivery task reads the Execution again, then records why nothing was sent.
    assert_eq!(
        calls(&sent),
        [
            call(Method::GET, format!("{EXECUTIONS}/{NAME}")),
            call(Method::PATCH, format!("{EXECUTIONS}/{NAME}/status?&fieldManager=rce-operator")),
        ]
    );
    assert_eq!(
        sent[1].body,
        json!({"metadata": {"resourceVersion": "7"}, "status": {"callback": {"attempts": 0, "delivered": false,
            "error": "callback URL \"http://127.0.0.1:9/cb\" is not allowed: callbacks are not enabled on this server",
            "httpStatus": null, "sending": null}}})
    );
    // Once recorded, never again.
    let done = execution(
        spec,
        true,
        json!({"phase": "Completed", "verdict": "Accepted", "callback": {"attempts": 1, "delivered": true}}),
    );
    let sent = reconcile_and_wait(&done, 0).await;
    assert!(sent.is_empty(), "{:?}", calls(&sent));
}

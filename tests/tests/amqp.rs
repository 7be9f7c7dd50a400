//! The RabbitMQ path on the real components: a RabbitMQ broker of the test's own (killed and
//! started again at will), shim processes built with `--features amqp` (SIGKILLed at will),
//! the real cluster and an operator of the test's own. Each Execution must run exactly once:
//! a kube watch started before the submissions counts every sandbox Pod ever created per
//! Execution, and every terminal status each Execution ever showed.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    api::Api,
    runtime::{watcher, WatchStreamExt as _},
    ResourceExt,
};
use lapin::{
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
    BasicProperties,
};
use rce_api::{Execution, Phase, Verdict, EXECUTION_LABEL, SANDBOX_LABEL};
use rce_tests::{
    broker::{RabbitMq, ShimProcess, ShimSpec},
    exec::{describe, phase, stdout, verdict, Engine},
    operator::TURN,
    shim::request,
};

/// Everything the watches saw: sandbox Pod uids per Execution, and the distinct terminal
/// states (phase, verdict, finish time) each Execution showed.
#[derive(Default)]
struct Seen {
    pods: BTreeMap<String, BTreeSet<String>>,
    terminal: BTreeMap<String, BTreeSet<String>>,
    executions: BTreeSet<String>,
}

struct Watches {
    seen: Arc<Mutex<Seen>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Watches {
    /// Start both watches and return once each has listed what is there.
    async fn start(engine: &Engine) -> Result<Watches> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (pods_ready, pods_rx) = tokio::sync::oneshot::channel::<()>();
        let (ex_ready, ex_rx) = tokio::sync::oneshot::channel::<()>();
        let pods: Api<Pod> = engine.pods();
        let s = seen.clone();
        let pod_task = tokio::spawn(async move {
            let mut ready = Some(pods_ready);
            let mut events = watcher(pods, watcher::Config::default().labels(SANDBOX_LABEL)).boxed();
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        if let Some(ex) = p.labels().get(EXECUTION_LABEL) {
                            let uid = p.uid().unwrap_or_default();
                            s.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .pods
                                .entry(ex.clone())
                                .or_default()
                                .insert(uid);
                        }
                    }
                    _ => {}
                }
            }
        });
        let executions: Api<Execution> = engine.executions();
        let s = seen.clone();
        let ex_task = tokio::spawn(async move {
            let mut ready = Some(ex_ready);
            let mut events = watcher(executions, watcher::Config::default()).default_backoff().boxed();
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => {
                        let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                        let name = e.name_any();
                        s.executions.insert(name.clone());
                        if phase(&e).is_some_and(Phase::is_terminal) {
                            let st = e.status.as_ref();
                            let key = format!(
                                "{:?}/{:?}/{:?}",
                                st.and_then(|s| s.phase),
                                st.and_then(|s| s.verdict),
                                st.and_then(|s| s.finished_at.clone()),
                            );
                            s.terminal.entry(name).or_default().insert(key);
                        }
                    }
                    _ => {}
                }
            }
        });
        let w = Watches { seen, tasks: vec![pod_task, ex_task] };
        tokio::time::timeout(Duration::from_secs(30), async {
            let _ = pods_rx.await;
            let _ = ex_rx.await;
        })
        .await
        .context("the watches did not list within 30 s")?;
        Ok(w)
    }

    /// "Some(Accepted) 98, Some(TimeLimitExceeded) 2": the verdicts of `done`.
    fn verdicts(done: &BTreeMap<String, Execution>) -> String {
        let mut n: BTreeMap<String, usize> = BTreeMap::new();
        for e in done.values() {
            *n.entry(format!("{:?}", verdict(e))).or_default() += 1;
        }
        n.iter().map(|(v, c)| format!("{v} {c}")).collect::<Vec<_>>().join(", ")
    }

    fn executions_seen(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).executions.len()
    }

    /// Every accepted jobId: present, one terminal state, printed its own number, exactly one
    /// sandbox Pod ever; and no Execution in the namespace ran more than once.
    fn check_exactly_once(
        &self,
        accepted: &BTreeMap<String, usize>,
        done: &BTreeMap<String, Execution>,
    ) -> Result<()> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut problems = Vec::new();
        for (id, n) in accepted {
            let Some(e) = done.get(id) else {
                problems.push(format!("{id}: accepted but no Execution"));
                continue;
            };
            if verdict(e) == Some(Verdict::Accepted) {
                if stdout(e) != format!("{n}\n") {
                    problems.push(format!("{id}: stdout {:?}, expected {n}", stdout(e)));
                }
            } else if phase(e) != Some(Phase::Completed) {
                // A time limit on a busy node is a verdict; a Failed run is not.
                problems.push(format!("{id}: {}", describe(e)));
            }
            match seen.terminal.get(id).map(BTreeSet::len) {
                Some(1) => {}
                other => problems
                    .push(format!("{id}: {other:?} distinct terminal states: {:?}", seen.terminal.get(id))),
            }
            match seen.pods.get(id).map(BTreeSet::len) {
                Some(1) => {}
                other => problems.push(format!("{id}: {other:?} sandbox Pods")),
            }
        }
        for (ex, pods) in &seen.pods {
            if pods.len() > 1 {
                problems.push(format!("{ex}: {} sandbox Pods", pods.len()));
            }
        }
        ensure!(problems.is_empty(), "{} problems:\n  {}", problems.len(), problems.join("\n  "));
        Ok(())
    }
}

/// The program of submission `i` (rce's own API): bash printing `i`, with the Runtime's
/// largest time limits (the node is shared and busy: a run should not time out).
fn program(i: usize) -> String {
    serde_json::json!({
        "language": "bash",
        "source": format!("echo {i}"),
        "limits": {"wallTimeMs": 30000, "cpuTimeMs": 20000},
    })
    .to_string()
}

/// Submit `total` programs ([`program`]) through `base`, `workers` at a time, each retrying a
/// `503` after its `Retry-After` (which must be there). Returns jobId → i, and the number of
/// 503s seen. `progress` counts the accepted ones as they come.
async fn submit_all(
    base: String,
    ns: String,
    total: usize,
    workers: usize,
    progress: Arc<AtomicUsize>,
) -> Result<(BTreeMap<String, usize>, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (base, ns, next, refused, progress) =
            (base.clone(), ns.clone(), next.clone(), refused.clone(), progress.clone());
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    return Ok::<_, anyhow::Error>(mine);
                }
                let body = program(i);
                let started = Instant::now();
                loop {
                    let r = request("POST", &format!("{base}/api/executions"), &[], Some(&body)).await?;
                    match r.status {
                        201 => {
                            let id = r.body["jobId"].as_str().context("no jobId")?.to_string();
                            ensure!(id.len() > 3, "jobId {id:?}");
                            mine.push((id, i));
                            progress.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        503 => {
                            let ra = r
                                .retry_after
                                .with_context(|| format!("a 503 without Retry-After: {}", r.text))?;
                            ensure!(r.body["jobId"].is_null(), "a 503 with a jobId: {}", r.text);
                            refused.fetch_add(1, Ordering::SeqCst);
                            if started.elapsed() > Duration::from_secs(120) {
                                bail!("submission {i} refused for 2 minutes: {}", r.text);
                            }
                            tokio::time::sleep(Duration::from_secs(ra.min(3))).await;
                        }
                        s => bail!("submission {i} in {ns}: HTTP {s}: {}", r.text),
                    }
                }
            }
        }));
    }
    let mut accepted = BTreeMap::new();
    for h in handles {
        for (id, i) in h.await?? {
            ensure!(accepted.insert(id.clone(), i).is_none(), "jobId {id} returned twice");
        }
    }
    Ok((accepted, refused.load(Ordering::SeqCst)))
}

/// Messages in `queue` (passive declare).
async fn depth(broker: &RabbitMq, queue: &str) -> Result<u32> {
    let conn = broker.connect().await?;
    let ch = conn.create_channel().await?;
    let q = ch
        .queue_declare(
            queue,
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    let _ = conn.close(200, "bye").await;
    Ok(q.message_count())
}

/// How many times the consumers found a redelivered message's Execution already there.
fn already_existing(shims: &[&ShimProcess]) -> usize {
    shims.iter().map(|s| s.log_text().matches("the Execution already exists; acked").count()).sum()
}

fn spec(engine: &Engine, broker: &RabbitMq, queue: &str, consume: bool, pause_ms: u64) -> ShimSpec {
    ShimSpec {
        namespace: engine.ns.name.clone(),
        amqp_url: broker.url(),
        queue: queue.to_string(),
        consume,
        pause_before_ack_ms: pause_ms,
    }
}

/// 100 submissions through RabbitMQ while the two consumer replicas are SIGKILLed, in turn,
/// between creating an Execution and acking its message, and started again.
#[tokio::test]
async fn consumers_killed_between_create_and_ack_run_everything_exactly_once() -> Result<()> {
    let _turn = TURN.lock().await;
    let engine = Engine::with_operator("amqp-kill", |_| {}).await?;
    let result = kill_consumers(&engine).await;
    engine.cleanup().await?;
    result
}

async fn kill_consumers(engine: &Engine) -> Result<()> {
    let started = Instant::now();
    let broker = RabbitMq::start().await?;
    let queue = "rce.submissions";
    let watches = Watches::start(engine).await?;
    let publisher = ShimProcess::start(spec(engine, &broker, queue, false, 0)).await?;
    let mut consumers = vec![
        ShimProcess::start(spec(engine, &broker, queue, true, 1500)).await?,
        ShimProcess::start(spec(engine, &broker, queue, true, 1500)).await?,
    ];
    let progress = Arc::new(AtomicUsize::new(0));
    let submitting =
        tokio::spawn(submit_all(publisher.base(), engine.ns.name.clone(), 100, 6, progress.clone()));
    // Kill a consumer each time 15 more Executions exist: it has just created some and is
    // holding their acks (the 1.5 s test pause).
    let mut kills = 0;
    for round in 1..=5 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while watches.executions_seen() < round * 15 {
            ensure!(Instant::now() < deadline, "no progress: {} Executions", watches.executions_seen());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let c = &mut consumers[round % 2];
        c.kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.restart().await?;
    }
    let (accepted, refused) = submitting.await??;
    ensure!(accepted.len() == 100, "{} accepted", accepted.len());
    ensure!(refused == 0, "{refused} submissions refused with the broker up");
    let names: Vec<String> = accepted.keys().cloned().collect();
    let done = engine.wait_all(&names, Duration::from_secs(240)).await?;
    // Let late duplicates (if any) show themselves.
    tokio::time::sleep(Duration::from_secs(2)).await;
    watches.check_exactly_once(&accepted, &done)?;
    let total = watches.executions_seen();
    ensure!(total == 100, "{total} Executions in the namespace for 100 submissions");
    let again = already_existing(&consumers.iter().collect::<Vec<_>>());
    ensure!(again > 0, "no redelivery met an existing Execution: the kills missed the create-ack window");
    let deadline = Instant::now() + Duration::from_secs(20);
    while depth(&broker, queue).await? != 0 {
        ensure!(Instant::now() < deadline, "messages left in the work queue");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(depth(&broker, "rce.submissions.dead").await? == 0, "a valid submission was dead-lettered");
    println!(
        "consumer kills: {kills}; accepted 100, Executions {total}, redeliveries found existing: {again}; \
         every one 1 sandbox Pod, 1 terminal state; verdicts {}; {:.1} s",
        Watches::verdicts(&done),
        started.elapsed().as_secs_f64()
    );
    drop((publisher, consumers, watches));
    Ok(())
}

/// 100 submissions while the broker is killed and started again mid-stream: the publishers
/// get 503 + Retry-After meanwhile and retry; every accepted jobId runs exactly once.
#[tokio::test]
async fn a_broker_restart_mid_stream_loses_and_repeats_nothing() -> Result<()> {
    let _turn = TURN.lock().await;
    let engine = Engine::with_operator("amqp-restart", |_| {}).await?;
    let result = restart_broker(&engine).await;
    engine.cleanup().await?;
    result
}

async fn restart_broker(engine: &Engine) -> Result<()> {
    let started = Instant::now();
    let mut broker = RabbitMq::start().await?;
    let queue = "rce.submissions";
    let watches = Watches::start(engine).await?;
    let publisher = ShimProcess::start(spec(engine, &broker, queue, false, 0)).await?;
    let consumer = ShimProcess::start(spec(engine, &broker, queue, true, 300)).await?;
    let progress = Arc::new(AtomicUsize::new(0));
    let submitting =
        tokio::spawn(submit_all(publisher.base(), engine.ns.name.clone(), 100, 6, progress.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::SeqCst) < 30 {
        ensure!(Instant::now() < deadline, "only {} accepted", progress.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.kill();
    let down = Instant::now();
    let at_kill = progress.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart().await?;
    let outage = down.elapsed();
    let (accepted, refused) = submitting.await??;
    ensure!(accepted.len() == 100, "{} accepted", accepted.len());
    ensure!(refused > 0, "no submission was refused while the broker was down");
    let names: Vec<String> = accepted.keys().cloned().collect();
    let done = engine.wait_all(&names, Duration::from_secs(240)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    watches.check_exactly_once(&accepted, &done)?;
    let total = watches.executions_seen();
    // A message published just before the kill may have reached the queue without its
    // confirmation reaching us: the client got a 503 and retried, so it may exist twice
    // under two jobIds (each ran once, checked above). Anything beyond that is a bug.
    ensure!((100..=100 + 6).contains(&total), "{total} Executions for 100 accepted submissions");
    let again = already_existing(&[&consumer]);
    println!(
        "broker killed after {at_kill} accepted, down {:.1} s; 503s with Retry-After: {refused}; accepted 100, \
         Executions {total}, redeliveries found existing: {again}; every one 1 sandbox Pod, 1 terminal \
         state; verdicts {}; {:.1} s",
        outage.as_secs_f64(),
        Watches::verdicts(&done),
        started.elapsed().as_secs_f64()
    );
    drop((publisher, consumer, watches));
    Ok(())
}

/// Unreadable JSON and an Execution the API server refuses land in the dead-letter queue
/// with their reasons; a valid submission after them still runs.
#[tokio::test]
async fn poison_messages_are_dead_lettered_with_their_reason() -> Result<()> {
    let _turn = TURN.lock().await;
    let engine = Engine::with_operator("amqp-dlq", |_| {}).await?;
    let result = poison(&engine).await;
    engine.cleanup().await?;
    result
}

async fn poison(engine: &Engine) -> Result<()> {
    let broker = RabbitMq::start().await?;
    let queue = "rce.submissions";
    let shim = ShimProcess::start(spec(engine, &broker, queue, true, 0)).await?;
    let conn = broker.connect().await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let props = || BasicProperties::default().with_delivery_mode(2);
    let raw = b"{\"metadata\": not json".to_vec();
    ch.basic_publish("", queue, BasicPublishOptions::default(), &raw, props()).await?.await?;
    let refused = serde_json::json!({
        "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
        "metadata": {"name": "Not_A_Valid_Name", "namespace": engine.ns.name},
        "spec": {"language": "python", "source": "print(1)"},
    });
    let refused = serde_json::to_vec(&refused)?;
    ch.basic_publish("", queue, BasicPublishOptions::default(), &refused, props()).await?.await?;
    let r = request(
        "POST",
        &format!("{}/api/execute", shim.base()),
        &[],
        Some(r#"{"language":"python","code":"print(7)"}"#),
    )
    .await?;
    ensure!(r.status == 200, "valid submission: {} {}", r.status, r.text);
    let id = r.body["jobId"].as_str().context("jobId")?.to_string();
    let done = engine.wait_all(std::slice::from_ref(&id), Duration::from_secs(90)).await?;
    ensure!(stdout(&done[&id]) == "7\n", "the valid one after the poison: {:?}", stdout(&done[&id]));

    let dead = "rce.submissions.dead";
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 2 {
        ensure!(Instant::now() < deadline, "{} of 2 in the dead-letter queue", got.len());
        match ch.basic_get(dead, BasicGetOptions { no_ack: true }).await? {
            Some(m) => got.push(m.delivery),
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let text = |v: &AMQPValue| match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        other => format!("{other:?}"),
    };
    for d in &got {
        let headers = d.properties.headers().clone().context("dead letter without headers")?;
        let h = headers.inner();
        let reason = h.get("x-rce-reason").map(text).context("no x-rce-reason")?;
        let death = match h.get("x-death") {
            Some(AMQPValue::FieldArray(a)) => a.as_slice().first().cloned(),
            _ => None,
        };
        let Some(AMQPValue::FieldTable(death)) = death else { bail!("no x-death on {headers:?}") };
        let death_reason = death.inner().get("reason").map(text).unwrap_or_default();
        let death_queue = death.inner().get("queue").map(text).unwrap_or_default();
        ensure!(death_reason == "rejected", "x-death reason {death_reason:?}");
        ensure!(death_queue == queue, "x-death queue {death_queue:?}");
        if d.data == raw {
            ensure!(reason.starts_with("unreadable JSON"), "reason {reason:?}");
        } else {
            ensure!(d.data == refused, "an unexpected dead letter: {}", String::from_utf8_lossy(&d.data));
            ensure!(reason.contains("422") && reason.contains("Not_A_Valid_Name"), "reason {reason:?}");
        }
        println!("dead-lettered ({death_reason}): {reason}");
    }
    ensure!(got.iter().any(|d| d.data == raw), "the unreadable message is not in the dead-letter queue");
    ensure!(depth(&broker, queue).await? == 0, "messages left in the work queue");
    let _ = conn.close(200, "bye").await;
    drop(shim);
    Ok(())
}

/// A work queue an older rce declared without dead-lettering: the shim refuses to start, and
/// says what to do.
#[tokio::test]
async fn a_queue_without_dead_lettering_is_a_clear_startup_error() -> Result<()> {
    let broker = RabbitMq::start().await?;
    let queue = "rce.submissions.legacy";
    let conn = broker.connect().await?;
    let ch = conn.create_channel().await?;
    ch.queue_declare(
        queue,
        QueueDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    )
    .await?;
    let shim = ShimProcess::start(ShimSpec {
        namespace: "default".into(),
        amqp_url: broker.url(),
        queue: queue.into(),
        consume: true,
        pause_before_ack_ms: 0,
    })
    .await;
    let Err(e) = shim else { bail!("the shim started on a queue declared without dead-lettering") };
    let e = format!("{e:#}");
    ensure!(e.contains("exists with other arguments") && e.contains("delete_queue"), "{e}");
    ensure!(e.contains("PRECONDITION"), "{e}");
    let _ = conn.close(200, "bye").await;
    Ok(())
}

//! The operator's outputs and result callbacks against the real cluster, each test with an
//! operator of its own (in-process, serving only its namespace, see `tests/tests/operator.rs`):
//! exact bytes (text or base64), outputs beyond the status excerpt stored in ConfigMaps owned
//! by the Execution (up to the 4 MiB output ceiling, stdout and stderr), a ConfigMap in the
//! way left alone, stderr redirected, runs counted, compiler options and the compile stage's
//! figures, and the result callback: exactly one PUT to a listener the test starts on
//! 127.0.0.1 (admitted by `--callback-allow 127.0.0.1/32`), refused under the default policy,
//! three tries against a listener that never answers.
//!
//! The Runtimes `python`, `bash` and `c` must be installed (`make up`).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context as _, Result};
use base64::Engine as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{api::PostParams, ResourceExt};
use rce_api::{
    callback::Policy, redis_keys::StatusDocument, Execution, FileEncoding, Phase, Verdict, OUTPUT_PART_BYTES,
    STATUS_EXCERPT_BYTES,
};
use rce_tests::{
    exec::{describe, verdict, Engine, WAIT},
    with_engine,
};

const RUNTIMES: [&str; 2] = ["python", "bash"];

fn status(e: &Execution) -> rce_api::ExecutionStatus {
    e.status.clone().unwrap_or_default()
}

/// The concatenated parts of the output ConfigMaps the status names, each checked to be
/// owned (as controller) by the Execution.
async fn stored_bytes(h: &Engine, e: &Execution) -> Result<Vec<u8>> {
    let st = status(e);
    let stored = st.output.as_ref().context("no status.output")?;
    let mut all = Vec::new();
    for name in &stored.config_maps {
        let cm = h.ns.api::<ConfigMap>().get(name).await.with_context(|| format!("ConfigMap {name}"))?;
        let owner = cm.metadata.owner_references.clone().unwrap_or_default();
        ensure!(
            owner.iter().any(|o| o.kind == "Execution"
                && Some(&o.uid) == e.uid().as_ref()
                && o.controller == Some(true)),
            "{name} is not controlled by the Execution: {owner:?}"
        );
        let part = cm.binary_data.as_ref().and_then(|d| d.get("part")).context("no binaryData part")?;
        ensure!(part.0.len() <= OUTPUT_PART_BYTES, "{name}: a part of {} bytes", part.0.len());
        all.extend_from_slice(&part.0);
    }
    Ok(all)
}

#[tokio::test]
async fn four_mib_of_stdout_and_stderr_come_back_exactly_from_owned_config_maps() -> Result<()> {
    with_engine!(operator "out-big", |_| {}, needs RUNTIMES, |h| {
        const MIB4: usize = 4 * 1024 * 1024;
        // stdout: printable text with `<` (six bytes once JSON-escaped); stderr: every byte
        // value, so not UTF-8.
        let src = format!(
            "import sys\n\
             line = ('<a&b>' * 13 + '\\n').encode()\n\
             out = (line * ({MIB4} // len(line) + 1))[:{MIB4}]\n\
             err = (bytes(range(256)) * ({MIB4} // 256))[:{MIB4}]\n\
             sys.stdout.buffer.write(out)\n\
             sys.stderr.buffer.write(err)\n"
        );
        let e = h
            .run(
                "big",
                serde_json::json!({"language": "python", "source": src,
                    "limits": {"outputBytes": MIB4, "memoryMiB": 256, "wallTimeMs": 20000}}),
                WAIT,
            )
            .await?;
        ensure!(verdict(&e) == Some(Verdict::Accepted), "{}", describe(&e));
        let st = status(&e);
        let line = "<a&b>".repeat(13) + "\n";
        let out: Vec<u8> = line.as_bytes().iter().copied().cycle().take(MIB4).collect();
        let err: Vec<u8> = (0..=255u8).cycle().take(MIB4).collect();
        // The status holds excerpts: text for stdout, base64 for stderr.
        let excerpt = st.stdout.as_deref().unwrap_or_default();
        ensure!(
            !excerpt.is_empty() && excerpt.len() <= STATUS_EXCERPT_BYTES && out.starts_with(excerpt.as_bytes()),
            "stdout excerpt of {} bytes: {}",
            excerpt.len(),
            describe(&e)
        );
        ensure!(st.stdout_encoding == FileEncoding::Utf8 && !st.stdout_truncated, "{}", describe(&e));
        ensure!(st.stderr_encoding == FileEncoding::Base64, "{}", describe(&e));
        let err_excerpt =
            base64::engine::general_purpose::STANDARD.decode(st.stderr.as_deref().unwrap_or_default())?;
        ensure!(!err_excerpt.is_empty() && err.starts_with(&err_excerpt), "{}", describe(&e));
        // The full outputs: exactly the bytes written.
        let stored = st.output.clone().context("no status.output")?;
        ensure!(
            (stored.stdout_bytes, stored.stderr_bytes, stored.compile_output_bytes)
                == (MIB4 as u64, MIB4 as u64, 0),
            "{stored:?}"
        );
        let names: Vec<String> = (0..stored.config_maps.len()).map(|i| format!("big-output-{i}")).collect();
        ensure!(stored.config_maps == names, "{:?}", stored.config_maps);
        let all = stored_bytes(&h, &e).await?;
        ensure!(all.len() == 2 * MIB4, "{} bytes stored", all.len());
        ensure!(all[..MIB4] == out[..], "stdout differs from what was written");
        ensure!(all[MIB4..] == err[..], "stderr differs from what was written");
        Ok(())
    })
}

#[tokio::test]
async fn exact_bytes_and_a_config_map_in_the_way() -> Result<()> {
    with_engine!(operator "out-bytes", |_| {}, needs RUNTIMES, |h| {
        // A ConfigMap holding the output name of Execution `taken`, not owned by it.
        let foreign: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "taken-output-0"}, "data": {"mine": "yes"}
        }))?;
        h.ns.api::<ConfigMap>().create(&PostParams::default(), &foreign).await?;
        h.submit(
            "bytes",
            serde_json::json!({"language": "python",
                "source": "import sys\nsys.stdout.buffer.write(b'\\xfe\\xff\\x00A\\n')\nprint('é', file=sys.stderr)\n"}),
        )
        .await?;
        h.submit("badruns", serde_json::json!({"language": "bash", "source": "echo", "runs": 21})).await?;
        h.submit(
            "taken",
            serde_json::json!({"language": "python",
                "source": format!("print('x' * {})", STATUS_EXCERPT_BYTES * 2),
                "limits": {"outputBytes": STATUS_EXCERPT_BYTES * 4}}),
        )
        .await?;

        let e = h.wait_done("bytes").await?;
        let st = status(&e);
        ensure!(verdict(&e) == Some(Verdict::Accepted), "{}", describe(&e));
        ensure!(
            st.stdout.as_deref() == Some("/v8AQQo=") && st.stdout_encoding == FileEncoding::Base64,
            "the exact bytes fe ff 00 41 0a: {}",
            describe(&e)
        );
        ensure!(
            st.stderr.as_deref() == Some("é\n") && st.stderr_encoding == FileEncoding::Utf8,
            "{}",
            describe(&e)
        );
        ensure!(st.output.is_none(), "small outputs are all in the status: {}", describe(&e));

        let e = h.wait_done("badruns").await?;
        ensure!(
            status(&e).phase == Some(Phase::Failed)
                && status(&e).message.as_deref() == Some("spec.runs = 21 is not allowed: give 1 to 20 runs"),
            "{}",
            describe(&e)
        );

        let e = h.wait_done("taken").await?;
        let st = status(&e);
        ensure!(st.phase == Some(Phase::Failed) && st.output.is_none(), "{}", describe(&e));
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready").context("no Ready condition")?;
        ensure!(ready.reason.as_deref() == Some("OutputNotStored"), "{}", describe(&e));
        ensure!(
            st.message.as_deref().unwrap_or_default().contains("taken-output-0 already exists"),
            "{}",
            describe(&e)
        );
        let cm = h.ns.api::<ConfigMap>().get("taken-output-0").await?;
        ensure!(
            cm.data.as_ref().and_then(|d| d.get("mine")).map(String::as_str) == Some("yes")
                && cm.binary_data.is_none()
                && cm.metadata.owner_references.is_none(),
            "the foreign ConfigMap was changed: {cm:?}"
        );
        Ok(())
    })
}

/// Needs sandbox images with the runner of issue 10 (one stream, arrival order, several runs).
#[tokio::test]
async fn redirect_arrival_and_runs_reach_the_runner() -> Result<()> {
    with_engine!(operator "out-redirect", |_| {}, needs RUNTIMES, |h| {
        h.submit(
            "redirect",
            serde_json::json!({"language": "bash", "source": "echo a; echo b >&2; echo c",
                "redirectStderrToStdout": true}),
        )
        .await?;
        h.submit("runs", serde_json::json!({"language": "bash", "source": "echo once", "runs": 3})).await?;
        h.submit(
            "order",
            serde_json::json!({"language": "bash", "source": "echo a; sleep 0.1; echo b >&2; sleep 0.1; echo c"}),
        )
        .await?;

        let e = h.wait_done("order").await?;
        let st = status(&e);
        ensure!(
            st.stdout.as_deref() == Some("a\nc\n") && st.stderr.as_deref() == Some("b\n"),
            "{}",
            describe(&e)
        );
        ensure!(st.arrival == [2, -2, 2], "the order of arrival: {}", describe(&e));

        let e = h.wait_done("redirect").await?;
        let st = status(&e);
        ensure!(st.stdout.as_deref() == Some("a\nb\nc\n"), "one stream, in order: {}", describe(&e));
        ensure!(st.stderr.is_none(), "no stderr when redirected: {}", describe(&e));
        ensure!(st.arrival.iter().all(|n| *n > 0), "everything arrived on stdout: {}", describe(&e));

        let e = h.wait_done("runs").await?;
        let st = status(&e);
        ensure!(
            verdict(&e) == Some(Verdict::Accepted) && st.runs == Some(3) && st.stdout.as_deref() == Some("once\n"),
            "{}",
            describe(&e)
        );
        Ok(())
    })
}

/// What a test's callback listener received.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A tiny HTTP server on 127.0.0.1 recording every request and answering 200.
async fn listener() -> Result<(SocketAddr, Arc<Mutex<Vec<Received>>>, tokio::task::JoinHandle<()>)> {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let s = s.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
            s.lock().unwrap_or_else(|p| p.into_inner()).push(Received {
                method: parts.method.to_string(),
                path: parts.uri.to_string(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                body: body.to_vec(),
            });
            "ok"
        }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(tcp, app).await;
    });
    Ok((addr, seen, task))
}

/// Wait until `name` has recorded its callback.
/// Wait until the callback's outcome is recorded (not merely claimed: `sending` is the
/// claim a replica writes before it sends).
async fn wait_callback(h: &Engine, name: &str) -> Result<Execution> {
    h.wait_for(name, WAIT, |e| {
        e.status.as_ref().and_then(|s| s.callback.as_ref()).is_some_and(|c| c.sending.is_none())
    })
    .await
}

fn allow_loopback(c: &mut rce_operator::Config) {
    c.callback_allow = Policy::parse("127.0.0.1/32").expect("policy");
}

#[tokio::test]
async fn a_terminal_execution_puts_its_result_once_even_across_a_restart() -> Result<()> {
    let (addr, seen, server) = listener().await?;
    let result = with_engine!(operator "out-callback", allow_loopback, needs RUNTIMES, |h| {
        h.submit(
            "rce",
            serde_json::json!({"language": "bash", "source": "echo hi",
                "callback": {"url": format!("http://{addr}/done?id=rce")}}),
        )
        .await?;
        h.submit(
            "judge0",
            serde_json::json!({"language": "bash", "source": "echo hi",
                "callback": {"url": format!("http://{addr}/judge0"), "format": "judge0"}}),
        )
        .await?;
        let e = wait_callback(&h, "rce").await?;
        let cb = status(&e).callback.context("no callback")?;
        ensure!(
            cb.attempts == 1 && cb.delivered && cb.http_status == Some(200) && cb.error.is_none(),
            "{}",
            describe(&e)
        );
        let e = wait_callback(&h, "judge0").await?;
        ensure!(status(&e).callback.is_some_and(|c| c.delivered), "{}", describe(&e));

        // Recorded: a restarted operator does not send them again.
        h.kill().await;
        h.start();
        tokio::time::sleep(Duration::from_secs(8)).await;

        let got = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let rce: Vec<&Received> = got.iter().filter(|r| r.path == "/done?id=rce").collect();
        ensure!(rce.len() == 1, "{} PUTs of the rce callback: {got:?}", rce.len());
        let r = rce[0];
        ensure!(r.method == "PUT" && r.content_type == "application/json", "{r:?}");
        let doc: StatusDocument = serde_json::from_slice(&r.body).context("the body is the status document")?;
        ensure!(doc.name == "rce" && doc.namespace == h.ns.name && doc.language == "bash", "{doc:?}");
        ensure!(
            doc.status.phase == Some(Phase::Completed)
                && doc.status.verdict == Some(Verdict::Accepted)
                && doc.status.stdout.as_deref() == Some("hi\n")
                && doc.status.callback.is_none(),
            "{doc:?}"
        );
        let j: Vec<&Received> = got.iter().filter(|r| r.path == "/judge0").collect();
        ensure!(j.len() == 1, "{} PUTs of the judge0 callback: {got:?}", j.len());
        let body: serde_json::Value = serde_json::from_slice(&j[0].body)?;
        ensure!(body["status"]["id"] == 3, "Judge0's Accepted: {body}");
        let stdout = body["stdout"].as_str().unwrap_or_default().replace('\n', "");
        ensure!(
            base64::engine::general_purpose::STANDARD.decode(stdout)? == b"hi\n",
            "base64 stdout as Judge0 sends it: {body}"
        );
        ensure!(got.len() == 2, "nothing else was sent: {got:?}");
        Ok(())
    });
    server.abort();
    result
}

#[tokio::test]
async fn a_loopback_callback_is_refused_under_the_default_policy() -> Result<()> {
    let (addr, seen, server) = listener().await?;
    let result = with_engine!(operator "out-callback-off", |_| {}, needs RUNTIMES, |h| {
        h.submit(
            "off",
            serde_json::json!({"language": "bash", "source": "echo hi",
                "callback": {"url": format!("http://{addr}/cb")}}),
        )
        .await?;
        let e = wait_callback(&h, "off").await?;
        let cb = status(&e).callback.context("no callback")?;
        ensure!(cb.attempts == 0 && !cb.delivered && cb.http_status.is_none(), "{}", describe(&e));
        let why = cb.error.unwrap_or_default();
        ensure!(why.contains("callbacks are not enabled on this server"), "{why}");
        ensure!(verdict(&e) == Some(Verdict::Accepted), "the result stands: {}", describe(&e));
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure!(seen.lock().unwrap_or_else(|p| p.into_inner()).is_empty(), "the listener was called: {:?}", seen.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(())
    });
    server.abort();
    result
}

#[tokio::test]
async fn a_destination_that_never_answers_gets_three_tries_of_five_seconds() -> Result<()> {
    // Accepts connections, never answers.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    let accepted = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let a = accepted.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = tcp.accept().await {
            a.lock().unwrap_or_else(|p| p.into_inner()).push(Instant::now());
            held.push(s);
        }
    });
    let result = with_engine!(operator "out-callback-slow", allow_loopback, needs RUNTIMES, |h| {
        h.submit(
            "slow",
            serde_json::json!({"language": "bash", "source": "echo hi",
                "callback": {"url": format!("http://{addr}/cb")}}),
        )
        .await?;
        let e = wait_callback(&h, "slow").await?;
        let cb = status(&e).callback.context("no callback")?;
        ensure!(cb.attempts == 3 && !cb.delivered && cb.http_status.is_none(), "{}", describe(&e));
        ensure!(cb.error.as_deref() == Some("no answer within 5 s"), "{}", describe(&e));
        let times = accepted.lock().unwrap_or_else(|p| p.into_inner()).clone();
        ensure!(times.len() == 3, "{} connections", times.len());
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        ensure!(gaps.iter().all(|g| *g >= Duration::from_secs(5)), "each try waited 5 s: {gaps:?}");
        Ok(())
    });
    server.abort();
    result
}

#[tokio::test]
async fn compiler_options_reach_the_compiler_and_the_compile_stage_reports_its_figures() -> Result<()> {
    with_engine!(operator "out-options", |_| {}, needs ["c", "bash"], |h| {
        let src = "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", X); return 0; }\n";
        h.submit("opt", serde_json::json!({"language": "c", "source": src, "compilerOptions": ["-DX=5", "-Wall"]}))
            .await?;
        h.submit("noopt", serde_json::json!({"language": "c", "source": src})).await?;
        h.submit(
            "badopt",
            serde_json::json!({"language": "c", "source": src, "compilerOptions": ["-fplugin=/tmp/x.so"]}),
        )
        .await?;
        h.submit(
            "script",
            serde_json::json!({"language": "bash", "source": "echo", "compilerOptions": ["-O2"]}),
        )
        .await?;

        let e = h.wait_done("opt").await?;
        let st = status(&e);
        ensure!(verdict(&e) == Some(Verdict::Accepted) && st.stdout.as_deref() == Some("5\n"), "{}", describe(&e));
        let c = st.compile.clone().context("no compile figures")?;
        ensure!(c.exit_code == Some(0) && c.signal.is_none() && c.wall_time_ms > 0, "{}", describe(&e));

        let e = h.wait_done("noopt").await?;
        let st = status(&e);
        ensure!(verdict(&e) == Some(Verdict::CompilationError), "{}", describe(&e));
        ensure!(st.compile_output.as_deref().unwrap_or_default().contains("X’ undeclared"), "{}", describe(&e));
        ensure!(st.compile.as_ref().and_then(|c| c.exit_code) == Some(1), "{}", describe(&e));

        let e = h.wait_done("badopt").await?;
        let st = status(&e);
        ensure!(st.phase == Some(Phase::Failed), "{}", describe(&e));
        ensure!(
            st.message.as_deref().unwrap_or_default().starts_with(
                "compiler option \"-fplugin=/tmp/x.so\" is not allowed; this language accepts: -O* "
            ),
            "{}",
            describe(&e)
        );
        let e = h.wait_done("script").await?;
        ensure!(
            status(&e).message.as_deref()
                == Some("compiler options are not accepted: this language has no compile step"),
            "{}",
            describe(&e)
        );
        Ok(())
    })
}

#[tokio::test]
async fn the_stack_limit_is_the_programs_stack() -> Result<()> {
    with_engine!(operator "out-stack", |_| {}, needs ["c"], |h| {
        // About 100 MB of stack: more than Judge0's default of 64000 KiB, less than 256 MiB.
        let src = "#include <stdio.h>\n\
            int f(int n) { volatile char buf[1000]; buf[0] = (char)n; return n ? f(n - 1) + buf[0] % 2 : 0; }\n\
            int main(void) { printf(\"%d\\n\", f(100000)); return 0; }\n";
        let limits = |stack: Option<u64>| {
            let mut l = serde_json::json!({"memoryMiB": 512});
            if let Some(s) = stack {
                l["stackKiB"] = serde_json::json!(s);
            }
            l
        };
        h.submit("small", serde_json::json!({"language": "c", "source": src, "limits": limits(None)})).await?;
        h.submit("big", serde_json::json!({"language": "c", "source": src, "limits": limits(Some(256 * 1024))}))
            .await?;
        let e = h.wait_done("small").await?;
        ensure!(
            verdict(&e) == Some(Verdict::RuntimeError) && status(&e).signal.as_deref() == Some("SIGSEGV"),
            "the default stack is too small: {}",
            describe(&e)
        );
        let e = h.wait_done("big").await?;
        ensure!(verdict(&e) == Some(Verdict::Accepted), "256 MiB of stack is enough: {}", describe(&e));
        Ok(())
    })
}

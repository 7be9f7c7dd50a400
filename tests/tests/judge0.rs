//! The Judge0 CE 1.13.1 surface against the real cluster, for the semantics that need a real
//! program: a compile error's nulls, a signal's `exit_code` 0, SIGXFSZ at `max_file_size`
//! and outputs up to it served whole, exact bytes in base64 mode and upstream's refusal in
//! text mode, `redirect_stderr_to_stdout`, `compiler_options`, `number_of_runs`,
//! `stack_limit`, `additional_files`, language 89, `callback_url`, the list, trailing
//! slashes. Each test starts the shim from this checkout on a loopback port with an
//! operator of its own (both in this process) in its own namespace, as `shim_e2e` does.
//! With no cluster these tests fail; they never skip.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context as _, Result};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rce_tests::{
    shim::{request, Resp, Shim},
    TestNamespace,
};
use serde_json::{json, Value};

/// `POST /submissions?wait=true&…` with a JSON body.
async fn run(base: &str, query: &str, body: Value) -> Result<Resp> {
    request("POST", &format!("{base}/submissions?wait=true&{query}"), &[], Some(&body.to_string())).await
}

/// Run several at once (the node has two cores: a few at a time).
async fn run_all(base: &str, items: Vec<(&'static str, Value)>) -> Result<Vec<Resp>> {
    futures::future::try_join_all(items.into_iter().map(|(q, body)| run(base, q, body))).await
}

fn decode(v: &Value) -> Vec<u8> {
    rce_api::judge0::decode64(v.as_str().unwrap_or_default())
}

/// A stored (uncompressed) zip of `(name, bytes)` entries.
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for b in data {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
            }
        }
        !c
    }
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let offset = out.len() as u32;
        let header = |v: &mut Vec<u8>| {
            for x in [20u16, 0, 0] {
                v.extend_from_slice(&x.to_le_bytes());
            }
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&crc32(data).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        header(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&(0x0300u16 | 20).to_le_bytes());
        header(&mut central);
        for _ in 0..3 {
            central.extend_from_slice(&0u16.to_le_bytes());
        }
        central.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[tokio::test]
async fn judge0_compile_errors_signals_and_exits_as_upstream() -> Result<()> {
    let ns = TestNamespace::new("j0-status").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let b = &shim.base;
    let all = "fields=*";
    let r = run_all(
        b,
        vec![
            (all, json!({"language_id": 50, "source_code": "int main( {"})),
            (all, json!({"language_id": 46, "source_code": "kill -SEGV $$"})),
            (all, json!({"language_id": 46, "source_code": "echo out; exit 3"})),
            (all, json!({"language_id": 71, "source_code": "print('hi')"})),
        ],
    )
    .await?;
    // A compile error: the run's fields are null, the compiler's words in compile_output.
    let ce = &r[0].body;
    assert_eq!(ce["status"], json!({"id": 6, "description": "Compilation Error"}), "{}", r[0].text);
    assert!(ce["compile_output"].as_str().unwrap().contains("error"), "{}", r[0].text);
    for f in ["time", "wall_time", "memory", "stdout", "stderr", "exit_code", "exit_signal", "message"] {
        assert_eq!(ce[f], Value::Null, "{f}: {}", r[0].text);
    }
    // A signal: exit_code 0 (isolate's `exitcode || 0`), the number, isolate's words.
    let sg = &r[1].body;
    assert_eq!(
        (sg["status"]["id"].clone(), sg["exit_code"].clone(), sg["exit_signal"].clone()),
        (json!(7), json!(0), json!(11)),
        "{}",
        r[1].text
    );
    assert_eq!(sg["message"], "Caught fatal signal 11", "{}", r[1].text);
    assert_eq!(sg["stdout"], Value::Null, "{}", r[1].text);
    // An error exit.
    let re = &r[2].body;
    assert_eq!((re["status"]["id"].clone(), re["exit_code"].clone()), (json!(11), json!(3)), "{}", r[2].text);
    assert_eq!(re["message"], "Exited with error status 3", "{}", r[2].text);
    // Accepted: empty stderr is null, times with milliseconds (the SDK's %Y-%m-%dT%H:%M:%S.%fZ).
    let ok = &r[3].body;
    assert_eq!(
        (ok["status"]["id"].clone(), ok["stdout"].clone(), ok["stderr"].clone()),
        (json!(3), json!("hi\n"), Value::Null)
    );
    assert_eq!((ok["exit_code"].clone(), ok["message"].clone()), (json!(0), Value::Null), "{}", r[3].text);
    for f in ["created_at", "finished_at"] {
        let t = ok[f].as_str().unwrap_or_default();
        assert!(t.len() == 24 && t.as_bytes()[19] == b'.' && t.ends_with('Z'), "{f}: {t}");
    }
    // A trailing slash, as Rails routing accepts it.
    let r = request(
        "POST",
        &format!("{b}/submissions/?wait=true"),
        &[],
        Some(r#"{"language_id":71,"source_code":"print(2)"}"#),
    )
    .await?;
    assert_eq!((r.status, r.body["stdout"].clone()), (201, json!("2\n")), "{}", r.text);
    shim.finish(ns).await
}

#[tokio::test]
async fn judge0_exact_bytes_in_base64_and_upstreams_refusal_in_text() -> Result<()> {
    let ns = TestNamespace::new("j0-bytes").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let b = &shim.base;
    let program =
        json!({"language_id": 46, "source_code": "printf '\\xfe\\xff\\x00A\\n'; printf '\\xff' >&2"});
    let r = run(
        b,
        "base64_encoded=true",
        json!({"language_id": 46, "source_code": B64.encode(program["source_code"].as_str().unwrap())}),
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"]["id"], 3, "{}", r.text);
    assert_eq!(decode(&r.body["stdout"]), [0xfe, 0xff, 0x00, 0x41, 0x0a], "{}", r.text);
    assert_eq!(decode(&r.body["stderr"]), [0xff], "{}", r.text);
    // Without base64: upstream's words; with wait, 201 and the token.
    let r = run(b, "", program).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["error"],
        "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter"
    );
    let token = r.body["token"].as_str().unwrap();
    let g = request("GET", &format!("{b}/submissions/{token}"), &[], None).await?;
    assert_eq!(g.status, 400, "{}", g.text);
    assert_eq!(
        g.body,
        json!({"error": "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter"})
    );
    let g = request("GET", &format!("{b}/submissions/{token}?base64_encoded=true&fields=stdout"), &[], None)
        .await?;
    assert_eq!(decode(&g.body["stdout"]), [0xfe, 0xff, 0x00, 0x41, 0x0a], "{}", g.text);
    shim.finish(ns).await
}

#[tokio::test]
async fn judge0_max_file_size_is_the_output_cap() -> Result<()> {
    let ns = TestNamespace::new("j0-fsize").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let b = &shim.base;
    let write = |kib: u64| format!("import sys\nsys.stdout.write('x' * {})\n", kib * 1024);
    let r = run_all(
        b,
        vec![
            (
                "fields=status,exit_signal",
                json!({"language_id": 71, "source_code": write(1100), "max_file_size": 1024}),
            ),
            (
                "base64_encoded=true&fields=status,stdout",
                json!({"language_id": 71, "source_code": B64.encode(write(1000))}),
            ),
            (
                "base64_encoded=true&fields=status,stdout",
                json!({"language_id": 71, "source_code": B64.encode(write(3000)), "max_file_size": 4096}),
            ),
        ],
    )
    .await?;
    assert_eq!(
        r[0].body["status"],
        json!({"id": 8, "description": "Runtime Error (SIGXFSZ)"}),
        "{}",
        r[0].text
    );
    assert_eq!(r[0].body["exit_signal"], 25, "{}", r[0].text);
    // Under the default 1024 KB and under 4096 KB: served whole (the status holds an
    // excerpt; the rest is read from the Execution's output ConfigMaps).
    assert_eq!(r[1].body["status"]["id"], 3, "{}", &r[1].text[..r[1].text.len().min(300)]);
    assert_eq!(decode(&r[1].body["stdout"]).len(), 1000 * 1024);
    assert_eq!(r[2].body["status"]["id"], 3, "{}", &r[2].text[..r[2].text.len().min(300)]);
    assert_eq!(decode(&r[2].body["stdout"]).len(), 3000 * 1024);
    shim.finish(ns).await
}

#[tokio::test]
async fn judge0_redirect_options_runs_and_stack_change_the_result() -> Result<()> {
    let ns = TestNamespace::new("j0-attrs").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let b = &shim.base;
    let c = "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", X); return 0; }\n";
    let r = run_all(
        b,
        vec![
            ("fields=stdout,stderr,status", json!({"language_id": 46, "source_code": "echo out; echo err >&2; echo out2", "redirect_stderr_to_stdout": true})),
            ("fields=stdout,stderr,status", json!({"language_id": 46, "source_code": "echo out; echo err >&2"})),
            ("fields=stdout,status,compile_output", json!({"language_id": 50, "source_code": c, "compiler_options": "-DX=5"})),
            ("fields=stdout,status,number_of_runs,time,message", json!({"language_id": 71, "source_code": "print(7)", "number_of_runs": 3})),
            ("fields=stdout,status,stack_limit", json!({"language_id": 46, "source_code": "ulimit -s", "stack_limit": 32000})),
            ("fields=stdout,status,stack_limit", json!({"language_id": 46, "source_code": "ulimit -s"})),
        ],
    )
    .await?;
    // Every check, then one assertion: a failure shows all of them.
    let want = [
        (0, "stdout", json!("out\nerr\nout2\n")),
        (0, "stderr", Value::Null),
        (1, "stdout", json!("out\n")),
        (1, "stderr", json!("err\n")),
        (2, "stdout", json!("5\n")),
        (3, "stdout", json!("7\n")),
        (3, "number_of_runs", json!(3)),
        (4, "stdout", json!("32000\n")),
        (4, "stack_limit", json!(32000)),
        (5, "stdout", json!("64000\n")),
        (5, "stack_limit", json!(64000)),
    ];
    let wrong: Vec<String> = want
        .iter()
        .filter(|(i, f, v)| r[*i].body[*f] != *v)
        .map(|(i, f, v)| format!("#{i} {f}: want {v}, got {}", r[*i].text))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // An option outside the allow-list: upstream's error shape.
    let r =
        run(b, "", json!({"language_id": 50, "source_code": c, "compiler_options": "-fplugin=/tmp/x.so"}))
            .await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.body["compiler_options"][0].as_str().unwrap().contains("is not allowed"), "{}", r.text);
    shim.finish(ns).await
}

#[tokio::test]
async fn judge0_additional_files_and_multi_file_programs() -> Result<()> {
    let ns = TestNamespace::new("j0-files").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let b = &shim.base;
    let lib = zip(&[("mymod.py", b"X = 5\n"), ("data/in.txt", b"from the zip\n")]);
    let project = zip(&[
        ("compile", b"gcc -o prog main.c\n"),
        ("run", b"./prog \"$@\"\ncat note.txt\n"),
        ("main.c", b"#include <stdio.h>\nint main(void) { puts(\"multi\"); return 0; }\n"),
        ("note.txt", b"note\n"),
    ]);
    let r = run_all(
        b,
        vec![
            ("fields=stdout,stderr,status", json!({"language_id": 71, "source_code": "import mymod\nprint(mymod.X)\nprint(open('data/in.txt').read(), end='')", "additional_files": B64.encode(&lib)})),
            ("fields=stdout,stderr,status,compile_output,source_code,message", json!({"language_id": 89, "additional_files": B64.encode(&project)})),
        ],
    )
    .await?;
    assert_eq!(
        (r[0].body["status"]["id"].clone(), r[0].body["stdout"].clone()),
        (json!(3), json!("5\nfrom the zip\n")),
        "{}",
        r[0].text
    );
    assert_eq!(
        (r[1].body["status"]["id"].clone(), r[1].body["stdout"].clone()),
        (json!(3), json!("multi\nnote\n")),
        "{}",
        r[1].text
    );
    assert_eq!(r[1].body["source_code"], Value::Null, "{}", r[1].text);
    shim.finish(ns).await
}

#[tokio::test]
async fn judge0_callback_url_gets_the_submission_put() -> Result<()> {
    let ns = TestNamespace::new("j0-callback").await?;
    let shim = Shim::start(&ns.name, &[], "127.0.0.1/32").await?;
    let b = &shim.base;
    // The callback target: a listener of this test on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Value)>(4);
    let hook = tokio::spawn(async move {
        let route = axum::routing::put(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = tx.send(("PUT".into(), v)).await;
                "ok"
            }
        });
        let _ = axum::serve(listener, axum::Router::new().route("/hook", route)).await;
    });
    let url = format!("http://127.0.0.1:{port}/hook");
    let r = request(
        "POST",
        &format!("{b}/submissions"),
        &[],
        Some(
            &json!({"language_id": 71, "source_code": "print('called back')", "callback_url": url})
                .to_string(),
        ),
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_string();
    let (method, body) = tokio::time::timeout(Duration::from_secs(90), rx.recv())
        .await
        .context("no callback within 90 s")?
        .unwrap();
    hook.abort();
    assert_eq!(method, "PUT");
    assert_eq!(body["token"], token.as_str(), "{body}");
    assert_eq!(body["status"], json!({"id": 3, "description": "Accepted"}), "{body}");
    assert_eq!(decode(&body["stdout"]), b"called back\n", "{body}");
    let keys: std::collections::BTreeSet<&str> =
        body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["compile_output", "memory", "message", "status", "stderr", "stdout", "time", "token"].into()
    );
    // A destination the allow-list does not admit: refused at once, as upstream-style field error.
    let r = request(
        "POST",
        &format!("{b}/submissions"),
        &[],
        Some(r#"{"language_id":71,"source_code":"1","callback_url":"http://10.0.0.1/x"}"#),
    )
    .await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.body["callback_url"][0].as_str().unwrap().contains("not allowed"), "{}", r.text);
    shim.finish(ns).await
}

#[tokio::test]
async fn judge0_list_is_the_callers_tenant_only() -> Result<()> {
    let ns = TestNamespace::new("j0-list").await?;
    let spec = format!("judge0-list-key-1:{}", ns.name);
    let shim = Shim::start(&ns.name, &["--auth", "--api-key", &spec], "").await?;
    let b = &shim.base;
    let auth = [("X-Auth-Token", "judge0-list-key-1")];
    for i in 0..3 {
        let body = json!({"language_id": 71, "source_code": format!("print({i})")}).to_string();
        let r = request("POST", &format!("{b}/submissions"), &auth, Some(&body)).await?;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = request("GET", &format!("{b}/submissions?per_page=2"), &auth, None).await?;
    assert_eq!(r.status, 403, "no X-Auth-User: {}", r.text);
    let both = [("X-Auth-Token", "judge0-list-key-1"), ("X-Auth-User", "judge0-list-key-1")];
    // The watch cache sees the new Executions within a moment.
    let mut last = Value::Null;
    for _ in 0..40 {
        let r =
            request("GET", &format!("{b}/submissions?per_page=2&fields=token,status"), &both, None).await?;
        assert_eq!(r.status, 200, "{}", r.text);
        last = r.body;
        if last["meta"]["total_count"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        last["meta"],
        json!({"current_page": 1, "next_page": 2, "prev_page": null, "total_pages": 2, "total_count": 3}),
        "{last}"
    );
    assert_eq!(last["submissions"].as_array().unwrap().len(), 2, "{last}");
    let r = request("POST", &format!("{b}/authorize"), &both, None).await?;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    let r = request("POST", &format!("{b}/authenticate"), &[], None).await?;
    assert_eq!(r.status, 401);
    shim.finish(ns).await
}

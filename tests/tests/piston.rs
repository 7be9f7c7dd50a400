//! The Piston v2 surface against the real cluster, compared with upstream's documented and
//! coded behaviour (engineer-man/piston `readme.md`, `api/src/api/v2.js`, `api/src/job.js`):
//! the runtime list's names, `run` on a compile error, stdin's final newline, `output` in
//! arrival order, the compile stage's figures, errors and their words. Plus the shim's reader
//! of stored outputs (`rce_api_shim::outputs`) against ConfigMaps made here.
//!
//! Each test starts the shim from this checkout on a loopback port with an operator of its
//! own (as tests/tests/shim_e2e.rs does). With no cluster (or no Redis) these tests fail;
//! they never skip.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use anyhow::Result;
use k8s_openapi::{api::core::v1::ConfigMap, ByteString};
use kube::api::{ObjectMeta, PostParams};
use rce_api::{ExecutionStatus, FileEncoding, StoredOutput, OUTPUT_PART_BYTES};
use rce_api_shim::{kube_backend::KubeCluster, outputs};
use rce_tests::{
    shim::{request, Shim},
    TestNamespace,
};
use serde_json::{json, Value};

/// Piston's calls on the shared test shim: (status, body, text).
trait Piston {
    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value, String)>;
    async fn get(&self, path: &str) -> Result<(u16, Value, String)>;
}

impl Piston for Shim {
    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value, String)> {
        let r = request("POST", &format!("{}{path}", self.base), &[], Some(&body.to_string())).await?;
        Ok((r.status, r.body, r.text))
    }

    async fn get(&self, path: &str) -> Result<(u16, Value, String)> {
        let r = request("GET", &format!("{}{path}", self.base), &[], None).await?;
        Ok((r.status, r.body, r.text))
    }
}

fn execute(language: &str, content: &str, extra: Value) -> Value {
    let mut v = json!({"language": language, "version": "*", "files": [{"content": content}]});
    v.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    v
}

#[tokio::test]
async fn piston_a_compile_error_sets_run_to_the_compile_stage_with_its_figures() -> Result<()> {
    let ns = TestNamespace::new("piston-cerr").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let (code, r, text) =
        shim.post("/api/v2/execute", &execute("c", "int main( { return 0; }", json!({}))).await?;
    assert_eq!(code, 200, "{text}");
    // Upstream: `if (result.run === undefined) result.run = result.compile`.
    assert_eq!(r["run"], r["compile"], "{text}");
    let c = &r["compile"];
    assert_ne!(c["code"], json!(0), "{text}");
    assert_eq!(c["status"], "RE", "{text}");
    assert!(c["output"].as_str().unwrap().contains("error"), "{text}");
    assert!(c["message"].as_str().unwrap().starts_with("Exited with error status"), "{text}");
    for k in ["cpu_time", "wall_time", "memory"] {
        assert!(c[k].as_u64().is_some_and(|v| v > 0), "compile.{k}: {text}");
    }
    // A successful compile: compile has code 0 and its figures, run is the program's.
    let (code, r, text) = shim
        .post("/api/v2/execute", &execute("c", "#include <stdio.h>\nint main(){puts(\"hi\");}", json!({})))
        .await?;
    assert_eq!(code, 200, "{text}");
    assert_eq!((&r["compile"]["code"], &r["compile"]["status"]), (&json!(0), &Value::Null), "{text}");
    assert!(r["compile"]["wall_time"].as_u64().is_some(), "{text}");
    assert_eq!((&r["run"]["stdout"], &r["run"]["code"]), (&json!("hi\n"), &json!(0)), "{text}");
    shim.finish(ns).await
}

#[tokio::test]
async fn piston_stdin_gets_its_final_newline_and_output_keeps_the_arrival_order() -> Result<()> {
    let ns = TestNamespace::new("piston-io").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    // A bash `while read` loop sees its last line only with upstream's final newline.
    let (code, r, text) = shim
        .post(
            "/api/v2/execute",
            &execute("bash", "while read l; do echo \"[$l]\"; done", json!({"stdin": "a\nb"})),
        )
        .await?;
    assert_eq!(code, 200, "{text}");
    assert_eq!(r["run"]["stdout"], "[a]\n[b]\n", "{text}");
    // stdout, stderr, stdout: `output` in that order, as upstream's `output += data`. Two
    // pipes show only the order in which the reader woke (upstream's event loop too), so the
    // writes are a moment apart.
    let prog = "import sys, time\nprint('1', flush=True)\ntime.sleep(0.05)\nprint('E', file=sys.stderr, flush=True)\n\
                time.sleep(0.05)\nprint('2', flush=True)";
    let (code, r, text) = shim.post("/api/v2/execute", &execute("python", prog, json!({}))).await?;
    assert_eq!(code, 200, "{text}");
    assert_eq!((&r["run"]["stdout"], &r["run"]["stderr"]), (&json!("1\n2\n"), &json!("E\n")), "{text}");
    assert_eq!(r["run"]["output"], "1\nE\n2\n", "{text}");
    assert_eq!(
        (&r["run"]["code"], &r["run"]["status"], &r["run"]["message"]),
        (&json!(0), &Value::Null, &Value::Null)
    );
    for k in ["cpu_time", "wall_time", "memory"] {
        assert!(r["run"][k].is_u64(), "run.{k}: {text}");
    }
    // A non-zero exit and a signal, in isolate's words.
    let (_, r, text) = shim.post("/api/v2/execute", &execute("bash", "exit 3", json!({}))).await?;
    assert_eq!(
        (&r["run"]["code"], &r["run"]["status"], &r["run"]["message"], &r["run"]["signal"]),
        (&json!(3), &json!("RE"), &json!("Exited with error status 3"), &Value::Null),
        "{text}"
    );
    let (_, r, text) = shim.post("/api/v2/execute", &execute("bash", "kill -SEGV $$", json!({}))).await?;
    assert_eq!(
        (&r["run"]["code"], &r["run"]["status"], &r["run"]["message"], &r["run"]["signal"]),
        (&Value::Null, &json!("SG"), &json!("Caught fatal signal 11"), &json!("SIGSEGV")),
        "{text}"
    );
    let (_, r, text) =
        shim.post("/api/v2/execute", &execute("bash", "sleep 5", json!({"run_timeout": 500}))).await?;
    assert_eq!((&r["run"]["status"], &r["run"]["signal"]), (&json!("TO"), &json!("SIGKILL")), "{text}");
    shim.finish(ns).await
}

#[tokio::test]
async fn piston_errors_are_upstreams_400s_and_words() -> Result<()> {
    let ns = TestNamespace::new("piston-err").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let cases = [
        (json!({"version": "*", "files": []}), "language is required as a string"),
        (json!({"language": "python", "version": 3, "files": []}), "version is required as a string"),
        (json!({"language": "python", "version": "*"}), "files is required as an array"),
        (
            json!({"language": "python", "version": "*", "files": [{}]}),
            "files[0].content is required as a string",
        ),
        (
            json!({"language": "html", "version": "5.0.0", "files": [{"content": "x"}]}),
            "html-5.0.0 runtime is unknown",
        ),
        (
            json!({"language": "python", "version": "*", "files": []}),
            "files must include at least one utf8 encoded file",
        ),
        (
            json!({"language": "python", "version": "*", "files": [{"content": "1"}], "run_timeout": "5"}),
            "If specified, run_timeout must be a number",
        ),
        (
            json!({"language": "python", "version": "*", "files": [{"content": "1"}], "run_timeout": -1}),
            "run_timeout must be non-negative",
        ),
    ];
    for (body, message) in cases {
        let (code, r, text) = shim.post("/api/v2/execute", &body).await?;
        assert_eq!((code, r), (400, json!({ "message": message })), "{body}: {text}");
        // The same under the `/api/v2/piston` prefix, with a trailing slash.
        let (code, r, _) = shim.post("/api/v2/piston/execute/", &body).await?;
        assert_eq!((code, r), (400, json!({ "message": message })), "{body}");
    }
    let (code, r, text) =
        shim.post("/api/v2/execute", &execute("python", "1", json!({"run_timeout": 99_999_999}))).await?;
    assert_eq!(code, 400, "{text}");
    assert!(
        r["message"].as_str().unwrap().starts_with("run_timeout cannot exceed the configured limit of "),
        "{text}"
    );
    shim.finish(ns).await
}

/// SemVer as upstream's `semver.parse` takes it: MAJOR.MINOR.PATCH, optional pre-release and
/// build suffixes.
fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[tokio::test]
async fn piston_runtimes_are_listed_and_run_under_upstreams_names() -> Result<()> {
    let ns = TestNamespace::new("piston-names").await?;
    let shim = Shim::start(&ns.name, &[], "").await?;
    let runtimes: Vec<rce_api::Runtime> =
        kube::Api::<rce_api::Runtime>::all(ns.client.clone()).list(&Default::default()).await?.items;
    let (code, list, text) = shim.get("/api/v2/runtimes").await?;
    assert_eq!(code, 200, "{text}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), runtimes.len(), "one entry per Runtime: {text}");
    let mut bad_versions = vec![];
    for e in list {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(keys.iter().all(|k| ["language", "version", "aliases", "runtime"].contains(k)), "{e}");
        if !is_semver(e["version"].as_str().unwrap()) {
            bad_versions.push(e.to_string());
        }
    }
    // Every Runtime with a Piston name is listed under it, with its `runtime` key when set.
    for rt in &runtimes {
        let Some(p) = &rt.spec.piston else { continue };
        let mut want = json!({"language": p.language, "version": p.version, "aliases": p.aliases});
        if let Some(r) = &p.runtime {
            want["runtime"] = json!(r);
        }
        assert!(list.contains(&want), "{want} not in {text}");
    }
    assert!(bad_versions.is_empty(), "versions that are not SemVer: {bad_versions:?}");
    // Upstream's names for rce's `cpp` and `sqlite`, and its JavaScript, run.
    let by_language: BTreeMap<&str, &Value> =
        list.iter().map(|e| (e["language"].as_str().unwrap(), e)).collect();
    for name in ["c++", "sqlite3", "javascript", "python", "bash"] {
        assert!(by_language.contains_key(name), "no {name:?} in {text}");
    }
    let (code, r, text) = shim
        .post(
            "/api/v2/execute",
            &execute("c++", "#include <iostream>\nint main(){std::cout<<6*7<<std::endl;}", json!({})),
        )
        .await?;
    assert_eq!((code, &r["run"]["stdout"], &r["language"]), (200, &json!("42\n"), &json!("c++")), "{text}");
    let (code, r, text) = shim.post("/api/v2/execute", &execute("sqlite3", "select 6*7;", json!({}))).await?;
    assert_eq!(
        (code, &r["run"]["stdout"], &r["language"]),
        (200, &json!("42\n"), &json!("sqlite3")),
        "{text}"
    );
    shim.finish(ns).await
}

/// The shim's reader of stored outputs against real ConfigMaps (made here as the operator
/// makes them: `<execution>-output-<i>`, one `binaryData.part` each): the exact bytes, split
/// by the status's lengths; a missing part gives the excerpts.
#[tokio::test]
async fn stored_outputs_are_read_back_exactly_from_configmaps() -> Result<()> {
    let ns = TestNamespace::new("piston-stored").await?;
    let client = ns.client.clone();
    let stdout: Vec<u8> = (0..OUTPUT_PART_BYTES + 1000).map(|i| (i % 256) as u8).collect();
    let stderr = b"\xfe\xff\x00A\n".to_vec();
    let compile = b"warning: x\n".to_vec();
    let all: Vec<u8> = [stdout.clone(), stderr.clone(), compile.clone()].concat();
    let api = ns.api::<ConfigMap>();
    let mut names = vec![];
    for (i, part) in all.chunks(OUTPUT_PART_BYTES).enumerate() {
        let name = format!("big-output-{i}");
        let cm = ConfigMap {
            metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
            binary_data: Some(BTreeMap::from([("part".to_string(), ByteString(part.to_vec()))])),
            ..Default::default()
        };
        api.create(&PostParams::default(), &cm).await?;
        names.push(name);
    }
    assert_eq!(names.len(), 2);
    let status = ExecutionStatus {
        stdout: Some("excerpt".into()),
        stderr: Some("/v8AQQo=".into()),
        stderr_encoding: FileEncoding::Base64,
        compile_output: Some("warning: x\n".into()),
        output: Some(StoredOutput {
            config_maps: names.clone(),
            stdout_bytes: stdout.len() as u64,
            stderr_bytes: stderr.len() as u64,
            compile_output_bytes: compile.len() as u64,
        }),
        ..Default::default()
    };
    let cluster = KubeCluster::start(client);
    let out =
        outputs::read_status(&*cluster, &ns.name, &status).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(out.complete);
    assert!(out.stdout() == stdout.as_slice(), "stdout differs ({} bytes read)", out.stdout().len());
    assert_eq!(out.stderr(), stderr.as_slice());
    assert_eq!(out.compile_output(), compile.as_slice());
    // Once a part is gone (the Execution deleted): the excerpts, decoded, not an error.
    api.delete(&names[1], &Default::default()).await?;
    let out =
        outputs::read_status(&*cluster, &ns.name, &status).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(!out.complete);
    assert_eq!((out.stdout(), out.stderr()), (&b"excerpt"[..], stderr.as_slice()));
    ns.cleanup().await
}

//! Every installed Runtime against the real cluster, through the engine's running operator
//! (`make up`): a hello-world, a stdin echo and, for compiled languages, a compile error,
//! from the sample programs in `sandbox-images/langs/<runtime>/tests/`; then the submission
//! features (several files, args, expectedOutput, limit overrides).
//!
//! A case may be a directory instead (`tests/hello/`, ...): its files are submitted together,
//! the Runtime's source file first (the multi-file Runtime's `compile` and `run` scripts).
//! `RCE_TEST_RUNTIMES=kotlin,haskell` runs only those Runtimes' cases.
//!
//! The Executions carry no `rce.dev/operator` label, so `make up`'s operator runs them; with
//! no operator they get no status and the tests fail with a message saying so.

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use kube::ResourceExt;
use rce_api::{Execution, Phase, Verdict};
use rce_tests::exec::{describe, langs_dir, message, phase, sample, stdout, verdict};
use rce_tests::with_engine;
use serde_json::json;

/// The whole catalog: ~90 Executions, a few at a time, JVM, Kotlin, Scala and GHC compiles
/// among them.
const CATALOG_WAIT: Duration = Duration::from_secs(900);
/// `make up` installs this many Runtimes.
const CATALOG_SIZE: usize = 38;
const WAIT: Duration = Duration::from_secs(180);

/// Ends with a newline: the line-based echo samples (C++, C#, Pascal, Scala) add one.
const ECHO_STDIN: &str = "first line\nsecond: 1 2 3, ünïcödé ✓\n\n  last line  \n";

/// What one case expects of its finished Execution.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Hello,
    Echo,
    CompileError,
}

fn file_spec(lang: &str, file: &str, content: &str) -> serde_json::Value {
    json!({"language": lang, "files": [{"name": file, "content": content}]})
}

/// The files of a directory sample `sandbox-images/langs/<lang>/tests/<case>/`, the entry
/// file (`entry`) first, as an Execution's `files`.
fn sample_dir(lang: &str, case: &str, entry: &str) -> Result<Option<Vec<serde_json::Value>>> {
    let dir = langs_dir().join(lang).join("tests").join(case);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = e?.path();
        let name = path.file_name().and_then(|n| n.to_str()).context("file name")?.to_string();
        let content =
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        files.push((name, content));
    }
    files.sort_by_key(|(n, _)| (n != entry, n.clone()));
    ensure!(files.first().is_some_and(|(n, _)| n == entry), "{}: no entry file {entry}", dir.display());
    Ok(Some(files.into_iter().map(|(name, content)| json!({"name": name, "content": content})).collect()))
}

/// `RCE_TEST_RUNTIMES`: the Runtimes to test (all when unset or empty).
fn selected() -> Option<Vec<String>> {
    let v = std::env::var("RCE_TEST_RUNTIMES").unwrap_or_default();
    let names: Vec<String> = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    (!names.is_empty()).then_some(names)
}

fn check(case: Expect, e: &Execution) -> Result<(), String> {
    let st = e.status.clone().unwrap_or_default();
    let fail = |what: &str| Err(format!("{what}; status: {}", describe(e)));
    match case {
        Expect::Hello => {
            if st.verdict != Some(Verdict::Accepted) {
                return fail("verdict is not Accepted");
            }
            if stdout(e).trim_end_matches(['\n', '\r']) != "hello, world" {
                return fail("stdout is not `hello, world`");
            }
        }
        Expect::Echo => {
            if st.verdict != Some(Verdict::Accepted) {
                return fail("verdict is not Accepted");
            }
            if stdout(e) != ECHO_STDIN {
                return fail(&format!("stdout {:?} differs from stdin {ECHO_STDIN:?}", stdout(e)));
            }
        }
        Expect::CompileError => {
            if st.verdict != Some(Verdict::CompilationError) {
                return fail("verdict is not CompilationError");
            }
            if st.compile_output.as_deref().unwrap_or("").trim().is_empty() {
                return fail("compileOutput is empty");
            }
            if !stdout(e).is_empty() {
                return fail("the program ran: stdout is not empty");
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_runtime_runs_hello_echo_and_compile_error() -> Result<()> {
    with_engine!("rt-catalog", |eng| {
        let runtimes = eng.runtimes().await?;
        let names: Vec<String> = runtimes.iter().map(|r| r.name_any()).collect();
        let only = selected();
        if only.is_none() {
            ensure!(
                runtimes.len() >= CATALOG_SIZE,
                "only {} Runtimes installed ({names:?}); `make up` installs {CATALOG_SIZE}",
                runtimes.len()
            );
        }
        let mut problems = Vec::new();
        if let Some(only) = &only {
            for l in only.iter().filter(|l| !names.contains(l)) {
                problems.push(format!("{l}: selected by RCE_TEST_RUNTIMES but not installed"));
            }
        }

        let mut cases: Vec<(String, String, Expect)> = Vec::new(); // (execution, language, case)
        let mut specs = Vec::new();
        for rt in &runtimes {
            let lang = rt.name_any();
            if only.as_ref().is_some_and(|o| !o.contains(&lang)) {
                continue;
            }
            let file = &rt.spec.source_file;
            let mut add = |case: &str, expect: Expect, spec: serde_json::Value| {
                let name = format!("{lang}-{}", case.replace('_', "-"));
                cases.push((name.clone(), lang.clone(), expect));
                specs.push((name, spec));
            };
            let files_spec = |files: Vec<serde_json::Value>| json!({"language": lang, "files": files});
            match (sample_dir(&lang, "hello", file)?, sample(&lang, "hello")?) {
                (Some(files), _) => add("hello", Expect::Hello, files_spec(files)),
                (None, Some(src)) => add("hello", Expect::Hello, file_spec(&lang, file, &src)),
                (None, None) => problems.push(format!("{lang}: no sample program tests/hello.*")),
            }
            let echo = match (sample_dir(&lang, "echo", file)?, sample(&lang, "echo")?) {
                (Some(files), _) => Some(files_spec(files)),
                (None, Some(src)) => Some(file_spec(&lang, file, &src)),
                (None, None) => None,
            };
            match echo {
                Some(mut spec) => {
                    spec["stdin"] = json!(ECHO_STDIN);
                    add("echo", Expect::Echo, spec);
                }
                // A language that cannot read stdin says so in tests/no-stdin (SQLite).
                None if langs_dir().join(&lang).join("tests").join("no-stdin").exists() => {}
                None => problems.push(format!("{lang}: no sample program tests/echo.*")),
            }
            if rt.spec.compile.is_some() {
                match (sample_dir(&lang, "compile_error", file)?, sample(&lang, "compile_error")?) {
                    (Some(files), _) => add("compile_error", Expect::CompileError, files_spec(files)),
                    // `source`, not `files`: both ways of submitting are covered.
                    (None, Some(src)) => {
                        add("compile_error", Expect::CompileError, json!({"language": lang, "source": src}))
                    }
                    (None, None) => {
                        problems.push(format!("{lang}: compiles, but has no tests/compile_error.*"))
                    }
                }
            }
        }
        eng.submit_all(&specs).await?;
        let exec_names: Vec<String> = cases.iter().map(|c| c.0.clone()).collect();
        let done = eng.wait_all(&exec_names, CATALOG_WAIT).await?;
        let mut passed = 0;
        for (name, lang, expect) in &cases {
            let e = done.get(name).with_context(|| format!("{name} vanished"))?;
            match check(*expect, e) {
                Ok(()) => passed += 1,
                Err(why) => problems.push(format!("{lang} {expect:?} ({name}): {why}")),
            }
        }
        eprintln!("{passed} of {} cases passed across {} Runtimes", cases.len(), runtimes.len());
        for (name, _, _) in &cases {
            if let Some(st) = done.get(name).and_then(|e| e.status.as_ref()) {
                eprintln!("  {name}: {:?} {} ms wall", st.verdict, st.wall_time_ms.unwrap_or(0));
            }
        }
        ensure!(problems.is_empty(), "{} problem(s):\n- {}", problems.len(), problems.join("\n- "));
        Ok(())
    })
}

#[tokio::test]
async fn submission_features_files_args_expected_output_and_limits() -> Result<()> {
    with_engine!("rt-features", |eng| {
        let specs: Vec<(String, serde_json::Value)> = vec![
            (
                "py-files".into(),
                json!({"language": "python", "files": [
                    {"name": "main.py", "content": "from helper import greet\nfrom pkg.sub import VALUE\nprint(greet('files'), VALUE)\n"},
                    {"name": "helper.py", "content": "def greet(x):\n    return 'hello, ' + x\n"},
                    {"name": "pkg/__init__.py", "content": ""},
                    {"name": "pkg/sub.py", "content": "VALUE = 42\n"},
                ]}),
            ),
            (
                "c-header".into(),
                json!({"language": "c", "files": [
                    {"name": "main.c", "content": "#include <stdio.h>\n#include \"util.h\"\nint main(void) { printf(\"%d %s\\n\", twice(21), NAME); return 0; }\n"},
                    {"name": "util.h", "content": "#define NAME \"from header\"\nstatic inline int twice(int x) { return 2 * x; }\n"},
                ]}),
            ),
            (
                "c-base64".into(),
                json!({"language": "c", "files": [
                    // int puts(const char *); int main(void){puts("b64");return 0;}
                    {"name": "main.c", "encoding": "base64", "content": "aW50IHB1dHMoY29uc3QgY2hhciAqKTsgaW50IG1haW4odm9pZCl7cHV0cygiYjY0Iik7cmV0dXJuIDA7fQo="},
                ]}),
            ),
            (
                "py-args".into(),
                json!({"language": "python", "source": "import sys\nprint(sys.argv[1:])\n", "args": ["one", "two words", "--flag=x", "ü"]}),
            ),
            (
                "bash-args".into(),
                json!({"language": "bash", "source": "echo \"$#:$1|$2\"", "args": ["a b", "c"]}),
            ),
            (
                "expected-ok".into(),
                json!({"language": "python", "source": "print('1 2   ')\nprint('3\\t')\nprint()\n", "expectedOutput": "1 2\n3\n"}),
            ),
            (
                "expected-wrong".into(),
                json!({"language": "python", "source": "print('1 2')\nprint('3')\n", "expectedOutput": "1 2\n4\n"}),
            ),
            (
                "expected-space-inside".into(),
                json!({"language": "python", "source": "print('1  2')\n", "expectedOutput": "1 2"}),
            ),
            (
                "java-more-memory".into(),
                json!({"language": "java", "source": "public class Main { public static void main(String[] a) { System.out.println(Runtime.getRuntime().maxMemory() / (1024 * 1024)); } }", "limits": {"memoryMiB": 768}}),
            ),
            (
                "java-too-much-memory".into(),
                json!({"language": "java", "source": "public class Main { public static void main(String[] a) {} }", "limits": {"memoryMiB": 4096}}),
            ),
            (
                "py-too-long".into(),
                json!({"language": "python", "source": "print(1)", "limits": {"wallTimeMs": 3_600_000}}),
            ),
            ("unknown-language".into(), json!({"language": "no-such-language", "source": "x"})),
            (
                "path-traversal".into(),
                json!({"language": "python", "files": [{"name": "../evil.py", "content": "print(1)"}]}),
            ),
        ];
        eng.submit_all(&specs).await?;
        let names: Vec<String> = specs.iter().map(|s| s.0.clone()).collect();
        let done = eng.wait_all(&names, WAIT).await?;
        let get = |n: &str| done.get(n).with_context(|| format!("{n} vanished"));
        let mut problems: Vec<String> = Vec::new();
        let mut expect = |name: &str, ok: bool, what: &str, e: &Execution| {
            if !ok {
                problems.push(format!("{name}: {what}; status: {}", describe(e)));
            }
        };
        let accepted_with =
            |e: &Execution, out: &str| verdict(e) == Some(Verdict::Accepted) && stdout(e).trim_end() == out;

        let e = get("py-files")?;
        expect("py-files", accepted_with(e, "hello, files 42"), "Accepted, `hello, files 42`", e);
        let e = get("c-header")?;
        expect("c-header", accepted_with(e, "42 from header"), "Accepted, `42 from header`", e);
        let e = get("c-base64")?;
        expect("c-base64", accepted_with(e, "b64"), "Accepted, `b64`", e);
        let e = get("py-args")?;
        expect(
            "py-args",
            accepted_with(e, "['one', 'two words', '--flag=x', 'ü']"),
            "argv passed as given",
            e,
        );
        let e = get("bash-args")?;
        expect("bash-args", accepted_with(e, "2:a b|c"), "argv passed as given", e);
        let e = get("expected-ok")?;
        expect(
            "expected-ok",
            verdict(e) == Some(Verdict::Accepted),
            "Accepted (trailing white space ignored)",
            e,
        );
        let e = get("expected-wrong")?;
        expect("expected-wrong", verdict(e) == Some(Verdict::WrongAnswer), "WrongAnswer", e);
        let e = get("expected-space-inside")?;
        expect(
            "expected-space-inside",
            verdict(e) == Some(Verdict::WrongAnswer),
            "WrongAnswer (inner space counts)",
            e,
        );

        let e = get("java-more-memory")?;
        let heap: u64 = stdout(e).trim().parse().unwrap_or(0);
        // MaxRAMPercentage=75 of the container's 768 MiB: well above what 512 MiB would give.
        expect(
            "java-more-memory",
            verdict(e) == Some(Verdict::Accepted) && heap > 450,
            "Accepted with a max heap > 450 MiB (75% of 768)",
            e,
        );

        for (name, field) in [
            ("java-too-much-memory", "memoryMiB"),
            ("py-too-long", "wallTimeMs"),
            ("unknown-language", "no-such-language"),
            ("path-traversal", "../evil.py"),
        ] {
            let e = get(name)?;
            expect(
                name,
                phase(e) == Some(Phase::Failed)
                    && message(e).contains(field)
                    && e.status.as_ref().and_then(|s| s.pod_name.as_ref()).is_none(),
                &format!("phase Failed, no sandbox Pod, a message naming {field:?}"),
                e,
            );
        }
        ensure!(problems.is_empty(), "{} problem(s):\n- {}", problems.len(), problems.join("\n- "));
        Ok(())
    })
}

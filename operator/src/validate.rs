//! Validation of an Execution against its Runtime and the operator's configuration, and
//! the plan for its sandbox (pure: no cluster access).

use std::borrow::Borrow;

use rce_api::protocol::{Encoding, File, RunRequest, TestRun};
use rce_api::{files, options, runtime::lookup, ExecutionSpec, Limits, ResolvedLimits, Runtime, MAX_RUNS};

use crate::config::SandboxSettings;

/// Everything the Pod builder needs, decided from the Execution, its Runtime and the
/// configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Name of the Runtime object used.
    pub runtime: String,
    pub image: String,
    pub runtime_class_name: Option<String>,
    pub cpu_limit: String,
    pub limits: ResolvedLimits,
    /// Limits of the compile step, when the Runtime compiles.
    pub compile_limits: Option<ResolvedLimits>,
    pub request: RunRequest,
    /// The request as JSON, as placed in the Pod annotation.
    pub request_json: String,
    /// Some test case takes its data from a ConfigMap (`stdinFrom`, `expectedOutputFrom`):
    /// `request` lacks it; the run's request is planned again once it is read (see
    /// `Context::request_for` in the controller), so that a queued Execution reads nothing.
    pub test_data: bool,
}

/// Why an Execution cannot run, in words for its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Runtime an Execution's `language` names (see [`lookup::find`]).
pub fn find_runtime<'a, R: Borrow<Runtime>>(runtimes: &'a [R], language: &str) -> Option<&'a R> {
    lookup::find(runtimes, language)
}

/// The message for an unknown language, listing the known ones.
pub fn unknown_language<R: Borrow<Runtime>>(language: &str, runtimes: &[R]) -> Invalid {
    Invalid(lookup::unknown_language(language, runtimes))
}

impl From<files::FileError> for Invalid {
    fn from(e: files::FileError) -> Self {
        Invalid(e.0)
    }
}

/// Validate `spec` against `runtime` and decide the sandbox's plan.
pub fn plan(spec: &ExecutionSpec, runtime: &Runtime, settings: &SandboxSettings) -> Result<Plan, Invalid> {
    let rt = &runtime.spec;
    let files = match (&spec.source, &spec.files) {
        (Some(_), Some(_)) => return Err(Invalid("give either spec.source or spec.files, not both".into())),
        (None, None) => return Err(Invalid("give either spec.source or spec.files".into())),
        (Some(src), None) => {
            vec![File { name: rt.source_file.clone(), content: src.clone(), encoding: Encoding::Utf8 }]
        }
        (None, Some(given)) => {
            files::check_files(given)?;
            given.clone()
        }
    };
    // The Runtime's sourceFile too.
    files::check_file_name(&files[0].name)?;

    let limits = Limits::resolve(spec.limits.as_ref(), &rt.default_limits, &rt.max_limits, &settings.cap())
        .map_err(|e| Invalid(e.to_string()))?;
    let compile_limits = rt.compile.as_ref().map(|_| {
        ResolvedLimits::for_compile(&rt.compile_limits.unwrap_or_default(), &limits, &settings.cap())
    });
    if rt.run.is_empty() {
        return Err(Invalid(format!(
            "Runtime {:?} has an empty run command",
            runtime.metadata.name.as_deref().unwrap_or_default()
        )));
    }

    let case_limits = rce_api::check_tests(spec, rt, &settings.cap(), &settings.tests).map_err(Invalid)?;
    let checker = spec.checker.clone();
    if let Some(c) = &checker {
        c.epsilon().map_err(Invalid)?;
    }
    let mut tests = Vec::with_capacity(case_limits.len());
    let mut test_data = false;
    for (i, (t, l)) in spec.tests.iter().flatten().zip(&case_limits).enumerate() {
        test_data |= t.stdin_from.is_some() || t.expected_output_from.is_some();
        tests.push(TestRun {
            name: rce_api::test_name(i, t),
            stdin: t.stdin.clone().unwrap_or_default(),
            expected: t.expected_output.clone(),
            args: t.args.clone(),
            limits: Some(l.stage()),
        });
    }
    // The sandbox is sized for the most any case may use.
    let limits = case_limits.iter().fold(limits, |m, l| ResolvedLimits::from_fn(|f| m.get(f).max(l.get(f))));

    let runs = spec.runs.unwrap_or(1);
    if !(1..=MAX_RUNS).contains(&runs) {
        return Err(Invalid(format!("spec.runs = {runs} is not allowed: give 1 to {MAX_RUNS} runs")));
    }
    options::check(
        &rt.compiler_options,
        options::takes_options(rt.compile.as_deref()),
        &spec.compiler_options,
    )
    .map_err(|e| Invalid(e.to_string()))?;
    // `{options}` becomes the submission's options, or nothing.
    let compile = rt.compile.as_deref().map(|c| options::expand(c, &spec.compiler_options));

    let request = RunRequest {
        run_id: String::new(),
        stdin_sealed: None,
        files,
        stdin: spec.stdin.clone().unwrap_or_default(),
        args: spec.args.clone(),
        compile,
        run: rt.run.clone(),
        env: rt.env.iter().map(|e| (e.name.clone(), e.value.clone())).collect(),
        limits: limits.stage(),
        compile_limits: compile_limits.as_ref().map(ResolvedLimits::stage),
        redirect_stderr_to_stdout: spec.redirect_stderr_to_stdout,
        runs,
        interactive: spec.interactive,
        tests,
        stop_on_first_failure: spec.stop_on_first_failure,
        checker,
    };
    let request_json =
        serde_json::to_string(&request).map_err(|e| Invalid(format!("cannot encode the submission: {e}")))?;
    if !request.tests.is_empty() {
        // Test cases go to a serving runner over its stdin, not in the Pod's annotation.
        if request_json.len() + 4096 > rce_api::serve::MAX_INPUT_LINE {
            return Err(Invalid(format!(
                "the submission with its test cases is {} bytes encoded; at most {} bytes are accepted",
                request_json.len(),
                rce_api::serve::MAX_INPUT_LINE - 4096
            )));
        }
    } else {
        // What goes into the Pod's annotation: the stdin sealed (base64, larger), a run id.
        let mut sent = request.clone();
        sent.run_id = format!("{}/{}", "0".repeat(36), u32::MAX);
        if !sent.stdin.is_empty() {
            sent.stdin_sealed = Some(rce_api::protocol::SealedText::seal(
                &[0; 32],
                &[0; 16],
                &std::mem::take(&mut sent.stdin),
            ));
        }
        let sent_len = serde_json::to_string(&sent).map_or(usize::MAX, |j| j.len());
        if sent_len.max(request_json.len()) > settings.max_request_bytes {
            return Err(Invalid(format!(
                "the submission (source files, stdin and args) is {} bytes encoded; at most {} bytes are accepted",
                sent_len.max(request_json.len()),
                settings.max_request_bytes
            )));
        }
    }
    Ok(Plan {
        runtime: runtime.metadata.name.clone().unwrap_or_default(),
        image: rt.image.clone(),
        runtime_class_name: rt.runtime_class_name.clone().or_else(|| settings.runtime_class_name.clone()),
        cpu_limit: rt.cpu_limit.clone().unwrap_or_else(|| settings.cpu_limit.clone()),
        limits,
        compile_limits,
        request,
        request_json,
        test_data,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rce_api::Execution;

    pub fn runtime(yaml: &str) -> Runtime {
        serde_yaml::from_str(yaml).expect("runtime yaml")
    }

    pub fn execution(yaml: &str) -> Execution {
        serde_yaml::from_str(yaml).expect("execution yaml")
    }

    pub const PYTHON: &str = r#"
apiVersion: rce.dev/v1alpha1
kind: Runtime
metadata: {name: python}
spec:
  displayName: Python
  version: "3.11.2"
  aliases: [py, python3]
  image: rce.dev/sandbox-python:abc
  sourceFile: main.py
  run: [python3, "{file}"]
  defaultLimits: {memoryMiB: 128, wallTimeMs: 5000}
  maxLimits: {memoryMiB: 512, wallTimeMs: 10000}
"#;

    pub const GCC: &str = r#"
apiVersion: rce.dev/v1alpha1
kind: Runtime
metadata: {name: c}
spec:
  version: "12"
  image: rce.dev/sandbox-c:abc
  sourceFile: main.c
  compile: [gcc, -O2, -o, main, "{file}"]
  compileLimits: {wallTimeMs: 15000, memoryMiB: 384}
  run: [./main]
  cpuLimit: "2"
  runtimeClassName: gvisor
"#;

    fn spec(yaml: &str) -> ExecutionSpec {
        serde_yaml::from_str(yaml).expect("spec yaml")
    }

    #[test]
    fn source_goes_to_the_runtime_file_with_resolved_limits() {
        let p = plan(
            &spec("{language: py, source: print(1), stdin: x, args: [a]}"),
            &runtime(PYTHON),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(p.runtime, "python");
        assert_eq!(
            p.request.files,
            vec![File { name: "main.py".into(), content: "print(1)".into(), encoding: Encoding::Utf8 }]
        );
        assert_eq!(p.request.stdin, "x");
        assert_eq!(p.request.args, ["a"]);
        assert_eq!(p.request.run, ["python3", "{file}"]);
        assert_eq!(p.limits.memory_mib, 128);
        assert_eq!(p.request.limits.memory_kib, 128 * 1024);
        assert_eq!(p.cpu_limit, "1");
        assert_eq!(p.runtime_class_name, None);
        assert!(p.compile_limits.is_none() && p.request.compile.is_none());
        let back: RunRequest = serde_json::from_str(&p.request_json).unwrap();
        assert_eq!(back, p.request);
    }

    #[test]
    fn compile_limits_fall_back_to_run_limits_and_runtime_settings_win() {
        let p =
            plan(&spec("{language: c, source: 'int main(){}'}"), &runtime(GCC), &Default::default()).unwrap();
        let c = p.compile_limits.unwrap();
        assert_eq!(c.wall_time_ms, 15_000);
        assert_eq!(c.memory_mib, 384);
        assert_eq!(c.cpu_time_ms, p.limits.cpu_time_ms);
        assert_eq!(p.request.compile_limits.unwrap().memory_kib, 384 * 1024);
        assert_eq!(p.cpu_limit, "2");
        assert_eq!(p.runtime_class_name.as_deref(), Some("gvisor"));
    }

    #[test]
    fn limits_above_the_maximum_are_refused_with_the_precise_message() {
        let e = plan(
            &spec("{language: python, source: x, limits: {memoryMiB: 600}}"),
            &runtime(PYTHON),
            &Default::default(),
        )
        .unwrap_err();
        assert_eq!(e.0, "limits.memoryMiB = 600 exceeds the maximum of 512");
        let mut settings = SandboxSettings::default();
        settings.caps.cap_wall_time_ms = 2000;
        let e = plan(
            &spec("{language: python, source: x, limits: {wallTimeMs: 3000}}"),
            &runtime(PYTHON),
            &settings,
        )
        .unwrap_err();
        assert_eq!(e.0, "limits.wallTimeMs = 3000 exceeds the maximum of 2000");
    }

    #[test]
    fn exactly_one_of_source_and_files() {
        let rt = runtime(PYTHON);
        let s = Default::default();
        assert!(plan(&spec("{language: python}"), &rt, &s).unwrap_err().0.contains("either"));
        let both = "{language: python, source: x, files: [{name: a.py, content: x}]}";
        assert!(plan(&spec(both), &rt, &s).unwrap_err().0.contains("not both"));
        assert!(plan(&spec("{language: python, files: []}"), &rt, &s).unwrap_err().0.contains("empty"));
    }

    #[test]
    fn file_names_must_stay_inside_the_work_dir() {
        let rt = runtime(PYTHON);
        let s = Default::default();
        for bad in ["../x.py", "/etc/passwd", "a/../../b", "a//b", "./a", "", "a\\b", "a/"] {
            let y = format!("{{language: python, files: [{{name: {bad:?}, content: x}}]}}");
            let e = plan(&spec(&y), &rt, &s).unwrap_err();
            assert!(e.0.contains("is not allowed"), "{bad}: {e}");
        }
        let ok = "{language: python, files: [{name: main.py, content: 'import lib.util'}, {name: lib/util.py, content: ''}]}";
        let p = plan(&spec(ok), &rt, &s).unwrap();
        assert_eq!(p.request.files.len(), 2);
        assert_eq!(p.request.files[0].name, "main.py");
        let dup = "{language: python, files: [{name: a.py, content: ''}, {name: a.py, content: ''}]}";
        assert!(plan(&spec(dup), &rt, &s).unwrap_err().0.contains("twice"));
    }

    #[test]
    fn base64_files_are_checked_and_big_submissions_refused() {
        let rt = runtime(PYTHON);
        let s = SandboxSettings::default();
        let bad = "{language: python, files: [{name: a.bin, content: '%%%', encoding: base64}]}";
        assert!(plan(&spec(bad), &rt, &s).unwrap_err().0.contains("not valid base64"));
        let good = "{language: python, files: [{name: a.py, content: 'cHJpbnQoMSk=', encoding: base64}]}";
        assert_eq!(plan(&spec(good), &rt, &s).unwrap().request.files[0].encoding, Encoding::Base64);
        let mut big = spec("{language: python}");
        big.source = Some("x".repeat(s.max_request_bytes + 1));
        let e = plan(&big, &rt, &s).unwrap_err();
        assert!(e.0.contains("at most 204800 bytes are accepted"), "{e}");
        // The stdin is sealed (base64) in the Pod: counted as it will be sent.
        let mut input = spec("{language: python, source: 'print(1)'}");
        input.stdin = Some("x".repeat(s.max_request_bytes * 4 / 5));
        assert!(plan(&input, &rt, &s).is_err(), "4/5 of the limit grows past it once sealed");
    }

    pub const GCC_OPTIONS: &str = r#"
apiVersion: rce.dev/v1alpha1
kind: Runtime
metadata: {name: c}
spec:
  version: "12"
  image: rce.dev/sandbox-c:abc
  sourceFile: main.c
  compile: [gcc, "{options}", -o, main, "{file}"]
  compilerOptions: ["-O*", "-D*", "-Wall"]
  run: [./main]
"#;

    #[test]
    fn redirect_runs_and_compiler_options_reach_the_request() {
        let s = SandboxSettings::default();
        let rt = runtime(GCC_OPTIONS);
        let p = plan(
            &spec("{language: c, source: x, redirectStderrToStdout: true, runs: 3, compilerOptions: [-O2, -DX=5]}"),
            &rt,
            &s,
        )
        .unwrap();
        assert!(p.request.redirect_stderr_to_stdout);
        assert_eq!(p.request.runs, 3);
        assert_eq!(p.request.compile.as_deref().unwrap(), ["gcc", "-O2", "-DX=5", "-o", "main", "{file}"]);
        let back: RunRequest = serde_json::from_str(&p.request_json).unwrap();
        assert_eq!(back, p.request);
        // No options: the placeholder goes; defaults: one run, separate streams.
        let p = plan(&spec("{language: c, source: x}"), &rt, &s).unwrap();
        assert_eq!(p.request.compile.as_deref().unwrap(), ["gcc", "-o", "main", "{file}"]);
        assert_eq!((p.request.runs, p.request.redirect_stderr_to_stdout), (1, false));
        // The stack limit flows with the others.
        let p = plan(&spec("{language: c, source: x, limits: {stackKiB: 1024}}"), &rt, &s).unwrap();
        assert_eq!(p.request.limits.stack_kib, 1024);
        let p = plan(&spec("{language: c, source: x}"), &rt, &s).unwrap();
        assert_eq!(p.request.limits.stack_kib, 64_000);
    }

    #[test]
    fn bad_runs_and_options_are_invalid_with_the_message() {
        let s = SandboxSettings::default();
        let rt = runtime(GCC_OPTIONS);
        for runs in [0, MAX_RUNS + 1] {
            let e = plan(&spec(&format!("{{language: c, source: x, runs: {runs}}}")), &rt, &s).unwrap_err();
            assert_eq!(e.0, format!("spec.runs = {runs} is not allowed: give 1 to 20 runs"));
        }
        assert!(plan(&spec("{language: c, source: x, runs: 20}"), &rt, &s).is_ok());
        let e = plan(&spec("{language: c, source: x, compilerOptions: [-fplugin=/tmp/x.so]}"), &rt, &s)
            .unwrap_err();
        assert_eq!(
            e.0,
            "compiler option \"-fplugin=/tmp/x.so\" is not allowed; this language accepts: -O* -D* -Wall"
        );
        // A compile command without the placeholder, or none at all, takes no options.
        let e =
            plan(&spec("{language: c, source: x, compilerOptions: [-O2]}"), &runtime(GCC), &s).unwrap_err();
        assert!(e.0.contains("no compile step"), "{e}");
        let e = plan(&spec("{language: python, source: x, compilerOptions: [-O2]}"), &runtime(PYTHON), &s)
            .unwrap_err();
        assert!(e.0.contains("no compile step"), "{e}");
    }

    #[test]
    fn runtimes_are_found_by_name_then_alias_and_unknown_lists_known() {
        let rts = vec![runtime(PYTHON), runtime(GCC)];
        assert_eq!(find_runtime(&rts, "PY").and_then(|r| r.metadata.name.clone()).as_deref(), Some("python"));
        assert_eq!(find_runtime(&rts, "c").and_then(|r| r.metadata.name.clone()).as_deref(), Some("c"));
        assert!(find_runtime(&rts, "cobol").is_none());
        assert_eq!(
            unknown_language("cobol", &rts).0,
            "unknown language \"cobol\"; known languages: c, python"
        );
        let none: Vec<Runtime> = vec![];
        assert!(unknown_language("x", &none).0.contains("no Runtime is installed"));
        let e: Execution = execution(
            "{apiVersion: rce.dev/v1alpha1, kind: Execution, metadata: {name: e}, spec: {language: py}}",
        );
        assert_eq!(e.spec.language, "py");
    }
}

"""Judge0 CE 1.13.1, attribute by attribute, with plain `requests` against rce's shim.

The table is built from upstream's documentation and source (judge0/judge0 v1.13.1):
docs/api/submissions/submissions.md (the 33 attributes), create_a_submission.md and
get_a_submission.md (wait, base64_encoded, fields, the 422 and 400 bodies),
app/models/submission.rb (defaults and validations, whose Rails messages are quoted
here), app/helpers/config.rb (/config_info), app/jobs/isolate_job.rb (what a run reports:
status, exit_code, exit_signal, isolate's message, number_of_runs, the callback PUT),
app/enumerations/status.rb (the status of a signal: 11 → 7, 25 → 8, 8 → 9, 6 → 10, any other
→ 12) and app/serializers/submission_serializer.rb (default fields, base64 of `message`).

For each documented request attribute there is a submission that shows its effect, or the
422 upstream gives when the configuration refuses it (limits are read from /config_info: rce
may choose other limits than upstream's defaults, but not other semantics). Each status id
3-12 is produced by a real program. Nothing here is mocked: every request reaches the shim
and, through it, a sandbox on the cluster."""

import base64
import http.server
import io
import json
import re
import threading
import time
import uuid
import zipfile
from typing import ClassVar

import pytest
import requests

from conftest import API, BASH, C, MULTI_FILE, PYTHON, poll

S = requests.Session()
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
DECIMAL = re.compile(r"^\d+\.\d+$")
DEFAULT_FIELDS = {"token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status"}
# Every attribute of a submission (SubmissionSerializer: the columns, status and language).
ALL_FIELDS = {
    "source_code", "language_id", "stdin", "expected_output", "stdout", "status_id", "created_at",
    "finished_at", "time", "memory", "stderr", "token", "number_of_runs", "cpu_time_limit",
    "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit", "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit",
    "max_file_size", "compile_output", "exit_code", "exit_signal", "message", "wall_time",
    "compiler_options", "command_line_arguments", "redirect_stderr_to_stdout", "callback_url",
    "additional_files", "enable_network", "status", "language",
}  # fmt: skip
STATUS = {
    1: "In Queue", 2: "Processing", 3: "Accepted", 4: "Wrong Answer", 5: "Time Limit Exceeded",
    6: "Compilation Error", 7: "Runtime Error (SIGSEGV)", 8: "Runtime Error (SIGXFSZ)",
    9: "Runtime Error (SIGFPE)", 10: "Runtime Error (SIGABRT)", 11: "Runtime Error (NZEC)",
    12: "Runtime Error (Other)", 13: "Internal Error", 14: "Exec Format Error",
}  # fmt: skip


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def unb64(text):
    return None if text is None else base64.b64decode(text)


def zip_of(files: dict) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return b64(buf.getvalue())


def post(body, wait=True, b64mode=False, fields="*", path="/submissions"):
    params = {"wait": str(wait).lower()}
    if b64mode:
        params["base64_encoded"] = "true"
    if fields:
        params["fields"] = fields
    r = S.post(API + path, params=params, json=body, timeout=120)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


def run(body, **kw):
    """A submission that upstream accepts: the finished document (fields=*)."""
    code, doc = post(body, **kw)
    assert code == 201, f"POST /submissions answered {code}: {doc}"
    assert doc["status"]["id"] not in (1, 2), doc
    return doc


def refused(body):
    """A submission upstream refuses: the 422 body."""
    code, doc = post(body)
    assert code == 422, f"expected 422, got {code}: {doc}"
    return doc


@pytest.fixture(scope="module")
def cfg():
    r = S.get(API + "/config_info", timeout=10)
    assert r.status_code == 200
    return r.json()


def over(cfg, key):
    """A value just above the configured maximum, and upstream's words for refusing it."""
    maximum = cfg[key]
    value = maximum + 1 if isinstance(maximum, int) else maximum + 0.5
    return value, f"must be less than or equal to {maximum}"  # Ruby prints 20.0 and 512000 alike


# ---------------------------------------------------------------------------- configuration


def test_config_info_has_upstreams_keys_and_defaults(cfg):
    assert set(cfg) == {
        "maintenance_mode", "enable_wait_result", "enable_compiler_options",
        "allowed_languages_for_compile_options", "enable_command_line_arguments",
        "enable_submission_delete", "enable_callbacks", "callbacks_max_tries", "callbacks_timeout",
        "enable_additional_files", "max_queue_size", "cpu_time_limit", "max_cpu_time_limit",
        "cpu_extra_time", "max_cpu_extra_time", "wall_time_limit", "max_wall_time_limit",
        "memory_limit", "max_memory_limit", "stack_limit", "max_stack_limit",
        "max_processes_and_or_threads", "max_max_processes_and_or_threads",
        "enable_per_process_and_thread_time_limit", "allow_enable_per_process_and_thread_time_limit",
        "enable_per_process_and_thread_memory_limit", "allow_enable_per_process_and_thread_memory_limit",
        "max_file_size", "max_max_file_size", "number_of_runs", "max_number_of_runs",
        "redirect_stderr_to_stdout", "max_extract_size", "enable_batched_submissions",
        "max_submission_batch_size", "submission_cache_duration", "use_docs_as_homepage",
        "allow_enable_network", "enable_network",
    }  # fmt: skip
    # Upstream honours these by default (the issue: none may be accepted and ignored).
    for key in ("enable_wait_result", "enable_compiler_options", "enable_command_line_arguments",
                "enable_additional_files", "enable_callbacks", "enable_batched_submissions"):  # fmt: skip
        assert cfg[key] is True, f"{key} is {cfg[key]}"
    assert (cfg["callbacks_max_tries"], cfg["callbacks_timeout"]) == (3, 5.0)
    # Upstream's defaults that rce adopts (config.rb): stack 64000 KB, output 1024 KB of at
    # most 4096 KB, 1 run of at most 20, batches of 20.
    assert (cfg["stack_limit"], cfg["max_file_size"], cfg["max_max_file_size"]) == (64000, 1024, 4096)
    assert (cfg["number_of_runs"], cfg["max_number_of_runs"]) == (1, 20)
    assert cfg["max_submission_batch_size"] == 20
    assert cfg["redirect_stderr_to_stdout"] is False and cfg["enable_network"] is False
    for k in ("cpu_time_limit", "max_cpu_time_limit", "cpu_extra_time", "max_cpu_extra_time",
              "wall_time_limit", "max_wall_time_limit", "callbacks_timeout", "submission_cache_duration"):  # fmt: skip
        assert isinstance(cfg[k], float), (k, cfg[k])
    for k in ("memory_limit", "max_memory_limit", "stack_limit", "max_stack_limit", "max_file_size",
              "max_processes_and_or_threads", "max_max_processes_and_or_threads", "max_extract_size"):  # fmt: skip
        assert isinstance(cfg[k], int) and not isinstance(cfg[k], bool), (k, cfg[k])
        assert cfg[k] > 0, (k, cfg[k])
    assert cfg["memory_limit"] <= cfg["max_memory_limit"] and cfg["stack_limit"] <= cfg["max_stack_limit"]


def test_defaults_of_a_submission_are_config_info(cfg):
    doc = run({"source_code": "print('x')", "language_id": PYTHON})
    assert set(doc) == ALL_FIELDS
    for key in (
        "number_of_runs",
        "memory_limit",
        "stack_limit",
        "max_processes_and_or_threads",
        "max_file_size",
    ):
        assert doc[key] == cfg[key], key
    for key in ("cpu_time_limit", "cpu_extra_time", "wall_time_limit"):
        assert DECIMAL.match(doc[key]), (key, doc[key])  # a decimal column: text
        assert float(doc[key]) == cfg[key], key
    for key in ("enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit",
                "redirect_stderr_to_stdout", "enable_network"):  # fmt: skip
        assert doc[key] is cfg[key], key
    for key in ("stdin", "expected_output", "compiler_options", "command_line_arguments", "callback_url",
                "additional_files", "stderr", "compile_output", "message", "exit_signal"):  # fmt: skip
        assert doc[key] is None, (key, doc[key])
    assert doc["source_code"] == "print('x')" and doc["language_id"] == PYTHON
    assert doc["language"]["id"] == PYTHON and doc["language"]["name"].startswith("Python (")
    assert doc["status"] == {"id": 3, "description": "Accepted"} and doc["status_id"] == 3
    assert doc["stdout"] == "x\n" and doc["exit_code"] == 0
    uuid.UUID(doc["token"])
    assert TIME.match(doc["created_at"]) and TIME.match(doc["finished_at"]), (
        doc["created_at"],
        doc["finished_at"],
    )
    assert doc["finished_at"] >= doc["created_at"]
    assert DECIMAL.match(doc["time"]) and DECIMAL.match(doc["wall_time"]), (doc["time"], doc["wall_time"])
    assert isinstance(doc["memory"], int) and doc["memory"] > 0


# ---------------------------------------------------------------------------- the table
#
# One row per documented request attribute (1-20): (attribute, id, body, check). The check
# receives the /config_info document and the finished submission, or the 422 body when the
# row expects a refusal (body given as `refuse=`).

STACK_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
/* About 1 KiB of stack per frame. */
static int depth(int n) {
    volatile char pad[1000];
    memset((char *)pad, n & 0x7f, sizeof pad);
    return n == 0 ? pad[7] : depth(n - 1) + (pad[3] & 1);
}
int main(void) { int n; scanf("%d", &n); printf("%d\n", depth(n) >= 0); return 0; }
"""

ROWS = []


def row(attr, name, body, check=None, refuse=None, **post_kw):
    ROWS.append(pytest.param(attr, body, check, refuse, post_kw, id=f"{attr}-{name}"))


def py(src, **extra):
    return {"source_code": src, "language_id": PYTHON, **extra}


def c(src, **extra):
    return {"source_code": src, "language_id": C, **extra}


# 1 source_code
row("source_code", "runs", py("print(6 * 7)"), lambda cfg, d: d["stdout"] == "42\n")
row("source_code", "required", {"language_id": PYTHON}, refuse={"source_code": ["can't be blank"]})
# 2 language_id
row("language_id", "required", {"source_code": "x"}, refuse={"language_id": ["can't be blank"]})
row("language_id", "unknown", {"source_code": "x", "language_id": 150000},
    refuse={"language_id": ["language with id 150000 doesn't exist"]})  # fmt: skip
row("language_id", "as-string", {"source_code": "echo $((6*7))", "language_id": str(BASH)},
    lambda cfg, d: d["stdout"] == "42\n" and d["language_id"] == BASH)  # fmt: skip
# 3 compiler_options
row("compiler_options", "define", c('#include <stdio.h>\nint main(void){printf("%d\\n", X);}', compiler_options="-DX=5"),
    lambda cfg, d: d["stdout"] == "5\n" and d["compiler_options"] == "-DX=5")  # fmt: skip
row("compiler_options", "optimisation", c('#include <stdio.h>\nint main(void){printf("%d\\n", __OPTIMIZE__);}',
    compiler_options="-O2"), lambda cfg, d: d["stdout"] == "1\n")  # fmt: skip
row("compiler_options", "interpreted", py("print(1)", compiler_options="-O2"),
    refuse={"compiler_options": ["setting compiler options is only allowed for compiled languages"]})  # fmt: skip
row("compiler_options", "too-long", c("int main(void){}", compiler_options="-O2 " * 130),
    refuse={"compiler_options": ["is too long (maximum is 512 characters)"]})  # fmt: skip
# 4 command_line_arguments (the run script is "<run_cmd> <arguments>", run by bash)
row("command_line_arguments", "argv", py("import sys\nprint(sys.argv[1:])", command_line_arguments="a b 'c d'"),
    lambda cfg, d: d["stdout"] == "['a', 'b', 'c d']\n")  # fmt: skip
row("command_line_arguments", "too-long", py("print(1)", command_line_arguments="a " * 300),
    refuse={"command_line_arguments": ["is too long (maximum is 512 characters)"]})  # fmt: skip
# 5 stdin
row("stdin", "echo", py("import sys\nprint(repr(sys.stdin.read()))", stdin="line 1\nline 2"),
    lambda cfg, d: d["stdout"] == "'line 1\\nline 2'\n" and d["stdin"] == "line 1\nline 2")  # fmt: skip
row("stdin", "none", py("import sys\nprint(repr(sys.stdin.read()))"), lambda cfg, d: d["stdout"] == "''\n")
# 6 expected_output (compared after stripping trailing white space per line and at the end)
row("expected_output", "match", py("print('a  ')\nprint('b')\nprint()", expected_output="a\nb"),
    lambda cfg, d: d["status"]["id"] == 3)  # fmt: skip
row("expected_output", "mismatch", py("print('a')", expected_output="b"),
    lambda cfg, d: d["status"] == {"id": 4, "description": "Wrong Answer"} and d["stdout"] == "a\n")  # fmt: skip
# 7 cpu_time_limit
row("cpu_time_limit", "exceeded", py("while True: pass", cpu_time_limit=1),
    lambda cfg, d: d["status"]["id"] == 5 and d["message"] == "Time limit exceeded" and float(d["time"]) >= 1
    and d["cpu_time_limit"] == "1.0")  # fmt: skip
row("cpu_time_limit", "enough", py("s = 0\nfor i in range(3 * 10**6): s += i\nprint(s > 0)", cpu_time_limit=5),
    lambda cfg, d: d["status"]["id"] == 3 and d["stdout"] == "True\n")  # fmt: skip
row("cpu_time_limit", "negative", py("x", cpu_time_limit=-1),
    refuse={"cpu_time_limit": ["must be greater than or equal to 0"]})  # fmt: skip
row(
    "cpu_time_limit",
    "not-a-number",
    py("x", cpu_time_limit="abc"),
    refuse={"cpu_time_limit": ["is not a number"]},
)
# 9 wall_time_limit
row("wall_time_limit", "exceeded", py("import time\ntime.sleep(5)\nprint('woke')", wall_time_limit=1),
    lambda cfg, d: d["status"]["id"] == 5 and d["message"] == "Time limit exceeded (wall clock)"
    and d["stdout"] is None and 1 <= float(d["wall_time"]) < 5)  # fmt: skip
row("wall_time_limit", "below-1", py("x", wall_time_limit=0.5),
    refuse={"wall_time_limit": ["must be greater than or equal to 1"]})  # fmt: skip
# 10 memory_limit (KB; the cgroup's OOM kill is a SIGKILL: status 12, signal 9)
MEMORY_HOG = c(
    "#include <stdio.h>\n#include <stdlib.h>\n"
    "int main(void){ size_t n = 200u << 20; volatile char *p = malloc(n); if (!p) return 3;"
    " for (size_t i = 0; i < n; i += 4096) p[i] = 1; printf(\"%d\\n\", p[n / 2]); return 0; }"
)
row("memory_limit", "exceeded", {**MEMORY_HOG, "memory_limit": 65536},
    lambda cfg, d: d["status"]["id"] == 12 and d["exit_signal"] == 9 and d["stdout"] is None)  # fmt: skip
row("memory_limit", "enough", {**MEMORY_HOG, "memory_limit": 400000},
    lambda cfg, d: d["status"]["id"] == 3 and d["stdout"] == "1\n" and d["memory"] >= 200 * 1024
    and d["memory_limit"] == 400000)  # fmt: skip
row("memory_limit", "below-2048", py("x", memory_limit=1024),
    refuse={"memory_limit": ["must be greater than or equal to 2048"]})  # fmt: skip
# 11 stack_limit (KB; default 64000: 30000 frames of 1 KiB fit, and not in 8000 KB)
row("stack_limit", "default-fits", c(STACK_PROGRAM, stdin="30000"), lambda cfg, d: d["stdout"] == "1\n")
row("stack_limit", "exceeded", c(STACK_PROGRAM, stdin="30000", stack_limit=8000),
    lambda cfg, d: d["status"]["id"] == 7 and d["exit_signal"] == 11 and d["stack_limit"] == 8000)  # fmt: skip
row(
    "stack_limit",
    "negative",
    py("x", stack_limit=-1),
    refuse={"stack_limit": ["must be greater than or equal to 0"]},
)
# 12 max_processes_and_or_threads
THREADS = py("import threading, time\nts = [threading.Thread(target=time.sleep, args=(1,)) for _ in range(30)]\n"
             "[t.start() for t in ts]\n[t.join() for t in ts]\nprint('all started')")  # fmt: skip
# Upstream: the 9th thread fails (EAGAIN) and Python exits 1 with its error. rce stops the
# program once it holds the limit, so its error may be cut short: NZEC either way, and the
# error or rce's message says why.
row("max_processes_and_or_threads", "exceeded", {**THREADS, "max_processes_and_or_threads": 8},
    lambda cfg, d: d["status"]["id"] == 11 and d["stdout"] is None
    and ("can't start new thread" in (d["stderr"] or "") or "process limit of 8" in (d["message"] or "")))  # fmt: skip
row("max_processes_and_or_threads", "enough", {**THREADS, "max_processes_and_or_threads": 60},
    lambda cfg, d: d["status"]["id"] == 3 and d["stdout"] == "all started\n")  # fmt: skip
row("max_processes_and_or_threads", "zero", py("x", max_processes_and_or_threads=0),
    refuse={"max_processes_and_or_threads": ["must be greater than 0"]})  # fmt: skip
# 15 max_file_size (KB; writing past it is SIGXFSZ: status 8, signal 25)
WRITER = "#include <stdio.h>\nint main(void){ int n; scanf(\"%d\", &n); for (int i = 0; i < n; i++) putchar('x'); return 0; }"
row("max_file_size", "exceeded", c(WRITER, stdin="20000", max_file_size=4),
    lambda cfg, d: d["status"]["id"] == 8 and d["exit_signal"] == 25 and d["message"] == "Caught fatal signal 25")  # fmt: skip
row("max_file_size", "default-1024-KB", c(WRITER, stdin=str(1000 * 1024)),
    lambda cfg, d: d["status"]["id"] == 3 and d["stdout"] == "x" * (1000 * 1024))  # fmt: skip
row("max_file_size", "4096-KB", {"source_code": b64(WRITER), "language_id": C, "stdin": b64(str(4000 * 1024)),
    "max_file_size": 4096},
    lambda cfg, d: d["status"]["id"] == 3 and len(unb64(d["stdout"])) == 4000 * 1024, b64mode=True)  # fmt: skip
row("max_file_size", "negative", py("x", max_file_size=-1),
    refuse={"max_file_size": ["must be greater than or equal to 0"]})  # fmt: skip
# 16 redirect_stderr_to_stdout
REDIRECT = py("import sys\nprint('o1', flush=True)\nprint('e1', file=sys.stderr, flush=True)\nprint('o2')")
row("redirect_stderr_to_stdout", "true", {**REDIRECT, "redirect_stderr_to_stdout": True},
    lambda cfg, d: d["stdout"] == "o1\ne1\no2\n" and d["stderr"] is None and d["redirect_stderr_to_stdout"] is True)  # fmt: skip
row("redirect_stderr_to_stdout", "false", {**REDIRECT, "redirect_stderr_to_stdout": False},
    lambda cfg, d: d["stdout"] == "o1\no2\n" and d["stderr"] == "e1\n")  # fmt: skip
# 17 enable_network (rce's policy refuses it, with upstream's words)
row(
    "enable_network",
    "true",
    py("x", enable_network=True),
    refuse={"enable_network": ["enabling network is not allowed"]},
)
row("enable_network", "false", py("print(1)", enable_network=False),
    lambda cfg, d: d["stdout"] == "1\n" and d["enable_network"] is False)  # fmt: skip
# 18 number_of_runs (each run sleeps 1 s: three runs take three seconds at least)
row(
    "number_of_runs", "zero", py("x", number_of_runs=0), refuse={"number_of_runs": ["must be greater than 0"]}
)
row("number_of_runs", "above-20", py("x", number_of_runs=21),
    refuse={"number_of_runs": ["must be less than or equal to 20"]})  # fmt: skip
# 19 additional_files
row("additional_files", "read", py("print(open('data/input.txt').read().strip())",
    additional_files=zip_of({"data/input.txt": "from the zip\n"})), lambda cfg, d: d["stdout"] == "from the zip\n")  # fmt: skip
row("additional_files", "header", c('#include <stdio.h>\n#include "v.h"\nint main(void){printf("%d\\n", V);}',
    additional_files=zip_of({"v.h": "#define V 7\n"})), lambda cfg, d: d["stdout"] == "7\n")  # fmt: skip
row("additional_files", "multi-file-required", {"language_id": MULTI_FILE},
    refuse={"additional_files": ["can't be blank"]})  # fmt: skip
row("additional_files", "multi-file-no-source", {"language_id": MULTI_FILE, "source_code": "x",
    "additional_files": zip_of({"run": "echo hi\n"})}, refuse={"source_code": ["must be blank"]})  # fmt: skip
row(
    "additional_files",
    "multi-file-run",
    {
        "language_id": MULTI_FILE,
        "additional_files": zip_of({"run": 'bash main.sh "$@"\n', "main.sh": 'echo "args: $*"\ncat\n'}),
        "command_line_arguments": "x y",
        "stdin": "in",
    },
    lambda cfg, d: d["stdout"] == "args: \nin",
)  # fmt: skip (upstream adds no arguments to a project's run)


@pytest.mark.parametrize("attr,body,check,refuse,post_kw", ROWS)
def test_attribute(cfg, attr, body, check, refuse, post_kw):
    if refuse is not None:
        assert refused(body) == refuse
        return
    doc = run(body, **post_kw)
    first = ("status", "stdout", "stderr", "compile_output", "message", "exit_code", "exit_signal", "time",
             "wall_time", "memory", attr)  # fmt: skip
    shown = {k: (v[:300] if isinstance(v, str) else v) for k, v in doc.items() if k in first}
    assert check(cfg, doc), json.dumps(shown)


def test_limits_above_the_configured_maxima(cfg):
    # Upstream's numericality messages, with rce's configured maxima.
    for attr, key in [
        ("cpu_time_limit", "max_cpu_time_limit"),
        ("cpu_extra_time", "max_cpu_extra_time"),
        ("wall_time_limit", "max_wall_time_limit"),
        ("memory_limit", "max_memory_limit"),
        ("stack_limit", "max_stack_limit"),
        ("max_processes_and_or_threads", "max_max_processes_and_or_threads"),
        ("max_file_size", "max_max_file_size"),
        ("number_of_runs", "max_number_of_runs"),
    ]:
        value, message = over(cfg, key)
        assert refused(py("x", **{attr: value})) == {attr: [message]}, attr


def test_several_refusals_at_once():
    assert refused({"source_code": "x", "language_id": PYTHON, "memory_limit": 1, "number_of_runs": 0}) == {
        "memory_limit": ["must be greater than or equal to 2048"],
        "number_of_runs": ["must be greater than 0"],
    }


def test_cpu_extra_time(cfg):
    # Upstream: "when a time limit is exceeded, wait for extra time, before killing the
    # program ... the real execution time is reported, even though it slightly exceeds the
    # limit". Refused (with upstream's words) above the configured maximum.
    if cfg["max_cpu_extra_time"] < 1:
        _, message = over(cfg, "max_cpu_extra_time")
        assert refused(py("x", cpu_extra_time=1.0)) == {"cpu_extra_time": [message]}
        return
    doc = run(py("while True: pass", cpu_time_limit=1, cpu_extra_time=1))
    assert doc["status"]["id"] == 5
    assert float(doc["time"]) > 1.2, doc["time"]


def test_enable_per_process_and_thread_limits(cfg):
    for attr in ("enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit"):
        doc = run(py("print(1)", **{attr: False}))
        assert doc[attr] is False
        if cfg[f"allow_{attr}"]:
            assert run(py("print(1)", **{attr: True}))[attr] is True
        else:
            assert refused(py("print(1)", **{attr: True})) == {attr: ["this option cannot be enabled"]}


def test_number_of_runs_runs_the_program_again():
    t0 = time.monotonic()
    doc = run(py("import time\ntime.sleep(1)\nprint('ran')", number_of_runs=3))
    elapsed = time.monotonic() - t0
    assert doc["number_of_runs"] == 3
    assert doc["stdout"] == "ran\n" and doc["status"]["id"] == 3
    assert elapsed >= 3.0, f"three runs of a 1 s sleep answered in {elapsed:.2f}s"
    # time and memory are the averages of the runs (isolate_job.rb): one run's worth.
    assert float(doc["time"]) < 1.0 and doc["memory"] > 0


class _Sink(http.server.BaseHTTPRequestHandler):
    puts: ClassVar[list] = []
    stall_first: ClassVar[float] = 0.0

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Sink.puts.append((time.monotonic(), self.path, self.headers.get("Content-Type"), body))
        if len(_Sink.puts) == 1 and _Sink.stall_first:
            time.sleep(_Sink.stall_first)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def sink():
    _Sink.puts, _Sink.stall_first = [], 0.0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_callback_url_put(sink):
    # 20 callback_url: a PUT of the submission as upstream sends it (default fields,
    # base64_encoded=true), to a listener of this test on 127.0.0.1.
    url = f"http://127.0.0.1:{sink.server_address[1]}/hook?x=1"
    code, created = post(py("print('called back')", callback_url=url), wait=False, fields=None)
    assert code == 201, created
    poll(lambda: _Sink.puts, timeout=60)
    _, path, content_type, body = _Sink.puts[0]
    assert path == "/hook?x=1"
    assert content_type.startswith("application/json")
    doc = json.loads(body)
    assert set(doc) == DEFAULT_FIELDS
    assert doc["token"] == created["token"]
    assert unb64(doc["stdout"]) == b"called back\n"
    assert doc["status"] == {"id": 3, "description": "Accepted"}
    time.sleep(1)
    assert len(_Sink.puts) == 1  # answered: no second try


def test_callback_url_is_tried_again_after_a_timeout(sink):
    # CALLBACKS_TIMEOUT 5 s, CALLBACKS_MAX_TRIES 3: a listener that does not answer within
    # 5 s gets the PUT again.
    _Sink.stall_first = 7.0
    url = f"http://127.0.0.1:{sink.server_address[1]}/slow"
    code, created = post(py("print(1)", callback_url=url), wait=False, fields=None)
    assert code == 201, created
    poll(lambda: len(_Sink.puts) >= 2, timeout=60)
    first, second = _Sink.puts[0][0], _Sink.puts[1][0]
    assert second - first >= 4.5, f"the second try came {second - first:.1f}s after the first"
    assert _Sink.puts[0][3] == _Sink.puts[1][3]


# ---------------------------------------------------------------------------- status ids 3-12

STATUS_PROGRAMS = [
    (3, py("print('ok')"), {"exit_code": 0, "exit_signal": None, "message": None}),
    (4, py("print('ok')", expected_output="ko"), {"exit_code": 0, "exit_signal": None, "message": None}),
    (5, py("while True: pass", cpu_time_limit=1), {"exit_code": 0, "exit_signal": None, "message": "Time limit exceeded"}),
    (6, c("int main( {"), {"exit_code": None, "exit_signal": None, "message": None, "time": None, "memory": None,
                           "stdout": None}),
    (7, c("int main(void){ volatile int *p = 0; return *p; }"),
     {"exit_code": 0, "exit_signal": 11, "message": "Caught fatal signal 11"}),
    (8, c(WRITER, stdin="100000", max_file_size=8), {"exit_code": 0, "exit_signal": 25, "message": "Caught fatal signal 25"}),
    (9, c("int main(void){ volatile int z = 0; return 7 / z; }"),
     {"exit_code": 0, "exit_signal": 8, "message": "Caught fatal signal 8"}),
    (10, c("#include <stdlib.h>\nint main(void){ abort(); }"),
     {"exit_code": 0, "exit_signal": 6, "message": "Caught fatal signal 6"}),
    (11, py("import sys\nsys.exit(3)"), {"exit_code": 3, "exit_signal": None, "message": "Exited with error status 3"}),
    (12, c("#include <signal.h>\nint main(void){ raise(SIGTERM); return 0; }"),
     {"exit_code": 0, "exit_signal": 15, "message": "Caught fatal signal 15"}),
]  # fmt: skip


@pytest.mark.parametrize(
    "status_id,body,fields", STATUS_PROGRAMS, ids=[f"status-{s}" for s, _, _ in STATUS_PROGRAMS]
)
def test_status(status_id, body, fields):
    doc = run(body)
    assert doc["status"] == {"id": status_id, "description": STATUS[status_id]}, doc
    assert doc["status_id"] == status_id
    for key, want in fields.items():
        assert doc[key] == want, (key, doc[key], want)
    if status_id == 6:
        assert "error" in doc["compile_output"]
    else:
        assert doc["compile_output"] is None or body["language_id"] == C
        assert DECIMAL.match(doc["time"]) and isinstance(doc["memory"], int)


def test_statuses_endpoint():
    r = S.get(API + "/statuses", timeout=10)
    assert r.json() == [{"id": i, "description": d} for i, d in STATUS.items()]


# ---------------------------------------------------------------------------- outputs, encodings, fields


def test_output_attributes_21_to_33():
    doc = run(py("import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nsys.exit(2)"))
    assert (doc["stdout"], doc["stderr"], doc["compile_output"]) == ("to out\n", "to err\n", None)
    assert (doc["exit_code"], doc["exit_signal"], doc["message"]) == (2, None, "Exited with error status 2")
    assert doc["status"]["id"] == 11
    assert float(doc["wall_time"]) >= 0 and float(doc["time"]) >= 0 and doc["memory"] > 0
    empty = run(py("pass"))
    assert empty["stdout"] is None and empty["stderr"] is None  # empty output is null


def test_default_and_requested_fields():
    code, doc = post(py("print(1)"), fields=None)
    assert code == 201 and set(doc) == DEFAULT_FIELDS
    token = doc["token"]
    r = S.get(f"{API}/submissions/{token}", timeout=10)
    assert r.status_code == 200 and set(r.json()) == DEFAULT_FIELDS
    r = S.get(f"{API}/submissions/{token}", params={"fields": "stdout,status_id,language_id"}, timeout=10)
    assert r.json() == {"stdout": "1\n", "status_id": 3, "language_id": PYTHON}
    r = S.get(f"{API}/submissions/{token}", params={"fields": "stdout,nope,bad"}, timeout=10)
    assert (r.status_code, r.json()) == (400, {"error": "invalid fields: [nope, bad]"})
    r = S.get(f"{API}/submissions/{token}/", params={"fields": "token"}, timeout=10)  # trailing slash
    assert (r.status_code, r.json()) == (200, {"token": token})


def test_async_submission_reports_queue_then_result():
    code, created = post(py("import time\ntime.sleep(1)\nprint('done')"), wait=False, fields=None)
    assert code == 201 and set(created) == {"token"}
    token = created["token"]
    first = S.get(f"{API}/submissions/{token}", params={"fields": "status,finished_at"}, timeout=10).json()
    assert first["status"]["id"] in (1, 2, 3)
    if first["status"]["id"] in (1, 2):
        assert first["finished_at"] is None

    def finished():
        d = S.get(f"{API}/submissions/{token}", params={"fields": "*"}, timeout=10).json()
        return d if d["status"]["id"] >= 3 else None

    done = poll(finished, timeout=90)
    assert done["stdout"] == "done\n" and TIME.match(done["finished_at"])


REVERSE = "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read()[::-1])\nsys.stderr.write('é')\nsys.exit(1)"


def test_base64_encoded():
    # Requests in base64 (source, stdin, expected output), answers in base64 (outputs and
    # message), exact bytes both ways.
    program = REVERSE
    doc = run(
        {"source_code": b64(program), "language_id": PYTHON, "stdin": b64("\n\x00ü A".encode())},
        b64mode=True,
    )
    assert unb64(doc["stdout"]) == "\n\x00ü A".encode()[::-1]
    assert unb64(doc["stderr"]) == "é".encode()
    assert unb64(doc["message"]) == b"Exited with error status 1"
    assert base64.b64decode(doc["source_code"]).decode() == program


@pytest.mark.xfail(
    strict=True,
    reason="rce's stdin is text (spec.stdin, the sealed stdin): bytes that are not UTF-8 are refused "
    "with 422 {'stdin': ['is not valid UTF-8 text']}; upstream takes any bytes in base64 mode",
)
def test_base64_stdin_that_is_not_utf8():
    doc = run({"source_code": b64(REVERSE), "language_id": PYTHON, "stdin": b64(b"\n\x00\xff\xfeA")}, b64mode=True)
    assert unb64(doc["stdout"]) == b"A\xfe\xff\x00\n"


def test_output_that_is_not_utf8():
    body = py("import sys\nsys.stdout.buffer.write(b'\\xfe\\xff\\x00A\\n')")
    code, doc = post(body, fields=None)
    # Upstream: 201 with the token and the error (create_a_submission.md).
    assert code == 201 and set(doc) == {"token", "error"}, doc
    assert doc["error"] == (
        "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter"
    )
    r = S.get(f"{API}/submissions/{doc['token']}", timeout=10)
    assert (r.status_code, r.json()) == (400, {"error": doc["error"]})
    r = S.get(f"{API}/submissions/{doc['token']}", params={"base64_encoded": "true"}, timeout=10)
    assert r.status_code == 200 and unb64(r.json()["stdout"]) == b"\xfe\xff\x00A\n"


def test_unknown_token_is_a_404():
    r = S.get(f"{API}/submissions/{uuid.uuid4()}", timeout=10)
    assert r.status_code == 404


# ---------------------------------------------------------------------------- batches


def test_batch_create_and_show():
    r = S.post(
        API + "/submissions/batch",
        json={
            "submissions": [
                py("print('a')"),
                py("x", memory_limit=1),
                {"source_code": "echo b", "language_id": BASH},
            ]
        },
        timeout=30,
    )
    assert r.status_code == 201
    created = r.json()
    assert created[1] == {"memory_limit": ["must be greater than or equal to 2048"]}
    tokens = [created[0]["token"], created[2]["token"]]

    def all_done():
        got = S.get(
            API + "/submissions/batch",
            params={"tokens": ",".join([*tokens, str(uuid.uuid4())]), "fields": "stdout,status"},
            timeout=10,
        ).json()["submissions"]
        return got if all(g is None or g["status"]["id"] >= 3 for g in got) else None

    got = poll(all_done, timeout=90)
    assert got == [
        {"stdout": "a\n", "status": {"id": 3, "description": "Accepted"}},
        {"stdout": "b\n", "status": {"id": 3, "description": "Accepted"}},
        None,  # an unknown token
    ]


def test_batch_limits():
    r = S.post(API + "/submissions/batch", json={"submissions": []}, timeout=10)
    assert (r.status_code, r.json()) == (400, {"error": "there should be at least one submission in a batch"})
    r = S.post(API + "/submissions/batch", json={"submissions": [py("x")] * 21}, timeout=10)
    assert (r.status_code, r.json()) == (
        400,
        {"error": "number of submissions in a batch should be less than or equal to 20"},
    )
    r = S.post(API + "/submissions/batch", json={"submissions": [py("x", memory_limit=1)]}, timeout=10)
    assert r.status_code == 422  # no valid submission
    r = S.get(API + "/submissions/batch", params={"tokens": ""}, timeout=10)
    assert (r.status_code, r.json()) == (400, {"error": "there should be at least one submission in a batch"})


# ---------------------------------------------------------------------------- the other endpoints


def test_information_endpoints():
    about = S.get(API + "/about", timeout=10).json()
    assert set(about) == {"version", "homepage", "source_code", "maintainer"} and about["version"] == "1.13.1"
    r = S.get(API + "/version", timeout=10)
    assert r.status_code == 200 and r.text == "1.13.1"
    for path in ("/isolate", "/license"):
        r = S.get(API + path, timeout=10)
        assert r.status_code == 200 and r.text.strip(), path
        assert r.headers["Content-Type"].startswith("text/plain"), path
    info = S.get(API + "/system_info", timeout=10)
    assert info.status_code == 200 and isinstance(info.json(), dict) and info.json()
    workers = S.get(API + "/workers", timeout=10)
    assert workers.status_code == 200
    for w in workers.json():
        assert set(w) == {"queue", "size", "available", "idle", "working", "paused", "failed"}
    stats = S.get(API + "/statistics", timeout=10)
    assert stats.status_code == 200
    doc = stats.json()
    assert {"created_at", "cached_until", "submissions", "languages", "statuses", "database"} <= set(doc)
    assert {"total", "today", "last_30_days"} <= set(doc["submissions"]) and doc["submissions"]["total"] >= 1


def test_languages():
    langs = S.get(API + "/languages", timeout=10).json()
    ids = [lang["id"] for lang in langs]
    names = [lang["name"] for lang in langs]
    assert len(ids) == len(set(ids)) and len(names) == len(set(names)), names
    assert len(langs) >= 30
    for name in names:
        assert ") (" not in name, f"doubled parentheses: {name}"
    assert {BASH, C, PYTHON, MULTI_FILE} <= set(ids)
    one = S.get(f"{API}/languages/{PYTHON}", timeout=10).json()
    assert set(one) == {"id", "name", "is_archived", "source_file", "compile_cmd", "run_cmd"}
    assert one["compile_cmd"] is None and one["is_archived"] is False
    cl = S.get(f"{API}/languages/{C}", timeout=10).json()
    assert cl["compile_cmd"] and cl["run_cmd"] and cl["source_file"]
    every = S.get(API + "/languages/all", timeout=10).json()
    assert {lang["id"] for lang in every} >= set(ids)
    assert S.get(f"{API}/languages/150000", timeout=10).status_code == 404


def test_sessions_and_list_without_credentials():
    # Default upstream configuration: no AUTHN_TOKEN (authenticate answers 200), no
    # AUTHZ_TOKEN (authorize and the submission list answer 403).
    assert S.post(API + "/authenticate", timeout=10).status_code == 200
    assert S.post(API + "/authorize", timeout=10).status_code == 403
    assert S.get(API + "/submissions", timeout=10).status_code == 403

"""The official Judge0 Python SDK (PyPI `judge0`, pinned in requirements.txt), unchanged,
against rce's shim. The flows are the SDK's own documented ones (its README and examples/):
`run` (sync), `async_run` + `wait`, test cases (batch create and batch get), several
languages at once, `Filesystem`/`File` as `additional_files`, multi-file programs (language
89), `redirect_stderr_to_stdout`, and `callback_url` (examples/1000_http_callback_aka_webhook:
the PUT body parsed as a `judge0.Submission`).

The SDK is pointed at a self-hosted Judge0 the way it documents: `judge0.Client(endpoint,
headers)` (or JUDGE0_CE_ENDPOINT/JUDGE0_CE_AUTH_HEADERS for its implicit client). It reads
every result with `fields=*` and `base64_encoded=true`, parses `created_at`/`finished_at`
with `%Y-%m-%dT%H:%M:%S.%fZ`, and builds its Config from `/config_info` (every field
required)."""

import base64
import http.server
import json
import threading
import uuid
from datetime import datetime
from typing import ClassVar

import judge0
import pytest
from judge0 import File, Filesystem, Status, Submission

from conftest import API, BASH, MULTI_FILE, PYTHON, poll


@pytest.fixture(scope="module")
def client():
    # Bounded waiting (the SDK's default retry strategy polls forever).
    return judge0.Client(endpoint=API, headers={}, retry_strategy=judge0.MaxWaitTime(90))


def assert_finished_fields(s: Submission):
    """What every finished submission carries (SubmissionSerializer, fields=*)."""
    uuid.UUID(str(s.token))  # set_attributes stores the text as sent
    assert isinstance(s.created_at, datetime)
    assert isinstance(s.finished_at, datetime)
    assert s.finished_at >= s.created_at


def test_client_reads_languages_and_config(client):
    # Client.__init__ already fetched /languages and /config_info (a failure there is the
    # SDK's "Authentication failed").
    assert client.version == "1.13.1"
    assert isinstance(client.config, judge0.base_types.Config)
    for alias in (judge0.PYTHON, judge0.C, judge0.CPP, judge0.JAVA, judge0.BASH, judge0.MULTI_FILE):
        assert client.is_language_supported(alias), f"{alias!r} (id {client.get_language_id(alias)}) missing"
    py = client.get_language(PYTHON)
    assert py.id == PYTHON and py.name.startswith("Python (")
    statuses = client.get_statuses()
    assert [s["id"] for s in statuses] == list(range(1, 15))
    assert client.get_about()["version"] == "1.13.1"


def test_run_hello_world(client):
    result = judge0.run(client=client, source_code="print('hello, world')", language=judge0.PYTHON)
    assert result.stdout == "hello, world\n"
    assert result.status == Status.ACCEPTED
    assert result.stderr is None  # empty output is null upstream
    assert result.compile_output is None
    assert result.message is None
    assert result.exit_code == 0
    assert result.exit_signal is None
    assert result.time is not None and result.time >= 0
    assert result.wall_time is not None and result.wall_time >= 0
    assert result.memory is not None and result.memory > 0
    assert_finished_fields(result)


def test_run_c_reading_stdin(client):
    # The README's "Reading From Standard Input" example.
    source_code = r"""
#include <stdio.h>

int main() {
    int a, b;
    scanf("%d %d", &a, &b);
    printf("%d\n", a + b);

    char name[10];
    scanf("%s", name);
    printf("Hello, %s!\n", name);

    return 0;
}
"""
    result = judge0.run(client=client, source_code=source_code, stdin="\n3 5\nBob\n", language=judge0.C)
    assert result.status == Status.ACCEPTED, result.compile_output
    assert result.stdout == "8\nHello, Bob!\n"


def test_run_java(client):
    # The README's Java example.
    source_code = """
public class Main {
    public static void main(String[] args) {
        System.out.println("hello, world");
    }
}
"""
    result = judge0.run(client=client, source_code=source_code, language=judge0.JAVA)
    assert result.status == Status.ACCEPTED, result.compile_output
    assert result.stdout == "hello, world\n"
    assert result.language == judge0.JAVA


def test_compilation_error(client):
    result = judge0.run(client=client, source_code="int main( { return 0; }", language=judge0.C)
    assert result.status == Status.COMPILATION_ERROR
    assert "error" in result.compile_output
    # A compile error leaves the run's fields null (isolate_job.rb).
    assert result.stdout is None and result.stderr is None
    assert result.time is None and result.memory is None
    assert result.exit_code is None and result.message is None


def test_test_cases_batch(client):
    # The README's "Test Cases" example: several submissions, created with
    # POST /submissions/batch and waited for with GET /submissions/batch?tokens=...
    results = judge0.run(
        client=client,
        source_code="print(f'Hello, {input()}!')",
        language=judge0.PYTHON,
        test_cases=[
            ("Bob", "Hello, Bob!"),
            {"input": "Alice", "expected_output": "Hello, Alice!"},
            ["Charlie", "Hello, Charlie!"],
            ("Dave", "Hello, Eve!"),
        ],
    )
    assert [r.stdout for r in results] == [
        "Hello, Bob!\n",
        "Hello, Alice!\n",
        "Hello, Charlie!\n",
        "Hello, Dave!\n",
    ]
    assert [r.status for r in results] == [Status.ACCEPTED] * 3 + [Status.WRONG_ANSWER]
    assert len({r.token for r in results}) == 4
    for r in results:
        assert_finished_fields(r)


def test_test_cases_and_multiple_languages(client):
    # The README's "Test Cases And Multiple Languages" example.
    submissions = [
        Submission(source_code="print(f'Hello, {input()}!')", language=judge0.PYTHON),
        Submission(
            source_code='#include <stdio.h>\nint main() { char name[10]; scanf("%s", name); '
            'printf("Hello, %s!\\n", name); return 0; }\n',
            language=judge0.C,
        ),
    ]
    test_cases = [("Bob", "Hello, Bob!"), ("Alice", "Hello, Alice!")]
    results = judge0.run(client=client, submissions=submissions, test_cases=test_cases)
    assert len(results) == 4
    for r, name in zip(results, ["Bob", "Alice", "Bob", "Alice"]):
        assert r.status == Status.ACCEPTED, (r.status, r.compile_output)
        assert r.stdout == f"Hello, {name}!\n"


def test_async_run_and_wait(client):
    # The README's "Asynchronous Execution" example.
    submission = judge0.async_run(client=client, source_code="print('hello, world')", language=judge0.PYTHON)
    assert submission.token is not None
    assert submission.stdout is None
    client.get_submission(submission)
    assert submission.status >= Status.IN_QUEUE
    judge0.wait(client=client, submissions=submission)
    assert submission.is_done()
    assert submission.status == Status.ACCEPTED
    assert submission.stdout == "hello, world\n"
    assert_finished_fields(submission)


def test_additional_files_filesystem(client):
    # examples/0005_filesystem.py, subexample 2: a File in a Filesystem, read by the program.
    fs = Filesystem(content=File(name="my_file.txt", content="hello, world"))
    result = judge0.run(
        client=client,
        source_code="print(open('my_file.txt').read())",
        additional_files=fs,
        language=judge0.PYTHON,
    )
    assert result.status == Status.ACCEPTED, (result.status, result.stderr, result.message)
    assert result.stdout == "hello, world\n"


def test_additional_files_nested_directories_bash(client):
    # examples/0005_filesystem.py, subexample 4: nested directories, a Bash program.
    fs = Filesystem(
        content=[
            File(name="my_file.txt", content="hello, world"),
            File(name="./dir1/dir2/dir3/my_file2.txt", content="hello, world2"),
        ]
    )
    result = judge0.run(
        client=client,
        source_code="find . -type f -name 'my_file*' | sort; cat my_file.txt dir1/dir2/dir3/my_file2.txt",
        additional_files=fs,
        language=BASH,
    )
    assert result.status == Status.ACCEPTED, (result.status, result.stderr, result.message)
    assert result.stdout == "./dir1/dir2/dir3/my_file2.txt\n./my_file.txt\nhello, worldhello, world2"


def test_additional_files_python_module(client):
    # A module imported by the program (the docs' "Single-file programs" use of additional_files).
    fs = Filesystem(content=[File(name="mymod.py", content="def answer():\n    return 42\n")])
    result = judge0.run(
        client=client,
        source_code="import mymod\nprint(mymod.answer())",
        additional_files=fs,
        language=judge0.PYTHON,
    )
    assert result.status == Status.ACCEPTED, (result.status, result.stderr)
    assert result.stdout == "42\n"


def test_multi_file_program_compile_and_run(client):
    # Language 89: the zip holds `compile` and `run` scripts and the sources; no source_code
    # (the SDK sends an empty one, which upstream's `absence` validation accepts).
    fs = Filesystem(
        content=[
            File(name="compile", content="gcc -O2 -o main main.c helper.c\n"),
            File(name="run", content='./main "$@"\n'),
            File(
                name="main.c",
                content="#include <stdio.h>\nint helper(int);\nint main(void) { int x; "
                'scanf("%d", &x); printf("%d\\n", helper(x)); return 0; }\n',
            ),
            File(name="helper.c", content="int helper(int x) { return x * 2; }\n"),
        ]
    )
    submission = Submission(source_code="", language=judge0.MULTI_FILE, additional_files=fs, stdin="21\n")
    result = judge0.run(client=client, submissions=submission)
    assert result.status == Status.ACCEPTED, (
        result.status,
        result.compile_output,
        result.stderr,
        result.message,
    )
    assert result.stdout == "42\n"
    assert client.get_language_id(judge0.MULTI_FILE) == MULTI_FILE


def test_multi_file_program_run_only(client):
    # No `compile` script: the project needs no compilation step.
    fs = Filesystem(
        content=[
            File(name="run", content="python3 main.py\n"),
            File(name="main.py", content="from pkg.helper import greet\nprint(greet(input()))\n"),
            File(name="pkg/__init__.py", content=""),
            File(name="pkg/helper.py", content="def greet(n):\n    return f'Hello, {n}!'\n"),
        ]
    )
    result = judge0.run(
        client=client,
        submissions=Submission(source_code="", language=MULTI_FILE, additional_files=fs, stdin="Ada"),
    )
    assert result.status == Status.ACCEPTED, (result.status, result.stderr, result.message)
    assert result.stdout == "Hello, Ada!\n"


def test_multi_file_compile_error(client):
    fs = Filesystem(
        content=[
            File(name="compile", content="gcc -o main main.c\n"),
            File(name="run", content="./main\n"),
            File(name="main.c", content="int main( {\n"),
        ]
    )
    result = judge0.run(
        client=client, submissions=Submission(source_code="", language=MULTI_FILE, additional_files=fs)
    )
    assert result.status == Status.COMPILATION_ERROR
    assert "error" in result.compile_output


def test_redirect_stderr_to_stdout(client):
    # The README's agent example runs code with redirect_stderr_to_stdout=True.
    result = judge0.run(
        client=client,
        source_code="import sys\nprint('out', flush=True)\nprint('err', file=sys.stderr, flush=True)\nprint('out2')",
        language=judge0.PYTHON,
        redirect_stderr_to_stdout=True,
    )
    assert result.status == Status.ACCEPTED
    assert result.stdout == "out\nerr\nout2\n"
    assert result.stderr is None


def test_compiler_options(client):
    result = judge0.run(
        client=client,
        source_code='#include <stdio.h>\nint main(void) { printf("%d\\n", X); return 0; }\n',
        language=judge0.C,
        compiler_options="-DX=5",
    )
    assert result.status == Status.ACCEPTED, result.compile_output
    assert result.stdout == "5\n"


def test_runtime_error_and_time_limit(client):
    results = judge0.run(
        client=client,
        submissions=[
            Submission(source_code="import sys\nprint('bye')\nsys.exit(3)", language=judge0.PYTHON),
            Submission(source_code="while True:\n    pass", language=judge0.PYTHON, cpu_time_limit=1),
        ],
    )
    nzec, tle = results
    assert nzec.status == Status.RUNTIME_ERROR_NZEC
    assert nzec.stdout == "bye\n"
    assert nzec.exit_code == 3
    # With base64_encoded=true upstream encodes `message` too (SubmissionSerializer), and this
    # SDK does not decode it (`message` is not among its ENCODED_FIELDS).
    assert base64.b64decode(nzec.message) == b"Exited with error status 3"
    assert tle.status == Status.TIME_LIMIT_EXCEEDED
    assert base64.b64decode(tle.message) == b"Time limit exceeded"


def test_binary_output_bytes(client):
    # Non-UTF-8 output: the SDK asks for base64 and decodes with backslashreplace; the bytes
    # must arrive exactly.
    result = judge0.run(
        client=client,
        source_code="import sys\nsys.stdout.buffer.write(b'\\xfe\\xff\\x00A\\n')",
        language=judge0.PYTHON,
    )
    assert result.status == Status.ACCEPTED
    assert result.stdout == b"\xfe\xff\x00A\n".decode(errors="backslashreplace")


class _CallbackSink(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.command, self.path, self.headers.get("Content-Type"), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_callback_url_put(client):
    # examples/1000_http_callback_aka_webhook: Judge0 PUTs the finished submission to
    # callback_url; the example parses the body as a judge0.Submission.
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CallbackSink)
    _CallbackSink.received = []
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{sink.server_address[1]}/callback"
        submission = Submission(
            source_code="print('Hello, World!')", language=judge0.PYTHON, callback_url=url
        )
        # async_execute works on (and returns) a copy that carries the token.
        submission = judge0.async_execute(client=client, submissions=submission)
        judge0.wait(client=client, submissions=submission)

        poll(lambda: _CallbackSink.received, timeout=30)
    finally:
        sink.shutdown()
        sink.server_close()
    method, path, content_type, body = _CallbackSink.received[0]
    assert (method, path) == ("PUT", "/callback")
    assert content_type.startswith("application/json")
    doc = json.loads(body)
    # Upstream PUTs the default fields, base64-encoded (isolate_job.rb, call_callback).
    assert set(doc) == {"token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status"}
    received = Submission(**doc)
    assert str(received.token) == str(submission.token)
    assert received.stdout == "Hello, World!\n"
    assert received.status == Status.ACCEPTED

"""PyPI `aiopyston` (aiohttp), unchanged, against rce's Piston v2 surface. This client asks
for `runtimes/` and `execute/` with trailing slashes, sends `version: "*"` by default and
file names as given (empty by default), and keeps the raw JSON, against which the fields
upstream sends (engineer-man/piston api/src/job.js) are checked."""

import asyncio

import pytest
from pyston import File, PystonClient

from conftest import API

STAGE_KEYS = {
    "stdout",
    "stderr",
    "output",
    "code",
    "signal",
    "message",
    "status",
    "cpu_time",
    "wall_time",
    "memory",
}


# The client's HTTP.__del__ schedules a close on a loop that has ended: its own noise.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def _with_client(fn):
    client = PystonClient(base_url=API + "/api/v2/")
    try:
        return await fn(client)
    finally:
        await client.close_session()


def with_client(fn):
    """Run fn(client) to completion. The client's errors (pyston.exceptions, aiohttp's) become
    a plain assertion: pytest's traceback formatter crashes CPython 3.11.7's ast module on
    some of aiohttp's frames (SystemError: AST constructor recursion depth mismatch)."""
    try:
        return asyncio.run(_with_client(fn))
    except Exception as e:
        raise AssertionError(f"{type(e).__module__}.{type(e).__name__}: {e}") from None


def test_runtimes_and_languages():
    async def go(c):
        return await c.runtimes(), await c.languages(), await c.get_runtimes("py")

    runtimes, languages, py = with_client(go)
    assert "python" in languages and "c++" in languages
    assert [r.language for r in py] == ["python"]
    assert all(r.version for r in runtimes)


def test_execute_python_with_stdin_and_args():
    async def go(c):
        return await c.execute(
            "python", [File("import sys\nprint(input(), sys.argv[1:])")], stdin="hi", args=["x"]
        )

    out = with_client(go)
    assert str(out) == "hi ['x']\n"
    assert out.success
    assert out.run_stage.code == 0
    assert out.compile_stage is None
    assert set(out.raw_json["run"]) == STAGE_KEYS
    assert out.raw_json["run"]["status"] is None and out.raw_json["run"]["message"] is None
    assert out.raw_json["language"] == "python"


def test_compile_stage_reports_its_figures():
    async def go(c):
        return await c.execute("c", [File('#include <stdio.h>\nint main(void) { puts("ok"); }\n', "main.c")])

    out = with_client(go)
    assert str(out) == "ok\n"
    compile_stage = out.raw_json["compile"]
    assert set(compile_stage) == STAGE_KEYS
    assert compile_stage["code"] == 0
    assert compile_stage["cpu_time"] >= 0 and compile_stage["wall_time"] >= 0 and compile_stage["memory"] > 0


def test_compile_error_output_in_run():
    async def go(c):
        return await c.execute("c++", [File("int main( {", "main.cpp")])

    out = with_client(go)
    assert out.compile_stage.code != 0
    # Clients read result.run.output: upstream sets run to the compile stage.
    assert out.raw_json["run"] == out.raw_json["compile"]
    assert "error" in str(out)


def test_runtime_error_code_and_signal():
    async def go(c):
        return await asyncio.gather(
            c.execute("python", [File("import sys\nsys.exit(3)")]),
            c.execute("python", [File("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")]),
        )

    exited, killed = with_client(go)
    assert (exited.run_stage.code, exited.run_stage.signal) == (3, None)
    assert (killed.run_stage.code, killed.run_stage.signal) == (None, "SIGSEGV")

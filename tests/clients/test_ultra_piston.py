"""PyPI `ultra-piston` (httpx + pydantic, sync and async), unchanged, against rce's Piston v2
surface. Its models require what upstream sends (engineer-man/piston api/src/api/v2.js):
`run` on every result (also after a compile error, where upstream sets `run` to the compile
stage), `compile` for compiled languages, runtimes with `language`, `version`, `aliases`."""

import asyncio
import re

import pytest
from ultra_piston import File, PistonClient
from ultra_piston.errors import BadRequestError

from conftest import API

SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


@pytest.fixture(scope="module", params=["/api/v2/", "/api/v2/piston/"])
def piston(request):
    # Upstream serves /api/v2/*; the public instance's /api/v2/piston/* prefix is an alias.
    return PistonClient(base_url=API + request.param, rate_limit=0)


@pytest.fixture(scope="module")
def runtimes(piston):
    return piston.get_runtimes()


def version_of(runtimes, language):
    found = [r.version for r in runtimes if r.language == language]
    assert found, f"no runtime named {language!r}: {sorted(r.language for r in runtimes)}"
    return found[0]


def test_runtimes_as_upstream(runtimes):
    names = {r.language for r in runtimes}
    # Upstream's package names (piston/packages/*/metadata.json "language").
    for name in ("python", "c", "c++", "javascript", "typescript", "bash", "java", "go", "rust", "sqlite3"):
        assert name in names, f"{name!r} missing from {sorted(names)}"
    for r in runtimes:
        assert SEMVER.match(r.version), f"{r.language} version {r.version!r} is not SemVer"
        assert isinstance(r.aliases, list)
    cpp = next(r for r in runtimes if r.language == "c++")
    assert "cpp" in cpp.aliases and cpp.runtime == "gcc"
    js = next(r for r in runtimes if r.language == "javascript")
    assert js.runtime == "node"


def test_execute_python(piston, runtimes):
    out = piston.post_execute(
        language="python",
        version=version_of(runtimes, "python"),
        file=File(name="main.py", content="import sys\nprint('hello', sys.argv[1:])"),
        args=["a", "b c"],
    )
    assert out.language == "python"
    assert out.version == version_of(runtimes, "python")
    assert out.run.stdout == "hello ['a', 'b c']\n"
    assert out.run.output == out.run.stdout
    assert out.run.stderr == ""
    assert out.run.code == 0
    assert out.run.signal is None
    assert out.compile is None


def test_stdin_gets_its_final_newline(piston, runtimes):
    # Upstream appends "\n" to stdin that lacks one (job.js), so `read` sees the last line.
    out = piston.post_execute(
        language="bash",
        version=version_of(runtimes, "bash"),
        file=File(content='while read -r l; do echo "[$l]"; done'),
        stdin="one\ntwo",
    )
    assert out.run.stdout == "[one]\n[two]\n"


def test_compiled_language_has_both_stages(piston, runtimes):
    out = piston.post_execute(
        language="c++",
        version=version_of(runtimes, "c++"),
        file=File(
            name="main.cpp", content="#include <iostream>\nint main() { std::cout << 6 * 7 << '\\n'; }\n"
        ),
    )
    assert out.compile is not None and out.compile.code == 0
    assert out.run.stdout == "42\n" and out.run.code == 0


def test_compile_error_sets_run(piston, runtimes):
    # "Backward compatibility when the run stage is not started": run = compile.
    out = piston.post_execute(
        language="c", version=version_of(runtimes, "c"), file=File(content="int main( {")
    )
    assert out.compile is not None
    assert out.compile.code != 0
    assert "error" in out.compile.stderr
    assert out.run.model_dump() == out.compile.model_dump()


def test_output_keeps_arrival_order(piston, runtimes):
    out = piston.post_execute(
        language="python",
        version=version_of(runtimes, "python"),
        file=File(
            content="import sys, time\nfor i in range(3):\n"
            "    print('out', i, flush=True); time.sleep(0.05)\n"
            "    print('err', i, file=sys.stderr, flush=True); time.sleep(0.05)\n"
        ),
    )
    assert out.run.stdout == "out 0\nout 1\nout 2\n"
    assert out.run.stderr == "err 0\nerr 1\nerr 2\n"
    assert out.run.output == "out 0\nerr 0\nout 1\nerr 1\nout 2\nerr 2\n"


def test_run_timeout_kills(piston, runtimes):
    out = piston.post_execute(
        language="python",
        version=version_of(runtimes, "python"),
        file=File(content="while True: pass"),
        run_timeout=1000,
    )
    assert out.run.signal == "SIGKILL"  # upstream reports SIGKILL for status TO
    assert out.run.code is None


def test_unknown_runtime_is_a_400(piston):
    with pytest.raises(BadRequestError):
        piston.post_execute(language="brainfudge", version="9.9.9", file=File(content="+"))


def test_async_execute(piston, runtimes):
    async def go():
        return await asyncio.gather(
            *(
                piston.post_execute_async(
                    language="javascript",
                    version=version_of(runtimes, "javascript"),
                    file=File(content=f"console.log({i} * 2)"),
                )
                for i in range(3)
            )
        )

    results = asyncio.run(go())
    assert [r.run.stdout for r in results] == ["0\n", "2\n", "4\n"]

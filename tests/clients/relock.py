#!/usr/bin/env python3
"""Regenerate requirements.txt (every package of requirements.in's closure, pinned, with the
sha256 of the file pip picks on this machine) and package-lock.json. Run after changing a pin:
  python3 tests/clients/relock.py"""

import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


with tempfile.TemporaryDirectory() as tmp:
    venv, dl = Path(tmp, "venv"), Path(tmp, "dl")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = [venv / "bin" / "python", "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-r", HERE / "requirements.in"], check=True)
    frozen = subprocess.run([*pip, "freeze"], check=True, capture_output=True, text=True).stdout.split()
    Path(tmp, "frozen.txt").write_text("\n".join(frozen))
    subprocess.run([*pip, "download", "--no-deps", "-d", dl, "-r", Path(tmp, "frozen.txt")], check=True)
    files = {}
    for f in dl.iterdir():
        stem = f.name.removesuffix(".whl").removesuffix(".tar.gz").removesuffix(".zip")
        name, version = stem.split("-")[:2]
        files[(norm(name), version)] = f
    out = [
        "# The published clients under test and the test runner, every package pinned with its hash.",
        "# Installed by hack/clients.sh into a virtualenv outside the checkout (keyed by this file).",
        "# Regenerate with tests/clients/relock.py (from requirements.in).",
    ]
    for line in frozen:
        name, version = line.split("==")
        digest = hashlib.sha256(files[(norm(name), version)].read_bytes()).hexdigest()
        out += [f"{name}=={version} \\", f"    --hash=sha256:{digest}"]
    (HERE / "requirements.txt").write_text("\n".join(out) + "\n")

subprocess.run(["npm", "install", "--package-lock-only", "--no-audit", "--no-fund"], cwd=HERE, check=True)
print("wrote requirements.txt and package-lock.json")

#!/usr/bin/env python3
"""A small `helm` for this repository, over the public API of the PyPI package
helm-python-sdk (the real Helm v4 engine as a shared library). There is no helm binary on
these machines. Run it with the virtualenv's Python (hack/helm-venv.sh prints its path).

    helm-sdk.py info
    helm-sdk.py chart                                  metadata, default values, crds/
    helm-sdk.py render [--values F] [--name R] [--namespace NS] [--yaml] [--cluster]
    helm-sdk.py lint   [--values F] [--namespace NS] [--kube-version V]
    helm-sdk.py install   RELEASE --namespace NS [--values F] [--timeout S] [--without-crds]
    helm-sdk.py upgrade   RELEASE --namespace NS [--values F] [--timeout S]
    helm-sdk.py uninstall RELEASE --namespace NS [--timeout S] [--ignore-not-found]
    helm-sdk.py status    RELEASE --namespace NS
    helm-sdk.py list

Values are a JSON object, read from the file F (`-`: standard input). Results are printed as
one JSON document (render --yaml: the manifests as one YAML stream, NOTES.txt left out).
A Helm error is printed as `ErrorClass: message` on standard error, exit status 1.
render --cluster renders as an install against the cluster of KUBECONFIG would (a server
dry run: `.Capabilities` are the API server's, e.g. Kubernetes 1.20 and policy/v1beta1; no
object is created, but objects of the render that exist already must belong to the release).
The chart is charts/rce of this checkout unless --chart says otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import helm_python as helm

CHART = Path(__file__).resolve().parent.parent / "charts" / "rce"


def read_values(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    values = json.loads(text) if text.strip() else {}
    if not isinstance(values, dict):
        raise SystemExit("values must be a JSON object")
    return values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["info", "chart", "render", "lint", "install", "upgrade", "uninstall",
                                        "status", "list"])
    ap.add_argument("release", nargs="?")
    ap.add_argument("--chart", default=str(CHART))
    ap.add_argument("--values")
    ap.add_argument("--name", default="rce", help="release name of a render")
    ap.add_argument("--namespace", default="rce")
    ap.add_argument("--kube-version", default="v1.20.2")
    ap.add_argument("--timeout", type=int, default=240)
    ap.add_argument("--yaml", action="store_true")
    ap.add_argument("--without-crds", action="store_true",
                    help="install from a copy of the chart without crds/ (the cluster's CRDs are managed elsewhere)")
    ap.add_argument("--ignore-not-found", action="store_true")
    ap.add_argument("--cluster", action="store_true",
                    help="render: with the cluster's capabilities (an install's server dry run)")
    a = ap.parse_args()
    if a.command in ("install", "upgrade", "uninstall", "status") and not a.release:
        ap.error(f"{a.command} needs a RELEASE")
    helm.disable_logging()
    values = read_values(a.values)
    out: Any
    if a.command == "info":
        out = {"helm_sdk": helm.helm_sdk_version(), "helm_python_sdk": helm.__version__}
    elif a.command == "chart":
        with helm.Chart.load(a.chart) as chart:
            out = {"metadata": chart.metadata, "values": chart.values, "crds": chart.crds}
    elif a.command == "render":
        with helm.Chart.load(a.chart) as chart:
            if a.cluster:
                manifests = render_on_cluster(chart, a, values)
            else:
                manifests = chart.render(values or {}, name=a.name, namespace=a.namespace, is_install=True)
        if a.yaml:
            docs = [text for path, text in sorted(manifests.items()) if not path.endswith("NOTES.txt")]
            sys.stdout.write("".join(f"---\n{d.strip()}\n" for d in docs if d.strip()))
            return 0
        out = manifests
    elif a.command == "lint":
        out = helm.lint(a.chart, values, strict=True, namespace=a.namespace, kube_version=a.kube_version)
    elif a.command == "list":
        with helm.Config() as cfg:
            out = cfg.list(all_states=True, all_namespaces=True)
    else:
        with helm.Config(namespace=a.namespace) as cfg:
            if a.command == "install":
                out = install(cfg, a, values)
            elif a.command == "upgrade":
                with helm.Chart.load(a.chart) as chart:
                    out = cfg.upgrade(chart, a.release, values, namespace=a.namespace, wait="watcher",
                                      timeout=a.timeout)
            elif a.command == "uninstall":
                out = cfg.uninstall(a.release, wait="watcher", timeout=a.timeout, ignore_not_found=a.ignore_not_found)
            else:
                out = cfg.status(a.release)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


def render_on_cluster(chart: helm.Chart, a: argparse.Namespace, values: dict[str, Any] | None) -> dict[str, str]:
    """The manifests of an install's server dry run, by template path (as Chart.render)."""
    with helm.Config(namespace=a.namespace) as cfg:
        release = cfg.install(chart, a.name, values, namespace=a.namespace, dry_run="server")
    manifests: dict[str, str] = {}
    for doc in release["manifest"].split("\n---\n"):
        doc = doc.strip().removeprefix("---").strip()
        first, _, rest = doc.partition("\n")
        if not first.startswith("# Source: "):
            continue
        path = first.removeprefix("# Source: ").strip()
        manifests[path] = f"{manifests[path]}---\n{rest}\n" if path in manifests else f"{rest}\n"
    manifests[f"{chart.metadata['name']}/templates/NOTES.txt"] = release.get("notes") or ""
    return manifests


def install(cfg: helm.Config, a: argparse.Namespace, values: dict[str, Any] | None) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(a.chart)
        if a.without_crds:
            path = Path(tmp) / path.name
            shutil.copytree(a.chart, path, ignore=shutil.ignore_patterns("crds"))
        with helm.Chart.load(path) as chart:
            return cfg.install(chart, a.release, values, namespace=a.namespace, create_namespace=True,
                               wait="watcher", timeout=a.timeout)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except helm.HelmError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)

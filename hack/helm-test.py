#!/usr/bin/env python3
"""The rce Helm chart's tests, on the real Helm v4 engine (PyPI `helm-python-sdk`).

Run through hack/helm-test.sh, which prepares the virtualenv. Three parts:

  static   the CRDs under charts/rce/crds/ equal crds/, lint (default and non-default
           values), the values schema refuses bad values, render with default and with
           non-default values and assert on the objects (hardening of both Deployments, RBAC
           verbs, CRDs, Runtimes, Redis on/off, hostNetwork, namespaces, NetworkPolicies).
  cluster  against the cluster of KUBECONFIG (the local one by default): build and import
           the operator/shim images, `install` into a fresh namespace (hostNetwork, the
           host's Redis, the images imported locally), check what runs and what the service
           accounts may do, run an Execution through the in-cluster operator when no other
           operator would also take it, then `uninstall` and check that the release's
           objects are gone.
  summary  one line `N passed, M failed, K skipped`; the exit status is 1 when M > 0.

Options: --static-only, --no-build (use the operator/shim images already built),
--execution auto|always|never (default auto; also RCE_HELM_TEST_EXECUTION).
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import random
import re
import socket
import string
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

import helm_python as helm

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "rce"
CACHE = Path(os.environ.get("RCE_CACHE", "/var/cache/rce"))
STATE = Path(os.environ.get("RCE_STATE", "/var/lib/rce-local"))
IMAGES = CACHE / "images"
REDIS_PORT = int(os.environ.get("RCE_REDIS_PORT", "16379"))

# --------------------------------------------------------------------------------------------
# a tiny test runner


class Skip(Exception):
    """Raised by a check that cannot run here; the reason is printed."""


RESULTS = {"passed": 0, "failed": 0, "skipped": 0}
FAILURES: list[str] = []


def check(name: str, fn: Callable[[], Any]) -> bool:
    t0 = time.monotonic()
    try:
        fn()
    except Skip as e:
        RESULTS["skipped"] += 1
        print(f"skip - {name}: {e}", flush=True)
        return False
    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
        RESULTS["failed"] += 1
        FAILURES.append(name)
        detail = str(e) if isinstance(e, AssertionError) else f"{type(e).__name__}: {e}"
        print(f"FAIL - {name}: {detail}", flush=True)
        if os.environ.get("RCE_HELM_TEST_TRACE"):
            traceback.print_exc()
        return False
    RESULTS["passed"] += 1
    print(f"ok   - {name} ({time.monotonic() - t0:.1f}s)", flush=True)
    return True


def eq(actual: Any, expected: Any, what: str) -> None:
    assert actual == expected, f"{what}: expected {expected!r}, got {actual!r}"


def log(msg: str) -> None:
    print(f"[helm-test {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# rendering helpers


class Rendered:
    """The objects of one render, indexed by (kind, namespace, name)."""

    def __init__(self, manifests: dict[str, str]):
        self.notes = ""
        self.objects: list[dict[str, Any]] = []
        for path, text in manifests.items():
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    self.objects.append(doc)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def names(self, kind: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.all(kind))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        found = [
            o
            for o in self.all(kind)
            if o["metadata"]["name"] == name
            and (namespace is None or o["metadata"].get("namespace") == namespace)
        ]
        assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
        return found[0]

    def maybe(self, kind: str, name: str) -> dict[str, Any] | None:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        return found[0] if found else None


def render(values: dict[str, Any] | None = None, name: str = "rce", namespace: str = "rce") -> Rendered:
    with helm.Chart.load(CHART) as chart:
        return Rendered(chart.render(values or {}, name=name, namespace=namespace, is_install=True))


def container(deploy: dict[str, Any]) -> dict[str, Any]:
    cs = deploy["spec"]["template"]["spec"]["containers"]
    assert len(cs) == 1, f"{deploy['metadata']['name']}: expected one container, got {len(cs)}"
    return cs[0]


def env_of(deploy: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in container(deploy).get("env", []):
        out[e["name"]] = e.get("value", e.get("valueFrom"))
    return out


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """A ClusterRole's rules flattened to (apiGroup, resource, verb) triples."""
    out = set()
    for r in role.get("rules", []):
        for g in r.get("apiGroups", [""]):
            for res in r.get("resources", []):
                for v in r.get("verbs", []):
                    out.add((g, res, v))
    return out


def triples(groups: list[str], resources: list[str], verbs: list[str]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for g in groups for r in resources for v in verbs}


OPERATOR_RULES = (
    triples(["rce.dev"], ["executions", "executions/status", "executions/finalizers"],
            ["get", "list", "watch", "patch", "update", "delete"])
    | triples([""], ["pods"], ["create", "get", "list", "watch", "delete"])
    | triples([""], ["pods/log"], ["get"])
    | triples(["networking.k8s.io"], ["networkpolicies"], ["get", "create", "patch"])
    | triples(["", "events.k8s.io"], ["events"], ["create", "patch"])
)
OPERATOR_RUNTIME_RULES = triples(["rce.dev"], ["runtimes"], ["get", "list", "watch"])
SHIM_RULES = triples(["rce.dev"], ["executions"], ["create", "get", "list", "watch"]) | triples(
    ["rce.dev"], ["runtimes"], ["list", "watch"]
)


def assert_hardened(deploy: dict[str, Any], live: str, ready: str, host_network: bool = False) -> None:
    name = deploy["metadata"]["name"]
    pod = deploy["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    eq(psc.get("runAsNonRoot"), True, f"{name} pod runAsNonRoot")
    assert psc.get("runAsUser", 0) != 0, f"{name}: pod runs as uid 0"
    eq(psc.get("seccompProfile"), {"type": "RuntimeDefault"}, f"{name} pod seccompProfile")
    c = container(deploy)
    sc = c.get("securityContext", {})
    eq(sc.get("allowPrivilegeEscalation"), False, f"{name} allowPrivilegeEscalation")
    eq(sc.get("readOnlyRootFilesystem"), True, f"{name} readOnlyRootFilesystem")
    eq(sc.get("runAsNonRoot"), True, f"{name} container runAsNonRoot")
    eq(sc.get("privileged", False), False, f"{name} privileged")
    eq(sc.get("capabilities"), {"drop": ["ALL"]}, f"{name} capabilities")
    eq(sc.get("seccompProfile"), {"type": "RuntimeDefault"}, f"{name} container seccompProfile")
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            assert res.get(kind, {}).get(r), f"{name}: no {kind}.{r}"
    for p, path in (("livenessProbe", live), ("readinessProbe", ready)):
        get = c.get(p, {}).get("httpGet", {})
        eq(get.get("path"), path, f"{name} {p} path")
        eq(get.get("host"), "127.0.0.1" if host_network else None, f"{name} {p} host")
    eq(pod.get("hostNetwork", False), host_network, f"{name} hostNetwork")
    eq(pod.get("automountServiceAccountToken"), True, f"{name} automountServiceAccountToken")
    eq(pod.get("enableServiceLinks"), False, f"{name} enableServiceLinks")
    assert pod.get("serviceAccountName", "default") != "default", f"{name}: default service account"
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    assert "/tmp" in mounts, f"{name}: no writable /tmp"


def lang_runtime(lang: str) -> dict[str, Any]:
    """sandbox-images/langs/<lang>/runtime.yaml, the images engineer's catalog entry."""
    return yaml.safe_load((ROOT / "sandbox-images" / "langs" / lang / "runtime.yaml").read_text())


def workspace_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    m = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
    assert m, "no [workspace.package] version in Cargo.toml"
    return m.group(1)


# --------------------------------------------------------------------------------------------
# static checks


def static_checks() -> None:
    log("static checks: CRDs, lint, schema, render")

    def crds_in_sync() -> None:
        src, copy_ = ROOT / "crds" / "rce.dev.yaml", CHART / "crds" / "rce.dev.yaml"
        assert src.is_file(), f"{src.relative_to(ROOT)} does not exist (make crds)"
        assert copy_.is_file(), f"{copy_.relative_to(ROOT)} does not exist (hack/helm-crds.sh sync)"
        assert src.read_bytes() == copy_.read_bytes(), (
            "charts/rce/crds/rce.dev.yaml differs from crds/rce.dev.yaml (run: hack/helm-crds.sh sync)"
        )

    check("charts/rce/crds/ equals crds/", crds_in_sync)

    def chart_crds() -> None:
        with helm.Chart.load(CHART) as chart:
            crds = chart.crds
        names = set()
        for c in crds:
            for doc in yaml.safe_load_all(c["data"]):
                if doc:
                    eq(doc["kind"], "CustomResourceDefinition", "kind in crds/")
                    names.add(doc["metadata"]["name"])
        eq(names, {"executions.rce.dev", "runtimes.rce.dev"}, "CRDs Helm loads from crds/")

    check("Helm loads both CRDs from crds/", chart_crds)

    def versions() -> None:
        with helm.Chart.load(CHART) as chart:
            meta = chart.metadata
        eq(meta.get("appVersion"), workspace_version(), "Chart appVersion vs workspace version")
        eq(meta.get("name"), "rce", "chart name")

    check("Chart.yaml appVersion is the workspace version", versions)

    def lint_clean(values: dict[str, Any] | None, namespace: str) -> Callable[[], None]:
        def run() -> None:
            report = helm.lint(CHART, values, strict=True, namespace=namespace, kube_version="v1.20.2")
            bad = [m for m in report["messages"] if m["severity"] >= 2]
            assert not report["errors"] and not bad, f"lint: {report['errors'] or bad}"

        return run

    check("lint, default values", lint_clean(None, "rce"))
    check("lint, non-default values", lint_clean(NON_DEFAULT, "rce-system"))
    check("lint, in the default namespace", lint_clean(None, "default"))

    def schema_refuses(values: dict[str, Any], needle: str) -> Callable[[], None]:
        def run() -> None:
            try:
                render(values)
            except helm.HelmError as e:
                assert needle in str(e), f"error does not mention {needle!r}: {e}"
                return
            raise AssertionError(f"rendering {values} succeeded")

        return run

    check("schema refuses operator.replicas=2", schema_refuses({"operator": {"replicas": 2}}, "replicas"))
    check(
        "schema refuses an unknown Service type",
        schema_refuses({"shim": {"service": {"type": "Ingress"}}}, "type"),
    )
    check(
        "schema refuses a Runtime without run",
        schema_refuses({"runtimes": [{"name": "x", "version": "1", "sourceFile": "a"}]}, "run"),
    )
    check(
        "render fails without any Redis",
        schema_refuses({"redis": {"enabled": False}}, "redis.url"),
    )

    try:
        d = render()
    except Exception as e:  # noqa: BLE001
        check("render with default values", lambda: (_ for _ in ()).throw(e))
        return
    check("render with default values", lambda: None)

    def default_inventory() -> None:
        eq(d.names("Deployment"), ["rce-operator", "rce-redis", "rce-shim"], "Deployments")
        eq(d.names("Service"), ["rce-api", "rce-redis"], "Services")
        eq(d.names("ServiceAccount"), ["rce-operator", "rce-shim"], "ServiceAccounts")
        eq(d.names("Namespace"), ["rce", "rce-sandbox"], "Namespaces")
        eq(d.names("Runtime"), ["bash", "javascript", "python"], "Runtimes")
        eq(d.names("NetworkPolicy"), ["rce-redis", "rce-sandbox-deny-all"], "NetworkPolicies")
        eq(d.names("Secret"), ["rce-redis-url"], "Secrets")
        eq(d.names("ClusterRole"), ["rce-rce-operator", "rce-rce-operator-runtimes", "rce-rce-shim"], "ClusterRoles")
        eq(
            d.names("ClusterRoleBinding"),
            ["rce-rce-operator", "rce-rce-operator-runtimes", "rce-rce-shim"],
            "ClusterRoleBindings",
        )
        eq(d.all("RoleBinding"), [], "RoleBindings")
        eq(d.all("CustomResourceDefinition"), [], "CRDs among templates (they belong in crds/)")
        for o in d.objects:
            kind = o["kind"]
            if kind not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "Runtime"):
                assert o["metadata"].get("namespace"), f"{kind} {o['metadata']['name']} has no namespace"
            assert o["metadata"]["labels"].get("app.kubernetes.io/instance") == "rce", f"{kind} unlabelled"
        # Server-side apply (Helm 4) on older API servers needs the protocol of every port.
        r = render({"operator": {"metricsService": True}})
        for svc in r.all("Service"):
            for port in svc["spec"]["ports"]:
                assert port.get("protocol"), f"Service {svc['metadata']['name']} port {port['name']} has no protocol"
        for dep in r.all("Deployment"):
            for port in container(dep).get("ports", []):
                assert port.get("protocol"), f"{dep['metadata']['name']} port {port['name']} has no protocol"

    check("default render: the expected objects", default_inventory)
    check("operator Deployment is hardened", lambda: assert_hardened(d.get("Deployment", "rce-operator"), "/healthz", "/healthz"))
    check("shim Deployment is hardened", lambda: assert_hardened(d.get("Deployment", "rce-shim"), "/health", "/ready"))

    def redis_hardened() -> None:
        r = d.get("Deployment", "rce-redis")
        pod = r["spec"]["template"]["spec"]
        sc = container(r)["securityContext"]
        eq(pod["securityContext"]["runAsNonRoot"], True, "redis runAsNonRoot")
        eq(pod["automountServiceAccountToken"], False, "redis token")
        eq(sc["readOnlyRootFilesystem"], True, "redis readOnlyRootFilesystem")
        eq(sc["capabilities"], {"drop": ["ALL"]}, "redis capabilities")

    check("bundled Redis is hardened and has no API token", redis_hardened)

    def operator_config() -> None:
        op = d.get("Deployment", "rce-operator")
        env = env_of(op)
        eq(env["RCE_MAX_RUNNING"], "6", "RCE_MAX_RUNNING")
        eq(env["RCE_TTL_SECONDS"], "3600", "RCE_TTL_SECONDS")
        eq(env["RCE_NAMESPACES"], "", "RCE_NAMESPACES")
        eq(env["RCE_METRICS_ADDR"], "0.0.0.0:9464", "RCE_METRICS_ADDR")
        eq(env["RCE_REDIS_URL"], {"secretKeyRef": {"name": "rce-redis-url", "key": "url"}}, "RCE_REDIS_URL")
        assert "KUBERNETES_SERVICE_HOST" not in env, "API host overridden by default"
        assert "RCE_RUNTIME_CLASS_NAME" not in env, "runtime class set by default"
        eq(container(op)["image"], "rce.dev/rce-operator:0.1.0", "operator image")
        eq(container(op)["imagePullPolicy"], "IfNotPresent", "operator pull policy")
        eq(op["spec"]["replicas"], 1, "operator replicas")
        eq(op["spec"]["strategy"], {"type": "Recreate"}, "operator strategy")
        shim = d.get("Deployment", "rce-shim")
        senv = env_of(shim)
        eq(senv["RCE_SHIM_LISTEN"], "0.0.0.0:8080", "RCE_SHIM_LISTEN")
        eq(senv["RCE_SHIM_NAMESPACE"], "rce-sandbox", "RCE_SHIM_NAMESPACE")
        eq(container(shim)["image"], "rce.dev/rce-api-shim:0.1.0", "shim image")
        secret = d.get("Secret", "rce-redis-url")
        eq(secret["stringData"]["url"], "redis://rce-redis.rce.svc:6379", "bundled Redis URL")
        svc = d.get("Service", "rce-api")
        eq(svc["spec"]["type"], "ClusterIP", "API Service type")
        eq(svc["spec"]["ports"][0]["targetPort"], "http", "API Service targetPort")

    check("default render: operator and shim configuration", operator_config)

    def rbac() -> None:
        eq(rules_of(d.get("ClusterRole", "rce-rce-operator")), OPERATOR_RULES, "operator ClusterRole")
        eq(rules_of(d.get("ClusterRole", "rce-rce-operator-runtimes")), OPERATOR_RUNTIME_RULES, "operator runtimes")
        eq(rules_of(d.get("ClusterRole", "rce-rce-shim")), SHIM_RULES, "shim ClusterRole")
        for binding, role, sa in (
            ("rce-rce-operator", "rce-rce-operator", "rce-operator"),
            ("rce-rce-operator-runtimes", "rce-rce-operator-runtimes", "rce-operator"),
            ("rce-rce-shim", "rce-rce-shim", "rce-shim"),
        ):
            b = d.get("ClusterRoleBinding", binding)
            eq(b["roleRef"]["name"], role, f"{binding} roleRef")
            eq(b["subjects"], [{"kind": "ServiceAccount", "name": sa, "namespace": "rce"}], f"{binding} subjects")
        for sa in d.all("ServiceAccount"):
            eq(sa.get("automountServiceAccountToken"), False, f"{sa['metadata']['name']} automount")

    check("RBAC: exactly the verbs each part needs", rbac)

    def env_names_exist() -> None:
        # Every RCE_* variable the chart sets must be one the binary reads (a renamed flag
        # would otherwise be ignored silently).
        full = render({"sandbox": {"runtimeClassName": "x"}, "shim": {"corsOrigins": ["a"], "auth": {"apiKeysSecret": "k"}}})
        for dep, crate in (("rce-operator", "operator"), ("rce-shim", "api-shim")):
            src = "\n".join(f.read_text() for f in (ROOT / crate / "src").rglob("*.rs"))
            for name in env_of(full.get("Deployment", dep)):
                if name.startswith("RCE_"):
                    assert f'"{name}"' in src, f"{dep}: {name} is not read anywhere in {crate}/src"

    check("every RCE_* variable the chart sets is read by the operator / shim", env_names_exist)

    def runtimes() -> None:
        for lang in ("python", "javascript", "bash"):
            rt = d.get("Runtime", lang)
            eq(rt["apiVersion"], "rce.dev/v1alpha1", f"{lang} apiVersion")
            assert "namespace" not in rt["metadata"], f"{lang}: a Runtime is cluster-scoped"
            spec = rt["spec"]
            eq(spec["image"], f"rce.dev/sandbox-{lang}:0.1.0", f"{lang} image")
            catalog = lang_runtime(lang)["spec"]
            for key, want in catalog.items():
                if isinstance(want, str) and "{{" in want:
                    continue  # filled in by sandbox-images/build.sh (image, version)
                eq(spec.get(key), want, f"{lang} spec.{key} vs sandbox-images/langs/{lang}/runtime.yaml")
            assert re.fullmatch(r"\d+(\.\d+)+", spec["version"]), f"{lang} version {spec['version']!r}"

    check("Runtimes python/javascript/bash match sandbox-images/langs/*/runtime.yaml", runtimes)

    def namespaces_and_policies() -> None:
        for ns in ("rce", "rce-sandbox"):
            labels = d.get("Namespace", ns)["metadata"]["labels"]
            for mode in ("enforce", "warn", "audit"):
                eq(labels.get(f"pod-security.kubernetes.io/{mode}"), "restricted", f"{ns} PSA {mode}")
        eq(
            d.get("Namespace", "rce")["metadata"].get("annotations", {}).get("helm.sh/resource-policy"),
            "keep",
            "release namespace kept on uninstall",
        )
        np = d.get("NetworkPolicy", "rce-sandbox-deny-all")
        eq(np["metadata"]["namespace"], "rce-sandbox", "deny-all namespace")
        eq(np["spec"]["podSelector"], {"matchLabels": {"rce.dev/sandbox": "true"}}, "deny-all selector")
        eq(sorted(np["spec"]["policyTypes"]), ["Egress", "Ingress"], "deny-all policy types")
        eq((np["spec"]["ingress"], np["spec"]["egress"]), ([], []), "deny-all rules")
        rp = d.get("NetworkPolicy", "rce-redis")
        eq(rp["spec"]["policyTypes"], ["Ingress"], "redis policy types")
        eq(len(rp["spec"]["ingress"][0]["from"]), 2, "redis policy peers")

    check("namespaces carry Pod Security labels; NetworkPolicies", namespaces_and_policies)

    def notes() -> None:
        assert "port-forward service/rce-api 8080:80" in d.notes, d.notes
        assert "/api/execute" in d.notes

    check("NOTES.txt says how to reach the API", notes)

    # ---- non-default values
    try:
        n = render(NON_DEFAULT, name="prod", namespace="rce-system")
    except Exception as e:  # noqa: BLE001
        check("render with non-default values", lambda: (_ for _ in ()).throw(e))
        return
    check("render with non-default values", lambda: None)

    def host_network() -> None:
        for dep, live, ready in (("prod-rce-operator", "/healthz", "/healthz"), ("prod-rce-shim", "/health", "/ready")):
            deploy = n.get("Deployment", dep)
            assert_hardened(deploy, live, ready, host_network=True)
            eq(deploy["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirstWithHostNet", f"{dep} dnsPolicy")
            env = env_of(deploy)
            eq(env.get("KUBERNETES_SERVICE_HOST"), "127.0.0.1", f"{dep} KUBERNETES_SERVICE_HOST")
            eq(env.get("KUBERNETES_SERVICE_PORT"), "6443", f"{dep} KUBERNETES_SERVICE_PORT")
            eq(env.get("RCE_REDIS_URL"), {"secretKeyRef": {"name": "ext-redis", "key": "url"}}, f"{dep} Redis")
        op = n.get("Deployment", "prod-rce-operator")
        env = env_of(op)
        eq(env["RCE_METRICS_ADDR"], "127.0.0.1:19464", "operator binds loopback on the host network")
        eq(env["RCE_MAX_RUNNING"], "2", "RCE_MAX_RUNNING")
        eq(env["RCE_TTL_SECONDS"], "60", "RCE_TTL_SECONDS")
        eq(env["RCE_NAMESPACES"], "team-a,team-b", "RCE_NAMESPACES")
        eq(env["RCE_RUNTIME_CLASS_NAME"], "gvisor", "RCE_RUNTIME_CLASS_NAME")
        eq(env["RCE_SANDBOX_CPU_REQUEST"], "100m", "RCE_SANDBOX_CPU_REQUEST")
        eq(env["EXTRA"], "1", "extraEnv")
        eq(container(op)["args"], ["--start-timeout-seconds=60"], "extraArgs")
        eq(container(op)["image"], "registry.example/rce-operator:v9", "operator image")
        eq(container(op)["imagePullPolicy"], "Never", "operator pull policy")
        eq(container(op)["ports"][0]["containerPort"], 19464, "operator port")
        shim = n.get("Deployment", "prod-rce-shim")
        senv = env_of(shim)
        eq(senv["RCE_SHIM_LISTEN"], "127.0.0.1:18080", "shim binds loopback on the host network")
        eq(senv["RCE_SHIM_NAMESPACE"], "jobs", "shim namespace")
        eq(senv["RCE_SHIM_AUTH"], "true", "shim auth")
        eq(senv["RCE_SHIM_API_KEYS_FILE"], "/etc/rce-shim/api-keys", "shim keys file")
        eq(senv["RCE_SHIM_CORS_ORIGINS"], "https://a.example,https://b.example", "CORS origins")
        eq(shim["spec"]["strategy"], {"type": "Recreate"}, "shim strategy on the host network")
        vols = {v["name"]: v for v in shim["spec"]["template"]["spec"]["volumes"]}
        eq(vols["api-keys"]["secret"]["secretName"], "shim-keys", "api keys Secret")
        svc = n.get("Service", "prod-rce-api")
        eq((svc["spec"]["type"], svc["spec"]["ports"][0]["nodePort"]), ("NodePort", 30080), "NodePort")
        assert "127.0.0.1:18080" in n.notes, n.notes

    check("non-default render: hostNetwork, API override, operator and shim settings", host_network)

    def external_redis() -> None:
        eq(n.maybe("Deployment", "prod-rce-redis"), None, "Redis Deployment with redis.enabled=false")
        eq(n.maybe("Service", "prod-rce-redis"), None, "Redis Service with redis.enabled=false")
        eq(n.maybe("NetworkPolicy", "prod-rce-redis"), None, "Redis NetworkPolicy")
        eq(n.all("Secret"), [], "Secrets (the URL comes from redis.existingSecret)")
        r = render({"redis": {"enabled": False, "url": "redis://10.1.2.3:6379/2"}})
        eq(r.maybe("Deployment", "rce-redis"), None, "Redis Deployment with redis.url")
        eq(r.get("Secret", "rce-redis-url")["stringData"]["url"], "redis://10.1.2.3:6379/2", "external URL")

    check("Redis toggles: bundled off, external URL or Secret", external_redis)

    def scoped_rbac() -> None:
        # Several namespaces: the operator watches cluster-wide and filters, so it is bound
        # cluster-wide. Exactly one: a namespaced watch, and a RoleBinding there only.
        eq(n.all("RoleBinding"), [], "RoleBindings with two watched namespaces")
        eq(len(n.all("ClusterRoleBinding")), 3, "ClusterRoleBindings with two watched namespaces")
        one = render({"operator": {"watchNamespaces": ["team-a"]}}, name="prod", namespace="rce-system")
        eq(one.names("ClusterRoleBinding"), ["rce-system-prod-rce-operator-runtimes", "rce-system-prod-rce-shim"],
           "CRBs with one watched namespace")
        rbs = one.all("RoleBinding")
        eq([rb["metadata"]["namespace"] for rb in rbs], ["team-a"], "RoleBinding namespace")
        eq(rbs[0]["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                               "name": "rce-system-prod-rce-operator"}, "RoleBinding roleRef")
        eq(env_of(one.get("Deployment", "prod-rce-operator"))["RCE_NAMESPACES"], "team-a", "RCE_NAMESPACES")

    check("watchNamespaces: one namespace -> a RoleBinding there; several -> cluster-wide", scoped_rbac)

    def custom_runtimes() -> None:
        eq(n.names("Runtime"), ["cobol", "python"], "Runtimes")
        eq(n.get("Runtime", "python")["spec"]["image"], "registry.example/py:3", "explicit image")
        eq(n.get("Runtime", "cobol")["spec"]["image"], "registry.example/sb-cobol:v9", "defaulted image")
        eq(n.get("Runtime", "cobol")["spec"]["compile"], ["cobc", "-x", "{file}"], "compile command")
        eq(n.get("Runtime", "python")["metadata"]["annotations"], {"a": "b"}, "annotations")
        assert "name" not in n.get("Runtime", "python")["spec"], "name leaked into spec"
        eq(render({"runtimes": []}).all("Runtime"), [], "runtimes: [] installs none")

    check("Runtimes from a values list, extraRuntimes, images", custom_runtimes)

    def namespaces_nondefault() -> None:
        eq(n.names("Namespace"), ["jobs"], "Namespaces (release namespace not managed)")
        labels = n.get("Namespace", "jobs")["metadata"]["labels"]
        eq(labels["pod-security.kubernetes.io/enforce"], "restricted", "sandbox namespace PSA")
        eq(labels["team"], "x", "sandbox namespace extra label")
        eq(sorted(p["metadata"]["namespace"] for p in n.all("NetworkPolicy")), ["jobs", "team-a"], "deny-all places")
        assert "kubectl label --overwrite namespace rce-system" in n.notes, n.notes
        h = render({"hostNetwork": True})
        labels = h.get("Namespace", "rce")["metadata"]["labels"]
        eq(labels["pod-security.kubernetes.io/enforce"], "privileged", "release ns with hostNetwork")
        eq(labels["pod-security.kubernetes.io/warn"], "restricted", "release ns warn")
        eq(h.maybe("NetworkPolicy", "rce-redis"), None, "Redis policy with hostNetwork")
        dflt = render(namespace="default")
        eq(dflt.names("Namespace"), ["rce-sandbox"], "no Namespace object for default")
        assert "kubectl label --overwrite namespace default" in dflt.notes

    check("namespaces: managed or not, PSA levels, extra labels", namespaces_nondefault)

    def shim_off() -> None:
        r = render({"shim": {"enabled": False}})
        eq(r.names("Deployment"), ["rce-operator", "rce-redis"], "Deployments without the shim")
        eq(r.maybe("ClusterRole", "rce-rce-shim"), None, "shim ClusterRole")

    check("shim.enabled=false drops the shim", shim_off)


NON_DEFAULT: dict[str, Any] = {
    "hostNetwork": True,
    "kubernetesApi": {"host": "127.0.0.1", "port": "6443"},
    "namespace": {"create": False},
    "operator": {
        "image": {"repository": "registry.example/rce-operator", "tag": "v9", "pullPolicy": "Never"},
        "maxRunning": 2,
        "ttlSeconds": 60,
        "watchNamespaces": ["team-a", "team-b"],
        "metricsPort": 19464,
        "extraArgs": ["--start-timeout-seconds=60"],
        "extraEnv": [{"name": "EXTRA", "value": "1"}],
    },
    "shim": {
        "image": {"repository": "registry.example/rce-api-shim", "tag": "v9", "pullPolicy": "Never"},
        "port": 18080,
        "corsOrigins": ["https://a.example", "https://b.example"],
        "auth": {"enabled": True, "apiKeysSecret": "shim-keys"},
        "service": {"type": "NodePort", "nodePort": 30080},
    },
    "sandbox": {"namespace": "jobs", "namespaceLabels": {"team": "x"}, "runtimeClassName": "gvisor",
                "cpuRequest": "100m"},
    "networkPolicy": {"extraNamespaces": ["team-a"]},
    "redis": {"enabled": False, "existingSecret": "ext-redis"},
    "sandboxImages": {"repositoryPrefix": "registry.example/sb", "tag": "v9"},
    "runtimes": [
        {
            "name": "python",
            "image": "registry.example/py:3",
            "annotations": {"a": "b"},
            "version": "3.11.2",
            "sourceFile": "main.py",
            "run": ["python3", "{file}"],
        }
    ],
    "extraRuntimes": [
        {"name": "cobol", "version": "3.2", "sourceFile": "main.cob", "compile": ["cobc", "-x", "{file}"],
         "run": ["./main"]}
    ],
}

# --------------------------------------------------------------------------------------------
# cluster checks


def DEFAULT_RUNTIMES() -> list[dict[str, Any]]:  # noqa: N802 - a constant read from the chart
    with helm.Chart.load(CHART) as chart:
        return copy.deepcopy(chart.values["runtimes"])


def kubectl(*args: str, check_rc: bool = True, input_: str | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
    p = subprocess.run(["kubectl", *args], capture_output=True, text=True, input=input_, timeout=timeout)
    if check_rc and p.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def kget(*args: str) -> dict[str, Any]:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 3) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def image_present(ref: str) -> bool:
    p = subprocess.run(["ctr", "-n", "k8s.io", "images", "ls", "-q"], capture_output=True, text=True)
    return p.returncode == 0 and ref in p.stdout.split()


def ctr_import(tar: str) -> None:
    p = subprocess.run(["ctr", "-n", "k8s.io", "images", "import", tar], capture_output=True, text=True)
    assert p.returncode == 0, f"ctr import {tar}: {p.stderr.strip()}"


def cluster_checks(args: argparse.Namespace) -> None:
    kubeconfig = os.environ.setdefault("KUBECONFIG", str(STATE / "kubeconfig"))
    log(f"cluster checks against KUBECONFIG={kubeconfig}")
    reachable = subprocess.run(["kubectl", "get", "--raw", "/readyz"], capture_output=True, text=True)

    def cluster_up() -> None:
        assert reachable.returncode == 0, f"the cluster of {kubeconfig} is not reachable: {reachable.stderr.strip()}"

    if not check("the cluster answers", cluster_up):
        return

    def dry_run_default() -> None:
        # The default (non-hostNetwork) render, bundled Redis included, through the API
        # server's validation without creating anything (so nothing is pulled or started).
        # Into the existing `default` namespace, with Runtime names of its own.
        sfx = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        r = render({"sandbox": {"namespace": "default", "createNamespace": False}, "operator": {"metricsService": True},
                    "runtimes": [dict(e, name=f"dryrun-{sfx}-{e['name']}") for e in DEFAULT_RUNTIMES()]},
                   name=f"dryrun-{sfx}", namespace="default")
        docs = yaml.safe_dump_all(r.objects)
        p = kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=rce-helm-test", "-f", "-",
                    input_=docs, check_rc=False)
        assert p.returncode == 0, f"server-side dry run refused the default render: {p.stderr.strip()[:2000]}"
        eq(len(p.stdout.strip().splitlines()), len(r.objects), "objects accepted")

    check("the default render passes the API server's validation (server-side dry run)", dry_run_default)

    kc = yaml.safe_load(Path(kubeconfig).read_text())
    ctx_name = kc.get("current-context")
    ctx = next(c["context"] for c in kc["contexts"] if c["name"] == ctx_name)
    server = next(c["cluster"]["server"] for c in kc["clusters"] if c["name"] == ctx["cluster"])
    m = re.match(r"https://([^:/]+):(\d+)", server)
    api_host, api_port = (m.group(1), m.group(2)) if m else ("", "")

    # ---- images
    engine: dict[str, str] = {}

    def images() -> None:
        cmd = [str(ROOT / "hack" / "operator-image.sh"), "--import"] + (["--no-build"] if args.no_build else [])
        # The build can take minutes: its progress goes straight to stderr.
        p = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, timeout=3600)
        assert p.returncode == 0, f"hack/operator-image.sh exited {p.returncode} (its output is above)"
        for line in (IMAGES / "engine-index.tsv").read_text().splitlines():
            name, ref, _tar = line.split("\t")
            engine[name] = ref
            assert image_present(ref), f"{ref} is not in containerd after the import"

    if not check("operator and shim images built and imported (hack/operator-image.sh)", images):
        return
    tag = engine["rce-operator"].rsplit(":", 1)[1]
    assert tag != "latest"

    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
    rel = f"helmtest-{suffix}"
    ns = f"rce-helmtest-{suffix}"
    sandbox_ns = f"rce-helmtest-{suffix}-sb"
    metrics_port, shim_port = free_port(), free_port()
    runtime_name = f"{rel}-python"

    # The test's own Runtime: the python catalog entry with the locally built image, under a
    # name of its own (the cluster may already have a `python` Runtime owned by someone else).
    python_ref = ""
    python_tar = ""
    index = IMAGES / "index.tsv"
    if index.is_file():
        for line in index.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0] == "python":
                python_ref, python_tar = parts[1], parts[2]
    catalog = lang_runtime("python")
    rt_entry = {k: v for k, v in catalog["spec"].items() if k not in ("aliases", "judge0Ids", "image", "version")}
    rt_entry.update(name=runtime_name, image=python_ref or "rce.dev/sandbox-python:missing", version="3")
    rt_entry["annotations"] = {"rce.dev/test": "helm"}

    values = {
        "hostNetwork": True,
        "kubernetesApi": {"host": api_host, "port": api_port},
        "namespace": {"create": True, "labels": {"rce.dev/test": "true"}},
        "sandbox": {"namespace": sandbox_ns, "namespaceLabels": {"rce.dev/test": "true"}},
        "redis": {"enabled": False, "url": f"redis://127.0.0.1:{REDIS_PORT}"},
        "operator": {
            "image": {"tag": tag, "pullPolicy": "IfNotPresent"},
            "maxRunning": 2,
            "ttlSeconds": 600,
            "watchNamespaces": [sandbox_ns],
            "instance": rel,
            "metricsPort": metrics_port,
            "logLevel": "info,rce_operator=debug",
            # The local node is small and shared with the test suite.
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        },
        "shim": {
            "image": {"tag": tag, "pullPolicy": "IfNotPresent"},
            "port": shim_port,
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        },
        "runtimes": [rt_entry],
    }
    log(f"release {rel} in {ns}, sandboxes in {sandbox_ns}, metrics :{metrics_port}, shim :{shim_port}")

    # Decide before installing whether an Execution can be run by the in-cluster operator alone.
    # The release's operator serves only Executions labelled rce.dev/operator=<release> (its
    # shim labels what it creates so): other operators on this cluster (make up's, serving
    # unlabelled ones) leave them alone, and it leaves theirs alone.
    mode = args.execution
    if mode == "auto":
        run_execution = True
        why_not = ""
    else:
        run_execution = mode == "always"
        why_not = "--execution never" if mode == "never" else ""

    cfg = helm.Config(kubeconfig_path=kubeconfig, namespace=ns)
    installed = {"manifest": ""}
    crd_note: list[str] = []
    try:
        with helm.Chart.load(CHART) as chart:

            def install() -> None:
                try:
                    r = cfg.install(chart, rel, values, namespace=ns, create_namespace=True, wait="watcher",
                                    timeout=240)
                except helm.HelmReleaseError as e:
                    # Helm 4 applies crds/ server-side. When the cluster's rce CRDs are managed
                    # by someone else (make up applies crds/ with kubectl) and differ from the
                    # chart's copy (another build's types), that apply conflicts. Do not take
                    # them over in the middle of someone's run: install without crds/.
                    if "failed to install CRD" not in str(e) or "conflict" not in str(e):
                        raise
                    log(f"the cluster's CRDs differ from charts/rce/crds/ and are managed elsewhere: "
                        f"installing with skip_crds ({str(e).splitlines()[0][:200]})")
                    crd_note.append(str(e).splitlines()[0])
                    r = install_skip_crds(cfg, chart, rel, values, ns)
                installed["manifest"] = r.get("manifest", "")
                eq(r.get("status"), "deployed", "release status")

            ok = check("helm install into a fresh namespace (hostNetwork, host Redis, local images)", install)
        if not installed["manifest"]:
            try:
                installed["manifest"] = cfg.status(rel).get("manifest", "")
            except helm.HelmError:
                pass
        if ok:

            def crds_by_helm() -> None:
                if crd_note:
                    raise Skip("the cluster's CRDs are managed elsewhere and differ from the chart's: " + crd_note[0][:300])

            check("helm applied charts/rce/crds/ (server-side) at install", crds_by_helm)
            installed_checks(rel, ns, sandbox_ns, runtime_name, metrics_port, shim_port)
            if run_execution:
                execution_checks(rel, sandbox_ns, runtime_name, python_ref, python_tar, shim_port, metrics_port)
            else:
                check("Execution through the in-cluster operator", lambda: (_ for _ in ()).throw(Skip(why_not)))
        else:
            dump_diagnostics(ns)
    finally:
        uninstall_checks(cfg, rel, ns, sandbox_ns, installed["manifest"])


def install_skip_crds(cfg: Any, chart: Any, rel: str, values: dict[str, Any], ns: str) -> dict[str, Any]:
    """Config.install with Helm's skip_crds, which helm-python-sdk 0.2.2 does not expose in
    Python (its C library takes it in the options document)."""
    from helm_python import _native
    from helm_python.config import _loads_obj, _opts

    handle, ref = cfg._chart_args(chart)
    payload = _native.call_string(
        "helm_install", cfg._raw(), cfg._context_arg(None), handle, ref, rel, json.dumps(values),
        _opts(namespace=ns, timeout_seconds=240, wait="watcher", create_namespace=True, skip_crds=True),
    )
    return _loads_obj(payload)


def dump_diagnostics(ns: str) -> None:
    for args in (["get", "pods", "-o", "wide"], ["get", "events", "--sort-by=.lastTimestamp"]):
        p = kubectl("-n", ns, *args, check_rc=False)
        print(p.stdout[-4000:], p.stderr[-1000:], file=sys.stderr)
    for dep in ("operator", "shim"):
        p = kubectl("-n", ns, "logs", "-l", f"app.kubernetes.io/component={'api-shim' if dep == 'shim' else dep}",
                    "--tail=40", check_rc=False)
        print(f"--- {dep} log\n{p.stdout[-4000:]}{p.stderr[-1000:]}", file=sys.stderr)


def installed_checks(rel: str, ns: str, sandbox_ns: str, runtime_name: str, metrics_port: int, shim_port: int) -> None:
    full = f"{rel}-rce"

    def running() -> None:
        for dep in ("operator", "shim"):
            d = kget("-n", ns, "deployment", f"{full}-{dep}")
            eq(d["status"].get("availableReplicas"), 1, f"{dep} available replicas")
        pods = kget("-n", ns, "pods", "-l", f"app.kubernetes.io/instance={rel}")["items"]
        eq(len(pods), 2, "pods of the release")
        for p in pods:
            eq(p["spec"].get("hostNetwork"), True, f"{p['metadata']['name']} hostNetwork")
            c = p["status"]["containerStatuses"][0]
            eq(c["ready"], True, f"{p['metadata']['name']} ready")
            eq(c["restartCount"], 0, f"{p['metadata']['name']} restarts")
            sc = p["spec"]["containers"][0]["securityContext"]
            eq(sc["readOnlyRootFilesystem"], True, "readOnlyRootFilesystem as admitted")

    check("operator and shim Pods run, ready, on the host network", running)

    def endpoints() -> None:
        code, _ = http_get(f"http://127.0.0.1:{metrics_port}/healthz")
        eq(code, 200, "operator /healthz")
        code, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        eq(code, 200, "operator /metrics")
        code, _ = http_get(f"http://127.0.0.1:{shim_port}/health")
        eq(code, 200, "shim /health")
        code, _ = http_get(f"http://127.0.0.1:{shim_port}/ready")
        eq(code, 200, "shim /ready")

    check("operator /healthz and /metrics, shim /health and /ready answer on 127.0.0.1", endpoints)

    def objects() -> None:
        labels = kget("namespace", ns)["metadata"]["labels"]
        eq(labels.get("pod-security.kubernetes.io/enforce"), "privileged", "release ns PSA (hostNetwork)")
        eq(labels.get("pod-security.kubernetes.io/warn"), "restricted", "release ns PSA warn")
        labels = kget("namespace", sandbox_ns)["metadata"]["labels"]
        eq(labels.get("pod-security.kubernetes.io/enforce"), "restricted", "sandbox ns PSA")
        np = kget("-n", sandbox_ns, "networkpolicy", f"{full}-sandbox-deny-all")
        eq(np["spec"]["podSelector"]["matchLabels"], {"rce.dev/sandbox": "true"}, "deny-all selector")
        rt = kget("runtime", runtime_name)
        eq(rt["spec"]["run"], ["python3", "{file}"], "Runtime run")
        crds = kubectl("get", "crd", "-o", "name").stdout.split()
        for c in ("customresourcedefinition.apiextensions.k8s.io/executions.rce.dev",
                  "customresourcedefinition.apiextensions.k8s.io/runtimes.rce.dev"):
            assert c in crds, f"{c} missing"

    check("namespaces, PSA labels, NetworkPolicy, Runtime, CRDs exist", objects)

    def can_i(sa: str, verb: str, resource: str, namespace: str | None, want: bool) -> None:
        # `kubectl auth can-i VERB pods/x` means the pod named x: subresources go apart.
        resource, _, sub = resource.partition("/")
        args = ["auth", "can-i", verb, resource, f"--as=system:serviceaccount:{ns}:{full}-{sa}"]
        args += [f"--subresource={sub}"] if sub else []
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        p = kubectl(*args, check_rc=False)
        got = p.stdout.strip() == "yes"
        eq(got, want, f"{sa} can-i {verb} {resource}{'/' + sub if sub else ''} in {namespace or 'all namespaces'}")

    def rbac() -> None:
        can_i("operator", "create", "pods", sandbox_ns, True)
        can_i("operator", "get", "pods/log", sandbox_ns, True)
        can_i("operator", "patch", "executions.rce.dev/status", sandbox_ns, True)
        can_i("operator", "create", "networkpolicies.networking.k8s.io", sandbox_ns, True)
        can_i("operator", "delete", "networkpolicies.networking.k8s.io", sandbox_ns, False)
        can_i("operator", "create", "pods", "default", False)  # watchNamespaces scopes it
        can_i("operator", "list", "runtimes.rce.dev", None, True)
        can_i("operator", "create", "runtimes.rce.dev", None, False)
        can_i("operator", "get", "secrets", sandbox_ns, False)
        can_i("operator", "create", "pods/exec", sandbox_ns, False)
        can_i("operator", "update", "pods", sandbox_ns, False)
        can_i("operator", "get", "pods/log", "default", False)
        can_i("operator", "update", "executions.rce.dev/finalizers", sandbox_ns, True)
        can_i("shim", "create", "executions.rce.dev", sandbox_ns, True)
        can_i("shim", "watch", "executions.rce.dev", None, True)
        can_i("shim", "delete", "executions.rce.dev", sandbox_ns, False)
        can_i("shim", "create", "pods", sandbox_ns, False)
        can_i("shim", "list", "runtimes.rce.dev", None, True)

    check("service accounts: granted what they need, refused the rest", rbac)

    def no_forbidden() -> None:
        time.sleep(3)
        for comp in ("operator", "api-shim"):
            p = kubectl("-n", ns, "logs", "-l", f"app.kubernetes.io/component={comp}", "--tail=-1")
            bad = [ln for ln in p.stdout.splitlines() if "forbidden" in ln.lower()]
            assert not bad, f"{comp} was refused by the API server: {bad[:3]}"

    check("operator and shim logs show no RBAC refusal", no_forbidden)


def execution_checks(rel: str, sandbox_ns: str, runtime_name: str, python_ref: str, python_tar: str,
                     shim_port: int, metrics_port: int) -> None:
    def sandbox_image() -> None:
        assert python_ref, f"no python image in {IMAGES / 'index.tsv'} (make images)"
        if not image_present(python_ref):
            ctr_import(python_tar)
        assert image_present(python_ref), f"{python_ref} not in containerd"

    if not check("the python sandbox image is in containerd", sandbox_image):
        return

    def run_one() -> None:
        name = "print-42"
        kubectl("apply", "-n", sandbox_ns, "-f", "-", input_=yaml.safe_dump({
            "apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": name, "namespace": sandbox_ns, "labels": {"rce.dev/operator": rel}},
            "spec": {"language": runtime_name, "source": "print(6*7)"},
        }))
        deadline = time.monotonic() + 120
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = kget("-n", sandbox_ns, "execution", name).get("status") or {}
            if status.get("phase") in ("Completed", "Failed"):
                break
            time.sleep(0.5)
        eq(status.get("phase"), "Completed", f"phase (status: {json.dumps(status)[:600]})")
        eq(status.get("stdout"), "42\n", "stdout")
        eq(status.get("exitCode"), 0, "exit code")
        eq(status.get("verdict"), "Accepted", "verdict")

    check("kubectl apply an Execution: the in-cluster operator runs print(6*7) -> 42", run_one)

    def via_shim() -> None:
        body = json.dumps({"language": runtime_name, "code": "print(6*7)"}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{shim_port}/api/execute", data=body,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback only
            job = json.loads(r.read())
        job_id = job.get("jobId")
        assert job_id, f"no jobId in {job}"
        deadline = time.monotonic() + 120
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            code, text = http_get(f"http://127.0.0.1:{shim_port}/api/status/{job_id}")
            if code == 200:
                st = json.loads(text)
                if str(st.get("status", "")).lower() in ("completed", "failed"):
                    break
            time.sleep(0.5)
        eq(str(st.get("status", "")).lower(), "completed", f"shim status ({json.dumps(st)[:400]})")
        assert "42" in str(st.get("output", "")), f"output {st.get('output')!r}"

    check("POST /api/execute through the in-cluster shim -> 42", via_shim)

    def counted() -> None:
        # The in-cluster operator itself finished them (not some other operator).
        code, text = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        eq(code, 200, "operator /metrics")
        m = re.search(r'^rce_executions_finished_total\{phase="Completed",verdict="Accepted"\} (\d+)', text, re.M)
        assert m, "no rce_executions_finished_total{Completed,Accepted} in the in-cluster operator's metrics"
        assert int(m.group(1)) >= 1, f"the in-cluster operator finished {m.group(1)} Executions"

    check("the in-cluster operator's metrics count the finished Executions", counted)


def uninstall_checks(cfg: Any, rel: str, ns: str, sandbox_ns: str, manifest: str) -> None:
    def drain() -> None:
        # Executions carry the operator's finalizer: delete them while the operator runs, as
        # NOTES.txt tells users to, or the sandbox namespace could not finish deleting.
        kubectl("delete", "executions.rce.dev", "--all", "-n", sandbox_ns, "--wait=true", "--timeout=60s")
        left = kubectl("get", "executions.rce.dev", "-n", sandbox_ns, "-o", "name").stdout.split()
        eq(left, [], "Executions left in the sandbox namespace")

    check("delete the Executions before uninstalling (the operator removes its finalizer)", drain)

    def uninstall() -> None:
        r = cfg.uninstall(rel, wait="watcher", timeout=180)
        eq(r["release"]["status"], "uninstalled", "release status")

    check("helm uninstall", uninstall)

    def gone() -> None:
        names = [r["name"] for r in cfg.list(all_states=True, all_namespaces=True)]
        assert rel not in names, f"release {rel} still listed"
        left = []
        deadline = time.monotonic() + 120
        objs = [o for o in yaml.safe_load_all(manifest) if o] if manifest else []
        assert objs, "no release manifest to check against"
        pending = objs
        while pending and time.monotonic() < deadline:
            left = []
            for o in pending:
                kind, name = o["kind"], o["metadata"]["name"]
                if kind == "Namespace" and name == ns:
                    continue  # kept on purpose (it holds the release record): checked below
                args = ["get", f"{kind}.{o['apiVersion'].split('/')[0]}" if "/" in o["apiVersion"] else kind, name]
                if o["metadata"].get("namespace"):
                    args += ["-n", o["metadata"]["namespace"]]
                p = kubectl(*args, "-o", "name", check_rc=False)
                if p.returncode == 0:
                    left.append(f"{kind}/{name}")
                elif "NotFound" not in p.stderr and "not found" not in p.stderr:
                    raise AssertionError(f"kubectl {' '.join(args)}: {p.stderr.strip()}")
            pending = [o for o in pending if f"{o['kind']}/{o['metadata']['name']}" in left]
            if pending:
                time.sleep(1)
        assert not left, f"still present after uninstall: {left}"
        eq(kubectl("get", "ns", ns, "-o", "name", check_rc=False).returncode, 0, "kept release namespace")
        for crd in ("executions.rce.dev", "runtimes.rce.dev"):
            eq(kubectl("get", "crd", crd, "-o", "name", check_rc=False).returncode, 0, f"CRD {crd} kept")

    check("uninstall removed every object of the release (CRDs and the release namespace kept)", gone)

    # Clean up whatever is left, whatever happened above.
    try:
        cfg.uninstall(rel, ignore_not_found=True, timeout=120)
    except helm.HelmError:
        pass
    kubectl("delete", "ns", ns, sandbox_ns, "--ignore-not-found", "--wait=false", check_rc=False)


# --------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--static-only", action="store_true", help="lint and render only; no cluster")
    ap.add_argument("--no-build", action="store_true", help="use the operator/shim binaries already built")
    ap.add_argument("--execution", choices=["auto", "always", "never"],
                    default=os.environ.get("RCE_HELM_TEST_EXECUTION", "auto"))
    args = ap.parse_args()
    helm.disable_logging()
    log(f"Helm SDK {helm.helm_sdk_version()} (helm-python-sdk {helm.__version__}), chart {CHART}")
    static_checks()
    if not args.static_only:
        cluster_checks(args)
    if FAILURES:
        print("failed: " + "; ".join(FAILURES))
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed, {RESULTS['skipped']} skipped")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared helpers for the fairshift end-to-end suite.

Everything here talks to the real cluster started by ``e2e/cluster.sh`` (or a kind cluster)
through ``kubectl`` and to the real Prometheus over HTTP. Tests never sleep for a fixed time:
they poll with :func:`wait_for` until a condition holds or a timeout expires.

Main pieces:

* :class:`Kubectl` - runs ``kubectl`` (``/usr/bin/kubectl`` unless ``FAIRSHIFT_KUBECTL`` is
  set) with the suite's kubeconfig; ``apply``/``get``/``json``/``wait`` helpers, and
  :meth:`Kubectl.with_token` for acting as a ServiceAccount.
* :func:`wait_for` - poll a predicate until it returns something truthy.
* :class:`Prometheus` - PromQL queries and file-based service discovery targets
  (add/remove scrape targets while Prometheus runs).
* :class:`MetricsServer` - a tiny HTTP server on a free loopback port that serves a
  Prometheus text exposition, for tests that need a scrape target.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

E2E_DIR = Path(__file__).resolve().parent
CLUSTER_SH = E2E_DIR / "cluster.sh"
KUBECTL_BIN = os.environ.get("FAIRSHIFT_KUBECTL", "/usr/bin/kubectl")
# Image for pods that only need to exist and become Ready. On the local cluster kwok fakes
# them (the image is never pulled); on kind the pause image is already on the node.
POD_IMAGE = os.environ.get("FAIRSHIFT_E2E_POD_IMAGE", "registry.k8s.io/pause:3.10")


def tool(name: str) -> str:
    """Path of a tool built with the cluster (``helm``, ``kwok``, ``etcd``...), else from PATH."""
    import shutil

    bin_dir = os.environ.get("FAIRSHIFT_E2E_BIN")
    if bin_dir and os.access(os.path.join(bin_dir, name), os.X_OK):
        return os.path.join(bin_dir, name)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found (FAIRSHIFT_E2E_BIN={bin_dir!r})")
    return found


# --------------------------------------------------------------------------------------
# polling
# --------------------------------------------------------------------------------------
class WaitTimeoutError(AssertionError):
    """Raised by :func:`wait_for` when the condition did not hold in time."""


WaitTimeout = WaitTimeoutError


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.5,
    message: str | None = None,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` until it returns a truthy value; return that value.

    Exceptions listed in ``ignore`` count as "not yet" (the last one is reported on
    timeout). Raises :class:`WaitTimeoutError` (an ``AssertionError``) after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            last = value
            last_exc = None
            if value:
                return value
        except ignore as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            detail = f"last exception: {last_exc!r}" if last_exc else f"last value: {last!r}"
            raise WaitTimeoutError(f"timed out after {timeout:.0f}s waiting for {what} ({detail})")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def dns_name(text: str, max_len: int = 50) -> str:
    """Turn arbitrary text (e.g. a test name) into a valid DNS-1123 label prefix."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:max_len].strip("-") or "x"


# --------------------------------------------------------------------------------------
# kubectl
# --------------------------------------------------------------------------------------
class KubectlError(RuntimeError):
    def __init__(self, args: list[str], returncode: int, stdout: str, stderr: str):
        self.args_ = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"kubectl {' '.join(args)} exited {returncode}: {stderr.strip() or stdout.strip()}"
        )


Manifest = str | Mapping[str, Any] | Iterable[Mapping[str, Any]]


def to_yaml(manifest: Manifest) -> str:
    """YAML text for a manifest given as text, one object or a list of objects."""
    if isinstance(manifest, str):
        return manifest
    if isinstance(manifest, Mapping):
        return yaml.safe_dump(dict(manifest), sort_keys=False)
    return yaml.safe_dump_all([dict(m) for m in manifest], sort_keys=False)


class Kubectl:
    """``kubectl`` bound to one kubeconfig (and optionally a default namespace).

    ``k("get", "pods")`` returns stdout; failures raise :class:`KubectlError` unless
    ``check=False``, in which case the ``CompletedProcess`` is returned.
    """

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str],
        namespace: str | None = None,
        binary: str = KUBECTL_BIN,
        default_timeout: float = 60.0,
    ):
        self.kubeconfig = str(kubeconfig)
        self.namespace = namespace
        self.binary = binary
        self.default_timeout = default_timeout

    def ns(self, namespace: str | None) -> Kubectl:
        """A copy whose default namespace is ``namespace``."""
        return Kubectl(self.kubeconfig, namespace, self.binary, self.default_timeout)

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (e.g. the operator) that should use this cluster."""
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def run(
        self,
        *args: str,
        namespace: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", self.kubeconfig]
        ns = namespace if namespace is not None else self.namespace
        if ns:
            cmd += ["--namespace", ns]
        cmd += list(args)
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout or self.default_timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(list(args), proc.returncode, proc.stdout, proc.stderr)
        return proc

    def __call__(self, *args: str, **kw: Any) -> str:
        return self.run(*args, **kw).stdout

    def json(self, *args: str, **kw: Any) -> Any:
        """Run with ``-o json`` and parse the output."""
        return json.loads(self.run(*args, "-o", "json", **kw).stdout)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object as a dict, or None if it does not exist."""
        proc = self.run("get", kind, name, "-o", "json", "--ignore-not-found", namespace=namespace)
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def apply(
        self,
        manifest: Manifest,
        namespace: str | None = None,
        server_side: bool = False,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        args = ["apply", "-f", "-"]
        if server_side:
            args += ["--server-side", "--force-conflicts"]
        return self.run(*args, namespace=namespace, input=to_yaml(manifest), check=check)

    def create(
        self, manifest: Manifest, namespace: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "create", "-f", "-", namespace=namespace, input=to_yaml(manifest), check=check
        )

    def delete(
        self, kind: str, name: str, namespace: str | None = None, wait: bool = False
    ) -> None:
        self.run(
            "delete",
            kind,
            name,
            "--ignore-not-found",
            f"--wait={str(wait).lower()}",
            namespace=namespace,
        )

    def wait(
        self, resource: str, condition: str, namespace: str | None = None, timeout: float = 60.0
    ) -> str:
        """``kubectl wait --for=<condition> <resource>`` (e.g. ``condition=Available``)."""
        return self(
            "wait",
            f"--for={condition}",
            resource,
            f"--timeout={int(timeout)}s",
            namespace=namespace,
            timeout=timeout + 15,
        )

    def server(self) -> tuple[str, str | None]:
        """API server URL and CA file of the current context."""
        cfg = yaml.safe_load(Path(self.kubeconfig).read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        ca = cluster.get("certificate-authority")
        if ca is None and cluster.get("certificate-authority-data"):
            import base64

            fd, ca = tempfile.mkstemp(prefix="fairshift-e2e-ca-", suffix=".crt")
            os.write(fd, base64.b64decode(cluster["certificate-authority-data"]))
            os.close(fd)
        return cluster["server"], ca

    def with_token(self, token: str, directory: str | os.PathLike[str] | None = None) -> Kubectl:
        """A Kubectl that authenticates with a bearer token (e.g. from ``create token``)."""
        server, ca = self.server()
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority": ca}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
        fd, path = tempfile.mkstemp(prefix="kubeconfig-token-", dir=directory)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(cfg, f)
        return Kubectl(path, self.namespace, self.binary, self.default_timeout)


# --------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------
class PrometheusError(RuntimeError):
    pass


class Prometheus:
    """A running Prometheus: PromQL over HTTP and file-sd scrape targets.

    Targets are JSON files in ``sd_dir`` (one file per :meth:`add_target` name, written
    atomically); Prometheus watches the directory, so they appear and disappear while it
    runs. Every target gets the label ``job="fairshift-e2e"`` plus the labels you give.
    """

    def __init__(self, url: str, sd_dir: str | os.PathLike[str] | None):
        self.url = url.rstrip("/")
        self.sd_dir = Path(sd_dir) if sd_dir else None
        self._added: set[str] = set()

    # -- HTTP API -----------------------------------------------------------------------
    def api(self, path: str, params: Mapping[str, Any] | None = None, timeout: float = 10.0) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise PrometheusError(
                f"{url}: HTTP {exc.code}: {exc.read().decode(errors='replace')}"
            ) from exc
        if body.get("status") != "success":
            raise PrometheusError(f"{url}: {body}")
        return body["data"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def query(self, promql: str, time_: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns the ``result`` list (vector samples)."""
        params: dict[str, Any] = {"query": promql}
        if time_ is not None:
            params["time"] = time_
        data = self.api("/api/v1/query", params)
        return data["result"] if data["resultType"] in ("vector", "matrix") else [data]

    def query_value(self, promql: str) -> float | None:
        """The single value of an instant query, or None when it returns no sample."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{promql!r} returned {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        data = self.api(
            "/api/v1/query_range", {"query": promql, "start": start, "end": end, "step": step}
        )
        return list(data["result"])

    def targets(self, state: str = "active") -> list[dict[str, Any]]:
        return list(self.api("/api/v1/targets", {"state": state})[f"{state}Targets"])

    def target(self, address: str) -> dict[str, Any] | None:
        """The active target scraping ``address`` (host:port), if any."""
        for t in self.targets():
            if (
                t.get("labels", {}).get("instance") == address
                or t.get("scrapeUrl", "").split("/")[2] == address
            ):
                return t
        return None

    # -- file-based service discovery ------------------------------------------------------
    def add_target(
        self, name: str, targets: str | Iterable[str], labels: Mapping[str, str] | None = None
    ) -> Path:
        """Scrape ``targets`` (``host:port`` strings) from now on; ``name`` identifies the file.

        Labels become target labels on every scraped series (e.g. ``{"role": "canary"}``).
        ``__metrics_path__`` and ``__scheme__`` may be set through labels too.
        """
        if self.sd_dir is None:
            raise PrometheusError("no file-sd directory configured (FAIRSHIFT_PROMETHEUS_SD_DIR)")
        if isinstance(targets, str):
            targets = [targets]
        self.sd_dir.mkdir(parents=True, exist_ok=True)
        path = self.sd_dir / f"{dns_name(name, 100)}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": list(targets), "labels": dict(labels or {})}]))
        tmp.replace(path)  # atomic: Prometheus never reads a half-written file
        self._added.add(path.name)
        return path

    def remove_target(self, name: str) -> None:
        if self.sd_dir is None:
            return
        path = self.sd_dir / f"{dns_name(name, 100)}.json"
        path.unlink(missing_ok=True)
        self._added.discard(path.name)

    def remove_all_added(self) -> None:
        """Remove every target file this object added (fixture teardown)."""
        for fname in list(self._added):
            if self.sd_dir is not None:
                (self.sd_dir / fname).unlink(missing_ok=True)
        self._added.clear()

    def wait_for_target(
        self, address: str, health: str = "up", timeout: float = 60.0
    ) -> dict[str, Any]:
        """Wait until ``address`` is an active target whose last scrape has ``health``."""

        def check() -> dict[str, Any] | None:
            t = self.target(address)
            return t if t and t.get("health") == health else None

        return wait_for(
            check,
            timeout,
            message=f"prometheus target {address} {health}",
            ignore=(PrometheusError, OSError),
        )

    def wait_for_target_gone(self, address: str, timeout: float = 60.0) -> None:
        wait_for(
            lambda: self.target(address) is None,
            timeout,
            message=f"prometheus target {address} removed",
            ignore=(PrometheusError, OSError),
        )

    def wait_for_value(
        self,
        promql: str,
        predicate: Callable[[float], bool] = lambda v: True,
        timeout: float = 60.0,
    ) -> float:
        """Wait until ``promql`` returns one sample whose value satisfies ``predicate``."""

        def check() -> float | None:
            v = self.query_value(promql)
            return v if v is not None and predicate(v) else None

        # a value of 0.0 is falsy, so wrap it
        def boxed() -> list[float] | None:
            v = check()
            return [v] if v is not None else None

        box = wait_for(
            boxed,
            timeout,
            message=f"prometheus {promql!r}",
            ignore=(PrometheusError, OSError),
        )
        return box[0]


# --------------------------------------------------------------------------------------
# a scrape target
# --------------------------------------------------------------------------------------
class MetricsServer:
    """Serve a Prometheus text exposition on ``127.0.0.1:<free port>/metrics``.

    ``body`` is the exposition text or a callable returning it (called per scrape).
    Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, body: str | Callable[[], str], host: str = "127.0.0.1", port: int = 0):
        self.body = body
        self.host = host
        self.scrapes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                outer.scrapes += 1
                text = outer.body() if callable(outer.body) else outer.body
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# --------------------------------------------------------------------------------------
# cluster script
# --------------------------------------------------------------------------------------
def cluster_sh(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 3600, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``e2e/cluster.sh`` (up/down/status/env/build)."""
    return subprocess.run(
        ["bash", str(CLUSTER_SH), *args],
        env={**os.environ, **(env or {})},
        check=True,
        text=True,
        timeout=timeout,
        capture_output=capture,
    )


def cluster_env() -> dict[str, str]:
    """The variables ``cluster.sh env`` exports, as a dict."""
    out = cluster_sh("env", capture=True).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"export (\w+)='([^']*)'$", line.strip())
        if m:
            env[m.group(1)] = m.group(2)
    return env

"""Rendering of the deployment files for tests: the Docker Compose file as `docker compose`
would read it (YAML, ``.env`` file, variable interpolation, volume mounts), the Helm chart with
the pinned helm binary, and Ferry's config as a process sees it (a TOML file plus its FERRY_*
environment) through `relayer.config.load_config`.

Owns: `interpolate`, `read_env_file`, `ComposeProject`, `helm`, `config_with_env`. Must not
start containers or talk to a cluster; no Docker engine or Kubernetes is needed.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from adapters.errors import ConfigError
from relayer.config import FerryConfig, load_config

REPO = Path(__file__).resolve().parents[1]
HELM = REPO / ".ferry" / "tools" / "bin" / "helm"
# FERRY_* variables a process reads itself; every other FERRY_<SECTION>__<KEY> is config.
PROCESS_VARS = frozenset({"FERRY_CONFIG", "FERRY_LOG_LEVEL", "FERRY_LOG_FORMAT"})

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = (":-", ":?", ":+", "-", "?", "+")


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is missing, or a malformed ``${...}``."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Expand variables in `text` as the Compose specification does ("Interpolation"):
    ``$$`` is a literal ``$``; ``$VAR``, ``${VAR}``; ``${VAR:-default}`` / ``${VAR-default}``
    (unset or empty / unset); ``${VAR:?error}`` / ``${VAR?error}``; ``${VAR:+alt}`` /
    ``${VAR+alt}``. Defaults and alternatives may hold interpolations themselves.

    Raises:
        InterpolationError: a required variable is missing, or ``${`` is malformed.
    """
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "$" or i + 1 == len(text):
            out.append(c)
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "{":
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise InterpolationError(f"unterminated ${{ in {text!r}")
            out.append(_braced(text[i + 2:j - 1], env))
            i = j
        elif m := _NAME.match(text, i + 1):
            out.append(env.get(m.group(), ""))
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _braced(spec: str, env: Mapping[str, str]) -> str:
    m = _NAME.match(spec)
    if m is None:
        raise InterpolationError(f"invalid interpolation ${{{spec}}}")
    name, rest = m.group(), spec[m.end():]
    value = env.get(name)
    if not rest:
        return value or ""
    op = next((o for o in _OPS if rest.startswith(o)), None)
    if op is None:
        raise InterpolationError(f"invalid interpolation ${{{spec}}}")
    arg = rest[len(op):]
    missing = value is None or (op.startswith(":") and value == "")
    if op.endswith("-"):
        return interpolate(arg, env) if missing else str(value)
    if op.endswith("?"):
        if missing:
            raise InterpolationError(f"required variable {name} is missing: {arg}")
        return str(value)
    return "" if missing else interpolate(arg, env)  # + or :+


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(x, env) for x in node]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    return node


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a Compose ``.env`` file: ``KEY=VALUE`` lines, ``#`` comments, optional quotes."""
    out: dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key.strip()):
            raise ValueError(f"{path}:{n}: not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        out[key.strip()] = value
    return out


@dataclass(frozen=True)
class Mount:
    """One volume entry of a service: a named volume or a bind mount (host path)."""

    target: PurePosixPath
    volume: str | None
    host: Path | None
    read_only: bool


class ComposeProject:
    """A compose file rendered as `docker compose config` would: YAML with anchors and merge
    keys, the ``.env`` variables interpolated; named volumes are backed by directories under
    `volumes_root` so paths inside containers can be mapped to files.

    Args:
        compose_file: the docker-compose.yml.
        env: variables for interpolation (the ``.env`` file's).
        volumes_root: where named volumes live for `host_path`.
    """

    def __init__(self, compose_file: Path, env: Mapping[str, str], volumes_root: Path) -> None:
        self.dir = compose_file.parent
        raw = yaml.safe_load(compose_file.read_text())
        self.data: dict[str, Any] = _interpolate_tree(raw, env)
        self.services: dict[str, dict[str, Any]] = self.data["services"]
        self.volumes_root = volumes_root

    def environment(self, service: str) -> dict[str, str]:
        """The service's environment (map or ``KEY=VALUE`` list; null values dropped)."""
        env = self.services[service].get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        return {k: str(v) for k, v in env.items() if v is not None}

    def mounts(self, service: str) -> list[Mount]:
        out = []
        for entry in self.services[service].get("volumes") or []:
            if isinstance(entry, dict):
                if entry.get("source") is None:
                    continue  # tmpfs: nothing outlives the container
                src, dst = str(entry["source"]), entry["target"]
                ro = bool(entry.get("read_only"))
            else:
                parts = entry.split(":")
                src, dst = parts[0], parts[1]
                ro = len(parts) > 2 and "ro" in parts[2].split(",")
            if src.startswith((".", "/")):
                out.append(Mount(PurePosixPath(dst), None, (self.dir / src).resolve(), ro))
            else:
                out.append(Mount(PurePosixPath(dst), src, None, ro))
        return out

    def host_path(self, service: str, container_path: str) -> Path:
        """Where `container_path` of `service` is on this machine: a path in the service's
        container view (a directory whose mount targets link to the volumes and bind sources).

        Raises:
            LookupError: the path is on no mount of the service and holds none (it would be
                lost with the container, or not exist at all).
        """
        path = PurePosixPath(container_path)
        mounts = self.mounts(service)
        if not any(path == m.target or m.target in path.parents or path in m.target.parents
                   for m in mounts):
            raise LookupError(f"{service}: {container_path} is on no volume")
        root = self.volumes_root.parent / "containers" / service
        for m in mounts:
            link = root.joinpath(*m.target.parts[1:])
            if link.is_symlink():
                continue
            source = m.host if m.host is not None else self.volumes_root / str(m.volume)
            if m.host is None:
                source.mkdir(parents=True, exist_ok=True)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
        return root.joinpath(*path.parts[1:])


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm (.ferry/tools/bin/helm, built by `make install`).

    Raises:
        AssertionError: helm is not built, or (`check`) it exits non-zero (with its stderr).
    """
    if not HELM.exists():
        raise AssertionError(f"{HELM} is missing: run `make install` (it builds helm with "
                             "`go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)`)")
    proc = subprocess.run([str(HELM), *args], check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HELM_CACHE_HOME": "/tmp/ferry-helm-cache",
                               "HELM_CONFIG_HOME": "/tmp/ferry-helm-config",
                               "HELM_DATA_HOME": "/tmp/ferry-helm-data"})
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


@contextmanager
def _process_env(env: Mapping[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("FERRY_")}
    for k in saved:
        del os.environ[k]
    os.environ.update({k: v for k, v in env.items() if k.startswith("FERRY_")})
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("FERRY_")]:
            del os.environ[k]
        os.environ.update(saved)


def config_with_env(path: Path, env: Mapping[str, str]) -> FerryConfig:
    """Load `path` as a process with environment `env` would (`load_config`).

    Pydantic-settings ignores a FERRY_ variable whose section is unknown, so that is checked
    here: every FERRY_<SECTION>__<KEY> must name a config section.

    Raises:
        ConfigError: unknown key or section, or an invalid value (the message names it).
    """
    for name in env:
        if not name.startswith("FERRY_") or name in PROCESS_VARS:
            continue
        section = name.removeprefix("FERRY_").split("__", 1)[0].lower()
        if section not in FerryConfig.model_fields:
            raise ConfigError(f"{name}: no config section {section!r}")
    with _process_env(env):
        return load_config(path)

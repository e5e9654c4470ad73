"""The Dockerfile without a Docker engine: its build context (.dockerignore applied) and COPY lines
are replayed into a directory, and the wheel `pip install .[postgres]` would build from it must
hold every module and data file of Ferry's packages and the `ferry` entry point."""

from __future__ import annotations

import fnmatch
import json
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.deploy_render import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def ignored(rel: str, patterns: list[str]) -> bool:
    """Whether .dockerignore `patterns` leave `rel` out of the context (a pattern also covers
    everything below a matching directory; ``**/`` matches any depth)."""
    parts = rel.split("/")
    for pat in patterns:
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat) or (
                    pat.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], pat[3:])):
                return True
    return False


def build_context(dst: Path) -> None:
    """Replay the COPY lines of the Dockerfile from the context into `dst`."""
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    for word, rest in instructions():
        if word != "COPY":
            continue
        *sources, target = shlex.split(rest)
        for src in sources:
            path = REPO / src
            into = dst / (target if target not in ("./", ".") else "")
            if path.is_dir():
                for f in path.rglob("*"):
                    rel = f.relative_to(REPO).as_posix()
                    if f.is_file() and not ignored(rel, patterns):
                        out = into / f.relative_to(path)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(f, out)
            else:
                assert not ignored(src, patterns), f"{src} is copied but .dockerignore drops it"
                out = into / path.name if target.endswith("/") else dst / target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)


def test_image_runs_ferry_as_a_non_root_user_from_python_311_slim() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert ("RUN", 'pip install ".[postgres]" && rm -rf /src') in steps
    user = [rest for word, rest in steps if word == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert ("ENTRYPOINT", '["ferry"]') in steps
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(d.startswith("psycopg") for d in extras["postgres"])


def test_wheel_built_from_the_image_context_holds_every_module_and_data_file(
        tmp_path: Path) -> None:
    ctx = tmp_path / "src"
    build_context(ctx)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(tmp_path / "dist"), str(ctx)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("ferry-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    packages = [p.rstrip("*") for p in setuptools["packages"]["find"]["include"]]
    for pkg in packages:
        for f in (REPO / pkg).rglob("*.py"):
            rel = f.relative_to(REPO).as_posix()
            if (f.parent / "__init__.py").exists() or f.name == "__init__.py":
                assert rel in names, f"{rel} is missing from the image's wheel"
    for pkg, globs in setuptools["package-data"].items():
        for pattern in globs:
            for f in (REPO / pkg).glob(pattern):
                assert f.relative_to(REPO).as_posix() in names, f"{f} is not in the image"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ferry = relayer.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert json.dumps(project["project"]["scripts"]) == '{"ferry": "relayer.cli:main"}'

"""The committed contract artifacts are exactly what `node contracts/build.js` produces now.

Fails when a `contracts/src/*.sol` changes without rebuilding (or an artifact is hand-edited).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from adapters.errors import ConfigError
from contracts import load_artifact

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "contracts" / "artifacts"
BUILD_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node = shutil.which("node")
    if node is None:
        pytest.skip("`node` is not on PATH: cannot rebuild contracts to compare artifacts")
    out = tmp_path_factory.mktemp("artifacts")
    result = subprocess.run(
        [node, str(REPO / "contracts" / "build.js"), "--out", str(out)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, cwd=REPO, check=False,
    )
    assert result.returncode == 0, f"build.js failed:\n{result.stdout}\n{result.stderr}"
    return out


def test_rebuild_produces_the_same_set_of_artifacts(rebuilt: Path) -> None:
    sources = sorted(p.stem for p in (REPO / "contracts" / "src").glob("*.sol"))
    assert sorted(p.stem for p in rebuilt.glob("*.json")) == sources
    assert sorted(p.stem for p in ARTIFACTS.glob("*.json")) == sources


def test_committed_artifacts_equal_a_fresh_build_byte_for_byte(rebuilt: Path) -> None:
    stale = [
        p.name for p in sorted(rebuilt.glob("*.json"))
        if not (ARTIFACTS / p.name).is_file() or (ARTIFACTS / p.name).read_bytes() != p.read_bytes()
    ]
    assert not stale, f"stale artifacts {stale}: run `node contracts/build.js` and commit them"


@pytest.mark.parametrize("name", ["Bridge", "TestToken", "FeeToken"])
def test_load_artifact_returns_abi_and_creation_bytecode(name: str) -> None:
    artifact = load_artifact(name)
    assert artifact.name == name
    assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 2
    assert any(item.get("type") == "constructor" for item in artifact.abi)


def test_load_artifact_refuses_unknown_or_path_like_names() -> None:
    for bad in ["NoSuchContract", "../pyproject", "Bridge.json", ""]:
        with pytest.raises(ConfigError):
            load_artifact(bad)

"""Ferry's Solidity contracts as Python sees them: the compiled build artifacts.

Owns: loading ``contracts/artifacts/<Name>.json`` (written by ``node contracts/build.js`` from
``contracts/src/*.sol`` with solc 0.8.30) into an `Artifact`. Python takes ABIs and bytecode
from these files only, never by compiling or by hand-written ABI fragments.
Must not import web3 or talk to a chain; deployment lives in ``adapters/evm/devnet.py``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from adapters.errors import ConfigError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Artifact:
    """A compiled contract.

    Attributes:
        name: contract name, equal to its source file stem (``"Bridge"``).
        abi: the JSON ABI, as solc emits it.
        bytecode: creation bytecode, ``0x`` hex (constructor arguments not appended).
    """

    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def load_artifact(name: str) -> Artifact:
    """Load the committed build artifact of contract `name`.

    Args:
        name: contract name, e.g. ``"Bridge"``, ``"TestToken"``, ``"FeeToken"``.

    Returns:
        A fresh `Artifact` (the ABI list is not shared between calls).

    Raises:
        ConfigError: `name` is not a contract identifier, or its artifact is missing or
            malformed (rebuild with ``node contracts/build.js``).
    """
    if not _NAME.fullmatch(name):
        raise ConfigError(f"not a contract name: {name!r}")
    resource = resources.files(__name__).joinpath("artifacts", f"{name}.json")
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
        abi, bytecode = data["abi"], data["bytecode"]
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no artifact for contract {name!r}; run `node contracts/build.js`"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"malformed artifact for contract {name!r}: {exc}") from exc
    if not isinstance(abi, list) or not (isinstance(bytecode, str) and bytecode.startswith("0x")):
        raise ConfigError(f"malformed artifact for contract {name!r}")
    return Artifact(name=name, abi=abi, bytecode=bytecode)

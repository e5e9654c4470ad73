"""ABI encoding of the `Bridge` calls the EVM adapter makes, and its check against the artifact.

Owns: the canonical signatures and 4-byte selectors of the bridge functions used, the encoding
of `release` arguments (Solidity ABI spec, "Function Selector and Argument Encoding"), and
`check_bridge_abi`, which compares those signatures and the `Locked` layout with
``contracts/artifacts/Bridge.json`` so a contract change fails at start, not on chain.
Must not touch the network.
"""

from __future__ import annotations

import functools
import re

import eth_abi
from eth_utils import keccak

from adapters.base import ReleaseOrder
from adapters.errors import ConfigError, ValidationError
from adapters.evm.logs import LOCKED_SIGNATURE

# Bridge functions the adapter calls: name -> canonical signature (Solidity ABI spec).
SIGNATURES = {
    "release": "release(bytes32,address,address,uint256,bytes[])",
    "released": "released(bytes32)",
    "totalLocked": "totalLocked(address)",
    "totalReleased": "totalReleased(address)",
    "setNonce": "setNonce()",
    "threshold": "threshold()",
    "getValidators": "getValidators()",
}
SELECTORS = {name: "0x" + keccak(text=sig)[:4].hex() for name, sig in SIGNATURES.items()}
RELEASE_TYPES = ["bytes32", "address", "address", "uint256", "bytes[]"]
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@functools.cache
def check_bridge_abi() -> None:
    """Check ``Bridge.json`` declares every signature used here and `Locked`'s fixed layout.

    Raises:
        ConfigError: the artifact is missing, or a function/event differs from what this
            adapter encodes or decodes.
    """
    from contracts import load_artifact  # local: keeps `logs`/`finality` free of artifacts

    declared: dict[str, list[bool]] = {}
    for item in load_artifact("Bridge").abi:
        if item.get("type") in ("function", "event"):
            sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            declared[sig] = [bool(i.get("indexed")) for i in item["inputs"]]
    for sig in SIGNATURES.values():
        if sig not in declared:
            raise ConfigError(f"Bridge artifact has no function {sig}")
    if declared.get(LOCKED_SIGNATURE) != [True, True, True, False, False]:
        raise ConfigError(f"Bridge artifact's Locked event differs from {LOCKED_SIGNATURE}")


def hex_address(value: str, what: str) -> str:
    """Parse an untrusted 20-byte ``0x`` hex address (any case) into lowercase.

    Raises:
        ValidationError: not ``0x`` followed by exactly 40 hex digits; `what` names the field.
    """
    if not (isinstance(value, str) and _HEX_ADDRESS.fullmatch(value)):
        raise ValidationError(f"{what} is not a 20-byte 0x address: {value!r}")
    return value.lower()


def encode_release(order: ReleaseOrder) -> bytes:
    """ABI-encode the `release` arguments (Solidity ABI spec), after checking sizes.

    Raises:
        ValidationError: burn id not 32 bytes, bad address, amount outside (0, 2**256),
            a signature not 65 bytes, or no signatures.
    """
    if len(order.burn_id) != 32:
        raise ValidationError("burn id must be 32 bytes")
    token = hex_address(order.token, "token")
    recipient = hex_address(order.recipient, "recipient")
    if not 0 < order.amount < 2**256:
        raise ValidationError(f"amount out of range: {order.amount}")
    if not order.signatures or any(len(sig) != 65 for sig in order.signatures):
        raise ValidationError("release needs one or more 65-byte signatures")
    return eth_abi.encode(
        RELEASE_TYPES,
        [order.burn_id, token, recipient, order.amount, list(order.signatures)],
    )

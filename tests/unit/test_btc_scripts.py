"""Vault and deposit scripts, addresses (BIP-67, BIP-173, BIP-350 vectors), outpoint nonces."""

from __future__ import annotations

import hashlib

import pytest

from adapters.bitcoin import scripts
from adapters.bitcoin.scripts import (
    Vault,
    address_from_script_pubkey,
    bech32_decode,
    decode_segwit_address,
    deposit_script,
    multisig_script,
    outpoint_nonce,
    p2wsh,
    script_pubkey_from_address,
    sort_pubkeys,
)
from adapters.errors import ConfigError, InvalidAddress, ValidationError

K1 = bytes.fromhex("02ff12471208c14bd580709cb2358d98975247d8765f92bc25eab3b2763ed605f8")
K2 = bytes.fromhex("02fe6f0a5a297eb38c391581c4413e084773ea23954d93f7753db7dc0adc188b2f")
K3 = bytes.fromhex("02632b12f4ac5b1d1b72b2a3b508c19172de44f6f46bcee50ba33f3f9291e47ed0")
K4 = bytes.fromhex("027735a29bae7780a9755fae7a1c4374c656ac6a69ea9f3697fda61bb99a4f3e77")
K5 = bytes.fromhex("02e2cc6bd5f45edd43bebe7cb9b675f0ce9ed3efe613b177588290ad188d11b404")

# ----------------------------------------------------------------------------- BIP-67


@pytest.mark.parametrize(
    ("keys", "m", "sorted_keys", "script_hex", "p2sh_mainnet"),
    [
        # BIP-67 vector 1: two keys out of order.
        ([K1, K2], 2, [K2, K1],
         ("522102fe6f0a5a297eb38c391581c4413e084773ea23954d93f7753db7dc0adc188b2f2102ff12471208c1"
          "4bd580709cb2358d98975247d8765f92bc25eab3b2763ed605f852ae"),
         "39bgKC7RFbpoCRbtD5KEdkYKtNyhpsNa3Z"),
        # BIP-67 vector 2: already sorted.
        ([K3, K4, K5], 2, [K3, K4, K5], None, "3CKHTjBKxCARLzwABMu9yD85kvtm7WnMfH"),
        ([K5, K3, K4], 2, [K3, K4, K5], None, "3CKHTjBKxCARLzwABMu9yD85kvtm7WnMfH"),
    ],
)
def test_sorts_keys_per_bip67_and_builds_the_multisig_script(
    keys, m, sorted_keys, script_hex, p2sh_mainnet
):
    assert sort_pubkeys(keys) == tuple(sorted_keys)
    script = multisig_script(keys, m)
    if script_hex:
        assert script.hex() == script_hex
    digest = hashlib.new("ripemd160", hashlib.sha256(script).digest()).digest()
    p2sh = bytes([0xA9, 20]) + digest + bytes([0x87])
    assert address_from_script_pubkey(p2sh, "mainnet") == p2sh_mainnet


@pytest.mark.parametrize(
    ("keys", "m"),
    [
        ([K1, K1], 1),  # duplicate key
        ([K1, b"\x04" + K1[1:]], 1),  # not compressed
        ([K1, b"\x02" + b"\xff" * 32], 1),  # x >= p: not on the curve
        ([K1, K2], 0),
        ([K1, K2], 3),  # m > n
        ([], 1),
    ],
)
def test_refuses_bad_vault_keys_and_thresholds(keys, m):
    with pytest.raises(ConfigError):
        multisig_script(keys, m)


def test_multisig_allows_at_most_fifteen_keys():
    from coincurve import PrivateKey

    keys = [PrivateKey(bytes([i]) * 32).public_key.format() for i in range(1, 17)]
    assert multisig_script(keys[:15], 15)[-2:] == bytes([0x5F, 0xAE])  # OP_15 OP_CHECKMULTISIG
    with pytest.raises(ConfigError):
        multisig_script(keys, 15)


# ----------------------------------------------------------------------------- deposit scripts


def test_deposit_script_is_account_drop_then_the_vault_script():
    account = bytes(range(32))
    script = deposit_script([K1, K2], 2, account)
    assert script == b"\x20" + account + b"\x75" + multisig_script([K2, K1], 2)
    with pytest.raises(InvalidAddress):
        deposit_script([K1, K2], 2, account[:31])


def test_deposit_scripts_differ_per_account_and_from_the_vault():
    vault = Vault((K1, K2, K3), 2, "regtest")
    a, b = vault.deposit(b"\x01" * 32), vault.deposit(b"\x02" * 32)
    assert len({a.script_pubkey, b.script_pubkey, vault.script_pubkey}) == 3
    assert len({a.address, b.address, vault.address}) == 3
    assert a.script_pubkey == p2wsh(a.witness_script)
    assert script_pubkey_from_address(a.address, "regtest") == a.script_pubkey
    assert vault.witness_script_for(None) == vault.witness_script
    assert vault.witness_script_for(b"\x01" * 32) == a.witness_script
    assert vault.deposit(b"\x01" * 32) is a  # cached
    with pytest.raises(InvalidAddress):
        vault.deposit(b"\x01" * 31)


def test_vault_is_independent_of_key_order_and_checks_its_config():
    one, other = Vault((K1, K2, K3), 2, "regtest"), Vault((K3, K1, K2), 2, "regtest")
    assert one.address == other.address and one.sorted_pubkeys == (K3, K2, K1)
    assert one.address.startswith("bcrt1q") and one.address == one.address.lower()
    assert Vault((K1, K2), 2, "mainnet").address == (
        "bc1qknwt9mhqpd7hrjrvpqz57zjqk28xlp2h90te6v22en0m3uctnams3pq5ce"  # BIP-67 vector 1 P2WSH
    )
    for bad in [((K1, K2), 3, "regtest"), ((K1, K1), 1, "regtest"), ((K1, K2), 1, "litecoin")]:
        with pytest.raises(ConfigError):
            Vault(*bad)


# ----------------------------------------------------------------------------- addresses

P2SH_HASH = "56be8ea93912f37685542a2a864a5600f88a6754"  # hash160 of the BIP-67 vector 1 script
P2WSH_HASH = "b4dcb2eee00b7d71c86c08054f0a40b28e6f85572bd79d314accdfb8f30b9f77"
G_HASH160 = "751e76e8199196d454941c45d1b3a323f1433bd6"  # hash160 of the generator point
G_X = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"

ADDRESSES = [
    ("mainnet", "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", f"76a914{G_HASH160}88ac"),
    ("mainnet", "16UwLL9Risc3QfPqBUvKofHmBQ7wMtjvM",
     "76a914010966776006953d5567439e5e39f86a0d273bee88ac"),
    ("mainnet", "39bgKC7RFbpoCRbtD5KEdkYKtNyhpsNa3Z", f"a914{P2SH_HASH}87"),
    ("mainnet", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", f"0014{G_HASH160}"),
    ("mainnet", "bc1qknwt9mhqpd7hrjrvpqz57zjqk28xlp2h90te6v22en0m3uctnams3pq5ce",
     f"0020{P2WSH_HASH}"),
    ("mainnet", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", f"5120{G_X}"),
    ("regtest", "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r", f"76a914{G_HASH160}88ac"),
    ("regtest", "2N19tNw3Ss4L9QDERtCw7FhXb6jBsYmeXNu", f"a914{P2SH_HASH}87"),
    ("regtest", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", f"0014{G_HASH160}"),
    ("regtest", "bcrt1qknwt9mhqpd7hrjrvpqz57zjqk28xlp2h90te6v22en0m3uctnamstsuahv",
     f"0020{P2WSH_HASH}"),
    ("regtest", "bcrt1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqc8gma6", f"5120{G_X}"),
    ("testnet", "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
     "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"),
    ("signet", "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
     "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433"),
]


@pytest.mark.parametrize(("network", "address", "spk_hex"), ADDRESSES)
def test_address_round_trips(network, address, spk_hex):
    spk = bytes.fromhex(spk_hex)
    assert script_pubkey_from_address(address, network) == spk
    assert address_from_script_pubkey(spk, network) == address
    assert script_pubkey_from_address(address.upper() if "1q" in address else address,
                                      network) == spk


@pytest.mark.parametrize(
    ("network", "address"),
    [
        ("regtest", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
        ("testnet", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"),
        ("mainnet", "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"),
        ("regtest", "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"),
        ("mainnet", "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r"),
        ("regtest", "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"),
        ("regtest", "39bgKC7RFbpoCRbtD5KEdkYKtNyhpsNa3Z"),
        ("mainnet", "2N19tNw3Ss4L9QDERtCw7FhXb6jBsYmeXNu"),
    ],
)
def test_refuses_another_networks_address(network, address):
    with pytest.raises(InvalidAddress, match="not for"):
        script_pubkey_from_address(address, network)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMh", "checksum"),  # last character changed
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "checksum"),
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3T4", "mixes"),
        ("BC1SW50QGDZ25J", "unsupported witness v16"),  # valid BIP-350, but not P2TR
        ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "unsupported witness v2"),
        ("bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
         "unsupported witness v1 program of 40"),
        ("", "empty"),
        ("11111111111111111111116iowaD", "payload of 22 bytes"),  # valid checksum
        ("LLnCCHbSzfwWquEdaS5TF2Yt7uz5Qb1SZ1", "unknown base58 address version 48"),  # Litecoin
        ("hello world", "base58"),
    ],
)
def test_refuses_malformed_and_unsupported_addresses(address, reason):
    with pytest.raises(InvalidAddress, match=reason):
        script_pubkey_from_address(address, "mainnet")


@pytest.mark.parametrize(
    "spk_hex",
    [
        "6a0b68656c6c6f20776f726c64",  # OP_RETURN
        "5121" + K1.hex() + "51ae",  # bare 1-of-1 multisig
        "0015" + "00" * 21,  # v0 with a 21-byte program
        "5220" + "00" * 32,  # witness v2
        "",
    ],
)
def test_address_from_script_pubkey_is_none_for_nonstandard_scripts(spk_hex):
    assert address_from_script_pubkey(bytes.fromhex(spk_hex), "mainnet") is None


# BIP-350 test vectors (https://github.com/bitcoin/bips/blob/master/bip-0350.mediawiki).
BIP350_VALID_BECH32M = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]
BIP350_INVALID_BECH32M = [
    "\x201xj0phk",
    "\x7f1g6xzxy",
    "\x801vctc34",
    "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
    "qyrz8wqd2c9m",
    "1qyrz8wqd2c9m",
    "y1b0jsk6g",
    "lt1igcx5c0",
    "in1muywd",
    "mm1crxm3i",
    "au1s5cgom",
    "M1VUXWEZ",
    "16plkw9",
    "1p2gdwpf",
]
BIP350_VALID_ADDRESSES = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
     "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"),
    ("bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
     "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6"),
    ("BC1SW50QGDZ25J", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    ("tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
     "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433"),
    ("tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
     "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", f"5120{G_X}"),
]
BIP350_INVALID_ADDRESSES = [
    "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",  # invalid hrp
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",  # bech32 for v1
    "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",  # bech32 for v2
    "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",  # bech32 for v16
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",  # bech32m for v0
    "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",  # bech32m for v0
    "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",  # 'o' in checksum
    "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",  # witness version 17
    "bc1pw5dgrnzv",  # 1-byte program
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",  # 41 bytes
    "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",  # v0 with 16 bytes
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",  # mixed case
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",  # padding > 4 bits
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j",  # non-zero padding
    "bc1gmk9yu",  # empty data
]


@pytest.mark.parametrize("text", BIP350_VALID_BECH32M)
def test_accepts_bip350_bech32m_checksums(text):
    hrp, data, encoding = bech32_decode(text)
    assert encoding is scripts.Bech32Encoding.BECH32M
    assert scripts.bech32_encode(hrp, data, encoding) == text.lower()


@pytest.mark.parametrize("text", BIP350_INVALID_BECH32M)
def test_refuses_bip350_invalid_bech32m_strings(text):
    with pytest.raises(InvalidAddress):
        bech32_decode(text)


@pytest.mark.parametrize(("address", "spk_hex"), BIP350_VALID_ADDRESSES)
def test_decodes_bip350_valid_segwit_addresses(address, spk_hex):
    hrp = address[: address.rfind("1")].lower()
    version, program = decode_segwit_address(address, hrp)
    op = 0 if version == 0 else 0x50 + version
    assert (bytes([op, len(program)]) + program).hex() == spk_hex
    assert scripts.encode_segwit_address(hrp, version, program) == address.lower()


@pytest.mark.parametrize("address", BIP350_INVALID_ADDRESSES)
def test_refuses_bip350_invalid_segwit_addresses(address):
    network = "testnet" if address.lower().startswith("tb") else "mainnet"
    with pytest.raises(InvalidAddress):
        decode_segwit_address(address, scripts.HRP[network])
    with pytest.raises(InvalidAddress):
        script_pubkey_from_address(address, network)


def test_unknown_network_is_a_config_error():
    with pytest.raises(ConfigError):
        script_pubkey_from_address("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "bitcoin")


# ----------------------------------------------------------------------------- nonces


@pytest.mark.parametrize(
    ("txid", "vout", "nonce"),
    [
        ("00" * 27 + "01" + "deadbeef", 2, (1 << 32) | 2),
        ("ff" * 32, 0xFFFFFFFF, (1 << 256) - 1),
        ("ab" * 32, 0, int("ab" * 28, 16) << 32),
    ],
)
def test_outpoint_nonce_is_txid_prefix_then_vout(txid, vout, nonce):
    assert outpoint_nonce(txid, vout) == nonce


@pytest.mark.parametrize(
    ("txid", "vout"),
    [("ab" * 31, 0), ("zz" * 32, 0), ("ab" * 32, -1), ("ab" * 32, 2**32), (" ab" * 32, 0)],
)
def test_outpoint_nonce_refuses_malformed_outpoints(txid, vout):
    with pytest.raises(ValidationError):
        outpoint_nonce(txid, vout)

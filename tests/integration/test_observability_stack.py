"""Observability of a real run on anvil: the in-process stack (real ledger, relayer engine and
five validator daemons) bridges ETH both ways; its relayer metrics, relayer HTTP app, ledger
app and validators are then served on loopback ports as the processes serve them, scraped, and
watched by a real Prometheus (Debian's ``prometheus``) evaluating deploy/prometheus/alerts.yml.

- every metric an alert or a dashboard panel uses is exported by one of those endpoints;
- conditions built on the real run (a transfer without a quorum for two hours, a validator
  that stopped for an hour while the others signed on, a chain head not seen move for an hour,
  an RPC endpoint that refuses connections, a solvency halt) make their alerts active, and only
  those (validators' wall clocks are moved, and database times set back, instead of waiting);
- JSON log lines of the run carry ``transfer_id`` (relayer) and ``event_key`` (validators);
- a validator's ``/readyz`` turns 503 when its ledger stops answering, and back.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from eth_account import Account
from nacl.signing import SigningKey
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.errors import ConfigError
from adapters.evm.multi import MultiRpc
from adapters.evm.rpc import JsonRpc
from ledger.client import LedgerClient
from ledger.transactions import sign_burn
from relayer.accountant import Books
from relayer.cli.procs import ServiceProcess
from relayer.heads import chain_heads_table
from relayer.logs import json_formatter
from relayer.store import A, T
from tests.integration.stack import NETWORK, UNIT, Stack
from tests.unit.test_observability import ALERTS, Served, free_port, referenced_metrics
from validators.keystore import KdfParams, new_keystore
from validators.observability import ValidatorHttp

pytestmark = pytest.mark.integration
PROMETHEUS_READY_S = 30.0
ALERTS_ACTIVE_S = 60.0
FAST_KDF = KdfParams(time_cost=1, memory_cost_kib=8, parallelism=1)  # tests only


@dataclass
class Run:
    """The stack after the run, its endpoints, and what the run logged."""

    stack: Stack
    logs: list[dict[str, Any]]
    burn_transfer_id: int
    stuck_transfer_id: int
    quiet_validator: str  # EVM address of the validator that stopped for an hour
    dead_rpc: MultiRpc  # kept alive: its pool's open circuit is exported
    dead_endpoint: str
    halted_asset: str
    targets: dict[str, list[str]] = field(default_factory=dict)  # job -> host:port
    closers: list[Any] = field(default_factory=list)


def scrape_names(url: str) -> set[str]:
    text = httpx.get(url, timeout=10).text
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, anvil_eth: Any) -> Iterator[Run]:
    stack = Stack(tmp_path_factory.mktemp("obs"), {"ethereum": anvil_eth})
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    closers: list[Any] = []
    try:
        # 1. ETH to the ledger, every validator signing (at the wall clock's time T).
        user = SigningKey.generate()
        account = bytes(user.verify_key)
        stack.lock("ethereum", 2 * UNIT, account)
        stack.settle()
        assert stack.balance(account, "ethereum") == 2 * UNIT
        # 2. "An hour later" for validators 0-3 (their wall clock moves), while validator 4 is
        # stopped: a second lock is signed by the four only.
        quiet, busy = stack.daemons[4], stack.daemons[:4]
        for d in busy:
            d.metrics.wall = lambda: time.time() + 3600
        stack.daemons = busy
        stack.lock("ethereum", UNIT, account)
        stack.settle()
        stack.daemons = [*busy, quiet]
        # 3. Back, through the ledger's HTTP API; validator 4 runs again and catches up, but its
        # release signature is stored an hour old (the relayer's view of a stopped signer).
        chain = stack.chains["ethereum"].caip2
        payee = Account.create().address.lower()
        signed = sign_burn(user, NETWORK, stack.ledger.account(account).nonce,
                           asset_key(chain, NATIVE_TOKEN), UNIT // 2, chain, payee)
        stack.ledger_client().submit_transaction(signed)
        burn_key = "0x" + signed.burn_id.hex()
        stack.settle()
        assert stack.status(burn_key) == "transfer.executed"
        burn_transfer_id = stack.engine.store.get(burn_key).id
        # 4. A lock no validator signs: it waits for a quorum (made two hours old below).
        tx = stack.lock("ethereum", UNIT, account)
        for _ in range(2):
            stack.mine(stack.depth + 1)
            stack.tick()
        [stuck] = stack.engine.store.by_source_tx(tx)
        assert stuck.status == "transfer.confirmed"
        # 5. More conditions built on that run.
        store = stack.engine.store
        with store.engine.begin() as conn:
            conn.execute(update(T).where(T.c.id == stuck.id)
                         .values(created_at=T.c.created_at - 7200))
            conn.execute(update(A).where(A.c.validator == quiet.keys.evm_address.lower())
                         .values(received_at=A.c.received_at - 3600))
            conn.execute(update(chain_heads_table).values(
                updated_at=chain_heads_table.c.updated_at - 3600))
        dead_port = free_port()
        dead_rpc = MultiRpc([JsonRpc(f"http://127.0.0.1:{dead_port}", chain=chain, timeout_s=2,
                                     read_attempts=1),
                             JsonRpc(anvil_eth.rpc_url, chain=chain, timeout_s=5,
                                     read_attempts=1)],
                            chain=chain, chain_id=anvil_eth.chain_id, read_attempts=1,
                            cooldown_s=3600)
        assert int(dead_rpc.read("eth_blockNumber", []), 16) > 0  # failed over to anvil
        weth = stack.ledger.assets()[0]
        stack.engine.accountant.run()
        stack.engine.accountant.halt(Books(weth.asset, weth.origin_chain, weth.supply, 0,
                                           weth.supply - 1, exact=True), "test")
        stack.engine.refresh_gauges()
        # 4. Every endpoint as its process serves it.
        server, _thread = start_http_server(0, addr="127.0.0.1",
                                            registry=stack.engine.metrics.registry)
        closers.append(server.shutdown)
        relayer_http = Served(stack.relayer_http.app)  # the app the validators delivered to
        ledger_http = Served(stack.ledger_app)
        closers += [relayer_http.stop, ledger_http.stop]
        validators = [ValidatorHttp(d.metrics, "127.0.0.1", 0).start() for d in stack.daemons]
        closers += [v.close for v in validators]
        result = Run(stack, [], burn_transfer_id, stuck.id, quiet.keys.evm_address.lower(),
                     dead_rpc, f"127.0.0.1:{dead_port}", weth.asset, closers=closers)
        result.targets = {
            "ferry-relayer": [f"127.0.0.1:{server.server_address[1]}"],
            "ferry-relayer-http": [f"127.0.0.1:{relayer_http.port}"],
            "ferry-ledger": [f"127.0.0.1:{ledger_http.port}"],
            "ferry-validator": [f"127.0.0.1:{v.port}" for v in validators]}
        result.logs = [json.loads(line) for line in buffer.getvalue().splitlines()]
        yield result
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for close in reversed(closers):
            close()
        stack.close()


def test_every_metric_of_the_alerts_and_dashboard_is_exported_by_a_running_process(
        run: Run) -> None:
    exported: set[str] = set()
    for hosts in run.targets.values():
        for host in hosts:
            exported |= scrape_names(f"http://{host}/metrics")
    missing = referenced_metrics() - exported
    assert not missing, sorted(missing)


def test_relayer_and_validator_log_lines_about_a_transfer_carry_its_ids_as_json(
        run: Run) -> None:
    broadcast = [r for r in run.logs if r["logger"] == "relayer.engine"
                 and r["msg"].startswith("release broadcast")]
    assert [r["transfer_id"] for r in broadcast] == [run.burn_transfer_id]
    assert broadcast[0]["level"] == "INFO" and broadcast[0]["ts"]
    signed = [r for r in run.logs if r["logger"] == "validators.daemon"
              and r["msg"].startswith(("signed lock", "signed release"))]
    assert signed and all(r["event_key"] in r["msg"] for r in signed)
    burn_key = run.stack.engine.store.get_by_id(run.burn_transfer_id).event_key
    assert any(r["event_key"] == burn_key for r in signed)
    secrets = [k.ed25519_private_hex for k in run.stack.keys
               if hasattr(k, "ed25519_private_hex")]
    text = json.dumps(run.logs)
    assert not any(s in text for s in secrets)


def test_relayer_http_and_ledger_answer_health_and_readiness(run: Run) -> None:
    for job in ("ferry-relayer-http", "ferry-ledger"):
        [host] = run.targets[job]
        assert httpx.get(f"http://{host}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"http://{host}/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text


def test_validator_is_unready_while_its_ledger_is_down_and_ready_again_after(
        run: Run) -> None:
    daemon = run.stack.daemons[0]
    host = run.targets["ferry-validator"][0]
    assert httpx.get(f"http://{host}/readyz").status_code == 200
    assert httpx.get(f"http://{host}/healthz").json() == {"status": "ok"}
    ledger = daemon._ledger
    daemon._ledger = LedgerClient(f"http://127.0.0.1:{free_port()}", timeout_s=2.0)
    try:
        assert daemon.run_once().ok is False
        down = httpx.get(f"http://{host}/readyz")
        assert down.status_code == 503
        assert down.json()["reason"].startswith("ledger status unavailable")
    finally:
        daemon._ledger = ledger
    assert daemon.run_once().ok is True
    assert httpx.get(f"http://{host}/readyz").status_code == 200


# ============================================================================ Prometheus


class Prometheus:
    """Debian's prometheus on a loopback port, scraping `targets` every second and evaluating
    the alert rules every second; its log is kept for failures."""

    def __init__(self, workdir: Path, targets: dict[str, list[str]]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise ConfigError("prometheus not found: run `make install` (Debian package)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(ALERTS)],
                  "scrape_configs": [{"job_name": job, "static_configs": [{"targets": hosts}]}
                                     for job, hosts in targets.items()]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready in {timeout_s} s:\n{self.log_tail()}")

    def alerts(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/alerts", timeout=5).json()
        return list(body["data"]["alerts"])

    def log_tail(self) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text().splitlines()[-40:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def active(alerts: list[dict[str, Any]], name: str) -> list[dict[str, str]]:
    return [a["labels"] for a in alerts
            if a["labels"]["alertname"] == name and a["state"] in ("pending", "firing")]


def test_prometheus_raises_the_alerts_of_the_conditions_built_on_the_run_and_no_others(
        run: Run, tmp_path: Path) -> None:
    run.stack.engine.refresh_gauges()  # fresh for the rules' two-minute window
    prom = Prometheus(tmp_path, run.targets)
    try:
        prom.wait_ready(PROMETHEUS_READY_S)
        want = {"FerryTransferStuck", "FerryValidatorStoppedAttesting",
                "FerryValidatorReleaseSignaturesMissing", "FerryChainHeadStale",
                "FerryRpcCircuitOpen", "FerrySolvencyHalt"}
        deadline = time.monotonic() + ALERTS_ACTIVE_S
        alerts: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            alerts = prom.alerts()
            if all(active(alerts, name) for name in want):
                break
            time.sleep(0.5)
        names = {a["labels"]["alertname"] for a in alerts}
        assert want <= names, (sorted(names), prom.log_tail())
        chain = run.stack.chains["ethereum"].caip2
        [stuck] = active(alerts, "FerryTransferStuck")
        assert (stuck["state"], stuck["chain"], stuck["kind"]) == (
            "transfer.confirmed", chain, "lock")
        quiet_host = run.targets["ferry-validator"][4]
        stopped = active(alerts, "FerryValidatorStoppedAttesting")
        assert sorted((a["instance"], a["kind"]) for a in stopped) == [
            (quiet_host, "lock"), (quiet_host, "release")]
        [missing] = active(alerts, "FerryValidatorReleaseSignaturesMissing")
        assert missing["validator"] == run.quiet_validator
        assert [a["chain"] for a in active(alerts, "FerryChainHeadStale")] == [chain]
        circuits = active(alerts, "FerryRpcCircuitOpen")
        # In this one test process every target exports every live pool (a real relayer or
        # validator process exports its own): the dead endpoint, and only it.
        assert {(a["chain"], a["endpoint"]) for a in circuits} == {(chain, run.dead_endpoint)}
        assert "ferry-relayer" in {a["job"] for a in circuits}
        [halt] = active(alerts, "FerrySolvencyHalt")
        assert halt["asset"] == run.halted_asset and halt["severity"] == "critical"
        # Healthy parts raise nothing: anvil still answers, every target is up, the scan is
        # caught up, no transfer is held.
        for quiet_alert in ("FerryRpcAllEndpointsDown", "FerryProcessDown", "FerryChainHeadLag",
                            "FerryTransferHeld", "FerryTransferNotConfirming",
                            "FerryValidatorPassesFailing"):
            assert not active(alerts, quiet_alert), (quiet_alert, alerts)
    finally:
        prom.stop()


# ============================================================================ real processes


def test_ledger_and_validator_processes_serve_health_metrics_and_json_logs(
        tmp_path: Path, anvil_eth: Any) -> None:
    """`ferry ledger serve` and `ferry validator run` (with ``[validator] metrics_port``) as a
    user starts them: the validator is ready while its ledger answers and unready (503, with
    the reason) once the ledger process is stopped; every log line of both is one JSON object."""
    passphrase = "obs-Passphrase-never-logged"
    keys = new_keystore(tmp_path / "v1.json", passphrase, kdf=FAST_KDF)
    ledger_port, metrics_port = free_port(), free_port()
    config = tmp_path / "ferry.toml"
    config.write_text(f'''network = "ferry-obs"
[[chains]]
name = "ethereum"
chain_id = {anvil_eth.chain_id}
rpc_url = "{anvil_eth.rpc_url}"
bridge_address = "0x{"b1" * 20}"
[ledger]
database_url = "sqlite:///{tmp_path}/ledger.sqlite"
port = {ledger_port}
[relayer]
database_url = "sqlite:///{tmp_path}/relayer.sqlite"
[validator]
name = "validator-1"
keystore = "{tmp_path / 'v1.json'}"
relayer_url = "http://127.0.0.1:{free_port()}"
ledger_url = "http://127.0.0.1:{ledger_port}"
state_file = "{tmp_path / 'v1.state.json'}"
poll_interval_s = 0.2
ledger_poll_interval_s = 0.2
metrics_port = {metrics_port}
[validator_set]
epoch = 1
threshold = 1
[[validator_set.members]]
name = "validator-1"
ed25519 = "{keys.ed25519_public_hex}"
evm_address = "{keys.evm_address}"
''')
    env = {"FERRY_CONFIG": str(config), "FERRY_VALIDATOR__PASSPHRASE": passphrase}
    ledger = ServiceProcess("ledger", ["ledger", "serve"], tmp_path / "ledger.log", env)
    validator = ServiceProcess("validator-1", ["validator", "run"], tmp_path / "v1.log", env)
    for proc in (ledger, validator):
        proc.env.pop("FERRY_LOG_FORMAT", None)  # the default: JSON
    try:
        ledger.start().wait_http(f"http://127.0.0.1:{ledger_port}/readyz")
        assert "ferry_ledger_journal_seq" in httpx.get(
            f"http://127.0.0.1:{ledger_port}/metrics").text
        validator.start().wait_http(f"http://127.0.0.1:{metrics_port}/readyz")
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'ferry_validator_passes_total{outcome="ok"}' in metrics
        assert f'ferry_rpc_endpoint_up{{chain="eip155:{anvil_eth.chain_id}"' in metrics
        ledger.stop()
        deadline = time.monotonic() + 30
        ready = httpx.get(f"http://127.0.0.1:{metrics_port}/readyz")
        while ready.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            ready = httpx.get(f"http://127.0.0.1:{metrics_port}/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["reason"].startswith("ledger status unavailable")
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/healthz").status_code == 200
    finally:
        validator.stop()
        ledger.stop()
    for proc in (ledger, validator):
        lines = proc.log_path.read_text().splitlines()
        assert lines, proc.name
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    started = [r for r in records if r["msg"].startswith("validator metrics serving")]
    assert started and started[0]["logger"] == "validators.observability"
    assert passphrase not in validator.log_path.read_text()

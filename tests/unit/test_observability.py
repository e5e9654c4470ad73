"""Observability without chains: the alert rules (checked and unit-tested by Prometheus's own
promtool), the Grafana dashboard model, JSON logs, the RPC circuit-breaker metrics, and the
``/metrics``, ``/healthz`` and ``/readyz`` of the ledger and API apps over a real ledger (SQLite)
served by uvicorn on a loopback port.

The metrics of a real run, and alerts evaluated by a real Prometheus scraping it:
tests/integration/test_observability_stack.py.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from adapters.errors import ConfigError, RpcUnavailable
from adapters.multi_rpc import EndpointPool
from adapters.rpc_health import RpcHealthCollector
from api.app import ApiContext, create_api_app
from api.ledger import create_ledger_app
from ledger.client import LedgerClient
from ledger.testing import Harness
from relayer.config import FerryConfig
from relayer.inbox import AttestationInbox, TtlCache
from relayer.logs import json_formatter, setup_logging
from relayer.metrics import RelayerMetrics
from relayer.store import Store

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
PROMETHEUS_YML = ROOT / "deploy/prometheus/prometheus.yml"
DASHBOARD = ROOT / "deploy/grafana/ferry-dashboard.json"
SYNTHETIC = frozenset({"up"})  # series Prometheus makes itself, not a process


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        raise ConfigError("promtool not found: run `make install` (Debian package prometheus)")
    return path


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, check=False, capture_output=True,
                          text=True, timeout=120)


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    model = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in model["panels"] for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (PromQL parsed by promql-parser)."""
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def referenced_metrics() -> set[str]:
    """Every metric name used by an alert or a dashboard panel (without Prometheus's own)."""
    exprs = [r["expr"] for r in alert_rules()] + dashboard_exprs()
    return set().union(*(metric_names(e) for e in exprs)) - SYNTHETIC


# ============================================================================ rule files


def test_alert_rules_and_scrape_config_pass_promtool_check() -> None:
    out = run_promtool("check", "config", str(PROMETHEUS_YML))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 15 rules found" in out.stdout  # alerts.yml, loaded by prometheus.yml


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    bad = yaml.safe_load(ALERTS.read_text())
    bad["groups"][0]["rules"][0]["expr"] = "max by (chain (ferry_relayer_transfers)"
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(bad))
    out = run_promtool("check", "rules", str(path))
    assert out.returncode != 0


def test_alert_rules_cover_the_issue_with_severity_and_text() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    for required in ("FerryTransferStuck", "FerryChainHeadLag", "FerryChainHeadStale",
                     "FerryValidatorStoppedAttesting", "FerryValidatorReleaseSignaturesMissing",
                     "FerryRpcCircuitOpen",
                     "FerryRpcAllEndpointsDown", "FerrySolvencyHalt"):
        assert required in rules
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert "for" in rule, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    assert rules["FerrySolvencyHalt"]["labels"]["severity"] == "critical"


def test_every_expression_parses_and_names_only_ferry_metrics() -> None:
    names = referenced_metrics()
    assert {"ferry_relayer_oldest_pending_transfer_age_seconds", "ferry_rpc_circuit_open",
            "ferry_risk_solvency_halted", "ferry_api_http_requests_total",
            "ferry_ledger_mints_total", "ferry_validator_last_pass_timestamp_seconds"} <= names
    assert all(n.startswith("ferry_") for n in names), sorted(names)
    with pytest.raises(ValueError):
        metric_names("sum(rate(ferry_relayer_transfers[5m])")


def test_dashboard_is_a_grafana_model_with_the_panels_operators_need() -> None:
    model = json.loads(DASHBOARD.read_text())
    assert model["uid"] == "ferry-overview" and model["schemaVersion"] >= 36
    assert [v["name"] for v in model["templating"]["list"]] == ["datasource"]
    panels = model["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, p["title"]
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}" and t["refId"]
    titles = {p["title"] for p in panels}
    assert {"Transfers by state", "Executed rate", "Oldest pending transfer age",
            "Chain head and finalized height", "Chain head lag", "Attestation latency",
            "Validator last attestation", "RPC endpoints up", "Solvency halt", "Route paused",
            "API request rate", "API latency", "Ledger mints"} <= titles


# ============================================================================ rule semantics
# promtool evaluates the rules over synthetic series (its clock starts at 0; one sample a
# minute). Annotations are dropped from the copy under test: promtool compares them verbatim,
# and `promtool check rules` above already validates their templates.


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


R1 = {"instance": "relayer-1:9700", "job": "ferry-relayer"}
R2 = {"instance": "relayer-2:9700", "job": "ferry-relayer"}
FRESH_R1 = series("ferry_relayer_gauges_refreshed_timestamp_seconds", "0+60x40", **R1)
STALE_R2 = series("ferry_relayer_gauges_refreshed_timestamp_seconds", "0x40", **R2)


def case(inputs: list[dict[str, str]], eval_time: str, alert: str,
         expected: list[dict[str, str]]) -> dict[str, Any]:
    return {"interval": "1m", "input_series": inputs, "alert_rule_test": [
        {"eval_time": eval_time, "alertname": alert,
         "exp_alerts": [{"exp_labels": labels} for labels in expected]}]}


CASES = [
    # stuck: a quorum wait of an hour fires; a large-transfer delay, a still-observed lock and
    # a stale replica's frozen value do not.
    case([FRESH_R1, STALE_R2,
          series("ferry_relayer_oldest_pending_transfer_age_seconds", "3600+60x40", kind="lock",
                 state="transfer.confirmed", chain="eip155:1", wait="quorum", **R1),
          series("ferry_relayer_oldest_pending_transfer_age_seconds", "90000x40", kind="lock",
                 state="transfer.confirmed", chain="eip155:1", wait="large_transfer_delay",
                 **R1),
          series("ferry_relayer_oldest_pending_transfer_age_seconds", "3600x40", kind="lock",
                 state="transfer.observed", chain="eip155:1", wait="none", **R1),
          series("ferry_relayer_oldest_pending_transfer_age_seconds", "9999x40", kind="burn",
                 state="transfer.submitted", chain="eip155:56", wait="none", **R2)],
         "10m", "FerryTransferStuck",
         [{"severity": "critical", "kind": "lock", "state": "transfer.confirmed",
           "chain": "eip155:1", "wait": "quorum"}]),
    case([FRESH_R1, series("ferry_relayer_oldest_pending_transfer_age_seconds", "1200x40",
                           kind="lock", state="transfer.attested", chain="eip155:1",
                           wait="none", **R1)],
         "10m", "FerryTransferStuck", []),
    case([FRESH_R1,
          series("ferry_relayer_oldest_pending_transfer_age_seconds", "20000x40", kind="lock",
                 state="transfer.observed", chain="bip122:0f9188f13cb7b2c71f2a335e3a4fc328",
                 wait="none", **R1),
          series("ferry_relayer_oldest_pending_transfer_age_seconds", "7200x40", kind="lock",
                 state="transfer.observed", chain="eip155:1", wait="none", **R1)],
         "20m", "FerryTransferNotConfirming",
         [{"severity": "warning", "kind": "lock",
           "chain": "bip122:0f9188f13cb7b2c71f2a335e3a4fc328"}]),
    case([FRESH_R1,
          series("ferry_relayer_pending_transfers", "2x40", kind="burn", state="transfer.held",
                 chain="eip155:56", wait="none", **R1),
          series("ferry_relayer_pending_transfers", "5x40", kind="lock",
                 state="transfer.confirmed", chain="eip155:1", wait="none", **R1)],
         "20m", "FerryTransferHeld",
         [{"severity": "warning", "kind": "burn", "chain": "eip155:56"}]),
    case([FRESH_R1,
          series("ferry_relayer_chain_scan_lag_blocks", "500x40", chain="eip155:1", **R1),
          series("ferry_relayer_chain_scan_lag_blocks", "50x40", chain="eip155:56", **R1)],
         "15m", "FerryChainHeadLag", [{"severity": "warning", "chain": "eip155:1"}]),
    case([FRESH_R1,
          series("ferry_relayer_chain_head_age_seconds", "600+60x40", chain="eip155:1", **R1),
          series("ferry_relayer_chain_head_age_seconds", "600+60x40",
                 chain="bip122:000000000019d6689c085ae165831e93", **R1),
          series("ferry_relayer_chain_head_age_seconds", "6000+60x40",
                 chain="bip122:0f9188f13cb7b2c71f2a335e3a4fc328", **R1),
          series("ferry_relayer_chain_head_age_seconds", "2x40", chain="eip155:56", **R1)],
         "10m", "FerryChainHeadStale",
         [{"severity": "critical", "chain": "eip155:1"},
          {"severity": "critical", "chain": "bip122:0f9188f13cb7b2c71f2a335e3a4fc328"}]),
    # validator-3's newest accepted lock delivery falls behind validator-1/2's, which keep
    # moving: 15 minutes behind (+5 minutes `for`) it fires for validator-3 only; releases (no
    # one newer) do not.
    case([series("ferry_validator_last_delivery_timestamp_seconds", "1700000000+60x40",
                 kind="lock", instance="validator-1:9800", job="ferry-validator"),
          series("ferry_validator_last_delivery_timestamp_seconds", "1700000000+60x40",
                 kind="lock", instance="validator-2:9800", job="ferry-validator"),
          series("ferry_validator_last_delivery_timestamp_seconds", "1700000000x40",
                 kind="lock", instance="validator-3:9800", job="ferry-validator"),
          series("ferry_validator_last_delivery_timestamp_seconds", "1600000000x40",
                 kind="release", instance="validator-3:9800", job="ferry-validator")],
         "25m", "FerryValidatorStoppedAttesting",
         [{"severity": "warning", "kind": "lock", "instance": "validator-3:9800",
           "job": "ferry-validator"}]),
    case([series("ferry_validator_last_delivery_timestamp_seconds", "1700000000+60x40",
                 kind="lock", instance="validator-1:9800", job="ferry-validator"),
          series("ferry_validator_last_delivery_timestamp_seconds", "1700000000x40",
                 kind="lock", instance="validator-3:9800", job="ferry-validator")],
         "12m", "FerryValidatorStoppedAttesting", []),  # 12 min behind: not yet
    # The relayer's stored release signatures: 0xe3 stopped, 0xe1/0xe2 go on; a stale
    # replica's frozen view of 0xe4 is ignored.
    case([FRESH_R1, STALE_R2,
          series("ferry_relayer_validator_last_attestation_timestamp_seconds",
                 "1700000000+60x40", kind="release", validator="0xe1", **R1),
          series("ferry_relayer_validator_last_attestation_timestamp_seconds",
                 "1700000000+60x40", kind="release", validator="0xe2", **R1),
          series("ferry_relayer_validator_last_attestation_timestamp_seconds",
                 "1700000000x40", kind="release", validator="0xe3", **R1),
          series("ferry_relayer_validator_last_attestation_timestamp_seconds",
                 "1600000000x40", kind="release", validator="0xe4", **R2),
          series("ferry_relayer_validator_last_attestation_timestamp_seconds",
                 "1600000000x40", kind="lock", validator="0xv9", **R1)],
         "25m", "FerryValidatorReleaseSignaturesMissing",
         [{"severity": "warning", "kind": "release", "validator": "0xe3"}]),
    case([series("ferry_rpc_circuit_open", "1x40", chain="eip155:1",
                 endpoint="rpc-a.example:443", **R1),
          series("ferry_rpc_circuit_open", "0x40", chain="eip155:1",
                 endpoint="rpc-b.example:443", **R1),
          series("ferry_rpc_circuit_open", "1 0 1 0 1 0 1 0 1 0", chain="eip155:56",
                 endpoint="rpc-c.example:443", **R1)],  # flapping: never open for 5 min
         "9m", "FerryRpcCircuitOpen",
         [{"severity": "warning", "chain": "eip155:1", "endpoint": "rpc-a.example:443", **R1}]),
    case([series("ferry_rpc_endpoint_up", "0x40", chain="eip155:1",
                 endpoint="rpc-a.example:443", **R1),
          series("ferry_rpc_endpoint_up", "0x40", chain="eip155:1",
                 endpoint="rpc-b.example:443", **R1),
          series("ferry_rpc_endpoint_up", "0x40", chain="eip155:56",
                 endpoint="rpc-c.example:443", **R1),
          series("ferry_rpc_endpoint_up", "1x40", chain="eip155:56",
                 endpoint="rpc-d.example:443", **R1)],
         "5m", "FerryRpcAllEndpointsDown",
         [{"severity": "critical", "chain": "eip155:1", **R1}]),
    case([FRESH_R1, STALE_R2,
          series("ferry_risk_solvency_halted", "0 0 1x38", asset="eip155:1/0x00", **R1),
          series("ferry_risk_solvency_halted", "0x40", asset="eip155:56/0x00", **R1),
          series("ferry_risk_solvency_halted", "1x40", asset="eip155:10/0x00", **R2)],
         "3m", "FerrySolvencyHalt", [{"severity": "critical", "asset": "eip155:1/0x00"}]),
    case([FRESH_R1, series("ferry_risk_solvency_halted", "0x40", asset="eip155:1/0x00", **R1)],
         "3m", "FerrySolvencyHalt", []),
    case([FRESH_R1,
          series("ferry_risk_route_paused", "1x40", route="eip155:1>ferry:ledger:a", **R1),
          series("ferry_risk_route_paused", "0x40", route="ferry:ledger>eip155:1:a", **R1)],
         "35m", "FerryRoutePaused", [{"severity": "warning", "route": "eip155:1>ferry:ledger:a"}]),
    case([series("ferry_validator_last_ok_pass_timestamp_seconds", "0x40",
                 instance="validator-1:9800", job="ferry-validator"),
          series("ferry_validator_last_ok_pass_timestamp_seconds", "0+60x40",
                 instance="validator-2:9800", job="ferry-validator")],
         "15m", "FerryValidatorPassesFailing",
         [{"severity": "warning", "instance": "validator-1:9800", "job": "ferry-validator"}]),
    case([series("up", "0x40", instance="ledger:8600", job="ferry-ledger"),
          series("up", "1x40", instance="api:8800", job="ferry-api")],
         "10m", "FerryProcessDown",
         [{"severity": "critical", "instance": "ledger:8600", "job": "ferry-ledger"}]),
    case([series("ferry_api_http_requests_total", "0+10x40", method="GET", route="/v1/chains",
                 status="500", instance="api:8800", job="ferry-api"),
          series("ferry_api_http_requests_total", "0+10x40", method="GET", route="/v1/chains",
                 status="200", instance="api:8800", job="ferry-api")],
         "20m", "FerryApiErrors", [{"severity": "warning", "job": "ferry-api"}]),
]


def test_alert_rules_fire_on_their_condition_and_not_beside_it(tmp_path: Path) -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": CASES}))
    out = run_promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_alert_rule_test_detects_a_wrong_expectation(tmp_path: Path) -> None:
    """The harness above can fail: expecting the stale replica's asset to fire does."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    wrong = case([FRESH_R1, STALE_R2,
                  series("ferry_risk_solvency_halted", "1x40", asset="eip155:10/0x00", **R2)],
                 "3m", "FerrySolvencyHalt", [{"severity": "critical", "asset": "eip155:10/0x00"}])
    (tmp_path / "test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [wrong]}))
    out = run_promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert out.returncode != 0


# ============================================================================ JSON logs


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


def test_json_logs_are_one_object_per_line_with_the_ids_in_fields(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        root_logging: None) -> None:
    monkeypatch.delenv("FERRY_LOG_FORMAT", raising=False)
    assert setup_logging("json") == "json"
    log = logging.getLogger("relayer.engine")
    log.info("release broadcast transfer_id=%s tx=%s", 42, "0xab", extra={"transfer_id": 42})
    swap_id = "0x" + "11" * 32
    log.warning("swap step failed swap_id=%s", swap_id, extra={"swap_id": swap_id})
    lines = capsys.readouterr().err.strip().splitlines()
    first, second = json.loads(lines[-2]), json.loads(lines[-1])
    assert first["level"] == "INFO" and first["logger"] == "relayer.engine"
    assert first["msg"] == "release broadcast transfer_id=42 tx=0xab"
    assert first["transfer_id"] == 42 and first["ts"].endswith("+00:00")
    assert second["swap_id"] == swap_id and "transfer_id" not in second


def test_text_logs_on_request_and_unknown_values_refused(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        root_logging: None) -> None:
    monkeypatch.setenv("FERRY_LOG_FORMAT", "text")
    assert setup_logging("json") == "text"
    logging.getLogger("relayer.engine").info("plain transfer_id=%s", 7,
                                             extra={"transfer_id": 7})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith("INFO relayer.engine plain transfer_id=7")
    monkeypatch.setenv("FERRY_LOG_FORMAT", "yaml")
    with pytest.raises(ConfigError, match="FERRY_LOG_FORMAT"):
        setup_logging()
    monkeypatch.setenv("FERRY_LOG_FORMAT", "json")
    monkeypatch.setenv("FERRY_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError, match="FERRY_LOG_LEVEL"):
        setup_logging()


def test_json_formatter_keeps_exceptions_on_one_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    log = logging.getLogger("test.observability.exc")
    log.addHandler(handler)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("job failed", extra={"transfer_id": 3})
    finally:
        log.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert "RuntimeError: boom" in record["exc_info"] and record["transfer_id"] == 3


# ============================================================================ RPC circuits


class DeadNode:
    """An endpoint whose every call is a transport fault (what a stopped node gives)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self) -> int:
        raise RpcUnavailable("connection refused", chain="eip155:1")


class LiveNode(DeadNode):
    def call(self) -> int:
        return 7


def test_rpc_metrics_show_the_open_circuit_and_never_the_url_secrets() -> None:
    dead = DeadNode("https://user:s3cret@rpc-a.example:8545/v3/APIKEY123")
    pool = EndpointPool([dead, LiveNode("https://rpc-b.example")], chain="eip155:1",
                        identity=lambda _c: 1, expected=1, identity_label="eth_chainId",
                        read_attempts=1)
    mine = [h for h in pool.health()]
    assert [h.up for h in mine] == [True, True]
    assert pool.read(lambda c: c.call(), "eth_blockNumber") == 7  # failed over
    registry = RelayerMetrics(rpc_health=False).registry
    registry.register(RpcHealthCollector(lambda: pool.health()))
    text = generate_latest(registry).decode()
    assert 'ferry_rpc_circuit_open{chain="eip155:1",endpoint="rpc-a.example:8545"} 1.0' in text
    assert 'ferry_rpc_endpoint_up{chain="eip155:1",endpoint="rpc-a.example:8545"} 0.0' in text
    assert 'ferry_rpc_endpoint_up{chain="eip155:1",endpoint="rpc-b.example"} 1.0' in text
    assert ('ferry_rpc_endpoint_faults_total{chain="eip155:1",endpoint="rpc-a.example:8545"}'
            ' 1.0') in text
    assert "s3cret" not in text and "APIKEY123" not in text and "user" not in text


def test_rpc_metrics_of_a_healthy_pool_show_no_open_circuit() -> None:
    pool = EndpointPool([LiveNode("http://127.0.0.1:8545")], chain="eip155:31337",
                        identity=lambda _c: 1, expected=1, identity_label="eth_chainId")
    assert pool.read(lambda c: c.call(), "eth_blockNumber") == 7
    text = generate_latest(RelayerMetrics().registry).decode()  # every live pool
    assert 'ferry_rpc_circuit_open{chain="eip155:31337",endpoint="127.0.0.1:8545"} 0.0' in text


# ============================================================================ HTTP services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """An ASGI app served by uvicorn on a loopback port, on a thread; `stop` shuts it down."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def scrape(text: str) -> dict[str, float]:
    """Sample name + labels -> value of an exposition."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def test_ledger_serves_metrics_health_and_readiness_until_its_database_goes(
        h: Harness, tmp_path: Path) -> None:
    app = create_ledger_app(h.ledger)
    http = TestClient(app)
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
    assert http.get("/v1/ledger/assets").status_code == 200
    samples = scrape(http.get("/metrics").text)
    seq = h.ledger.status().journal_seq
    assert samples["ferry_ledger_journal_seq{}"] == seq and seq > 0
    assert samples["ferry_ledger_validator_set_epoch{}"] == 1
    asset = h.ledger.assets()[0].asset
    assert samples[f"ferry_ledger_asset_supply_base_units{{asset={asset}}}"] == 0
    assert samples["ferry_ledger_http_requests_total{method=GET,route=/v1/ledger/assets,"
                   "status=200}"] == 1
    # The database disappears (file removed, pool closed): not ready, with the reason.
    h.ledger.close()
    for f in tmp_path.glob("ledger.sqlite*"):
        f.unlink()
    app.state.readiness.invalidate()
    down = http.get("/readyz")
    assert down.status_code == 503
    assert down.json()["status"] == "not_ready"
    assert down.json()["reason"].startswith("database: OperationalError")
    assert http.get("/healthz").status_code == 200  # alive all the same


def api_app(tmp_path: Path, ledger: LedgerClient) -> Any:
    store = Store.open(f"sqlite:///{tmp_path}/relayer.sqlite")
    inbox = AttestationInbox(store, "ferry-test", TtlCache(ledger.status, 1.0, store.clock), {},
                             {}, RelayerMetrics(rpc_health=False), store.clock)
    cfg = FerryConfig(network="ferry-test")
    return create_api_app(ApiContext(cfg, store, ledger, inbox, None, store.clock),
                          rate_limits=False)


def test_api_is_ready_while_the_ledger_answers_and_not_after_it_stops(
        h: Harness, tmp_path: Path) -> None:
    ledger = Served(create_ledger_app(h.ledger))
    try:
        app = api_app(tmp_path, LedgerClient(ledger.url, timeout_s=2.0))
        http = TestClient(app)
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "ledger": "ok"}}
    finally:
        ledger.stop()
    app.state.readiness.invalidate()
    down = http.get("/readyz")
    assert down.status_code == 503
    assert down.json()["reason"].startswith("ledger: ")
    assert down.json()["checks"]["database"] == "ok"
    assert http.get("/healthz").json() == {"status": "ok"}


def test_api_counts_requests_by_route_template_and_status(h: Harness, tmp_path: Path) -> None:
    ledger = LedgerClient("http://ledger", http=TestClient(create_ledger_app(h.ledger),
                                                            base_url="http://ledger"))
    http = TestClient(api_app(tmp_path, ledger))
    for ref in ("1", "2", "tr_" + "ab" * 16):
        assert http.get(f"/v1/transfers/{ref}").status_code == 404
    assert http.get("/no/such/path").status_code == 404
    samples = scrape(http.get("/metrics").text)
    route = "/v1/transfers/{transfer_id:path}"  # one series for every transfer looked up
    assert samples[f"ferry_api_http_requests_total{{method=GET,route={route},status=404}}"] == 3
    assert samples["ferry_api_http_requests_total{method=GET,route=unmatched,status=404}"] == 1
    count = f"ferry_api_http_request_duration_seconds_count{{method=GET,route={route}}}"
    assert samples[count] == 3


# ============================================================================ gauges job


class StepClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def test_gauges_job_ages_pending_transfers_and_drops_what_finished(tmp_path: Path) -> None:
    from adapters.base import NATIVE_TOKEN, BlockRef, LockEvent, asset_key
    from relayer.gauges import refresh_db_gauges
    from relayer.heads import record_head
    from relayer.machine import TransferStatus as S
    from relayer.risk_store import RouteStore
    from relayer.store import Change

    chain, eth = "eip155:31337", asset_key("eip155:31337", NATIVE_TOKEN)
    clock = StepClock(1_700_000_000.0)
    store = Store.open(f"sqlite:///{tmp_path}/relayer.sqlite", clock)
    metrics = RelayerMetrics(rpc_health=False)
    events = [LockEvent(chain, "0x" + "b1" * 20, n, NATIVE_TOKEN, "0x" + "aa" * 20, 10**18,
                        b"\x01" * 32, "0x" + n.to_bytes(32, "big").hex(), 0, 10,
                        "0x" + "0a" * 32) for n in (1, 2)]
    store.record_lock_events(chain, events, BlockRef(10, "0x" + "0a" * 32),
                             {NATIVE_TOKEN: eth})
    record_head(store, chain, BlockRef(40, "0x" + "28" * 32), BlockRef(38, "0x" + "26" * 32),
                BlockRef(15, "0x" + "0f" * 32))
    first, second = (store.get(e.event_id).id for e in events)
    store.advance([Change(first, S.CONFIRMED, "depth")])
    clock.t += 600
    store.add_attestations([{"kind": "release", "event_key": "0x" + "ee" * 32, "epoch": 1,
                             "validator": "0xE1" + "00" * 19, "signature": "0x00",
                             "message_hash": "0x00"}])
    clock.t += 100
    refresh_db_gauges(store, metrics, clock.now(), {"lock": [], "release": ["0xe1" + "00" * 19]})

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    age = "ferry_relayer_oldest_pending_transfer_age_seconds"
    assert sample(age, kind="lock", state="transfer.confirmed", chain=chain, wait="none") == 700
    assert sample(age, kind="lock", state="transfer.observed", chain=chain, wait="none") == 700
    assert sample("ferry_relayer_transfers", state="transfer.executed") == 0
    assert sample("ferry_relayer_chain_scan_lag_blocks", chain=chain) == 25
    assert sample("ferry_relayer_chain_head_age_seconds", chain=chain) == 700
    assert sample("ferry_relayer_validator_last_attestation_timestamp_seconds", kind="release",
                  validator="0xe1" + "00" * 19) == 1_700_000_600.0
    assert sample("ferry_relayer_gauges_refreshed_timestamp_seconds") == clock.now()
    assert sample("ferry_relayer_rpc_errors_total", chain=chain) == 0  # exists before any error
    # The confirmed one executes, the other is dropped; a route is halted for solvency.
    store.advance([Change(first, S.EXECUTED, "minted"), Change(second, S.DROPPED, "reorg")])
    RouteStore(store).pause(f"{chain}>ferry:ledger:{eth}", "solvency", "accountant")
    clock.t += 5
    refresh_db_gauges(store, metrics, clock.now(), {"release": []})  # lock set unknown
    assert sample(age, kind="lock", state="transfer.confirmed", chain=chain, wait="none") is None
    assert sample(age, kind="lock", state="transfer.observed", chain=chain, wait="none") is None
    assert sample("ferry_relayer_transfers", state="transfer.confirmed") == 0
    assert sample("ferry_relayer_transfers", state="transfer.executed") == 1
    assert sample("ferry_relayer_validator_last_attestation_timestamp_seconds", kind="release",
                  validator="0xe1" + "00" * 19) is None  # no longer a member
    assert sample("ferry_risk_solvency_halted", asset=eth) == 1
    assert sample("ferry_risk_route_paused", route=f"{chain}>ferry:ledger:{eth}") == 1
    RouteStore(store).unpause(f"{chain}>ferry:ledger:{eth}", "operator")
    refresh_db_gauges(store, metrics, clock.now(), {})
    assert sample("ferry_risk_solvency_halted", asset=eth) == 0
    assert sample("ferry_risk_route_paused", route=f"{chain}>ferry:ledger:{eth}") == 0

"""deploy/helm/ferry: `helm lint` and `helm template` with the pinned helm (built by `make install`;
missing helm fails, never skips). Every rendered Ferry container's config (the ConfigMap's
ferry.toml plus the container's FERRY_* environment, Secrets filled with test values) goes
through `load_config`; each validator pod's start script is run for real against its mounted
volumes, with a probe standing in for the `ferry` binary that loads and reports its config."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.errors import ConfigError
from relayer.config import FerryConfig
from tests import deploy_render
from tests.deploy_render import REPO, config_with_env, helm

CHART = REPO / "deploy" / "helm" / "ferry"
RELEASE = "prod"
FULLNAME = "prod-ferry"
SECRETS: dict[str, dict[str, str]] = {
    "ferry-database": {
        "ledger-url": "postgresql+psycopg://ferry:pw@db:5432/ferry_ledger",
        "relayer-url": "postgresql+psycopg://ferry:pw@db:5432/ferry_relayer"},
    **{f"{FULLNAME}-validator-{i}-key": {"keystore.json": json.dumps({"validator": i}),
                                         "passphrase": f"passphrase-{i}"} for i in range(8)},
    "relayer-gas": {"keystore.json": '{"gas": true}', "passphrase": "gas-passphrase"},
    "ferry-operator": {"ledger-operator-token": "operator-token",
                       "operator-token-sha256": hashlib.sha256(b"operator-token").hexdigest()},
}
PROBE = f"""#!{sys.executable}
# Stands in for `ferry` in a validator pod: loads the config as `ferry validator run` would.
import json, os, sys
from pathlib import Path
sys.path.insert(0, {str(REPO)!r})
from adapters.errors import ConfigError
from tests.deploy_render import config_with_env
try:
    cfg = config_with_env(Path(os.environ["FERRY_CONFIG"]), dict(os.environ))
except ConfigError as exc:
    sys.exit(f"ferry: error: {{exc}}")
print(json.dumps({{"argv": sys.argv[1:], "config": cfg.model_dump(mode="json"),
                  "passphrase": cfg.validator.passphrase.get_secret_value()}}))
"""


def render(tmp_path: Path, values: dict[str, Any] | None = None, *args: str) -> list[dict[str, Any]]:
    """`helm template` the chart (plus `values`) into its manifests."""
    extra = []
    if values is not None:
        path = tmp_path / f"values-{len(list(tmp_path.glob('values-*')))}.yaml"
        path.write_text(yaml.safe_dump(values))
        extra = ["-f", str(path)]
    out = helm("template", RELEASE, str(CHART), *extra, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


class Pod:
    """One pod of a rendered workload, its volumes written under `root` as the kubelet would."""

    def __init__(self, docs: list[dict[str, Any]], workload: dict[str, Any], hostname: str,
                 root: Path) -> None:
        self.spec = workload["spec"]["template"]["spec"]
        self.container = self.spec["containers"][0]
        self.hostname, self.root = hostname, root
        configmaps = {d["metadata"]["name"]: d["data"] for d in find(docs, "ConfigMap")}
        sources = {v["name"]: v for v in self.spec["volumes"]}
        self.mounts: dict[str, Path] = {}
        for vm in self.container["volumeMounts"]:
            host = root / vm["name"]
            host.mkdir(parents=True, exist_ok=True)
            source = sources.get(vm["name"], {"emptyDir": {}})  # else a volumeClaimTemplate
            if "configMap" in source:
                for key, text in configmaps[source["configMap"]["name"]].items():
                    (host / key).write_text(text)
            secrets = [p["secret"] for p in source.get("projected", {}).get("sources", [])]
            if "secret" in source:
                secrets.append({**source["secret"], "name": source["secret"]["secretName"]})
            for ref in secrets:
                for item in ref["items"]:
                    (host / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                    (host / item["path"]).write_text(SECRETS[ref["name"]][item["key"]])
            self.mounts[vm["mountPath"]] = host

    def host_path(self, container_path: str) -> Path:
        for mount, host in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if container_path == mount or container_path.startswith(mount + "/"):
                return host / container_path[len(mount):].lstrip("/")
        raise LookupError(f"{container_path} is on no volume of {self.hostname}")

    def env(self) -> dict[str, str]:
        """The container's environment, Secrets and the pod name filled in, paths mapped."""
        out = {}
        for e in self.container.get("env", []):
            ref = e.get("valueFrom", {})
            if "secretKeyRef" in ref:
                out[e["name"]] = SECRETS[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]]
            elif "fieldRef" in ref:
                assert ref["fieldRef"]["fieldPath"] == "metadata.name"
                out[e["name"]] = self.hostname
            else:
                out[e["name"]] = e["value"]
        for name in ("FERRY_CONFIG", "VALIDATOR_KEYS_DIR", "FERRY_RELAYER__SUBMITTER_KEYSTORE"):
            if name in out:
                out[name] = str(self.host_path(out[name]))
        return out

    def config(self) -> FerryConfig:
        env = self.env()
        return config_with_env(Path(env["FERRY_CONFIG"]), env)

    def port(self, name: str) -> int:
        return next(p["containerPort"] for p in self.container["ports"] if p["name"] == name)

    def run_validator_script(self) -> dict[str, Any]:
        """Run the pod's start script with `ferry` on PATH being the config probe.

        Raises:
            ConfigError: the script or the config failed (its stderr).
        """
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "ferry").write_text(PROBE)
        (bin_dir / "ferry").chmod(0o755)
        argv = [*self.container["command"], *self.container["args"]]
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOSTNAME": self.hostname, **self.env()}
        proc = subprocess.run(argv, check=False, env=env, capture_output=True, text=True,
                              timeout=60)
        if proc.returncode != 0:
            raise ConfigError(proc.stderr.strip())
        return json.loads(proc.stdout)  # type: ignore[no-any-return]


def pods(docs: list[dict[str, Any]], root: Path) -> list[Pod]:
    out = []
    for w in workloads(docs):
        for i in range(w["spec"]["replicas"]):
            host = f"{w['metadata']['name']}-{i}"
            out.append(Pod(docs, w, host, root / host))
    return out


def service_port(docs: list[dict[str, Any]], service: str, port: str) -> int:
    svc = find(docs, "Service", service)[0]
    return next(p["port"] for p in svc["spec"]["ports"] if p["name"] == port)


def test_missing_helm_fails_with_the_make_install_hint(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setattr(deploy_render, "HELM", tmp_path / "helm")
    with pytest.raises(AssertionError, match="run `make install`"):
        helm("version")


def test_chart_lints_with_default_and_three_relayers() -> None:
    helm("lint", "--strict", str(CHART))
    helm("lint", "--strict", str(CHART), "--set", "relayer.replicaCount=3",
         "--set", "validators.isolateKeys=true")


def test_values_schema_is_generated_from_the_config_model() -> None:
    from deploy.helm.values_schema import SCHEMA_PATH
    from deploy.helm.values_schema import render as render_schema

    assert SCHEMA_PATH.read_text() == render_schema(), (
        "deploy/helm/ferry/values.schema.json is stale: run "
        ".venv/bin/python deploy/helm/values_schema.py")


@pytest.mark.parametrize("relayers", [None, 3])
def test_every_rendered_process_config_loads(tmp_path: Path, relayers: int | None) -> None:
    docs = render(tmp_path, None if relayers is None else {"relayer": {"replicaCount": relayers}})
    assert find(docs, "Deployment", f"{FULLNAME}-relayer")[0]["spec"]["replicas"] == (
        relayers or 2)
    ledger_url = f"http://{FULLNAME}-ledger:{service_port(docs, f'{FULLNAME}-ledger', 'http')}"
    seen = set()
    for pod in pods(docs, tmp_path):
        if pod.container["name"] == "validator":
            continue
        cfg = pod.config()
        seen.add(pod.container["name"])
        assert cfg.ledger.url == ledger_url and len(cfg.genesis_set().members) == 5
        match pod.container["name"]:
            case "ledger":
                assert pod.port("http") == cfg.ledger.port
                assert cfg.ledger.database_url == SECRETS["ferry-database"]["ledger-url"]
            case "relayer":
                assert (pod.port("http"), pod.port("metrics")) == (cfg.relayer.port,
                                                                   cfg.relayer.metrics_port)
                assert service_port(docs, f"{FULLNAME}-relayer", "http") == cfg.relayer.port
                assert cfg.relayer.replica_id == pod.hostname
                assert cfg.relayer.database_url == SECRETS["ferry-database"]["relayer-url"]
            case "api":
                assert pod.port("http") == cfg.api.port
                assert cfg.relayer.database_url == SECRETS["ferry-database"]["relayer-url"]
    assert seen == {"ledger", "relayer", "api"}


def test_optional_secrets_reach_the_processes_that_use_them(tmp_path: Path) -> None:
    docs = render(tmp_path, {"relayer": {"submitterSecret": "relayer-gas"},
                             "api": {"ledgerOperatorTokenSecret": "ferry-operator"},
                             "ledger": {"operatorTokenSecret": "ferry-operator"}})
    by_name = {p.container["name"]: p for p in pods(docs, tmp_path)}
    relayer = by_name["relayer"].config().relayer
    assert relayer.submitter_keystore is not None and relayer.submitter_passphrase is not None
    assert relayer.submitter_keystore.read_text() == SECRETS["relayer-gas"]["keystore.json"]
    assert relayer.submitter_passphrase.get_secret_value() == "gas-passphrase"
    token = by_name["api"].config().api.ledger_operator_token
    assert token is not None and token.get_secret_value() == "operator-token"
    assert by_name["ledger"].config().ledger.operator_token_sha256 == SECRETS[
        "ferry-operator"]["operator-token-sha256"]


def test_validators_statefulset_runs_one_pod_per_member_each_with_its_own_key(
        tmp_path: Path) -> None:
    docs = render(tmp_path)
    members = yaml.safe_load((CHART / "values.yaml").read_text())["config"]["validator_set"][
        "members"]
    (sts,) = find(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == len(members) == 5
    projected = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "keys"]
    secrets = [s["secret"]["name"] for s in projected[0]["projected"]["sources"]]
    assert secrets == [f"{FULLNAME}-validator-{i}-key" for i in range(5)]
    relayer = f"http://{FULLNAME}-relayer:{service_port(docs, f'{FULLNAME}-relayer', 'http')}"
    for i, pod in enumerate(pods(find(docs, "StatefulSet") + find(docs, "ConfigMap"), tmp_path)):
        out = pod.run_validator_script()
        v = out["config"]["validator"]
        assert out["argv"] == ["validator", "run"]
        assert v["name"] == members[i]["name"] and out["passphrase"] == f"passphrase-{i}"
        assert Path(v["keystore"]).read_text() == SECRETS[secrets[i]]["keystore.json"]
        assert v["relayer_url"] == relayer and v["batch_size"] == 500
        assert (v["metrics_host"], v["metrics_port"]) == ("0.0.0.0", pod.port("metrics"))
        assert service_port(docs, f"{FULLNAME}-validator", "metrics") == v["metrics_port"]
        pod.host_path(v["state_file"])  # on the pod's volume claim


def test_isolated_validators_mount_only_their_own_key(tmp_path: Path) -> None:
    docs = render(tmp_path, {"validators": {"isolateKeys": True}})
    sets = find(docs, "StatefulSet")
    assert [s["metadata"]["name"] for s in sets] == [f"{FULLNAME}-validator-{i}" for i in range(5)]
    selectors = set()
    for i, sts in enumerate(sets):
        assert sts["spec"]["replicas"] == 1
        selectors.add(json.dumps(sts["spec"]["selector"], sort_keys=True))
        (keys,) = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "keys"]
        assert [s["secret"]["name"] for s in keys["projected"]["sources"]] == [
            f"{FULLNAME}-validator-{i}-key"]
        (pod,) = pods([sts, *find(docs, "ConfigMap")], tmp_path)
        out = pod.run_validator_script()
        assert out["passphrase"] == f"passphrase-{i}"
    assert len(selectors) == 5  # no StatefulSet adopts another's pod


def test_validator_without_a_member_refuses_to_start(tmp_path: Path) -> None:
    docs = render(tmp_path)
    (pod,) = pods(find(docs, "StatefulSet") + find(docs, "ConfigMap"), tmp_path)[:1]
    pod.hostname = f"{FULLNAME}-validator-7"
    with pytest.raises(ConfigError, match="ordinal '7' has no member"):
        pod.run_validator_script()


def test_misspelt_config_value_fails_helm_and_load_config(tmp_path: Path) -> None:
    bad = {"config": {"relayer": {"batchsize": 100}}}
    with pytest.raises(AssertionError, match="additional properties 'batchsize' not allowed"):
        render(tmp_path, bad)
    docs = render(tmp_path, bad, "--skip-schema-validation")
    relayer = next(p for p in pods(docs, tmp_path) if p.container["name"] == "relayer")
    with pytest.raises(ConfigError, match=r"relayer\.batchsize"):
        relayer.config()


def test_misspelt_validator_value_fails_helm_and_the_validator(tmp_path: Path) -> None:
    bad = {"validators": {"config": {"batchsize": 100}}}
    with pytest.raises(AssertionError, match="additional properties 'batchsize' not allowed"):
        render(tmp_path, bad)
    docs = render(tmp_path, bad, "--skip-schema-validation")
    pod = pods(find(docs, "StatefulSet") + find(docs, "ConfigMap"), tmp_path)[0]
    with pytest.raises(ConfigError, match=r"validator\.batchsize"):
        pod.run_validator_script()


def test_example_config_round_trips_through_the_chart(tmp_path: Path) -> None:
    example = tomllib.loads((REPO / "deploy" / "ferry.example.toml").read_text())
    example.pop("validator")  # each validator pod's [validator] comes from the chart

    def quote_big(x: Any) -> Any:  # as values.yaml says: Helm reads numbers as float64
        if isinstance(x, dict):
            return {k: quote_big(v) for k, v in x.items()}
        if isinstance(x, list):
            return [quote_big(v) for v in x]
        return str(x) if type(x) is int and abs(x) >= 2**53 else x

    docs = render(tmp_path, {"config": quote_big(example)})
    ledger = next(p for p in pods(docs, tmp_path) if p.container["name"] == "ledger")
    rendered = tomllib.loads(Path(ledger.env()["FERRY_CONFIG"]).read_text())
    assert (FerryConfig(**rendered).model_dump(mode="json")
            == FerryConfig(**example).model_dump(mode="json"))


def test_unquoted_amount_beyond_float_precision_is_refused(tmp_path: Path) -> None:
    route = {"source_chain": "eip155:1", "dest_chain": "ferry:ledger",
             "asset": "eip155:1/0x0000000000000000000000000000000000000000"}
    render(tmp_path, {"config": {"risk": {"routes": [{**route, "daily_limit": "10" * 12}]}}})
    with pytest.raises(AssertionError, match="daily_limit"):
        render(tmp_path, {"config": {"risk": {"routes": [{**route, "daily_limit": 10**21}]}}})


def test_monitoring_resources_carry_the_alerts_and_dashboard(tmp_path: Path) -> None:
    docs = render(tmp_path, {"monitoring": {k: {"enabled": True} for k in (
        "serviceMonitor", "prometheusRule", "grafanaDashboard")}})
    alerts = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())
    (rule,) = find(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == alerts["groups"]
    dashboard = json.loads(find(docs, "ConfigMap", f"{FULLNAME}-dashboard")[0]["data"][
        "ferry-dashboard.json"])
    assert dashboard == json.loads(
        (REPO / "deploy" / "grafana" / "ferry-dashboard.json").read_text())
    monitored = {m["metadata"]["name"]: [e["port"] for e in m["spec"]["endpoints"]]
                 for m in find(docs, "ServiceMonitor")}
    for name, ports in monitored.items():
        for port in ports:
            service_port(docs, name, port)  # the Service exposes the scraped port
    assert set(monitored) == {f"{FULLNAME}-{c}" for c in ("ledger", "relayer", "api",
                                                           "validator")}


"""deploy/compose: the Compose file rendered as `docker compose` would (env.example as .env), its
`keygen` step run for real (keystores into per-validator volume directories), and every Ferry
service's config (the generated ferry.toml plus that service's FERRY_* environment) validated by
`load_config`. Mutated copies prove a misspelt key or a missing secret fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapters.errors import ConfigError
from ledger.db import normalize_url
from relayer.config import FerryConfig
from tests.deploy_render import (
    REPO,
    ComposeProject,
    InterpolationError,
    config_with_env,
    interpolate,
    read_env_file,
)
from validators.keystore import load_keystore

COMPOSE_DIR = REPO / "deploy" / "compose"
FERRY_COMMANDS = {"ledger", "relayer", "validator", "api"}
VALIDATORS = [f"validator-{i}" for i in range(1, 6)]


def run_keygen(project: ComposeProject) -> None:
    """Run the `keygen` service's command here, its container paths mapped to the volumes."""
    svc = project.services["keygen"]
    argv = [*svc["entrypoint"], *svc["command"]]
    assert argv[0] == "python"
    argv = [sys.executable] + [
        str(project.host_path("keygen", a)) if a.startswith("/") else a for a in argv[1:]]
    proc = subprocess.run(argv, check=False, env={"PATH": "/usr/bin:/bin", **project.environment("keygen")},
                          capture_output=True, text=True, timeout=120, cwd=project.volumes_root)
    if proc.returncode != 0:
        raise ConfigError(proc.stderr.strip())


def ferry_services(project: ComposeProject) -> list[str]:
    return [name for name, svc in project.services.items()
            if isinstance(svc.get("command"), list) and svc["command"][0] in FERRY_COMMANDS]


def service_config(project: ComposeProject, name: str) -> FerryConfig:
    env = project.environment(name)
    return config_with_env(project.host_path(name, env["FERRY_CONFIG"]), env)


def render(compose_dir: Path, tmp_path: Path, env_file: Path | None = None) -> ComposeProject:
    env = read_env_file(env_file or compose_dir / "env.example")
    project = ComposeProject(compose_dir / "docker-compose.yml", env, tmp_path / "volumes")
    project.volumes_root.mkdir(exist_ok=True)
    return project


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> ComposeProject:
    project = render(COMPOSE_DIR, tmp_path_factory.mktemp("compose"))
    run_keygen(project)
    return project


def mutated_copy(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """deploy/compose copied to `tmp_path` with `old` replaced by `new` (once) in `file`."""
    dst = tmp_path / "deploy" / "compose"
    shutil.copytree(COMPOSE_DIR, dst)
    text = (dst / file).read_text()
    assert text.count(old) >= 1, f"{old!r} not in {file}"
    (dst / file).write_text(text.replace(old, new, 1))
    return dst


def test_interpolation_follows_the_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("a${SET}b$SET$$SET", env) == "avbv$SET"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${NONE-d} ${NONE:-${SET}}", env) == "d  d v"
    assert interpolate("${SET:+alt}|${EMPTY:+alt}|${EMPTY+alt}", env) == "alt||alt"
    assert interpolate("${SET:?need it}", env) == "v"
    with pytest.raises(InterpolationError, match="EMPTY is missing: need it"):
        interpolate("${EMPTY:?need it}", env)
    with pytest.raises(InterpolationError, match="NONE"):
        interpolate("${NONE?x}", env)


def test_stack_has_every_service_and_two_relayer_replicas(stack: ComposeProject) -> None:
    expected = {"postgres", "keygen", "ledger", "relayer-1", "relayer-2", "api", "prometheus",
                "grafana", *VALIDATORS}
    assert expected <= set(stack.services)
    commands = {n: stack.services[n]["command"] for n in ferry_services(stack)}
    assert commands == {"ledger": ["ledger", "serve"], "relayer-1": ["relayer", "run"],
                        "relayer-2": ["relayer", "run"], "api": ["api", "serve"],
                        **{v: ["validator", "run"] for v in VALIDATORS}}


def test_references_resolve(stack: ComposeProject) -> None:
    declared = set(stack.data.get("volumes") or {})
    for name, svc in stack.services.items():
        for dep in svc.get("depends_on") or []:
            assert dep in stack.services, f"{name} depends on unknown {dep}"
        for m in stack.mounts(name):
            if m.volume is not None:
                assert m.volume in declared, f"{name}: volume {m.volume} is not declared"
            else:
                assert m.host is not None and m.host.exists(), f"{name}: {m.host} is missing"


def test_every_ferry_service_config_loads(stack: ComposeProject) -> None:
    for name in ferry_services(stack):
        cfg = service_config(stack, name)
        assert cfg.network == "ferry-compose"
        assert cfg.genesis_set().threshold == 3 and len(cfg.genesis_set().members) == 5
        assert cfg.ledger.url == "http://ledger:8600"


def test_services_listen_where_the_others_and_prometheus_look(stack: ComposeProject) -> None:
    ledger = service_config(stack, "ledger")
    assert ledger.ledger.database_url.endswith("@postgres:5432/ferry_ledger")
    assert normalize_url(ledger.ledger.database_url).startswith("postgresql+psycopg://ferry:")
    assert stack.services["ledger"]["ports"] == [f"127.0.0.1:{ledger.ledger.port}:8600"]
    api = service_config(stack, "api")
    assert stack.services["api"]["ports"] == [f"127.0.0.1:{api.api.port}:{api.api.port}"]
    prom = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"]
               for job in prom["scrape_configs"]}
    assert targets["ferry-ledger"] == [f"ledger:{ledger.ledger.port}"]
    assert targets["ferry-api"] == [f"api:{api.api.port}"]
    replicas = {}
    for name in ("relayer-1", "relayer-2"):
        cfg = service_config(stack, name)
        replicas[name] = cfg.relayer.replica_id
        assert cfg.relayer.database_url.endswith("@postgres:5432/ferry_relayer")
        assert f":{cfg.relayer.port}/healthz" in " ".join(
            stack.services[name]["healthcheck"]["test"])
        assert f"{name}:{cfg.relayer.metrics_port}" in targets["ferry-relayer"]
    assert replicas == {"relayer-1": "relayer-1", "relayer-2": "relayer-2"}
    assert api.relayer.database_url == service_config(stack, "relayer-1").relayer.database_url
    for name in VALIDATORS:
        v = service_config(stack, name).validator
        assert v is not None and v.relayer_url == "http://relayer-1:8700"
        assert v.relayer_urls == ["http://relayer-1:8700", "http://relayer-2:8700"]
        assert f"{name}:{v.metrics_port}" in targets["ferry-validator"]
        assert v.metrics_host == "0.0.0.0"
        assert f":{v.metrics_port}/healthz" in " ".join(
            stack.services[name]["healthcheck"]["test"])


def test_each_validator_opens_its_own_keystore_from_the_genesis_set(
        stack: ComposeProject) -> None:
    key_volumes = {}
    for name in VALIDATORS:
        cfg = service_config(stack, name)
        assert cfg.validator is not None and cfg.validator.name == name
        assert cfg.validator.keystore is not None and cfg.validator.passphrase is not None
        keystore = stack.host_path(name, str(cfg.validator.keystore))
        keys = load_keystore(keystore, cfg.validator.passphrase.get_secret_value())
        member = next(m for m in cfg.validator_set.members if m.name == name)  # type: ignore[union-attr]
        assert (member.ed25519, member.evm_address) == (keys.ed25519_public_hex, keys.evm_address)
        key_volumes[name] = keystore.parent
        stack.host_path(name, str(cfg.validator.state_file))  # on a volume: survives restarts
    assert len(set(key_volumes.values())) == 5
    for other in stack.services:  # only keygen and the owner mount a validator's keys
        for m in stack.mounts(other):
            owners = [v for v, d in key_volumes.items() if d.name == m.volume]
            assert not owners or other in ("keygen", *owners), f"{other} mounts {owners}"


def test_keygen_keeps_existing_keys_and_refuses_a_wrong_passphrase(tmp_path: Path) -> None:
    project = render(COMPOSE_DIR, tmp_path)
    run_keygen(project)
    first = service_config(project, "ledger").genesis_set()
    run_keygen(project)
    assert service_config(project, "ledger").genesis_set() == first
    env = tmp_path / "wrong.env"
    env.write_text((COMPOSE_DIR / "env.example").read_text().replace(
        "VALIDATOR_2_PASSPHRASE=change-me-validator-2", "VALIDATOR_2_PASSPHRASE=other"))
    with pytest.raises(ConfigError, match="validator-2"):
        run_keygen(render(COMPOSE_DIR, tmp_path, env))


def test_misspelt_key_in_shared_config_fails(tmp_path: Path) -> None:
    bad = mutated_copy(tmp_path, "ferry.toml", "batch_size = 500", "batchsize = 500")
    project = render(bad, tmp_path)
    run_keygen(project)
    for name in ferry_services(project):
        with pytest.raises(ConfigError, match=r"relayer\.batchsize"):
            service_config(project, name)


def test_misspelt_key_in_service_environment_fails(tmp_path: Path) -> None:
    bad = mutated_copy(tmp_path, "docker-compose.yml", "FERRY_RELAYER__REPLICA_ID: relayer-2",
                       "FERRY_RELAYER__REPLICAID: relayer-2")
    project = render(bad, tmp_path)
    run_keygen(project)
    service_config(project, "relayer-1")
    with pytest.raises(ConfigError, match=r"relayer\.replicaid"):
        service_config(project, "relayer-2")


def test_misspelt_section_in_service_environment_fails(tmp_path: Path) -> None:
    bad = mutated_copy(tmp_path, "docker-compose.yml", "FERRY_VALIDATOR__NAME: validator-3",
                       "FERRY_VALIDATORS__NAME: validator-3")
    project = render(bad, tmp_path)
    run_keygen(project)
    with pytest.raises(ConfigError, match="FERRY_VALIDATORS__NAME"):
        service_config(project, "validator-3")


def test_missing_secret_in_env_file_fails_the_render(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("\n".join(line for line in (COMPOSE_DIR / "env.example").read_text()
                             .splitlines() if not line.startswith("VALIDATOR_3_PASSPHRASE=")))
    with pytest.raises(InterpolationError, match="VALIDATOR_3_PASSPHRASE"):
        render(COMPOSE_DIR, tmp_path, env)


def test_keygen_refuses_a_base_config_with_its_own_validator_set(tmp_path: Path) -> None:
    bad = mutated_copy(tmp_path, "ferry.toml", 'network = "ferry-compose"',
                       'network = "ferry-compose"\n[validator_set]\nthreshold = 1\nmembers = []')
    with pytest.raises(ConfigError, match=r"must not hold \[validator_set\]"):
        run_keygen(render(bad, tmp_path))


def test_prometheus_config_and_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `make install` (Debian package prometheus)"
    project = render(COMPOSE_DIR, tmp_path)
    prom = yaml.safe_load(project.host_path("prometheus", "/etc/prometheus/prometheus.yml")
                          .read_text())
    assert prom["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    rules = project.host_path("prometheus", "/etc/prometheus/rules/alerts.yml")
    prom["rule_files"] = [str(rules)]  # the container path, seen from here
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom))
    proc = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr

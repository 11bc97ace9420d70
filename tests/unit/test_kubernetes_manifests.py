"""deploy/kubernetes/: every manifest is valid Kubernetes (offline, against the JSON schemas that
kubernetes-validate ships: no cluster, no network), and says what it should: the API's probes and
Service, the sharded Job's `--shard` and exit-code rules, locked-down pods, and no real secret."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from service.cli import app
from service.exit_codes import ExitCode
from service.settings import Settings
from tests.unit.examples import BASE

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "kubernetes"
YAML_FILES = sorted(K8S_DIR.glob("*.yaml"))
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

# The oldest Kubernetes the manifests claim to support (deploy/kubernetes/README.md) and the newest whose
# schemas the validator ships. Strict schemas: a misspelt or unknown field fails too.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
KUSTOMIZATION = "kustomization.yaml"  # kustomize's input, not an object for the API server
EXAMPLE_SECRET = "secret.example.yaml"
JOB_FILE = "sharded-load-job.yaml"
SECRET_NAME = "infusion-fhir-settings"
IMAGE = f"infusion-fhir:{PROJECT['version']}"
API_PORT = 8000
INDEX = "$(JOB_COMPLETION_INDEX)"  # expanded by Kubernetes from the variable the Job controller sets
FAILURE_ACTIONS = {"FailJob", "FailIndex", "Ignore", "Count"}  # the schema does not enumerate them


def _documents(path: Path) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    assert docs, f"{path.name} holds no YAML document"
    return docs


def _objects() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) of every Kubernetes object in the folder."""
    return [(p.name, doc) for p in YAML_FILES if p.name != KUSTOMIZATION for doc in _documents(p)]


def _one(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in _objects() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _port_number(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _flag(args: list[str], name: str) -> str:
    assert args.count(name) == 1, f"{name} given {args.count(name)} times in {args}"
    return args[args.index(name) + 1]


# --- every file parses, every object is valid Kubernetes ---------------------------------------------


def test_the_folder_holds_the_manifests_and_their_readme() -> None:
    names = {p.name for p in K8S_DIR.iterdir()}
    expected = {"deployment.yaml", "service.yaml", "hpa.yaml", EXAMPLE_SECRET, JOB_FILE, "README.md"}
    assert expected <= names
    assert not {p.name for p in K8S_DIR.glob("*.yml")}, "use .yaml, as the tests and kustomization do"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_every_yaml_document_parses_into_an_object_with_kind_and_name(path: Path) -> None:
    for doc in _documents(path):
        assert isinstance(doc, dict)
        assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: a document without apiVersion/kind"
        if path.name != KUSTOMIZATION:
            assert doc["metadata"]["name"], f"{path.name}: a {doc['kind']} without a name"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", [p for p in YAML_FILES if p.name != KUSTOMIZATION], ids=lambda p: p.name)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path: Path, version: str) -> None:
    for doc in _documents(path):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{path.name}: {doc['kind']} invalid for Kubernetes {version} at {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:  # the validator's CLI only warns about this
            pytest.fail(f"{path.name}: {exc.message}")


def test_the_validator_rejects_a_misspelt_field_and_a_wrong_type() -> None:
    """The schema check is not vacuous: the same Deployment with one mistake fails."""
    deployment = _one("Deployment")
    kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["revisionHistoryLimit"] = "five"
    for broken in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_the_kustomization_applies_the_api_and_never_the_example_secret_or_the_job() -> None:
    (kustomization,) = _documents(K8S_DIR / KUSTOMIZATION)
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    expected = {p.name for p in YAML_FILES} - {KUSTOMIZATION, EXAMPLE_SECRET, JOB_FILE}
    assert set(resources) == expected


# --- the API: Deployment, Service, HPA -----------------------------------------------------------------


def test_the_api_serves_on_8000_with_readiness_on_readyz_and_liveness_on_healthz() -> None:
    deployment = _one("Deployment")
    api = _container(deployment)
    assert api["command"] == ["infusion-fhir", "serve", "--host", "0.0.0.0", "--port", str(API_PORT)]
    assert "args" not in api
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "startupProbe" not in api or api["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in api:
            assert _port_number(api, api[probe]["httpGet"]["port"]) == API_PORT
            assert api[probe]["periodSeconds"] >= 1 and api[probe]["failureThreshold"] >= 1
    # /readyz calls the FHIR server: given longer than the in-process /healthz, yet within its period.
    assert api["readinessProbe"]["timeoutSeconds"] <= api["readinessProbe"]["periodSeconds"]
    assert api["livenessProbe"]["failureThreshold"] >= 3, "one slow answer must not restart a pod"


def test_the_service_sends_port_80_to_the_api_pods_only() -> None:
    deployment, service, job = _one("Deployment"), _one("Service"), _one("Job")
    assert service["spec"]["type"] == "ClusterIP"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert _port_number(_container(deployment), port["targetPort"]) == API_PORT
    selector = service["spec"]["selector"]
    assert _selects(selector, deployment["spec"]["template"]["metadata"]["labels"])
    assert not _selects(selector, job["spec"]["template"]["metadata"]["labels"]), "a load pod is no endpoint"
    assert deployment["spec"]["selector"]["matchLabels"] == selector


def test_the_hpa_scales_the_deployment_on_cpu_and_owns_the_replica_count() -> None:
    deployment, hpa = _one("Deployment"), _one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    cpu = [m["resource"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert [(m["name"], m["target"]["type"]) for m in cpu] == [("cpu", "Utilization")]
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment["spec"], "a replica count in the Deployment fights the HPA on every apply"
    assert "cpu" in _container(deployment)["resources"]["requests"], "CPU utilization needs a CPU request"


def test_a_disruption_budget_if_any_covers_the_api_pods() -> None:
    deployment = _one("Deployment")
    for _, pdb in (o for o in _objects() if o[1]["kind"] == "PodDisruptionBudget"):
        assert _selects(pdb["spec"]["selector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"])


# --- both workloads: locked down, settings from the Secret ---------------------------------------------


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_every_pod_runs_non_root_read_only_without_privilege_and_reads_the_settings_secret(kind: str) -> None:
    workload = _one(kind)
    pod = workload["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False  # see the next test
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The image's USER is a name; runAsNonRoot can only be verified against a numeric uid.
    assert isinstance(pod["securityContext"]["runAsUser"], int) and pod["securityContext"]["runAsUser"] > 0
    container = _container(workload)
    assert container["image"] == IMAGE, "image tag = the project's version (pyproject.toml)"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security.get("privileged", False) is False
    assert security["capabilities"]["drop"] == ["ALL"]
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{kind}: {bound} incomplete"
    assert container["envFrom"] == [{"secretRef": {"name": SECRET_NAME}}]
    for env in container.get("env", []):
        secretive = re.search(r"KEY|TOKEN|SECRET|PASSWORD", env["name"])
        assert not (secretive and "value" in env), f"{kind}: {env['name']} given as a literal value"


def test_service_links_are_off_because_they_would_break_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """With service links, the Service `infusion-fhir` injects INFUSION_FHIR_PORT=tcp://...: the settings'
    `port`. The API and sync would stop at start-up on it."""
    service = _one("Service")["metadata"]["name"]
    injected = f"{service.upper().replace('-', '_')}_PORT"
    assert injected == "INFUSION_FHIR_PORT"
    monkeypatch.setenv(injected, "tcp://10.96.0.12:80")
    with pytest.raises(ValueError, match="port"):
        Settings()


# --- the sharded history load ---------------------------------------------------------------------------


def test_the_job_is_indexed_and_passes_its_completion_index_as_the_shard() -> None:
    job = _one("Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    shards = spec["completions"]
    assert shards == spec["parallelism"] == 4
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    sync = _container(job)
    assert sync["command"] == ["infusion-fhir", "sync"]
    assert "infusion-fhir" in PROJECT["scripts"]
    args = sync["args"]
    assert _flag(args, "--shard") == f"{INDEX}/{shards}", "the shard count must equal completions"
    # Each shard its own report and rejects file, on the mounted volume, beside the input.
    mounts = [m["mountPath"] for m in sync["volumeMounts"]]
    assert args[0] == "/data/history.ndjson"
    for path in (args[0], _flag(args, "--report"), _flag(args, "--rejects")):
        assert any(path.startswith(m.rstrip("/") + "/") for m in mounts), f"{path} is on no volume"
    assert INDEX in _flag(args, "--report") and INDEX in _flag(args, "--rejects")
    # Kubernetes leaves an undefined $(VAR) as it is: only the controller's variable or one defined here.
    defined = {"JOB_COMPLETION_INDEX"} | {e["name"] for e in sync.get("env", [])}
    assert set(re.findall(r"\$\((\w+)\)", " ".join(args))) <= defined
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    data = next(m["name"] for m in sync["volumeMounts"] if m["mountPath"] == "/data")
    assert "persistentVolumeClaim" in volumes[data]


def test_every_pods_command_runs_as_infusion_fhir_sync_and_the_shards_cover_the_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What each pod runs, once Kubernetes has expanded its index, is accepted by the real CLI: run here
    as a dry run (no FHIR server) on a small file in place of /data. Each shard writes its own report."""
    job = _one("Job")
    shards, args = job["spec"]["completions"], _container(job)["args"]
    records = [BASE[kind] for kind in sorted(BASE)]
    (tmp_path / "history.ndjson").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    monkeypatch.setattr("service.batch.command.configure_logging", lambda level: None)  # keeps pytest's stderr
    lines = 0
    for index in range(shards):
        expanded = [a.replace(INDEX, str(index)).replace("/data/", f"{tmp_path}/") for a in args]
        result = CliRunner().invoke(app, ["sync", *expanded, "--dry-run"])
        assert result.exit_code == ExitCode.OK, f"infusion-fhir sync {' '.join(expanded)}: {result.output}"
        report = json.loads((tmp_path / f"report-{index}.json").read_text(encoding="utf-8"))
        assert report["shard"] == f"{index}/{shards}"
        assert (tmp_path / f"rejects-{index}.ndjson").is_file()
        lines += report["lines"]
    assert lines == len(records), "every record in exactly one shard"


def _first_rule_for_exit(rules: list[dict[str, Any]], code: int) -> dict[str, Any] | None:
    """The podFailurePolicy rule that decides a pod whose `sync` container exited with `code` (rules
    apply in order; pod-condition rules match disruptions, not exit codes)."""
    for rule in rules:
        on = rule.get("onExitCodes")
        if on is None or on.get("containerName", "sync") != "sync":
            continue
        if (code in on["values"]) == (on["operator"] == "In"):
            return rule
    return None


def test_exit_2_is_retried_and_exit_1_fails_without_retry() -> None:
    spec = _one("Job")["spec"]
    rules = spec["podFailurePolicy"]["rules"]
    assert {r["action"] for r in rules} <= FAILURE_ACTIONS
    # 2: stopped, no line at fault; the same command finishes it. Retried, a bounded number of times.
    stopped = _first_rule_for_exit(rules, ExitCode.STOPPED)
    assert stopped is None or stopped["action"] == "Count"
    retries = spec.get("backoffLimitPerIndex", spec.get("backoffLimit", 6))
    assert 1 <= retries <= 5
    assert 1 <= spec.get("backoffLimit", retries) <= 10, "backoffLimit stays small"
    # 1: some lines rejected for their data; a retry would reject them again.
    rejected = _first_rule_for_exit(rules, ExitCode.REJECTED)
    assert rejected is not None and rejected["action"] in {"FailIndex", "FailJob"}
    if rejected["action"] == "FailIndex":
        assert "backoffLimitPerIndex" in spec, "FailIndex needs backoffLimitPerIndex"
    # 0 is success, never a failure rule's business.
    assert _first_rule_for_exit(rules, ExitCode.OK) is None
    # An eviction (SIGTERM, then sync exits 2) is retried without using up a retry, and decided first.
    assert rules[0]["action"] == "Ignore"
    assert rules[0]["onPodConditions"][0]["type"] == "DisruptionTarget"


# --- no secret in the repository -------------------------------------------------------------------------

REAL_LOOKING = {
    "a PEM key or certificate": re.compile(r"-----BEGIN [A-Z ]+-----"),
    "a JWT": re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\."),
    "a hex digest or key": re.compile(r"\b[0-9a-fA-F]{32,}\b"),
    "an AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "a base64 blob": re.compile(r"[A-Za-z0-9+/]{40,}={0,2}"),
    "a bearer token": re.compile(r"Bearer\s+[\w.~+/-]{20,}"),
}
EXAMPLE_HOSTS = re.compile(r"(^|\.)(example\.(org|com|net)|[\w-]+\.example|[\w-]+\.test)$")


@pytest.mark.parametrize("path", sorted(K8S_DIR.iterdir()), ids=lambda p: p.name)
def test_no_file_holds_a_real_looking_secret(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for what, pattern in REAL_LOOKING.items():
        found = pattern.search(text)
        assert found is None, f"{path.name} holds what looks like {what}: {found.group(0)[:12]}..."


def test_only_the_example_holds_a_secret_and_its_values_are_placeholders() -> None:
    secrets = [(name, doc) for name, doc in _objects() if doc["kind"] == "Secret"]
    assert [name for name, _ in secrets] == [EXAMPLE_SECRET]
    (_, secret), text = secrets[0], (K8S_DIR / EXAMPLE_SECRET).read_text(encoding="utf-8")
    assert text.startswith("# EXAMPLE ONLY"), "the example says so on its first line"
    assert secret["metadata"]["name"] == SECRET_NAME
    assert "data" not in secret, "base64 `data` would hide what it holds: stringData only"
    for key, value in secret["stringData"].items():
        url = urlsplit(value)
        if "REPLACE" in value:
            continue
        if url.scheme in ("http", "https"):
            assert EXAMPLE_HOSTS.search(url.hostname or ""), f"{key}: {url.hostname} is no example host"
        else:
            assert key == "INFUSION_FHIR_LOG_LEVEL", f"{key}: {value!r} is neither a placeholder nor an example URL"


def test_the_example_secret_names_real_settings_that_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its keys are settings the service reads (a misspelt one would be silently ignored), it carries
    the ones a deployment must decide, and with its values the settings load."""
    values = _one("Secret")["stringData"]
    known = {"FHIR_BASE_URL"} | {f"INFUSION_FHIR_{name.upper()}" for name in Settings.model_fields}
    assert set(values) <= known, f"not settings: {sorted(set(values) - known)}"
    required = {"FHIR_BASE_URL", "INFUSION_FHIR_API_KEYS", "INFUSION_FHIR_MRN_SYSTEM", "INFUSION_FHIR_VISIT_SYSTEM"}
    assert required <= set(values)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.fhir_base_url == values["FHIR_BASE_URL"]
    assert settings.mrn_system == values["INFUSION_FHIR_MRN_SYSTEM"]

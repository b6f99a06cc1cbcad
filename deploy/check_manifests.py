"""Offline validation of the Kubernetes manifests (deploy/kubernetes), as CI runs it:

    python deploy/check_manifests.py [--kubernetes-version 1.31]

1. Every manifest file, and every overlay as `kubectl kustomize` renders it (when kubectl is on
   PATH; it carries kustomize), against the Kubernetes JSON schemas of that version, strictly
   (kubernetes-validate: an unknown field fails), and each ExternalSecret against
   schemas/externalsecret-v1.json.
2. What the deployment relies on, per overlay: web, worker and one beat with probes, resources and
   non-root, read-only containers; the PodDisruptionBudget and Service selecting the web pods; the
   partition's ExternalSecret mapping the seed's three secret names to files of the same names,
   mounted at /app/secret in every pod; the partitions file naming the overlay's partition, its
   infrastructure and its DNS role in the same AWS account as the pods' IRSA role.

No cluster and no network: prints one line per problem and exits 1 if there is any.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import tomllib
import yaml
from kubernetes_validate import utils as kubernetes_schemas

HERE = Path(__file__).resolve().parent / "kubernetes"
OVERLAYS = HERE / "overlays"
SEED_SECRETS = ("EmailPostmarkAccountToken", "EmailEncryptionKey", "EmailWebhookSecret")
DELIVERY = {"Alpha001": "Live", "Alpha002": "Sandbox"}  # infrastructure-design.txt: PM-1 Live, PM-2 Sandbox
PARTITION_SECRET, RUNTIME_SECRET = "ardamail-admin-partition-secrets", "ardamail-admin-runtime"
DEFAULT_VERSION = "1.31"


def load_documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def source_files() -> list[Path]:
    """Every complete manifest (a kustomization and the overlays' generator inputs are not)."""
    return sorted(p for p in HERE.rglob("*.yaml") if p.name != "kustomization.yaml")


def schema_problems(doc: dict, version: str) -> list[str]:
    where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    if doc.get("kind") == "ExternalSecret":
        schema = json.loads((HERE / "schemas" / "externalsecret-v1.json").read_text())
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)
        return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    try:
        kubernetes_schemas.validate(doc, version, strict=True)
    except kubernetes_schemas.ValidationError as exc:
        return [f"{where}: {'/'.join(map(str, exc.absolute_path))}: {exc.message}"]
    except kubernetes_schemas.SchemaNotFoundError as exc:
        return [f"{where}: {exc.message}"]
    return []


def render(overlay: Path) -> list[dict] | None:
    """The overlay as kustomize builds it; None when kubectl is not installed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    result = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return load_documents(result.stdout)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def overlay_problems(name: str, docs: list[dict]) -> list[str]:
    """What the rendered overlay must hold (see the module's docstring)."""
    deployments, problems = by_kind(docs, "Deployment"), []
    for component in ("web", "worker", "beat"):
        if f"ardamail-admin-{component}" not in deployments:
            problems.append(f"no {component} Deployment")
    if problems:
        return problems
    beat = deployments["ardamail-admin-beat"]["spec"]
    if beat.get("replicas") != 1 or beat.get("strategy", {}).get("type") != "Recreate":
        problems.append("beat must have exactly one replica and the Recreate strategy")
    workloads = [*deployments.values(), *by_kind(docs, "Job").values()]
    for workload in workloads:
        problems += [f"{workload['metadata']['name']}: {p}" for p in pod_problems(workload["spec"]["template"])]
    problems += probe_problems(deployments)
    problems += selector_problems(docs, deployments["ardamail-admin-web"])
    problems += secret_problems(name, docs)
    problems += partition_problems(name, docs)
    return problems


def pod_problems(template: dict) -> list[str]:
    spec, problems = template["spec"], []
    if not spec.get("securityContext", {}).get("runAsNonRoot"):
        problems.append("the pod must run as non-root")
    mounts_secret = any(v.get("secret", {}).get("secretName") == PARTITION_SECRET for v in spec.get("volumes", []))
    for container in spec["containers"]:
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(part, {})):
                problems.append(f"{container['name']}: cpu and memory {part} are required")
        if not container.get("securityContext", {}).get("readOnlyRootFilesystem"):
            problems.append(f"{container['name']}: the root filesystem must be read-only")
        image = container.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            problems.append(f"{container['name']}: the image {image!r} needs a release tag")
        mounted = {m["mountPath"] for m in container.get("volumeMounts", [])}
        if not (mounts_secret and "/app/secret" in mounted):
            problems.append(f"{container['name']}: {PARTITION_SECRET} must be mounted at /app/secret")
        env_secrets = {e.get("secretRef", {}).get("name") for e in container.get("envFrom", [])}
        if RUNTIME_SECRET not in env_secrets:
            problems.append(f"{container['name']}: the environment must come from {RUNTIME_SECRET}")
    return problems


def probe_problems(deployments: dict) -> list[str]:
    wanted = {"web": {"livenessProbe": "/healthz", "readinessProbe": "/readyz"},
              "worker": {"livenessProbe": "/healthz"}, "beat": {"livenessProbe": "/healthz"}}
    problems = []
    for component, probes in wanted.items():
        container = deployments[f"ardamail-admin-{component}"]["spec"]["template"]["spec"]["containers"][0]
        for probe, path in probes.items():
            if container.get(probe, {}).get("httpGet", {}).get("path") != path:
                problems.append(f"{component}: the {probe} must ask {path}")
    return problems


def selector_problems(docs: list[dict], web: dict) -> list[str]:
    labels, problems = web["spec"]["template"]["metadata"]["labels"], []
    ports = {p["name"] for p in web["spec"]["template"]["spec"]["containers"][0].get("ports", [])}
    budgets = list(by_kind(docs, "PodDisruptionBudget").values())
    if not any(b["spec"]["selector"]["matchLabels"].items() <= labels.items() for b in budgets):
        problems.append("no PodDisruptionBudget selects the web pods")
    services = list(by_kind(docs, "Service").values())
    if not any(s["spec"]["selector"].items() <= labels.items() and
               all(p["targetPort"] in ports for p in s["spec"]["ports"]) for s in services):
        problems.append("no Service selects the web pods on a port they expose")
    return problems


def secret_problems(name: str, docs: list[dict]) -> list[str]:
    secrets = {d["spec"]["target"]["name"]: d for d in by_kind(docs, "ExternalSecret").values()}
    if PARTITION_SECRET not in secrets or RUNTIME_SECRET not in secrets:
        return [f"ExternalSecrets targeting {PARTITION_SECRET} and {RUNTIME_SECRET} are required"]
    infrastructure = _partition(name, docs).get("infrastructure", "?")
    wanted = {f"{infrastructure}-{name}-I-{secret}" for secret in SEED_SECRETS}
    data = secrets[PARTITION_SECRET]["spec"]["data"]
    problems = []
    if {d["remoteRef"]["key"] for d in data} != wanted:
        problems.append(f"the partition's ExternalSecret must map exactly {sorted(wanted)}")
    if any(d["secretKey"] != d["remoteRef"]["key"] for d in data):
        problems.append("each partition secret's file must be named as the secret (secretKey = remoteRef.key)")
    return problems


def partition_problems(name: str, docs: list[dict]) -> list[str]:
    partition = _partition(name, docs)
    if not partition:
        return [f"the partitions file must declare exactly the partition {name!r}"]
    problems = []
    infrastructure = partition.get("infrastructure")
    if partition.get("delivery_type") != DELIVERY.get(infrastructure):
        problems.append(f"{name}: {infrastructure} delivers {DELIVERY.get(infrastructure)}, not "
                        f"{partition.get('delivery_type')}")
    role = next(iter(by_kind(docs, "ServiceAccount").values()))["metadata"].get("annotations", {}).get(
        "eks.amazonaws.com/role-arn", "")
    dns_role = partition.get("dns_role_arn", "")
    if not role or not dns_role or role.split(":")[4] != dns_role.split(":")[4]:
        problems.append(f"{name}: the pods' IRSA role ({role or 'none'}) and the DNS role ({dns_role or 'none'}) "
                        "must be set, in the same AWS account")
    if not partition.get("mail_zone", "").startswith(f"{name}."):
        problems.append(f"{name}: the mail zone {partition.get('mail_zone')!r} is not the partition's")
    return problems


def _partition(name: str, docs: list[dict]) -> dict:
    maps = [d for d in docs if d.get("kind") == "ConfigMap" and "partitions.toml" in d.get("data", {})]
    if len(maps) != 1:
        return {}
    declared = tomllib.loads(maps[0]["data"]["partitions.toml"]).get("partition", [])
    return declared[0] if len(declared) == 1 and declared[0].get("name") == name else {}


def check(version: str = DEFAULT_VERSION) -> tuple[list[str], list[str]]:
    """(problems, what was checked)."""
    problems, checked = [], []
    for path in source_files():
        for doc in load_documents(path.read_text()):
            problems += [f"{path.relative_to(HERE)}: {p}" for p in schema_problems(doc, version)]
        checked.append(str(path.relative_to(HERE)))
    for overlay in sorted(p for p in OVERLAYS.iterdir() if p.is_dir()):
        docs = render(overlay)
        if docs is None:
            checked.append(f"overlays/{overlay.name}: not rendered (no kubectl on PATH)")
            continue
        for doc in docs:
            problems += [f"overlays/{overlay.name} (rendered): {p}" for p in schema_problems(doc, version)]
        problems += [f"overlays/{overlay.name}: {p}" for p in overlay_problems(overlay.name, docs)]
        checked.append(f"overlays/{overlay.name}: rendered, {len(docs)} objects")
    return problems, checked


def main() -> None:
    parser = argparse.ArgumentParser(description="Validate deploy/kubernetes offline.")
    parser.add_argument("--kubernetes-version", default=DEFAULT_VERSION)
    args = parser.parse_args()
    problems, checked = check(args.kubernetes_version)
    for line in checked:
        print(f"checked {line}")
    for line in problems:
        print(f"PROBLEM {line}")
    print(f"{len(checked)} checked against Kubernetes {args.kubernetes_version}: {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

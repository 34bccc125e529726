"""Policy checks on rendered Kubernetes manifests (tests/packaging/run).

kubernetes-validate checks the schemas; this checks what the schemas cannot:
the restricted Pod Security profile on every container, probes, one replica
with a volume claim, the Secrets referenced (never included), and a
NetworkPolicy that limits egress.

    python k8s_check.py BASE.yaml INGRESS.yaml
    python k8s_check.py pod RENDERED.yaml OUTDIR

The second form writes what tests/packaging/run needs to run the Pod's
init container and `aiworklab config check` in the image as the Pod would:
OUTDIR/aiworklab.toml (the ConfigMap's file), OUTDIR/init.sh (the init
container's script), OUTDIR/secrets (one line per Secret volume of the init
container: mount path, Secret name, its keys), OUTDIR/env (the main
container's environment, NAME=VALUE lines).
"""

import os
import sys

import yaml

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}
SECRETS = {"aiworklab-master-key", "aiworklab-oidc"}


def check(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    assert "Secret" not in kinds, f"{path}: Secrets must be created by the operator, not shipped"
    (sts,) = kinds["StatefulSet"]
    spec = sts["spec"]
    assert spec["replicas"] == 1, "one replica: the databases are single-writer"
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    pod = spec["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        for k, v in RESTRICTED.items():
            assert sc.get(k) == v, f"{c['name']}: securityContext.{k} must be {v}"
        assert sc["capabilities"]["drop"] == ["ALL"], f"{c['name']}: drop ALL capabilities"
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    (main,) = [c for c in pod["containers"] if c["name"] == "aiworklab"]
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert SECRETS <= secrets, f"{path}: Secrets referenced: {secrets}"
    config = [v for v in pod["volumes"] if "configMap" in v]
    assert config and config[0]["configMap"]["name"].startswith("aiworklab-config")
    (np,) = kinds["NetworkPolicy"]
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for rule in np["spec"]["egress"]:
        assert rule.get("to"), "every egress rule names its destination"
    return docs, secrets


# The keys of each Secret, as docs/operations.md tells the operator to make them.
SECRET_KEYS = {
    "aiworklab-master-key": ["master.key"],
    "aiworklab-tls": ["tls.crt", "tls.key"],
    "aiworklab-oidc": ["oidc-client-secret"],
}


def pod(path, out):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    spec = sts["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    (main,) = [c for c in spec["containers"] if c["name"] == "aiworklab"]
    assert init["command"][:2] == ["/bin/sh", "-c"], init["command"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "aiworklab.toml"), "w") as f:
        f.write(cm["data"]["aiworklab.toml"])
    with open(os.path.join(out, "init.sh"), "w") as f:
        f.write(init["command"][2])
    with open(os.path.join(out, "secrets"), "w") as f:
        for m in init["volumeMounts"]:
            secret = volumes[m["name"]].get("secret")
            if secret:
                name = secret["secretName"]
                f.write(" ".join([m["mountPath"], name, *SECRET_KEYS[name]]) + "\n")
    with open(os.path.join(out, "env"), "w") as f:
        for e in main.get("env", []):
            f.write(f"{e['name']}={e['value']}\n")


if sys.argv[1] == "pod":
    pod(sys.argv[2], sys.argv[3])
    sys.exit(0)

base, base_secrets = check(sys.argv[1])
assert "aiworklab-tls" in base_secrets, "the base serves TLS itself"
ingress, ingress_secrets = check(sys.argv[2])
assert "aiworklab-tls" not in ingress_secrets, "behind the Ingress the Pod needs no TLS secret"
assert any(d["kind"] == "Ingress" for d in ingress), "the overlay adds an Ingress"
print("manifest policy checks passed", file=sys.stderr)

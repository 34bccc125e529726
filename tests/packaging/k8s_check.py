"""Policy checks on rendered Kubernetes manifests (tests/packaging/run).

kubernetes-validate checks the schemas; this checks what the schemas cannot:
the restricted Pod Security profile on every container, probes, one replica
with a volume claim, the Secrets referenced (never included), and a
NetworkPolicy that limits egress.

    python k8s_check.py rendered.yaml...
"""

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


base, base_secrets = check(sys.argv[1])
assert "aiworklab-tls" in base_secrets, "the base serves TLS itself"
ingress, ingress_secrets = check(sys.argv[2])
assert "aiworklab-tls" not in ingress_secrets, "behind the Ingress the Pod needs no TLS secret"
assert any(d["kind"] == "Ingress" for d in ingress), "the overlay adds an Ingress"
print("manifest policy checks passed", file=sys.stderr)

#!/usr/bin/env python3
"""deploy/ runs the image under the restrictions make image-test runs it with.

  deploy_settings.py UID:GID

For each deployment file, one line "<file>\tok" or "<file>\t<what is wrong>; ...":

  - deploy/dify/docker-compose.override*.yaml: every service built from this
    repository runs as UID:GID with read_only: true, cap_drop: [ALL],
    no-new-privileges:true and the binary's healthcheck;
  - deploy/k8s/portcullis.yaml: the portcullis container runs as non-root
    UID (pod or container securityContext), with allowPrivilegeEscalation:
    false, readOnlyRootFilesystem: true, capabilities.drop [ALL] and the
    RuntimeDefault seccomp profile;
  - deploy/systemd/portcullis.service: no capabilities, no new privileges,
    a read-only system.

Exits 1 when any file is wrong.
"""
import glob
import os
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Loader(yaml.SafeLoader):
    """Compose's own tags (!override, !reset) read as plain values."""


Loader.add_multi_constructor("!", lambda loader, suffix, node: (
    loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else
    loader.construct_mapping(node) if isinstance(node, yaml.MappingNode) else
    loader.construct_scalar(node)))


def compose(path, uid, gid):
    with open(path) as f:
        doc = yaml.load(f, Loader=Loader)
    bad, found = [], 0
    for name, svc in (doc.get("services") or {}).items():
        if "build" not in svc:
            continue
        found += 1
        if str(svc.get("user")) != "%s:%s" % (uid, gid):
            bad.append("%s: user %r" % (name, svc.get("user")))
        if svc.get("read_only") is not True:
            bad.append("%s: read_only %r" % (name, svc.get("read_only")))
        if svc.get("cap_drop") != ["ALL"]:
            bad.append("%s: cap_drop %r" % (name, svc.get("cap_drop")))
        if "no-new-privileges:true" not in (svc.get("security_opt") or []):
            bad.append("%s: security_opt %r" % (name, svc.get("security_opt")))
        if "healthcheck" not in ((svc.get("healthcheck") or {}).get("test") or []):
            bad.append("%s: healthcheck %r" % (name, svc.get("healthcheck")))
    if not found:
        bad.append("no service builds the image")
    return bad


def k8s(path, uid):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    deps = [d for d in docs if d.get("kind") == "Deployment"]
    if not deps:
        return ["no Deployment"]
    bad = []
    for d in deps:
        pod = d["spec"]["template"]["spec"]
        psc = pod.get("securityContext") or {}
        for c in pod.get("containers") or []:
            csc = c.get("securityContext") or {}

            def eff(key):
                return csc.get(key, psc.get(key))
            name = c.get("name")
            if eff("runAsNonRoot") is not True:
                bad.append("%s: runAsNonRoot %r" % (name, eff("runAsNonRoot")))
            if str(eff("runAsUser")) != str(uid):
                bad.append("%s: runAsUser %r" % (name, eff("runAsUser")))
            if csc.get("allowPrivilegeEscalation") is not False:
                bad.append("%s: allowPrivilegeEscalation %r" % (name, csc.get("allowPrivilegeEscalation")))
            if csc.get("readOnlyRootFilesystem") is not True:
                bad.append("%s: readOnlyRootFilesystem %r" % (name, csc.get("readOnlyRootFilesystem")))
            if (csc.get("capabilities") or {}).get("drop") != ["ALL"]:
                bad.append("%s: capabilities %r" % (name, csc.get("capabilities")))
            if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
                bad.append("%s: seccompProfile %r" % (name, eff("seccompProfile")))
    return bad


def systemd(path):
    keys = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith(("#", ";")):
                k, v = line.split("=", 1)
                keys[k] = v
    want = {"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
            "ProtectSystem": "strict"}
    bad = ["%s=%r" % (k, keys.get(k)) for k, v in want.items() if keys.get(k) != v]
    if keys.get("User", "root") in ("", "root", "0"):
        bad.append("User=%r" % keys.get("User"))
    return bad


def main(argv):
    if len(argv) != 2 or ":" not in argv[1]:
        sys.stderr.write(__doc__)
        return 2
    uid, gid = argv[1].split(":", 1)
    checks = [(p, compose(p, uid, gid)) for p in sorted(glob.glob(os.path.join(ROOT, "deploy", "dify",
                                                                             "docker-compose.override*.yaml")))]
    checks.append((os.path.join(ROOT, "deploy", "k8s", "portcullis.yaml"),
                   k8s(os.path.join(ROOT, "deploy", "k8s", "portcullis.yaml"), uid)))
    checks.append((os.path.join(ROOT, "deploy", "systemd", "portcullis.service"),
                   systemd(os.path.join(ROOT, "deploy", "systemd", "portcullis.service"))))
    rc = 0
    for path, bad in checks:
        print("%s\t%s" % (os.path.relpath(path, ROOT), "; ".join(bad) if bad else "ok"))
        rc |= bool(bad)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Every test of `make test` after the build, phase by phase, then one line
for the whole run: "N passed, M failed".

    python3 tests/run_tests.py [--build DIR]

Phases: layers (make check-layers), unit (the cmocka binaries in DIR/tests),
tools (tests/tools), integration (tests/run_integration.py), deploy
(tests/deploy, tests/image/deploy_settings.py), observability
(tests/observability). A phase that cannot run at all counts as one
failure. Exit status 0 only when nothing failed.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def heading(name):
    print("== %s" % name, flush=True)


def unit(build):
    passed, failed = 0, []
    tests = sorted(os.path.join(ROOT, "tests", "unit", f) for f in os.listdir(os.path.join(ROOT, "tests", "unit"))
                   if f.startswith("test_") and f.endswith(".c"))
    for src in tests:
        name = os.path.basename(src)[:-2]
        binary = os.path.join(build, "tests", name)
        r = subprocess.run([binary], capture_output=True, text=True)
        out = r.stdout + r.stderr
        sys.stdout.write(out)
        ok = re.search(r"\[  PASSED  \] (\d+) test", out)
        bad = re.search(r"\[  FAILED  \] (\d+) test", out)
        n_ok = int(ok.group(1)) if ok else 0
        n_bad = int(bad.group(1)) if bad else 0
        if r.returncode != 0 and n_bad == 0:
            n_bad = 1  # crashed, or failed before its summary
        passed += n_ok
        failed += ["%s: %s" % (name, t) for t in re.findall(r"\[  FAILED  \] (test_\w+)", out)] or \
                  (["%s (exit %d)" % (name, r.returncode)] * n_bad if n_bad else [])
    return passed, failed


def unittest_dir(name):
    """A phase that runs tests/<name>/test_*.py with run_integration.py."""
    def phase(build):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            path = f.name
        try:
            env = dict(os.environ)
            env.setdefault("PORTCULLIS_BIN", os.path.join(build, "portcullis"))
            r = subprocess.run([sys.executable, os.path.join(HERE, "run_integration.py"), "--json", path,
                                "--dir", os.path.join(HERE, name)], env=env)
            try:
                with open(path) as f:
                    res = json.load(f)
            except (OSError, ValueError):
                return 0, ["%s suite did not run (exit %d)" % (name, r.returncode)]
            return res["passed"], res["failed"]
        finally:
            os.unlink(path)
    return phase


def deploy(build):
    """tests/deploy/test_dropin.py, which runs itself in private namespaces,
    then tests/image/deploy_settings.py (deploy/ runs the image restricted)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    try:
        env = dict(os.environ, PC_TEST_JSON=path)
        env.setdefault("PORTCULLIS_BIN", os.path.join(build, "portcullis"))
        r = subprocess.run([sys.executable, os.path.join(HERE, "deploy", "test_dropin.py")], env=env)
        try:
            with open(path) as f:
                res = json.load(f)
        except (OSError, ValueError):
            res = {"passed": 0, "failed": ["deploy suite did not run (exit %d)" % r.returncode]}
    finally:
        os.unlink(path)
    r = subprocess.run([sys.executable, os.path.join(HERE, "image", "deploy_settings.py"), "10001:10001"])
    if r.returncode == 0:
        return res["passed"] + 1, res["failed"]
    return res["passed"], res["failed"] + ["tests/image/deploy_settings.py"]


def observability(build):
    """tests/observability: promtool on deploy/observability, and the live
    binary's /metrics against the rules and the dashboard."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    try:
        env = dict(os.environ)
        env.setdefault("PORTCULLIS_BIN", os.path.join(build, "portcullis"))
        r = subprocess.run([sys.executable, os.path.join(HERE, "observability", "test_observability.py"),
                            "--json", path], env=env)
        try:
            with open(path) as f:
                res = json.load(f)
        except (OSError, ValueError):
            return 0, ["observability suite did not run (exit %d)" % r.returncode]
        return res["passed"], res["failed"]
    finally:
        os.unlink(path)


def layers(build):
    """make check-layers: its self-test, then the tree."""
    r = subprocess.run([sys.executable, os.path.join(HERE, "check_layers.py"), "--self-test"])
    passed, failed = (1, []) if r.returncode == 0 else (0, ["check_layers.py --self-test"])
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    try:
        subprocess.run([sys.executable, os.path.join(HERE, "check_layers.py"), "--build", build, "--json", path])
        try:
            with open(path) as f:
                res = json.load(f)
        except (OSError, ValueError):
            return passed, failed + ["check_layers.py did not run"]
        return passed + res["passed"], failed + res["failed"]
    finally:
        os.unlink(path)


PHASES = [("layers", layers), ("unit", unit), ("tools", unittest_dir("tools")), ("integration", unittest_dir("integration")),
          ("deploy", deploy), ("observability", observability)]


def main():
    build = os.path.join(ROOT, "build")
    if len(sys.argv) == 3 and sys.argv[1] == "--build":
        build = os.path.abspath(sys.argv[2])
    passed, failed = 0, []
    for name, fn in PHASES:
        heading(name)
        p, f = fn(build)
        passed += p
        failed += f
        print("%s: %d passed, %d failed" % (name, p, len(f)), flush=True)
    if failed:
        print("failed:")
        for t in failed:
            print("  " + t)
    print("%d passed, %d failed" % (passed, len(failed)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The flake hunt: the integration suite several times in a row while other
processes load every core, and which tests failed in which run.

    python3 tests/flake_hunt.py [--runs N] [--load K] [-k PATTERN] [module ...]

--runs (default 5) runs of the suite; --load (default: the number of cores)
busy processes competing with it for the whole hunt. Prints one line per
run and, at the end, every test that failed with the runs it failed in.
Exit status 1 when any run failed. `make flake-hunt` runs it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--load", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-k")
    ap.add_argument("modules", nargs="*")
    args = ap.parse_args()

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    failures = {}   # test -> [run, ...]
    runs = []
    try:
        for i in range(1, args.runs + 1):
            fd, path = tempfile.mkstemp(suffix=".json")
            os.close(fd)
            cmd = [sys.executable, os.path.join(HERE, "run_integration.py"), "--json", path]
            if args.k:
                cmd += ["-k", args.k]
            cmd += args.modules
            t = time.time()
            with open(os.devnull, "w") as quiet:
                r = subprocess.run(cmd, stdout=quiet, stderr=quiet)
            took = time.time() - t
            try:
                with open(path) as f:
                    res = json.load(f)
            except (OSError, ValueError):
                res = {"passed": 0, "failed": ["(the suite did not run: exit %d)" % r.returncode]}
            os.unlink(path)
            for name in res["failed"]:
                failures.setdefault(name, []).append(i)
            runs.append(res)
            print("run %d/%d: %d passed, %d failed in %.0f s (%d busy processes)%s" % (
                i, args.runs, res["passed"], len(res["failed"]), took, args.load,
                "".join("\n    " + n for n in res["failed"])), flush=True)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    print("flake hunt: %d runs, %d with failures" % (len(runs), sum(1 for r in runs if r["failed"])))
    for name, which in sorted(failures.items()):
        print("  %s failed in run%s %s" % (name, "s" if len(which) > 1 else "", ", ".join(map(str, which))))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""make check-layers: the direction of dependency, checked.

    lib/  <-  policies/  <-  rules/  <-  proxy/

A layer may include headers of, and call or reference symbols defined in,
itself and the layers below it; nothing else. Two checks per layer:

  includes  every #include "../<dir>/..." in <layer>/*.c and *.h;
  symbols   every undefined symbol of <layer>'s objects (nm -u) that one
            of portcullis' objects defines (nm --defined-only): a call or
            a reference to data across layers, which an include check
            alone would miss (a local prototype, an extern).

    python3 tests/check_layers.py [--build DIR] [--json FILE]
    python3 tests/check_layers.py --self-test

Exit status 1 on any violation, each printed as one line. --self-test runs
the checks on made-up trees with and without a violation, to show that
they fail when they should.
"""
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ["lib", "policies", "rules", "proxy"]          # bottom to top
ALLOWED = {l: set(LAYERS[:i + 1]) for i, l in enumerate(LAYERS)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"\.\./([a-z]+)/')


def include_violations(files_by_layer):
    """files_by_layer: layer -> {path: text}. Returns [message]."""
    out = []
    for layer, files in files_by_layer.items():
        for path, text in sorted(files.items()):
            for n, line in enumerate(text.splitlines(), 1):
                m = INCLUDE.match(line)
                if m and m.group(1) in ALLOWED and m.group(1) not in ALLOWED[layer]:
                    out.append("%s:%d: %s/ includes %s/ (%s may use only %s)" % (
                        path, n, layer, m.group(1), layer, ", ".join(sorted(ALLOWED[layer]))))
    return out


def symbol_violations(defined, undefined):
    """defined: symbol -> layer that defines it; undefined: layer ->
    {object: [symbols it needs]}. Returns [message]."""
    out = []
    for layer, objs in undefined.items():
        for obj, syms in sorted(objs.items()):
            for sym in sorted(set(syms)):
                owner = defined.get(sym)
                if owner is not None and owner not in ALLOWED[layer]:
                    out.append("%s: %s/ uses %s, defined in %s/ (%s may use only %s)" % (
                        obj, layer, sym, owner, layer, ", ".join(sorted(ALLOWED[layer]))))
    return out


def read_tree():
    files = {}
    for layer in LAYERS:
        files[layer] = {}
        for p in sorted(glob.glob(os.path.join(ROOT, layer, "*.[ch]"))):
            with open(p, encoding="utf-8", errors="replace") as f:
                files[layer][os.path.relpath(p, ROOT)] = f.read()
    return files


def nm(args, obj):
    r = subprocess.run(["nm"] + args + [obj], capture_output=True, text=True, check=True)
    return [l.split()[-1] for l in r.stdout.splitlines() if l.strip()]


def read_objects(build):
    defined, undefined = {}, {}
    for layer in LAYERS:
        undefined[layer] = {}
        for obj in sorted(glob.glob(os.path.join(build, "obj", layer, "*.o"))):
            src = os.path.join(ROOT, layer, os.path.basename(obj)[:-2] + ".c")
            if not os.path.exists(src):
                continue  # left over from a file that moved
            for sym in nm(["--defined-only", "-g"], obj):
                defined[sym] = layer
            undefined[layer][os.path.relpath(obj, ROOT)] = nm(["-u"], obj)
    return defined, undefined


def self_test():
    ok = True
    clean = {"lib": {"lib/a.c": '#include "base.h"\n'}, "policies": {"policies/p.c": '#include "../lib/base.h"\n'},
             "rules": {"rules/r.c": '#include "../policies/p.h"\n'}, "proxy": {"proxy/x.c": '#include "../rules/r.h"\n'}}
    bad = json.loads(json.dumps(clean))
    bad["lib"]["lib/a.c"] += '#include "../proxy/worker.h"\n'
    bad["policies"]["policies/p.c"] += '  #include "../rules/match.h"\n'
    for name, tree, want in (("clean includes", clean, 0), ("includes that go up", bad, 2)):
        got = len(include_violations(tree))
        print("self-test: %s: %d violation(s), want %d" % (name, got, want))
        ok &= got == want
    defined = {"pc_malloc": "lib", "dec_start": "policies", "rule_match": "rules", "pc_metric_slot": "proxy"}
    good = {"lib": {"a.o": ["malloc"]}, "policies": {"p.o": ["pc_malloc"]}, "rules": {"r.o": ["dec_start"]},
            "proxy": {"x.o": ["rule_match", "pc_malloc"]}}
    up = {"lib": {"a.o": ["dec_start"]}, "policies": {"p.o": ["pc_metric_slot", "rule_match"]},
          "rules": {"r.o": []}, "proxy": {"x.o": []}}
    for name, und, want in (("clean calls", good, 0), ("calls that go up", up, 3)):
        got = len(symbol_violations(defined, und))
        print("self-test: %s: %d violation(s), want %d" % (name, got, want))
        ok &= got == want
    return ok


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        sys.exit(0 if self_test() else 1)
    build = os.path.join(ROOT, "build")
    json_out = None
    while args:
        if args[0] == "--build" and len(args) > 1:
            build = os.path.abspath(args[1])
            args = args[2:]
        elif args[0] == "--json" and len(args) > 1:
            json_out = args[1]
            args = args[2:]
        else:
            sys.exit("usage: check_layers.py [--build DIR] [--json FILE] | --self-test")
    results = []
    files = read_tree()
    defined, undefined = read_objects(build)
    for layer in LAYERS:
        inc = include_violations({layer: files[layer]})
        sym = symbol_violations(defined, {layer: undefined[layer]})
        for kind, v in (("includes", inc), ("symbols", sym)):
            name = "%s/ %s" % (layer, kind)
            results.append((name, v))
            print("%s: %s" % (name, "ok" if not v else "%d violation(s)" % len(v)))
            for line in v:
                print("  " + line)
    if not any(undefined[l] for l in LAYERS):
        results.append(("objects present", ["no objects under %s/obj: build first" % build]))
        print("no objects under %s/obj: build first" % build)
    failed = [n for n, v in results if v]
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"passed": len(results) - len(failed), "failed": failed, "skipped": 0}, f)
    print("check-layers: %s" % ("ok" if not failed else "FAILED: " + ", ".join(failed)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

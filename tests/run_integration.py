#!/usr/bin/env python3
"""Run the integration suite (tests/integration/test_*.py) with unittest.

    python3 tests/run_integration.py [-k PATTERN] [--json FILE] [--dir DIR] [module ...]

--dir runs the test_*.py of another directory (tests/tools, ...) the same way.

--json FILE writes {"passed": N, "failed": [test ids], "skipped": N} there
(tests/run_tests.py and tests/flake_hunt.py read it).

Every test starts real processes: build/portcullis, the scriptable upstream
(tests/lib/upstream.py) and, where policies are involved, a throwaway
PostgreSQL cluster.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "integration"))


def main():
    args = sys.argv[1:]
    pattern = None
    json_out = None
    test_dir = os.path.join(HERE, "integration")
    while len(args) >= 2 and args[0] in ("-k", "--json", "--dir"):
        if args[0] == "-k":
            pattern = args[1]
        elif args[0] == "--dir":
            test_dir = os.path.abspath(args[1])
            sys.path.insert(0, test_dir)
        else:
            json_out = args[1]
        args = args[2:]
    loader = unittest.TestLoader()
    if pattern:
        loader.testNamePatterns = ["*%s*" % pattern]
    if args:
        suite = unittest.TestSuite(loader.loadTestsFromName(a) for a in args)
    else:
        suite = loader.discover(test_dir, pattern="test_*.py", top_level_dir=test_dir)
    result = unittest.TextTestRunner(verbosity=2, failfast=False).run(suite)
    if json_out:
        import json
        bad = result.failures + result.errors
        # an error outside a test (a class's setUpClass) is one failure too
        in_tests = [t for t, _ in bad if isinstance(t, unittest.TestCase)]
        with open(json_out, "w") as f:
            json.dump({"passed": result.testsRun - len(in_tests) - len(result.skipped),
                       "failed": sorted(t.id() for t, _ in bad), "skipped": len(result.skipped)}, f)
    import harness
    if harness.VALGRIND:
        for path, tail in harness.VALGRIND_FINDINGS:
            print("valgrind: %s\n%s" % (path, tail))
        print("valgrind: %d proxy runs with memcheck errors or leaks" % len(harness.VALGRIND_FINDINGS))
        if harness.VALGRIND_FINDINGS:
            sys.exit(1)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()

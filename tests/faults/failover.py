#!/usr/bin/env python3
"""Database failover (part of `make faults`): a primary and a streaming
standby made with pg_basebackup, in the bench's db namespace on two
addresses (10.231.1.2 and 10.231.1.3, port 5432 on each), portcullis in
the proxy namespace under open-loop load. The primary is killed
(pg_ctl stop -m immediate: its connections are reset, new ones refused),
the standby promoted, and the proxy must

  - never decide wrongly (fixture oracle; the upstream served nobody not entitled);
  - answer every protected request within timeouts.policy + 0.3 s;
  - be on the new primary, every pool connection, within SWITCH s of the
    promotion, with no restart;
  - have its LISTEN connection on the new primary and its decision cache
    emptied when it moved: a membership changed on the new primary before
    the proxy reconnected (a notification nobody heard) is honoured at once.

Variants:
  multi-host  database.host "A,B", database.target_session_attrs read-write
  multi-host-silent  database.url "host=A,B ... target_session_attrs=read-write",
              and the primary's address goes silent (a black hole, as when
              its node dies) instead of refusing
  dns         database.url "host=db.bench": the name is in a hosts file
              bind-mounted on /etc/hosts in the proxy's own mount namespace,
              and is rewritten to the new primary's address at promotion.
  prefer-standby  database.host "A,B", target_session_attrs prefer-standby,
              no invalidate_channel: every connection reads from the
              standby; a revocation committed on the primary is seen after
              the standby replays it (measured); the primary killed, the
              proxy goes on without a 503.

    python3 tests/faults/failover.py [--only multi-host|multi-host-silent|dns|prefer-standby]
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import env as E  # noqa: E402
from env import APPS, DB_IP, DB_IP_B, PG_BIN, Load, ReadyWatch, auth, judge, upstream_wrong, wait_for  # noqa: E402

POLICY = E.POLICY_MS / 1000.0
SLACK = 0.3
SWITCH = 8.0     # promotion -> every pool connection on the new primary: backoff cap (5 s) + connect + setup
FAILURES = []
ROWS = []


def fail(name, msg):
    FAILURES.append("%s: %s" % (name, msg))
    print("  FAIL %s" % msg, flush=True)


def make_standby(env):
    """pg_basebackup of env.pg (as postgres, in the db namespace), started
    as a streaming standby listening on DB_IP_B."""
    base = os.path.join(env.dir, "standby")
    os.makedirs(base)
    os.chmod(base, 0o755)
    subprocess.run(["chown", "postgres:postgres", base], check=True)
    data = os.path.join(base, "data")
    env.pg._run([os.path.join(PG_BIN, "pg_basebackup"), "-h", env.pg.sock, "-p", str(env.pg.port), "-U", "postgres",
                 "-D", data, "-R", "-X", "stream", "--no-sync", "-c", "fast"])
    sb = E.NsPG(env.topo, data=data, addresses=(DB_IP_B,))
    wait_for(lambda: sb.psql("SELECT pg_is_in_recovery()").strip() == "t", 20, "standby in recovery")
    wait_for(lambda: env.pg.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                                 db="postgres").strip() == "1", 20, "standby streaming")
    return sb


def proxy_backends(pg):
    try:
        return int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'portcullis'",
                           db="postgres").strip())
    except RuntimeError:
        return -1


def keys(attrs):
    """database.host, .port ... for the primary and the standby, in that order."""
    return {"host": "%s,%s" % (DB_IP, DB_IP_B), "port": "5432", "dbname": "dify", "user": "postgres",
            "target_session_attrs": attrs}


def run(env, name, dburl=None, dbkeys=None, prefix=None, on_promote=None, silent=False):
    print("== failover: %s" % name, flush=True)
    sb = make_standby(env)
    try:
        proxy = env.start_proxy(dburl=dburl, dbkeys=dbkeys, ttl="60s", prefix=prefix)
        wait_for(lambda: proxy.ready() == 200 and proxy.db_up() == 4, 15, "ready on the primary")
        # admin_a's decision cached (ttl 60 s) before the failover
        r = E.get(proxy.host, proxy.port, E.protected_target("a-editor-app"), auth("admin_a"))
        if r.status != 200:
            fail(name, "admin_a before the failover: %d" % r.status)
        since = time.time()
        watch = ReadyWatch(proxy)
        load = Load(proxy, rate=40, exclude=("admin_a",)).start()
        time.sleep(1.0)
        t_kill = time.time()
        if silent:   # the primary's node goes silent: no reset, no refusal
            env.topo.blackhole(DB_IP)
        env.pg.stop("immediate")
        time.sleep(0.5)
        sb._run([os.path.join(PG_BIN, "pg_ctl"), "-D", sb.data, "-w", "promote"])
        t_promote = time.time()
        if on_promote:
            on_promote()
        # a change nobody hears: the proxy is not listening on the new primary yet
        sb.psql("UPDATE tenant_account_joins SET role = 'normal' WHERE account_id = '%s'" % E.USERS["admin_a"])
        switched = None
        while time.time() - t_promote < SWITCH + 5:
            if proxy_backends(sb) == 4 and proxy.db_up() == 4:
                switched = time.time() - t_promote
                break
            time.sleep(0.1)
        time.sleep(1.0)
        recs = load.stop()
        watch.stop()
        wrong = judge(recs)
        served = upstream_wrong(env, since)
        prot = [r for r in recs if r[2] == "protected"]
        worst = max((r[1] - r[0] for r in prot), default=0.0)
        lost = [r for r in prot if r[5] != 200 and r[5] != 403]
        after = [r for r in prot if switched is not None and r[0] >= t_promote + switched]
        if wrong:
            fail(name, "%d wrong decisions, e.g. %s" % (len(wrong), wrong[:2]))
        if served:
            fail(name, "the upstream served %d protected requests to people not entitled" % len(served))
        if worst > POLICY + SLACK:
            fail(name, "a protected request took %.2f s" % worst)
        if switched is None or switched > SWITCH:
            fail(name, "not on the new primary %s after the promotion (%d of 4 connections)"
                 % ("%.1f s" % SWITCH if switched is None else "%.2f s" % switched, proxy_backends(sb)))
        if [r for r in after if r[5] not in (200, 403)]:
            fail(name, "503s after the proxy was on the new primary")
        # the cache was emptied when the listener moved: admin_a, demoted
        # on the new primary while nobody listened, is refused now
        r = E.get(proxy.host, proxy.port, E.protected_target("a-editor-app"), auth("admin_a"))
        if r.status != 403:
            fail(name, "admin_a, demoted on the new primary, got %d, want 403" % r.status)
        # the LISTEN connection is on the new primary: re-promote admin_a
        # there, and its NOTIFY empties the cache (ttl 60 s) at once
        sb.psql("UPDATE tenant_account_joins SET role = 'admin' WHERE account_id = '%s'" % E.USERS["admin_a"])
        ok = False
        deadline = time.time() + 2
        while time.time() < deadline and not ok:
            ok = E.get(proxy.host, proxy.port, E.protected_target("a-editor-app"), auth("admin_a")).status == 200
            time.sleep(0.05)
        if not ok:
            fail(name, "a NOTIFY on the new primary did not empty the cache within 2 s")
        rd = watch.first(503, t_kill)
        ru = watch.first(200, max(t_promote, rd or 0))   # 200 again, after the 503
        ROWS.append(dict(fault="failover " + name, worst=worst, switched=switched,
                         ready="%s / %s" % ("%.2f s" % (rd - t_kill) if rd else "-",
                                            "%.2f s" % (ru - t_promote) if ru else "-"),
                         lost="%d/%d" % (len(lost), len(prot)), wrong=len(wrong) + len(served)))
        print("   %s" % ROWS[-1], flush=True)
    finally:
        env.stop_proxy()
        sb.stop("immediate")


def run_prefer_standby(env, name):
    """Policies read from the standby (prefer-standby): while both servers
    run, every connection is on the standby; a demotion committed on the
    primary is refused once the standby has replayed it (cache.ttl 0s:
    what is measured is the replica's lag as the proxy sees it); the
    primary killed, nothing changes for the proxy."""
    print("== failover: %s" % name, flush=True)
    sb = make_standby(env)
    admin = E.USERS["admin_a"]
    try:
        proxy = env.start_proxy(dbkeys=keys("prefer-standby"), ttl="0s", listen=False)
        wait_for(lambda: proxy.ready() == 200 and proxy.db_up() == 4, 15, "ready on the standby")
        if proxy_backends(sb) != 4 or proxy_backends(env.pg) != 0:
            fail(name, "connections: %d on the standby, %d on the primary; want 4 and 0"
                 % (proxy_backends(sb), proxy_backends(env.pg)))

        def admin_status():
            return E.get(proxy.host, proxy.port, E.protected_target("a-editor-app"), auth("admin_a")).status
        if admin_status() != 200:
            fail(name, "admin_a before the demotion: not 200")
        t0 = time.time()
        env.pg.psql("UPDATE tenant_account_joins SET role = 'normal' WHERE account_id = '%s'" % admin)
        seen = None
        while time.time() - t0 < 5:
            if admin_status() == 403:
                seen = time.time() - t0
                break
        if seen is None:
            fail(name, "a demotion on the primary was not seen through the standby within 5 s")
        env.pg.psql("UPDATE tenant_account_joins SET role = 'admin' WHERE account_id = '%s'" % admin)
        wait_for(lambda: admin_status() == 200, 5, "admin_a promoted again, through the standby")
        since = time.time()
        watch = ReadyWatch(proxy)
        load = Load(proxy, rate=40).start()
        time.sleep(1.0)
        t_kill = time.time()
        env.pg.stop("immediate")
        time.sleep(3.0)
        recs = load.stop()
        watch.stop()
        wrong = judge(recs)
        served = upstream_wrong(env, since)
        prot = [r for r in recs if r[2] == "protected"]
        lost = [r for r in prot if r[5] not in (200, 403)]
        worst = max((r[1] - r[0] for r in prot), default=0.0)
        if wrong or served:
            fail(name, "%d wrong decisions" % (len(wrong) + len(served)))
        if lost:
            fail(name, "%d protected requests not decided after the primary was killed" % len(lost))
        if watch.first(503, t_kill) is not None:
            fail(name, "readiness turned 503 though the standby serves")
        ROWS.append(dict(fault="failover " + name, worst=worst, switched=None, ready="- / -",
                         lost="%d/%d" % (len(lost), len(prot)), wrong=len(wrong) + len(served),
                         note="a demotion on the primary refused %s later (replica lag); stays on the standby"
                         % ("%.2f s" % seen if seen is not None else "never")))
        print("   %s" % ROWS[-1], flush=True)
    finally:
        env.stop_proxy()
        sb.stop("immediate")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--only")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("failover: needs root", file=sys.stderr)
        return 2
    import signal

    def on_term(sig, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    t0 = time.time()
    variants = ["multi-host", "dns", "multi-host-silent", "prefer-standby"]
    for v in variants:
        if args.only and v != args.only:
            continue
        env = None
        try:
            env = E.Env(pg_addresses=(DB_IP,))
            if v == "multi-host":
                run(env, v, dbkeys=keys("read-write"))
            elif v == "prefer-standby":
                run_prefer_standby(env, v)
            elif v == "multi-host-silent":
                run(env, v, dburl="host=%s,%s port=5432,5432 dbname=dify user=postgres target_session_attrs=read-write"
                    % (DB_IP, DB_IP_B), silent=True)
            else:
                hosts = os.path.join(env.dir, "hosts")
                with open(hosts, "w") as f:
                    f.write("127.0.0.1 localhost\n%s db.bench\n" % DB_IP)

                def repoint():
                    with open(hosts, "r+") as f:   # in place: the bind mount keeps the inode
                        f.truncate(0)
                        f.write("127.0.0.1 localhost\n%s db.bench\n" % DB_IP_B)
                prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          'mount --bind "$0" /etc/hosts && exec "$@"', hosts]
                run(env, v, dburl="host=db.bench port=5432 dbname=dify user=postgres", prefix=prefix,
                    on_promote=repoint)
        except KeyboardInterrupt:
            FAILURES.append("interrupted")
            break
        except Exception as e:
            import traceback
            traceback.print_exc()
            FAILURES.append("%s: raised %s: %s" % (v, type(e).__name__, e))
        finally:
            if env is not None:
                env.close()
    import netns
    left = netns.leftovers() + E.leftover_dirs()
    if left:
        FAILURES.append("left behind: %s" % left)
    print()
    print("| failover | worst-case answer | on the new primary after promotion | readiness 503 after kill / 200 "
          "after promotion | requests lost (503) | wrong decisions | notes |")
    print("|---|---|---|---|---|---|---|")
    for r in ROWS:
        print("| %s | %.2f s | %s | %s | %s | %d | %s |" % (
            r["fault"], r["worst"], "-" if r["switched"] is None else "%.2f s" % r["switched"], r["ready"], r["lost"],
            r["wrong"], r.get("note", "")))
    print("\nfailover: %d variants, %.0f s, %d failures" % (len(ROWS), time.time() - t0, len(FAILURES)))
    for f in FAILURES:
        print("  " + f)
    bad = len(set(f.split(":")[0] for f in FAILURES))
    print("%d passed, %d failed" % (max(0, len(ROWS) - bad), bad))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

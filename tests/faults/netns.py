"""Network namespaces, veth pairs and nft rules for the fault bench.

Topology (addresses on 10.231.0.0/16, one /24 per link):

    root ns (bench, clients) 10.231.0.1
        │ veth
    px ns (portcullis) 10.231.0.2, 10.231.10.1
        │ veth
    net ns (a router: the faults live in its forward chain) 10.231.10.254
        │ veth                         │ veth
    db ns (PostgreSQL, relay)          up ns (upstream, relay)
    10.231.1.2, 10.231.1.3             10.231.2.2

Faults are nft rules in the router's forward chain, so that neither end's
TCP stack sees a local drop (a drop in a host's own output hook is an
error returned to the sender, which retries at once: not a black hole).
A reject there sends the TCP reset a middle box would.

Every name carries the bench's pid (pcf<pid>-...), so leftovers of a bench
that was killed with SIGKILL are recognised and swept by the next run.
Deleting a namespace deletes its veth ends, their peers and its nft tables;
processes are killed by the pids `ip netns pids` reports before that.
Only one bench runs at a time (a lock on /run/portcullis-faults.lock): the
addresses are fixed.
"""
import fcntl
import os
import re
import signal
import subprocess
import time

PREFIX = "pcf"
CLIENT_IP, PROXY_IP_C = "10.231.0.1", "10.231.0.2"
PROXY_IP = "10.231.10.1"          # the proxy as the database and the upstream see it
PROXY_IP_D = PROXY_IP_U = PROXY_IP
ROUTER_PX, ROUTER_DB, ROUTER_UP = "10.231.10.254", "10.231.1.254", "10.231.2.254"
DB_IP, DB_IP_B = "10.231.1.2", "10.231.1.3"   # two addresses of the db ns (failover, DNS variant)
UP_IP = "10.231.2.2"
LOCK = "/run/portcullis-faults.lock"


def sh(*args, check=True, quiet=False):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), (r.stderr or r.stdout).strip()))
    return r.stdout


def ns_pids(ns):
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def kill_ns_processes(ns, grace=1.0):
    pids = ns_pids(ns)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while time.time() < deadline:
            pids = [p for p in ns_pids(ns)]
            if not pids:
                return
            time.sleep(0.05)


def sweep_stale():
    """Remove namespaces left by a bench that died without cleaning up."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"%s(\d+)-" % PREFIX, name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and os.path.exists("/proc/%d" % pid):
            continue  # still running (should not happen: the lock)
        kill_ns_processes(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class Topology:
    def __init__(self):
        self.lockf = open(LOCK, "w")
        try:
            fcntl.flock(self.lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError("another fault bench is running (%s is locked)" % LOCK)
        sweep_stale()
        tag = "%s%d" % (PREFIX, os.getpid())
        self.px, self.net, self.db, self.up = tag + "-px", tag + "-net", tag + "-db", tag + "-up"
        self.created = []
        short = "%s%d" % (PREFIX, os.getpid() % 100000)
        self.veth = {"c": short + "c", "p": short + "p", "d": short + "d", "u": short + "u"}
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _link(self, name, ns_a, ip_a, ns_b, ip_b):
        """A veth pair name0 (in ns_a, or the root namespace) -- name1 (in ns_b)."""
        a = ["ip"] if ns_a is None else ["ip", "-n", ns_a]
        sh(*(a + ["link", "add", name + "0", "type", "veth", "peer", "name", name + "1", "netns", ns_b]))
        sh(*(a + ["addr", "add", ip_a + "/24", "dev", name + "0"]))
        sh(*(a + ["link", "set", name + "0", "up"]))
        sh("ip", "-n", ns_b, "addr", "add", ip_b + "/24", "dev", name + "1")
        sh("ip", "-n", ns_b, "link", "set", name + "1", "up")

    def _build(self):
        for ns in (self.px, self.net, self.db, self.up):
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        v = self.veth
        # client link: its root end goes away with its peer when px is deleted
        self._link(v["c"], None, CLIENT_IP, self.px, PROXY_IP_C)
        self._link(v["p"], self.net, ROUTER_PX, self.px, PROXY_IP)
        self._link(v["d"], self.net, ROUTER_DB, self.db, DB_IP)
        self._link(v["u"], self.net, ROUTER_UP, self.up, UP_IP)
        sh("ip", "-n", self.db, "addr", "add", DB_IP_B + "/24", "dev", v["d"] + "1")
        sh("ip", "netns", "exec", self.net, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for ns, gw in ((self.px, ROUTER_PX), (self.db, ROUTER_DB), (self.up, ROUTER_UP)):
            sh("ip", "-n", ns, "route", "add", "10.231.0.0/16", "via", gw)
        self.nft(self.net, "add table inet pcfault")
        self.nft(self.net, "add chain inet pcfault forward { type filter hook forward priority 0; policy accept; }")

    # ---- nft, in the router ----
    def nft(self, ns, rule):
        sh("ip", "netns", "exec", ns, "nft", rule)

    def batch(self, rules):
        """Several rules in one nft transaction."""
        self.nft(self.net, "; ".join("add rule inet pcfault forward " + r for r in rules))

    def flush(self):
        self.nft(self.net, "flush chain inet pcfault forward")

    @staticmethod
    def drop_rule(src, dst):
        return "ip saddr %s ip daddr %s drop" % (src, dst)

    def drop(self, src, dst):
        """Black hole: packets from src to dst vanish."""
        self.batch([self.drop_rule(src, dst)])

    def blackhole(self, peer):
        """Both directions between the proxy and peer."""
        self.batch([self.drop_rule(PROXY_IP, peer), self.drop_rule(peer, PROXY_IP)])

    def reset(self, src, dst):
        """Every TCP packet from src to dst is answered with a reset (to src)."""
        self.batch(["ip saddr %s ip daddr %s meta l4proto tcp reject with tcp reset" % (src, dst)])

    def exec_args(self, ns, args):
        return ["ip", "netns", "exec", ns] + list(args)

    def close(self):
        for ns in reversed(self.created):
            kill_ns_processes(ns)
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created = []
        # the root end of the client veth goes with its peer; make sure
        subprocess.run(["ip", "link", "del", self.veth["c"] + "0"], capture_output=True)
        try:
            self.lockf.close()
        except Exception:
            pass


def leftovers():
    """What a bench could leave behind: our namespaces and root-ns veths."""
    ns = [l.split()[0] for l in sh("ip", "netns", "list").splitlines() if l.startswith(PREFIX)]
    links = re.findall(r"\d+: (%s\d+c0)[@:]" % PREFIX, sh("ip", "-o", "link"))
    return ns + links

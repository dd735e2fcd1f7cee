#!/usr/bin/env python3
"""The Dify compose drop-in (deploy/dify/docker-compose.override*.yaml),
checked against Dify's own files, read from a Dify git repository at test
time (nothing of Dify is vendored here):

- ComposeMergeTests: the override merged with Dify's docker-compose.yaml of
  each version by the Compose specification's merge rules (compose_model.py),
  then asked who resolves which name from where.
- NginxRouting*: Dify's real nginx templates of each version, rendered by
  Dify's own docker/nginx/docker-entrypoint.sh, served by real nginx whose
  service names resolve as the compose networks make them resolve (a
  generated /etc/hosts bind-mounted in a private mount namespace, and a DNS
  server on 127.0.0.11 for the location that resolves at run time), with
  build/portcullis (rules/dify.yaml) as "api" and recording stand-ins for
  Dify's real api, api_websocket, web and plugin_daemon.

    python3 tests/deploy/test_dropin.py [-v] [-k PATTERN]

Needs root (it re-executes itself in a private mount and network namespace;
nothing outside them changes, the temporary directory is removed), nginx,
envsubst, unshare, build/portcullis (make), and the Dify repository:
$DIFY_REPO, default /work/.mirror/niro-demos+dify/repo. Without the
repository every test is skipped and says so.
"""
import os
import sys

if os.environ.get("PC_DROPIN_PY") is None:
    try:
        import yaml  # noqa: F401
    except ImportError:
        # Debian's python3-yaml (tests/deps.sh) serves Debian's python3
        if os.path.exists("/usr/bin/python3") and sys.executable != "/usr/bin/python3":
            os.environ["PC_DROPIN_PY"] = "1"
            os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
        raise

import http.client
import json
import pwd
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import compose_model as cm  # noqa: E402

DIFY_REPO = os.environ.get("DIFY_REPO", "/work/.mirror/niro-demos+dify/repo")
PORTCULLIS = os.environ.get("PORTCULLIS_BIN", os.path.join(ROOT, "build", "portcullis"))
OVERRIDE = os.path.join(ROOT, "deploy", "dify", "docker-compose.override.yaml")
OVERRIDE_OLD = os.path.join(ROOT, "deploy", "dify", "docker-compose.override.before-1.14.1.yaml")

# (label, commit in Dify's history, override file for it)
VERSIONS = [
    ("1.14.0", "6fafeec415", OVERRIDE_OLD),
    ("1.14.1", "bb73776339", OVERRIDE),
    ("1.15.0", "3aa26fb637", OVERRIDE),
    ("main", "HEAD", OVERRIDE),
]

PROBE = "/console/api/portcullis/healthz"
APP = "5e6f7a8b-0000-4000-8000-00000000a001"


def dify_show(commit, path):
    return subprocess.run(["git", "-C", DIFY_REPO, "show", "%s:%s" % (commit, path)],
                          capture_output=True, text=True, check=True).stdout


def dify_ls(commit, path):
    out = subprocess.run(["git", "-C", DIFY_REPO, "ls-tree", "-r", "--name-only", commit, path],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def dify_missing():
    try:
        subprocess.run(["git", "-C", DIFY_REPO, "rev-parse", "--verify", "-q", "HEAD^{commit}"],
                       capture_output=True, check=True)
        for _label, commit, _ov in VERSIONS:
            subprocess.run(["git", "-C", DIFY_REPO, "cat-file", "-e",
                            commit + ":docker/docker-compose.yaml"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ("no Dify repository with docker/ at %s (set DIFY_REPO to a Dify clone): "
                "the drop-in is NOT verified" % DIFY_REPO)
    return None


DIFY_MISSING = dify_missing()


def dotenv_of(commit):
    """The user's .env of that version: a copy of docker/.env.example, as
    Dify's docker/README.md tells users to make."""
    return cm.parse_dotenv(dify_show(commit, "docker/.env.example"))


def merged(commit, override_path):
    env = dotenv_of(commit)
    texts = [dify_show(commit, "docker/docker-compose.yaml")]
    if override_path:
        with open(override_path) as f:
            texts.append(f.read())
    return cm.merge_files(texts, env), env


def profiles_of(env):
    return [p for p in env.get("COMPOSE_PROFILES", "").split(",") if p]


def parse_locations(conf):
    """[(prefix, proxy_pass)] of a rendered default.conf."""
    import re
    out = []
    for m in re.finditer(r"location\s+(\S+)\s*\{(.*?)\}", conf, re.S):
        pp = re.search(r"proxy_pass\s+([^;]+);", m.group(2))
        if pp:
            out.append((m.group(1), pp.group(1).strip()))
    return out


def upstream_host(env_value):
    """http://host:port[/...] -> host"""
    rest = env_value.split("://", 1)[1]
    return rest.split("/", 1)[0].rsplit(":", 1)[0]


# =================================================================== compose

@unittest.skipIf(DIFY_MISSING, DIFY_MISSING)
class ComposeMergeTests(unittest.TestCase):
    """The override merged with Dify's compose file of each version."""

    def check_dropin(self, model, env, commit):
        """Every property the drop-in promises, as a list of violations."""
        bad = []
        prof = profiles_of(env)
        svc = model["services"]
        conf = dify_show(commit, "docker/nginx/conf.d/default.conf.template")
        nginx_env = svc["nginx"].get("environment") or {}
        hosts = set()
        for _prefix, target in parse_locations(conf):
            if target.startswith("http://$"):
                hosts.add(nginx_env.get("NGINX_SOCKET_IO_UPSTREAM", "").rsplit(":", 1)[0])
            else:
                hosts.add(upstream_host(target))
        flask = {"api", "api_websocket", "worker", "worker_beat"}   # Dify's API image
        guards = {"portcullis", "portcullis_websocket"}
        for host in sorted(hosts):
            got = cm.resolve(model, "nginx", host, prof)
            if not got and host == "api_websocket" and "collaboration" not in prof:
                continue
            if len(got) != 1:
                bad.append("nginx: %s resolves to %s" % (host, sorted(got) or "nothing"))
            if got & flask:
                bad.append("nginx reaches Dify's API as %s (%s) without portcullis" % (host, sorted(got & flask)))
        if cm.resolve(model, "nginx", "api", prof) != {"portcullis"}:
            bad.append("nginx: api is %s, not portcullis" % sorted(cm.resolve(model, "nginx", "api", prof)))
        for real in sorted(flask & set(svc)):
            if cm.share_network(model, "nginx", real):
                bad.append("nginx shares %s with the real %s" % (sorted(cm.share_network(model, "nginx", real)), real))
        if "web" in svc and cm.resolve(model, "web", "api", prof) - guards:
            bad.append("web reaches the real api as api: %s" % sorted(cm.resolve(model, "web", "api", prof)))
        for guard, real in (("portcullis", "api"), ("portcullis_websocket", "api_websocket")):
            if guard not in svc:
                if real in svc and real != "api":
                    bad.append("%s has no %s in front of it" % (real, guard))
                continue
            g = svc[guard]
            genv = g.get("environment") or {}
            up = upstream_host(genv.get("PORTCULLIS_UPSTREAM", "http://?:0"))
            if cm.resolve(model, guard, up, ["collaboration"]) != {real}:
                bad.append("%s: upstream %s resolves to %s, not only %s"
                           % (guard, up, sorted(cm.resolve(model, guard, up, ["collaboration"])), real))
            if not genv.get("PORTCULLIS_LISTEN", "").endswith(":5001"):
                bad.append("%s does not listen on 5001, the port of nginx's proxy_pass" % guard)
            if g.get("read_only") is not True:
                bad.append("%s is not read_only" % guard)
            if g.get("cap_drop") != ["ALL"]:
                bad.append("%s keeps capabilities: cap_drop %s" % (guard, g.get("cap_drop")))
            if str(g.get("user", "0")).split(":")[0] in ("", "0", "root"):
                bad.append("%s runs as root" % guard)
            if g.get("ports"):
                bad.append("%s publishes ports %s" % (guard, g["ports"]))
            test = (g.get("healthcheck") or {}).get("test") or []
            if "healthcheck" not in test:
                bad.append("%s has no healthcheck" % guard)
            if cm.env_file_paths(g) != cm.env_file_paths(svc["api"]) and cm.env_file_paths(svc["api"]):
                bad.append("%s reads %s, the api reads %s" % (guard, cm.env_file_paths(g), cm.env_file_paths(svc["api"])))
            if (cm.env_file_paths(g) or ["?"])[-1] != "./.env":
                bad.append("%s does not read .env last" % guard)
        if "plugin_daemon" in svc:
            inner = (svc["plugin_daemon"].get("environment") or {}).get("DIFY_INNER_API_URL", "http://api:5001")
            if cm.resolve(model, "plugin_daemon", upstream_host(inner), prof) != {"api"}:
                bad.append("plugin_daemon's inner API %s resolves to %s"
                           % (inner, sorted(cm.resolve(model, "plugin_daemon", upstream_host(inner), prof))))
        for client in ("worker", "worker_beat", "agent_backend"):
            if client in svc and cm.resolve(model, client, "api", prof) != {"api"}:
                bad.append("%s: api resolves to %s" % (client, sorted(cm.resolve(model, client, "api", prof))))
        if svc["api"].get("ports"):
            bad.append("the real api publishes %s" % svc["api"]["ports"])
        return bad

    def test_override_isolates_nginx_from_the_real_api_in_every_version(self):
        for label, commit, override in VERSIONS:
            with self.subTest(dify=label):
                model, env = merged(commit, override)
                self.assertEqual(self.check_dropin(model, env, commit), [])
                self.assertEqual(set(cm.networks_of(model["services"]["nginx"])), {"portcullis_edge"})
                self.assertEqual(cm.resolve(model, "nginx", "api", profiles_of(env)), {"portcullis"})

    def test_merge_keeps_every_other_service_and_port_as_dify_ships_them(self):
        for label, commit, override in VERSIONS:
            with self.subTest(dify=label):
                stock, env = merged(commit, None)
                model, _ = merged(commit, override)
                self.assertLessEqual(set(stock["services"]), set(model["services"]))
                for name, svc in stock["services"].items():
                    if name in ("nginx", "web", "plugin_daemon", "api", "api_websocket"):
                        continue
                    self.assertEqual(model["services"][name], svc, name)
                self.assertEqual(model["services"]["nginx"].get("ports"), stock["services"]["nginx"].get("ports"))
                self.assertEqual(model["services"]["nginx"]["environment"], stock["services"]["nginx"]["environment"])
                self.assertEqual(model["services"]["nginx"]["volumes"], stock["services"]["nginx"]["volumes"])
                for name in ("api", "plugin_daemon", "api_websocket"):
                    if name not in stock["services"]:
                        continue
                    # networks only grow: nothing of Dify's own is taken away
                    self.assertLessEqual(set(cm.networks_of(stock["services"][name])),
                                         set(cm.networks_of(model["services"][name])), name)

    def test_stock_dify_without_the_override_is_reported_as_bypassed(self):
        # the check above can fail: on Dify as shipped, nginx reaches api directly
        for label, commit, _override in VERSIONS:
            with self.subTest(dify=label):
                stock, env = merged(commit, None)
                problems = self.check_dropin(stock, env, commit)
                self.assertTrue(any("without portcullis" in p for p in problems), problems)

    def test_nginx_stays_off_dify_networks_when_a_release_lists_them(self):
        # !override: a later Dify that attaches nginx to default explicitly
        # must not put it back next to the real api
        commit = "HEAD"
        env = dotenv_of(commit)
        base = cm.load(dify_show(commit, "docker/docker-compose.yaml"))[0]
        base["services"]["nginx"]["networks"] = ["default", "ssrf_proxy_network"]
        with open(OVERRIDE) as f:
            model = cm.merge_files([yaml.safe_dump(base), f.read()], env)
        self.assertEqual(set(cm.networks_of(model["services"]["nginx"])), {"portcullis_edge"})
        self.assertEqual(self.check_dropin(model, env, commit), [])
        # and without the tag, the merge would have kept default: the tag matters
        with open(OVERRIDE) as f:
            plain = f.read().replace("networks: !override", "networks:")
        model = cm.merge_files([yaml.safe_dump(base), plain], env)
        self.assertIn("default", cm.networks_of(model["services"]["nginx"]))

    def test_portcullis_reads_env_files_in_dify_order_so_dotenv_wins(self):
        for label, commit, override in VERSIONS:
            with self.subTest(dify=label):
                model, _ = merged(commit, override)
                pc = model["services"]["portcullis"]
                files = {"./envs/security.env": "SECRET_KEY=from-security-env\n",
                         "./envs/databases/db-postgres.env": "DB_HOST=from-db-postgres-env\n",
                         "./.env": "DB_HOST=from-dotenv\n"}
                got = cm.effective_env(pc, files)
                self.assertEqual(got["SECRET_KEY"], "from-security-env")   # security.env is read
                self.assertEqual(got["DB_HOST"], "from-dotenv")            # .env is read last
                if cm.env_file_paths(model["services"]["api"]):
                    self.assertEqual(got, cm.effective_env(
                        dict(model["services"]["api"], environment={}), files)
                        | {k: v for k, v in pc["environment"].items()})
                files["./.env"] = "SECRET_KEY=\n"
                self.assertEqual(cm.effective_env(pc, files)["SECRET_KEY"], "")  # empty .env value wins too
                del files["./.env"]
                with self.assertRaises(FileNotFoundError):                   # .env is required, as for api
                    cm.effective_env(pc, files)

    def test_portcullis_container_is_hardened(self):
        for label, commit, override in VERSIONS:
            with self.subTest(dify=label):
                model, env = merged(commit, override)
                for guard in ("portcullis", "portcullis_websocket"):
                    if guard not in model["services"]:
                        continue
                    g = model["services"][guard]
                    self.assertIs(g["read_only"], True)
                    self.assertEqual(g["cap_drop"], ["ALL"])
                    self.assertEqual(g["user"], "10001:10001")
                    self.assertIn("no-new-privileges:true", g["security_opt"])
                    self.assertNotIn("ports", g)
                    self.assertEqual(g["healthcheck"]["test"][1:4],
                                     ["/usr/local/bin/portcullis", "healthcheck", "127.0.0.1:5001"])
                    self.assertEqual(g["healthcheck"]["test"][4], g["environment"]["PORTCULLIS_HEALTH_PATH"])
                    self.assertEqual(g["volumes"], ["./volumes/app/storage:/app/api/storage:ro",
                                                    "../../portcullis-access:/etc/portcullis/access:ro"])
                if "portcullis_websocket" in model["services"]:
                    self.assertEqual(model["services"]["portcullis_websocket"]["profiles"],
                                     model["services"]["api_websocket"]["profiles"])


# =================================================================== namespace

IN_NS = os.environ.get("PC_DROPIN_NS") == "1"
TMP = None
NS_ERROR = None

# where each service lives in the test's network namespace (loopback only)
ADDR = {
    "portcullis": "127.0.1.1",            # alias "api" on portcullis_edge
    "portcullis_websocket": "127.0.1.2",  # alias "api_websocket" on portcullis_edge
    "web": "127.0.1.3",
    "plugin_daemon": "127.0.1.4",
    "api": "127.0.2.1",                   # the real api: "api-backend" on default
    "api_websocket": "127.0.2.2",         # "api-websocket-backend" on default
    "portcullis_hardened": "127.0.1.9",
}
PORT = {"web": 3000, "plugin_daemon": 5002, "api": 5001, "api_websocket": 5001}


def ns_setup():
    """Inside `unshare --mount --net`: loopback up, and the paths nginx
    writes (logs, pid, temp files) and reads (/etc/nginx, /etc/hosts, the
    nginx user) replaced by private copies. Nothing outside changes."""
    global TMP
    TMP = tempfile.mkdtemp(prefix="pc-dropin-")
    os.chmod(TMP, 0o755)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # the user Dify's nginx.conf names (the official image has it)
    uid = 64101
    while True:
        try:
            pwd.getpwuid(uid)
            uid += 1
        except KeyError:
            break
    for name, line in (("passwd", "nginx:x:%d:%d:nginx:/nonexistent:/usr/sbin/nologin\n" % (uid, uid)),
                       ("group", "nginx:x:%d:\n" % uid)):
        with open("/etc/" + name) as f:
            text = f.read()
        with open(os.path.join(TMP, name), "w") as f:
            f.write(text + line)
        os.chmod(os.path.join(TMP, name), 0o644)
        bind(os.path.join(TMP, name), "/etc/" + name)
    for d in ("log", "lib", "etc-nginx", "entry"):
        os.makedirs(os.path.join(TMP, d))
        os.chmod(os.path.join(TMP, d), 0o755)
    os.chown(os.path.join(TMP, "lib"), uid, uid)
    shutil.copy("/etc/nginx/mime.types", os.path.join(TMP, "mime.types"))
    for hosts in ("hosts-nginx", "hosts-portcullis"):
        open(os.path.join(TMP, hosts), "w").close()
    bind(os.path.join(TMP, "hosts-nginx"), "/etc/hosts")
    bind(os.path.join(TMP, "etc-nginx"), "/etc/nginx")
    bind(os.path.join(TMP, "log"), "/var/log/nginx")
    if os.path.isdir("/var/lib/nginx"):
        bind(os.path.join(TMP, "lib"), "/var/lib/nginx")
    # as in a container on a compose network: the resolver is Docker's DNS
    with open(os.path.join(TMP, "resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.11\n")
    os.chmod(os.path.join(TMP, "resolv.conf"), 0o644)
    bind(os.path.join(TMP, "resolv.conf"), "/etc/resolv.conf")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"], check=True)
    os.makedirs("/run/lock", exist_ok=True)


def bind(src, dst):
    subprocess.run(["mount", "--bind", src, dst], check=True)


def write_hosts(path, names):
    with open(path, "w") as f:
        f.write("127.0.0.1 localhost\n")
        for name, addr in names.items():
            f.write("%s %s\n" % (addr, name))


def wait_listening(addr, port, proc=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((addr, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


# ------------------------------------------------------------ stand-ins

SEEN = []        # (service, request_id, raw target, headers)
SEEN_LOCK = threading.Lock()


def seen_by(request_id):
    with SEEN_LOCK:
        return [s for s in SEEN if s[1] == request_id]


class StandIn(BaseHTTPRequestHandler):
    """Records what reached one of Dify's services, answers who it is.
    An upgrade request gets 101 and an echo, as a websocket server would."""
    protocol_version = "HTTP/1.1"
    service = "?"

    def log_message(self, *args):
        pass

    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with SEEN_LOCK:
            SEEN.append((self.service, self.headers.get("X-Request-Id"), self.path, dict(self.headers)))
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while True:
                data = self.rfile.read1(4096)
                if not data:
                    break
                self.wfile.write(data)
                self.wfile.flush()
            self.close_connection = True
            return
        body = json.dumps({"service": self.service, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any


def start_standin(service):
    handler = type("StandIn_" + service, (StandIn,), {"service": service})
    srv = ThreadingHTTPServer((ADDR[service], PORT[service]), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class DockerDNS(socketserver.BaseRequestHandler):
    """Docker's embedded DNS at 127.0.0.11 as nginx's network sees it: A
    records for the names in NAMES, NXDOMAIN for the rest."""
    NAMES = {}

    def handle(self):
        data, sock = self.request
        qid, _flags, qd = struct.unpack("!HHH", data[:6])
        i, labels = 12, []
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode())
            i += 1 + data[i]
        qtype = struct.unpack("!H", data[i + 1:i + 3])[0]
        question = data[12:i + 5]
        name = ".".join(labels).lower()
        addr = self.NAMES.get(name)
        if addr is None:
            sock.sendto(struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question, self.client_address)
            return
        answers = b""
        if qtype == 1:
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(addr)
        sock.sendto(struct.pack("!HHHHHH", qid, 0x8180, 1, 1 if answers else 0, 0, 0)
                    + question + answers, self.client_address)


# ------------------------------------------------------------ portcullis

class Portcullis:
    """build/portcullis with rules/dify.yaml, its environment taken from the
    merged compose model, in its own mount namespace whose /etc/hosts is its
    own view (the default network: api-backend, api-websocket-backend)."""

    def __init__(self, name, environment, user=None):
        self.name = name
        self.addr = ADDR[name]
        self.user = user
        env = {"PATH": "/usr/sbin:/usr/bin:/bin",
               "SECRET_KEY": "dropin-test-" + os.urandom(16).hex(),
               "DB_HOST": "db_postgres"}
        env.update({k: v for k, v in environment.items() if k.startswith("PORTCULLIS_")})
        port = env["PORTCULLIS_LISTEN"].rsplit(":", 1)[1]
        self.port = int(port)
        env["PORTCULLIS_LISTEN"] = "%s:%s" % (self.addr, port)
        env["PORTCULLIS_ADMIN_LISTEN"] = "%s:9901" % self.addr
        self.env = env
        self.lines = []
        self.proc = None

    def start(self):
        self.stop()
        hosts = os.path.join(TMP, "hosts-portcullis")
        script = 'mount --bind "$0" /etc/hosts && exec "$1" -c "$2"'
        if self.user:
            # as the compose service runs it: read_only root filesystem,
            # cap_drop ALL, no-new-privileges, its user
            uid, gid = self.user.split(":")
            script = ('mount --bind "$0" /etc/hosts && mount -o remount,bind,ro / && '
                      'exec setpriv --reuid %s --regid %s --clear-groups --inh-caps=-all '
                      '--bounding-set=-all --no-new-privs "$1" -c "$2"' % (uid, gid))
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             script, hosts, PORTCULLIS, os.path.join(ROOT, "rules", "dify.yaml")],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.stderr = []
        threading.Thread(target=self._read_err, args=(self.proc.stderr,), daemon=True).start()
        if not wait_listening(self.addr, self.port, self.proc):
            raise RuntimeError("%s did not start: %s" % (self.name, "".join(self.stderr[-20:])))

    def _read(self, f):
        for line in f:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass

    def _read_err(self, f):
        for line in f:
            self.stderr.append(line)

    def logged(self, request_id, timeout=5.0):
        """The access line of that request (written at most 200 ms later)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.get("request_id") == request_id:
                    return line
            time.sleep(0.02)
        return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
            self.proc.stderr.close()
            self.proc = None


# ------------------------------------------------------------ nginx

class DifyNginx:
    """Dify's docker/nginx of one version, laid out as its compose file mounts
    it, rendered and started by Dify's own docker-entrypoint.sh."""

    def __init__(self, commit):
        self.commit = commit
        etc = os.path.join(TMP, "etc-nginx")
        for entry in os.listdir(etc):
            p = os.path.join(etc, entry)
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        shutil.copy(os.path.join(TMP, "mime.types"), os.path.join(etc, "mime.types"))
        # ./nginx/{nginx,proxy,https}.conf.template and ./nginx/conf.d
        for name in ("nginx.conf.template", "proxy.conf.template", "https.conf.template"):
            with open(os.path.join(etc, name), "w") as f:
                f.write(dify_show(commit, "docker/nginx/" + name))
        os.makedirs(os.path.join(etc, "conf.d"))
        for path in dify_ls(commit, "docker/nginx/conf.d"):
            with open(os.path.join(etc, "conf.d", os.path.basename(path)), "w") as f:
                f.write(dify_show(commit, path))
        # the compose entrypoint copies the script and strips CRs before running it
        self.entry = os.path.join(TMP, "entry", "docker-entrypoint.sh")
        with open(self.entry, "w") as f:
            f.write(dify_show(commit, "docker/nginx/docker-entrypoint.sh").replace("\r\n", "\n"))
        os.chmod(self.entry, 0o755)
        # the nginx container's environment: its compose `environment`,
        # interpolated with the version's .env (a copy of .env.example)
        model, _env = merged(commit, None)
        self.env = {k: v for k, v in model["services"]["nginx"]["environment"].items()}
        self.port = int(self.env.get("NGINX_PORT", "80"))
        self.proc = None
        self.err = ""

    def start(self):
        env = dict(self.env, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        self.errfile = open(os.path.join(TMP, "nginx-stderr"), "w+")
        self.proc = subprocess.Popen([self.entry], env=env, stdout=self.errfile, stderr=self.errfile)
        ok = wait_listening("127.0.0.1", self.port, self.proc)
        self.errfile.seek(0)
        self.err = self.errfile.read()
        return ok

    def rendered(self):
        with open(os.path.join(TMP, "etc-nginx", "conf.d", "default.conf")) as f:
            return f.read()

    def error_log(self):
        try:
            with open(os.path.join(TMP, "log", "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errfile.close()


COUNTER = [0]


def request(method, path, headers=None, port=80, host="127.0.0.1"):
    COUNTER[0] += 1
    rid = "dropin-%d" % COUNTER[0]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    h = {"Host": "dify.test", "X-Request-Id": rid}
    h.update(headers or {})
    conn.request(method, path, headers=h)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return rid, resp.status, body, dict(resp.getheaders())


def console_goes_through_portcullis(status, body):
    """The operator's bypass probe: GET https://<dify>/console/api/portcullis/healthz
    is answered by portcullis itself; Dify has no such route."""
    try:
        return status == 200 and json.loads(body) == {"status": "ok"}
    except ValueError:
        return False


def probe_path(prefix):
    if prefix == "/":
        return "/signin"
    return prefix + ("dropin-probe" if prefix.endswith("/") else "/dropin-probe")


NS_SKIP = None
if not DIFY_MISSING and not IN_NS:
    NS_SKIP = "not in a private namespace (run as root with unshare available)"
if not DIFY_MISSING and IN_NS and not os.access(PORTCULLIS, os.X_OK):
    NS_SKIP = "%s missing: run make first" % PORTCULLIS
if not DIFY_MISSING and IN_NS and not shutil.which("nginx"):
    NS_SKIP = "nginx missing (tests/deps.sh installs nginx-light)"
NS_SKIP = DIFY_MISSING or NS_SKIP


class Services:
    """The stand-ins, the DNS server and the portcullis pair, shared by all
    versions (the portcullis environment is the main override's)."""
    started = False

    @classmethod
    def up(cls):
        if cls.started:
            return
        ns_setup()
        for name in ("api", "api_websocket", "web", "plugin_daemon"):
            start_standin(name)
        dns = socketserver.ThreadingUDPServer(("127.0.0.11", 53), DockerDNS)
        threading.Thread(target=dns.serve_forever, daemon=True).start()
        write_hosts(os.path.join(TMP, "hosts-portcullis"),
                    {"api-backend": ADDR["api"], "api-websocket-backend": ADDR["api_websocket"]})
        model, _ = merged("HEAD", OVERRIDE)
        cls.portcullis = Portcullis("portcullis", model["services"]["portcullis"]["environment"])
        cls.portcullis_ws = Portcullis("portcullis_websocket",
                                       model["services"]["portcullis_websocket"]["environment"])
        cls.portcullis.start()
        cls.portcullis_ws.start()
        cls.started = True

    @classmethod
    def down(cls):
        if cls.started:
            cls.portcullis.stop()
            cls.portcullis_ws.stop()


def edge_view(commit, override):
    """Who nginx reaches by each name, from the merged compose model: the
    names on nginx's networks, mapped to where those services run here."""
    model, env = merged(commit, override)
    prof = profiles_of(env)
    view = {}
    for host in ("api", "api_websocket", "web", "plugin_daemon", "api-backend", "api-websocket-backend"):
        got = cm.resolve(model, "nginx", host, prof)
        if len(got) == 1:
            view[host] = ADDR[got.pop()]
    return view


STOCK_VIEW = {"api": ADDR["api"], "api_websocket": ADDR["api_websocket"],
              "web": ADDR["web"], "plugin_daemon": ADDR["plugin_daemon"]}


class NginxRoutingBase(unittest.TestCase):
    """One Dify version: its templates rendered by its entrypoint, nginx
    started with the names resolving as the drop-in's networks say."""
    label = commit = override = None

    @classmethod
    def setUpClass(cls):
        Services.up()
        cls.view = edge_view(cls.commit, cls.override)
        cls.nginx = cls.start_nginx(cls.view)

    @classmethod
    def start_nginx(cls, view):
        write_hosts(os.path.join(TMP, "hosts-nginx"), view)
        DockerDNS.NAMES = dict(view)
        nginx = DifyNginx(cls.commit)
        if not nginx.start():
            nginx.stop()
            raise RuntimeError("Dify %s nginx did not start:\n%s\n%s" % (cls.label, nginx.err, nginx.error_log()))
        return nginx

    @classmethod
    def tearDownClass(cls):
        cls.nginx.stop()

    def test_nginx_reaches_only_portcullis_as_api(self):
        self.assertEqual(self.view["api"], ADDR["portcullis"])
        self.assertNotIn(ADDR["api"], self.view.values())
        self.assertNotIn(ADDR["api_websocket"], self.view.values())

    def test_template_is_dify_own_rendered_by_its_entrypoint(self):
        conf = self.nginx.rendered()
        self.assertEqual(conf.count("proxy_pass http://api:5001;"),
                         dify_show(self.commit, "docker/nginx/conf.d/default.conf.template")
                         .count("proxy_pass http://api:5001;"))
        self.assertNotIn("${", conf.replace("${NGINX", ""))   # every placeholder rendered
        self.assertIn("listen %d;" % self.nginx.port, conf)

    def test_every_location_reaches_its_service(self):
        conf = self.nginx.rendered()
        locations = parse_locations(conf)
        prefixes = [p for p, _ in locations]
        for must in ("/console/api", "/api", "/v1", "/files", "/explore", "/e/", "/", "/mcp", "/triggers"):
            self.assertIn(must, prefixes)
        if self.label in ("1.15.0", "main"):
            self.assertIn("/openapi", prefixes)
        for prefix, target in locations:
            with self.subTest(location=prefix):
                if target.startswith("http://$"):
                    host = self.nginx.env["NGINX_SOCKET_IO_UPSTREAM"].rsplit(":", 1)[0]
                else:
                    host = upstream_host(target)
                path = probe_path(prefix)
                rid, status, body, _h = request("GET", path)
                self.assertEqual(status, 200, body)
                seen = seen_by(rid)
                self.assertEqual(len(seen), 1, seen)
                service, _rid, raw, headers = seen[0]
                self.assertEqual(raw, path)
                self.assertEqual(headers.get("Host"), "dify.test")
                self.assertEqual(headers.get("X-Forwarded-Proto"), "http")
                if host in ("api", "api_websocket"):
                    # a Dify API process: only through portcullis
                    self.assertEqual(service, host)
                    guard = Services.portcullis if self.view[host] == ADDR["portcullis"] else Services.portcullis_ws
                    self.assertEqual(self.view[host], guard.addr)
                    line = guard.logged(rid)
                    self.assertIsNotNone(line, "%s never saw %s" % (guard.name, path))
                    self.assertEqual(line["decision"], "forward")
                else:
                    self.assertEqual(service, host)
                    if prefix == "/e/":
                        self.assertEqual(headers.get("Dify-Hook-Url"), "http://dify.test" + path)

    def test_console_log_route_is_checked_before_api_sees_it(self):
        rid, status, body, _h = request("GET", "/console/api/apps/%s/chat-conversations" % APP)
        self.assertEqual(status, 401, body)
        line = Services.portcullis.logged(rid)
        self.assertIsNotNone(line)
        self.assertEqual(line["rule"], "chat-conversations")
        self.assertEqual(seen_by(rid), [])

    def test_raw_uri_nginx_normalises_into_another_location_is_refused(self):
        # nginx chooses the location by the normalised path but passes the
        # raw one: a console path that normalises into /v1 (or /socket.io/)
        # reaches the upstream as /console/api/...; portcullis refuses it
        targets = ["/v1"] + (["/socket.io"] if self.label != "1.14.0" else [])
        for loc in targets:
            with self.subTest(location=loc):
                raw = "/console/api/apps/%s/chat-conversations/x/../../../../../..%s/smuggle" % (APP, loc)
                rid, status, body, _h = request("GET", raw)
                self.assertEqual(status, 400, body)
                self.assertEqual(seen_by(rid), [])

    def test_websocket_upgrade_on_socket_io_is_relayed(self):
        s = socket.create_connection(("127.0.0.1", self.nginx.port), timeout=10)
        s.sendall(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: dify.test\r\n"
                  b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Request-Id: ws-" +
                  self.label.encode() + b"\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            self.assertTrue(chunk, head)
            head += chunk
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        s.sendall(b"hello-through-the-tunnel")
        got = head.split(b"\r\n\r\n", 1)[1]
        while len(got) < len(b"hello-through-the-tunnel"):
            chunk = s.recv(4096)
            self.assertTrue(chunk)
            got += chunk
        s.close()
        self.assertEqual(got, b"hello-through-the-tunnel")
        want = "api_websocket" if self.label != "1.14.0" else "api"
        self.assertEqual([x[0] for x in seen_by("ws-" + self.label)], [want])
        guard = Services.portcullis_ws if want == "api_websocket" else Services.portcullis
        self.assertIsNotNone(guard.logged("ws-" + self.label))

    def test_bypass_probe_is_answered_by_portcullis(self):
        rid, status, body, _h = request("GET", PROBE)
        self.assertTrue(console_goes_through_portcullis(status, body), (status, body))
        self.assertEqual(seen_by(rid), [])


class FailClosedTests(unittest.TestCase):
    """What happens when the pieces are missing (Dify main)."""
    commit, label = "HEAD", "main"

    @classmethod
    def setUpClass(cls):
        Services.up()

    def run_nginx(self, view):
        write_hosts(os.path.join(TMP, "hosts-nginx"), view)
        DockerDNS.NAMES = dict(view)
        nginx = DifyNginx(self.commit)
        return nginx, nginx.start()

    def test_console_fails_with_502_while_portcullis_is_down(self):
        nginx, ok = self.run_nginx(edge_view(self.commit, OVERRIDE))
        try:
            self.assertTrue(ok, nginx.err)
            Services.portcullis.stop()
            for path in ("/console/api/apps/%s/chat-conversations" % APP, "/console/api/setup", "/v1/x"):
                rid, status, body, _h = request("GET", path)
                self.assertEqual(status, 502, (path, body))
                self.assertEqual(seen_by(rid), [])
            rid, status, body, _h = request("GET", PROBE)
            self.assertFalse(console_goes_through_portcullis(status, body))
        finally:
            nginx.stop()
            Services.portcullis.start()

    def test_nginx_refuses_to_start_when_a_location_names_a_service_off_its_network(self):
        # a Dify release whose template proxies to a service the drop-in does
        # not put on portcullis_edge: nginx stops at start-up, it never
        # falls back to anything
        view = edge_view(self.commit, OVERRIDE)
        del view["plugin_daemon"]
        nginx, ok = self.run_nginx(view)
        nginx.stop()
        self.assertFalse(ok)
        self.assertIn("host not found in upstream", nginx.err + nginx.error_log())

    def test_stock_routing_is_detected_by_the_bypass_probe(self):
        # Dify without the override: the probe reaches Dify, and a log route
        # reaches api unchecked. This is what an operator's probe must catch.
        nginx, ok = self.run_nginx(STOCK_VIEW)
        try:
            self.assertTrue(ok, nginx.err)
            rid, status, body, _h = request("GET", PROBE)
            self.assertFalse(console_goes_through_portcullis(status, body))
            self.assertEqual([s[0] for s in seen_by(rid)], ["api"])
            rid, status, body, _h = request("GET", "/console/api/apps/%s/chat-conversations" % APP)
            self.assertEqual([s[0] for s in seen_by(rid)], ["api"])
            # and nginx hands the raw, unnormalised path to whatever it proxies to
            raw = "/console/api/apps/%s/chat-conversations/x/../../../../../../v1/smuggle" % APP
            rid, status, body, _h = request("GET", raw)
            self.assertEqual([(s[0], s[2]) for s in seen_by(rid)], [("api", raw)])
        finally:
            nginx.stop()


class HardenedContainerTests(unittest.TestCase):
    """The portcullis service's hardening keys do not stop it from serving."""

    @classmethod
    def setUpClass(cls):
        Services.up()

    def test_portcullis_serves_on_a_read_only_root_without_capabilities_as_its_user(self):
        model, _ = merged("HEAD", OVERRIDE)
        svc = model["services"]["portcullis"]
        self.assertIs(svc["read_only"], True)
        self.assertEqual(svc["cap_drop"], ["ALL"])
        pc = Portcullis("portcullis_hardened", svc["environment"], user=svc["user"])
        pc.start()
        try:
            with open("/proc/%d/status" % pc.proc.pid) as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            self.assertEqual(status["Uid"].split()[0], svc["user"].split(":")[0])
            self.assertEqual(int(status["CapEff"], 16), 0)
            self.assertEqual(int(status["CapBnd"], 16), 0)
            rid, status_code, body, _h = request("GET", PROBE, port=pc.port, host=pc.addr)
            self.assertTrue(console_goes_through_portcullis(status_code, body), body)
            rid, status_code, body, _h = request("GET", "/v1/x", port=pc.port, host=pc.addr)
            self.assertEqual(status_code, 200)
            self.assertEqual([x[0] for x in seen_by(rid)], ["api"])
            # the compose healthcheck command, under the same restrictions
            test = svc["healthcheck"]["test"][1:]
            addr = test[2].replace("127.0.0.1", pc.addr)
            uid, gid = svc["user"].split(":")
            rc = subprocess.call(["setpriv", "--reuid", uid, "--regid", gid, "--clear-groups",
                                  "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
                                  PORTCULLIS, "healthcheck", addr, test[3]],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.assertEqual(rc, 0)
        finally:
            pc.stop()


def _version_class(label, commit, override):
    name = "NginxRouting_%s" % label.replace(".", "_")
    return type(name, (NginxRoutingBase,), {"label": label, "commit": commit, "override": override,
                                            "__doc__": "Dify %s behind the drop-in." % label})


for _label, _commit, _override in VERSIONS:
    globals()["NginxRouting_" + _label.replace(".", "_")] = unittest.skipIf(NS_SKIP, NS_SKIP)(
        _version_class(_label, _commit, _override))
FailClosedTests = unittest.skipIf(NS_SKIP, NS_SKIP)(FailClosedTests)
HardenedContainerTests = unittest.skipIf(NS_SKIP, NS_SKIP)(HardenedContainerTests)
del NginxRoutingBase


def main():
    if not IN_NS and not DIFY_MISSING and os.geteuid() == 0 and shutil.which("unshare"):
        env = dict(os.environ, PC_DROPIN_NS="1")
        rc = subprocess.call(["unshare", "--mount", "--net", "--fork", "--propagation", "private",
                              sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env=env)
        sys.exit(rc)
    try:
        prog = unittest.main(verbosity=2, exit=False)
        res = prog.result
        out = os.environ.get("PC_TEST_JSON")
        if out:
            # for tests/run_tests.py: the same counts as run_integration.py --json
            bad = res.failures + res.errors
            in_tests = [t for t, _ in bad if isinstance(t, unittest.TestCase)]
            with open(out, "w") as f:
                json.dump({"passed": res.testsRun - len(in_tests) - len(res.skipped),
                           "failed": sorted(t.id() for t, _ in bad), "skipped": len(res.skipped)}, f)
        sys.exit(0 if res.wasSuccessful() else 1)
    finally:
        Services.down()
        if TMP:
            shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Host-side fixtures for tests/image/image_test.sh.

  fixtures.py serve
      Start a throwaway PostgreSQL with Dify's schema (main) and the fixture rows, and
      Dify's console routing stack (tests/lib/dify_app.py under gunicorn), then print shell assignments (PG_PORT,
      UPSTREAM_PORT, PROXY_PORT, ADMIN_PORT, SECRET_KEY, APP_ID,
      OWNER_TOKEN, MEMBER_TOKEN) and a final READY line. Runs until SIGTERM,
      SIGINT or SIGHUP, or until its parent (the test script) is gone, then
      stops both.

      For the hardened run, as compose runs the image:
        - PostgreSQL also speaks TLS, with a server certificate for
          DB_NAME (pc-db.test) signed by a throwaway CA: TLS_CA_DIR holds
          only that CA's certificate, ca.crt;
        - a DNS server on DNS_ADDR:53 (a 127.x address of its own) answers
          A queries for DB_NAME with 127.0.0.1, NXDOMAIN for every other
          name, and logs each query it answers on stderr ("dns: ...");
        - STORAGE_DIR holds .dify_secret_key, a key other than SECRET_KEY,
          as Dify >= 1.14.1 generates it; FILE_OWNER_TOKEN and
          FILE_MEMBER_TOKEN are signed with it.

  fixtures.py elf ROOT
      Every regular file under ROOT (an image's file tree) that is an ELF
      object, one a line: its path inside the image, a tab, and the program
      interpreter it names (PT_INTERP), or "-" when it names none.

  fixtures.py get PORT PATH [TOKEN]
      GET PATH from 127.0.0.1:PORT (with "Authorization: Bearer TOKEN" when
      given) and print the status code; "000" when nothing answered.
"""
import os
import random
import shutil
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from harness import PG, ROOT, DifyApi, free_port, http, mint  # noqa: E402
from fixture import APPS, USERS  # noqa: E402


def token(secret, user):
    # as Dify's PassportService mints console tokens
    return mint(secret, {"user_id": USERS[user], "iss": "SELF_HOSTED", "sub": "Console API Passport"})


DB_NAME = "pc-db.test"


def make_tls(pg, workdir):
    """A throwaway CA and a server certificate for DB_NAME; PostgreSQL
    switches TLS on with them (ssl is reloadable). Returns the directory
    that holds only the CA certificate."""
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=workdir)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=portcullis image-test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=" + DB_NAME)
    with open(os.path.join(workdir, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % DB_NAME)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    for name in ("server.crt", "server.key"):
        dst = os.path.join(pg.data, name)
        with open(os.path.join(workdir, name), "rb") as src, open(dst, "wb") as out:
            out.write(src.read())
        os.chmod(dst, 0o600)
        if pg.as_postgres:
            subprocess.run(["chown", "postgres:postgres", dst], check=True)
    pg.psql("ALTER SYSTEM SET ssl = on", db="postgres")
    pg.psql("SELECT pg_reload_conf()", db="postgres")
    env = dict(os.environ, PGSSLMODE="verify-full", PGSSLROOTCERT=os.path.join(workdir, "ca.crt"),
               PGCONNECT_TIMEOUT="5")
    # the reload is asynchronous: wait until a verified TLS connection to
    # DB_NAME (127.0.0.1, given as hostaddr) succeeds
    for _ in range(100):
        r = subprocess.run(["psql", "-X", "-At", "-d", "host=%s hostaddr=127.0.0.1 port=%d dbname=dify user=postgres"
                            % (DB_NAME, pg.port), "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"],
                           capture_output=True, text=True, env=env)
        if r.returncode == 0 and r.stdout.strip() == "t":
            break
        time.sleep(0.1)
    else:
        raise RuntimeError("PostgreSQL did not accept verify-full TLS: %s" % r.stderr)
    public = os.path.join(workdir, "ca")
    os.makedirs(public)
    os.chmod(public, 0o755)
    with open(os.path.join(workdir, "ca.crt"), "rb") as src, open(os.path.join(public, "ca.crt"), "wb") as out:
        out.write(src.read())
    os.chmod(os.path.join(public, "ca.crt"), 0o644)
    return public


class DNS(threading.Thread):
    """A DNS server on ADDR:53 (UDP) that knows only NAMES (name -> IPv4):
    A queries for them are answered, other types get an empty answer, every
    other name NXDOMAIN. Each answered query is logged on stderr."""

    def __init__(self, names):
        super().__init__(daemon=True)
        self.names = names
        self.sock = None
        for _ in range(20):
            addr = "127.53.%d.%d" % (random.randint(1, 254), random.randint(1, 254))
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((addr, 53))
            except OSError:
                s.close()
                continue
            self.sock, self.addr = s, addr
            break
        if self.sock is None:
            raise RuntimeError("no 127.53.x.y:53 to bind the DNS server to")

    def run(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.sock.sendto(self.answer(data), peer)
            except (ValueError, IndexError, struct.error, OSError):
                continue

    def answer(self, q):
        qid, flags, qd = struct.unpack("!HHH", q[:6])
        if qd != 1:
            raise ValueError("one question only")
        labels, i = [], 12
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii").lower())
            i += 1 + q[i]
        qtype, qclass = struct.unpack("!HH", q[i + 1:i + 5])
        question = q[12:i + 5]
        name = ".".join(labels)
        ip = self.names.get(name)
        rd = flags & 0x0100
        if ip is None:
            rcode, answers = 3, b""
        elif qtype == 1 and qclass == 1:
            rcode = 0
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(ip)
        else:
            rcode, answers = 0, b""
        sys.stderr.write("dns: %s type %d -> %s\n" % (name, qtype, ip if answers else ("NXDOMAIN" if rcode else "no data")))
        sys.stderr.flush()
        head = struct.pack("!HHHHHH", qid, 0x8400 | 0x0080 | rd | rcode, 1, 1 if answers else 0, 0, 0)
        return head + question + answers

    def close(self):
        self.sock.close()


def serve():
    parent = os.getppid()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    pg = up = dns = None
    work = tempfile.mkdtemp(prefix="pc-image-fx-")
    try:
        pg = PG()
        for part in ("schema", "data"):
            pg.psql_file(os.path.join(ROOT, "tests", "fixtures", "dify-%s-main.pg.sql" % part))
        up = DifyApi(version="1.16.0-rc1")  # the routes of the Dify whose schema this is
        secret = "sk-image-test-" + secrets.token_hex(16)
        tls_ca_dir = make_tls(pg, work)
        dns = DNS({DB_NAME: "127.0.0.1"})
        dns.start()
        # Dify writes the generated key with a trailing newline
        file_secret = "sk-image-test-file-" + secrets.token_hex(16)
        storage = os.path.join(work, "storage")
        os.makedirs(storage)
        os.chmod(storage, 0o755)
        with open(os.path.join(storage, ".dify_secret_key"), "w") as f:
            f.write(file_secret + "\n")
        os.chmod(os.path.join(storage, ".dify_secret_key"), 0o644)
        out = {
            "PG_PORT": pg.port,
            "UPSTREAM_PORT": up.port,
            "PROXY_PORT": free_port(),
            "ADMIN_PORT": free_port(),
            "SECRET_KEY": secret,
            "APP_ID": APPS["a-editor-app"][0],
            "OWNER_TOKEN": token(secret, "owner_a"),    # workspace owner: allowed
            "MEMBER_TOKEN": token(secret, "normal_a"),  # plain member, not the creator: denied
            "DB_NAME": DB_NAME,
            "TLS_CA_DIR": tls_ca_dir,
            "DNS_ADDR": dns.addr,
            "STORAGE_DIR": storage,
            "FILE_OWNER_TOKEN": token(file_secret, "owner_a"),
            "FILE_MEMBER_TOKEN": token(file_secret, "normal_a"),
        }
        for k, v in out.items():
            print("%s=%s" % (k, v))
        print("READY", flush=True)

        while not stop.wait(0.5):
            if os.getppid() != parent:
                print("fixtures: parent gone, stopping", file=sys.stderr)
                return 1
            if up.proc.poll() is not None:
                print("fixtures: the test upstream exited (%s)" % up.proc.returncode, file=sys.stderr)
                return 1
        return 0
    finally:
        if dns is not None:
            dns.close()
        if up is not None:
            up.close()
        if pg is not None:
            pg.close()
        shutil.rmtree(work, ignore_errors=True)


def get(port, path, tok=None):
    headers = [("Authorization", "Bearer " + tok)] if tok else []
    try:
        r = http(int(port), "GET", path, headers, timeout=5.0)
        print(r.status)
    except (OSError, EOFError, ValueError):
        print("000")
    return 0


def elf_files(root):
    for d, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(d, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                head = f.read(64)
                if head[:4] != b"\x7fELF":
                    continue
                if head[4] != 2 or head[5] != 1:  # ELFCLASS64, little endian: what we build for
                    print("%s\t?" % ("/" + os.path.relpath(path, root)))
                    continue
                phoff, = struct.unpack_from("<Q", head, 32)
                phentsize, phnum = struct.unpack_from("<HH", head, 54)
                interp = "-"
                for i in range(phnum):
                    f.seek(phoff + i * phentsize)
                    p_type, _, p_offset, _, _, p_filesz = struct.unpack("<IIQQQQ", f.read(40))
                    if p_type == 3:  # PT_INTERP
                        f.seek(p_offset)
                        interp = f.read(p_filesz).rstrip(b"\0").decode()
            print("%s\t%s" % ("/" + os.path.relpath(path, root), interp))
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "serve":
        return serve()
    if len(argv) == 3 and argv[1] == "elf":
        return elf_files(argv[2])
    if len(argv) in (4, 5) and argv[1] == "get":
        return get(*argv[2:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

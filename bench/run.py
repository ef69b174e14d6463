#!/usr/bin/env python3
"""keygate's HTTP benchmarks, side by side on loopback (results in BENCHMARKS.md).

    python3 bench/run.py verify            keygate vs nginx `return 200` vs the Python peer
    python3 bench/run.py scale             1k, 100k, 1M, 10M tokens: start-up, cold, warm, memory
    python3 bench/run.py writes            durable creates and revokes, 1/8/64 clients, SQLite and PostgreSQL
    python3 bench/run.py flood             valid verifications with and without a flood of made-up tokens
    python3 bench/run.py usage             a token with rate limits and credits vs a plain one, with and
                                           without Redis
    python3 bench/run.py credits           credits on two nodes sharing a PostgreSQL: verifies/s, database
                                           writes per 1 000 verifies, and exactly the granted credits spent
    python3 bench/run.py analytics         verifications counted per token (the usage API) vs not counted
    python3 bench/run.py allowlist         a token bound to 100 networks vs a plain one
    python3 bench/run.py gateways          one check as a gateway asks it: Envoy ext_authz over gRPC
                                           (the grpc_load example) vs forward-auth GET /api/v1/auth
                                           (wrk) vs nginx `return 200` (wrk)
    python3 bench/run.py replica           keygate-client's replica in front of a real keygate: snapshot
                                           time and memory for 1M tokens (SQLite), and how soon a
                                           create or a revoke reaches it (one SQLite node; two
                                           PostgreSQL nodes, the change made on the other one)
    python3 bench/run.py webhooks          events delivered per second to a local receiver, latency from a
                                           create's 2xx to its event, and creates/verifies with 3
                                           endpoints subscribed to every event vs none
    python3 bench/run.py all               verify, scale, writes and flood

Needs `wrk` (Debian: apt-get install wrk) and, for `verify`, nginx (apt-get install nginx-light);
the peer (Django REST Framework + djangorestframework-api-key under gunicorn) is installed by
bench/peer/setup.sh into a venv. Everything listens on 127.0.0.1 only, and every load is bounded
in time (--duration). keygate runs as its release build on SQLite unless said otherwise.
The binaries are taken from --target-dir, else $CARGO_TARGET_DIR, else target/ in the
workspace; the build (unless --no-build) writes them there.

The machine is shared and has few cores: compare the figures of one run, side by side, not runs
with each other. Each case runs --rounds times, alternating the servers, and the median is kept.

On a machine with two CPUs or more, the servers run on all CPUs but the last and wrk on the last
(taskset), and every server gets one worker per CPU it runs on: otherwise the load generator
takes turns with the server on the same cores, and which server thread the kernel happens to
hand the connections to decides the figure more than the server does (BENCHMARKS.md). --no-pin
runs everything everywhere.
"""

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = ROOT / "bench" / "wrk"
PEER_DIR = ROOT / "bench" / "peer"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
KEYGATE = TARGET / "release" / "keygate"
FLOOR = TARGET / "release" / "examples" / "http_floor"
SEEDER = TARGET / "release" / "examples" / "seed"
GRPC_LOAD = TARGET / "release" / "examples" / "grpc_load"
REPLICA_BENCH = TARGET / "release" / "examples" / "replica_bench"
ADMIN_PASSWORD = "bench-admin-password"
# (server CPUs, load-generator CPUs) as taskset lists, or None: set in main().
PIN = None


def server_cpus():
    """How many CPUs the servers run on: what each one gets a worker per."""
    if PIN:
        return len(PIN[0].split(","))
    return os.cpu_count() or 1


def on_server_cpus(args):
    return ["taskset", "-c", PIN[0], *args] if PIN else list(args)


def on_load_cpus(args):
    return ["taskset", "-c", PIN[1], *args] if PIN else list(args)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listening on {port} after {seconds} s")


def wait_until_ready(url, proc, seconds=60):
    """Until `url` answers 200. keygate binds its port before it opens the database (so a
    start that cannot listen fails before the first-start bootstrap), so an open port does not
    yet mean a serving one."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} not ready after {seconds} s")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid):
    """User and system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def http(method, url, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None


class Server:
    """A server process on a loopback port of its own."""

    port = None
    proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        stop(self.proc)


class Keygate(Server):
    """A release keygate on a port of its own; SQLite in `data_dir` unless `database_url`."""

    def __init__(self, data_dir, token, database_url=None, extra_args=()):
        self.data_dir = Path(data_dir)
        self.token = token
        self.database_url = database_url
        self.extra_args = list(extra_args)
        self.startup_s = None

    def start(self):
        self.port = free_port()
        args = on_server_cpus([str(KEYGATE), "serve", "--listen", f"127.0.0.1:{self.port}",
                               "--data-dir", str(self.data_dir),
                               "--scope", "metrics:read=Read metrics",
                               "--http-workers", str(server_cpus()), *self.extra_args])
        if self.database_url:
            args += ["--database-url", self.database_url]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
        env.update(KEYGATE_BOOTSTRAP_TOKEN=self.token, KEYGATE_ADMIN_PASSWORD=ADMIN_PASSWORD,
                   KEYGATE_LOG="warn")
        started = time.monotonic()
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        # Start-up ends when the database is open and requests are answered.
        wait_until_ready(self.url + "/readyz", self.proc)
        self.startup_s = time.monotonic() - started
        return self

    def api(self, method, path, body=None):
        return http(method, self.url + path, self.token, body)


class Nginx(Server):
    """nginx answering every request with keygate's `valid` answer, `workers` processes."""

    def __init__(self, workdir, workers):
        self.dir = Path(workdir) / "nginx"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.port = free_port()

    def start(self):
        conf = self.dir / "nginx.conf"
        conf.write_text(f"""
worker_processes {self.workers};
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            default_type application/json;
            return 200 '{{"valid":true}}';
        }}
    }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(on_server_cpus([nginx, "-p", str(self.dir), "-c", str(conf),
                                                     "-g", "daemon off;"]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)
        return self


class Floor(Server):
    """keygate's HTTP stack alone (crates/keygate-server/examples/http_floor.rs): the same
    HTTP workers, axum and hyper, reading the body and answering with nginx's, nothing else."""

    def __init__(self):
        self.port = free_port()

    def start(self):
        # One worker per CPU it may run on, as keygate's default.
        self.proc = subprocess.Popen(on_server_cpus([str(FLOOR), f"127.0.0.1:{self.port}"]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)
        return self


class Peer(Server):
    """The Django REST Framework peer (bench/peer), under gunicorn."""

    def __init__(self, workdir, workers):
        self.venv = Path(workdir) / "peer-venv"
        self.workers = workers
        self.port = free_port()
        self.key = None
        self.data_dir = Path(workdir) / "peer-data"

    def start(self):
        env = dict(os.environ, PEER_DATA_DIR=str(self.data_dir))
        out = subprocess.run(["bash", str(PEER_DIR / "setup.sh"), str(self.venv)], env=env,
                             check=True, capture_output=True, text=True).stdout
        self.key = re.findall(r"^KEY=(\S+)$", out, re.M)[-1]
        self.proc = subprocess.Popen(on_server_cpus(["bash", str(PEER_DIR / "run.sh"),
                                                     str(self.venv), str(self.port),
                                                     str(self.workers)]), env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_for_port(self.port, self.proc, seconds=120)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)


def wrk_start(url, scenario, env, connections, duration, threads, count_valid=False):
    """Starts wrk on `url` with bench/wrk/<scenario>.lua; `wrk_result` waits for it.
    `count_valid` also counts the answers that are 200 with code VALID (bench/wrk/valid.lua):
    it reads every body, which costs the load generator, so only runs that need it do."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    parts = ("list", scenario, *(("valid",) if count_valid else ()), "report")
    script.write_text("\n".join((WRK_DIR / f"{name}.lua").read_text() for name in parts))
    threads = max(1, min(threads, connections))
    proc = subprocess.Popen(
        on_load_cpus(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s",
                      "--timeout", "10s", "-s", str(script), url]),
        env=dict(os.environ, KG_THREADS=str(threads), **env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, script


def wrk_result(started):
    """requests/s, p50, p99 (ms), failed (non-2xx and socket errors) of a started wrk."""
    proc, script = started
    try:
        out, err = proc.communicate()
    finally:
        script.unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err}")
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    ok = r["requests"] - r["failed"]
    return {
        "rps": ok / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "failed": r["failed"],
        "requests": r["requests"],
        "all_rps": r["requests"] / (r["duration_us"] / 1e6),
        "valid": r["valid"],
    }


def wrk(url, scenario, env, connections, duration, threads):
    """Loads `url` with bench/wrk/<scenario>.lua; returns requests/s, p50, p99 (ms), failed."""
    return wrk_result(wrk_start(url, scenario, env, connections, duration, threads))


def placement():
    if PIN:
        return f"servers on CPU {PIN[0]} with {server_cpus()} worker(s) each, wrk on CPU {PIN[1]}"
    return f"servers and wrk sharing {os.cpu_count()} CPUs, {server_cpus()} workers each"


def median_of(runs):
    keys = ("rps", "p50_ms", "p99_ms")
    m = {k: statistics.median(r[k] for r in runs) for k in keys}
    m["failed"] = sum(r["failed"] for r in runs)
    return m


def fmt(r):
    warn = f"  ({r['failed']} failed!)" if r["failed"] else ""
    return f"{r['rps']:>10,.0f} req/s   p50 {r['p50_ms']:6.2f} ms   p99 {r['p99_ms']:6.2f} ms{warn}"


def new_token():
    return subprocess.run([str(KEYGATE), "gen-token"], check=True, capture_output=True,
                          text=True).stdout.strip()


# ------------------------------------------------------------------------------------------------
# verify: keygate against nginx and the peer


IMPORTED = "keygate, imported token"


def bench_verify(args, work):
    servers = {}
    admin = new_token()
    kg = Keygate(work / "kg-verify", admin).start()
    servers["keygate"] = kg
    token = kg.api("POST", "/api/v1/tokens", {"name": "bench", "scopes": ["metrics:read"]})["token"]
    # A key made elsewhere, imported by its SHA-256: verified by hash like a minted one, on the
    # same server, so the two rows compare the tokens and nothing else.
    imported = "legacy_" + secrets.token_hex(24)
    kg.api("POST", "/api/v1/tokens/import", {"tokens": [{
        "hash": "sha256:" + hashlib.sha256(imported.encode()).hexdigest(),
        "name": "bench imported", "scopes": ["metrics:read"]}]})
    servers[IMPORTED] = kg
    tokens = {"keygate": token, IMPORTED: imported}
    cores = server_cpus()
    if not args.no_nginx:
        servers["nginx"] = Nginx(work, cores).start()
    if not args.no_floor:
        servers["axum floor"] = Floor().start()
    if not args.no_peer:
        try:
            servers["peer"] = Peer(work, args.peer_workers or cores * 2 + 1).start()
        except Exception as e:  # the comparison with nginx stands on its own
            log(f"!!! the Python peer could not start ({e}); its column is left out")
    results = {}
    for route, scenario, path in [("POST /api/v1/verify", "verify", "/api/v1/verify"),
                                  ("GET /api/v1/auth", "auth", "/api/v1/auth")]:
        runs = {name: [] for name in servers}
        for rnd in range(args.rounds):
            for name, s in servers.items():
                if name == "peer":
                    env = {"KG_TOKEN": "unused", "KG_AUTH": f"Api-Key {s.key}"}
                    url = s.url + ("/verify" if scenario == "verify" else "/auth")
                    # The peer reads its key from the header on both routes.
                    sc = "auth" if scenario == "auth" else "peer_verify"
                else:
                    t = tokens.get(name, token)
                    env = {"KG_TOKEN": t, "KG_AUTH": f"Bearer {t}"}
                    url = s.url + path
                    sc = scenario
                r = wrk(url, sc, env, args.connections, args.duration, args.threads)
                runs[name].append(r)
                log(f"{route:22} round {rnd + 1} {name:10} {fmt(r)}")
        results[route] = {name: median_of(rs) for name, rs in runs.items()}
    # The imported token's row is served by the same keygate: each process stopped once.
    for s in {id(s): s for s in servers.values()}.values():
        s.stop()
    print(f"\n## verify: {args.connections} connections, {args.duration} s x {args.rounds} rounds, "
          f"wrk -t{args.threads}, {placement()} (medians)\n")
    print("| route | server | requests/s | p50 | p99 | keygate / this |")
    print("| --- | --- | --- | --- | --- | --- |")
    for route, by in results.items():
        k = by["keygate"]["rps"]
        for name, r in by.items():
            ratio = "" if name == "keygate" else f"{k / r['rps']:.2f}"
            print(f"| `{route}` | {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} ms | "
                  f"{r['p99_ms']:.2f} ms | {ratio} |")
    return results


# ------------------------------------------------------------------------------------------------
# gateways: ext_authz over gRPC against forward-auth over HTTP and nginx


def grpc_load(addr, token, args):
    """The grpc_load example against `addr` on the load CPUs: `--connections` calls in flight
    over `--grpc-channels` HTTP/2 connections; the same result as `wrk_result`."""
    cmd = on_load_cpus([str(GRPC_LOAD), addr, token, "--concurrency", str(args.connections),
                        "--channels", str(args.grpc_channels), "--duration", str(args.duration),
                        "--threads", str(args.threads)])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    return {
        "rps": (r["requests"] - r["failed"]) / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "failed": r["failed"],
        "requests": r["requests"],
    }


def bench_gateways(args, work):
    admin = new_token()
    grpc_port = free_port()
    kg = Keygate(work / "kg-gateways", admin,
                 extra_args=["--grpc-listen", f"127.0.0.1:{grpc_port}"]).start()
    wait_for_port(grpc_port, kg.proc)
    token = kg.api("POST", "/api/v1/tokens", {"name": "bench", "scopes": ["metrics:read"]})["token"]
    nginx = None if args.no_nginx else Nginx(work, server_cpus()).start()
    cases = [("ext_authz gRPC Check", lambda: grpc_load(f"127.0.0.1:{grpc_port}", token, args)),
             ("forward-auth GET /api/v1/auth",
              lambda: wrk(kg.url + "/api/v1/auth?scope=metrics:read", "auth",
                          {"KG_TOKEN": token, "KG_AUTH": f"Bearer {token}"},
                          args.connections, args.duration, args.threads))]
    if nginx:
        cases.append(("nginx `return 200`",
                      lambda: wrk(nginx.url + "/api/v1/auth?scope=metrics:read", "auth",
                                  {"KG_TOKEN": token, "KG_AUTH": f"Bearer {token}"},
                                  args.connections, args.duration, args.threads)))
    runs = {name: [] for name, _ in cases}
    # keygate's own CPU per answered request: what the server spends, whatever the load
    # generator (one CPU, the gRPC client costlier than wrk) could send.
    cpu_us = {name: [] for name, _ in cases}
    try:
        for rnd in range(args.rounds):
            for name, run in cases:
                before = cpu_seconds(kg.proc.pid)
                r = run()
                spent = cpu_seconds(kg.proc.pid) - before
                runs[name].append(r)
                if not name.startswith("nginx") and r["requests"]:
                    cpu_us[name].append(spent / r["requests"] * 1e6)
                log(f"gateways round {rnd + 1} {name:30} {fmt(r)}"
                    + (f"   keygate {cpu_us[name][-1]:.1f} µs CPU/request" if cpu_us[name] and not name.startswith("nginx") else ""))
    finally:
        kg.stop()
        if nginx:
            nginx.stop()
    results = {name: median_of(rs) for name, rs in runs.items()}
    print(f"\n## gateways: {args.connections} requests in flight ({args.grpc_channels} HTTP/2 "
          f"connections for gRPC, {args.connections} HTTP/1.1 connections for wrk), "
          f"{args.duration} s x {args.rounds} rounds, {args.threads} load thread(s), "
          f"{placement()} (medians)\n")
    print("| what | requests/s | p50 | p99 | / forward-auth | keygate CPU per request |")
    print("| --- | --- | --- | --- | --- | --- |")
    http_rps = results["forward-auth GET /api/v1/auth"]["rps"]
    for name, r in results.items():
        warn = f" ({r['failed']} failed!)" if r["failed"] else ""
        cpu = f"{statistics.median(cpu_us[name]):.1f} µs" if cpu_us[name] else "–"
        print(f"| {name} | {r['rps']:,.0f}{warn} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms "
              f"| {r['rps'] / http_rps:.2f} | {cpu} |")
    return results


# ------------------------------------------------------------------------------------------------
# scale: 1k … 10M tokens


def cached_tokens(kg):
    """keygate's own count of the tokens in its verification cache (from /metrics)."""
    with urllib.request.urlopen(kg.url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    return int(float(re.search(r"^keygate_cached_tokens (\S+)$", text, re.M).group(1)))


def seed(db, count, sample_file, sample_size):
    subprocess.run([str(SEEDER), str(db), str(count), str(sample_file), str(sample_size)],
                   cwd=ROOT, check=True)


def memory_per_token(row):
    """Resident-memory growth per cached token; a few thousand tokens grow it by less than the
    process's own noise (allocator and page-cache churn), which can even be negative."""
    if row["cached"] < 10_000:
        return "(too few to measure)"
    return f"{row['bytes_per_cached_token']:.0f} B"


def bench_scale(args, work):
    rows = []
    for count in [int(c) for c in args.counts.split(",")]:
        data = work / f"kg-scale-{count}"
        admin = new_token()
        # First start: schema and tenant `default`; then the rows go straight into the file.
        Keygate(data, admin).start().stop()
        sample = work / f"sample-{count}.txt"
        size = min(count, args.sample)
        started = time.monotonic()
        seed(data / "keygate.db", count, sample, size)
        seeded_s = time.monotonic() - started
        extra = ["--cache-capacity", str(args.cache_capacity)] if args.cache_capacity else []
        kg = Keygate(data, admin, extra_args=extra).start()
        http("POST", kg.url + "/api/v1/verify", body={"token": sample.read_text().split()[0]})
        rss_before = rss_kib(kg.proc.pid)
        env = {"KG_TOKENS": str(sample), "KG_ORDER": "sequential"}
        cold = wrk(kg.url + "/api/v1/verify", "tokens", env, args.connections, args.cold_duration,
                   args.threads)
        # Walk the whole sample (at the cold rate, with room to spare) so every sampled token
        # is cached, then measure warm, in random order.
        warm_up_s = int(size / max(cold["rps"], 1) * 1.5) + 2
        wrk(kg.url + "/api/v1/verify", "tokens", env, args.connections, warm_up_s, args.threads)
        cached = cached_tokens(kg)
        warm = wrk(kg.url + "/api/v1/verify", "tokens", dict(env, KG_ORDER="random"),
                   args.connections, args.duration, args.threads)
        rss_after = rss_kib(kg.proc.pid)
        kg.stop()
        per_token = (rss_after - rss_before) * 1024 / max(cached, 1)
        db_bytes = sum(p.stat().st_size for p in data.glob("keygate.db*"))
        row = {"tokens": count, "seeded_s": seeded_s, "startup_s": kg.startup_s, "cold": cold,
               "warm": warm, "bytes_per_cached_token": per_token, "db_bytes": db_bytes,
               "sample": size, "cached": cached}
        rows.append(row)
        log(f"{count:>10,} tokens: start {kg.startup_s:.2f} s, cold {fmt(cold)}; warm {fmt(warm)};"
            f" {per_token:.0f} B/cached token ({cached:,} cached)")
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    print(f"\n## scale: POST /api/v1/verify, a different valid token per request, "
          f"{args.connections} connections (sample of up to {args.sample} tokens), {placement()}\n")
    print("| tokens | database | start-up | cold req/s | cold p99 | warm req/s | warm p50 | warm p99 "
          "| RSS growth per cached token |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['tokens']:,} | {r['db_bytes'] / 2**20:,.0f} MiB | {r['startup_s']:.2f} s "
              f"| {r['cold']['rps']:,.0f} | {r['cold']['p99_ms']:.2f} ms "
              f"| {r['warm']['rps']:,.0f} | {r['warm']['p50_ms']:.2f} ms "
              f"| {r['warm']['p99_ms']:.2f} ms | {memory_per_token(r)} |")
    return rows


# ------------------------------------------------------------------------------------------------
# writes: durable creates and revokes


def token_ids(kg):
    ids, cursor = [], None
    while True:
        q = "/api/v1/tokens?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = kg.api("GET", q)
        ids += [t["id"] for t in page["items"] if t["name"] == "bench"]
        cursor = page.get("nextCursor")
        if not cursor:
            return ids


def postgres_database():
    """A fresh database on the machine's PostgreSQL; its URL and a function that drops it."""
    base = os.environ.get("KEYGATE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    name = f"keygate_bench_{os.getpid()}"
    subprocess.run(["psql", base, "-qc", f"CREATE DATABASE {name}"], check=True)
    url = base.rsplit("/", 1)[0] + "/" + name
    return url, lambda: subprocess.run(["psql", base, "-qc", f"DROP DATABASE {name} WITH (FORCE)"])


def bench_writes(args, work):
    results = []
    backends = ["sqlite", "postgres"] if not args.sqlite_only else ["sqlite"]
    for backend in backends:
        admin = new_token()
        drop = None
        url = None
        if backend == "postgres":
            url, drop = postgres_database()
        # One owner creates every token of the run: its bound on tokens is lifted.
        kg = Keygate(work / f"kg-writes-{backend}", admin, database_url=url,
                     extra_args=["--max-tokens-per-owner", "4000000000"]).start()
        env = {"KG_AUTH": f"Bearer {admin}"}
        for c in args.write_clients:
            r = wrk(kg.url + "/api/v1/tokens", "create", env, c, args.duration, args.threads)
            results.append((backend, "create", c, r))
            log(f"{backend:8} create  {c:3} clients {fmt(r)}")
        ids_file = work / f"ids-{backend}.txt"
        for c in args.write_clients:
            # Top up (unmeasured) with as many creates as this many clients make in the time, so
            # the revokes have ids to work through.
            wrk(kg.url + "/api/v1/tokens", "create", env, c, args.duration, args.threads)
            ids = token_ids(kg)
            ids_file.write_text("\n".join(ids) + "\n")
            r = wrk(kg.url + "/api/v1/tokens", "revoke", dict(env, KG_IDS=str(ids_file)), c,
                    args.duration, args.threads)
            results.append((backend, "revoke", c, r))
            log(f"{backend:8} revoke  {c:3} clients {fmt(r)} ({len(ids)} ids available)")
        kg.stop()
        if drop:
            drop()
    print(f"\n## writes: durable (SQLite synchronous=FULL, PostgreSQL synchronous_commit=on), "
          f"{args.duration} s each, {placement()}\n")
    print("| backend | operation | clients | per second | p50 | p99 | failed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for backend, op, c, r in results:
        print(f"| {backend} | {op} | {c} | {r['rps']:,.0f} | {r['p50_ms']:.2f} ms "
              f"| {r['p99_ms']:.2f} ms | {r['failed']} |")
    return results


# ------------------------------------------------------------------------------------------------
# flood: valid verifications beside a flood of made-up tokens

def made_up_tokens(count, kind):
    """`count` tokens of keygate's format that no database holds: with a good checksum
    (`unknown`), or with its last character changed (`bad_checksum`)."""
    out = subprocess.run([str(KEYGATE), "gen-token", "--count", str(count)], check=True,
                         capture_output=True, text=True).stdout.split()
    if kind == "bad_checksum":
        out = [t[:-1] + ("a" if t[-1] != "a" else "b") for t in out]
    return out


def metric(kg, name, labels=""):
    text = urllib.request.urlopen(kg.url + "/metrics", timeout=10).read().decode()
    m = re.search(rf"^keygate_{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else 0


FLOOD_SOURCES = {
    "same": None,  # the valid load's own address, 127.0.0.1
    "other": "198.51.100.7",
}


def flood_phases(limit):
    """(setting, flood kind, flood source) of each phase against one keygate. With the limit
    lifted, where the flood comes from changes nothing, so it comes from the same address."""
    kinds = ("bad_checksum", "unknown")
    sources = ("same", "other", "many") if limit == "default" else ("same",)
    phases = []
    for setting in ("saturated", "headroom"):
        phases.append((setting, "none", "-"))
        phases += [(setting, kind, "same") for kind in kinds]
        if setting == "headroom":
            phases += [(setting, kind, src) for src in sources[1:] for kind in kinds]
    return phases


def bench_flood(args, work):
    """Valid verifications of one token beside floods of made-up tokens, in two settings:

    saturated: the valid load runs as fast as its --connections go, so keygate's CPU is the
      bound and whatever a flood takes, it takes from the valid load;
    headroom: the valid load is paced (--paced-connections, each pausing --paced-delay-ms), as
      a deployment with spare capacity sees it: does it still get all it asks for, how fast?

    The flood is paced too (--flood-connections, each pausing --flood-delay-ms) and comes from
    the valid load's own address, from one other address, or from --flood-addresses addresses
    in turn (X-Forwarded-For; keygate runs with --trust-forwarded-for), once with keygate's
    default limit on failed authentications and once with it lifted. Counts the database
    lookups each phase caused (keygate's own counter). Unknown tokens are fresh in every phase,
    so none of them is in the negative cache yet.

    Before the floods, a second table: what one request of each kind (valid, bad checksum,
    unknown) costs keygate's CPU, each kind alone."""
    rows, costs = [], []
    bad = work / "flood-bad_checksum.txt"
    bad.write_text("\n".join(made_up_tokens(args.flood_tokens, "bad_checksum")) + "\n")
    sources = dict(FLOOD_SOURCES, many=f"many:{args.flood_addresses}")
    for limit, extra in (("default", []), ("lifted", ["--auth-max-failures-per-ip", "4000000000"])):
        admin = new_token()
        kg = Keygate(work / f"kg-flood-{limit}", admin,
                     extra_args=["--trust-forwarded-for", *extra]).start()
        token = kg.api("POST", "/api/v1/tokens",
                       {"name": "bench", "scopes": ["metrics:read"]})["token"]
        env = {"KG_TOKEN": token}
        valid_list = work / "flood-valid.txt"
        valid_list.write_text(token + "\n")
        paced_env = {"KG_TOKENS": str(valid_list), "KG_DELAY_MS": str(args.paced_delay_ms)}
        wrk(kg.url + "/api/v1/verify", "verify", env, args.connections, 1, args.threads)
        # What one request of each kind costs keygate: each alone, as fast as --connections
        # go, through the same script (so the load generator's share is the same), keygate's
        # CPU time over the requests it answered.
        cost_runs = {k: [] for k in ("valid", "bad_checksum", "unknown")}
        cost_lookups = {k: 0 for k in cost_runs}
        for rnd in range(args.rounds):
            for kind in cost_runs:
                tokens = {"valid": valid_list, "bad_checksum": bad}.get(kind)
                if kind == "unknown":
                    tokens = work / "flood-unknown.txt"
                    tokens.write_text("\n".join(made_up_tokens(args.flood_tokens, kind)) + "\n")
                before, cpu_before = metric(kg, "token_lookups_total"), cpu_seconds(kg.proc.pid)
                r = wrk(kg.url + "/api/v1/verify", "paced", {"KG_TOKENS": str(tokens),
                                                             "KG_DELAY_MS": "0"},
                        args.connections, args.duration, args.threads)
                r["cpu_us"] = (cpu_seconds(kg.proc.pid) - cpu_before) / r["requests"] * 1e6
                cost_lookups[kind] += metric(kg, "token_lookups_total") - before
                cost_runs[kind].append(r)
                log(f"flood, limit {limit:7} round {rnd + 1} cost of {kind:12} "
                    f"{r['all_rps']:>10,.0f} req/s   {r['cpu_us']:.2f} us of keygate's CPU each")
        valid_cost = statistics.median(r["cpu_us"] for r in cost_runs["valid"])
        for kind, runs_of_kind in cost_runs.items():
            cpu_us = statistics.median(r["cpu_us"] for r in runs_of_kind)
            costs.append({"limit": limit, "kind": kind, "cpu_us": cpu_us,
                          "vs_valid": cpu_us / valid_cost, "lookups": cost_lookups[kind],
                          "rps": statistics.median(r["all_rps"] for r in runs_of_kind)})
        phases = flood_phases(limit)
        runs = {p: [] for p in phases}
        floods = {p: [] for p in phases}
        lookups = {p: 0 for p in phases}
        for rnd in range(args.rounds):
            for phase in phases:
                setting, kind, source = phase
                flood = None
                if kind != "none":
                    tokens = bad
                    if kind == "unknown":
                        tokens = work / "flood-unknown.txt"
                        tokens.write_text("\n".join(made_up_tokens(args.flood_tokens, kind)) + "\n")
                    flood_env = {"KG_TOKENS": str(tokens), "KG_DELAY_MS": str(args.flood_delay_ms)}
                    if sources[source]:
                        flood_env["KG_FROM"] = sources[source]
                before = metric(kg, "token_lookups_total")
                if kind != "none":
                    flood = wrk_start(kg.url + "/api/v1/verify", "paced", flood_env,
                                      args.flood_connections, args.duration, 1)
                if setting == "saturated":
                    r = wrk(kg.url + "/api/v1/verify", "verify", env, args.connections,
                            args.duration, args.threads)
                else:
                    r = wrk(kg.url + "/api/v1/verify", "paced", paced_env,
                            args.paced_connections, args.duration, args.threads)
                if flood:
                    f = wrk_result(flood)
                    floods[phase].append(f["all_rps"])
                lookups[phase] += metric(kg, "token_lookups_total") - before
                runs[phase].append(r)
                extra_log = f"   flood {f['all_rps']:,.0f} req/s" if flood else ""
                log(f"flood, limit {limit:7} round {rnd + 1} {setting:9} {kind:12} from "
                    f"{source:5} {fmt(r)}{extra_log}")
        kg.stop()
        for phase in phases:
            setting, kind, source = phase
            m = median_of(runs[phase])
            base = median_of(runs[(setting, "none", "-")])["rps"]
            rows.append({"setting": setting, "limit": limit, "flood": kind, "source": source,
                         "valid": m, "ratio": m["rps"] / base,
                         "flood_rps": statistics.median(floods[phase]) if floods[phase] else 0,
                         "lookups": lookups[phase]})
    print(f"\n## flood: valid verifications beside floods of made-up tokens, {args.duration} s x "
          f"{args.rounds} rounds, {placement()} (medians). Saturated: {args.connections} valid "
          f"connections without pauses; headroom: {args.paced_connections} pausing "
          f"{args.paced_delay_ms} ms. Flood: {args.flood_connections} connections pausing "
          f"{args.flood_delay_ms} ms; from many = {args.flood_addresses} addresses in turn\n")
    # On a saturated CPU every flood request takes some valid one's place: how many valid
    # verifications one flood request displaced says what it cost, whatever the flood's size.
    print("| setting | limit on failures | flood | flood from | flood req/s | valid req/s "
          "| valid p99 | valid vs no flood | valid displaced per flood request "
          "| database lookups |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in sorted(rows, key=lambda r: (r["setting"] != "saturated", r["limit"])):
        flooded = r["flood"] != "none"
        flood_rps = f"{r['flood_rps']:,.0f}" if flooded else "–"
        displaced = "–"
        if flooded and r["setting"] == "saturated" and r["flood_rps"]:
            base = r["valid"]["rps"] / r["ratio"]
            displaced = f"{(base - r['valid']['rps']) / r['flood_rps']:.2f}"
        print(f"| {r['setting']} | {r['limit']} | {r['flood']} | {r['source']} | {flood_rps} | "
              f"{r['valid']['rps']:,.0f} | {r['valid']['p99_ms']:.2f} ms | {r['ratio']:.2f} | "
              f"{displaced} | {r['lookups']:,} |")
    print(f"\n## flood: what one request costs keygate, each kind alone from {args.connections} "
          f"connections, {args.duration} s x {args.rounds} rounds, {placement()} (medians)\n")
    print("| limit on failures | tokens | answered req/s | keygate CPU per request | vs valid "
          "| database lookups |")
    print("| --- | --- | --- | --- | --- | --- |")
    for c in costs:
        print(f"| {c['limit']} | {c['kind']} | {c['rps']:,.0f} | {c['cpu_us']:.2f} µs | "
              f"{c['vs_valid']:.2f} | {c['lookups']:,} |")
    return rows


# ------------------------------------------------------------------------------------------------
# usage: a token with rate limits and credits against a plain one


# Far beyond what a run can use (MAX_LIMIT and nearly MAX_CREDITS), so nothing is ever refused
# and what is measured is the cost of counting, not of refusing.
USAGE_LIMITS = [
    {"name": "per_second", "limit": 1_000_000_000, "durationMs": 1_000, "autoApply": True},
    {"name": "per_minute", "limit": 1_000_000_000, "durationMs": 60_000, "autoApply": True},
]
USAGE_CREDITS = {"remaining": 9_000_000_000_000_000}
# What each kind of token in `usage` carries besides its scope.
USAGE_KINDS = {
    "plain": {},
    "limits": {"ratelimits": USAGE_LIMITS},
    "credits": {"credits": USAGE_CREDITS},
    "usage": {"ratelimits": USAGE_LIMITS, "credits": USAGE_CREDITS},
}


def verifications(kg):
    """keygate's own count of verifications by outcome (verify and forward-auth)."""
    text = urllib.request.urlopen(kg.url + "/metrics", timeout=10).read().decode()
    return {code: int(float(n)) for code, n in
            re.findall(r'^keygate_verifications_total\{outcome="(\w+)"\} (\S+)$', text, re.M)}


def refused_since(kg, before):
    """Verifications answered with anything but valid since `before` (a `verifications`)."""
    now = verifications(kg)
    return sum(n - before.get(code, 0) for code, n in now.items() if code != "valid")


def redis_pid():
    """The pid of the machine's redis-server, if one runs (pgrep, read only), else None."""
    out = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True).stdout
    pids = out.split()
    return int(pids[0]) if len(pids) == 1 else None


class PinnedRedis:
    """Pins the running redis-server to the servers' CPUs for the run and restores its CPU mask
    after, so Redis competes with keygate and not with wrk; says so when it cannot."""

    def __init__(self, wanted=True):
        self.wanted = wanted
        self.pid, self.mask, self.note = redis_pid(), None, "not pinned"

    def __enter__(self):
        if not self.wanted:
            self.note = "not used"
            return self
        if not PIN:
            self.note = "not pinned (--no-pin)"
        elif self.pid is None:
            self.note = "not pinned (no single redis-server process found)"
        else:
            try:
                self.mask = os.sched_getaffinity(self.pid)
                os.sched_setaffinity(self.pid, {int(c) for c in PIN[0].split(",")})
                self.note = f"pinned to CPU {PIN[0]} (pid {self.pid})"
            except OSError as e:
                self.mask = None
                self.note = f"not pinned ({e})"
        log(f"redis-server {self.note}")
        return self

    def __exit__(self, *exc):
        if self.mask is not None:
            os.sched_setaffinity(self.pid, self.mask)
            log(f"redis-server's CPU mask restored to {sorted(self.mask)}")


def bench_usage(args, work):
    """`POST /api/v1/verify` and `GET /api/v1/auth` of a token with two auto-applied rate
    limits and credits ("usage") against a plain token, on the same keygate, rounds alternating
    between the tokens; once counting rate limits in process and once in the machine's Redis
    (--redis-url). --usage-kinds adds tokens with the limits alone ("limits") or the credits
    alone ("credits"), to tell their costs apart. Every answer must be VALID: keygate's own
    count of refusals is checked."""
    rows = []
    modes = [("in process", [])]
    if not args.no_redis:
        modes.append(("redis", ["--redis-url", args.redis_url]))
    routes = {"verify": ("/api/v1/verify", "verify", lambda t: {"KG_TOKEN": t}),
              "auth": ("/api/v1/auth", "auth", lambda t: {"KG_AUTH": f"Bearer {t}"})}
    with PinnedRedis(wanted=not args.no_redis) as redis:
        for mode, extra in modes:
            admin = new_token()
            kg = Keygate(work / f"kg-usage-{mode.replace(' ', '-')}", admin,
                         extra_args=extra).start()
            tokens = {kind: kg.api("POST", "/api/v1/tokens",
                                   {"name": f"bench {kind}", "scopes": ["metrics:read"],
                                    **USAGE_KINDS[kind]})["token"]
                      for kind in args.usage_kinds}
            runs = {(route, kind): [] for route in routes for kind in tokens}
            for route, (path, scenario, env_of) in routes.items():
                for token in tokens.values():  # warm the cache, the limiter and the leases
                    wrk(kg.url + path, scenario, env_of(token), args.connections, 1, args.threads)
            for rnd in range(args.rounds):
                for route, (path, scenario, env_of) in routes.items():
                    order = list(tokens) if rnd % 2 == 0 else list(reversed(tokens))
                    for kind in order:
                        before, cpu = verifications(kg), cpu_seconds(kg.proc.pid)
                        rcpu = cpu_seconds(redis.pid) if mode == "redis" and redis.pid else None
                        r = wrk(kg.url + path, scenario, env_of(tokens[kind]), args.connections,
                                args.duration, args.threads)
                        r["cpu_us"] = (cpu_seconds(kg.proc.pid) - cpu) / r["requests"] * 1e6
                        if rcpu is not None:
                            r["redis_cpu_us"] = ((cpu_seconds(redis.pid) - rcpu)
                                                 / r["requests"] * 1e6)
                        r["failed"] += refused_since(kg, before)
                        runs[(route, kind)].append(r)
                        log(f"usage, {mode:10} round {rnd + 1} {route:6} {kind:7} {fmt(r)}   "
                            f"keygate {r['cpu_us']:.2f} us CPU each")
            kg.stop()
            for route in routes:
                plain = median_of(runs[(route, "plain")])["rps"]
                for kind in tokens:
                    m = median_of(runs[(route, kind)])
                    m["cpu_us"] = statistics.median(r["cpu_us"] for r in runs[(route, kind)])
                    m["redis_cpu_us"] = (statistics.median(r["redis_cpu_us"]
                                                           for r in runs[(route, kind)])
                                         if mode == "redis" and redis.pid else None)
                    m["rounds"] = [r["rps"] for r in runs[(route, kind)]]
                    rows.append({"mode": mode, "route": routes[route][0], "kind": kind,
                                 "r": m, "ratio": m["rps"] / plain})
    print(f"\n## usage: tokens with two auto-applied rate limits and/or credits vs a plain token, "
          f"{args.connections} connections, {args.duration} s x {args.rounds} rounds alternating "
          f"between the tokens, {placement()}, Redis {redis.note} (medians)\n")
    print("| rate limits counted | route | token | requests/s | p50 | p99 | keygate CPU per request "
          "| Redis CPU per request | this / plain | rounds (k req/s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        r = row["r"]
        redis_cpu = f"{r['redis_cpu_us']:.2f} µs" if r["redis_cpu_us"] is not None else "–"
        ratio = f"{row['ratio']:.2f}" if row["kind"] != "plain" else ""
        warn = f" ({r['failed']} failed or refused!)" if r["failed"] else ""
        print(f"| {row['mode']} | `{row['route']}` | {row['kind']} | {r['rps']:,.0f}{warn} "
              f"| {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['cpu_us']:.2f} µs | {redis_cpu} "
              f"| {ratio} | {', '.join(f'{x / 1000:.1f}' for x in r['rounds'])} |")
    return rows


# ------------------------------------------------------------------------------------------------
# analytics: verifications counted per token against not counted


def bench_analytics(args, work):
    """`POST /api/v1/verify` and `GET /api/v1/auth` of one token on two keygates side by side,
    one counting every verification for the usage API (the default) and one started with
    --no-usage-counts, rounds alternating between them. The counting one flushes every second
    here, ten times as often as by default, so its writes are in the figure too."""
    servers = {}
    for name, extra in (("counted", ["--usage-flush-interval", "1s"]),
                        ("not counted", ["--no-usage-counts"])):
        admin = new_token()
        kg = Keygate(work / f"kg-analytics-{name.replace(' ', '-')}", admin,
                     extra_args=extra).start()
        token = kg.api("POST", "/api/v1/tokens",
                       {"name": "bench", "scopes": ["metrics:read"]})["token"]
        servers[name] = (kg, token)
    routes = {"verify": ("/api/v1/verify", "verify", lambda t: {"KG_TOKEN": t}),
              "auth": ("/api/v1/auth", "auth", lambda t: {"KG_AUTH": f"Bearer {t}"})}
    runs = {(route, name): [] for route in routes for name in servers}
    try:
        for route, (path, scenario, env_of) in routes.items():
            for kg, token in servers.values():  # warm the caches
                wrk(kg.url + path, scenario, env_of(token), args.connections, 1, args.threads)
        for rnd in range(args.rounds):
            for route, (path, scenario, env_of) in routes.items():
                order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
                for name in order:
                    kg, token = servers[name]
                    before, cpu = verifications(kg), cpu_seconds(kg.proc.pid)
                    r = wrk(kg.url + path, scenario, env_of(token), args.connections,
                            args.duration, args.threads)
                    r["cpu_us"] = (cpu_seconds(kg.proc.pid) - cpu) / r["requests"] * 1e6
                    r["failed"] += refused_since(kg, before)
                    runs[(route, name)].append(r)
                    log(f"analytics, round {rnd + 1} {route:6} {name:11} {fmt(r)}   "
                        f"keygate {r['cpu_us']:.2f} us CPU each")
        # What the counting server wrote: its token's valid verifications, as the API says.
        kg, token = servers["counted"]
        time.sleep(2)
        listed = kg.api("GET", "/api/v1/tokens?limit=10")["items"]
        bench_id = next(t["id"] for t in listed if t["name"] == "bench")
        counted = kg.api("GET", f"/api/v1/tokens/{bench_id}/usage?granularity=day")["totals"]
    finally:
        for kg, _ in servers.values():
            kg.stop()
    print(f"\n## analytics: one token's verifications counted per token vs not counted, "
          f"{args.connections} connections, {args.duration} s x {args.rounds} rounds alternating "
          f"between the servers, {placement()} (medians)\n")
    print("| route | usage counts | requests/s | p50 | p99 | keygate CPU per request "
          "| counted / not counted | rounds (k req/s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for route in routes:
        off = median_of(runs[(route, "not counted")])["rps"]
        for name in servers:
            m = median_of(runs[(route, name)])
            m["cpu_us"] = statistics.median(r["cpu_us"] for r in runs[(route, name)])
            m["rounds"] = [r["rps"] for r in runs[(route, name)]]
            ratio = f"{m['rps'] / off:.3f}" if name == "counted" else ""
            warn = f" ({m['failed']} failed or refused!)" if m["failed"] else ""
            print(f"| `{routes[route][0]}` | {name} | {m['rps']:,.0f}{warn} | {m['p50_ms']:.2f} ms "
                  f"| {m['p99_ms']:.2f} ms | {m['cpu_us']:.2f} µs | {ratio} "
                  f"| {', '.join(f'{x / 1000:.1f}' for x in m['rounds'])} |")
            rows.append({"route": route, "name": name, "r": m})
    print(f"\nThe counting server's usage API counted {counted['valid']:,} valid verifications of "
          f"the token (wrk's warm-up runs and every round included).")
    return rows


# ------------------------------------------------------------------------------------------------
# allowlist: a token bound to 100 networks against a plain one


def bench_allowlist(args, work):
    """`POST /api/v1/verify` (with the client's `ip` in the body) and `GET /api/v1/auth` (the
    connection's address, 127.0.0.1) of a plain token and of one bound to 100 networks, the
    client's the last of them, so every check reads the whole list. One keygate; rounds
    alternate between the tokens."""
    admin = new_token()
    kg = Keygate(work / "kg-allowlist", admin).start()
    networks = [f"10.{i}.0.0/16" for i in range(99)] + ["127.0.0.0/8"]
    tokens = {}
    for name, cidrs in (("plain", []), ("100 networks", networks)):
        tokens[name] = kg.api("POST", "/api/v1/tokens",
                              {"name": name, "scopes": ["metrics:read"],
                               "allowedCidrs": cidrs})["token"]
    routes = {"verify": ("/api/v1/verify", "verify_ip",
                         lambda t: {"KG_TOKEN": t, "KG_IP": "127.0.0.1"}),
              "auth": ("/api/v1/auth", "auth", lambda t: {"KG_AUTH": f"Bearer {t}"})}
    runs = {(route, name): [] for route in routes for name in tokens}
    try:
        for route, (path, scenario, env_of) in routes.items():
            for token in tokens.values():  # warm the cache
                wrk(kg.url + path, scenario, env_of(token), args.connections, 1, args.threads)
        for rnd in range(args.rounds):
            for route, (path, scenario, env_of) in routes.items():
                order = list(tokens) if rnd % 2 == 0 else list(reversed(tokens))
                for name in order:
                    before = verifications(kg)
                    r = wrk(kg.url + path, scenario, env_of(tokens[name]), args.connections,
                            args.duration, args.threads)
                    r["failed"] += refused_since(kg, before)
                    runs[(route, name)].append(r)
                    log(f"allowlist, round {rnd + 1} {route:6} {name:12} {fmt(r)}")
    finally:
        kg.stop()
    print(f"\n## allowlist: a token bound to 100 networks (the client's the last) vs a plain one, "
          f"{args.connections} connections, {args.duration} s x {args.rounds} rounds alternating "
          f"between the tokens, {placement()} (medians)\n")
    print("| route | token | requests/s | p50 | p99 | bound / plain | rounds (k req/s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for route in routes:
        plain = median_of(runs[(route, "plain")])["rps"]
        for name in tokens:
            m = median_of(runs[(route, name)])
            m["rounds"] = [r["rps"] for r in runs[(route, name)]]
            ratio = f"{m['rps'] / plain:.3f}" if name != "plain" else ""
            warn = f" ({m['failed']} failed or refused!)" if m["failed"] else ""
            print(f"| `{routes[route][0]}` | {name} | {m['rps']:,.0f}{warn} | {m['p50_ms']:.2f} ms "
                  f"| {m['p99_ms']:.2f} ms | {ratio} "
                  f"| {', '.join(f'{x / 1000:.1f}' for x in m['rounds'])} |")
            rows.append({"route": route, "name": name, "r": m})
    return rows


# ------------------------------------------------------------------------------------------------
# credits: two nodes charging one token's credits in one PostgreSQL database


def table_writes(url):
    """Rows inserted, updated and deleted so far in `tokens` and in every user table, from
    PostgreSQL's own statistics (a fresh snapshot)."""
    out = subprocess.run(
        ["psql", url, "-AtF,", "-c",
         "SELECT pg_stat_clear_snapshot(); "
         "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del) "
         "FILTER (WHERE relname = 'tokens'), 0), coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
         "FROM pg_stat_user_tables"],
        check=True, capture_output=True, text=True).stdout.split()[-1]
    tokens, total = out.split(",")
    return int(tokens), int(total)


# A backend hands its table statistics to the collector at most once a second, and an idle one
# after up to 10 s (PostgreSQL 15), so writes show this long after they are made.
PG_STATS_DELAY_S = 11


def bench_credits(args, work):
    """Two keygate nodes on one fresh PostgreSQL database, wrk on both at once (half the
    connections each). A token without credits (the baseline), one with credits enough for any
    run: verifies/s and database writes per 1 000 verifies; then one with --few-credits, which
    run out during the run: exactly that many answers may be VALID (counted by wrk,
    bench/wrk/valid.lua). A fresh token of each kind per round, the kinds alternating."""
    url, drop = postgres_database()
    nodes = []
    rows = []
    try:
        admin = new_token()
        nodes = [Keygate(work / f"kg-credits-{i}", admin, database_url=url).start()
                 for i in range(2)]
        half = max(1, args.connections // 2)

        def run(token, count_valid):
            for kg in nodes:  # cached on both nodes, nothing charged
                http("POST", kg.url + "/api/v1/verify", body={"token": token,
                                                               "credits": {"cost": 0}})
            time.sleep(PG_STATS_DELAY_S)
            before_codes = [verifications(kg) for kg in nodes]
            before = table_writes(url)
            started = [wrk_start(kg.url + "/api/v1/verify", "verify", {"KG_TOKEN": token}, half,
                                 args.duration, args.threads, count_valid) for kg in nodes]
            results = [wrk_result(s) for s in started]
            # Counted after the leases left unspent went back (idle for a second) and the
            # statistics arrived: the writes of the run, its end included.
            time.sleep(PG_STATS_DELAY_S)
            after = table_writes(url)
            codes = {}
            for kg, b in zip(nodes, before_codes):
                for code, n in verifications(kg).items():
                    codes[code] = codes.get(code, 0) + n - b.get(code, 0)
            return {"rps": sum(r["rps"] for r in results),
                    "failed": sum(r["failed"] for r in results),
                    "p99_ms": max(r["p99_ms"] for r in results),
                    "requests": sum(r["requests"] for r in results),
                    "wrk_valid": (sum(r["valid"] for r in results) if count_valid else None),
                    "per_node": [r["valid"] if count_valid else r["requests"] for r in results],
                    "codes": codes, "tokens_writes": after[0] - before[0],
                    "all_writes": after[1] - before[1]}

        for rnd in range(args.rounds):
            for kind in ("unlimited", "plenty", "few"):
                credits = {"unlimited": None, "plenty": 9_000_000_000_000_000,
                           "few": args.few_credits}[kind]
                created = nodes[0].api("POST", "/api/v1/tokens",
                                       {"name": f"bench credits {kind}", "scopes": ["metrics:read"],
                                        "credits": credits and {"remaining": credits}})
                r = run(created["token"], count_valid=(kind == "few"))
                r["kind"], r["credits"] = kind, credits
                stored = nodes[0].api("GET", f"/api/v1/tokens/{created['id']}")["credits"]
                left = stored["remaining"] if stored else None
                r["left"] = left
                valid = r["codes"].get("valid", 0)
                r["writes_per_1000"] = r["tokens_writes"] / max(valid, 1) * 1000
                rows.append(r)
                if kind == "unlimited":
                    r["exact"] = left is None
                elif kind == "few":
                    r["exact"] = r["wrk_valid"] == valid == credits and left == 0
                else:
                    r["exact"] = credits - left == valid
                spent = f"{credits - left:,}" if credits else "none"
                exact = (f"   VALID {r['wrk_valid'] if kind == 'few' else '-'} by wrk, {valid:,} by "
                         f"keygate, {spent} credits spent: "
                         f"{'exact' if r['exact'] else 'NOT EXACT!'}")
                log(f"credits, round {rnd + 1} {kind:6} {r['rps']:>10,.0f} verifies/s (both nodes) "
                    f"{valid:,} VALID {r['codes']}  writes: tokens {r['tokens_writes']:,}, all "
                    f"tables {r['all_writes']:,}{exact}")
    finally:
        for kg in nodes:
            kg.stop()
        drop()
    print(f"\n## credits: two nodes on one PostgreSQL database, wrk on both at once "
          f"({args.connections // 2} connections each), {args.duration} s x {args.rounds} rounds, "
          f"{placement()}. Writes: rows inserted + updated + deleted by PostgreSQL's statistics, "
          f"from the start of the load until {PG_STATS_DELAY_S} s after it\n")
    print("| token's credits | answers/s (both nodes) | VALID | VALID by wrk | other answers "
          "| credits spent | exact | writes to `tokens` | writes, all tables "
          "| `tokens` writes per 1 000 VALID | worst p99 of the two |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        valid = r["codes"].get("VALID", 0)
        other = {c: n for c, n in r["codes"].items() if c != "VALID" and n}
        wrk_valid = f"{r['wrk_valid']:,}" if r["wrk_valid"] is not None else "–"
        warn = f" ({r['failed']} failed!)" if r["failed"] else ""
        credits = f"{r['credits']:,}" if r["credits"] else "unlimited"
        spent = f"{r['credits'] - r['left']:,}" if r["credits"] else "–"
        print(f"| {credits} | {r['rps']:,.0f}{warn} | {valid:,} | {wrk_valid} "
              f"| {', '.join(f'{c} {n:,}' for c, n in other.items()) or '0'} "
              f"| {spent} | {'yes' if r['exact'] else '**no**'} "
              f"| {r['tokens_writes']:,} | {r['all_writes']:,} | {r['writes_per_1000']:.1f} "
              f"| {r['p99_ms']:.2f} ms |")
    return rows


# ------------------------------------------------------------------------------------------------
# replica: keygate-client's replica in front of a real keygate


def replica_run(follow, change, admin, rounds):
    """The replica_bench example on the load CPUs: a replica of `follow`'s tenant, its snapshot
    and memory, then `rounds` creates and revokes made on `change`. Its RESULT line as a dict."""
    replication = follow.api("POST", "/api/v1/tokens",
                             {"name": "bench replica", "scopes": ["tokens:replicate"]})["token"]
    env = dict(os.environ, KEYGATE_ADMIN_TOKEN=admin, KEYGATE_REPLICATION_TOKEN=replication)
    done = subprocess.run(on_load_cpus([str(REPLICA_BENCH), follow.url, change.url, str(rounds)]),
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        # A change the replica never showed is the failure worth seeing: it is on stderr.
        raise RuntimeError(f"replica_bench failed ({done.returncode}): {done.stderr}")
    line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def bench_replica(args, work):
    """A replica (the replica_bench example) connects to a keygate on SQLite seeded with
    --replica-tokens tokens (as `scale` seeds): the snapshot's time and the replica's growth of
    resident memory. Then --propagation-rounds rounds of a token created, accepted by the
    replica, revoked and refused, the times taken from keygate's answer (201, 204) to the
    replica's first answer that reflects it. Then the same rounds with two nodes on one fresh
    PostgreSQL database: the replica follows node A, the changes are made on node B."""
    rows = []
    data = work / "kg-replica-sqlite"
    admin = new_token()
    # First start: schema and tenant `default`; then the rows go straight into the file.
    Keygate(data, admin).start().stop()
    started = time.monotonic()
    seed(data / "keygate.db", args.replica_tokens, work / "replica-sample.txt", 1)
    log(f"replica: seeded {args.replica_tokens:,} tokens in {time.monotonic() - started:.1f} s")
    kg = Keygate(data, admin).start()
    try:
        r = replica_run(kg, kg, admin, args.propagation_rounds)
        r["keygate_rss"] = rss_kib(kg.proc.pid) * 1024
    finally:
        kg.stop()
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    r["setup"] = "SQLite, one node"
    rows.append(r)
    log(f"replica: {replica_line(r)}")
    if not args.sqlite_only:
        url, drop = postgres_database()
        nodes = []
        try:
            admin = new_token()
            nodes = [Keygate(work / f"kg-replica-pg-{i}", admin, database_url=url).start()
                     for i in range(2)]
            r = replica_run(nodes[0], nodes[1], admin, args.propagation_rounds)
            r["keygate_rss"] = rss_kib(nodes[0].proc.pid) * 1024
        finally:
            for kg in nodes:
                kg.stop()
            drop()
        r["setup"] = "PostgreSQL, two nodes (follows A, changes on B)"
        rows.append(r)
        log(f"replica: {replica_line(r)}")
    print(f"\n## replica: keygate-client's replica in process, {args.propagation_rounds} creates "
          f"and revokes; times from keygate's 201 / 204 to the replica's first answer that "
          f"reflects it; {placement().replace('wrk', 'the replica')}\n")
    print("| keygate | tokens held | snapshot | replica RSS growth | per held token "
          "| create → accepted p50 / p99 / max | revoke → refused p50 / p99 / max |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['setup']} | {r['tokens']:,} | {r['snapshot_s']:.2f} s "
              f"| {(r['rss_after'] - r['rss_before']) / 2**20:,.1f} MiB "
              f"| {replica_memory(r)} | {spread(r['created'])} | {spread(r['refused'])} |")
    return rows


def spread(s):
    return f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} / {s['max_ms']:.1f} ms"


def replica_memory(r):
    """Like `memory_per_token`: a few thousand tokens grow memory by less than its noise."""
    if r["tokens"] < 10_000:
        return "(too few to measure)"
    return f"{r['bytes_per_token']:.0f} B"


def replica_line(r):
    return (f"{r['setup']}: {r['tokens']:,} tokens held, snapshot {r['snapshot_s']:.2f} s, "
            f"RSS {r['rss_before'] / 2**20:.1f} → {r['rss_after'] / 2**20:.1f} MiB "
            f"({r['bytes_per_token']:.0f} B/token); created → accepted {spread(r['created'])}; "
            f"revoked → refused {spread(r['refused'])}; keygate RSS "
            f"{r['keygate_rss'] / 2**20:.0f} MiB")



# ------------------------------------------------------------------------------------------------
# webhooks: delivery rate and latency, and what subscribed endpoints cost writes and verifies


class Receiver:
    """A webhook receiver on 127.0.0.1 (threads, HTTP/1.1 keep-alive) that answers 204 at once
    and notes when each event arrived: by message id, and by token id for token.created. While
    `refuse` is set it answers 503 and notes nothing, so a backlog builds up."""

    def __init__(self):
        import http.server
        import threading
        outer = self
        self.lock = threading.Lock()
        self.arrived = {}        # webhook-id -> first arrival (monotonic s)
        self.created_at = {}     # token id -> arrival of its token.created
        self.total = 0
        self.refuse = False
        self.last = None

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.refuse:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                now = time.monotonic()
                msg = self.headers.get("webhook-id")
                event = json.loads(body)
                with outer.lock:
                    outer.total += 1
                    outer.arrived.setdefault(msg, now)
                    outer.last = now
                    if event.get("type") == "token.created":
                        outer.created_at.setdefault(event["data"]["token"]["id"], now)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def count(self):
        with self.lock:
            return len(self.arrived)

    def stop(self):
        self.server.shutdown()


def subscribe(kg, receiver, endpoints):
    for i in range(endpoints):
        kg.api("POST", "/api/v1/webhooks", {"url": f"{receiver.url}/{i}", "events": ["*"],
                                            "description": f"bench {i}"})


def bench_webhooks(args, work):
    """1. rate: a backlog of creates made with endpoints subscribed, then how many events a
    second keygate delivers to a local receiver; 2. latency: paced creates, from each create's
    2xx to the arrival of its token.created; 3. cost: creates and verifies of a keygate with
    3 endpoints subscribed to every event against one with none, rounds alternating."""
    receiver = Receiver()
    results = {}
    admin = new_token()
    # A short first retry: the backlog starts draining soon after the receiver takes events.
    # One owner creates every token of the run: its bound on tokens is lifted.
    lifted = ["--max-tokens-per-owner", "4000000000"]
    kg = Keygate(work / "kg-webhooks-rate", admin,
                 extra_args=[*lifted, "--webhook-retry-initial", "100ms"]).start()
    try:
        subscribe(kg, receiver, 1)
        # Rate: a backlog of events built while the receiver refuses, then drained.
        receiver.refuse = True
        env = {"KG_AUTH": f"Bearer {admin}"}
        r = wrk(kg.url + "/api/v1/tokens", "create", env, 8, args.duration, args.threads)
        made = int(r["requests"] - r["failed"])
        receiver.refuse = False
        deadline = time.monotonic() + 300
        while receiver.count() < made and time.monotonic() < deadline:
            time.sleep(0.05)
        with receiver.lock:
            times = sorted(receiver.arrived.values())
        drained = len(times)
        spent = (times[-1] - times[0]) if drained > 1 else 0
        results["rate"] = {"created": made, "delivered": drained, "seconds": spent,
                           "per_s": (drained - 1) / spent if spent else 0,
                           "create_rps": r["rps"]}
        log(f"webhooks rate: {made} creates ({r['rps']:,.0f}/s) while the receiver refused; "
            f"{drained} delivered in {spent:.2f} s once it took them")
        # Latency: one create every 20 ms, none queued behind another.
        lat = []
        for i in range(args.webhook_latency_events):
            created = kg.api("POST", "/api/v1/tokens", {"name": f"lat-{i}",
                                                        "scopes": ["metrics:read"]})
            t0 = time.monotonic()
            tid = created["id"]
            limit = t0 + 30
            while time.monotonic() < limit:
                with receiver.lock:
                    at = receiver.created_at.get(tid)
                if at is not None:
                    break
                time.sleep(0.0002)
            lat.append(((at if at is not None else limit) - t0) * 1000)
            time.sleep(0.02)
        lat.sort()
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
        results["latency"] = {"n": len(lat), "p50_ms": q(0.50), "p99_ms": q(0.99),
                              "max_ms": lat[-1]}
        log(f"webhooks latency: {len(lat)} events, p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms")
    finally:
        kg.stop()
    # Cost: two keygates side by side, one with 3 endpoints subscribed to everything.
    kgs = {}
    try:
        for name, endpoints in (("none", 0), ("3 endpoints", 3)):
            a = new_token()
            k = Keygate(work / f"kg-webhooks-{endpoints}", a, extra_args=lifted).start()
            subscribe(k, receiver, endpoints)
            tok = k.api("POST", "/api/v1/tokens", {"name": "v", "scopes": ["metrics:read"]})
            kgs[name] = (k, a, tok["token"])
        runs = {(op, name): [] for op in ("create", "verify") for name in kgs}
        for rnd in range(args.rounds):
            names = list(kgs) if rnd % 2 == 0 else list(reversed(kgs))
            for name in names:
                k, a, tok = kgs[name]
                r = wrk(k.url + "/api/v1/tokens", "create", {"KG_AUTH": f"Bearer {a}"}, 8,
                        args.duration, args.threads)
                runs[("create", name)].append(r)
                log(f"webhooks round {rnd + 1} create {name:12} {fmt(r)}")
                r = wrk(k.url + "/api/v1/verify", "verify", {"KG_TOKEN": tok},
                        args.connections, args.duration, args.threads)
                runs[("verify", name)].append(r)
                log(f"webhooks round {rnd + 1} verify {name:12} {fmt(r)}")
    finally:
        for k, _, _ in kgs.values():
            k.stop()
        receiver.stop()
    rate, lat = results["rate"], results["latency"]
    print(f"\n## webhooks: {placement()}\n")
    # wrk counts only the creates answered within its time; one still in flight at the end is
    # made too, so more events than counted creates may arrive.
    print(f"- delivered to one local receiver: {rate['per_s']:,.0f} events/s, one endpoint, one "
          f"in flight ({rate['delivered']} of a backlog of {rate['created']} token.created, "
          f"first to last arrival {rate['seconds']:.2f} s)")
    print(f"- latency from a create's 2xx to its token.created at the receiver ({lat['n']} "
          f"creates 20 ms apart): p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, "
          f"max {lat['max_ms']:.2f} ms\n")
    print(f"| operation | endpoints | per second | p50 | p99 | with / without | rounds (req/s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for op in ("create", "verify"):
        base = median_of(runs[(op, "none")])["rps"]
        for name in kgs:
            m = median_of(runs[(op, name)])
            ratio = f"{m['rps'] / base:.3f}" if name != "none" else ""
            warn = f" ({m['failed']} failed!)" if m["failed"] else ""
            rounds = ", ".join(f"{r['rps']:,.0f}" for r in runs[(op, name)])
            print(f"| {op} | {name} | {m['rps']:,.0f}{warn} | {m['p50_ms']:.2f} ms "
                  f"| {m['p99_ms']:.2f} ms | {ratio} | {rounds} |")
    results["runs"] = {f"{op}/{name}": median_of(rs) for (op, name), rs in runs.items()}
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=["verify", "scale", "writes", "flood", "usage", "credits",
                                    "analytics", "allowlist", "gateways", "replica", "webhooks",
                                    "all"])
    p.add_argument("--duration", type=int, default=10, help="seconds per load run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="wrk threads (they share the cores)")
    p.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    p.add_argument("--no-pin", action="store_true",
                   help="let servers and wrk share every CPU (default: wrk on the last CPU alone)")
    p.add_argument("--target-dir", help="cargo's target directory (default: $CARGO_TARGET_DIR, "
                   "else target/ in the workspace)")
    p.add_argument("--keygate", help="the keygate binary (default: the release build)")
    p.add_argument("--seeder", help="the seed example's binary (default: the release build)")
    p.add_argument("--grpc-load", help="the grpc_load example's binary (default: the release build)")
    p.add_argument("--replica-bench",
                   help="the replica_bench example's binary (default: the release build)")
    p.add_argument("--replica-tokens", type=int, default=1_000_000,
                   help="replica: tokens in the SQLite database the replica takes a snapshot of")
    p.add_argument("--propagation-rounds", type=int, default=100,
                   help="replica: tokens created and revoked, on each setup")
    p.add_argument("--no-nginx", action="store_true")
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--no-floor", action="store_true", help="leave out the bare axum server")
    p.add_argument("--peer-workers", type=int)
    p.add_argument("--grpc-channels", type=int, default=2,
                   help="gateways: HTTP/2 connections of the gRPC load (Envoy: about one per worker)")
    p.add_argument("--counts", default="1000,100000,1000000,10000000")
    p.add_argument("--sample", type=int, default=200000, help="tokens the load generator uses")
    p.add_argument("--cold-duration", type=int, default=3)
    p.add_argument("--cache-capacity", type=int)
    p.add_argument("--keep", action="store_true", help="keep the seeded databases")
    p.add_argument("--write-clients", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 8, 64])
    p.add_argument("--sqlite-only", action="store_true")
    p.add_argument("--flood-connections", type=int, default=50)
    p.add_argument("--flood-delay-ms", type=int, default=5,
                   help="each flooding connection's pause between requests")
    p.add_argument("--flood-addresses", type=int, default=1000,
                   help="client addresses of the distributed flood")
    p.add_argument("--paced-connections", type=int, default=100,
                   help="connections of the paced valid load (flood, headroom)")
    p.add_argument("--paced-delay-ms", type=int, default=5,
                   help="each paced valid connection's pause between requests")
    p.add_argument("--flood-tokens", type=int, default=100000,
                   help="distinct made-up tokens of each kind")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379",
                   help="the Redis of `usage`'s second keygate")
    p.add_argument("--no-redis", action="store_true", help="usage: only rate limits in process")
    p.add_argument("--usage-kinds", type=lambda s: s.split(","), default=["plain", "usage"],
                   help="usage: which tokens, of plain, limits, credits, usage (both); plain first")
    p.add_argument("--few-credits", type=int, default=20000,
                   help="credits: the token that runs out during the run has this many")
    p.add_argument("--webhook-latency-events", type=int, default=200,
                   help="webhooks: creates whose token.created is timed, one at a time")
    p.add_argument("--workdir", help="where databases and configs go (default: a temp dir)")
    args = p.parse_args()

    # The replica mode loads keygate with its own example, not wrk.
    for tool in ([] if args.what == "replica" else ["wrk"]) + ([] if args.no_nginx or args.what not in ("verify", "gateways", "all") else []):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (Debian: apt-get install {tool})")
    global KEYGATE, FLOOR, SEEDER, GRPC_LOAD, REPLICA_BENCH, PIN
    target = Path(args.target_dir).resolve() if args.target_dir else TARGET
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(cpus) >= 2 and shutil.which("taskset"):
        PIN = (",".join(map(str, cpus[:-1])), str(cpus[-1]))
    KEYGATE = Path(args.keygate) if args.keygate else target / "release" / "keygate"
    FLOOR = target / "release" / "examples" / "http_floor"
    SEEDER = Path(args.seeder) if args.seeder else target / "release" / "examples" / "seed"
    GRPC_LOAD = Path(args.grpc_load) if args.grpc_load else target / "release" / "examples" / "grpc_load"
    REPLICA_BENCH = (Path(args.replica_bench) if args.replica_bench
                     else target / "release" / "examples" / "replica_bench")
    if not args.no_build:
        for package in (["-p", "keygate"], ["-p", "keygate-server", "--example", "http_floor"],
                        ["-p", "keygate-server", "--example", "grpc_load"],
                        ["-p", "keygate-store", "--example", "seed"],
                        ["-p", "keygate-client", "--example", "replica_bench"]):
            subprocess.run(["cargo", "build", "--quiet", "--release", *package], cwd=ROOT,
                           check=True, env=dict(os.environ, CARGO_TARGET_DIR=str(target)))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="keygate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.what in ("verify", "all"):
            bench_verify(args, work)
        if args.what in ("scale", "all"):
            bench_scale(args, work)
        if args.what in ("writes", "all"):
            bench_writes(args, work)
        if args.what in ("flood", "all"):
            bench_flood(args, work)
        if args.what == "usage":
            bench_usage(args, work)
        if args.what == "credits":
            bench_credits(args, work)
        if args.what == "analytics":
            bench_analytics(args, work)
        if args.what == "allowlist":
            bench_allowlist(args, work)
        if args.what == "gateways":
            bench_gateways(args, work)
        if args.what == "replica":
            bench_replica(args, work)
        if args.what == "webhooks":
            bench_webhooks(args, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

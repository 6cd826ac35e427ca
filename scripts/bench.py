"""`make bench`: prints figures, asserts nothing.

- training time of the Mentorwijzer model (fresh, into a temporary folder);
- REST latency p50/p95/p99 over N messages for knowledge questions and for scan answers (one client),
  and throughput with 20 concurrent clients;
- time from receipt to answer committed (from the action server's own log line);
- RSS of the Rasa server and the action server;
- scale-out: the production stack of scripts/prod.sh (PostgreSQL, Redis, nginx) on a temporary
  PROD_DIR and free ports, Q&A throughput with two Rasa servers and with one, and their ratio;
- the same figures for a baseline: the stock `rasa init` bot, so ratios are visible on noisy machines;
- cold start: the first knowledge question after a fresh start of both servers, of only the action
  server, and of only the Rasa server (issue 17: target <= 1 s).
Run `make bench BENCH_ARGS="--messages 400"` for more samples, `BENCH_ARGS="--only scaleout"` for one part.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.servers import Servers, free_port, wait_http  # noqa: E402

QUESTIONS = [
    "wat doet een schoolopleider", "hoeveel uur krijg ik als mentor", "wat is een lbf",
    "wie moet ik mailen als mijn student stagneert", "wat mag ik verwachten van een eerstejaars",
    "hoi", "wat is de wpa", "wie is de slb er", "bij wie meld ik een incident", "wat houdt de basistraining in",
]
TABLE_HEAD = "| turns | n | p50 ms | p95 ms | p99 ms | msg/s |\n|---|---|---|---|---|---|"
CLIENTS = 20
SCALE_OUT_TARGET = 1.7


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(c) for c in children]
    except FileNotFoundError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def fresh_env() -> tuple[dict, Path]:
    """Environment for a training run that cannot reuse Rasa's cache of trained components
    (`.rasa/cache`), so training time is the time of a first training on a clean clone."""
    cache = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "RASA_CACHE_DIRECTORY": str(cache)}, cache


def train_time(project: Path, extra: list[str] | None = None) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-train-"))
    env, cache = fresh_env()
    started = time.perf_counter()
    try:
        subprocess.run([str(ROOT / ".venv/bin/rasa"), "train", "--quiet", "--out", str(out), *(extra or [])],
                       cwd=project, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


async def one_client(client: httpx.AsyncClient, url: str, sender: str, messages: list[str]) -> list[float]:
    latencies = []
    for message in messages:
        started = time.perf_counter()
        response = await client.post(url, json={"sender": sender, "message": message}, timeout=60)
        response.raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def run_load(url: str, clients: int, per_client: list[list[str]], prefix: str) -> tuple[list[float], float]:
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        results = await asyncio.gather(*[
            one_client(client, url, f"{prefix}-{i}-{time.time_ns()}", per_client[i]) for i in range(clients)
        ])
        elapsed = time.perf_counter() - started
    latencies = [value for result in results for value in result]
    return latencies, len(latencies) / elapsed


def load(url: str, clients: int, per_client: list[list[str]], prefix: str) -> tuple[list[float], float]:
    return asyncio.run(run_load(url, clients, per_client, prefix))


def qa_sequence(n: int) -> list[str]:
    """N knowledge questions for one client, cycling through QUESTIONS."""
    return [QUESTIONS[i % len(QUESTIONS)] for i in range(n)]


def qa_concurrent(clients: int = CLIENTS) -> list[list[str]]:
    """Twenty knowledge questions per client: the load of every `20 clients` Q&A row."""
    return [QUESTIONS * 2 for _ in range(clients)]


def scan_messages(n: int) -> list[str]:
    answers = ["ik wil de mentorscan invullen"]
    answers += [str(1 + i % 5) for i in range(min(n, 25))]
    return answers


def row(name: str, latencies: list[float], throughput: float) -> str:
    return (f"| {name} | {len(latencies)} | {statistics.median(latencies):.0f} | {percentile(latencies, 95):.0f} "
            f"| {percentile(latencies, 99):.0f} | {throughput:.1f} |")


def single(messages: int) -> None:
    """One action server + one Rasa server on SQLite, no load balancer: `tests/integration` servers."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    servers = Servers(workdir).start()
    try:
        url = f"{servers.rasa_url}/webhooks/rest/webhook"
        load(url, 1, [QUESTIONS], "warm")
        print(TABLE_HEAD)
        lat, tput = load(url, 1, [qa_sequence(messages)], "qa1")
        print(row("Q&A, 1 client", lat, tput))
        lat, tput = load(url, CLIENTS, qa_concurrent(), "qa20")
        print(row(f"Q&A, {CLIENTS} clients", lat, tput))
        scans = max(1, messages // 26)
        lat, tput = load(url, 1, [[m for _ in range(scans) for m in scan_messages(25)]], "scan1")
        print(row("scan answers, 1 client", lat, tput))
        lat, tput = load(url, CLIENTS, [scan_messages(10) for _ in range(CLIENTS)], "scan20")
        print(row(f"scan answers, {CLIENTS} clients", lat, tput))
        log = (servers.workdir / "actions.log").read_text(errors="replace")
        commits = [float(x) for x in re.findall(r"scan answer stored .* ms=([0-9.]+)", log)]
        if commits:
            print(f"\nanswer committed after receipt by the action server: p50 {statistics.median(commits):.1f} ms, "
                  f"p95 {percentile(commits, 95):.1f} ms (n={len(commits)})")
        print(f"RSS: Rasa server {rss_mb(servers.processes['rasa'].pid):.0f} MB, "
              f"action server {rss_mb(servers.processes['actions'].pid):.0f} MB")
    finally:
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)


COLD_QUESTION = "wat doet een schoolopleider"


def first_answer_ms(servers: Servers, sender: str) -> float:
    """Latency of one knowledge question; fails unless it was answered from the knowledge base."""
    started = time.perf_counter()
    replies = servers.say(sender, COLD_QUESTION)
    elapsed = (time.perf_counter() - started) * 1000
    if not any("Bron:" in (reply.get("text") or "") for reply in replies):
        raise RuntimeError(f"no knowledge answer to {COLD_QUESTION!r}: {replies}")
    return elapsed


def coldstart() -> None:
    """First answer after each kind of start, each with a new sender (no conversation to load)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-coldstart-"))
    servers = Servers(workdir)
    try:
        started = time.perf_counter()
        servers.start()
        print(f"both servers started (healthy) in {time.perf_counter() - started:.1f} s")
        print(f"first answer after a start of both servers: {first_answer_ms(servers, 'cold-both'):.0f} ms")
        servers.stop("actions")
        started = time.perf_counter()
        servers.start_actions()
        print(f"action server restarted (healthy) in {time.perf_counter() - started:.1f} s")
        print(f"first answer after action-server start: {first_answer_ms(servers, 'cold-actions'):.0f} ms")
        servers.stop("rasa")
        started = time.perf_counter()
        servers.start_rasa()
        print(f"Rasa server restarted (healthy) in {time.perf_counter() - started:.1f} s")
        print(f"first answer after Rasa start: {first_answer_ms(servers, 'cold-rasa'):.0f} ms")
        print(f"second answer: {first_answer_ms(servers, 'warm'):.0f} ms")
    finally:
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)


class ProdStack:
    """scripts/prod.sh on a temporary PROD_DIR and free ports: never meets `make serve-prod` or tests."""

    def __init__(self) -> None:
        ports: list[int] = []
        while len(ports) < 7:
            port = free_port()
            if port not in ports:
                ports.append(port)
        pg, redis, actions, http, internal, *self.rasa_ports = ports
        self.dir = Path(tempfile.mkdtemp(prefix="bench-prod-"))
        self.url = f"http://127.0.0.1:{internal}/webhooks/rest/webhook"  # REST is internal only
        self.env = {**os.environ, "PROD_DIR": str(self.dir), "PROD_PG_PORT": str(pg),
                    "PROD_REDIS_PORT": str(redis), "PROD_ACTIONS_PORT": str(actions), "PROD_HTTP_PORT": str(http),
                    "PROD_INTERNAL_PORT": str(internal), "PROD_RASA_PORTS": " ".join(map(str, self.rasa_ports))}

    def prod(self, *args: str, rasa_ports: list[int] | None = None) -> float:
        """Run scripts/prod.sh; return its duration. `rasa_ports` overrides PROD_RASA_PORTS for this call."""
        env = dict(self.env)
        if rasa_ports is not None:
            env["PROD_RASA_PORTS"] = " ".join(map(str, rasa_ports))
        started = time.perf_counter()
        result = subprocess.run([str(ROOT / "scripts" / "prod.sh"), *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=1200)
        if result.returncode != 0:
            raise RuntimeError(f"scripts/prod.sh {' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stderr.strip()[-3000:]}")
        if "SIGKILL" in result.stderr:
            print(f"warning: scripts/prod.sh {' '.join(args)}: {result.stderr.strip()}", file=sys.stderr)
        return time.perf_counter() - started

    def pid(self, service: str) -> int:
        return int((self.dir / f"{service}.pid").read_text().split()[0])

    def log_size(self, name: str) -> int:
        path = self.dir / "logs" / name
        return path.stat().st_size if path.exists() else 0

    def log_since(self, name: str, offset: int) -> str:
        with open(self.dir / "logs" / name, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def upstreams_since(self, offset: int) -> Counter:
        """Requests per upstream (`a, b` = retried on b) in nginx's access log after byte `offset`."""
        return Counter(re.findall(r"upstream=(.*?) upstream_status=", self.log_since("nginx-access.log", offset)))

    def __enter__(self) -> "ProdStack":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if isinstance(error, Exception):  # not on Ctrl-C or SIGTERM
            self.print_log_tails()
        try:
            self.prod("stop")
        except (RuntimeError, subprocess.TimeoutExpired) as stop_error:
            settings = " ".join(f"{key}='{value}'" for key, value in self.env.items() if key.startswith("PROD_"))
            print(f"{stop_error}\nleft {self.dir} in place; stop the rest with: {settings} scripts/prod.sh stop",
                  file=sys.stderr)
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    def print_log_tails(self, lines: int = 15) -> None:
        """The logs go with the temporary PROD_DIR: show their ends before they do."""
        for log in sorted((self.dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            if tail:
                print(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail), file=sys.stderr)


def format_upstreams(counts: Counter) -> str:
    return ", ".join(f"{upstream}: {n}" for upstream, n in sorted(counts.items())) or "none logged"


def scaleout(messages: int) -> None:
    """Q&A through nginx with two Rasa servers, then with one, on the same warm production stack.

    The 1-Rasa phase stops one server (prod.sh stop rasa-<port>) and restarts nginx with only the
    other as upstream. Leaving nginx as it was would also work (max_fails=1 fail_timeout=5s: each
    worker retries the stopped server every 5 s, gets `connection refused` and passes the request on,
    proxy_next_upstream error), but costs a failed connect plus an error-log line each time.
    """
    cores = os.cpu_count() or 1
    rows = []
    with ProdStack() as stack:
        first, second = stack.rasa_ports
        print(f"starting the production stack (PostgreSQL, Redis, actions, Rasa :{first} + :{second}, nginx) "
              f"in {stack.dir} ...", file=sys.stderr, flush=True)
        print(f"production stack started in {stack.prod('start'):.0f} s "
              f"(PostgreSQL tracker store, Redis lock store, nginx least_conn)")
        for port in stack.rasa_ports:  # each server directly, so both are warm whatever nginx picks
            load(f"http://127.0.0.1:{port}/webhooks/rest/webhook", 1, [QUESTIONS], f"warm-{port}")
        load(stack.url, CLIENTS, [QUESTIONS[:3] for _ in range(CLIENTS)], "warm-prod")

        lat, tput = load(stack.url, 1, [qa_sequence(messages)], "prod-qa1")
        rows.append(row("prod Q&A, 1 client, 2 Rasa", lat, tput))
        offset = stack.log_size("nginx-access.log")
        lat, two = load(stack.url, CLIENTS, qa_concurrent(), "prod-qa20-two")
        rows.append(row(f"prod Q&A, {CLIENTS} clients, 2 Rasa", lat, two))
        spread_two = stack.upstreams_since(offset)
        rss = [rss_mb(stack.pid(f"rasa-{port}")) for port in stack.rasa_ports]
        rss_actions = rss_mb(stack.pid("actions"))

        rasa_log, offset = f"rasa-{second}.log", stack.log_size(f"rasa-{second}.log")
        stopped_in = stack.prod("stop", f"rasa-{second}")
        stop_errors = [line for line in stack.log_since(rasa_log, offset).splitlines()
                       if re.search(r"Traceback|ERROR|CRITICAL", line)]
        stack.prod("stop", "nginx")
        stack.prod("start", "nginx", rasa_ports=[first])
        load(stack.url, CLIENTS, [QUESTIONS[:3] for _ in range(CLIENTS)], "warm-prod-one")
        offset = stack.log_size("nginx-access.log")
        lat, one = load(stack.url, CLIENTS, qa_concurrent(), "prod-qa20-one")
        rows.append(row(f"prod Q&A, {CLIENTS} clients, 1 Rasa", lat, one))
        spread_one = stack.upstreams_since(offset)

    print(TABLE_HEAD)
    print("\n".join(rows))
    print(f"\nrequests per upstream, 2 Rasa: {format_upstreams(spread_two)}")
    print(f"requests per upstream, 1 Rasa: {format_upstreams(spread_one)} "
          f"(rasa-{second} stopped in {stopped_in:.1f} s, nginx restarted with rasa-{first} only)")
    if stop_errors:
        print(f"warning: {len(stop_errors)} error lines in {rasa_log} while it stopped, first: {stop_errors[0][:200]}")
    print(f"RSS: Rasa servers {rss[0]:.0f} MB + {rss[1]:.0f} MB, action server {rss_actions:.0f} MB")
    print(f"scale-out: 2 Rasa / 1 Rasa throughput ratio = {two / one:.2f} (target >= {SCALE_OUT_TARGET})")
    if cores < 4:
        print(f"note: on {cores} cores the two Rasa processes compete for the same cores (with PostgreSQL, "
              f"Redis, nginx, the action server and this load generator), so the ratio is bounded by CPU, "
              f"not by Rasa's design.")


BASELINE_MESSAGES = ["hello", "I am sad", "yes", "bye", "are you a bot?", "good morning", "no", "great"]


def baseline(messages: int) -> None:
    """The stock `rasa init` bot, trained and served by the same Rasa, measured the same way."""
    project = Path(tempfile.mkdtemp(prefix="bench-baseline-")) / "bot"
    project.mkdir()
    env, cache = fresh_env()
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv/bin/rasa"), "init", "--no-prompt", "--init-dir", str(project)],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"baseline (rasa init) init + training time: {time.perf_counter() - started:.1f} s")
    port = free_port()
    log = open(project / "rasa.log", "wb")
    process = subprocess.Popen([str(ROOT / ".venv/bin/rasa"), "run", "--enable-api", "--interface", "127.0.0.1",
                                "--port", str(port)], cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/status", timeout=300, process=process)
        url = f"http://127.0.0.1:{port}/webhooks/rest/webhook"
        load(url, 1, [BASELINE_MESSAGES], "warm")
        print(TABLE_HEAD)
        lat, tput = load(url, 1, [[BASELINE_MESSAGES[i % 8] for i in range(messages)]], "b1")
        print(row("baseline, 1 client", lat, tput))
        lat, tput = load(url, CLIENTS, [BASELINE_MESSAGES * 3 for _ in range(CLIENTS)], "b20")
        print(row(f"baseline, {CLIENTS} clients", lat, tput))
        print(f"RSS: baseline Rasa server {rss_mb(process.pid):.0f} MB")
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        shutil.rmtree(project.parent, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="messages per single-client run")
    parser.add_argument("--skip-training", action="store_true", help="skip the training time (part of 'single')")
    parser.add_argument("--only", choices=["all", "single", "coldstart", "scaleout", "baseline"],
                        default="all", help="run one part: single server (with training time), cold start, "
                        "scale-out, or baseline")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress on stderr stays in order when both are redirected
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so the finally blocks stop every server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parts = {"single", "coldstart", "scaleout", "baseline"} if args.only == "all" else {args.only}

    print("# Mentorwijzer benchmark")
    print(f"machine: {os.cpu_count()} cores; messages per single-client run: {args.messages}\n")
    if "single" in parts:
        if not args.skip_training:
            print(f"training time (fresh, full model): {train_time(ROOT):.1f} s\n")
        single(args.messages)
    if "coldstart" in parts:
        print("\n## Cold start: the first knowledge question after a start (issue 17, target <= 1 s)\n")
        coldstart()
    if "scaleout" in parts:
        print("\n## Scale-out: two Rasa servers vs one behind nginx (scripts/prod.sh topology)\n")
        scaleout(args.messages)
    if "baseline" in parts:
        print("\n## Baseline: the stock `rasa init` bot on the same Rasa and machine\n")
        baseline(args.messages)


if __name__ == "__main__":
    main()

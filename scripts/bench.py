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
  server, and of only the Rasa server (issue 17: target <= 1 s);
- turns (issue 17): realistic workloads on the integration-test servers and on the stock bot, up at
  the same time, each workload on ours and then on stock, with ratios ours/stock beside the targets:
  Q&A conversations of 5-10 turns (new senders; 1, 10 and 20 clients); complete mentorscans (start,
  37 button taps, results) by 10 and by 50 mentors at once vs as many stock clients sending as many
  turns; one 200-message conversation (messages 1-50 vs 151-200); CPU ms per turn of each server
  process (utime + stime from /proc/<pid>/stat across a workload, divided by its turns); RSS; cores.
The stock bot is trained once per run and shared by `baseline` and `turns`.
Run `make bench BENCH_ARGS="--messages 400"` for more samples, `BENCH_ARGS="--only scaleout"` for one part,
`BENCH_ARGS="--only turns --scan-mentors 5,10 --scan-answers 10 --long-messages 80"` for a quick turns run.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.servers import Servers, free_port, wait_http  # noqa: E402
from loadtest import completed, question_of  # noqa: E402  (reading a scan reply as the load test does)

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


class StockBot:
    """The stock `rasa init` bot: trained at most once per bench run (about 100 s), served by any part that needs it."""

    def __init__(self) -> None:
        self.project: Path | None = None
        self.env, self.cache = fresh_env()
        self.train_seconds = 0.0

    def trained(self) -> Path:
        if self.project is None:
            project = Path(tempfile.mkdtemp(prefix="bench-baseline-")) / "bot"
            project.mkdir()
            self.project = project
            print("training the stock `rasa init` bot ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            subprocess.run([str(ROOT / ".venv/bin/rasa"), "init", "--no-prompt", "--init-dir", str(project)],
                           check=True, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.train_seconds = time.perf_counter() - started
        return self.project

    @contextmanager
    def serve(self) -> Iterator[tuple[str, subprocess.Popen]]:
        """(REST webhook URL, server process); the server is stopped on leaving, whatever happened."""
        project = self.trained()
        port = free_port()
        with open(project / "rasa.log", "ab") as log:
            process = subprocess.Popen([str(ROOT / ".venv/bin/rasa"), "run", "--enable-api", "--interface", "127.0.0.1",
                                        "--port", str(port)], cwd=project, env=self.env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_http(f"http://127.0.0.1:{port}/status", timeout=300, process=process)
            yield f"http://127.0.0.1:{port}/webhooks/rest/webhook", process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> "StockBot":
        return self

    def __exit__(self, *_) -> None:
        if self.project is not None:
            shutil.rmtree(self.project.parent, ignore_errors=True)
        shutil.rmtree(self.cache, ignore_errors=True)


def baseline(messages: int, stock: StockBot) -> None:
    """The stock `rasa init` bot, trained and served by the same Rasa, measured the same way."""
    stock.trained()
    print(f"baseline (rasa init) init + training time: {stock.train_seconds:.1f} s")
    with stock.serve() as (url, process):
        load(url, 1, [BASELINE_MESSAGES], "warm")
        print(TABLE_HEAD)
        lat, tput = load(url, 1, [[BASELINE_MESSAGES[i % 8] for i in range(messages)]], "b1")
        print(row("baseline, 1 client", lat, tput))
        lat, tput = load(url, CLIENTS, [BASELINE_MESSAGES * 3 for _ in range(CLIENTS)], "b20")
        print(row(f"baseline, {CLIENTS} clients", lat, tput))
        print(f"RSS: baseline Rasa server {rss_mb(process.pid):.0f} MB")


# --- turns: the issue-17 workloads, ours beside the stock bot ---------------------------------------

SCAN_START = "ik wil de mentorscan invullen"
SCAN_ITEMS = 37
KNOWLEDGE = [q for q in QUESTIONS if q != "hoi"]
QA_LENGTHS = [5, 6, 7, 8, 9, 10]  # turns per Q&A conversation, cycled
QA_LOADS = [(1, 10), (10, 2), (20, 2)]  # (concurrent clients, conversations one after another per client)
LONG_QUESTIONS = 12  # knowledge questions after each scan in the long mixed conversation
TYPED_LIKERT = ["vier", "eens", "drie", "helemaal mee eens", "twee", "oneens"]
TYPED_YES_NO = ["ja", "nee hoor", "jazeker", "nee"]
OPEN_ANSWER = "Ik wil beter leren doseren in mijn feedback."
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
TARGET_THROUGHPUT, TARGET_P95, TARGET_LONG = 1.0, 1.3, 1.3
TARGET_CPU = {"scan_rasa": 40.0, "scan_actions": 12.0, "qa_rasa": 25.0}


def cpu_ms(pid: int) -> float:
    """utime + stime of a process and its live children (`/proc/<pid>/stat`), in ms."""
    total = 0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for process in [pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total * TICK_MS


def machine_busy_ms() -> float:
    """Non-idle CPU time of all cores together since boot (`/proc/stat`), in ms."""
    user, nice, system, idle, iowait, *rest = map(int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:])
    return (user + nice + system + sum(rest[:3])) * TICK_MS


class Meter:
    """CPU of the servers, of this load generator and of everything else on the machine, between two reads."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def read(self) -> dict[str, float]:
        values = {name: cpu_ms(pid) for name, pid in self.pids.items()}
        values["client"] = time.process_time() * 1000
        values["others"] = machine_busy_ms() - sum(values.values())
        return values

    @staticmethod
    def delta(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
        return {name: end[name] - start[name] for name in start}


def button_value(payload: str) -> str:
    """`/inform_scan_answer{"scan_item":"1.1.a","scan_value":"4"}` -> "4" (bot/scan.py: button_payload)."""
    return str(json.loads(payload[payload.index("{"):])["scan_value"])


class Mentor:
    """Fills in the mentorscan as a new sender: the start request, then an answer to whatever question the
    last reply asked: a tap on one of its buttons (the payload a channel sends), or typed Dutch with
    `typed`; the open question is always typed."""

    def __init__(self, number: int, problems: Counter, typed: bool = False) -> None:
        self.number, self.problems, self.typed = number, problems, typed
        self.asked: int | None = None  # the question the last answer was for

    def __call__(self, reply: list[dict] | None) -> str | None:
        """The next message, or None when the scan is over (completed, or the bot lost track)."""
        if reply is None:
            return SCAN_START
        number, payloads = question_of(reply)
        if number is None:
            if not (self.asked == SCAN_ITEMS and completed(reply)):
                self.problems[f"no question and no results after answer {self.asked}"] += 1
            return None
        typed = self.typed
        if number != (self.asked or 0) + 1:
            self.problems[f"a {'typed ' if typed else ''}answer was not taken (question {number} came again)"
                          if number == self.asked else "question numbers out of order"] += 1
            typed = False  # a tap on the same question keeps the scan going
        self.asked = number
        if not payloads:
            return OPEN_ANSWER
        index = (self.number + number) % len(payloads)
        if not typed:
            return payloads[index]
        words = TYPED_LIKERT if len(payloads) == 5 else TYPED_YES_NO if len(payloads) == 2 else None
        return words[(self.number + number) % len(words)] if words else button_value(payloads[index])


def cycle(messages: list[str], offset: int = 0) -> Callable[[list[dict] | None], str]:
    """A client that ignores the replies and sends `messages` round and round, from `offset`."""
    sent = itertools.count(offset)
    return lambda _reply: messages[next(sent) % len(messages)]


class MixedConversation:
    """One mentor's long conversation: the mentorscan (start + 37 answers), then LONG_QUESTIONS knowledge
    questions, then the scan again, and so on, so every 50 messages hold the same kinds of turns."""

    def __init__(self, problems: Counter) -> None:
        self.problems = problems
        self.mentor: Mentor | None = Mentor(0, problems)
        self.questions = 0

    def __call__(self, reply: list[dict] | None) -> str:
        if self.mentor is not None:
            message = self.mentor(reply)
            if message is not None:
                return message
            self.mentor, self.questions = None, 0
        if self.questions < LONG_QUESTIONS:
            self.questions += 1
            return KNOWLEDGE[self.questions % len(KNOWLEDGE)]
        self.mentor = Mentor(0, self.problems)
        return self.mentor(None)


@dataclass
class Workload:
    """Clients running at once against one server. Each client goes through the same phases (turns per
    phase); CPU is read when every client has finished a phase, so each phase's CPU is its own."""

    name: str
    url: str
    meter: Meter
    clients: int
    latencies: list[float] = field(default_factory=list)
    turns: Counter = field(default_factory=Counter)  # per phase
    marks: list[dict] = field(default_factory=list)  # CPU read at the start and after each phase
    problems: Counter = field(default_factory=Counter)
    last_reply: dict[str, list[dict] | None] = field(default_factory=dict)  # per sender
    errors: int = 0
    seconds: float = 0.0
    _phase: int = 0
    _waiting: int = 0
    _released: asyncio.Event | None = None

    async def say(self, client: httpx.AsyncClient, sender: str, message: str) -> list[dict] | None:
        started = time.perf_counter()
        try:
            response = await client.post(self.url, json={"sender": sender, "message": message}, timeout=120)
            response.raise_for_status()
            reply = response.json()
        except (httpx.HTTPError, ValueError) as error:
            self.errors += 1
            self.problems[f"{type(error).__name__}: {str(error)[:80]}"] += 1
            return None
        self.latencies.append((time.perf_counter() - started) * 1000)
        self.turns[self._phase] += 1
        return reply

    async def phase_done(self) -> None:
        """Wait until every client has finished this phase; the last one to arrive reads the CPU."""
        if self._released is None:
            self._released = asyncio.Event()
        released = self._released
        self._waiting += 1
        if self._waiting == self.clients:
            self.marks.append(self.meter.read())
            self._phase, self._waiting, self._released = self._phase + 1, 0, asyncio.Event()
            released.set()
        else:
            await released.wait()

    async def converse(self, client: httpx.AsyncClient, conversations: list[tuple[str, Callable, list[int]]]) -> None:
        """One client: conversations one after another, each (sender, next message from the last reply,
        turns per phase). A conversation that ends early (or fails) still passes every phase gate."""
        for sender, source, phases in conversations:
            reply, alive = None, True
            for length in phases:
                for _ in range(length):
                    message = source(reply) if alive else None
                    if message is None:
                        alive = False
                        break
                    reply = await self.say(client, sender, message)
                    alive = reply is not None
                if len(phases) > 1:
                    await self.phase_done()
            self.last_reply[sender] = reply

    def run(self, per_client: list[list[tuple[str, Callable, list[int]]]]) -> "Workload":
        async def main() -> None:
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=len(per_client) + 10)) as client:
                self.marks = [self.meter.read()]
                started = time.perf_counter()
                await asyncio.gather(*(self.converse(client, conversations) for conversations in per_client))
                self.seconds = time.perf_counter() - started
                if len(self.marks) == 1:
                    self.marks.append(self.meter.read())
        assert len(per_client) == self.clients
        asyncio.run(main())
        return self

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def cpu(self, first: int = 0, last: int | None = None) -> tuple[int, dict[str, float]]:
        """(turns, CPU ms per process) of phases first..last (all by default)."""
        last = len(self.marks) - 2 if last is None else last
        return sum(self.turns[p] for p in range(first, last + 1)), Meter.delta(self.marks[first], self.marks[last + 1])

    def cpu_per_turn(self, process: str, first: int = 0, last: int | None = None) -> float:
        turns, cpu = self.cpu(first, last)
        return cpu[process] / turns if turns else float("nan")

    def others_share(self, cores: int) -> float:
        """Share of the machine's CPU used by other processes while this workload ran."""
        return Meter.delta(self.marks[0], self.marks[-1])["others"] / (self.seconds * 1000 * cores)


def tag() -> str:
    return uuid.uuid4().hex[:6]


def qa_load(clients: int, conversations: int, messages: list[str], prefix: str) -> list[list[tuple]]:
    """Per client, `conversations` new senders one after another, 5-10 turns each."""
    run = tag()
    plan = []
    for c in range(clients):
        plan.append([(f"{prefix}-{run}-{c}-{k}", cycle(messages, 3 * (c + k)), [QA_LENGTHS[(c + k) % len(QA_LENGTHS)]])
                     for k in range(conversations)])
    return plan


def scan_phases(answers: int) -> list[int]:
    """Turns per phase of a scan: the start; answers 1-36 (or fewer); the last answer with the results."""
    return [1, min(answers, SCAN_ITEMS - 1)] + ([1] if answers >= SCAN_ITEMS else [])


def ratio_cell(value: float, target: float | None = None, higher_is_better: bool = False) -> str:
    if value != value:  # nan
        return "—"
    if target is None:
        return f"{value:.2f}×"
    met = value >= target if higher_is_better else value <= target
    return f"{value:.2f}× ({'≥' if higher_is_better else '≤'} {target}×: {'met' if met else 'missed'})"


def cpu_cell(value: float, target: float | None = None) -> str:
    if value != value:  # nan: no turns
        return "—"
    if target is None:
        return f"{value:.1f}"
    return f"{value:.1f} (≤ {target:.0f}: {'met' if value <= target else 'missed'})"


def pct(latencies: list[float], q: float) -> float:
    """Percentile, nan for no samples (every request failed)."""
    return percentile(latencies, q) if latencies else float("nan")


def divide(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass
class TurnsRun:
    """Everything the turns part measured, for the report."""

    answers: int
    long_messages: int
    qa: list[tuple[str, Workload, Workload]] = field(default_factory=list)  # (label, ours, stock)
    scans: list[tuple[str, Workload, Workload]] = field(default_factory=list)
    longs: list[tuple[str, Workload]] = field(default_factory=list)
    typed: Workload | None = None
    events_per_scan_turn: float = float("nan")
    rss: dict[str, float] = field(default_factory=dict)
    start_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)


def measure_turns(mentor_counts: list[int], answers: int, long_messages: int, stock: StockBot) -> TurnsRun:
    """Every workload on our integration-test servers, then on the stock bot; both up at the same time."""
    result = TurnsRun(answers, long_messages)
    stock.trained()
    workdir = Path(tempfile.mkdtemp(prefix="bench-turns-"))
    ours = Servers(workdir)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]

    def progress(step: str) -> None:
        print(f"[turns {time.perf_counter() - started:4.0f} s] {step} ...", file=sys.stderr, flush=True)

    def start_ours() -> float:
        begun = time.perf_counter()
        ours.start()
        return time.perf_counter() - begun

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        progress("starting our servers and the stock bot")
        starting = pool.submit(start_ours)  # both load their models at the same time
        with stock.serve() as (stock_url, stock_process):
            result.start_seconds = {"stock": time.perf_counter() - started, "ours": starting.result()}
            url = f"{ours.rasa_url}/webhooks/rest/webhook"
            pids = {"rasa": ours.processes["rasa"].pid, "actions": ours.processes["actions"].pid,
                    "stock": stock_process.pid}
            meter = Meter(pids)
            progress("warm-up")  # a whole scan (its results chart loads matplotlib), some questions; stock's messages
            Workload("warm", url, meter, 1).run([[(f"warm-scan-{tag()}", Mentor(0, Counter()), [SCAN_ITEMS + 1]),
                                                  (f"warm-qa-{tag()}", cycle(KNOWLEDGE), [len(KNOWLEDGE)])]])
            Workload("warm", stock_url, meter, 1).run([[(f"warm-{tag()}", cycle(BASELINE_MESSAGES), [16])]])

            for clients, conversations in QA_LOADS:
                progress(f"Q&A conversations, {clients} client(s)")
                label = f"Q&A conversations (5–10 turns), {clients} client{'s' if clients > 1 else ''}"
                mine = Workload(label, url, meter, clients).run(qa_load(clients, conversations, KNOWLEDGE, "qa"))
                theirs = Workload(label, stock_url, meter, clients).run(
                    qa_load(clients, conversations, BASELINE_MESSAGES, "stock-qa"))
                result.qa.append((label, mine, theirs))

            for mentors in mentor_counts:
                progress(f"scans, {mentors} mentors")
                label = f"scans, {mentors} mentors at once"
                run = tag()
                mine = Workload(label, url, meter, mentors)
                mine.run([[(f"scan-{run}-{m}", Mentor(m, mine.problems), scan_phases(answers))] for m in range(mentors)])
                if answers == SCAN_ITEMS:
                    done = sum(map(completed, mine.last_reply.values()))
                    if done != mentors:
                        mine.problems[f"scans completed with results: {done} of {mentors}"] += 1
                theirs = Workload(label, stock_url, meter, mentors).run(
                    [[(f"stock-scan-{run}-{m}", cycle(BASELINE_MESSAGES, m), scan_phases(answers))]
                     for m in range(mentors)])
                result.scans.append((label, mine, theirs))
                tracker = httpx.get(f"{ours.rasa_url}/conversations/scan-{run}-0/tracker",
                                    params={"token": ours.api_token}, timeout=60).json()
                result.events_per_scan_turn = len(tracker.get("events") or []) / (1 + answers)

            progress("long conversations")
            mixed = Workload("long", url, meter, 1)
            mixed.run([[(f"long-mix-{tag()}", MixedConversation(mixed.problems), [long_messages])]])
            result.longs = [
                ("ours: scans + knowledge questions", mixed),
                ("ours: knowledge questions only", Workload("long", url, meter, 1).run(
                    [[(f"long-qa-{tag()}", cycle(KNOWLEDGE), [long_messages])]])),
                ("stock: its own messages", Workload("long", stock_url, meter, 1).run(
                    [[(f"long-stock-{tag()}", cycle(BASELINE_MESSAGES), [long_messages])]])),
            ]

            progress("typed scan answers")
            typed = Workload("typed", url, meter, 2)
            result.typed = typed.run([[(f"typed-{tag()}-{k}", Mentor(k, typed.problems, typed=True),
                                        scan_phases(answers))] for k in range(2)])
            result.rss = {name: rss_mb(pid) for name, pid in pids.items()}
    except Exception:
        pool.shutdown(wait=True)
        for log in sorted(workdir.glob("*.log")):  # they go with the work dir: show their ends first
            print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]),
                  file=sys.stderr)
        raise
    finally:
        pool.shutdown(wait=True)  # ours.start() has returned (or failed) before ours.stop()
        ours.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    result.load = (load_before, os.getloadavg()[0])
    return result


def report_turns(run: TurnsRun, stock: StockBot) -> None:
    cores, affinity = os.cpu_count() or 1, len(os.sched_getaffinity(0))
    answers, scan_turns = run.answers, 1 + run.answers
    full = answers == SCAN_ITEMS
    answered = f"answers 1–{min(answers, SCAN_ITEMS - 1)}"
    print(f"cores: os.cpu_count() = {cores}, CPU affinity of this process = {affinity}; load average "
          f"{run.load[0]:.1f} before, {run.load[1]:.1f} after; this part took {run.seconds:.0f} s, of which "
          f"{run.start_seconds['stock']:.0f} s starting both bots (ours alone {run.start_seconds['ours']:.0f} s); "
          f"stock bot `rasa init` + training {stock.train_seconds:.0f} s, once per bench run")
    print("\nOurs: the integration-test servers (Rasa with the SQLite tracker store, action server, SQLite database, "
          "REST channel). Stock: the `rasa init` bot (its in-memory tracker store, no action server) on the same Rasa. "
          "Both run at the same time; each workload runs on ours, then on stock. Every conversation is a new sender.")
    print(f"- Q&A: conversations of 5–10 turns; ours asks knowledge questions, stock sends its own greet/mood "
          f"messages; {', '.join(f'{c} client(s) × {k} conversations' for c, k in QA_LOADS)}.")
    scope = ("**complete scans**: start, 37 answers, the results come with the last answer (chart included)" if full
             else f"**PARTIAL scans: the start and only the first {answers} of {SCAN_ITEMS} answers** (--scan-answers)")
    print(f"- Scans, {scope}; {scan_turns} turns per mentor. Each mentor taps a button for every question (the "
          f"payload a channel sends; the open question is typed). Stock: as many clients, {scan_turns} of its "
          f"messages each. All clients wait for each other after the start{' and before the last answer' if full else ''}, "
          f"so CPU is read per phase.")
    print(f"- others: share of the machine's {cores} cores used by other processes during the workload (noise).")

    print("\n### Latency and throughput\n")
    print("| workload | bot | turns | p50 ms | p95 ms | turns/s | errors | others |\n|---|---|---|---|---|---|---|---|")
    for label, mine, theirs in run.qa + run.scans:
        for bot, w in (("ours", mine), ("stock", theirs)):
            print(f"| {label} | {bot} | {len(w.latencies)} | {pct(w.latencies, 50):.0f} | {pct(w.latencies, 95):.0f} "
                  f"| {w.throughput:.1f} | {w.errors} | {w.others_share(cores):.0%} |")

    print("\n### Ratios ours / stock\n")
    print("| workload | throughput | p95 |\n|---|---|---|")
    for rows, targets in ((run.qa, False), (run.scans, True)):
        for label, mine, theirs in rows:
            throughput = divide(mine.throughput, theirs.throughput)
            p95 = divide(pct(mine.latencies, 95), pct(theirs.latencies, 95))
            print(f"| {label} | {ratio_cell(throughput, TARGET_THROUGHPUT if targets else None, True)} "
                  f"| {ratio_cell(p95, TARGET_P95 if targets else None)} |")

    size = max(1, run.long_messages // 4)
    print(f"\n### One conversation of {run.long_messages} messages: messages 1–{size} vs "
          f"{run.long_messages - size + 1}–{run.long_messages}\n")
    cycle_turns = 1 + SCAN_ITEMS + LONG_QUESTIONS
    windows = ("so both windows hold the same kinds of turns" if size == cycle_turns else
               f"both windows hold the same kinds of turns only with --long-messages {4 * cycle_turns}")
    print(f"The mixed one: the complete mentorscan, then {LONG_QUESTIONS} knowledge questions, again and again "
          f"({cycle_turns} messages a cycle; {windows}).\n")
    print("| conversation | p50 first | p95 first | p50 last | p95 last | p95 last / first |\n|---|---|---|---|---|---|")
    for label, w in run.longs:
        first, last = w.latencies[:size], w.latencies[-size:]
        target = TARGET_LONG if label.startswith("ours") else None
        print(f"| {label} | {pct(first, 50):.0f} | {pct(first, 95):.0f} | {pct(last, 50):.0f} | {pct(last, 95):.0f} "
              f"| {ratio_cell(divide(pct(last, 95), pct(first, 95)), target)} |")

    print("\n### CPU ms per turn, per process (utime + stime from /proc/<pid>/stat across the workload, / turns)\n")
    print("| workload | turns | ours: Rasa | ours: action server | stock: Rasa | Rasa ours / stock | load generator |\n"
          "|---|---|---|---|---|---|---|")

    def cpu_row(label: str, mine: Workload, theirs: Workload | None, phases: tuple[int, int | None] = (0, None),
                rasa_target: float | None = None, actions_target: float | None = None) -> None:
        rasa = mine.cpu_per_turn("rasa", *phases)
        stock_rasa = theirs.cpu_per_turn("stock", *phases) if theirs else float("nan")
        print(f"| {label} | {mine.cpu(*phases)[0]} | {cpu_cell(rasa, rasa_target)} "
              f"| {cpu_cell(mine.cpu_per_turn('actions', *phases), actions_target)} | {cpu_cell(stock_rasa)} "
              f"| {ratio_cell(divide(rasa, stock_rasa))} | {cpu_cell(mine.cpu_per_turn('client', *phases))} |")

    for label, mine, theirs in run.qa:
        cpu_row(f"{label}: knowledge questions", mine, theirs, rasa_target=TARGET_CPU["qa_rasa"])
    for label, mine, theirs in run.scans:
        cpu_row(f"{label}: all {scan_turns} turns", mine, theirs)
        cpu_row(f"{label}: {answered} (taps)", mine, theirs, (1, 1), TARGET_CPU["scan_rasa"], TARGET_CPU["scan_actions"])
        cpu_row(f"{label}: start", mine, theirs, (0, 0))
        if full:
            cpu_row(f"{label}: last answer + results", mine, theirs, (2, 2))
    cpu_row(f"2 mentors at once: {answered} typed in Dutch (NLU)", run.typed, None, (1, 1),
            TARGET_CPU["scan_rasa"], TARGET_CPU["scan_actions"])
    for label, w in run.longs:
        if label.startswith("stock"):
            print(f"| long, {label} | {len(w.latencies)} | — | — | {cpu_cell(w.cpu_per_turn('stock'))} | — "
                  f"| {cpu_cell(w.cpu_per_turn('client'))} |")
        else:
            cpu_row(f"long, {label}", w, None)

    print(f"\ntracker events per scan turn (ours, one mentor of the last scan workload): {run.events_per_scan_turn:.1f}")
    print(f"RSS after the workloads: ours Rasa {run.rss['rasa']:.0f} MB, action server {run.rss['actions']:.0f} MB; "
          f"stock Rasa {run.rss['stock']:.0f} MB")
    problems: Counter = Counter()
    for label, mine, theirs in run.qa + run.scans:
        problems.update({f"{label}, ours: {k}": v for k, v in mine.problems.items()})
        problems.update({f"{label}, stock: {k}": v for k, v in theirs.problems.items()})
    for label, w in run.longs:
        problems.update({f"long, {label}: {k}": v for k, v in w.problems.items()})
    problems.update({f"typed answers: {k}": v for k, v in run.typed.problems.items()})
    for problem, count in sorted(problems.items()):
        print(f"problem: {problem} ({count}×)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="messages per single-client run")
    parser.add_argument("--skip-training", action="store_true", help="skip the training time (part of 'single')")
    parser.add_argument("--only", choices=["all", "single", "coldstart", "scaleout", "baseline", "turns"],
                        default="all", help="run one part: single server (with training time), cold start, "
                        "scale-out, baseline, or turns (issue 17's workloads beside the stock bot)")
    parser.add_argument("--scan-mentors", default="10,50",
                        help="turns: concurrent mentors per complete-scan workload, comma-separated (default 10,50)")
    parser.add_argument("--scan-answers", type=int, default=SCAN_ITEMS,
                        help=f"turns: answers per scan (default all {SCAN_ITEMS}; fewer makes partial scans)")
    parser.add_argument("--long-messages", type=int, default=200,
                        help="turns: messages in each one-conversation run (first vs last quarter; default 200)")
    args = parser.parse_args()
    mentor_counts = [int(n) for n in args.scan_mentors.split(",") if n.strip()]
    sys.stdout.reconfigure(line_buffering=True)  # progress on stderr stays in order when both are redirected
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so the finally blocks stop every server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parts = {"single", "coldstart", "scaleout", "baseline", "turns"} if args.only == "all" else {args.only}

    print("# Mentorwijzer benchmark")
    print(f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable by this process); "
          f"messages per single-client run: {args.messages}\n")
    with StockBot() as stock:
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
            baseline(args.messages, stock)
        if "turns" in parts:
            answers = max(1, min(args.scan_answers, SCAN_ITEMS))
            scope = "complete scans" if answers == SCAN_ITEMS else f"PARTIAL scans of {answers} answers"
            print(f"\n## Realistic turns beside the stock bot (issue 17; {scope})\n")
            report_turns(measure_turns(mentor_counts, answers, args.long_messages, stock), stock)


if __name__ == "__main__":
    main()

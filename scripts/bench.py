"""`make bench`: prints figures, asserts nothing.

- training time of the Mentorwijzer model (fresh, into a temporary folder);
- REST latency p50/p95/p99 over N messages for knowledge questions and for scan answers (one client),
  and throughput with 20 concurrent clients;
- time from receipt to answer committed (from the action server's own log line);
- RSS of the Rasa server and the action server;
- the same figures for a baseline: the stock `rasa init` bot, so ratios are visible on noisy machines.
Run `make bench BENCH_ARGS="--messages 400"` for more samples.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
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


def train_time(project: Path, extra: list[str] | None = None) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-train-"))
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv/bin/rasa"), "train", "--quiet", "--out", str(out), *(extra or [])],
                   cwd=project, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"})
    return time.perf_counter() - started


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


def scan_messages(n: int) -> list[str]:
    answers = ["ik wil de mentorscan invullen"]
    answers += [str(1 + i % 5) for i in range(min(n, 25))]
    return answers


def row(name: str, latencies: list[float], throughput: float) -> str:
    return (f"| {name} | {len(latencies)} | {statistics.median(latencies):.0f} | {percentile(latencies, 95):.0f} "
            f"| {percentile(latencies, 99):.0f} | {throughput:.1f} |")


BASELINE_MESSAGES = ["hello", "I am sad", "yes", "bye", "are you a bot?", "good morning", "no", "great"]


def baseline(messages: int) -> None:
    """The stock `rasa init` bot, trained and served by the same Rasa, measured the same way."""
    project = Path(tempfile.mkdtemp(prefix="bench-baseline-")) / "bot"
    project.mkdir()
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false"}
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
        asyncio.run(run_load(url, 1, [BASELINE_MESSAGES], "warm"))
        print("| turns | n | p50 ms | p95 ms | p99 ms | msg/s |")
        print("|---|---|---|---|---|---|")
        lat, tput = asyncio.run(run_load(url, 1, [[BASELINE_MESSAGES[i % 8] for i in range(messages)]], "b1"))
        print(row("baseline, 1 client", lat, tput))
        lat, tput = asyncio.run(run_load(url, 20, [BASELINE_MESSAGES * 3 for _ in range(20)], "b20"))
        print(row("baseline, 20 clients", lat, tput))
        print(f"RSS: baseline Rasa server {rss_mb(process.pid):.0f} MB")
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()

    print("# Mentorwijzer benchmark")
    print(f"machine: {os.cpu_count()} cores; messages per single-client run: {args.messages}\n")
    if not args.skip_training:
        print(f"training time (fresh, full model): {train_time(ROOT):.1f} s\n")

    servers = Servers(Path(tempfile.mkdtemp(prefix="bench-servers-"))).start()
    try:
        url = f"{servers.rasa_url}/webhooks/rest/webhook"
        # warm-up
        asyncio.run(run_load(url, 1, [QUESTIONS], "warm"))
        qa_single = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.messages)]
        print("| turns | n | p50 ms | p95 ms | p99 ms | msg/s |")
        print("|---|---|---|---|---|---|")
        lat, tput = asyncio.run(run_load(url, 1, [qa_single], "qa1"))
        print(row("Q&A, 1 client", lat, tput))
        lat, tput = asyncio.run(run_load(url, 20, [QUESTIONS * 2 for _ in range(20)], "qa20"))
        print(row("Q&A, 20 clients", lat, tput))
        scans = max(1, args.messages // 26)
        lat, tput = asyncio.run(run_load(url, 1, [[m for _ in range(scans) for m in scan_messages(25)]], "scan1"))
        print(row("scan answers, 1 client", lat, tput))
        lat, tput = asyncio.run(run_load(url, 20, [scan_messages(10) for _ in range(20)], "scan20"))
        print(row("scan answers, 20 clients", lat, tput))
        log = (servers.workdir / "actions.log").read_text(errors="replace")
        commits = [float(x) for x in re.findall(r"scan answer stored .* ms=([0-9.]+)", log)]
        if commits:
            print(f"\nanswer committed after receipt by the action server: p50 {statistics.median(commits):.1f} ms, "
                  f"p95 {percentile(commits, 95):.1f} ms (n={len(commits)})")
        print(f"RSS: Rasa server {rss_mb(servers.processes['rasa'].pid):.0f} MB, "
              f"action server {rss_mb(servers.processes['actions'].pid):.0f} MB")
    finally:
        servers.stop()
    print("\n## Baseline: the stock `rasa init` bot on the same Rasa and machine\n")
    baseline(args.messages)


if __name__ == "__main__":
    main()

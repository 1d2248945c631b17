#!/usr/bin/env python3
"""Ready to dispatch: from a replica becoming ready to the first held request reaching it.

Each trial starts `tide serve` with one group at 0 replicas (0..1) of `tide demo-model --timing`
and sends one request: it is held, the group scales from zero, and the request starts the
moment tide learns that the replica is ready. Two paths, alternately:
  agent  `agent: {enabled: true}`: the agent checks the model server's /health every 100 ms while
         it starts and pushes readiness to tide at once (POST /v1/agent/report)
  probe  tide itself probes the model server's ready.path every ready.interval
The replica measures, on its own clock (response headers of --timing):
  seen     end of its cold start -> its first 2xx answer to /health (the health-check interval)
  ready -> request   that first 2xx -> the held request's arrival (push or probe result, tide's
                     dispatch, the connection to the replica, through the agent where there is one)
Prints percentiles of both beside each other; exits 1 when the agent path's median ready ->
request exceeds GOAL_MS (default 5; BENCH_NO_FAIL=1 only prints).
Usage: bench/ready_to_dispatch.py [TRIALS] (default 10 per path). TIDE: the binary.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

TIDE = os.path.abspath(os.environ.get("TIDE", "build/bin/tide"))
INTERVAL = os.environ.get("READY_INTERVAL", "100ms")
LOAD_TIME = "300ms"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(gw, api, agent):
    group = {"name": "g", "min_replicas": 0, "max_replicas": 1, "concurrency": 4,
             "provisioner": {"kind": "local",
                             "command": ["{tide}", "demo-model", "--port", "{port}", "--timing",
                                         "--load-time", LOAD_TIME, "--service", "fixed:5ms"],
                             "ready": {"path": "/health", "interval": INTERVAL}},
             "scaling": {"policy": "queue", "queue_size": 1}}
    if agent:
        group["agent"] = {"enabled": True}
    return {"server": {"listen": f"127.0.0.1:{gw}", "api": f"127.0.0.1:{api}", "threads": 1},
            "state": {"path": ":memory:"},
            "endpoints": [{"name": "chat", "groups": [group]}]}


def wait_accepting(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tide serve exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("tide serve did not accept connections")


def trial(workdir, agent):
    gw, api = free_port(), free_port()
    path = os.path.join(workdir, "tide.yaml")
    with open(path, "w") as f:
        json.dump(config(gw, api, agent), f)
    log = open(os.path.join(workdir, "tide.log"), "ab")
    proc = subprocess.Popen([TIDE, "serve", "--config", path], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    log.close()
    try:
        wait_accepting(gw, proc)
        t0 = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", gw, timeout=30)
        c.request("POST", "/chat/v1/completions", body='{"prompt": "hi", "max_tokens": 1}',
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        total = time.monotonic() - t0
        if r.status != 200:
            raise RuntimeError(f"the held request got {r.status}")
        seen = int(r.getheader("Demo-Health-Lag-Us")) / 1000
        dispatch = int(r.getheader("Demo-Ready-To-Request-Us")) / 1000
        return seen, dispatch, total * 1000
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    goal = float(os.environ.get("GOAL_MS", "5"))
    if not os.access(TIDE, os.X_OK):
        print(f"bench: {TIDE} not built", file=sys.stderr)
        return 2
    results = {"agent": [], "probe": []}
    with tempfile.TemporaryDirectory(prefix="tide-ready-") as workdir:
        try:
            for _ in range(trials):
                for name in results:
                    results[name].append(trial(workdir, name == "agent"))
        except (RuntimeError, OSError, http.client.HTTPException, TypeError, ValueError) as e:
            print(f"bench: {type(e).__name__}: {e}", file=sys.stderr)
            subprocess.run(["tail", "-20", os.path.join(workdir, "tide.log")])
            return 2
    print(f"ready to dispatch: {trials} cold starts per path, one held request each; "
          f"demo-model --load-time {LOAD_TIME}, ready.interval {INTERVAL}, {os.cpu_count()} cores")
    print(f"{'':<16} {'readiness seen (ms)':>26}   {'ready -> request (ms)':>26}   "
          f"{'client total (ms)':>17}")
    print(f"{'path':<16} {'p50':>8} {'p90':>8} {'max':>8}   {'p50':>8} {'p90':>8} {'max':>8}   "
          f"{'p50':>8}")
    for name, rows in results.items():
        seen, disp, total = zip(*rows)
        print(f"{name:<16} {pct(seen, 50):8.2f} {pct(seen, 90):8.2f} {max(seen):8.2f}   "
              f"{pct(disp, 50):8.2f} {pct(disp, 90):8.2f} {max(disp):8.2f}   "
              f"{pct(total, 50):8.1f}")
    agent_p50 = pct([r[1] for r in results["agent"]], 50)
    if agent_p50 > goal and os.environ.get("BENCH_NO_FAIL", "0") != "1":
        print(f"bench: agent path ready -> request p50 {agent_p50:.2f} ms > goal {goal} ms")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

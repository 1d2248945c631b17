#!/usr/bin/env python3
"""The driver of bench/gpu-check.sh (read that first): against a running `tide serve` whose
endpoint `gpu` has one local group (gpus [0], gpus_per_replica 1, agents on), it

  1. sends a first request (a scale from zero: held while the replica starts),
  2. runs load phases (idle, ~50% busy, ~100% busy, idle) while sampling, every --sample-s,
     the agent-reported GPU readings from the API beside `nvidia-smi` into samples.csv,
  3. checks the GPU pool: asks for 2 replicas of 1 GPU each with one GPU in the pool (the
     second is refused: "no free GPU"), scales to 0 (the GPU goes back), then to 1 again
     (the new replica gets GPU 0),
  4. writes result.json and prints the tables.

Stdlib only; loopback only; every wait bounded.
"""

import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

SMI_QUERY = ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used,memory.total",
             "--format=csv,noheader,nounits"]
MIB = 1 << 20


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Tide:
    def __init__(self, api, gateway, token, endpoint_config):
        self.api, self.gateway, self.token = api, gateway, token
        self.config = endpoint_config  # the endpoint as in the file (JSON), changed by put_group
        self.endpoint = endpoint_config["name"]

    def call(self, method, url, body=None, timeout=10, auth=True):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, OSError) as e:
            return 0, str(e)

    def view(self):
        status, text = self.call("GET", f"{self.api}/v1/endpoints/{self.endpoint}")
        return json.loads(text) if status == 200 else None

    def put_group(self, **fields):
        """Changes the first group; returns what to log of the answer."""
        group = self.config["groups"][0]
        for k, v in fields.items():
            if isinstance(v, dict):
                group[k].update(v)
            else:
                group[k] = v
        status, text = self.call("PUT", f"{self.api}/v1/endpoints/{self.endpoint}", self.config)
        if status != 200:
            raise SystemExit(f"gpu-check: PUT {json.dumps(fields)} answered {status}: {text}")
        return f"PUT {json.dumps(fields)}: HTTP {status}"

    def complete(self, busy_ms, timeout=120):
        """A request through the gateway; returns (status, the replica object or the text)."""
        status, text = self.call("POST", f"{self.gateway}/{self.endpoint}/v1/completions",
                                 {"prompt": "x", "max_tokens": 1, "busy_ms": busy_ms},
                                 timeout=timeout, auth=False)
        try:
            return status, json.loads(text).get("replica", text)
        except ValueError:
            return status, text


def wait_for(what, check, seconds, step=0.25):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(step)
    raise SystemExit(f"gpu-check: gave up after {seconds} s waiting for {what}")


def smi_read(stub):
    """nvidia-smi's row for GPU 0: (utilization 0..1, used MiB, total MiB), or Nones."""
    if stub:
        return None, None, None
    try:
        out = subprocess.run(SMI_QUERY, capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None, None, None
    for line in out.splitlines():
        f = [x.strip() for x in line.split(",")]
        if len(f) == 4 and f[0] == "0":
            try:
                return float(f[1]) / 100, float(f[2]), float(f[3])
            except ValueError:
                return None, None, None
    return None, None, None


def agent_read(view):
    """The first ready replica's last report: (replica id, age s, util, used MiB, total MiB)."""
    if view is None:
        return None
    for r in view["groups"][0].get("replicas", []):
        rep = r.get("report")
        if r.get("state") != "ready" or not rep:
            continue
        gpus = rep.get("gpus") or [{}]
        g = gpus[0]
        used = g.get("memory_used_bytes")
        total = g.get("memory_total_bytes")
        return (r["id"], rep.get("age_s"), g.get("utilization"),
                None if used is None else used / MIB, None if total is None else total / MIB)
    return None


class Sampler(threading.Thread):
    FIELDS = ["t_s", "phase", "replica", "report_age_s", "agent_util", "agent_mem_used_mib",
              "agent_mem_total_mib", "smi_t_s", "smi_util", "smi_mem_used_mib",
              "smi_mem_total_mib"]

    def __init__(self, tide, t0, every, stub, path):
        super().__init__(daemon=True)
        self.tide, self.t0, self.every, self.stub = tide, t0, every, stub
        self.phase = "start"
        self.rows = []
        self.stop = threading.Event()
        self.file = open(path, "w", newline="")
        self.csv = csv.DictWriter(self.file, fieldnames=self.FIELDS)
        self.csv.writeheader()

    def run(self):
        next_at = time.monotonic()
        while not self.stop.is_set():
            t = time.monotonic() - self.t0
            a = agent_read(self.tide.view())
            smi_t = time.monotonic() - self.t0
            su, sm, st = smi_read(self.stub)
            row = {"t_s": round(t, 3), "phase": self.phase, "smi_t_s": round(smi_t, 3),
                   "smi_util": su, "smi_mem_used_mib": sm, "smi_mem_total_mib": st}
            if a:
                row.update(zip(self.FIELDS[2:7], a))
            self.rows.append(row)
            self.csv.writerow(row)
            self.file.flush()
            next_at += self.every
            self.stop.wait(max(0.0, next_at - time.monotonic()))
        self.file.close()


def load_phase(tide, t0, clients, busy_ms, pause_s, seconds):
    """`clients` loops of: a request of busy_ms of GPU work, then a pause drawn uniformly from
    0 to 2 x pause_s (so that the load has no period for the samples to beat with), for
    `seconds`. Counts the requests, and when the replica worked ([start, end] from t0)."""
    end = time.monotonic() + seconds
    counts = {"ok": 0, "failed": 0, "work": []}
    lock = threading.Lock()

    def loop(seed):
        rng = random.Random(seed)
        while time.monotonic() < end:
            status, replica = tide.complete(busy_ms, timeout=30)
            done = time.monotonic() - t0
            with lock:
                counts["ok" if status == 200 else "failed"] += 1
                if status == 200 and isinstance(replica, dict):
                    counts["work"].append((done - replica["elapsed_ms"] / 1000.0, done))
            if pause_s > 0:
                time.sleep(min(rng.uniform(0, 2 * pause_s), max(0.0, end - time.monotonic())))

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    if not threads:
        time.sleep(seconds)
    for th in threads:
        th.join()
    return counts


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def crossing(rows, start, key, level, rising):
    for r in rows:
        v = r.get(key)
        if r["t_s"] < start or v is None:
            continue
        if (v >= level) if rising else (v <= level):
            return r["t_s"]
    return None


def summarize(rows, phases, counts, settle_s):
    """Per phase (its first settle_s left out): means both ways, and the share of time the
    replica was at work by its answers; per change of load: the lag."""
    out = []
    for name, start, end in phases:
        rs = [r for r in rows if start + settle_s <= r["t_s"] < end]
        work = busy_share(counts[name]["work"], start + settle_s, end)
        au, su = mean(r.get("agent_util") for r in rs), mean(r.get("smi_util") for r in rs)
        am, sm = (mean(r.get("agent_mem_used_mib") for r in rs),
                  mean(r.get("smi_mem_used_mib") for r in rs))
        out.append({"phase": name, "start_s": round(start, 1), "seconds": round(end - start, 1),
                    "samples": len(rs), "work_share": work, "agent_util": au, "smi_util": su,
                    "agent_mem_used_mib": am, "smi_mem_used_mib": sm,
                    "mem_diff_mib": None if am is None or sm is None else am - sm,
                    "report_age_s_mean": mean(r.get("report_age_s") for r in rs),
                    "report_age_s_max": max((r["report_age_s"] for r in rs
                                             if r.get("report_age_s") is not None), default=None)})
    lags = []
    for prev, cur in zip(out, out[1:]):
        p, n = prev["smi_util"], cur["smi_util"]
        if p is None or n is None or abs(n - p) < 0.2:
            continue
        level, rising = (p + n) / 2, n > p
        ts = crossing(rows, cur["start_s"], "smi_util", level, rising)
        ta = crossing(rows, cur["start_s"], "agent_util", level, rising)
        lags.append({"change": f"{prev['phase']} -> {cur['phase']}", "level": round(level, 2),
                     "smi_after_s": None if ts is None else round(ts - cur["start_s"], 2),
                     "agent_after_s": None if ta is None else round(ta - cur["start_s"], 2),
                     "lag_s": None if ts is None or ta is None else round(ta - ts, 2)})
    return out, lags


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def print_tables(result):
    print("\n== GPU readings: tide agent (via GET /v1/endpoints) vs nvidia-smi, GPU 0 ==")
    print(f"{'phase':<8} {'s':>5} {'n':>4} {'at work':>7} {'agent util':>10} {'smi util':>9} "
          f"{'agent MiB':>10} {'smi MiB':>9} {'diff MiB':>9} {'age mean':>9} {'age max':>8}")
    for p in result["phases"]:
        print(f"{p['phase']:<8} {p['seconds']:>5.0f} {p['samples']:>4} {fmt(p['work_share']):>7} "
              f"{fmt(p['agent_util']):>10} {fmt(p['smi_util']):>9} "
              f"{fmt(p['agent_mem_used_mib'], '.0f'):>10} {fmt(p['smi_mem_used_mib'], '.0f'):>9} "
              f"{fmt(p['mem_diff_mib'], '.0f'):>9} {fmt(p['report_age_s_mean']):>9} "
              f"{fmt(p['report_age_s_max']):>8}")
    print("\n== report lag: first sample past the midpoint after a change of load ==")
    print(f"{'change':<16} {'level':>6} {'smi after s':>11} {'agent after s':>13} {'lag s':>6}")
    for lag in result["lags"]:
        print(f"{lag['change']:<16} {lag['level']:>6.2f} {fmt(lag['smi_after_s']):>11} "
              f"{fmt(lag['agent_after_s']):>13} {fmt(lag['lag_s']):>6}")
    pool = result["pool"]
    print("\n== GPU pool (gpus: [0], gpus_per_replica: 1) ==")
    for step in pool["steps"]:
        print(f"- {step}")


def run_phases(tide, sampler, t0, args):
    plan = [("idle", 0, 0, 0), ("half", 1, args.busy_ms, args.busy_ms / 1000.0),
            ("full", args.full_clients, args.busy_ms, 0), ("idle2", 0, 0, 0)]
    phases, counts = [], {}
    for name, clients, busy_ms, pause_s in plan:
        start = time.monotonic() - t0
        sampler.phase = name
        log(f"phase {name}: {clients} client(s), {busy_ms} ms of GPU work, {pause_s} s pause, "
            f"{args.phase_s} s")
        counts[name] = load_phase(tide, t0, clients, busy_ms, pause_s, args.phase_s)
        phases.append((name, start, time.monotonic() - t0))
    return phases, counts


def busy_share(work, start, end):
    """The share of [start, end) covered by the union of the work intervals."""
    covered, reach = 0.0, start
    for a, b in sorted(work):
        a, b = max(a, reach), min(b, end)
        if b > a:
            covered += b - a
            reach = b
    return covered / (end - start) if end > start else None


def replica_states(view):
    return [(r["id"], r["state"], r.get("error", "")) for r in view["groups"][0]["replicas"]]


def check_pool(tide, args, pool):
    steps = pool["steps"]
    status, first = tide.complete(50)
    steps.append(f"replica before: HTTP {status}, {json.dumps(first)}")
    pool["before"] = first
    steps.append(tide.put_group(min_replicas=2, max_replicas=2))
    def refused():
        v = tide.view()
        return v if v["groups"][0].get("failures", 0) >= 1 else None

    view = wait_for("the second replica's launch to fail", refused, 30)
    g = view["groups"][0]
    pool["refused"] = {"last_error": g.get("last_error"), "failures": g.get("failures"),
                       "replicas": replica_states(view),
                       "decisions": [d for d in view.get("decisions", [])
                                     if d.get("to") == 2][-1:]}
    steps.append(f"second replica refused: last_error = {g.get('last_error')!r}")
    steps.append(f"decision: {json.dumps(pool['refused']['decisions'])}")
    steps.append(f"replicas: {pool['refused']['replicas']}")
    ready = [r for r in g["replicas"] if r["state"] == "ready"]
    pool["ready_while_refused"] = len(ready)
    # To zero: the replica stops once idle for idle_timeout.
    steps.append(tide.put_group(min_replicas=0, max_replicas=1,
                                scaling={"idle_timeout": "2s"}))
    wait_for("every replica to stop",
             lambda: all(tide.view()["groups"][0][k] == 0
                         for k in ("ready", "starting", "draining")), 60)
    steps.append("all replicas stopped: GPU 0 back in the pool")
    steps.append(tide.put_group(min_replicas=1, max_replicas=2))
    t = time.monotonic()
    wait_for("the new replica to be ready",
             lambda: tide.view()["groups"][0]["ready"] >= 1, args.cold_start_s)
    status, after = tide.complete(50)
    steps.append(f"new replica ready after {time.monotonic() - t:.1f} s: HTTP {status}, "
                 f"{json.dumps(after)}")
    pool["after"] = after


def main():
    p = argparse.ArgumentParser(description="the driver of bench/gpu-check.sh")
    p.add_argument("--api", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--config", required=True, help="tide's config, in JSON; its first endpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--phase-s", type=float, default=25)
    p.add_argument("--settle-s", type=float, default=5)
    p.add_argument("--sample-s", type=float, default=0.5)
    p.add_argument("--busy-ms", type=int, default=250)
    p.add_argument("--full-clients", type=int, default=3)
    p.add_argument("--cold-start-s", type=float, default=150)
    p.add_argument("--stub", action="store_true", help="no GPU: no nvidia-smi readings")
    args = p.parse_args()
    with open(args.config) as f:
        tide = Tide(args.api, args.gateway, args.token, json.load(f)["endpoints"][0])
    wait_for("tide's API", lambda: tide.call("GET", f"{args.api}/healthz")[0] == 200, 20)
    t0 = time.monotonic()
    log("first request: a scale from zero, held while the replica starts")
    status, first = tide.complete(50, timeout=args.cold_start_s)
    if status != 200:
        raise SystemExit(f"gpu-check: the first request failed: HTTP {status} {first}")
    cold_start_s = time.monotonic() - t0
    log(f"first answer after {cold_start_s:.1f} s: {json.dumps(first)}")
    sampler = Sampler(tide, t0, args.sample_s, args.stub, f"{args.out}/samples.csv")
    sampler.start()
    phases, counts = run_phases(tide, sampler, t0, args)
    sampler.stop.set()
    sampler.join()
    status, metrics = tide.call("GET", f"{args.api}/metrics")
    with open(f"{args.out}/metrics.txt", "w") as f:
        f.write(metrics)
    gauges = [line for line in metrics.splitlines() if line.startswith("tide_replica_gpu_")]
    agent_status = None
    for r in tide.view()["groups"][0]["replicas"]:
        if r["state"] == "ready":
            status, text = tide.call("GET", f"http://{r['address']}/tide/status", auth=False)
            agent_status = json.loads(text) if status == 200 else text
            break
    summary, lags = summarize(sampler.rows, phases, counts, args.settle_s)
    for c in counts.values():
        c["work"] = len(c["work"])
    log("GPU pool check")
    pool = {"steps": []}
    error = None
    try:
        check_pool(tide, args, pool)
    except SystemExit as e:
        error = str(e)
        pool["steps"].append(f"FAILED: {error}")
    result = {"cold_start_s": cold_start_s, "first": first, "requests": counts,
              "phases": summary, "lags": lags, "pool": pool, "gpu_gauges": gauges,
              "agent_status": agent_status,
              "sample_s": args.sample_s, "settle_s": args.settle_s}
    with open(f"{args.out}/result.json", "w") as f:
        json.dump(result, f, indent=2)
    print_tables(result)
    print("\n/metrics GPU gauges at the end of the load phases:")
    for line in gauges:
        print(f"  {line}")
    gpus = agent_status.get("gpus") if isinstance(agent_status, dict) else agent_status
    print(f"the agent's GET /tide/status, gpus: {json.dumps(gpus)}")
    print(f"requests per phase: {json.dumps(counts)}; cold start {cold_start_s:.1f} s")
    if error:
        raise SystemExit(error)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)

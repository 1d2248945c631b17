#!/usr/bin/env python3
"""Chaos soak of `tide serve` (bench/chaos.sh is the entry point; python3 stdlib only).

A bounded load of streamed (SSE) and plain completions goes through the gateway to local
`tide demo-model` replicas on loopback while a chaos thread, one action at a time,
  - SIGKILLs a random replica's model process,
  - changes the group's min/max through the admin API (PUT /v1/endpoints/chat),
  - SIGKILLs `tide serve` itself and starts it again on the same state file (it adopts replicas),
and the offered load swings between few and many clients, so the group scales up and down.

Every request's outcome is counted. A request that got no complete answer is lost; its cause is
  tide-kill    tide was SIGKILLed while it was in flight (expected: held requests are not kept)
  replica-kill the replica named in its answer's Tide-Replica header was SIGKILLed while it
               streamed (the gateway cuts a stream it cannot finish honestly)
  other        anything else (a defect)
A 502 whose message names a replica the soak SIGKILLed before the answer is counted apart, not
as a failure (a request its replica dropped is answered 502 `replica_dropped`, not retried). A
connection refused while tide is down is not a request: the client retries it (counted apart).

At a quiet point at the start and at the end (no load, the group at min_replicas) it records
tide's open fds and RSS; after the final clean stop it looks in /proc for replica processes of
this run (the TIDE_REPLICAS marker of its state file) left behind (orphans), and at each quiet
point for live replica processes the state file does not record as live (duplicates).

Exits 1 when a request was lost to `other`, a replica was orphaned or duplicated, or tide's fds
grew by more than --max-fd-growth; 2 when the run itself could not be set up.
"""

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

TOKEN = "chaos-soak-api-token-0123456789"
LIVE_STATES = ("requested", "starting", "ready", "draining")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def proc_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return -1.0


def sockets(pid, replica_ports):
    """(CLOSE-WAIT sockets, established sockets to a live replica: the upstream pool) of pid."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")}
        close_wait = pooled = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for line in f.readlines()[1:]:
                    cols = line.split()
                    if cols[9] not in inodes:
                        continue
                    close_wait += cols[3] == "08"
                    pooled += cols[3] == "01" and int(cols[2].split(":")[1], 16) in replica_ports
        return close_wait, pooled
    except OSError:
        return -1, -1


def replica_ports(pids):
    ports = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                for var in f.read().split(b"\0"):
                    if var.startswith(b"TIDE_PORT="):
                        ports.add(int(var[len(b"TIDE_PORT="):]))
        except (OSError, ValueError):
            pass
    return ports


def replica_processes(marker):
    """{pid: replica name} of live (not zombie) processes carrying this run's marker."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if marker not in env:
            continue
        for var in env:
            if var.startswith(b"TIDE_REPLICA_NAME="):
                found[int(entry)] = var[len(b"TIDE_REPLICA_NAME="):].decode()
    return found


class Tide:
    """One `tide serve` at a time on a fixed config and state file; restarts append to its log."""

    def __init__(self, binary, config, log_path, gw, api):
        self.binary, self.config, self.log_path = binary, config, log_path
        self.gw, self.api = gw, api
        self.proc = None

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "serve", "--config", self.config],
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tide serve exited with {self.proc.returncode}")
            if self.api_call("GET", "/healthz", timeout=1)[0] == 200 and self.accepts():
                return
            time.sleep(0.05)
        raise RuntimeError("tide serve did not come up within %ds" % timeout)

    def accepts(self):
        try:
            socket.create_connection(("127.0.0.1", self.gw), timeout=1).close()
            return True
        except OSError:
            return False

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def api_call(self, method, path, body=None, timeout=10):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.api, timeout=timeout)
            headers = {"Authorization": "Bearer " + TOKEN}
            if body is not None:
                headers["Content-Type"] = "application/json"
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            c.close()
            return r.status, data
        except (OSError, http.client.HTTPException) as e:
            return 0, str(e).encode()

    def group(self):
        status, data = self.api_call("GET", "/v1/endpoints/chat")
        return json.loads(data)["groups"][0] if status == 200 else None


class Record:
    __slots__ = ("t0", "t1", "stream", "status", "error", "replica", "complete")


class Load:
    """Clients, each sending one request per connection (Connection: close) in a loop."""

    def __init__(self, port, clients, timeout, events):
        self.port, self.timeout, self.events = port, timeout, events
        self.active = 0
        self.stop = False
        self.records = []
        self.refused_while_down = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def client(self, index):
        rng = random.Random(index)
        while not self.stop:
            if index >= self.active:
                time.sleep(0.05)
                continue
            rec = self.one(rng.random() < 0.5)
            if rec is None:  # refused while tide is down: not sent, try again shortly
                time.sleep(0.1)
                continue
            with self.lock:
                self.records.append(rec)

    def one(self, stream):
        rec = Record()
        rec.t0, rec.stream, rec.status, rec.error, rec.replica, rec.complete = (
            time.monotonic(), stream, 0, "", "", False)
        body = json.dumps({"prompt": "chaos soak", "max_tokens": 8, "stream": stream})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            try:
                conn.connect()
            except ConnectionRefusedError:
                if self.events.tide_down_at(time.monotonic()):
                    with self.lock:
                        self.refused_while_down += 1
                    return None
                raise
            conn.request("POST", "/chat/v1/completions", body=body,
                         headers={"Content-Type": "application/json", "Connection": "close"})
            r = conn.getresponse()
            rec.status, rec.replica = r.status, r.getheader("Tide-Replica", "")
            data = r.read()
            if r.status != 200:
                rec.error = data[:160].decode(errors="replace")
            rec.complete = (b"data: [DONE]" in data) if (stream and r.status == 200) else True
            if not rec.complete:
                rec.error = "stream ended without [DONE]"
        except (OSError, http.client.HTTPException) as e:
            rec.error = type(e).__name__ + (": " + str(e) if str(e) else "")
        finally:
            conn.close()
            rec.t1 = time.monotonic()
        return rec


class Events:
    """What the chaos thread did and when (monotonic seconds), for the loss attribution."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tide_down = []  # [killed_at, up_again_at or None]
        self.replica_kills = []  # (time, replica name)
        self.puts = []  # (time, min, max, status)

    def tide_down_at(self, t):
        with self.lock:
            return any(a <= t and (b is None or t <= b) for a, b in self.tide_down)

    def cause(self, rec):
        with self.lock:
            # In flight at the kill, or connected in the moment between the kill and the kernel
            # closing tide's listening sockets.
            if any(rec.t0 <= (b or rec.t0) and a <= rec.t1 for a, b in self.tide_down):
                return "tide-kill"
            if rec.replica and any(rec.t0 <= t <= rec.t1 and name == rec.replica
                                   for t, name in self.replica_kills):
                return "replica-kill"
        return "other"

    def answered_for_killed_replica(self, rec):
        """A 502 naming a replica the soak killed before the answer came (with issue 15's
        fixes a request its replica dropped is answered 502 `replica_dropped`, not retried)."""
        with self.lock:
            return rec.status == 502 and any(
                t <= rec.t1 and re.search(re.escape(name) + r"(?!\d)", rec.error)
                for t, name in self.replica_kills)


def state_live(db_path):
    """Names of replicas the state file records as live."""
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        rows = db.execute("SELECT name, state FROM replicas").fetchall()
        db.close()
    except sqlite3.Error as e:
        print(f"chaos: cannot read the state file: {e}", file=sys.stderr)
        return None
    return sorted(name for name, state in rows if state in LIVE_STATES)


class Soak:
    def __init__(self, args, workdir):
        self.args = args
        self.dir = workdir
        self.rng = random.Random(args.seed)
        self.gw, self.api = free_port(), free_port()
        self.state = os.path.join(workdir, "state.db")
        self.marker = ("TIDE_REPLICAS=" + self.state + ".replicas").encode()
        self.endpoint = {
            "name": "chat",
            "queue": {"max_length": 1000, "timeout": "20s"},
            "groups": [{
                "name": "local", "min_replicas": 1, "max_replicas": 4, "concurrency": 4,
                "provisioner": {
                    "kind": "local",
                    "command": ["{tide}", "demo-model", "--port", "{port}", "--load-time",
                                "500ms", "--concurrency", "4", "--service", "fixed:300ms"],
                    "ready": {"path": "/health", "interval": "100ms"}},
                "scaling": {"policy": "queue", "queue_size": 2, "idle_timeout": "3s"}}]}
        config = {"server": {"listen": f"127.0.0.1:{self.gw}", "api": f"127.0.0.1:{self.api}",
                             "threads": 2, "api_token": TOKEN},
                  "state": {"path": self.state},
                  "endpoints": [self.endpoint]}
        self.config = os.path.join(workdir, "tide.yaml")
        with open(self.config, "w") as f:
            json.dump(config, f)  # JSON is YAML
        self.tide = Tide(args.tide, self.config, os.path.join(workdir, "tide.log"),
                         self.gw, self.api)
        self.events = Events()
        self.pids = []
        self.quiet = []  # (label, pid, fds, rss, replicas, duplicates)
        self.duplicates = 0

    def put_bounds(self, lo, hi):
        group = self.endpoint["groups"][0]
        group["min_replicas"], group["max_replicas"] = lo, hi
        status, data = self.tide.api_call("PUT", "/v1/endpoints/chat", json.dumps(self.endpoint))
        with self.events.lock:
            self.events.puts.append((time.monotonic(), lo, hi, status))
        if status != 200:
            print(f"chaos: PUT min {lo} max {hi} answered {status}: {data[:300]!r}",
                  file=sys.stderr)
        return status

    def wait_quiet(self, timeout=40):
        """Waits until the group is at min_replicas, all ready, nothing queued or in flight."""
        deadline = time.monotonic() + timeout
        lo = self.endpoint["groups"][0]["min_replicas"]
        while time.monotonic() < deadline:
            g = self.tide.group()
            if g and g["ready"] == lo and g["starting"] == 0 and g["draining"] == 0 and \
                    g["queued"] == 0 and g["in_flight"] == 0 and \
                    len(replica_processes(self.marker)) == lo:
                return True
            time.sleep(0.2)
        return False

    def quiet_point(self, label):
        quiet = self.wait_quiet()
        # Let connections closed just now leave the fd table (tide closes pooled connections a
        # replica closed within 1 s).
        time.sleep(2)
        pid = self.tide.proc.pid
        live = replica_processes(self.marker)
        close_wait, pooled = sockets(pid, replica_ports(live))
        procs = sorted(live.values())
        recorded = state_live(self.state)
        dup = 0 if recorded is None else len(procs) - len([p for p in procs if p in recorded]) + max(
            0, len(procs) - len(set(procs)))
        self.duplicates += dup
        self.quiet.append((label, pid, proc_fds(pid), close_wait, pooled, proc_rss_mb(pid),
                           len(procs), dup, quiet))

    def kill_replica(self):
        procs = replica_processes(self.marker)
        if not procs:
            return "kill replica: none running"
        pid = self.rng.choice(sorted(procs))
        with self.events.lock:
            self.events.replica_kills.append((time.monotonic(), procs[pid]))
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        return f"SIGKILL replica {procs[pid]} (pid {pid})"

    def restart_tide(self):
        old = self.tide.proc.pid
        with self.events.lock:
            self.events.tide_down.append([time.monotonic(), None])
        self.tide.kill()
        time.sleep(self.rng.uniform(0.2, 1.0))
        self.tide.start()
        self.pids.append(self.tide.proc.pid)
        with self.events.lock:
            self.events.tide_down[-1][1] = time.monotonic()
        return f"SIGKILL tide (pid {old}), restarted as pid {self.tide.proc.pid}"

    def chaos(self, until, no_tide_kill_after):
        """One action every 1.5-3.5 s until `until`; tide kills at most every 12 s."""
        last_tide_kill = time.monotonic()
        log = []
        while time.monotonic() < until:
            time.sleep(self.rng.uniform(1.5, 3.5))
            now = time.monotonic()
            roll = self.rng.random()
            if roll < 0.2 and now - last_tide_kill > 12 and now < no_tide_kill_after:
                line = self.restart_tide()
                last_tide_kill = now
            elif roll < 0.65:
                line = self.kill_replica()
            else:
                lo = self.rng.choice([1, 1, 2])
                hi = self.rng.choice([lo, 2, 3, 4, 4])
                line = f"PUT min {lo} max {max(lo, hi)}: {self.put_bounds(lo, max(lo, hi))}"
            log.append(f"{now - self.t_start:7.1f}s {line}")
            if self.args.verbose:
                print(log[-1], flush=True)
        return log

    def run(self):
        a = self.args
        self.t_start = time.monotonic()
        self.tide.start()
        self.pids.append(self.tide.proc.pid)
        load = Load(self.gw, a.clients, a.request_timeout, self.events)
        load.active = 2  # warm-up: pools, threads and a few completions
        time.sleep(3)
        load.active = 0
        self.quiet_point("start")
        chaos_end = self.t_start + a.duration - 20
        swings = threading.Thread(target=self.swing, args=(load, chaos_end), daemon=True)
        swings.start()
        log = self.chaos(chaos_end, self.t_start + a.duration * 0.75)
        swings.join()
        load.active = 0
        self.put_bounds(1, 1)  # back to one replica for the closing quiet point
        self.quiet_point("end")
        load.stop = True
        for t in load.threads:
            t.join(a.request_timeout + 5)
        code = self.tide.stop()
        time.sleep(1)  # replicas stopped by tide are gone; give the kernel a moment to reap
        orphans = replica_processes(self.marker)
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        return load, log, code, orphans

    def swing(self, load, until):
        """The offered load: few clients, then many, alternately, every 6-10 s."""
        high = False
        while time.monotonic() < until:
            load.active = self.args.clients if high else 2
            high = not high
            time.sleep(min(self.rng.uniform(6, 10), max(0, until - time.monotonic())))


def report(soak, load, log, code, orphans, args):
    recs = load.records
    statuses, lost = {}, {"tide-kill": 0, "replica-kill": 0, "other": 0}
    other_errors, error_answers = {}, {}
    killed_502 = 0
    for r in recs:
        if r.status and r.complete and soak.events.answered_for_killed_replica(r):
            killed_502 += 1
            continue
        if r.status and r.complete:
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status != 200:
                answers = f"{r.status} {r.error}"
                error_answers[answers] = error_answers.get(answers, 0) + 1
            continue
        cause = soak.events.cause(r)
        lost[cause] += 1
        if cause == "other":
            key = f"{'stream' if r.stream else 'plain'} {r.status or '-'} {r.error[:80]}"
            other_errors.setdefault(key, []).append(
                f"{r.t0 - soak.t_start:.1f}-{r.t1 - soak.t_start:.1f}s {r.replica}".strip())
    ok = statuses.get(200, 0)
    print(f"\nchaos soak: {args.duration:.0f} s, up to {args.clients} clients, seed {args.seed}; "
          f"{len(soak.events.replica_kills)} replica SIGKILLs, "
          f"{len(soak.events.tide_down)} tide SIGKILLs, {len(soak.events.puts)} PUTs of min/max")
    rows = [("requests", len(recs)),
            ("  streamed / plain", f"{sum(r.stream for r in recs)} / "
                                   f"{sum(not r.stream for r in recs)}")]
    rows += [(f"  answered {s}", n) for s, n in sorted(statuses.items())]
    rows += [("  answered 502 naming a SIGKILLed replica", killed_502),
             ("  lost: tide SIGKILL in flight", lost["tide-kill"]),
             ("  lost: replica SIGKILL mid-stream", lost["replica-kill"]),
             ("  lost: other", lost["other"]),
             ("refused while tide was down (retried)", load.refused_while_down),
             ("replicas orphaned after the clean stop", len(orphans)),
             ("replicas duplicated (quiet points)", soak.duplicates),
             ("tide exit status of the clean stop", code)]
    for label, value in rows:
        print(f"{label:<42} {value:>10}")
    print(f"\n{'quiet point':<12} {'tide pid':>9} {'fds':>5} {'pooled':>7} {'CLOSE-WAIT':>11} "
          f"{'RSS MB':>7} {'replicas':>9} {'dup':>4}")
    for label, pid, fds, cw, pooled, rss, n, dup, quiet in soak.quiet:
        print(f"{label:<12} {pid:>9} {fds:>5} {pooled:>7} {cw:>11} {rss:>7.1f} {n:>9} {dup:>4}"
              f"{'' if quiet else '  (not quiet within 40 s)'}")
    for answer, n in sorted(error_answers.items(), key=lambda kv: -kv[1]):
        print(f"  answered: {n} x {answer}")
    for key, when in sorted(other_errors.items(), key=lambda kv: -len(kv[1])):
        print(f"  other: {len(when)} x {key} (at {', '.join(when[:5])})")
    if args.verbose:
        print("\n".join(["", "chaos actions:"] + log))
    failures = []
    if lost["other"]:
        failures.append(f"{lost['other']} requests lost outside a tide-kill window")
    non_ok = sum(n for s, n in statuses.items() if s != 200)
    if non_ok and not args.allow_errors:
        failures.append(f"{non_ok} requests answered with an error status")
    if orphans:
        failures.append(f"orphaned replicas: {sorted(orphans.values())}")
    if soak.duplicates:
        failures.append(f"{soak.duplicates} duplicated replicas")
    # Idle pooled connections to the replica still running are kept on purpose (up to its
    # concurrency per gateway thread); anything else that grows is a leak.
    growth = (soak.quiet[-1][2] - soak.quiet[-1][4]) - (soak.quiet[0][2] - soak.quiet[0][4])
    if growth > args.max_fd_growth:
        failures.append(f"tide's fds other than pooled upstream connections grew by {growth} "
                        f"(> {args.max_fd_growth})")
    if not all(q[-1] for q in soak.quiet):
        failures.append("the group did not settle at a quiet point")
    if ok == 0:
        failures.append("no request succeeded")
    for f in failures:
        print("chaos: FAIL: " + f)
    return 1 if failures else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("duration", nargs="?", type=float, default=300,
                   help="seconds of chaos and load (>= 45; default 300)")
    p.add_argument("--tide", default=os.environ.get("TIDE", "build/bin/tide"))
    p.add_argument("--clients", type=int, default=10, help="clients at peak load")
    p.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "1")))
    p.add_argument("--request-timeout", type=float, default=45)
    p.add_argument("--max-fd-growth", type=int, default=4,
                   help="fds tide may gain, not counting its pooled upstream connections")
    p.add_argument("--allow-errors", action="store_true",
                   help="do not fail on requests answered with an error status")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("-v", "--verbose", action="store_true", help="print each chaos action")
    args = p.parse_args()
    if args.duration < 45 or args.duration > 3600:
        p.error("duration: from 45 to 3600 seconds")
    if not os.access(args.tide, os.X_OK):
        print(f"chaos: {args.tide} is not built", file=sys.stderr)
        return 2
    args.tide = os.path.abspath(args.tide)
    workdir = tempfile.mkdtemp(prefix="tide-chaos-")
    soak = Soak(args, workdir)
    try:
        load, log, code, orphans = soak.run()
    except Exception as e:  # the run could not go on: leave nothing running behind
        print(f"chaos: {type(e).__name__}: {e}", file=sys.stderr)
        subprocess.run(["tail", "-30", soak.tide.log_path])
        if soak.tide.proc and soak.tide.proc.poll() is None:
            soak.tide.kill()
        for pid in replica_processes(soak.marker):
            os.kill(pid, signal.SIGKILL)
        return 2
    rc = report(soak, load, log, code, orphans, args)
    if rc or args.keep:
        print(f"chaos: tide's log: {soak.tide.log_path}")
    else:
        subprocess.run(["rm", "-rf", workdir])
    return rc


if __name__ == "__main__":
    sys.exit(main())

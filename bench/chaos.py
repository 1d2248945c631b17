#!/usr/bin/env python3
"""Chaos soak of `tide serve` (bench/chaos.sh is the entry point; python3 stdlib only).

A bounded load of streamed (SSE) and plain completions goes through the gateway to local
`tide demo-model` replicas on loopback while a chaos thread, one action at a time,
  - SIGKILLs a random replica's model process,
  - changes the group's min/max through the admin API (PUT /v1/endpoints/chat),
  - SIGKILLs `tide serve` itself and starts it again on the same state file (it adopts replicas),
and the offered load swings between few and many clients, so the group scales up and down.

Every request's outcome is counted, and every one that did not end in a complete 200 is
attributed to its cause:
  tide-kill    tide was SIGKILLed while it was in flight, or it connected in the moment
               between the kill and the kernel closing tide's sockets: no answer (expected:
               held requests are not kept across a crash)
  replica-kill a replica the soak SIGKILLed had it: a stream cut midway (the replica named in
               the answer's Tide-Replica header), or a 502 `replica_dropped` naming the replica
               (it took the request and died), or a 502 `replica_unreachable` naming its
               address (the request was given to it after it died, before tide saw it die);
               the kill fell while the request was in flight (or at most --kill-grace seconds
               before it began, for a replica still in dispatch)
  lost         anything else: no answer or an error answer that no kill explains (a defect)
A connection refused while tide is down is not a request: the client retries it (counted apart).

At a quiet point at the start and at the end (no load, the group at min_replicas) it records
tide's open fds and RSS; after the final clean stop it looks in /proc for replica processes of
this run (the TIDE_REPLICAS marker of its state file) left behind (orphans), and at each quiet
point for live replica processes the state file does not record as live (duplicates).

Exits 1 when a request was lost, a replica was orphaned or duplicated, or tide's fds
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


def fd_target(pid, fd):
    """What fd of pid points at; "" for an fd closed since the directory was listed (tide closes
    connections all the time, so a readlink that races a close is not an error)."""
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except FileNotFoundError:
        return ""


def sockets(pid, replica_ports):
    """(CLOSE-WAIT sockets, established sockets to a live replica: the upstream pool) of pid."""
    try:
        inodes = {fd_target(pid, fd)[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")}
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
    __slots__ = ("t0", "t1", "stream", "status", "kind", "error", "replica", "complete")


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
        rec.t0, rec.stream, rec.status, rec.kind, rec.error, rec.replica, rec.complete = (
            time.monotonic(), stream, 0, "", "", "", False)
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
                rec.kind, rec.error = error_of(data)
            rec.complete = (b"data: [DONE]" in data) if (stream and r.status == 200) else True
            if not rec.complete:
                rec.error = "stream ended without [DONE]"
        except (OSError, http.client.HTTPException) as e:
            rec.error = type(e).__name__ + (": " + str(e) if str(e) else "")
        finally:
            conn.close()
            rec.t1 = time.monotonic()
        return rec


class Kill:
    """A replica the soak SIGKILLed: when, its name (endpoint/group/id) and its port."""
    __slots__ = ("t", "name", "port")

    def __init__(self, t, name, port):
        self.t, self.name, self.port = t, name, port

    def named_in(self, kind, error):
        """Whether a 502's message names this replica: `replica_dropped` by group/id,
        `replica_unreachable` by the address it could not connect to."""
        if kind == "replica_dropped":
            group_id = self.name.split("/", 1)[-1]
            return re.search(r"replica " + re.escape(group_id) + r"(?!\d)", error) is not None
        if kind == "replica_unreachable":
            return re.search(r"127\.0\.0\.1:" + str(self.port) + r"(?!\d)", error) is not None
        return False


def error_of(body):
    """(type, message) of tide's JSON error body, or ("", the start of the body)."""
    try:
        e = json.loads(body)["error"]
        return str(e["type"]), str(e["message"])
    except (ValueError, KeyError, TypeError):
        return "", body[:300].decode(errors="replace")


# The 502s of a request whose replica died, and the cause each is counted under.
REPLICA_502 = {"replica_dropped": "replica-kill-dropped",
               "replica_unreachable": "replica-kill-unreachable"}


class Events:
    """What the chaos thread did and when (monotonic seconds), for the loss attribution."""

    def __init__(self, kill_grace):
        self.lock = threading.Lock()
        self.kill_grace = kill_grace
        self.tide_down = []  # [killed_at, up_again_at or None]
        self.replica_kills = []  # Kill
        self.puts = []  # (time, min, max, status)
        # The most seconds by which a kill that explains a 502 came before the request began.
        self.max_kill_lead = 0.0

    def tide_down_at(self, t):
        with self.lock:
            return any(a <= t and (b is None or t <= b) for a, b in self.tide_down)

    def cause(self, rec):
        """Why `rec` did not end in a complete 200: tide-kill, the replica kill that explains
        it, or lost. Only a request that got no complete answer can be tide's kill's."""
        with self.lock:
            if not (rec.status and rec.complete):
                # In flight at the kill, or connected in the moment between the kill and the
                # kernel closing tide's listening sockets.
                if any(rec.t0 <= (b or rec.t0) and a <= rec.t1 for a, b in self.tide_down):
                    return "tide-kill"
                if rec.status == 200 and any(rec.t0 <= k.t <= rec.t1 and k.name == rec.replica
                                             for k in self.replica_kills):
                    return "replica-kill-stream"
            elif rec.status == 502 and rec.kind in REPLICA_502:
                for k in self.replica_kills:
                    at_that_moment = rec.t0 - self.kill_grace <= k.t <= rec.t1
                    if at_that_moment and k.named_in(rec.kind, rec.error):
                        self.max_kill_lead = max(self.max_kill_lead, rec.t0 - k.t)
                        return REPLICA_502[rec.kind]
        return "lost"


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
        self.events = Events(args.kill_grace)
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
        pid = self.tide.proc.pid
        live = replica_processes(self.marker)
        # Connections closed just now leave the fd table: tide closes pooled connections a
        # replica closed within 1 s (what is still in CLOSE-WAIT after 5 s is counted).
        deadline = time.monotonic() + 5
        close_wait, pooled = sockets(pid, replica_ports(live))
        while close_wait != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
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
        port = next(iter(replica_ports([pid])), 0)
        with self.events.lock:
            self.events.replica_kills.append(Kill(time.monotonic(), procs[pid], port))
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
        # Replicas tide stopped are gone once the kernel has reaped them (within 5 s).
        deadline = time.monotonic() + 5
        orphans = replica_processes(self.marker)
        while orphans and time.monotonic() < deadline:
            time.sleep(0.1)
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


CAUSES = (("replica-kill-dropped", "502 replica_dropped: its replica SIGKILLed in flight"),
          ("replica-kill-unreachable", "502 replica_unreachable: its replica SIGKILLed"),
          ("replica-kill-stream", "stream cut: its replica SIGKILLed mid-stream"),
          ("tide-kill", "no answer: tide SIGKILLed in flight"),
          ("lost", "lost: not explained by a kill"))


def tally(soak, load):
    """Requests by outcome: {cause: n}, answers by status, and the lost ones by what they got."""
    by_cause = {cause: 0 for cause, _ in CAUSES}
    statuses, lost = {}, {}
    for r in load.records:
        if r.status:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        if r.status == 200 and r.complete:
            continue
        cause = soak.events.cause(r)
        by_cause[cause] += 1
        if cause == "lost":
            key = f"{'stream' if r.stream else 'plain'} {r.status or '-'} {r.kind} {r.error[:100]}"
            lost.setdefault(key, []).append(
                f"{r.t0 - soak.t_start:.1f}-{r.t1 - soak.t_start:.1f}s {r.replica}".strip())
    return by_cause, statuses, lost


def print_table(soak, load, by_cause, statuses, code, orphans, args):
    recs, ev = load.records, soak.events
    print(f"\nchaos soak: {args.duration:.0f} s, up to {args.clients} clients, seed {args.seed}; "
          f"{len(ev.replica_kills)} replica SIGKILLs, {len(ev.tide_down)} tide SIGKILLs, "
          f"{len(ev.puts)} PUTs of min/max")
    rows = [("requests", len(recs)),
            ("  streamed / plain", f"{sum(r.stream for r in recs)} / "
                                   f"{sum(not r.stream for r in recs)}"),
            ("  complete 200", sum(r.status == 200 and r.complete for r in recs))]
    rows += [(f"  answered {s}", n) for s, n in sorted(statuses.items()) if s != 200]
    rows += [(f"  {label}", by_cause[cause]) for cause, label in CAUSES]
    rows += [("refused while tide was down (retried)", load.refused_while_down),
             ("most s from a kill to a 502 it explains", f"{ev.max_kill_lead:.2f}"),
             ("replicas orphaned after the clean stop", len(orphans)),
             ("replicas duplicated (quiet points)", soak.duplicates),
             ("tide exit status of the clean stop", code)]
    for label, value in rows:
        print(f"{label:<56} {value:>10}")
    print(f"\n{'quiet point':<12} {'tide pid':>9} {'fds':>5} {'pooled':>7} {'CLOSE-WAIT':>11} "
          f"{'RSS MB':>7} {'replicas':>9} {'dup':>4}")
    for label, pid, fds, cw, pooled, rss, n, dup, quiet in soak.quiet:
        print(f"{label:<12} {pid:>9} {fds:>5} {pooled:>7} {cw:>11} {rss:>7.1f} {n:>9} {dup:>4}"
              f"{'' if quiet else '  (not quiet within 40 s)'}")


def failures_of(soak, by_cause, orphans, args):
    failures = []
    if by_cause["lost"]:
        failures.append(f"{by_cause['lost']} requests lost (no kill explains them)")
    if orphans:
        failures.append(f"orphaned replicas: {sorted(orphans.values())}")
    if soak.duplicates:
        failures.append(f"{soak.duplicates} duplicated replicas")
    # Idle pooled connections to the replica still running are kept on purpose (up to its
    # concurrency per gateway thread); anything else that grows is a leak.
    growth = (soak.quiet[-1][2] - soak.quiet[-1][4]) - (soak.quiet[0][2] - soak.quiet[0][4])
    if any(q[2] < 0 or q[4] < 0 for q in soak.quiet):
        failures.append("tide's fds could not be read at a quiet point")
    elif growth > args.max_fd_growth:
        failures.append(f"tide's fds other than pooled upstream connections grew by {growth} "
                        f"(> {args.max_fd_growth})")
    if not all(q[-1] for q in soak.quiet):
        failures.append("the group did not settle at a quiet point")
    return failures


def report(soak, load, log, code, orphans, args):
    by_cause, statuses, lost = tally(soak, load)
    print_table(soak, load, by_cause, statuses, code, orphans, args)
    for key, when in sorted(lost.items(), key=lambda kv: -len(kv[1])):
        print(f"  lost: {len(when)} x {key} (at {', '.join(when[:5])})")
    if args.verbose:
        print("\n".join(["", "chaos actions:"] + log))
    failures = failures_of(soak, by_cause, orphans, args)
    if not any(r.status == 200 and r.complete for r in load.records):
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
    p.add_argument("--kill-grace", type=float, default=2.0,
                   help="seconds a killed replica may stay in dispatch: a 502 naming it for a "
                        "request begun this long after the kill is still explained by it")
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

#!/usr/bin/env python3
"""Where a run's late requests are: timeline.csv (tide sim --out, bench_policy --out) in, one
report per endpoint and group out.

Late ticks (the `late` column: requests that started beyond the SLO or timed out) less than
`--gap` seconds apart form an episode. For each episode: its start, length, late requests, the
replicas ready when it began and the most the group reached (ready or starting) during it, and
when the group last had that many ready before. That last figure says what kind of miss it is:
a fleet the group had minutes ago (a release came back late), or one it had not had for hours
(a burst beyond anything recent, which only capacity kept warm all along would have met).

  bench/policy/late_episodes.py OUT/function-burst-3/timeline.csv --warmup 600
"""
import argparse
import bisect
import collections
import csv
import sys

SINCE = [("5m", 300), ("30m", 1800), ("2h", 7200), ("24h", 86400)]


def episodes(rows, gap):
    out = []
    for i, r in enumerate(rows):
        if r["late"] == 0:
            continue
        if out and r["t"] - rows[out[-1]["last"]]["t"] <= gap:
            out[-1]["last"] = i
            out[-1]["late"] += r["late"]
        else:
            out.append({"first": i, "last": i, "late": r["late"]})
    return out


def last_held(rows, times, e):
    """How long before the episode the group last had as many replicas ready as it reached."""
    i = e["first"]
    reached = max(r["ready"] + r["starting"] for r in rows[i : e["last"] + 1])
    for label, seconds in SINCE:
        j = bisect.bisect_left(times, times[i] - seconds)
        if j < i and max(r["ready"] for r in rows[j:i]) >= reached:
            return label, reached
    return "never", reached


def report(name, rows, warmup, gap, top):
    times = [r["t"] for r in rows]
    scored = [dict(r, late=r["late"] if r["t"] >= warmup else 0) for r in rows]
    eps = episodes(scored, gap)
    total = sum(e["late"] for e in eps)
    print(f"== {name}: {total} late requests after the warm-up, in {len(eps)} episodes")
    if total == 0:
        return
    starting = sum(r["late"] for r in scored if r["starting"] > 0)
    print(f"while a launch was starting: {starting / total:.0%}")
    shares = collections.Counter()
    for e in eps:
        e["held"], e["reached"] = last_held(rows, times, e)
        shares[e["held"]] += e["late"]
    labels = [label for label, _ in SINCE] + ["never"]
    print("the fleet reached was last ready within: " +
          ", ".join(f"{label} {shares[label] / total:.0%}" for label in labels))
    print(f"{'start_s':>10} {'length_s':>8} {'late':>7} {'ready':>5} {'reached':>7}  last ready")
    for e in sorted(eps, key=lambda e: -e["late"])[:top]:
        first, last = rows[e["first"]], rows[e["last"]]
        print(f"{first['t']:10.0f} {last['t'] - first['t']:8.0f} {e['late']:7d} "
              f"{first['ready']:5d} {e['reached']:7d}  {e['held']}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("timeline")
    p.add_argument("--warmup", type=float, default=0, help="seconds left out of the figures")
    p.add_argument("--gap", type=float, default=120, help="seconds between episodes")
    p.add_argument("--top", type=int, default=5, help="largest episodes listed")
    a = p.parse_args()
    groups = collections.defaultdict(list)
    try:
        f = open(a.timeline, newline="")
    except OSError as e:
        sys.exit(f"{a.timeline}: {e.strerror}")
    with f:
        reader = csv.DictReader(f)
        if "late" not in (reader.fieldnames or []):
            sys.exit(f"{a.timeline}: no `late` column (written by tide sim --out since 7ffb909)")
        for line, r in enumerate(reader, start=2):
            try:
                groups[f"{r['endpoint']}/{r['group']}"].append(
                    {"t": float(r["time_s"]), "late": int(r["late"]), "ready": int(r["ready"]),
                     "starting": int(r["starting"])})
            except (KeyError, TypeError, ValueError) as e:
                sys.exit(f"{a.timeline}:{line}: {e}")
    for name, rows in groups.items():
        report(name, rows, a.warmup, a.gap, a.top)


if __name__ == "__main__":
    main()

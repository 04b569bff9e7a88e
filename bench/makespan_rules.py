#!/usr/bin/env python3
"""Which ranking of ready steps gives the best makespan when durations are unknown?

Usage: makespan_rules.py [STEPS] [CONCURRENCY] [SEEDS]     (defaults: 40 4 500)

A model of pbibatch's eager list scheduler (a step starts as soon as its dependencies have
ended and a slot is free; ready steps are ranked by a rule, then by job order) on the same
random DAGs as `cargo bench --bench engine_bench -- makespan` (each step depends on 0-3 of the
10 steps before it, every step takes 0.2-1.5 s; Python's RNG, so not the same seeds). Each rule
is divided by the lower bound max(critical path, total work / concurrency).

Rules that only see the DAG's shape (a first run, no history):
  remaining     steps on the longest remaining path (what pbibatch does without history)
  +descendants  remaining, ties broken by the number of steps downstream
  +out_degree   remaining, ties broken by the number of direct dependents
  descendants   steps downstream only
  job_order     first come, first served
Rules that know the durations:
  durations     longest remaining path in seconds (pbibatch with history from the state store)
  best_random   the best of 2,000 random rankings, for the 5 worst seeds of `durations` only
                (shows how far list scheduling with the best ranking gets)
Does searching for that better ranking pay off on the next run? Tonight's durations are last
night's times a factor drawn from 0.8-1.2:
  noisy.history the longest remaining path in last night's seconds
  noisy.search  the best of 128 rankings (last night's ranks jittered by up to 50 %), chosen by
                simulating last night, then run with tonight's durations

Prints key=value lines. Plain Python 3, no packages.
"""
import heapq
import random
import statistics
import sys


def random_dag(n, rng):
    deps, durations = [], []
    for i in range(n):
        window = min(i, 10)
        k = rng.randint(0, min(window, 3))
        d = set()
        while len(d) < k:
            d.add(i - 1 - rng.randrange(window))
        deps.append(sorted(d))
    durations = [rng.randint(200, 1500) / 1000 for _ in range(n)]
    return deps, durations


def children_of(deps):
    children = [[] for _ in deps]
    for i, ds in enumerate(deps):
        for p in ds:
            children[p].append(i)
    return children


def schedule(deps, children, durations, rank, slots):
    """Makespan of eager list scheduling: higher rank first, then job order."""
    waiting = [len(d) for d in deps]
    ready = [(-rank[i], i) for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    running, now, done = [], 0.0, 0
    while done < len(deps):
        while ready and len(running) < slots:
            _, i = heapq.heappop(ready)
            heapq.heappush(running, (now + durations[i], i))
        now, i = heapq.heappop(running)
        done += 1
        for c in children[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (-rank[c], c))
    return now


def lower_bound(deps, durations, slots):
    finish = []
    for i, ds in enumerate(deps):
        finish.append(max((finish[p] for p in ds), default=0.0) + durations[i])
    return max(max(finish), sum(durations) / slots)


def rules(deps, children, durations):
    n = len(deps)
    remaining, downstream, by_time = [0] * n, [set() for _ in range(n)], [0.0] * n
    for i in reversed(range(n)):
        remaining[i] = 1 + max((remaining[c] for c in children[i]), default=0)
        by_time[i] = durations[i] + max((by_time[c] for c in children[i]), default=0.0)
        for c in children[i]:
            downstream[i] |= downstream[c]
            downstream[i].add(c)
    big = 10 * n + 10
    return {
        "remaining": remaining,
        "+descendants": [remaining[i] * big + len(downstream[i]) for i in range(n)],
        "+out_degree": [remaining[i] * big + len(children[i]) for i in range(n)],
        "descendants": [len(downstream[i]) for i in range(n)],
        "job_order": [0] * n,
        "durations": by_time,
    }


def main():
    args = [int(a) for a in sys.argv[1:]]
    n, slots, seeds = (args + [40, 4, 500][len(args):])[:3]
    ratios, worst = {}, []
    for seed in range(seeds):
        deps, durations = random_dag(n, random.Random(seed))
        children = children_of(deps)
        lower = lower_bound(deps, durations, slots)
        for name, rank in rules(deps, children, durations).items():
            r = schedule(deps, children, durations, rank, slots) / lower
            ratios.setdefault(name, []).append(r)
            if name == "durations":
                worst.append((r, seed))
    prefix = f"rules.{n}.c{slots}"
    for name, rs in ratios.items():
        rs.sort()
        print(
            f"{prefix}.{name} seeds={seeds} mean={statistics.mean(rs):.3f} "
            f"p95={rs[int(0.95 * (len(rs) - 1))]:.3f} max={rs[-1]:.3f}"
        )
    pick = random.Random(1)
    for r, seed in sorted(worst, reverse=True)[:5]:
        deps, durations = random_dag(n, random.Random(seed))
        children = children_of(deps)
        lower = lower_bound(deps, durations, slots)
        best = min(
            schedule(deps, children, durations, [pick.random() for _ in range(n)], slots)
            for _ in range(2000)
        )
        print(f"{prefix}.seed{seed} durations={r:.3f} best_random={best / lower:.3f}")
    noisy = {"noisy.history": [], "noisy.search": []}
    for seed in range(seeds):
        deps, last_night = random_dag(n, random.Random(seed))
        children = children_of(deps)
        jitter = random.Random(seed + 1_000_000)
        tonight = [d * jitter.uniform(0.8, 1.2) for d in last_night]
        lower = lower_bound(deps, tonight, slots)
        base = rules(deps, children, last_night)["durations"]
        best = (schedule(deps, children, last_night, base, slots), base)
        for _ in range(128):
            rank = [b * (1 + jitter.uniform(-0.5, 0.5)) for b in base]
            m = schedule(deps, children, last_night, rank, slots)
            if m < best[0]:
                best = (m, rank)
        noisy["noisy.history"].append(schedule(deps, children, tonight, base, slots) / lower)
        noisy["noisy.search"].append(schedule(deps, children, tonight, best[1], slots) / lower)
    for name, rs in noisy.items():
        rs.sort()
        print(
            f"{prefix}.{name} seeds={seeds} mean={statistics.mean(rs):.3f} "
            f"p95={rs[int(0.95 * (len(rs) - 1))]:.3f} max={rs[-1]:.3f}"
        )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes a pbibatch job with N steps (a layered DAG of every step type) to stdout.

Usage: gen_job.py N [--datasets] > job.yaml

--datasets: every step is a standard dataset refresh (no pools, no exports written to disk):
the DAG bench/run.sh runs under `pbibatch run --simulate` to measure scheduler overhead.

Each layer of 50 steps depends on two steps of the layer before, so the file exercises
depends_on checks, cycle detection, `when` expressions, interpolation and every step type.
Independent of pbibatch itself (plain Python 3, no packages).
"""
import sys

def main() -> None:
    n = int(sys.argv[1])
    datasets_only = "--datasets" in sys.argv[2:]
    out = [
        "# yaml-language-server: $schema=../schemas/pbibatch-job.schema.json",
        "version: 1",
        f"name: bench_{n}",
        "vars: { ws: \"Bench Workspace\", export: \"yes\" }",
        "workspaces: { bench: \"Bench Workspace\" }",
        "defaults: { timeout: 1h, retries: 1, poll_interval: 10s }",
        "concurrency: 16",
        "pools: { capacity: 4, exports: 2 }",
        "steps:",
    ]
    if datasets_only:
        out.remove("pools: { capacity: 4, exports: 2 }")
    width = 50
    for i in range(n):
        deps = []
        if i >= width:
            layer_start = (i // width - 1) * width
            deps = [f"s{layer_start + (i * 7) % width}", f"s{layer_start + (i * 13 + 1) % width}"]
            deps = sorted(set(deps))
        dep_line = f"    depends_on: [{', '.join(deps)}]\n" if deps else ""
        kind = 5 if datasets_only else i % 5
        if kind == 0:
            body = (
                "    type: dataset\n    workspace: bench\n"
                f"    dataset: Model {i}\n    pool: capacity\n    tags: [models]\n"
            )
        elif kind == 1:
            body = (
                "    type: dataflow\n    workspace: ${vars.ws}\n"
                f"    dataflow: Flow {i}\n    notify: mail_on_failure\n"
            )
        elif kind == 2:
            body = (
                "    type: report\n    workspace: bench\n"
                f"    report: Report {i}\n"
                f"    export: {{ format: PDF, path: out/r{i}.pdf }}\n    pool: exports\n"
                "    when: \"vars.export == 'yes'\"\n"
            )
        elif kind == 5:
            body = f"    type: dataset\n    workspace: bench\n    dataset: Model {i}\n"
        elif kind == 3:
            body = (
                "    type: sas_flow\n    url: ${env.BENCH_FLOW_URL}\n"
                f"    body: {{ step: \"s{i}\", ws: \"${{vars.ws}}\" }}\n"
            )
        else:
            body = (
                "    type: webhook\n    url: https://hooks.example.com/bench\n"
                "    trigger: all_done\n"
                "    body: { text: \"${run.job} ${run.status}\" }\n"
            )
        out.append(f"  s{i}:\n{body}{dep_line}".rstrip("\n"))
    sys.stdout.write("\n".join(out) + "\n")

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write deploy/symbol-order.txt: the functions a running bot executes, hottest first.

    python3 deploy/order-symbols.py CALLGRIND_OUT... > deploy/symbol-order.txt

The inputs are `valgrind --tool=callgrind --demangle=no` profiles of the *deploy* build
(`cargo build --profile deploy`) doing what a deployment does: the Matrix bench
(`benches/matrix/bench.py --wrap ...`) and the Matrix + Discord handoff test
(`PEERLINE_TEST_BIN=<a script that execs the binary under callgrind>`). BENCHMARKS.md
gives the commands.

Why: a deployment's resident memory is mostly the binary's code, and the kernel maps
code in large pieces around every page the bot touches. Left to the compiler's order,
the few thousand functions a bot runs are spread over all 36 MB of `.text`, so most of
it ends up mapped. The linker (lld, rustc's default on x86_64 Linux) places the
functions named in this file first, in this order, so the code a bot runs sits
together. build.rs hands the file to the linker for the deploy profile only.

A name the linker does not find is skipped (a dependency changed, a change to
peerline renamed a generic instance, a function was inlined away): a stale file costs
locality, never correctness, but each missing function pulls a large piece of cold code
into memory, so remake the file before building a release. The header records the
Cargo.lock it was made from; build.rs warns when that changes.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def self_costs(path, costs):
    """Add each function's own instruction count (Ir) in one callgrind profile to
    costs, for the functions of the profiled executable only (not libc, not ld.so)."""
    names = {}  # compressed "(id)" -> name, per kind (fn and ob share the syntax)
    obs = {}
    ob = fn = None
    main_ob = None  # the executable, from the "cmd:" header
    after_calls = False
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            head = line[0]
            if head.isdigit() or head in "+-*":
                if after_calls:
                    after_calls = False  # the inclusive cost of a call: not this function's own
                    continue
                if fn is not None and ob == main_ob:
                    parts = line.split()
                    if len(parts) >= 2:
                        costs[fn] = costs.get(fn, 0) + int(parts[1])
                continue
            if line.startswith("cmd:"):
                main_ob = os.path.realpath(line[4:].split()[0])
                continue
            key, _, value = line.partition("=")
            if key in ("ob", "fn"):
                table = obs if key == "ob" else names
                m = re.match(r"\((\d+)\)(?: (.*))?$", value)
                if m:
                    if m.group(2) is not None:
                        table[m.group(1)] = m.group(2)
                    value = table.get(m.group(1), "")
                if key == "ob":
                    ob = os.path.realpath(value) if value else value
                else:
                    # callgrind marks a recursive function's inner levels "name'2".
                    fn = re.sub(r"'\d+$", "", value)
            elif key in ("cob", "cfn"):
                # A callee's object or name: record the compression, keep the current function.
                table = obs if key == "cob" else names
                m = re.match(r"\((\d+)\) (.*)$", value)
                if m:
                    table[m.group(1)] = m.group(2)
            elif key == "calls":
                after_calls = True


def fnv1a64(data):
    """The same hash build.rs computes (no crate for it in a build script)."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    paths = sys.argv[1:]
    if not paths:
        sys.exit(__doc__)
    costs = {}
    for p in paths:
        self_costs(p, costs)
    # Hottest first: the code run for every message shares pages and TLB entries;
    # everything executed at all (start-up, login, the first sync) follows.
    # A function without a symbol is named by its address ("0x..."), and valgrind has
    # pseudo-functions ("(below main)"): nothing to order.
    ordered = sorted((n for n, c in costs.items() if c > 0 and not n.startswith(("0x", "("))), key=lambda n: (-costs[n], n))
    with open(os.path.join(ROOT, "Cargo.lock"), "rb") as f:
        lock = fnv1a64(f.read())
    out = sys.stdout
    out.write("# The functions a running peerline executes, hottest first (deploy/order-symbols.py).\n")
    out.write(f"# Cargo.lock fnv1a64 {lock:016x}\n")
    out.write(f"# {len(ordered)} functions from {len(paths)} profiles\n")
    for name in ordered:
        out.write(name + "\n")


if __name__ == "__main__":
    main()

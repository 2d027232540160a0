#!/usr/bin/env python3
"""peerline vs a minimal matrix-nio echo bot, side by side on the same Synapse.

    target/test-venv/bin/python benches/matrix/bench.py [--n 200] [--bin target/release/peerline]

Needs `.ci/synapse` running (127.0.0.1:18008, or PEERLINE_TEST_HOMESERVER) and a peerline built with `--features matrix`.
For each bot and each room kind (encrypted, unencrypted): a worker (matrix-nio) sends N
messages one at a time and waits for the first answer; peerline walks the PHQ-4 check-in
over and over. Reports reply latency as the worker sees it (p50/p90/p99), the bot's CPU
time per message (utime+stime from /proc) and its RSS at the end.
"""

import argparse
import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "matrix"))
os.environ.setdefault("PEERLINE_TEST_HOMESERVER", "http://127.0.0.1:18008")
import worker  # noqa: E402

HS = os.environ["PEERLINE_TEST_HOMESERVER"]
PW = "bench-password-123"
# One walk through the check-in; each message gets at least one reply.
WALK = ["hi", "1", "1", "2", "1", "2", "4"]

ECHO_BOT = r'''
import asyncio, os, sys
from nio import AsyncClient, AsyncClientConfig, InviteMemberEvent, RoomMessageText
async def main():
    c = AsyncClient(sys.argv[1], sys.argv[2], store_path=sys.argv[4],
                    config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True))
    await c.login(sys.argv[3], device_name="echo")
    await c.keys_upload()
    first = await c.sync(timeout=0, full_state=True)
    async def on_invite(room, ev):
        if ev.state_key == c.user_id:
            await c.join(room.room_id)
    async def on_msg(room, ev):
        if ev.sender == c.user_id:
            return
        await c.room_send(room.room_id, "m.room.message", {"msgtype": "m.notice", "body": ev.body},
                          ignore_unverified_devices=True)
    c.add_event_callback(on_invite, InviteMemberEvent)
    c.add_event_callback(on_msg, RoomMessageText)
    print("ready", flush=True)
    await c.sync_forever(timeout=30000, since=first.next_batch)
asyncio.run(main())
'''


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    """VmRSS, and the part of it that is private memory (RssAnon) and the binary's
    own file-backed pages (RssFile), in MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile"):
                fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("RssAnon", 0.0), fields.get("RssFile", 0.0)


def clear_refs(pid):
    """Start a working-set measurement: clear the referenced bits of every page."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def working_set_mib(pid, binary):
    """Pages referenced since clear_refs, in MiB: of the bot's own executable (the code
    it actually ran) and of everything else. RSS counts every page the kernel mapped,
    and it maps a binary's code in large pieces around each page that is used."""
    own = other = 0
    path = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:
                path = head[5] if len(head) > 5 else ""
            elif line.startswith("Referenced:"):
                kib = int(line.split()[1])
                if path and os.path.realpath(path) == os.path.realpath(binary):
                    own += kib
                else:
                    other += kib
    return own / 1024, other / 1024


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def register(name):
    a = worker.Account(name)
    r = await a.client.register(name, PW, device_name="bench")
    a.client.load_store()
    return a


async def start_bot(kind, name, tmp, binary, wrap):
    if kind == "peerline":
        env = dict(os.environ, PEERLINE_MATRIX_HOMESERVER=HS, PEERLINE_MATRIX_USER=name, PEERLINE_MATRIX_PASSWORD=PW,
                   PEERLINE_MATRIX_STORE=os.path.join(tmp, "matrix"), PEERLINE_MATRIX_STORE_PASSPHRASE="bench",
                   RUST_LOG="warn",
                   # As deploy/peerline.service and the Dockerfile run it.
                   MALLOC_ARENA_MAX="2",
                   # One worker sends 200 messages back to back, faster than the
                   # per-worker rate limit allows a person to: the limit is off here.
                   PEERLINE_LIMITS_ENABLED="false")
        p = subprocess.Popen(wrap + [binary, "run", "--matrix", "--flows", os.path.join(ROOT, "flows"),
                              "--db", os.path.join(tmp, "peerline.db")], env=env,
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "log"), "w"))
        await asyncio.sleep(3 if not wrap else 20)
    else:
        p = subprocess.Popen([sys.executable, "-c", ECHO_BOT, HS, f"@{name}:localhost", PW, tmp],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        await asyncio.get_running_loop().run_in_executor(None, p.stdout.readline)
    return p


async def run(kind, encrypted, n, binary, wrap, smaps):
    tag = f"{kind[:4]}{'e' if encrypted else 'u'}{int(time.time()) % 100000}"
    bot_name = f"bbot{tag}"
    # Register the bot's account, then drop that device.
    b = await register(bot_name)
    await b.client.logout()
    await b.client.close()
    tmp = tempfile.mkdtemp(prefix="peerline-bench-")
    proc = await start_bot(kind, bot_name, tmp, binary, wrap)
    w = await register(f"bw{tag}")
    worker.accounts["w"] = w
    await w.start()
    bot = f"@{bot_name}:localhost"
    room = (await worker.cmd_dm({"as": "w", "bot": bot, "encrypted": encrypted, "timeout": 60}))["room"]
    await asyncio.sleep(1)
    lat = []
    measuring_refs = kind == "peerline" and clear_refs(proc.pid)
    cpu0 = cpu_seconds(proc.pid)
    for i in range(n):
        text = WALK[i % len(WALK)] if kind == "peerline" else f"echo {i}"
        before = len(w.bot_messages(room, bot))
        sent = await worker.cmd_send({"as": "w", "room": room, "text": text})
        got = await worker.until(lambda: len(w.bot_messages(room, bot)) > before, 30, step=0.002)
        if not got:
            print(f"  no reply to message {i}", file=sys.stderr)
            continue
        lat.append((w.bot_messages(room, bot)[before]["t"] - sent["t"]) * 1000)
        await asyncio.sleep(0.15)  # let multi-message replies finish before the next message
    cpu = cpu_seconds(proc.pid) - cpu0
    rss, anon, file = rss_mib(proc.pid)
    refs = working_set_mib(proc.pid, binary) if measuring_refs else None
    if smaps and kind == "peerline":
        # Where the memory is, mapping by mapping, for a profile of a missed target.
        with open(f"/proc/{proc.pid}/smaps") as src, open(f"{smaps}.{tag}", "w") as dst:
            dst.write(src.read())
    proc.terminate()
    proc.wait(timeout=30 if not wrap else 300)
    w.task.cancel()
    await w.client.close()
    shutil.rmtree(tmp, ignore_errors=True)
    room_kind = "encrypted" if encrypted else "unencrypted"
    label = f"{kind} ({os.path.basename(os.path.dirname(binary))})" if kind == "peerline" else kind
    print(f"{label:18} {room_kind:11} n={len(lat):3}  p50 {pct(lat, 50):6.1f} ms  p90 {pct(lat, 90):6.1f} ms  "
          f"p99 {pct(lat, 99):6.1f} ms  cpu {cpu / max(1, len(lat)) * 1000:5.2f} ms/msg  "
          f"rss {rss:5.1f} MiB (anon {anon:4.1f} + file {file:4.1f})"
          + (f"  touched while measured: code {refs[0]:4.1f} MiB, rest {refs[1]:4.1f} MiB" if refs else ""),
          flush=True)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    # Repeat --bin to compare builds (e.g. target/release and target/deploy) in one run.
    ap.add_argument("--bin", action="append")
    ap.add_argument("--only", choices=["peerline", "nio"])
    # Run peerline under another program, e.g. to record which code it runs for
    # deploy/order-symbols.py: --wrap "valgrind --tool=callgrind --demangle=no"
    # (slow: the figures of such a run mean nothing).
    ap.add_argument("--wrap", default="")
    # Save peerline's /proc/PID/smaps at the end of each run, as SMAPS.<run tag>.
    ap.add_argument("--smaps")
    args = ap.parse_args()
    wrap = shlex.split(args.wrap)
    bins = args.bin or [os.path.join(ROOT, "target", "release", "peerline")]
    for kind in ["peerline", "nio"]:
        if args.only and kind != args.only:
            continue
        for encrypted in [True, False]:
            for binary in bins if kind == "peerline" else bins[:1]:
                await run(kind, encrypted, args.n, binary, wrap, args.smaps)


asyncio.run(main())

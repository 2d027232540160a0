#!/usr/bin/env python3
"""A health worker on Matrix, driven by the Rust tests through JSON lines.

Reads one command a line on stdin, answers one JSON object a line on stdout
(`{"ok": true, ...}` or `{"ok": false, "error": "..."}`). Several accounts can be
driven at once, each named by "as". Every wait has a timeout.

Commands (fields):
  register   as, user, password           create the account (open registration) and log in
  login      as, user, password           log in (new device)
  dm         as, bot, encrypted           create a DM, invite the bot, wait until it joins
  group      as, bot, others[]            create a room, invite the bot and the others (as names)
  join       as, room                     accept an invite
  wait_join  as, room, user, timeout
  send       as, room, text               send m.text (encrypted if the room is); mention=true adds m.mentions
  replies    as, room, since, min, timeout, settle
                                          the bot's messages in room from index `since`;
                                          waits for `min` of them, then `settle` s of quiet
  redactions as, room, timeout, min       event ids the bot redacted in room
  members    as, room                     joined members (after a fresh sync)
  wait_left  as, room, user, timeout
  logout     as                           log out (deletes the device)
  stop                                    log out nothing, close clients, exit
"""

import asyncio
import json
import os
import sys
import tempfile
import time

from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    JoinError,
    LoginResponse,
    MegolmEvent,
    RedactionEvent,
    RegisterResponse,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
)
from nio.api import RoomPreset, RoomVisibility

HOMESERVER = os.environ.get("PEERLINE_TEST_HOMESERVER", "http://127.0.0.1:18008")
STORE = tempfile.mkdtemp(prefix="peerline-worker-")


class Account:
    def __init__(self, name):
        self.name = name
        cfg = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True, max_timeouts=None)
        path = os.path.join(STORE, name)
        os.makedirs(path, exist_ok=True)
        self.client = AsyncClient(HOMESERVER, "", store_path=path, config=cfg)
        self.messages = {}  # room -> [ {event_id, sender, body, formatted, msgtype, t} ]
        self.redactions = {}  # room -> [redacted event id]
        self.undecrypted = 0
        self.auto_join = False
        self.task = None
        self.synced = asyncio.Event()
        self.client.add_event_callback(self.on_message, (RoomMessageText, RoomMessageNotice))
        self.client.add_event_callback(self.on_redaction, RedactionEvent)
        self.client.add_event_callback(self.on_megolm, MegolmEvent)

    async def on_message(self, room, event):
        src = event.source.get("content", {})
        self.messages.setdefault(room.room_id, []).append(
            {
                "event_id": event.event_id,
                "sender": event.sender,
                "body": event.body,
                "formatted": src.get("formatted_body"),
                "msgtype": src.get("msgtype"),
                "t": time.monotonic(),
            }
        )

    async def on_redaction(self, room, event):
        self.redactions.setdefault(room.room_id, []).append(event.redacts)

    async def on_megolm(self, room, event):
        self.undecrypted += 1

    async def start(self):
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        self.task = asyncio.create_task(self.loop())
        await asyncio.wait_for(self.synced.wait(), 30)

    async def loop(self):
        # sync_forever would stop on its own errors; this keeps going while the homeserver restarts.
        while True:
            try:
                resp = await self.client.sync(timeout=10000, full_state=False)
                if hasattr(resp, "next_batch"):
                    self.synced.set()
                if self.auto_join:
                    for room in list(self.client.invited_rooms):
                        await self.client.join(room)
                if self.client.should_upload_keys:
                    await self.client.keys_upload()
                if self.client.should_query_keys:
                    await self.client.keys_query()
                if self.client.should_claim_keys:
                    await self.client.keys_claim(self.client.get_users_for_key_claiming())
                await self.client.send_to_device_messages()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.5)

    def bot_messages(self, room, bot):
        return [m for m in self.messages.get(room, []) if m["sender"] == bot]


accounts = {}


async def until(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = pred()
        if r:
            return r
        await asyncio.sleep(step)
    return pred()


async def cmd_register(c):
    a = Account(c["as"])
    r = await a.client.register(c["user"], c["password"], device_name="worker")
    if not isinstance(r, RegisterResponse):
        # Already registered: log in instead.
        r = await a.client.login(c["password"], device_name="worker") if a.client.user else None
        if r is None:
            a.client.user = c["user"]
            r = await a.client.login(c["password"], device_name="worker")
        if not isinstance(r, LoginResponse):
            raise RuntimeError(f"register/login failed: {r}")
    else:
        # register() logs in; make sure the store is loaded for e2e.
        a.client.load_store()
    accounts[c["as"]] = a
    await a.start()
    return {"user_id": a.client.user_id, "device_id": a.client.device_id}


async def cmd_login(c):
    a = Account(c["as"])
    a.client.user = c["user"]
    r = await a.client.login(c["password"], device_name="worker")
    if not isinstance(r, LoginResponse):
        raise RuntimeError(f"login failed: {r}")
    accounts[c["as"]] = a
    await a.start()
    return {"user_id": a.client.user_id}


def joined(a, room, user):
    r = a.client.rooms.get(room)
    return r is not None and user in r.users and user not in r.invited_users


async def wait_member(a, room, user, timeout):
    return await until(lambda: joined(a, room, user), timeout)


async def cmd_dm(c):
    a = accounts[c["as"]]
    initial_state = []
    if c.get("encrypted", True):
        initial_state.append({"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}})
    r = await a.client.room_create(
        visibility=RoomVisibility.private,
        is_direct=True,
        preset=RoomPreset.trusted_private_chat,
        invite=[c["bot"]],
        initial_state=initial_state,
    )
    if not isinstance(r, RoomCreateResponse):
        raise RuntimeError(f"room_create failed: {r}")
    room = r.room_id
    if not await wait_member(a, room, c["bot"], c.get("timeout", 30)):
        raise RuntimeError("the bot did not join the DM")
    return {"room": room}


async def cmd_group(c):
    a = accounts[c["as"]]
    others = [accounts[o].client.user_id for o in c.get("others", [])]
    r = await a.client.room_create(
        visibility=RoomVisibility.private, preset=RoomPreset.private_chat, invite=[c["bot"], *others]
    )
    if not isinstance(r, RoomCreateResponse):
        raise RuntimeError(f"room_create failed: {r}")
    room = r.room_id
    for o in c.get("others", []):
        b = accounts[o]
        await until(lambda: room in b.client.invited_rooms, 30)
        jr = await b.client.join(room)
        if isinstance(jr, JoinError):
            raise RuntimeError(f"join failed: {jr}")
    if c.get("wait_bot", True) and not await wait_member(a, room, c["bot"], c.get("timeout", 30)):
        raise RuntimeError("the bot did not join the group")
    for o in c.get("others", []):
        if not await wait_member(a, room, accounts[o].client.user_id, 30):
            raise RuntimeError("a colleague did not join the group")
    return {"room": room}


async def cmd_send(c):
    a = accounts[c["as"]]
    room = c["room"]
    content = {"msgtype": "m.text", "body": c["text"]}
    if c.get("mention"):
        content["m.mentions"] = {"user_ids": [c["mention"]]}
    deadline = time.monotonic() + c.get("timeout", 60)
    last = None
    while time.monotonic() < deadline:
        try:
            if a.client.should_query_keys:
                await a.client.keys_query()
            r = await a.client.room_send(room, "m.room.message", content, ignore_unverified_devices=True)
            if isinstance(r, RoomSendResponse):
                return {"event_id": r.event_id, "t": time.monotonic()}
            last = str(r)
        except Exception as e:  # homeserver down: keep trying until the deadline
            last = repr(e)
        await asyncio.sleep(0.3)
    raise RuntimeError(f"send failed: {last}")


async def cmd_replies(c):
    a = accounts[c["as"]]
    room, bot = c["room"], c["bot"]
    since, want = c.get("since", 0), c.get("min", 1)
    await until(lambda: len(a.bot_messages(room, bot)) - since >= want, c.get("timeout", 30))
    settle = c.get("settle", 0)
    if settle:
        n = -1
        while n != len(a.bot_messages(room, bot)):
            n = len(a.bot_messages(room, bot))
            await asyncio.sleep(settle)
    msgs = a.bot_messages(room, bot)[since:]
    return {"messages": msgs, "total": since + len(msgs), "undecrypted": a.undecrypted}


async def cmd_redactions(c):
    a = accounts[c["as"]]
    room = c["room"]
    await until(lambda: len(a.redactions.get(room, [])) >= c.get("min", 1), c.get("timeout", 30))
    return {"redacted": a.redactions.get(room, [])}


async def cmd_wait_left(c):
    a = accounts[c["as"]]
    room, user = c["room"], c["user"]

    def gone():
        r = a.client.rooms.get(room)
        return r is not None and user not in r.users and user not in r.invited_users

    return {"left": bool(await until(gone, c.get("timeout", 30)))}


async def cmd_wait_member(c):
    a = accounts[c["as"]]
    if not await wait_member(a, c["room"], c["user"], c.get("timeout", 30)):
        raise RuntimeError("not a member in time")
    return {}


async def cmd_auto_join(c):
    accounts[c["as"]].auto_join = True
    return {}


async def cmd_dm_from(c):
    # A two-member room with the bot that this account joined, not one of `known`.
    a = accounts[c["as"]]
    known = set(c.get("known", []))

    def find():
        for rid, r in a.client.rooms.items():
            if rid not in known and c["bot"] in r.users and len(r.users) == 2 and a.client.user_id in r.users:
                return rid
        return None

    room = await until(find, c.get("timeout", 30))
    if not room:
        raise RuntimeError("no private room from the bot")
    return {"room": room}


async def cmd_members(c):
    a = accounts[c["as"]]
    r = a.client.rooms.get(c["room"])
    return {"members": sorted(r.users.keys()) if r else []}


async def cmd_join(c):
    a = accounts[c["as"]]
    room = c["room"]
    await until(lambda: room in a.client.invited_rooms, c.get("timeout", 30))
    r = await a.client.join(room)
    if isinstance(r, JoinError):
        raise RuntimeError(f"join failed: {r}")
    return {}


async def cmd_logout(c):
    a = accounts.pop(c["as"])
    if a.task:
        a.task.cancel()
    await a.client.logout()
    await a.client.close()
    return {}


COMMANDS = {
    "logout": cmd_logout,
    "register": cmd_register,
    "login": cmd_login,
    "dm": cmd_dm,
    "group": cmd_group,
    "join": cmd_join,
    "wait_member": cmd_wait_member,
    "auto_join": cmd_auto_join,
    "dm_from": cmd_dm_from,
    "send": cmd_send,
    "replies": cmd_replies,
    "redactions": cmd_redactions,
    "wait_left": cmd_wait_left,
    "members": cmd_members,
}


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        try:
            c = json.loads(line)
            if c.get("cmd") == "stop":
                print(json.dumps({"ok": True}), flush=True)
                break
            out = await asyncio.wait_for(COMMANDS[c["cmd"]](c), c.get("deadline", 120))
            out["ok"] = True
        except Exception as e:
            out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)
    for a in accounts.values():
        if a.task:
            a.task.cancel()
        await a.client.close()


if __name__ == "__main__":
    asyncio.run(main())

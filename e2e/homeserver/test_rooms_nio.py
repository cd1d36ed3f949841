"""Two matrix-nio clients in one room: invite and join, 100 messages received in order through
/sync, an edit, a redaction, a reaction, backwards pagination and a displayname change."""

import asyncio

from nio import (
    AsyncClient,
    JoinResponse,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncResponse,
)


async def registered(url: str, name: str) -> AsyncClient:
    client = AsyncClient(url, name)
    response = await client.register(name, "pw-" + name)
    assert response.user_id == f"@{name}:localhost", response
    return client


def timeline(response: SyncResponse, room_id: str):
    room = response.rooms.join.get(room_id)
    return room.timeline.events if room else []


async def sync_until(client: AsyncClient, predicate, collected, timeout_s: float = 30):
    """Long-polls /sync, collecting events, until `predicate(collected)` holds."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate(collected):
        assert asyncio.get_running_loop().time() < deadline, f"timed out with {len(collected)} events"
        response = await client.sync(timeout=5000, sync_filter={"room": {"timeline": {"limit": 200}}})
        assert isinstance(response, SyncResponse), response
        for room in response.rooms.join.values():
            collected.extend(room.timeline.events)


def test_two_nio_clients_chat(homeserver):
    async def scenario():
        alice = await registered(homeserver.url, "alice")
        bob = await registered(homeserver.url, "bob")
        await bob.sync(timeout=0)

        created = await alice.room_create(name="nio room", invite=["@bob:localhost"])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        invited = await bob.sync(timeout=5000)
        assert room_id in invited.rooms.invite, invited.rooms.invite
        joined = await bob.join(room_id)
        assert isinstance(joined, JoinResponse), joined
        await bob.sync(timeout=0)

        sent_ids = []
        for i in range(100):
            r = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"message {i}"})
            assert isinstance(r, RoomSendResponse), r
            sent_ids.append(r.event_id)
        received = []
        await sync_until(bob, lambda c: sum(1 for e in c if getattr(e, "body", "").startswith("message ")) >= 100, received)
        bodies = [e.body for e in received if getattr(e, "body", "").startswith("message ")]
        assert bodies == [f"message {i}" for i in range(100)], bodies[:5]

        edit = await alice.room_send(room_id, "m.room.message", {
            "msgtype": "m.text", "body": "* message 0 (edited)",
            "m.new_content": {"msgtype": "m.text", "body": "message 0 (edited)"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": sent_ids[0]},
        })
        assert isinstance(edit, RoomSendResponse), edit
        reaction = await bob.room_send(room_id, "m.reaction", {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": sent_ids[1], "key": "👍"},
        })
        assert isinstance(reaction, RoomSendResponse), reaction
        redaction = await alice.room_redact(room_id, sent_ids[2], reason="oops")
        assert redaction.event_id, redaction

        after = []
        await sync_until(bob, lambda c: any(type(e).__name__ == "RedactionEvent" for e in c), after)
        kinds = [type(e).__name__ for e in after]
        assert "RedactionEvent" in kinds, kinds
        assert any(getattr(e, "body", "") == "* message 0 (edited)" for e in after), kinds

        page = await bob.room_messages(room_id, start="", limit=30)
        assert isinstance(page, RoomMessagesResponse), page
        newest_first = [e.body for e in page.chunk if getattr(e, "body", "").startswith("message ")]
        assert newest_first[:3] == ["message 99", "message 98", "message 97"], newest_first[:3]
        older = await bob.room_messages(room_id, start=page.end, limit=200)
        older_bodies = [e.body for e in older.chunk if getattr(e, "body", "").startswith("message ")]
        assert "message 0 (edited)" not in older_bodies and older_bodies[-1] in ("message 0", "message 1"), older_bodies[-3:]

        await alice.set_displayname("Alice Liddell")
        renamed = []
        await sync_until(bob, lambda c: any((getattr(e, "content", None) or {}).get("displayname") == "Alice Liddell" for e in c), renamed)
        assert bob.rooms[room_id].user_name("@alice:localhost") == "Alice Liddell"

        await alice.close()
        await bob.close()

    asyncio.run(scenario())

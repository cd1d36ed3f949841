"""End-to-end encryption with real clients: two matrix-nio clients with encryption (python-olm)
upload device and one-time keys, query each other's keys, and alice's Megolm session reaches
bob's device over to-device Olm messages, so bob decrypts alice's message in an encrypted room.

Runs against our homeserver only: every test in this folder starts it through the `homeserver`
fixture (conftest.py); Synapse's E2EE is covered by its own test suite."""

import asyncio
import json
import urllib.request

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    KeysUploadResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)


def fetch_json(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


async def encrypted_client(url: str, name: str, store) -> AsyncClient:
    store.mkdir()
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
    client = AsyncClient(url, name, store_path=str(store), config=config)
    response = await client.register(name, "pw-" + name)
    assert response.user_id == f"@{name}:localhost", response
    assert client.olm is not None, "nio loaded its Olm account"
    uploaded = await client.keys_upload()
    assert isinstance(uploaded, KeysUploadResponse), uploaded
    assert uploaded.signed_curve25519_count > 0, uploaded
    return client


def test_nio_clients_exchange_an_encrypted_message(homeserver, tmp_path):
    async def scenario():
        alice = await encrypted_client(homeserver.url, "alice", tmp_path / "alice")
        bob = await encrypted_client(homeserver.url, "bob", tmp_path / "bob")
        await bob.sync(timeout=0)

        created = await alice.room_create(
            name="secret",
            invite=["@bob:localhost"],
            initial_state=[
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
            ],
        )
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        invited = await bob.sync(timeout=5000)
        assert room_id in invited.rooms.invite, invited.rooms.invite
        assert isinstance(await bob.join(room_id), JoinResponse)
        await bob.sync(timeout=0)

        # Alice learns bob joined (device_lists.changed names him), then fetches his keys.
        synced = await alice.sync(timeout=5000)
        assert isinstance(synced, SyncResponse), synced
        assert alice.rooms[room_id].encrypted
        if alice.should_query_keys:
            await alice.keys_query()
        assert bob.device_id in alice.device_store["@bob:localhost"], "alice knows bob's device"

        sent = await alice.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": "for bob's eyes only"},
            ignore_unverified_devices=True,
        )
        assert isinstance(sent, RoomSendResponse), sent

        deadline = asyncio.get_running_loop().time() + 30
        received = []
        while not any(isinstance(e, RoomMessageText) for e in received):
            assert asyncio.get_running_loop().time() < deadline, f"bob never decrypted: {received}"
            response = await bob.sync(timeout=5000)
            assert isinstance(response, SyncResponse), response
            room = response.rooms.join.get(room_id)
            if room:
                received.extend(room.timeline.events)
        assert not any(isinstance(e, MegolmEvent) for e in received), "an event stayed undecrypted"
        message = next(e for e in received if isinstance(e, RoomMessageText))
        assert message.body == "for bob's eyes only"
        assert message.sender == "@alice:localhost"
        assert message.decrypted, "it came encrypted and bob decrypted it"
        # What the server stored is ciphertext.
        stored = fetch_json(
            f"{homeserver.url}/_matrix/client/v3/rooms/{room_id}/event/{sent.event_id}", bob.access_token
        )
        assert stored["type"] == "m.room.encrypted", stored
        assert "for bob's eyes only" not in json.dumps(stored)

        await alice.close()
        await bob.close()

    asyncio.run(scenario())

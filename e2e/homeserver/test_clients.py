"""Real clients against our homeserver: matrix-nio, and Synapse's register_new_matrix_user."""

import asyncio
import json
import shutil
import subprocess
import sys
import urllib.request

from nio import AsyncClient, LoginResponse, RegisterResponse, WhoamiResponse, LogoutResponse, WhoamiError

from conftest import SHARED_SECRET


def test_matrix_nio_registers_logs_in_calls_whoami_and_logs_out(homeserver):
    async def scenario():
        client = AsyncClient(homeserver.url, "alice")
        registered = await client.register("alice", "wonderland", device_name="nio")
        assert isinstance(registered, RegisterResponse), registered
        assert registered.user_id == "@alice:localhost"
        await client.close()

        client = AsyncClient(homeserver.url, "@alice:localhost")
        login = await client.login("wonderland", device_name="nio-login")
        assert isinstance(login, LoginResponse), login
        assert login.user_id == "@alice:localhost"
        who = await client.whoami()
        assert isinstance(who, WhoamiResponse), who
        assert who.user_id == "@alice:localhost"
        assert who.device_id == login.device_id
        out = await client.logout()
        assert isinstance(out, LogoutResponse), out
        # The token is gone: whoami with it now fails.
        client.access_token = login.access_token
        after = await client.whoami()
        assert isinstance(after, WhoamiError), after
        assert after.status_code == "M_UNKNOWN_TOKEN"
        await client.close()

    asyncio.run(scenario())


def test_synapse_register_new_matrix_user_creates_an_admin(homeserver):
    script = shutil.which("register_new_matrix_user")
    command = [script] if script else [sys.executable, "-m", "synapse._scripts.register_new_matrix_user"]
    result = subprocess.run(
        command + ["-u", "root", "-p", "rootpw", "-a", "-k", SHARED_SECRET, homeserver.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout

    login = json.dumps({"type": "m.login.password", "user": "root", "password": "rootpw"}).encode()
    request = urllib.request.Request(homeserver.url + "/_matrix/client/v3/login", data=login, method="POST")
    with urllib.request.urlopen(request) as response:
        body = json.load(response)
    assert body["user_id"] == "@root:localhost"


def test_our_register_user_command_speaks_the_same_protocol(homeserver):
    from conftest import homeserver_binary

    result = subprocess.run(
        [homeserver_binary(), "register-user", "-c", str(homeserver.config_path), "-u", "bob", "-p", "pw", "--no-admin"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "@bob:localhost" in result.stdout

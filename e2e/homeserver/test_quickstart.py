"""The README's quickstart: `homeserver` in an empty directory serves localhost on 127.0.0.1:8008,
writes its config, and a restart reuses it with every account kept."""

import json
import subprocess
import urllib.request

from conftest import homeserver_binary, wait_until_up

URL = "http://127.0.0.1:8008"


def start(cwd):
    return subprocess.Popen([homeserver_binary()], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process):
    process.terminate()
    process.wait(timeout=10)


def post(path, body):
    request = urllib.request.Request(URL + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def test_first_start_generates_a_config_and_a_restart_keeps_accounts(tmp_path):
    process = start(tmp_path)
    try:
        wait_until_up(URL, process)
        config = (tmp_path / "homeserver.yaml").read_text()
        assert 'server_name: "localhost"' in config
        assert (tmp_path / "data" / "homeserver.db").exists()
    finally:
        stop(process)

    # Open registration in the generated file, restart, register; restart again, log in.
    config_path = tmp_path / "homeserver.yaml"
    config_path.write_text(config.replace("enable_registration: false", "enable_registration: true"))
    process = start(tmp_path)
    try:
        wait_until_up(URL, process)
        body = {"username": "quick", "password": "start", "auth": {"type": "m.login.dummy"}}
        assert post("/_matrix/client/v3/register", body)["user_id"] == "@quick:localhost"
    finally:
        stop(process)
    assert config_path.read_text().count("registration_shared_secret") == 1, "the config was reused, not regenerated"

    process = start(tmp_path)
    try:
        wait_until_up(URL, process)
        login = post("/_matrix/client/v3/login", {"type": "m.login.password", "user": "quick", "password": "start"})
        assert login["user_id"] == "@quick:localhost"
    finally:
        stop(process)

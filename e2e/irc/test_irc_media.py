"""End to end: Matrix media reach IRC users through the bridge's media proxy (`irc.media_proxy`), against a
homeserver with authenticated media on (Causeway's default and Synapse's), where the unauthenticated
`/_matrix/media/v3/download` route the plain links use does not serve new media.

A Matrix user uploads an image, an HTML file and a long message (sent as a text file); the links that reach
IRC point at the bridge, carry the file name, and serve the very bytes, with headers that keep a browser
from running anything in them. A link changed anywhere (signed part or file name) is refused with 403; a link
made with the bridge's key (read from the key file it made, signed here after the format documented in
bridges/irc/src/media_proxy/link.rs) is served, answers 410 once expired and 404 for media that do not exist.
"""

import asyncio
import base64
import hashlib
import hmac
import io
import os
import stat
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from nio import AsyncClient, UploadResponse
from test_irc_bridge import IrcBridge, free_port, join, launcher, make_static_room, send

from inspircd import InspIRCd
from ircclient import IrcClient

PREFIX = "/_irc/media/"


def fetch(url):
    """(status, headers, body) of a GET, as an IRC user's browser would make it: no token."""
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def sign(key, server, media_id, expires, filename):
    """A link path after PREFIX, made as the bridge makes it (link.rs documents the format)."""
    payload = (bytes([1]) + struct.pack(">I", expires) + bytes([len(server)]) + server.encode()
               + bytes([len(media_id)]) + media_id.encode())
    tag = hmac.new(key, b"causeway irc-bridge media link\0" + payload + filename.encode(), hashlib.sha256)
    signed = base64.urlsafe_b64encode(payload + tag.digest()[:16]).rstrip(b"=").decode()
    return f"{signed}/{urllib.parse.quote(filename, safe='-._~')}"


def link_in(message):
    return message["params"][-1].rsplit(" ", 1)[-1]


async def upload(client, data, content_type, filename):
    resp, _ = await client.upload(io.BytesIO(data), content_type=content_type, filename=filename,
                                  filesize=len(data))
    assert isinstance(resp, UploadResponse), resp
    return resp.content_uri


async def scenario(homeserver, bridge, bob, key_path):
    domain = homeserver.server_name
    public = f"http://127.0.0.1:{bridge.port}"
    alice = AsyncClient(homeserver.base_url, f"@alice:{domain}")
    try:
        await alice.login("alice-password")
        portal = await join(alice, f"#static:{domain}")
        await send(alice, portal, {"msgtype": "m.text", "body": "hello"})
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"] == ["#static", "hello"], "Alice's first line")

        # An image with a caption and a file name that needs encoding.
        cat = os.urandom(1000) + b"not really a png"
        mxc = await upload(alice, cat, "image/png", "chat noir é.png")
        server, media_id = mxc[len("mxc://"):].split("/")
        # Authenticated media are on: the homeserver's unauthenticated route does not serve it.
        status, _, _ = fetch(f"{homeserver.base_url}/_matrix/media/v3/download/{server}/{media_id}")
        assert status in (401, 403, 404), f"the homeserver served new media without a token ({status})"

        await send(alice, portal, {"msgtype": "m.image", "body": "our cat", "filename": "chat noir é.png",
                                   "url": mxc, "info": {"mimetype": "image/png", "size": len(cat)}})
        line = bob.wait(lambda m: m["nick"] == "alice[m]" and PREFIX in m["params"][-1], "the image's link")
        link = link_in(line)
        assert line["params"][-1].startswith("our cat — chat noir é.png ("), line
        assert link.startswith(public + PREFIX), link
        assert link.endswith("/chat%20noir%20%C3%A9.png"), link
        assert len(line["raw"].encode()) < 300, line["raw"]
        status, headers, data = fetch(link)
        assert status == 200 and data == cat, (status, data[:100])
        assert headers["Content-Type"] == "image/png", dict(headers)
        assert headers["Content-Length"] == str(len(cat)), dict(headers)
        assert headers["Content-Disposition"] == \
            "inline; filename=\"chat noir _.png\"; filename*=UTF-8''chat%20noir%20%C3%A9.png", dict(headers)
        assert headers["X-Content-Type-Options"] == "nosniff", dict(headers)
        assert headers["Content-Security-Policy"].startswith("sandbox; default-src 'none'"), dict(headers)

        # Changed anywhere, the link is refused: a character of the signed part, or the file name.
        signed = link[len(public + PREFIX):].split("/")[0]
        flipped = signed[:10] + ("A" if signed[10] != "A" else "B") + signed[11:]
        for bad in [link.replace(signed, flipped), link.replace("chat%20noir", "chat%20blanc"),
                    link.replace(".png", ".html")]:
            status, headers, data = fetch(bad)
            assert status == 403, (bad, status, data)
            assert b"not valid" in data and headers["Content-Type"].startswith("text/plain"), data

        # HTML is served as an attachment, sandboxed: it cannot script the bridge's origin.
        page = b"<html><script>alert(document.cookie)</script></html>"
        mxc_html = await upload(alice, page, "text/html", "page.html")
        await send(alice, portal, {"msgtype": "m.file", "body": "page.html", "url": mxc_html,
                                   "info": {"mimetype": "text/html", "size": len(page)}})
        line = bob.wait(lambda m: m["nick"] == "alice[m]" and "page.html" in m["params"][-1]
                        and PREFIX in m["params"][-1], "the page's link")
        status, headers, data = fetch(link_in(line))
        assert status == 200 and data == page, status
        assert headers["Content-Disposition"].startswith("attachment;"), dict(headers)
        assert "sandbox" in headers["Content-Security-Policy"], dict(headers)

        # A message too long for IRC goes as a text file, through the proxy too.
        many = "\n".join(f"line {i}" for i in range(10))
        await send(alice, portal, {"msgtype": "m.text", "body": many})
        line = bob.wait(lambda m: m["nick"] == "alice[m]" and "10 lines: " in m["params"][-1], "the long text's link")
        long_link = link_in(line).rstrip(")")
        assert long_link.startswith(public + PREFIX) and long_link.endswith("/message.txt"), line
        status, _, data = fetch(long_link)
        assert status == 200 and data.decode() == many, (status, data)

        # The key file the bridge made on its first start: private, and the key links are signed with.
        mode = stat.S_IMODE(os.stat(key_path).st_mode)
        assert mode == 0o600, oct(mode)
        with open(key_path) as f:
            key = base64.b64decode(f.read().strip())
        now = int(time.time())
        status, _, data = fetch(public + PREFIX + sign(key, server, media_id, now + 600, "cat.png"))
        assert status == 200 and data == cat, status
        status, _, data = fetch(public + PREFIX + sign(key, server, media_id, now - 5, "cat.png"))
        assert status == 410 and b"expired" in data, (status, data)
        status, _, data = fetch(public + PREFIX + sign(key, server, "NoSuchMedia" + media_id, 0, "x.png"))
        assert status == 404, (status, data)
        status, _, _ = fetch(public + PREFIX + sign(os.urandom(32), server, media_id, 0, "cat.png"))
        assert status == 403
    finally:
        await alice.close()


def test_media_reach_irc_through_the_bridges_signed_links():
    with tempfile.TemporaryDirectory(prefix="irc-e2e-") as workdir:
        ircd = InspIRCd(workdir).start()
        homeserver = launcher(workdir)
        key_path = os.path.join(workdir, "bridge", "keys", "media.key")
        port = free_port()
        bridge = IrcBridge(workdir, homeserver, ircd, port=port, irc_options={"media_proxy": {
            "public_url": f"http://127.0.0.1:{port}", "signing_key_path": key_path, "ttl": 3600}})
        registration = bridge.generate_registration()
        assert not os.path.exists(key_path), "writing the registration made no key"
        bob = None
        try:
            bob = IrcClient(ircd.port, "ircbob")
            bob.send("JOIN #static")
            bob.wait(lambda m: m["command"] == "366" and m["params"][1] == "#static", "Bob's join")
            homeserver.start([registration])
            asyncio.run(make_static_room(homeserver))
            bridge.start()
            asyncio.run(scenario(homeserver, bridge, bob, key_path))
        finally:
            if bob:
                bob.close()
            bridge.stop()
            homeserver.stop()
            ircd.stop()
            keep = os.environ.get("E2E_KEEP_LOGS")
            if keep:
                subprocess.run(["cp", "-r", workdir, keep], check=False)

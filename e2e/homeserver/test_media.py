"""matrix-nio uploads, downloads and thumbnails media on our homeserver."""

import asyncio
import io
import json
import os
import urllib.error
import urllib.request

from nio import AsyncClient, DownloadResponse, RegisterResponse, ResizingMethod, ThumbnailResponse, UploadResponse


def test_matrix_nio_uploads_and_downloads_a_file(homeserver):
    payload = os.urandom(300_000)

    async def scenario():
        client = AsyncClient(homeserver.url, "alice")
        registered = await client.register("alice", "wonderland", device_name="nio")
        assert isinstance(registered, RegisterResponse), registered

        uploaded, _keys = await client.upload(
            io.BytesIO(payload), content_type="application/pdf", filename="report.pdf", filesize=len(payload)
        )
        assert isinstance(uploaded, UploadResponse), uploaded
        assert uploaded.content_uri.startswith("mxc://localhost/")

        # nio downloads through the authenticated /_matrix/client/v1/media route.
        downloaded = await client.download(uploaded.content_uri)
        assert isinstance(downloaded, DownloadResponse), downloaded
        assert downloaded.body == payload
        assert downloaded.content_type == "application/pdf"
        assert downloaded.filename == "report.pdf"

        # Another user can download it too, under a name of their choosing.
        bob = AsyncClient(homeserver.url, "bob")
        assert isinstance(await bob.register("bob", "builder"), RegisterResponse)
        renamed = await bob.download(uploaded.content_uri, filename="mine.pdf")
        assert isinstance(renamed, DownloadResponse), renamed
        assert renamed.body == payload and renamed.filename == "mine.pdf"

        await bob.close()
        await client.close()
        return uploaded.content_uri, registered.access_token

    mxc, token = asyncio.run(scenario())

    # The raw response is served safely: an attachment, never sniffed, sandboxed.
    request = urllib.request.Request(
        f"{homeserver.url}/_matrix/client/v1/media/download/{mxc[len('mxc://'):]}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Disposition"] == 'attachment; filename="report.pdf"'
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"].startswith("sandbox;")
    # And authenticated media is on, so the legacy unauthenticated route does not serve it.
    try:
        urllib.request.urlopen(f"{homeserver.url}/_matrix/media/v3/download/{mxc[len('mxc://'):]}")
        raise AssertionError("the legacy route served new media")
    except urllib.error.HTTPError as e:
        assert e.code == 404
        assert json.load(e)["errcode"] == "M_NOT_FOUND"


def test_matrix_nio_gets_a_thumbnail(homeserver):
    # A 64x64 PNG made without extra Python packages: zlib-compressed scanlines.
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes([x * 4 % 256, 100, 200]) * 64 for x in range(64))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )

    async def scenario():
        client = AsyncClient(homeserver.url, "carol")
        assert isinstance(await client.register("carol", "pw"), RegisterResponse)
        uploaded, _ = await client.upload(io.BytesIO(png), content_type="image/png", filesize=len(png))
        assert isinstance(uploaded, UploadResponse), uploaded
        server, media_id = uploaded.content_uri[len("mxc://"):].split("/")
        # Crop to the spec's 32x32; "scale" would fit 64x64 in 320x240 and so return the original.
        thumb = await client.thumbnail(server, media_id, 32, 32, method=ResizingMethod.crop)
        assert isinstance(thumb, ThumbnailResponse), thumb
        assert thumb.content_type == "image/png"
        assert thumb.body[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", thumb.body[16:24])
        assert (width, height) == (32, 32)
        await client.close()

    asyncio.run(scenario())

"""Every error status the API documents, with the X-Slycat-Message a user sees."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any, Callable

import requests

from tests.fixtures import SSHD, LiveServer, free_port, solid_frames


def login(server: LiveServer, sshd: SSHD, **overrides: Any) -> requests.Response:
    body = {"hostname": "127.0.0.1", "port": sshd.port, "username": sshd.user,
            "password": sshd.password, **overrides}
    return server.post_json("/remotes", body)


def error_of(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/json")
    errors = response.json()["errors"]
    assert errors and all("code" in e and "title" in e for e in errors)
    return errors[0]


# -- authentication ---------------------------------------------------------------

def test_requests_without_the_token_get_401(server: LiveServer) -> None:
    response = requests.post(server.url + "/remotes", json={}, timeout=10)
    assert response.status_code == 401
    assert response.headers["X-Slycat-Message"] == "Authentication required."
    assert "Bearer" in response.headers["X-Slycat-Hint"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="framewire"'
    assert response.reason == "Authentication required."
    wrong = requests.get(server.url + "/remotes/x", timeout=10,
                         headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401


def test_every_token_form_is_accepted(server: LiveServer) -> None:
    url = server.url + "/remotes/0123456789abcdef0123456789abcdef"
    basic = base64.b64encode(f"slycat:{server.token}".encode()).decode()
    for header in (f"token {server.token}", f"Bearer {server.token}", f"Basic {basic}"):
        response = requests.get(url, headers={"Authorization": header}, timeout=10)
        assert response.status_code == 404, header  # authenticated: the session is unknown
    browser = requests.Session()
    first = browser.get(f"{url}?token={server.token}", timeout=10)
    assert first.status_code == 404
    assert "framewire_user" in browser.cookies
    assert browser.get(url, timeout=10).status_code == 404  # the cookie alone suffices
    assert requests.get(url, timeout=10).status_code == 401


# -- POST /remotes -------------------------------------------------------------------

def test_wrong_password_is_403(server: LiveServer, sshd: SSHD) -> None:
    response = login(server, sshd, password="wrong-" + sshd.password)
    assert response.status_code == 403
    assert response.headers["X-Slycat-Message"] == "Remote authentication failed."
    assert error_of(response)["code"] == "remote-auth-failed"
    assert sshd.password not in response.text


def test_unknown_host_key_names_the_fingerprint(make_server: Callable[..., LiveServer],
                                                sshd: SSHD, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    server = make_server(ssh={"known_hosts": str(empty)})
    response = login(server, sshd)
    assert response.status_code == 400
    message = response.headers["X-Slycat-Message"]
    assert message == f"Unknown host key for 127.0.0.1:{sshd.port}: {sshd.host_fingerprint}"
    hint = response.headers["X-Slycat-Hint"]
    assert str(empty) in hint and "ssh-keyscan" in hint
    assert error_of(response)["code"] == "unknown-host-key"


def test_missing_known_hosts_file_trusts_nothing(make_server: Callable[..., LiveServer],
                                                 sshd: SSHD, tmp_path: Path) -> None:
    server = make_server(ssh={"known_hosts": str(tmp_path / "absent")})
    response = login(server, sshd)
    assert response.status_code == 400
    assert sshd.host_fingerprint in response.headers["X-Slycat-Message"]


def test_unreachable_host_is_502(server: LiveServer, sshd: SSHD) -> None:
    response = login(server, sshd, port=free_port())
    assert response.status_code == 502
    assert response.headers["X-Slycat-Message"] == "Remote connection failed."
    assert "Could not connect to 127.0.0.1:" in response.headers["X-Slycat-Hint"]


def test_remotes_validation_names_the_field(server: LiveServer, sshd: SSHD) -> None:
    missing = server.post_json("/remotes", {"username": "fred"})
    assert missing.status_code == 400
    assert missing.headers["X-Slycat-Message"] == "hostname is required."
    assert error_of(missing)["source"]["pointer"] == "/hostname"
    port = login(server, sshd, port=70000)
    assert port.status_code == 400
    assert error_of(port)["source"]["pointer"] == "/port"
    agent = login(server, sshd, agent="yes")
    assert agent.status_code == 400
    assert agent.headers["X-Slycat-Message"] == "agent must be true, false or null."
    garbage = server.request("POST", "/remotes", data=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400
    assert garbage.headers["X-Slycat-Message"] == "The request body is not valid JSON."


# -- sessions ------------------------------------------------------------------------

def test_unknown_session_is_404_everywhere(server: LiveServer) -> None:
    sid = "0123456789abcdef0123456789abcdef"
    for method, path in (("GET", f"/remotes/{sid}"), ("DELETE", f"/remotes/{sid}"),
                         ("POST", f"/remotes/{sid}/browse/tmp"),
                         ("GET", f"/remotes/{sid}/file/etc/hostname"),
                         ("GET", f"/remotes/{sid}/image/tmp/a.png"),
                         ("POST", f"/remotes/{sid}/videos"),
                         ("GET", f"/remotes/{sid}/videos/{sid}/status"),
                         ("GET", f"/remotes/{sid}/videos/{sid}")):
        response = server.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.headers["X-Slycat-Message"] == "Unknown or expired remote session."


def test_delete_session_is_204_then_404(server: LiveServer, remote: str) -> None:
    info = server.request("GET", f"/remotes/{remote}")
    assert info.status_code == 200
    body = info.json()
    assert body["sid"] == remote and body["transport"] == "ssh"
    assert body["agent"]["state"] == "running"
    assert body["agent"]["python"].startswith("3.")
    assert body["agent"]["ffmpeg"]["encoders"]["h264"] == "libx264"
    assert body["created"] and body["last_access"]
    deleted = server.request("DELETE", f"/remotes/{remote}")
    assert deleted.status_code == 204
    assert server.request("GET", f"/remotes/{remote}").status_code == 404


def test_idle_sessions_expire(make_server: Callable[..., LiveServer], sshd: SSHD) -> None:
    server = make_server(ssh={"known_hosts": str(sshd.known_hosts)},
                         server={"session_idle_timeout": 1.0})
    sid = login(server, sshd).json()["sid"]
    assert server.request("GET", f"/remotes/{sid}").status_code == 200
    time.sleep(1.5)
    expired = server.request("GET", f"/remotes/{sid}")
    assert expired.status_code == 404
    assert expired.headers["X-Slycat-Message"] == "Unknown or expired remote session."


def test_session_without_agent_answers_agent_required(server: LiveServer, sshd: SSHD,
                                                      images: Path) -> None:
    response = login(server, sshd, agent=False)
    assert response.status_code == 200
    sid = response.json()["sid"]
    assert server.request("GET", f"/remotes/{sid}").json()["agent"]["state"] == "none"
    paths = solid_frames(images, [(0, 0, 0)])
    for response in (
        server.post_json(f"/remotes/{sid}/videos", {"content-type": "video/mp4",
                                                    "images": paths}),
        server.request("GET", f"/remotes/{sid}/image{paths[0]}"),
        server.post_json(f"/remotes/{sid}/browse/tmp", {}),
    ):
        assert response.status_code == 400
        assert response.headers["X-Slycat-Message"] == "Agent required."


# -- POST videos: bad images and bad fields -----------------------------------------------

def test_bad_images_are_all_listed_and_the_first_named(server: LiveServer, remote: str,
                                                      images: Path, sshd: SSHD) -> None:
    jobs = sshd.home / ".cache" / "framewire" / "jobs"
    before = set(os.listdir(jobs))
    good = solid_frames(images, [(10, 20, 30), (40, 50, 60)])
    unreadable = solid_frames(images, [(1, 2, 3)], names=["secret.png"])[0]
    os.chmod(unreadable, 0o000)
    text = images / "notes.png"
    text.write_text("this is not an image\n")
    os.chmod(text, 0o644)
    subdir = images / "subdir"
    subdir.mkdir()
    missing = str(images / "missing.png")
    paths = [good[0], missing, unreadable, str(text), str(subdir), good[1]]
    response = server.post_json(f"/remotes/{remote}/videos",
                                {"content-type": "video/mp4", "images": paths})
    assert response.status_code == 400
    assert response.headers["X-Slycat-Message"] == f"File not found: {missing}"
    assert "4 image(s) cannot be used" in response.headers["X-Slycat-Hint"]
    listed = response.json()["errors"]
    assert [e["source"]["pointer"] for e in listed] == [
        "/images/1", "/images/2", "/images/3", "/images/4"]
    assert [e["meta"]["path"] for e in listed] == [missing, unreadable, str(text), str(subdir)]
    assert [e["code"] for e in listed] == [
        "not-found", "access-denied", "not-an-image", "is-directory"]
    assert set(os.listdir(jobs)) == before, "a job was started for bad images"


def test_at_most_100_bad_images_are_listed(server: LiveServer, remote: str,
                                           images: Path) -> None:
    paths = [str(images / f"gone{index}.png") for index in range(150)]
    response = server.post_json(f"/remotes/{remote}/videos",
                                {"content-type": "video/mp4", "images": paths})
    assert response.status_code == 400
    assert len(response.json()["errors"]) == 100
    assert "150 image(s)" in response.headers["X-Slycat-Hint"]
    assert "first 100" in response.headers["X-Slycat-Hint"]


def test_video_request_fields_are_validated(server: LiveServer, remote: str,
                                            images: Path) -> None:
    paths = solid_frames(images, [(0, 0, 0)])
    cases = [
        ({"images": paths}, "/content-type",
         "content-type is required (video/mp4 or video/webm) unless outputs lists what "
         "to make."),
        ({"content-type": "video/avi", "images": paths}, "/content-type",
         "content-type must be video/mp4 or video/webm, got 'video/avi'."),
        ({"content-type": "video/mp4", "images": []}, "/images",
         "images must name at least one image."),
        ({"content-type": "video/mp4", "images": ["relative.png"]}, "/images/0",
         "images[0] must be an absolute path, got 'relative.png'."),
        ({"content-type": "video/mp4", "images": paths, "frame-rate": "fast"},
         "/frame-rate", "frame-rate must be a number or fraction from 1/3600 to 1000 frames "
         "per second (e.g. 25, 29.97 or \"1/5\"), got 'fast'."),
    ]
    for body, pointer, message in cases:
        response = server.post_json(f"/remotes/{remote}/videos", body)
        assert response.status_code == 400, body
        assert response.headers["X-Slycat-Message"] == message
        assert error_of(response)["source"]["pointer"] == pointer


def test_unknown_video_is_404(server: LiveServer, remote: str) -> None:
    vsid = "feedfacefeedfacefeedfacefeedface"
    for method, path in (("GET", f"/remotes/{remote}/videos/{vsid}/status"),
                         ("GET", f"/remotes/{remote}/videos/{vsid}"),
                         ("HEAD", f"/remotes/{remote}/videos/{vsid}"),
                         ("DELETE", f"/remotes/{remote}/videos/{vsid}")):
        response = server.request(method, path)
        assert response.status_code == 404
        assert response.headers["X-Slycat-Message"] == "Unknown video."


def test_video_is_409_until_ready_and_deletable(server: LiveServer, remote: str,
                                              images: Path) -> None:
    colours = [(i * 4 % 256, i * 7 % 256, i * 11 % 256) for i in range(80)]
    paths = solid_frames(images, colours, size=(640, 480))
    vsid = server.post_json(f"/remotes/{remote}/videos",
                            {"content-type": "video/webm", "images": paths}).json()["sid"]
    early = server.request("GET", f"/remotes/{remote}/videos/{vsid}")
    assert early.status_code == 409
    assert early.headers["X-Slycat-Message"] == "Video not ready."
    assert "poll its status" in early.headers["X-Slycat-Hint"]
    status = server.wait_video(remote, vsid)
    assert status["status"] == "succeeded"
    assert server.request("GET", f"/remotes/{remote}/videos/{vsid}").status_code == 200
    assert server.request("DELETE", f"/remotes/{remote}/videos/{vsid}").status_code == 204
    gone = server.request("GET", f"/remotes/{remote}/videos/{vsid}/status").json()
    assert gone["status"] == "expired" and gone["ok"] is False and gone["ready"] is False
    assert server.request("GET", f"/remotes/{remote}/videos/{vsid}").status_code == 409


# -- files ---------------------------------------------------------------------------

def test_file_errors(server: LiveServer, remote: str, images: Path) -> None:
    secret = solid_frames(images, [(0, 0, 0)], names=["locked.png"])[0]
    os.chmod(secret, 0o000)
    cases = [
        (f"/remotes/{remote}/file{images}/nope.txt", f"File not found: {images}/nope.txt"),
        (f"/remotes/{remote}/file{images}", f"Can't read directory: {images}"),
        (f"/remotes/{remote}/file{secret}", f"Access denied: {secret}"),
        (f"/remotes/{remote}/image{images}/nope.png", f"File not found: {images}/nope.png"),
        (f"/remotes/{remote}/image{images}", f"Can't read directory: {images}"),
        (f"/remotes/{remote}/image{secret}", f"Access denied: {secret}"),
    ]
    for path, message in cases:
        response = server.request("GET", path)
        assert response.status_code == 400, path
        assert response.headers["X-Slycat-Message"] == message
    browse = server.post_json(f"/remotes/{remote}/browse{images}/nowhere", {})
    assert browse.status_code == 400
    assert browse.headers["X-Slycat-Message"] == f"File not found: {images}/nowhere"


def test_error_headers_stay_one_printable_line(server: LiveServer, remote: str,
                                               images: Path) -> None:
    """A bad path with a newline and non-ASCII: escaped in the header, exact in the body."""
    hostile = str(images / "gone\nwith ünïcode.png")
    response = server.post_json(f"/remotes/{remote}/videos",
                                {"content-type": "video/mp4", "images": [hostile]})
    assert response.status_code == 400
    header = response.headers["X-Slycat-Message"]
    assert "\n" not in header and header.isascii()
    assert header == "File not found: " + str(images) + "/gone\\nwith \\u00fcn\\u00efcode.png"
    assert response.json()["errors"][0]["meta"]["path"] == hostile


def test_unknown_urls_get_the_json_error_body(server: LiveServer) -> None:
    response = server.request("GET", "/no/such/thing")
    assert response.status_code == 404
    assert response.headers["X-Slycat-Message"] == "No such endpoint."
    assert error_of(response)["code"] == "no-route"


def test_non_ascii_digits_are_a_400_not_a_crash(server: LiveServer, remote: str,
                                                images: Path) -> None:
    path = solid_frames(images, [(0, 0, 0)])[0]
    response = server.request("GET", f"/remotes/{remote}/image{path}",
                              params={"max-size": "²"})
    assert response.status_code == 400
    port = server.post_json("/remotes", {"hostname": "127.0.0.1", "username": "u",
                                         "port": "²"})
    assert port.status_code == 400
    assert error_of(port)["source"]["pointer"] == "/port"


def test_the_printed_url_logs_a_browser_in(server: LiveServer) -> None:
    browser = requests.Session()
    landing = browser.get(f"{server.url}/?token={server.token}", timeout=10)
    assert landing.status_code == 200 and landing.url == server.url + "/"
    assert "framewire_user" in browser.cookies
    sid = "0123456789abcdef0123456789abcdef"
    assert browser.get(f"{server.url}/remotes/{sid}", timeout=10).status_code == 404
    wrong = requests.Session()
    wrong.get(f"{server.url}/?token=nope", timeout=10)
    assert "framewire_user" not in wrong.cookies


def test_a_deeply_nested_body_is_a_400(server: LiveServer, remote: str) -> None:
    for depth in (200_000, 40):
        response = server.request("POST", f"/remotes/{remote}/videos",
                                  data="[" * depth + "]" * depth,
                                  headers={"Content-Type": "application/json"})
        assert response.status_code == 400, depth
        assert response.headers["X-Slycat-Message"] == (
            "The request body is too deeply nested (more than 32 levels of lists and "
            "objects).")
        assert error_of(response)["code"] == "too-deep"
    nested = {"content-type": "video/mp4", "images": [[[[[["/x.png"]]]]]]}
    response = server.post_json(f"/remotes/{remote}/videos", nested)
    assert response.status_code == 400 and error_of(response)["code"] != "too-deep"


def raw_request(server: LiveServer, data: bytes) -> bytes:
    """Send bytes as they are (no client fixes them up) and read the whole answer."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        answer = b""
        try:
            connection.sendall(data)
            while chunk := connection.recv(1 << 16):
                answer += chunk
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass  # the server closed the connection (as it may) before or after answering
    return answer


def test_hostile_inputs_are_clear_4xx(server: LiveServer, remote: str) -> None:
    # A lone surrogate is valid JSON but no path: the field is named, nothing reaches
    # the agent (which could not encode it).
    body = b'{"content-type": "video/mp4", "images": ["/data/\\ud800.png"]}'
    response = server.request("POST", f"/remotes/{remote}/videos", data=body,
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["source"]["pointer"] == "/images/0"
    assert response.headers["X-Slycat-Message"].startswith(
        "images.0 is not text: it holds a lone UTF-16 surrogate")
    key = server.request("POST", f"/remotes/{remote}/browse/tmp",
                         data=b'{"file-allow": {"\\udfff": 1}}',
                         headers={"Content-Type": "application/json"})
    assert key.status_code == 400 and "file-allow is not text" in key.headers[
        "X-Slycat-Message"]
    # Content-Length that is not a number of bytes: 400 saying so, not "too large".
    for length in (b"abc", b"-1"):
        answer = raw_request(server, b"POST /remotes/%s/videos HTTP/1.1\r\nHost: x\r\n"
                             b"Authorization: Bearer %s\r\nContent-Length: %s\r\n\r\n{}"
                             % (remote.encode(), server.token.encode(), length))
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert b"X-Slycat-Message: The Content-Length header is invalid: '%s' is not a " \
               b"number of bytes." % length in answer
    # Headers over 64 KiB: 431; over the 1 MiB the server reads, the connection closes.
    big = server.request("GET", "/videos", headers={"X-Padding": "a" * 70_000})
    assert big.status_code == 431
    assert big.headers["X-Slycat-Message"].startswith("The request's headers are ")
    assert error_of(big)["code"] == "headers-too-large"
    huge = raw_request(server, b"GET /videos HTTP/1.1\r\nHost: x\r\nX-Padding: "
                       + b"a" * (2 << 20) + b"\r\n\r\n")
    assert huge == b""
    assert server.request("GET", "/videos").status_code == 200, "and the server goes on"

"""docs/openapi.yaml against the server: the same routes and methods, and a
Schemathesis run against the live app that finds no 5xx and no answer the
document does not describe."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from re import _constants as sre_constants
from re import _parser as sre_parser
from typing import Any, Callable, Iterator

import pytest
import schemathesis
import tornado.web
import yaml

from server.http.app import make_app
from server.users import UserFile
from tests.fixtures import SSHD, LiveServer, free_port, make_config, solid_frames

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "head", "post", "delete", "put", "patch", "options")

# -- (a) the document names every route and method the application serves ---------


def implemented(handler: type[tornado.web.RequestHandler]) -> set[str]:
    """The HTTP methods a handler class answers (not RequestHandler's 405 defaults)."""
    return {method for method in METHODS
            if getattr(handler, method) is not getattr(tornado.web.RequestHandler, method)}


def argument_names(handler: type[tornado.web.RequestHandler]) -> list[str]:
    """The names of the path arguments the handler's methods take, in order."""
    found: set[tuple[str, ...]] = set()
    for method in implemented(handler):
        parameters = list(inspect.signature(getattr(handler, method)).parameters.values())[1:]
        found.add(tuple(p.name for p in parameters if p.default is inspect.Parameter.empty
                        and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD))
    assert len(found) == 1, f"{handler.__name__}'s methods disagree on their arguments: {found}"
    return list(found.pop())


def template(pattern: str, names: list[str]) -> str:
    """The OpenAPI path of a Tornado route regex: each group becomes ``{name}``.

    Literal characters at the start of a group stay outside it (``file(/.*)``
    is ``file/{path}``), a group that only matches the empty string (``/()``)
    disappears, an optional trailing slash and ``$`` are dropped.
    """
    parsed = list(sre_parser.parse(pattern))
    names = list(names)
    text = ""
    for index, (op, arg) in enumerate(parsed):
        if op is sre_constants.LITERAL:
            text += chr(arg)
        elif op is sre_constants.SUBPATTERN:
            items = list(arg[-1])
            while items and items[0][0] is sre_constants.LITERAL:
                text += chr(items.pop(0)[1])
            assert names, f"{pattern}: more groups than the handler takes arguments"
            name = names.pop(0)
            if items:
                text += "{" + name + "}"
        elif op is sre_constants.AT and arg is sre_constants.AT_END:
            continue
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) and arg[0] == 0 \
                and all(kind is sre_constants.AT for kind, _ in parsed[index + 1:]):
            continue  # an optional tail such as "/?"
        else:
            raise AssertionError(f"{pattern}: cannot turn {op} into an OpenAPI path")
    assert not names, f"{pattern}: the handler takes more arguments than it has groups"
    return text


@pytest.fixture
def served(tmp_path: Path) -> dict[str, tuple[re.Pattern[str], set[str]]]:
    """Every route of the application: its OpenAPI path, regex and methods."""
    config = make_config(tmp_path / "state")

    async def rules() -> list[Any]:
        app = make_app(config)
        await app.settings["framewire_services"].close()
        return list(app.wildcard_router.rules)

    routes = {}
    for rule in asyncio.run(rules()):
        handler = rule.target
        path = template(rule.matcher.regex.pattern, argument_names(handler))
        assert path not in routes, f"two routes for {path}"
        routes[path] = (rule.matcher.regex, implemented(handler))
    return routes


def document() -> dict[str, Any]:
    with open(DOCUMENT, encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.safe_load(handle)
    return data


def test_the_template_of_a_route() -> None:
    assert template(r"/remotes/([^/]+)/videos/([^/]+)/?$", ["sid", "vsid"]) == \
        "/remotes/{sid}/videos/{vsid}"
    assert template(r"/remotes/([^/]+)/file(/.*)$", ["sid", "path"]) == \
        "/remotes/{sid}/file/{path}"
    assert template(r"/()$", ["path"]) == "/"
    assert template(r"/tokens/([0-9a-f]{12})/?$", ["token_id"]) == "/tokens/{token_id}"
    with pytest.raises(AssertionError):
        template(r"/remotes/[a-z]+$", [])


def test_the_document_has_every_route_and_method(
        served: dict[str, tuple[re.Pattern[str], set[str]]]) -> None:
    spec = document()
    paths = spec["paths"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    # Routes under /api are the same handlers as the ones without it (Slycat's
    # client sends them there): the document says so with a server of its own.
    assert {"url": "/api"} in [{"url": entry["url"]} for entry in spec["servers"]]
    aliases = {path for path in served if path.startswith("/api/") and path[4:] in served
               and path not in paths}  # /api/login is a route of its own
    for path in aliases:
        assert served[path][1] == served[path[4:]][1], f"{path}: methods differ"
    served = {path: route for path, route in served.items() if path not in aliases}
    assert sorted(set(served) - set(paths)) == [], "served but not documented"
    assert sorted(set(paths) - set(served)) == [], "documented but not served"
    for path, (regex, methods) in served.items():
        item = paths[path]
        documented = {method for method in item if method in METHODS}
        assert documented == methods, f"{path}: documented {sorted(documented)}, " \
                                      f"served {sorted(methods)}"
        # The template's parameters are the documented path parameters, and a
        # URL made from the template reaches this very route.
        names = re.findall(r"{(\w+)}", path)
        for method in documented:
            parameters = item.get("parameters", []) + item[method].get("parameters", [])
            declared = {p["name"] for p in map(resolve, parameters) if p.get("in") == "path"}
            assert declared == set(names), f"{method.upper()} {path}: path parameters"
        url = re.sub(r"{\w+}", "0123456789ab", path)  # a value every group takes
        assert regex.match(url), f"{url} does not reach {regex.pattern}"


# -- (b) the live server answers only what the document describes -------------------

CHECKS = [getattr(schemathesis.checks, name) for name in (
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance", "response_headers_conformance")]
EXAMPLES_PER_OPERATION = 20
MIN_CASES = 300
REQUEST_TIMEOUT = 30.0


@schemathesis.deserializer("application/x-ndjson")
def ndjson(_context: Any, response: Any) -> list[Any]:
    """A progress stream as the list of its lines (the document describes it so)."""
    return [json.loads(line) for line in response.content.decode("utf-8").splitlines() if line]


# Fuzzed hostnames and URLs never leave loopback: SSH only to 127.0.0.1 (refused
# before any DNS look-up otherwise), no local transport, webhooks and uploads only
# to 127.0.0.1 and rarely retried; a connect timeout that a wrong password's PAM
# delay on a busy machine (3-4 s measured) stays well inside, small image limits, and
# no request rate or failed-login pause for the generated requests to trip over.
FENCE: dict[str, dict[str, Any]] = {
    "ssh": {"allowed_hosts": ["127.0.0.1"], "connect_timeout": 20.0,
            "agent_start_timeout": 30.0},
    "local": {"enabled": False},
    "outgoing": {"allow_hosts": ["127.0.0.1"]},
    "webhooks": {"retry_schedule": [3600.0], "default_timeout": 2.0},
    "limits": {"requests_per_minute": 0, "max_images": 200, "jobs_per_user": 4},
    "auth": {"max_failed_logins": 1_000_000},
}


@pytest.fixture
def server(make_server: Callable[..., LiveServer], sshd: SSHD) -> LiveServer:
    """The conftest server, fenced in for fuzzing, trusting the test sshd."""
    return make_server(**{**FENCE, "ssh": {
        **FENCE["ssh"], "known_hosts": str(sshd.known_hosts),
        "client_keys": [str(sshd.client_key)]}})


@dataclass
class Target:
    """Real ids to put into generated cases, so the handlers behind the 404s are reached.

    ``keeper`` is a finished job with a video and a poster and a webhook log;
    ``victim`` is the job that generated ``DELETE …/videos/{vsid}`` cases delete;
    ``DELETE /remotes/{sid}`` gets a fresh agentless session, never ``sid``.
    """

    server: LiveServer
    sshd: SSHD
    sid: str
    frames: list[str]
    keeper: str = ""
    victim: str = ""
    cases: int = 0
    remade: int = 0
    wrong_logins_left: int = 3
    started: float = field(default_factory=time.monotonic)

    def job(self) -> str:
        hook = f"http://127.0.0.1:{free_port()}/hook"
        response = self.server.post_json(f"/remotes/{self.sid}/videos", {
            "content-type": "video/mp4", "images": self.frames, "poster": True,
            "webhook_event_url": hook, "deliver": [{"url": hook, "method": "POST"}]})
        assert response.status_code == 202, response.headers.get("X-Slycat-Message")
        vsid: str = response.json()["sid"]
        assert self.server.wait_video(self.sid, vsid, timeout=60)["status"] == "succeeded"
        return vsid

    def finished_keeper(self) -> str:
        """The keeper, made again when a generated request deleted its outputs."""
        record = self.server.call(self.server.services.store.get(self.keeper))
        if record is None or record.state != "succeeded":
            self.keeper = self.job()
            self.remade += 1
        return self.keeper

    def aim_login(self, body: dict[str, Any]) -> None:
        """A few times, the test sshd with a wrong password (403; each costs PAM's
        delay).  Never a closed port: its 502 would count as a server error."""
        if self.wrong_logins_left > 0 and "challenge" not in body:
            self.wrong_logins_left -= 1
            body.update(hostname="127.0.0.1", port=self.sshd.port, username=self.sshd.user,
                        password=f"not-{self.sshd.password}")

    def spare_session(self) -> str:
        response = self.server.post_json("/remotes", {
            "hostname": "127.0.0.1", "port": self.sshd.port, "username": self.sshd.user,
            "password": self.sshd.password, "agent": False})
        assert response.status_code == 200, response.headers.get("X-Slycat-Message")
        sid: str = response.json()["sid"]
        return sid

    def aim(self, case: Any) -> None:
        """Real ids in three cases of four, real files in some (chosen by the
        generated values, so a case is aimed the same way each time it is replayed)."""
        parameters = case.path_parameters
        pick = zlib.crc32(f"{case.method} {case.path} {parameters!r} {case.body!r}"
                          .encode()) % 4
        if case.path == "/remotes" and isinstance(case.body, dict) and pick == 3:
            self.aim_login(case.body)
        if not parameters or "sid" not in parameters or pick == 0:
            return
        if case.method == "DELETE" and case.path == "/remotes/{sid}":
            parameters["sid"] = self.spare_session()
            return
        parameters["sid"] = self.sid
        if "vsid" in parameters:
            parameters["vsid"] = self.victim \
                if case.method == "DELETE" and case.path.endswith("/{vsid}") \
                else self.finished_keeper()
        if "name" in parameters and pick > 1:
            parameters["name"] = ("video", "poster")[pick % 2]
        if "delivery_id" in parameters and pick > 1:
            parameters["delivery_id"] = f"msg_{parameters['vsid']}_job_succeeded"
        if "path" in parameters and pick == 2:  # without the leading slash
            parameters["path"] = os.path.dirname(self.frames[0])[1:] \
                if "/browse/" in case.path else self.frames[0][1:]
        if case.path.endswith("/events") and pick == 3:
            case.headers = {**(case.headers or {}), "Accept": "application/x-ndjson"}


@pytest.fixture
def target(server: LiveServer, sshd: SSHD, remote: str, images: Path) -> Iterator[Target]:
    frames = solid_frames(images, [(200, 30, 30), (30, 200, 30)], size=(32, 24))
    made = Target(server, sshd, remote, frames)
    made.keeper = made.job()
    made.victim = made.job()
    made.started = time.monotonic()
    yield made
    seconds = time.monotonic() - made.started
    print(f"\nSchemathesis: {made.cases} cases in {seconds:.1f} s "
          f"(the keeper job made again {made.remade} times)")
    assert made.cases >= MIN_CASES, f"only {made.cases} cases ran"


def load_schema(server: LiveServer) -> Any:
    """The document, set up to fuzz ``server``: a fixed seed (``FRAMEWIRE_FUZZ_SEED``
    picks another), a bounded number of examples, no shrinking, no example database,
    and no generated credentials (each test sends a real bearer token)."""
    config = schemathesis.Config.from_dict({
        "seed": int(os.environ.get("FRAMEWIRE_FUZZ_SEED", "20240501")),
        "suppress-health-check": ["all"],
        "base-url": server.url,
        "request-timeout": REQUEST_TIMEOUT,
        "generation": {"max-examples": EXAMPLES_PER_OPERATION, "database": "none",
                       "no-shrink": True, "with-security-parameters": False},
    })
    return schemathesis.openapi.from_path(DOCUMENT, config=config)


@pytest.fixture
def api_schema(target: Target) -> Any:
    return load_schema(target.server)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.timeout(600)
@schema.parametrize()
def test_the_live_server_keeps_to_the_document(case: Any, target: Target) -> None:
    target.aim(case)
    target.cases += 1
    case.call_and_validate(base_url=target.server.url, checks=CHECKS,
                           headers={"Authorization": f"Bearer {target.server.token}"},
                           timeout=REQUEST_TIMEOUT)


# -- (b, users mode) the account routes, where API tokens exist ---------------------

ACCOUNT_PATHS = r"^/(login|logout|me|tokens|admin)"
PASSWORDS = {"alice": "correct horse battery", "bob": "staple battery horse"}


@dataclass
class Accounts:
    """A users-mode server with an admin (alice) and a plain user (bob), each with an
    API token."""

    server: LiveServer
    tokens: dict[str, str]
    cases: int = 0

    def aim(self, case: Any) -> str:
        """The bearer token to send; real token ids, and right passwords for a JSON
        login, in half the cases."""
        parameters = case.path_parameters
        pick = zlib.crc32(f"{case.method} {case.path} {parameters!r} {case.body!r}"
                          .encode()) % 4
        user = ("alice", "bob")[pick % 2]
        if parameters and "token_id" in parameters and pick < 2:
            # A token of its own to revoke, so the caller's token stays valid.
            _, parameters["token_id"] = self.server.services.auth.tokens.create(user, "spare")
        if case.path == "/login" and isinstance(case.body, dict) and pick < 2 \
                and case.media_type == "application/json":
            case.body.update(username=user, password=PASSWORDS[user])
        return self.tokens[user]


@pytest.fixture
def accounts(make_server: Callable[..., LiveServer]) -> Iterator[Accounts]:
    server = make_server(**{**FENCE, "auth": {**FENCE["auth"], "mode": "users"}})
    users = UserFile(server.config.users_file)
    for name, role in (("alice", "admin"), ("bob", "user")):
        users.add(name, PASSWORDS[name], role)
    tokens = {name: server.services.auth.tokens.create(name, "fuzz")[0] for name in PASSWORDS}
    made = Accounts(server, tokens)
    yield made
    print(f"\nSchemathesis, users mode: {made.cases} cases")


@pytest.fixture
def account_schema(accounts: Accounts) -> Any:
    return load_schema(accounts.server)


account_routes = schemathesis.pytest.from_fixture("account_schema").include(
    path_regex=ACCOUNT_PATHS)


@pytest.mark.timeout(300)
@account_routes.parametrize()
def test_the_account_routes_keep_to_the_document_in_users_mode(
        case: Any, accounts: Accounts) -> None:
    token = accounts.aim(case)
    accounts.cases += 1
    case.call_and_validate(base_url=accounts.server.url, checks=CHECKS,
                           headers={"Authorization": f"Bearer {token}"},
                           timeout=REQUEST_TIMEOUT)

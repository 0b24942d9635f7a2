"""Domain errors, grouped by what failed.  Each carries its HTTP status as data
(``status``); only ``http.base`` reads it and turns an error into a response.

Exception tree::

    FramewireError (500)               something unexpected
    ├── InputError                     the request is wrong: the caller can fix it
    │   ├── BadRequest (400)
    │   │   ├── ValidationError        a field is missing or wrong (names it)
    │   │   ├── RemotePathError        a remote path is missing, a directory, unreadable,
    │   │   │                          not an image, cut short or not decodable
    │   │   └── BadImages              images of a video request are unusable (all listed)
    │   ├── IdempotencyConflict (409)  an Idempotency-Key reused with another body
    │   └── RangeNotSatisfiable (416)
    ├── AccessError                    who the caller is, and what they may do
    │   ├── Unauthorized (401)         no or wrong framewire credentials
    │   │   └── AuthChallenge          the remote host asks questions (keyboard-interactive)
    │   ├── Forbidden (403)            XSRF check failed, admin role required
    │   └── RemoteAuthFailed (403)     the remote host refused the username/password
    ├── NotFound (404)                 unknown or expired session, video, output, …
    │   └── UnknownJob                 the agent does not know the job
    ├── VideoNotReady (409)            the video is not (or no longer) there
    ├── SessionError                   the session cannot do it
    │   └── AgentRequired (400)        it runs no agent, or its agent stopped
    ├── RemoteHostError                the remote host lacks something or failed
    │   ├── RemoteSetupError (400)     no ffmpeg, encoder, filter, Python, space, work dir
    │   ├── UnknownHostKey (400)       the host's key is unknown or changed
    │   └── RemoteFailure (502)        no connection, no agent, an agent that failed
    │       └── AgentStopped           the agent ended (or never started)
    ├── ServerConfigError (400)        the server's own configuration is wrong for this
    │                                  host (a jump entry, a key): the administrator fixes it
    └── LimitError                     over a limit
        ├── PayloadTooLarge (413)      the request body
        ├── TooManyRequests (429)      a rate or concurrency limit; Retry-After when it passes
        └── HeadersTooLarge (431)      the request line and headers
"""

from __future__ import annotations

from typing import Any


class FramewireError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, *, hint: str | None = None, pointer: str | None = None,
                 code: str | None = None, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.pointer = pointer
        if code is not None:
            self.code = code
        self.details = details or []
        self.headers = headers or {}
        # Extra top-level members of the response body (a challenge's prompts).
        self.body: dict[str, Any] = {}

    def errors(self) -> list[dict[str, Any]]:
        """The JSON:API-style ``errors`` list of the response body."""
        first: dict[str, Any] = {"code": self.code, "title": self.message,
                                 "detail": self.hint or self.message}
        if self.pointer:
            first["source"] = {"pointer": self.pointer}
        return [first, *self.details]


# -- the request ------------------------------------------------------------------

class InputError(FramewireError):
    status = 400
    code = "bad-request"


class BadRequest(InputError):
    pass


class ValidationError(BadRequest):
    code = "invalid-field"

    def __init__(self, field: str, message: str, *, hint: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message, hint=hint, pointer="/" + field.replace(".", "/"), code=code)
        self.field = field


class RemotePathError(BadRequest):
    """A remote path that is missing, a directory, not readable or not an image."""


class BadImages(BadRequest):
    """Every unusable image is one entry of the body's ``errors`` (up to 100)."""

    code = "bad-images"

    def errors(self) -> list[dict[str, Any]]:
        return self.details or super().errors()


class IdempotencyConflict(InputError):
    status = 409
    code = "idempotency-key-reused"


class RangeNotSatisfiable(InputError):
    status = 416
    code = "range-not-satisfiable"


# -- who may do what --------------------------------------------------------------

class AccessError(FramewireError):
    status = 403
    code = "forbidden"


class Unauthorized(AccessError):
    status = 401
    code = "unauthorized"


class AuthChallenge(Unauthorized):
    """The remote host asked questions; the body carries them and a challenge id."""

    code = "remote-challenge"

    def __init__(self, challenge: dict[str, Any]) -> None:
        super().__init__(
            "The remote host asks for more answers.",
            hint="POST /remotes again with {\"challenge\": ID, \"responses\": [...]} "
                 "(one answer per prompt).")
        self.body = {"challenge": challenge}


class Forbidden(AccessError):
    pass


class RemoteAuthFailed(AccessError):
    code = "remote-auth-failed"


# -- what is not there (yet) ---------------------------------------------------------

class NotFound(FramewireError):
    status = 404
    code = "not-found"


class UnknownJob(NotFound):
    """The host's agent has no such job (its directory is gone, or another agent's)."""

    code = "unknown-video"


class VideoNotReady(FramewireError):
    status = 409
    code = "video-not-ready"


# -- the session ---------------------------------------------------------------------

class SessionError(FramewireError):
    status = 400
    code = "session"


class AgentRequired(SessionError):
    code = "agent-required"

    def __init__(self, message: str = "Agent required.", **kwargs: Any) -> None:
        kwargs.setdefault("hint", "Create the session without \"agent\": false, "
                                  "or create a new session if its agent stopped.")
        super().__init__(message, **kwargs)


# -- the remote host and its agent ---------------------------------------------------

class RemoteHostError(FramewireError):
    status = 502
    code = "remote-failure"


class RemoteSetupError(RemoteHostError):
    """The host lacks what a video needs: fixed on the host (or its profile)."""

    status = 400
    code = "remote-setup"


class UnknownHostKey(RemoteHostError):
    status = 400
    code = "unknown-host-key"


class RemoteFailure(RemoteHostError):
    status = 502
    code = "remote-failure"


class AgentStopped(RemoteFailure):
    code = "agent-stopped"


# -- the server's own configuration --------------------------------------------------

class ServerConfigError(FramewireError):
    """This server's configuration cannot serve the request (a host profile's jump
    entry, a key that does not load): its administrator fixes it."""

    status = 400
    code = "server-config"


# -- limits ----------------------------------------------------------------------------

class LimitError(FramewireError):
    status = 429
    code = "too-many-requests"


class PayloadTooLarge(LimitError):
    status = 413
    code = "payload-too-large"


class TooManyRequests(LimitError):
    pass


class HeadersTooLarge(LimitError):
    status = 431
    code = "headers-too-large"

"""Domain errors.  Only ``handlers.base`` turns them into HTTP responses.

Exception tree::

    FramewireError
    ├── BadRequest (400)
    │   ├── ValidationError        a request field is missing or wrong
    │   ├── AgentRequired          the session runs no agent
    │   ├── RemotePathError        File not found / Can't read directory / Access denied
    │   ├── BadImages              some images of a video request are unusable
    │   ├── RemoteSetupError       the remote host lacks ffmpeg or an encoder
    │   └── UnknownHostKey         the host's key is unknown or changed
    ├── Unauthorized (401)         no or wrong framewire credentials
    │   └── AuthChallenge          the remote host asks questions (keyboard-interactive)
    ├── Forbidden (403)            XSRF check failed, admin role required
    ├── RemoteAuthFailed (403)     the remote host refused the username/password
    ├── NotFound (404)             unknown or expired session or video
    ├── VideoNotReady (409)
    ├── IdempotencyConflict (409)  an Idempotency-Key reused with another body
    ├── PayloadTooLarge (413)      the request body is over the limit
    ├── RangeNotSatisfiable (416)
    ├── TooManyRequests (429)      a rate or concurrency limit; Retry-After when it passes
    ├── HeadersTooLarge (431)      the request line and headers are over 64 KiB
    └── RemoteFailure (502)        connection, agent start-up or agent failures
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


class BadRequest(FramewireError):
    status = 400
    code = "bad-request"


class ValidationError(BadRequest):
    code = "invalid-field"

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, pointer="/" + field.replace(".", "/"))
        self.field = field


class AgentRequired(BadRequest):
    code = "agent-required"

    def __init__(self, message: str = "Agent required.", **kwargs: Any) -> None:
        kwargs.setdefault("hint", "Create the session without \"agent\": false, "
                                  "or create a new session if its agent stopped.")
        super().__init__(message, **kwargs)


class RemotePathError(BadRequest):
    """A remote path that is missing, a directory, or not readable."""


class BadImages(BadRequest):
    """Every unusable image is one entry of the body's ``errors`` (up to 100)."""

    code = "bad-images"

    def errors(self) -> list[dict[str, Any]]:
        return self.details or super().errors()


class RemoteSetupError(BadRequest):
    code = "remote-setup"


class UnknownHostKey(BadRequest):
    code = "unknown-host-key"


class Unauthorized(FramewireError):
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


class Forbidden(FramewireError):
    status = 403
    code = "forbidden"


class RemoteAuthFailed(FramewireError):
    status = 403
    code = "remote-auth-failed"


class NotFound(FramewireError):
    status = 404
    code = "not-found"


class VideoNotReady(FramewireError):
    status = 409
    code = "video-not-ready"


class IdempotencyConflict(FramewireError):
    status = 409
    code = "idempotency-key-reused"


class PayloadTooLarge(FramewireError):
    status = 413
    code = "payload-too-large"


class HeadersTooLarge(FramewireError):
    status = 431
    code = "headers-too-large"


class TooManyRequests(FramewireError):
    status = 429
    code = "too-many-requests"


class RangeNotSatisfiable(FramewireError):
    status = 416
    code = "range-not-satisfiable"


class RemoteFailure(FramewireError):
    status = 502
    code = "remote-failure"

"""The caller's storage: listing and usage, expiration, deletion."""

from __future__ import annotations

from .base import ApiHandler


class StorageHandler(ApiHandler):
    async def get(self) -> None:
        self.write_json(await self.services.retention.listing(self.user))


class ExpirationHandler(ApiHandler):
    async def get(self) -> None:
        self.write_json({"days": await self.services.retention.days(self.user)})

    async def post(self) -> None:
        days = await self.services.retention.set_days(self.user, self.json_body().get("days"))
        self.write_json({"days": days})


class StorageDeleteHandler(ApiHandler):
    async def post(self) -> None:
        self.write_json(await self.services.retention.delete(self.user, self.json_body()))


routes = [
    (r"/storage/?", StorageHandler),
    (r"/storage/expiration/?", ExpirationHandler),
    (r"/storage/delete/?", StorageDeleteHandler),
]

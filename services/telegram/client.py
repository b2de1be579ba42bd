"""python-telegram-bot clients: one HTTP connection pool per process (per event loop), shared by every bot.

A ``Bot`` is a thin facade bound to one token; the pool behind it is the shared, initialized request
object, so a process that sends for a thousand bots keeps one pool, not a thousand.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import timedelta

from telegram import Bot
from telegram.request import HTTPXRequest

from core.loop_local import LoopLocal
from core.settings import get_settings

_MAX_BOTS = 2000


class BotClients:
    def __init__(self, pool_size: int = 128):
        settings = get_settings()
        self.base_url = settings.telegram_api_base.rstrip("/") + "/bot"
        self._request = HTTPXRequest(connection_pool_size=pool_size, read_timeout=15, pool_timeout=10)
        # getUpdates waits up to the long-poll timeout; it gets its own pool and a longer read timeout.
        self._updates_request = HTTPXRequest(
            connection_pool_size=pool_size, read_timeout=settings.telegram_poll_timeout_seconds + 10
        )
        self._bots: OrderedDict[str, Bot] = OrderedDict()
        self._ready = False

    async def bot(self, token: str) -> Bot:
        if not self._ready:
            await asyncio.gather(self._request.initialize(), self._updates_request.initialize())
            self._ready = True
        bot = self._bots.get(token)
        if bot is None:
            bot = Bot(
                token,
                base_url=self.base_url,
                request=self._request,
                get_updates_request=self._updates_request,
            )
            self._bots[token] = bot
            if len(self._bots) > _MAX_BOTS:
                self._bots.popitem(last=False)
        else:
            self._bots.move_to_end(token)
        return bot

    async def close(self) -> None:
        self._bots.clear()
        await asyncio.gather(self._request.shutdown(), self._updates_request.shutdown())
        self._ready = False


# An HTTP pool is bound to the loop that made it.
_clients = LoopLocal(BotClients)


def clients() -> BotClients:
    """The clients of the running event loop."""
    return _clients.get()


def redact(text: str, token: str) -> str:
    """``text`` safe to log or store: the token (which the Bot API puts in URLs) replaced."""
    return text.replace(token, "<token>") if token else text


def seconds(value: float | timedelta) -> float:
    """A ``retry_after`` as seconds (python-telegram-bot gives an int or a timedelta, by version)."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)

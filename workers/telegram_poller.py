"""The Telegram bot pool: long-polls the bots that have no webhook, ``python -m workers.telegram_poller``.

Run as many as you like; they share the bots out between them through Redis leases.
"""

from __future__ import annotations

import asyncio
import signal

from core import metrics
from core.logging import configure_logging
from core.settings import get_settings
from services.telegram.polling import Poller


async def _main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Poller().run(stop)


def main() -> None:
    configure_logging(get_settings().log_level, process="telegram-poller")
    metrics.serve(metrics.port_at(metrics.TELEGRAM_POLLER_PORT_OFFSET))
    asyncio.run(_main())


if __name__ == "__main__":
    main()

"""supervisord event listener that prints every program's output as ``name | line`` on its stderr.

supervisord sends ``PROCESS_LOG`` events (a header line, then ``len`` bytes: a ``key:value`` line and the
output chunk); the listener answers ``READY`` / ``RESULT``. Chunks are cut anywhere, so each process's
unfinished line waits for its end. supervisord copies this stderr to its own stdout, the terminal.
"""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO

NAME_WIDTH = 15


def parse_header(line: bytes) -> dict[str, str]:
    return dict(token.split(":", 1) for token in line.decode().split())


class Prefixer:
    def __init__(self, out: BinaryIO, width: int = NAME_WIDTH):
        self.out = out
        self.width = width
        self.pending: dict[str, bytes] = {}

    def feed(self, name: str, chunk: bytes) -> None:
        lines = (self.pending.pop(name, b"") + chunk).split(b"\n")
        if lines[-1]:
            self.pending[name] = lines[-1]
        prefix = f"{name.ljust(self.width)} | ".encode()
        for line in lines[:-1]:
            self.out.write(prefix + line.rstrip(b"\r") + b"\n")
        self.out.flush()


def serve(stdin: BinaryIO, stdout: BinaryIO, prefixer: Prefixer) -> None:
    while True:
        stdout.write(b"READY\n")
        stdout.flush()
        header_line = stdin.readline()
        if not header_line:
            return  # supervisord is gone
        header = parse_header(header_line)
        payload = stdin.read(int(header["len"]))
        meta, _, data = payload.partition(b"\n")
        if header.get("eventname", "").startswith("PROCESS_LOG"):
            prefixer.feed(parse_header(meta).get("processname", "?"), data)
        stdout.write(b"RESULT 2\nOK")
        stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=NAME_WIDTH)
    args = parser.parse_args()
    serve(sys.stdin.buffer, sys.stdout.buffer, Prefixer(sys.stderr.buffer, args.width))


if __name__ == "__main__":
    main()

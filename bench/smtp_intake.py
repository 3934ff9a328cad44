"""SMTP intake throughput: casemail's listener against a bare aiosmtpd sink, same run.

The sink answers 250 without storing anything, so the ratio is the price of casemail's
promise: every 250 means the raw message is committed (SQLite with synchronous=FULL, or
PostgreSQL) and turned into a case or a message on one.

    .venv/bin/python -m bench.smtp_intake [--messages 400] [--clients 4] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from bench.pgdb import scratch_database
from casemail.channels.service import add_channel
from casemail.config import Settings
from casemail.db import Database
from casemail.db.migrate import upgrade
from casemail.listener.server import start_listeners

ServerStarter = Callable[[int], Awaitable[list[asyncio.Server]]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_message(i: int, client: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"Customer {client} <customer{client}@customer.example>"
    message["To"] = "support@example.com"
    message["Subject"] = f"Benchmark message {i} from client {client}"
    message["Message-ID"] = f"<bench-{client}-{i}-{time.time_ns()}@customer.example>"
    message.set_content("A paragraph of ordinary text.\n" * 60)
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


class Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def run_server(starter: ServerStarter, port: int) -> tuple[asyncio.AbstractEventLoop, Any]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, list[asyncio.Server]] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["servers"] = loop.run_until_complete(starter(port))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(30)
    return loop, holder["servers"]


def stop_server(loop: asyncio.AbstractEventLoop, servers: list[asyncio.Server]) -> None:
    async def close() -> None:
        for server in servers:
            server.close()

    asyncio.run_coroutine_threadsafe(close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


def send_all(port: int, messages: int, clients: int) -> float:
    """Send ``messages`` split over ``clients`` connections; return messages per second."""
    per_client = messages // clients
    payloads = [[make_message(i, c) for i in range(per_client)] for c in range(clients)]

    def client(c: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            for data in payloads[c]:
                smtp.sendmail(f"customer{c}@customer.example", ["support@example.com"], data)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return per_client * clients / (time.perf_counter() - start)


def sink_starter(port: int) -> Awaitable[list[asyncio.Server]]:
    async def start() -> list[asyncio.Server]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Sink(), decode_data=False), host="127.0.0.1", port=port
        )
        return [server]

    return start()


def casemail_starter(home: Path, url: str) -> ServerStarter:
    db = Database.from_url(url)
    upgrade(db)
    with db.write() as session:
        add_channel(session, address="support@example.com")

    def starter(port: int) -> Awaitable[list[asyncio.Server]]:
        settings = Settings(home=home, database_url=url, smtp_port=port, smtp_starttls=False)
        return start_listeners(settings, db)

    return starter


def measure(name: str, starter: ServerStarter, messages: int, clients: int) -> float:
    port = free_port()
    loop, servers = run_server(starter, port)
    try:
        send_all(port, max(clients, messages // 10), clients)  # warm-up
        rate = send_all(port, messages, clients)
    finally:
        stop_server(loop, servers)
    print(f"{name:<28} {rate:9.1f} messages/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    size = len(make_message(0, 0))
    print(f"{args.messages} messages of {size} bytes over {args.clients} connections")
    reference = measure("reference: aiosmtpd sink", sink_starter, args.messages, args.clients)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        url = f"sqlite:///{home / 'bench.db'}"
        rate = measure("casemail, SQLite", casemail_starter(home, url), args.messages, args.clients)
        print(f"  ratio to reference: {rate / reference:.3f}")
        with scratch_database(args.pg) as pg_url:
            if pg_url:
                starter = casemail_starter(home, pg_url)
                rate = measure("casemail, PostgreSQL", starter, args.messages, args.clients)
                print(f"  ratio to reference: {rate / reference:.3f}")


if __name__ == "__main__":
    main()

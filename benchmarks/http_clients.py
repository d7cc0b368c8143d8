"""HTTP clients side by side: the CPU this process spends per request at fal.

32 requests at once, each with its own fal key (as 32 visitors bringing theirs),
against the fake fal service in its own process (fal latency 2 s). Each request
is what the app does at fal: submit, follow the status stream to COMPLETED, GET
the result. Six ways, alternating over the rounds (all warmed up first):

- the app's adapter: `backend.fal` as configured, one fal_client client per key
  (fal_client layers two httpx clients: its own, and its backup-domain transport's);
- plain httpx, one client (pool) per key;
- plain httpx, one client (pool) shared by every key (the key in each request);
- httpx with aiohttp underneath (PyPI `httpx-aiohttp`: an httpx client whose
  transport is an aiohttp session), one per key;
- httpx2 (PyPI `httpx2`, the successor fork of httpx), one client per key, with
  its own server-sent-events reader;
- aiohttp on its own, one session per key: the floor for any aiohttp transport.

httpx-aiohttp, aiohttp and httpx2 are not the app's dependencies (they are in
requirements-dev.txt for this comparison): a variant whose package is missing is
left out, with a line saying so.

Figure: CPU time of this process (user + system) per request, median over rounds.

    python -m benchmarks.http_clients [--smoke]
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    APP,
    FakeProcess,
    Row,
    benchmark_args,
    median,
    report,
    use_fake_env,
    workdir,
)

ENDPOINT = "fal-ai/gpt-image-1.5"
BODY = {"prompt": "a lighthouse at dusk", "quality": "low"}


def keys(count: int) -> list[str]:
    return [f"{i:08x}-0000-4000-8000-{i:012x}:{i:032x}" for i in range(count)]


async def plain_request(http: Any, queue: str, key: str | None) -> None:
    from httpx_sse import EventSource

    headers = {"Authorization": f"Key {key}"} if key else {}
    submitted = (await http.post(f"https://{queue}/{ENDPOINT}", json=BODY, headers=headers)).json()
    async with http.stream(
        "GET", submitted["status_url"] + "/stream", params={"logs": "1"}, headers=headers
    ) as response:
        async for event in EventSource(response).aiter_sse():
            if event.data and json.loads(event.data)["status"] == "COMPLETED":
                break
    (await http.get(submitted["response_url"], headers=headers)).raise_for_status()


async def httpx2_request(http: Any, queue: str) -> None:
    import httpx2

    submitted = (await http.post(f"https://{queue}/{ENDPOINT}", json=BODY)).json()
    async with http.stream(
        "GET", submitted["status_url"] + "/stream", params={"logs": "1"}
    ) as response:
        async for event in httpx2.EventSource(response):
            if event.data and json.loads(event.data)["status"] == "COMPLETED":
                break
    (await http.get(submitted["response_url"])).raise_for_status()


async def aiohttp_request(session: Any, queue: str) -> None:
    async with session.post(f"https://{queue}/{ENDPOINT}", json=BODY) as response:
        submitted = await response.json()
    async with session.get(submitted["status_url"] + "/stream", params={"logs": "1"}) as response:
        # Server-sent events, read by hand: `data:` lines, the rest skipped.
        async for line in response.content:
            if line.startswith(b"data:") and json.loads(line[5:])["status"] == "COMPLETED":
                break
    async with session.get(submitted["response_url"]) as response:
        response.raise_for_status()
        await response.read()


def optional_ways(names: list[str], queue: str) -> tuple[dict[str, Any], list[Any]]:
    """The variants whose package is installed, and what to close after."""
    import ssl

    trust = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    ways: dict[str, Any] = {}
    closers: list[Any] = []
    auth = {key: {"Authorization": f"Key {key}"} for key in names}
    try:
        from httpx_aiohttp import HttpxAiohttpClient
    except ImportError:
        print("  (httpx-aiohttp not installed: its variant left out)")
    else:
        via_aiohttp = {key: HttpxAiohttpClient(headers=auth[key], verify=trust) for key in names}
        ways["httpx over aiohttp, a client per key"] = lambda key: plain_request(
            via_aiohttp[key], queue, None
        )
        closers += [client.aclose for client in via_aiohttp.values()]
    try:
        import httpx2
    except ImportError:
        print("  (httpx2 not installed: its variant left out)")
    else:
        per_key2 = {key: httpx2.AsyncClient(headers=auth[key], verify=trust) for key in names}
        ways["httpx2, a client per key"] = lambda key: httpx2_request(per_key2[key], queue)
        closers += [client.aclose for client in per_key2.values()]
    try:
        import aiohttp
    except ImportError:
        print("  (aiohttp not installed: its variant left out)")
    else:
        sessions = {
            key: aiohttp.ClientSession(headers=auth[key], connector=aiohttp.TCPConnector(ssl=trust))
            for key in names
        }
        ways["aiohttp alone, a session per key"] = lambda key: aiohttp_request(sessions[key], queue)
        closers += [session.close for session in sessions.values()]
    return ways, closers


async def adapter_request(clients: Any, key: str) -> None:
    import contextlib

    submission = await clients.for_key(key).submit(ENDPOINT, BODY)
    statuses = submission.statuses(with_logs=True, open_s=15, idle_s=40)
    async with contextlib.aclosing(statuses):
        async for _ in statuses:
            pass
    await submission.result()


async def measure(smoke: bool, queue: str, count: int) -> dict[str, list[float]]:
    import httpx

    from backend import fal

    rounds = 2 if smoke else 6
    names = keys(count)
    clients = fal.Clients(timeout_s=15)
    per_key = {key: httpx.AsyncClient(headers={"Authorization": f"Key {key}"}) for key in names}
    shared = httpx.AsyncClient(limits=httpx.Limits(max_connections=200))
    ways = {
        "the app's adapter (fal_client per key)": lambda key: adapter_request(clients, key),
        "plain httpx, a pool per key": lambda key: plain_request(per_key[key], queue, None),
        "plain httpx, one shared pool": lambda key: plain_request(shared, queue, key),
    }
    optional, closers = optional_ways(names, queue)
    ways.update(optional)
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    for warm in ways.values():
        await asyncio.gather(*(warm(key) for key in names))
    for index in range(rounds):
        order = list(ways.items())
        order = order[index % len(order) :] + order[: index % len(order)]
        for name, way in order:
            before = time.process_time()
            await asyncio.gather(*(way(key) for key in names))
            cpu[name].append((time.process_time() - before) * 1000 / count)
    for client in per_key.values():
        await client.aclose()
    await shared.aclose()
    for close in closers:
        await close()
    return cpu


def main(smoke: bool, app_path: Path = APP) -> None:
    del app_path  # nothing of the app's process is measured here
    tmp = workdir("http-clients")
    with FakeProcess(tmp, latency=1.0 if smoke else 2.0) as fake:
        use_fake_env(fake.env)
        count = 8 if smoke else 32
        cpu = asyncio.run(measure(smoke, os.environ["FAL_QUEUE_RUN_HOST"], count))
    print("http clients: CPU of this process per request (submit, status stream, result)")
    for name, values in cpu.items():
        print(
            f"  {name:<42} median {median(values):.1f} ms ({', '.join(f'{v:.1f}' for v in values)})"
        )
    names = list(cpu)
    report(
        Row(
            f"HTTP: client CPU per request, {count} keys at once, the app's adapter",
            {"": median(cpu[names[0]])},
            unit=" ms",
            digits=1,
            floors={name: median(cpu[name]) for name in names[1:]},
        )
    )


if __name__ == "__main__":
    args = benchmark_args(__doc__.splitlines()[0]).parse_args()
    main(args.smoke, args.app)

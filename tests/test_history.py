"""Per-browser run history in server memory."""

from __future__ import annotations

import threading
import time

import pytest

from backend.history import HistoryEntry, HistoryStore, entry_from_result
from backend.schema import (
    EDIT_ENDPOINT,
    TEXT_TO_IMAGE_ENDPOINT,
    GenerationResult,
    ResultImage,
    Timings,
)

ARGUMENTS = {
    "prompt": "a red fox in snow, watercolor, soft light",
    "image_size": "1024x1024",
    "background": "auto",
    "quality": "high",
    "num_images": 1,
    "output_format": "png",
    "sync_mode": False,
}


def entry(
    number: int = 0, *, cost: float = 0.1, demo: bool = False, prompt: str = ""
) -> HistoryEntry:
    return HistoryEntry(
        entry_id=f"entry-{number}",
        tab="generate",
        prompt=prompt or f"prompt {number}",
        parameters={},
        image_paths=(),
        cost_usd=cost,
        seconds=1.0,
        request_id=f"request-{number}",
        created=float(number),
        demo=demo,
    )


def result(**changes) -> GenerationResult:
    values = {
        "endpoint": TEXT_TO_IMAGE_ENDPOINT,
        "request_id": "0a1b2c3d",
        "arguments": dict(ARGUMENTS),
        "images": [ResultImage("/tmp/r/a-1.png", "image/png", 1024, 1024, 10, None)],
        "timings": Timings(2.0, 12.0, 0.2, 14.2),
        "key_source": "your key",
        **changes,
    }
    return GenerationResult(**values)


# --- entries --------------------------------------------------------------------------


def test_an_entry_from_a_generation():
    made = entry_from_result(result(), "generate", 0.133)
    assert made.tab == "generate"
    assert made.prompt == ARGUMENTS["prompt"]
    assert made.parameters == ARGUMENTS
    assert made.image_paths == ("/tmp/r/a-1.png",)
    assert made.cost_usd == 0.133
    assert made.seconds == pytest.approx(14.2)
    assert made.request_id == "0a1b2c3d"
    assert made.demo is False
    assert abs(made.created - time.time()) < 5
    assert made.entry_id != entry_from_result(result(), "generate", 0.133).entry_id


def test_an_edit_entry_keeps_no_images_and_no_key():
    arguments = {
        **ARGUMENTS,
        "image_size": "auto",
        "input_fidelity": "low",
        "image_urls": ["data:image/png;base64,AAAA"],
        "mask_image_url": "https://fal.media/mask.png",
    }
    made = entry_from_result(result(endpoint=EDIT_ENDPOINT, arguments=arguments), "edit", 0.2)
    assert made.parameters == {
        **ARGUMENTS,
        "image_size": "auto",
        "input_fidelity": "low",
    }
    assert "your key" not in repr(made)


def test_demo_results_make_demo_entries():
    made = entry_from_result(result(request_id="demo-1234", key_source="demo"), "generate", 0.133)
    assert made.demo is True
    assert made.caption().split(" · ")[1] == "demo"


def test_an_unknown_tab_is_a_programming_error():
    with pytest.raises(ValueError):
        entry_from_result(result(), "upscale", 0.1)


def test_captions_are_short():
    made = entry_from_result(result(), "generate", 0.133)
    assert made.caption() == "a red fox in snow, watercolor, soft… · $0.13 · 14.2 s"
    short = entry(1, cost=0.009, prompt="a cat\non a\tmat")
    assert short.caption() == "a cat on a mat · $0.009 · 1.0 s"


# --- the store -------------------------------------------------------------------------


def test_entries_are_newest_first_and_unknown_browsers_have_none():
    store = HistoryStore()
    for number in range(3):
        store.add("browser-a", entry(number))
    assert [e.entry_id for e in store.entries("browser-a")] == ["entry-2", "entry-1", "entry-0"]
    assert store.entries("nobody") == []
    assert store.get("nobody", "entry-1") is None
    assert store.total_cost("nobody") == 0.0


def test_the_per_browser_cap_drops_the_oldest():
    store = HistoryStore(per_browser=3)
    for number in range(5):
        store.add("a", entry(number))
    assert [e.entry_id for e in store.entries("a")] == ["entry-4", "entry-3", "entry-2"]
    assert store.get("a", "entry-0") is None
    assert store.get("a", "entry-3") == entry(3)


def test_browsers_are_isolated():
    store = HistoryStore()
    store.add("a", entry(1, cost=0.5))
    store.add("b", entry(2, cost=0.25))
    assert [e.entry_id for e in store.entries("a")] == ["entry-1"]
    assert [e.entry_id for e in store.entries("b")] == ["entry-2"]
    assert store.get("b", "entry-1") is None  # another browser's entry id finds nothing
    assert store.total_cost("a") == 0.5
    assert store.total_cost("b") == 0.25


def test_the_least_recently_seen_browser_is_forgotten():
    store = HistoryStore(browsers=2)
    store.add("a", entry(1))
    store.add("b", entry(2))
    store.entries("a")  # a is seen again, so b is now the oldest
    store.add("c", entry(3))
    assert store.entries("b") == []
    assert len(store.entries("a")) == 1 and len(store.entries("c")) == 1


def test_the_total_excludes_demo_runs_and_outlives_the_cap():
    store = HistoryStore(per_browser=2)
    store.add("a", entry(1, cost=0.133))
    store.add("a", entry(2, cost=0.5, demo=True))
    store.add("a", entry(3, cost=0.2))
    assert store.total_cost("a") == pytest.approx(0.333)
    assert [e.entry_id for e in store.entries("a")] == ["entry-3", "entry-2"]


def test_adding_the_same_entry_twice_counts_it_once():
    store = HistoryStore()
    store.add("a", entry(1, cost=0.1))
    store.add("a", entry(1, cost=0.1))
    assert len(store.entries("a")) == 1
    assert store.total_cost("a") == pytest.approx(0.1)


def test_entries_returns_a_copy():
    store = HistoryStore()
    store.add("a", entry(1))
    store.entries("a").clear()
    assert len(store.entries("a")) == 1


def test_caps_must_be_positive():
    with pytest.raises(ValueError):
        HistoryStore(per_browser=0)
    with pytest.raises(ValueError):
        HistoryStore(browsers=0)


def test_concurrent_adds_lose_nothing():
    store = HistoryStore(per_browser=10_000)

    def add_many(thread: int) -> None:
        for number in range(500):
            store.add("a", entry(thread * 1000 + number, cost=0.01))

    threads = [threading.Thread(target=add_many, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.entries("a")) == 4000
    assert store.total_cost("a") == pytest.approx(40.0)

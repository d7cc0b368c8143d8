"""Run history in the app's SQLite database (real SQLite, real files)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from backend.database import Database
from backend.history import History, HistoryEntry, HistoryFile, NewRun
from backend.metadata import read_metadata
from backend.schema import TEXT_TO_IMAGE_ENDPOINT, GenerationResult, ResultImage, Timings

PARAMETERS = {
    "image_size": "1024x1024",
    "background": "auto",
    "quality": "high",
    "num_images": 1,
    "output_format": "png",
}
PROMPT = "a red fox in snow, watercolor, soft light"


def new_run(browser: str = "browser-a", *, prompt: str = PROMPT, **changes) -> NewRun:
    values = {
        "tab": "generate",
        "endpoint": TEXT_TO_IMAGE_ENDPOINT,
        "prompt": prompt,
        "parameters": dict(PARAMETERS),
        "cost_usd": 0.133,
        "key_source": "your key",
        "browser_id": browser,
        **changes,
    }
    return NewRun(**values)


def downloaded(folder: Path, name: str = "a-1.png", fmt: str = "PNG") -> ResultImage:
    """An image as fal's result would have been downloaded."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    Image.new("RGB", (8, 8), "red").save(path, fmt)
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]
    return ResultImage(str(path), mime, 8, 8, path.stat().st_size, f"https://fal.media/{name}")


def result(images: list[ResultImage], *, prompt: str = PROMPT, request_id: str = "req-1"):
    return GenerationResult(
        endpoint=TEXT_TO_IMAGE_ENDPOINT,
        request_id=request_id,
        arguments={"prompt": prompt, **PARAMETERS},
        images=images,
        timings=Timings(1.0, 12.0, 0.2, 14.2),
        key_source="your key",
    )


@pytest.fixture
def store(tmp_path: Path):
    database = Database(tmp_path / "data")
    yield History(database, tmp_path / "outputs")
    database.close()


def run(coro):
    return asyncio.run(coro)


def test_the_schema_is_migrated_to_the_latest_version(tmp_path):
    database = Database(tmp_path)
    try:
        assert database.version == 2
        tables = database.run_now(
            lambda c: {row[0] for row in c.execute("SELECT name FROM sqlite_master")}
        )
        assert {"host_key_spend", "runs", "run_files"} <= tables
        mode = database.run_now(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
    finally:
        database.close()


def test_a_version_1_file_is_migrated_and_keeps_its_ledger(tmp_path):
    # A file as the previous release left it: version 1, with a budget entry.
    connection = sqlite3.connect(tmp_path / "studio.sqlite3")
    connection.executescript(
        "CREATE TABLE host_key_spend (id INTEGER PRIMARY KEY, visitor TEXT NOT NULL,"
        " day TEXT NOT NULL, usd REAL NOT NULL, refunded INTEGER NOT NULL DEFAULT 0,"
        " created TEXT NOT NULL DEFAULT '');"
        "INSERT INTO host_key_spend (visitor, day, usd) VALUES ('v', '2026-01-01', 0.5);"
        "PRAGMA user_version = 1;"
    )
    connection.close()
    database = Database(tmp_path)
    try:
        assert database.version == 2
        spent = database.run_now(lambda c: c.execute("SELECT usd FROM host_key_spend").fetchall())
        assert spent == [(0.5,)]
    finally:
        database.close()


def test_a_run_is_recorded_before_it_is_sent_and_finished_with_its_files(store, tmp_path):
    run_id = run(store.start(new_run()))
    [entry] = run(store.entries("browser-a"))
    assert (entry.entry_id, entry.status, entry.files) == (run_id, "running", ())
    assert entry.parameters == PARAMETERS and entry.prompt == PROMPT
    run(store.submitted(run_id, "req-1"))
    assert run(store.get("browser-a", run_id)).request_id == "req-1"

    image = downloaded(tmp_path / "results")
    finished = run(store.finish(run_id, result([image])))
    assert finished is not None and finished.status == "finished"
    [kept] = finished.files
    assert kept.fal_url == "https://fal.media/a-1.png"
    assert Path(kept.path).parent == (tmp_path / "outputs").resolve()
    # The kept copy carries its record, as any saved output does.
    record = read_metadata(Path(kept.path).read_bytes())
    assert record["parameters"]["prompt"] == PROMPT
    assert record["request_id"] == "req-1"
    assert finished.seconds == pytest.approx(14.2)
    assert finished.key_source == "your key"


def test_a_jpeg_is_kept_with_its_sidecar_and_deleted_with_it(store, tmp_path):
    run_id = run(store.start(new_run()))
    image = downloaded(tmp_path / "results", "a-1.jpeg", "JPEG")
    finished = run(store.finish(run_id, result([image])))
    path = Path(finished.files[0].path)
    sidecar = path.with_name(path.name + ".json")
    assert json.loads(sidecar.read_text())["request_id"] == "req-1"
    assert run(store.delete("browser-a", run_id)) is True
    assert not path.exists() and not sidecar.exists()
    assert run(store.get("browser-a", run_id)) is None


def test_another_browser_can_neither_see_nor_delete_a_run(store, tmp_path):
    run_id = run(store.start(new_run("browser-a")))
    run(store.finish(run_id, result([downloaded(tmp_path / "r")])))
    assert run(store.entries("browser-b")) == []
    assert run(store.get("browser-b", run_id)) is None
    assert run(store.delete("browser-b", run_id)) is False
    kept = run(store.get("browser-a", run_id)).files[0].path
    assert Path(kept).exists()
    # The local "All runs" view reads every browser's.
    assert [e.entry_id for e in run(store.entries(None))] == [run_id]


def test_search_by_prompt_and_filter_by_tab(store):
    prompts = ["a red fox", "a blue heron at dusk", "100% cotton_shirt", "Red Panda"]
    ids = {p: run(store.start(new_run(prompt=p))) for p in prompts}
    edit = run(store.start(new_run(prompt="a red door", tab="edit")))

    def found(**filters) -> set[str]:
        return {e.entry_id for e in run(store.entries("browser-a", **filters))}

    assert found(search="red") == {ids["a red fox"], ids["Red Panda"], edit}
    assert found(search="red", tab="generate") == {ids["a red fox"], ids["Red Panda"]}
    assert found(tab="edit") == {edit}
    # LIKE's wildcards in the search are plain characters.
    assert found(search="100%") == {ids["100% cotton_shirt"]}
    assert found(search="_") == {ids["100% cotton_shirt"]}
    assert found(search="zebra") == set()


def test_totals_count_finished_runs_that_were_not_demo_runs(store, tmp_path):
    for cost, demo in ((0.133, False), (0.5, True)):
        run_id = run(store.start(new_run(cost_usd=cost, demo=demo)))
        run(store.finish(run_id, result([downloaded(tmp_path / "r")])))
    failed = run(store.start(new_run(cost_usd=1.0)))
    run(store.end(failed, "failed", "fal refused it"))
    totals = run(store.totals("browser-a"))
    assert totals.session_usd == pytest.approx(0.133)
    assert totals.today_usd == pytest.approx(0.133)
    assert totals.runs == 2, "finished runs (the failed one has nothing to show)"
    assert run(store.totals("nobody")).runs == 0


def test_recover_marks_unfinished_runs_interrupted_and_leaves_no_stray_file(store, tmp_path):
    done = run(store.start(new_run(prompt="finished one")))
    run(store.finish(done, result([downloaded(tmp_path / "r", "d.png")])))
    sent = run(store.start(new_run(prompt="sent, never finished")))
    run(store.submitted(sent, "req-sent"))
    # A crash in the middle of keeping files: rows recorded, one file half written.
    saving = run(store.start(new_run(prompt="crashed while saving")))
    run(store.submitted(saving, "req-saving"))
    planned = store.kept_dir / "half-written.png"
    store._database.run_now(
        lambda c: (
            c.execute("UPDATE runs SET status = 'saving' WHERE id = ?", (saving,)),
            c.execute(
                "INSERT INTO run_files (run_id, number, path) VALUES (?, 0, ?)",
                (saving, str(planned)),
            ),
        )
    )
    planned.write_bytes(b"\x89PNG half")
    # And a finished run whose file someone removed by hand.
    gone = run(store.start(new_run(prompt="file removed by hand")))
    run(store.finish(gone, result([downloaded(tmp_path / "r", "g.png")])))
    Path(run(store.get(None, gone)).files[0].path).unlink()

    assert store.recover() == 2
    by_prompt = {e.prompt: e for e in run(store.entries(None))}
    assert by_prompt["sent, never finished"].status == "interrupted"
    assert by_prompt["sent, never finished"].request_id == "req-sent"
    assert by_prompt["sent, never finished"].can_fetch
    assert by_prompt["crashed while saving"].status == "interrupted"
    assert by_prompt["crashed while saving"].files == ()
    assert not planned.exists()
    assert by_prompt["file removed by hand"].files == ()
    assert by_prompt["finished one"].status == "finished"
    assert_outputs_agree(store)


def assert_outputs_agree(store: History) -> None:
    """Every row's file exists, and every image in the outputs folder has its row."""
    rows = store._database.run_now(lambda c: c.execute("SELECT path FROM run_files").fetchall())
    paths = {Path(row[0]) for row in rows}
    assert all(path.is_file() for path in paths)
    assert store.kept_dir is not None
    images = {p for p in store.kept_dir.glob("*") if not p.name.endswith(".json")}
    assert images <= paths


def test_concurrent_writes_from_many_runs_are_never_locked(store, tmp_path):
    images = [downloaded(tmp_path / "r", f"{n}.png") for n in range(4)]

    async def one(number: int) -> str:
        run_id = await store.start(new_run(f"browser-{number % 5}", prompt=f"run {number}"))
        await store.submitted(run_id, f"req-{number}")
        await store.finish(run_id, result([images[number % 4]], request_id=f"req-{number}"))
        await store.totals(f"browser-{number % 5}")
        return str(run_id)

    async def many() -> list[str]:
        return await asyncio.gather(*(one(n) for n in range(120)))

    ids = run(many())
    assert len(set(ids)) == 120
    entries = run(store.entries(None, limit=1000))
    assert len(entries) == 120
    assert {e.status for e in entries} == {"finished"}
    assert_outputs_agree(store)


def test_a_second_process_writing_the_same_file_waits_instead_of_failing(store, tmp_path):
    # Another connection (as a second app process would have) writes at the same time.
    other = Database(tmp_path / "data")
    try:

        async def both() -> None:
            await asyncio.gather(
                *(store.start(new_run(prompt=f"a {n}")) for n in range(50)),
                *(History(other, None).start(new_run(prompt=f"b {n}")) for n in range(50)),
            )

        run(both())
    finally:
        other.close()
    assert len(run(store.entries("browser-a", limit=500))) == 100


def test_captions_are_short():
    entry = HistoryEntry(
        entry_id="e",
        tab="generate",
        endpoint=TEXT_TO_IMAGE_ENDPOINT,
        prompt=PROMPT,
        parameters={},
        files=(HistoryFile("/x.png", None),),
        cost_usd=0.133,
        seconds=14.2,
        request_id="r",
        created=0.0,
        demo=False,
    )
    assert entry.caption() == "a red fox in snow, watercolor, soft… · $0.13 · 14.2 s"
    demo = HistoryEntry(**{**entry.__dict__, "demo": True, "status": "interrupted"})
    assert demo.caption() == "a red fox in snow, watercolor, soft… · demo · interrupted"
    assert not demo.can_fetch  # nothing at fal to fetch for a demo run
    batch = HistoryEntry(**{**entry.__dict__, "batch_id": "d3b7aa"})
    assert batch.caption().startswith("▦ batch d3b7 · a red fox")
    compared = HistoryEntry(**{**entry.__dict__, "batch_id": "compare-9f01bb"})
    assert compared.caption().startswith("▦ compare 9f01 · a red fox")


def test_all_runs_is_for_a_local_app_never_a_space(tmp_path):
    from backend.demo import DemoClient
    from backend.service import RunService
    from backend.settings import Settings

    async def listed(settings: Settings) -> int:
        service = RunService(settings, fal=DemoClient(settings), demo=DemoClient(settings))
        await service.history.start(new_run("someone-else"))
        entries, _ = await service.views.history_of(None)
        return len(entries)

    assert run(listed(Settings(data_dir=tmp_path / "local"))) == 1
    assert run(listed(Settings(data_dir=tmp_path / "space", space_id="me/studio"))) == 0


def test_a_thumbnail_is_small_made_once_and_none_for_a_broken_file(tmp_path):
    from backend.history import thumbnail

    source = tmp_path / "big.png"
    Image.new("RGBA", (1536, 1024), (255, 0, 0, 128)).save(source)
    made = thumbnail(str(source), tmp_path / "thumbs")
    assert made is not None
    with Image.open(made) as small:
        assert small.size == (320, 213) and small.mode == "RGBA"
    assert thumbnail(str(source), tmp_path / "thumbs") == made
    assert len(list((tmp_path / "thumbs").iterdir())) == 1
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    assert thumbnail(str(broken), tmp_path / "thumbs") is None


def test_a_run_under_way_is_not_deleted(store):
    run_id = run(store.start(new_run()))
    assert run(store.delete("browser-a", run_id)) is False
    assert run(store.get("browser-a", run_id)) is not None


def test_a_result_file_and_its_fal_url_are_found_for_its_own_browser_only(store, tmp_path):
    run_id = run(store.start(new_run("browser-a")))
    images = [downloaded(tmp_path / "r", "x-1.png"), downloaded(tmp_path / "r", "x-2.png")]
    finished = run(store.finish(run_id, result(images, request_id="req-9")))
    kept = [file.path for file in finished.files]
    # fal's own file while it is there (byte for byte), else the kept copy.
    assert run(store.file_of("browser-a", "req-9", 1)) == images[1].path
    Path(images[1].path).unlink()
    assert run(store.file_of("browser-a", "req-9", 1)) == kept[1]
    assert run(store.fal_urls("browser-a", [images[0].path])) == {
        images[0].path: "https://fal.media/x-1.png"
    }
    assert run(store.file_of("browser-b", "req-9", 1)) is None
    assert run(store.file_of("browser-a", "req-9", 2)) is None
    found = run(store.fal_urls("browser-a", [kept[0], "/elsewhere.png"]))
    assert found == {kept[0]: "https://fal.media/x-1.png"}
    assert run(store.fal_urls("browser-b", kept)) == {}


def test_a_folder_in_use_by_another_database_is_not_alone(tmp_path):
    # What a second app process sees: the first holds studio.lock (shared, once
    # started); the second cannot take it alone, so it leaves the first's runs be.
    # (flock locks belong to each open file, so two Database objects in one process
    # meet as two processes would.)
    first = Database(tmp_path)
    assert first.alone
    first.started()
    second = Database(tmp_path)
    try:
        assert not second.alone
        second.started()
    finally:
        second.close()
        first.close()
    third = Database(tmp_path)  # both gone, as after a crash: alone again
    try:
        assert third.alone
    finally:
        third.close()

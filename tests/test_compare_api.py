"""Compare through the real server: every setting reaches fal, all at once."""

from __future__ import annotations

import pytest


def test_compare_runs_every_setting_together_and_labels_each(api, fake):
    # Held at fal until all six run together: settings run one after another never get
    # there (the gate then opens at its timeout, and max_in_flight says 1).
    fake.gate(6)
    gallery, records, status = api.predict(
        prompt="a paper boat on a puddle",
        qualities=["low", "medium", "high"],
        sizes=["1024x1024", "1536x1024"],
        background="opaque",
        output_format="jpeg",
        api_name="/compare",
    )
    assert len(fake.submissions) == 6
    assert fake.max_in_flight == 6, "the settings were started together"
    sent = sorted((s.arguments["quality"], s.arguments["image_size"]) for s in fake.submissions)
    assert sent == sorted(
        (q, z) for q in ("low", "medium", "high") for z in ("1024x1024", "1536x1024")
    )
    for sub in fake.submissions:
        assert sub.arguments["prompt"] == "a paper boat on a puddle"
        assert sub.arguments["num_images"] == 1
        assert sub.arguments["output_format"] == "jpeg"
        assert sub.arguments["background"] == "opaque"
    assert len(gallery) == 6
    captions = [item["caption"] for item in gallery]
    assert "low · 1024x1024" in captions[0] and "$0.009" in captions[0]
    assert any("high · 1536x1024" in c and "$0.20" in c for c in captions)
    assert all(" s · $" in c for c in captions), "each shows its time and cost"
    assert len(records) == 6 and "6 of 6" in status


@pytest.mark.parametrize(
    ("qualities", "sizes", "phrase"),
    [([], ["1024x1024"], "Tick at least one quality"), (["low"], [], "one image_size")],
)
def test_an_empty_comparison_is_explained(api, fake, qualities, sizes, phrase):
    with pytest.raises(Exception) as caught:
        api.predict(prompt="p", qualities=qualities, sizes=sizes, api_name="/compare")
    assert phrase in str(caught.value)
    assert fake.submissions == []


def test_each_setting_is_a_run_in_history_grouped_as_one(api, app_server, fake):
    import sqlite3

    api.predict(
        prompt="a compared origami crane",
        qualities=["low", "medium"],
        sizes=["1024x1024"],
        api_name="/compare",
    )
    connection = sqlite3.connect(app_server.log_path.parent / "studio-data" / "studio.sqlite3")
    try:
        runs = connection.execute(
            "SELECT id, status, request_id, batch_id, parameters FROM runs"
            " WHERE prompt = 'a compared origami crane'"
        ).fetchall()
        files = {
            run_id: connection.execute(
                "SELECT path FROM run_files WHERE run_id = ?", (run_id,)
            ).fetchall()
            for run_id, *_ in runs
        }
    finally:
        connection.close()
    assert sorted(status for _, status, *_ in runs) == ["finished", "finished"]
    assert {request_id for _, _, request_id, *_ in runs} == {s.request_id for s in fake.submissions}
    assert len({batch_id for *_, batch_id, _ in runs}) == 1
    assert all(len(paths) == 1 for paths in files.values())
    assert '"quality": "medium"' in " ".join(parameters for *_, parameters in runs)

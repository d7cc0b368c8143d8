"""Settings whose defaults depend on Gradio's own rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio.utils import get_upload_folder, is_in_or_equal

from backend import Settings


@pytest.mark.parametrize("temp_dir", [None, "custom-cache"])
def test_results_land_in_gradios_upload_folder_so_it_serves_them_without_copying(
    monkeypatch, tmp_path, temp_dir
):
    if temp_dir is None:
        monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    else:
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / temp_dir))
    results = Settings.from_env({}).results_dir
    assert is_in_or_equal(str(results), get_upload_folder())
    assert results != Path(get_upload_folder()), "a folder of its own inside it"


def test_a_host_can_still_choose_the_results_folder(tmp_path):
    chosen = tmp_path / "elsewhere"
    assert Settings.from_env({"STUDIO_RESULTS_DIR": str(chosen)}).results_dir == chosen

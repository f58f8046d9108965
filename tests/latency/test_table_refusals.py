"""Issue 20: a table whose entries or calibration are non-finite, negative or of the wrong type is
refused when it is loaded, in one line naming the file and what is wrong (before: inf entries
loaded and a damaged calibration failed inside the first prediction with a TypeError/KeyError)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from latency import create_predictor, load_table


def _first(data: dict[str, Any]) -> str:
    return sorted(data["entries"])[0]


def _fit(data: dict[str, Any]) -> dict[str, Any]:
    return data["calibration"]["fits"][data["calibration"]["selected"]]


EDITS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("entry inf", lambda d: d["entries"][_first(d)].update(ms=math.inf), "has no valid 'ms'"),
    ("entry negative", lambda d: d["entries"][_first(d)].update(ms=-0.5), "has no valid 'ms'"),
    ("entry bool", lambda d: d["entries"][_first(d)].update(ms=True), "has no valid 'ms'"),
    ("calibration list", lambda d: d.update(calibration=[1, 2]), "calibration is list"),
    ("selected unknown", lambda d: d["calibration"].update(selected="magic"),
     "calibration.selected is 'magic'"),
    ("coef text", lambda d: _fit(d).update(coef="fast"), ".coef is 'fast'"),
    ("coef nan", lambda d: _fit(d).update(coef=[math.nan] * len(_fit(d)["coef"])), ".coef is"),
    ("coef short", lambda d: _fit(d).update(coef=_fit(d)["coef"][:1] if len(_fit(d)["coef"]) > 1
                                             else []), ".coef is"),
    ("intercept inf", lambda d: _fit(d).update(intercept=math.inf), ".intercept is inf"),
    ("intercept missing", lambda d: _fit(d).pop("intercept"), ".intercept is None"),
    ("unknown feature", lambda d: _fit(d).update(features=["speed"]), ".features is ['speed']"),
    ("fits not a mapping", lambda d: d["calibration"].update(fits=3), "calibration.fits is not"),
]


@pytest.mark.parametrize("edit, message", [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_a_damaged_table_is_refused_at_load(tiny_table_path: Path, tmp_path: Path,
                                           edit: Callable[[dict[str, Any]], Any],
                                           message: str) -> None:
    data = json.loads(tiny_table_path.read_text())
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))  # json writes inf/nan as Infinity/NaN, and reads them
    with pytest.raises(ValueError) as info:
        load_table(path)
    text = str(info.value)
    assert text.startswith(f"{path}: corrupt latency table") and message in text, text
    assert "\n" not in text


def test_an_intact_table_still_predicts(tiny_table_path: Path, tiny_space: Any) -> None:
    predictor = create_predictor("lut", space=tiny_space, table=tiny_table_path)
    arch = tiny_space.decode(tiny_space.sample_actions(np.random.default_rng(0)))
    assert predictor.predict(arch) > 0

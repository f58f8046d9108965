"""`mnas export`: reading history.jsonl, ranking, the Pareto front, re-scoring, JSON/ONNX output."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mnas.cli import main
from mnas.architectures import resolve_arch, to_arch
from mnas.config.schema import config_from_dict, save_config
from mnas.search.ranking import Candidate, pareto_front, rank, read_history, rescore, unique
from mnas.reward import mnas_reward
from search_spaces.blockstrings import decode_arch, encode_arch

SPACE = {"input_size": 16, "num_classes": 10, "stem_filters": 8, "stem_stride": 1,
         "head_filters": 32, "dropout": 0.1, "width_divisor": 4,
         "base": [{"kernel": 3, "stride": s, "expansion": e, "filters": f, "layers": n}
                  for s, e, f, n in [(1, 1, 8, 1), (2, 6, 12, 1), (2, 6, 16, 1), (2, 6, 16, 1),
                                     (1, 6, 24, 1), (2, 6, 24, 1), (1, 6, 32, 1)]]}
TARGET = 10.0


def _run_config(tmp_path: Path):
    return config_from_dict({"name": "t", "search_space": SPACE,
                             "latency": {"predictor": "flops", "target_ms": TARGET},
                             "child_training": {"data": {"name": "digits", "input_size": 16}}},
                            base_dir=tmp_path)


def _record(index: int, actions, space, *, acc=None, lat=None, status="ok", cached=False):
    arch = space.decode(actions)
    reward = mnas_reward(acc, lat, target_ms=TARGET, alpha=-0.07, beta=-0.07) \
        if status == "ok" else 0.0
    return {"index": index, "arch": encode_arch(arch), "actions": list(actions),
            "accuracy": acc, "latency_ms": lat, "reward": reward, "status": status,
            "params": 1000 + index, "macs": 5000, "train_time_s": 1.0, "wall_time_s": 1.2,
            "worker": "w0", "attempts": 1, "error": None if status == "ok" else "boom",
            "cached": cached}


#: (accuracy, latency) of the synthetic children; index 5 is a failure, 6 repeats child 1.
POINTS = [(0.50, 5.0), (0.80, 12.0), (0.70, 8.0), (0.60, 8.0), (0.90, 30.0), (None, None),
          (0.80, 12.0), (0.40, 4.0)]


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    config = _run_config(tmp_path)
    space = config.space
    run = tmp_path / "run"
    run.mkdir()
    save_config(config, run / "config.yaml")
    rng = np.random.default_rng(0)
    actions = [space.sample_actions(rng) for _ in POINTS]
    actions[6] = actions[1]
    lines = []
    for i, (acc, lat) in enumerate(POINTS):
        status = "failed" if acc is None else "ok"
        lines.append(json.dumps(_record(i, actions[i], space, acc=acc, lat=lat, status=status,
                                        cached=i == 6)))
    (run / "history.jsonl").write_text("\n".join(lines) + "\n")
    return run


def test_read_history_counts_statuses_and_keeps_ok(run_dir):
    history = read_history(run_dir / "history.jsonl")
    assert history.status_counts == {"ok": 7, "failed": 1} and history.total == 8
    assert [c.index for c in history.candidates] == [0, 1, 2, 3, 4, 6, 7]
    assert history.candidates[0].line == 1 and history.warnings == ()


def test_torn_final_line_is_skipped_with_a_warning(run_dir):
    path = run_dir / "history.jsonl"
    path.write_bytes(path.read_bytes() + b'{"index": 8, "arch": ["r1_k3')
    before = path.read_bytes()
    history = read_history(path)
    assert len(history.candidates) == 7
    assert len(history.warnings) == 1 and "line 9 is incomplete" in history.warnings[0]
    assert path.read_bytes() == before  # export never modifies the run


@pytest.mark.parametrize("damage, message", [
    (lambda lines: lines[:3] + ["{not json"] + lines[3:], "line 4 is not a JSON object"),
    (lambda lines: lines[:2] + ["[1, 2]"] + lines[2:], "line 3 is not a JSON object"),
    (lambda lines: lines + ["{broken"], "line 9 is not a JSON object"),  # final but newline-ended
])
def test_corrupt_lines_are_errors_naming_file_and_line(run_dir, damage, message):
    path = run_dir / "history.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(damage(lines)) + "\n")
    with pytest.raises(ValueError, match=message) as info:
        read_history(path)
    assert str(path) in str(info.value)


def test_malformed_ok_record_names_line(run_dir):
    path = run_dir / "history.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    record["latency_ms"] = None
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"line 3: latency_ms must be a finite number > 0"):
        read_history(path)


def test_rank_by_reward_dedupes_architectures(run_dir):
    history = read_history(run_dir / "history.jsonl")
    ranked = rank(history.candidates)
    expected = sorted({(a, lat) for a, lat in POINTS if a is not None},
                      key=lambda p: -mnas_reward(p[0], p[1], target_ms=TARGET, alpha=-0.07,
                                                 beta=-0.07))
    assert [(c.accuracy, c.latency_ms) for c in ranked] == expected
    assert len(ranked) == 6  # child 6 repeats child 1's architecture
    assert next(c for c in ranked if c.index == 1).seen == 2
    assert [c.index for c in rank(history.candidates, 2)] == [c.index for c in ranked[:2]]
    with pytest.raises(ValueError, match="--top"):
        rank(history.candidates, 0)


def _c(index, acc, lat, reward=0.0, arch=None):
    return Candidate(index=index, arch=arch or (f"a{index}",), accuracy=acc, latency_ms=lat,
                     reward=reward, line=index + 1)


def test_pareto_front_by_brute_force():
    rng = np.random.default_rng(1)
    cands = [_c(i, float(rng.integers(0, 20)) / 20, float(rng.integers(1, 30)))
             for i in range(60)]
    front = pareto_front(cands)

    def dominated(c):
        return any(o.accuracy >= c.accuracy and o.latency_ms <= c.latency_ms
                   and (o.accuracy > c.accuracy or o.latency_ms < c.latency_ms) for o in cands)

    expected = {(c.accuracy, c.latency_ms) for c in cands if not dominated(c)}
    assert {(c.accuracy, c.latency_ms) for c in front} == expected
    assert len(front) == len(expected)  # exact ties keep one representative
    lats = [c.latency_ms for c in front]
    accs = [c.accuracy for c in front]
    assert lats == sorted(lats) and accs == sorted(accs)


def test_rescore_changes_ranking_without_retraining():
    cands = [_c(0, 0.70, 5.0), _c(1, 0.80, 20.0)]
    soft = rank(rescore(cands, target_ms=10.0, alpha=-0.07, beta=-0.07))
    hard = rank(rescore(cands, target_ms=10.0, alpha=0.0, beta=-1.0))
    assert soft[0].index == 1  # 0.8 * 2^-0.07 = 0.762 > 0.7 * 0.5^-0.07 = 0.735
    assert hard[0].index == 0  # 0.8 * 0.5 = 0.4 < 0.7
    assert hard[1].reward == pytest.approx(0.4)
    assert rescore([], target_ms=1.0, alpha=0.0, beta=-1.0) == []


def test_unique_keeps_best_occurrence():
    a = ("x",)
    kept = unique([_c(0, 0.5, 5.0, 0.4, a), _c(1, 0.6, 5.0, 0.6, a), _c(2, 0.1, 5.0, 0.1)])
    assert sorted((c.index, c.seen) for c in kept) == [(1, 2), (2, 1)]


def test_cli_text_output_decodes_to_the_logged_architectures(run_dir, capsys):
    assert main(["export", str(run_dir), "--top", "3"]) == 0
    out, err = capsys.readouterr()
    assert "8 children (7 ok, 1 failed); 6 distinct trained architectures" in err
    block_lines = [line for line in out.splitlines() if not line.startswith("#")]
    assert len(block_lines) == 3
    history = read_history(run_dir / "history.jsonl")
    space = _run_config(run_dir.parent).space
    best = rank(history.candidates, 3)
    for line, cand in zip(block_lines, best):
        arch = resolve_arch(line).with_(stem_stride=1, head_filters=32, dropout=0.1)
        assert arch == to_arch(cand, space)
        assert line.split() == list(cand.arch)  # the official form, as logged
    mnas_tokens = {t for line in block_lines for b in line.split() for t in b.split("_")}
    assert "conv" in mnas_tokens and "TF's MnasNet decoder ignores them" in err  # a note


def test_cli_json_round_trips_through_describe(run_dir, capsys, tmp_path):
    assert main(["export", str(run_dir), "--format", "json", "--top", "2"]) == 0
    out, err = capsys.readouterr()
    entries = json.loads(out)
    assert len(entries) == 2 and "TF's MnasNet decoder" not in err  # json keeps every token
    for key in ("blocks", "format", "reward", "accuracy", "latency_ms", "stem_filters",
                "stem_stride", "head_filters", "dropout"):
        assert key in entries[0]
    assert entries[0]["stem_stride"] == 1 and entries[0]["head_filters"] == 32
    path = tmp_path / "best.json"
    path.write_text(json.dumps(entries))
    history = read_history(run_dir / "history.jsonl")
    space = _run_config(run_dir.parent).space
    assert resolve_arch(str(path)) == to_arch(rank(history.candidates, 1)[0], space)
    assert main(["describe", str(path), "--input-size", "16", "--num-classes", "10"]) == 0


def test_cli_timm_format_refuses_what_timm_builds_differently(run_dir, capsys):
    # the run's best has a conv block of 12 filters: timm's builder would round it to 16
    assert main(["export", str(run_dir), "--format", "timm", "--top", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("mnas export: error: block 'r2_k3_s11_e1_i8_o12_noskip_conv': timm's "
                       "builder rounds output width 12 to 16 (multiples of 8), so no timm "
                       "string builds it")


def test_cli_timm_format_writes_what_timm_builds_identically(run_dir, capsys):
    # a child of the run's space that timm can express (widths of multiples of 8, no pooling
    # skip that changes a shape, no SE on a conv block): its timm strings read back as it
    space = _run_config(run_dir.parent).space
    actions = [1, 0, 1, 0, 0, 0, 1, 0, 1, 2, 2, 0, 1, 0, 0, 2, 1, 2, 1, 0, 1, 2, 1, 2, 3, 1, 1,
               1, 2, 2, 0, 0, 0, 2, 2, 2, 1, 0, 0, 1, 2, 2]
    (run_dir / "history.jsonl").write_text(
        json.dumps(_record(0, actions, space, acc=0.9, lat=5.0)) + "\n")
    assert main(["export", str(run_dir), "--format", "timm", "--top", "1"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if not x.startswith("#")][0]
    assert line.startswith(("ir_", "ds_", "cn_")) and "poolskip" not in line
    # timm strings chain widths from the stem, which they do not name: pass it (json keeps it);
    # a pooling skip that changes no shape is the identity, and is written as one
    arch = space.decode(actions)
    assert any(b.skip == "pool" for b in arch.blocks)
    assert decode_arch(line.split(), format="timm", stem_filters=8, stem_stride=1,
                       head_filters=32, dropout=0.1) == arch.with_(blocks=tuple(
                           b.with_(skip="identity" if b.skip == "pool" else b.skip)
                           for b in arch.blocks))


def test_cli_pareto_and_rescoring(run_dir, capsys):
    assert main(["export", str(run_dir), "--by", "pareto", "--format", "json"]) == 0
    front = json.loads(capsys.readouterr().out)
    assert [(e["accuracy"], e["latency_ms"]) for e in front] == [
        (0.40, 4.0), (0.50, 5.0), (0.70, 8.0), (0.80, 12.0), (0.90, 30.0)]
    assert main(["export", str(run_dir), "--format", "json", "--top", "1",
                 "--target-ms", "40", "--reward", "hard"]) == 0
    best = json.loads(capsys.readouterr().out)[0]
    assert (best["accuracy"], best["reward"]) == (0.90, 0.90)  # all fit under 40 ms: max acc
    assert main(["export", str(run_dir), "--format", "json", "--top", "1",
                 "--target-ms", "4", "--alpha", "0", "--beta", "-1"]) == 0
    best = json.loads(capsys.readouterr().out)[0]
    assert best["latency_ms"] == 4.0 and best["reward"] == pytest.approx(0.40)


@pytest.mark.parametrize("argv, message", [
    (["--top", "0"], "--top must be >= 1"),
    (["--target-ms", "0"], "--target-ms must be > 0"),
    (["--alpha", "-0.1"], "give both alpha and beta"),
    (["--reward", "soft", "--alpha", "0", "--beta", "-1"], "exclusive"),
])
def test_cli_bad_flags_exit_2(run_dir, capsys, argv, message):
    assert main(["export", str(run_dir), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_missing_run_pieces(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main(["export", str(tmp_path)]) == 2
    assert "config.yaml: no such experiment config" in capsys.readouterr().err


def test_cli_empty_history_exports_nothing(run_dir, capsys):
    (run_dir / "history.jsonl").write_text("")
    assert main(["export", str(run_dir), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and "no successfully trained child" in err


def test_cli_onnx_writes_one_model_per_arch(run_dir, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "onnx"
    assert main(["export", str(run_dir), "--top", "2", "--onnx", str(out)]) == 0
    files = sorted(out.glob("*.onnx"))
    assert len(files) == 2 and files[0].name.startswith("rank01_child")
    model = onnx.load(str(files[0]))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 16, 16]  # digits: one channel, the space's input size
    out_dims = [d.dim_param or d.dim_value
                for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == ["batch", 10]
    import numpy as np
    import onnxruntime as ort
    session = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((4, 1, 16, 16)).astype(np.float32)
    batch4 = session.run(None, {"input": x})[0]
    one = np.concatenate([session.run(None, {"input": x[i:i + 1]})[0] for i in range(4)])
    assert batch4.shape == (4, 10) and np.allclose(batch4, one, atol=1e-5)


def test_cli_onnx_static_batch(run_dir, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "onnx"
    assert main(["export", str(run_dir), "--top", "1", "--onnx", str(out), "--static-batch"]) == 0
    model = onnx.load(str(next(out.glob("*.onnx"))))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 16, 16]

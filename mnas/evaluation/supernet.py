"""The `supernet` evaluator: a child's accuracy with the weights it inherits from a one-shot
supernet trained by `mnas supernet train` (BatchNorm recalibrated on a few training batches, an
optional few fine-tuning steps, then top-1 on the validation split; see `mnas.supernet`).

The checkpoint (`supernet.checkpoint`, default `<output.dir>/supernet/<name>.pt`) is read and
checked in the driver (search space, classes, channels) before anything runs. It is `remote`: its
children go to the executor pool like trained ones. The pool's worker callable is
`SupernetChild`, which carries the supernet's weights: on Ray it is put into the object store
once and every actor (a replacement too) builds the supernet from it once, then scores child after
child; with `--local` the driver itself does the same.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import EvalResult, as_result


class SupernetChild:
    """Scores one child per call, `(arch, train_config, num_classes=None) -> dict`, the signature
    of the executors' trainers. The supernet and the data are built on the first call (or
    `warmup`) in the process that runs it and kept; pickling carries the weights only."""

    def __init__(self, meta: dict[str, Any], weights: dict[str, Any], sn: Any,
                 source: str) -> None:
        self.meta, self.weights, self.sn, self.source = meta, weights, sn, source
        self._scorer: Any = None
        self._config: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _scorer=None, _config=None)

    def scorer(self, train_config: Any) -> Any:
        """The scorer for `train_config` (built once; the device a Ray actor was assigned is in
        its config, so the config is part of the key)."""
        if self._scorer is None or train_config != self._config:
            from mnas.supernet.evaluation import build_scorer
            from mnas.supernet.training import supernet_from_weights

            net = supernet_from_weights(self.meta, self.weights)
            self._scorer = build_scorer(net, self.meta, Path(self.source), train_config, self.sn)
            self._config = train_config
        return self._scorer

    def warmup(self, train_config: Any) -> None:
        self.scorer(train_config).warmup()

    def __call__(self, arch: Any, train_config: Any,
                 num_classes: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.scorer(train_config).score(arch).to_dict()
        return result


class SupernetEvaluator:
    """Inherited-weight accuracy from the supernet checkpoint named by `sn.checkpoint`.
    Errors on user input (a missing checkpoint, one for another space or other data) are one
    ValueError starting `supernet.checkpoint: <file>: ...`."""

    remote = True

    def __init__(self, space: Any, train_config: Any, sn: Any) -> None:
        from mnas.supernet.training import check_data, check_space, read_checkpoint
        from mnas.training.data import load_dataset

        if not sn.checkpoint:
            raise ValueError("supernet.checkpoint: needs the supernet file (mnas supernet "
                             "train writes it)")
        path = Path(sn.checkpoint)
        try:
            state, meta = read_checkpoint(path)
            check_space(path, meta, space)
            check_data(path, meta, load_dataset(train_config.data))
        except (ValueError, FileNotFoundError) as exc:
            raise ValueError(f"supernet.checkpoint: {exc}") from None
        self.train_config, self.meta = train_config, meta
        self.trainer = SupernetChild(meta, state["trainer"]["model"], sn, str(path))
        history = meta.get("history") or [{}]
        # what the run dir records: a supernet retrained in place changes the scores, so a
        # resumed search refuses it (`mnas.search.rundir.check_evaluator`)
        self.identity = {"checkpoint": str(path), "epochs": history[-1].get("epoch"),
                         "trained_at": history[-1].get("time")}

    def evaluate(self, arch: Any) -> EvalResult:
        return as_result(self.trainer(arch, self.train_config))

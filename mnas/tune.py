"""The MnasNet search as a Ray Tune `Searcher`, for people who already run Tune.

`MnasSearcher` wraps any mnas controller, search space, latency predictor and reward: Tune asks it
for a configuration, it answers with a child (block strings and the rest of the architecture,
under the config key "mnas"); the user's trainable (or `child_trainable`) builds the network with
`arch_from_config(config)`, trains it and reports an accuracy; the searcher scores that accuracy
with the predicted latency (the MnasNet reward, `mnas.reward.RewardSpec`) and updates the
controller once per `batch` rewards, like `mnas search`. A child that a scheduler stopped early
(ASHA, median stopping) is rewarded with its last reported accuracy.

`save`/`restore` write the controller and the searcher's bookkeeping with `torch.save` (tensors
and plain values only; read back with `weights_only=True`), so `Tuner.restore` continues the
search where it stopped. This is the one module that imports ray.tune.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from ray import tune
from ray.tune.search import Searcher

from controllers.base import Controller, Sample
from mnas.search.checkpoint import sample_from_dict, sample_to_dict
from mnas.reward import RewardSpec
from mnas.training.trainer import STATUSES
from search_spaces.blockstrings import decode_arch, encode_arch
from search_spaces.specs import ArchSpec

if TYPE_CHECKING:
    from latency import LatencyPredictor
    from mnas.config.schema import ExperimentConfig
    from search_spaces.interface import SearchSpace

#: The key of the suggested configuration that holds the child.
CONFIG_KEY = "mnas"
STATE_VERSION = 1


def arch_from_config(config: dict[str, Any]) -> ArchSpec:
    """The architecture a `MnasSearcher` suggested, from the trial's config."""
    child = config.get(CONFIG_KEY) if isinstance(config, dict) else None
    if not isinstance(child, dict) or "blocks" not in child:
        raise ValueError(f"tune config: expected the key {CONFIG_KEY!r} a MnasSearcher "
                         "suggests (is MnasSearcher the search_alg?)")
    return decode_arch(child["blocks"], stem_filters=child["stem_filters"],
                       stem_stride=child["stem_stride"], head_filters=child["head_filters"],
                       dropout=child["dropout"])


@runtime_checkable
class PricesArchs(Protocol):
    """Anything with `predict(arch) -> ms` (every latency predictor has it)."""

    def predict(self, arch: ArchSpec, /) -> float: ...


class MnasSearcher(Searcher):
    """Suggests children sampled by `controller` from `space`; learns from the reported `metric`
    (an accuracy in 0..1, maximised) through the MnasNet `reward` at `latency(arch)` ms.

    `latency`: a predictor (anything with `.predict(arch)`) or a callable arch -> ms.
    `batch`: rewards per controller update (`budget.batch` of a search).
    """

    def __init__(self, controller: Controller, space: SearchSpace[ArchSpec],
                 latency: PricesArchs | Callable[[ArchSpec], float],
                 reward: RewardSpec, *, metric: str = "accuracy", batch: int = 8) -> None:
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"MnasSearcher: batch must be an integer >= 1, got {batch!r}")
        super().__init__(metric=metric, mode="max")
        self.controller, self.space, self.reward, self.batch = controller, space, reward, batch
        self._latency: Callable[[ArchSpec], float] = \
            latency.predict if isinstance(latency, PricesArchs) else latency
        self._pending: list[Sample] = []  # sampled, not yet suggested
        self._live: dict[str, dict[str, Any]] = {}  # trial id -> its sample and child
        self._last: dict[str, float] = {}  # trial id -> last reported metric
        self._rewarded: list[tuple[Sample, float]] = []  # waiting for the next update
        self.history: list[dict[str, Any]] = []  # one record per finished child
        self.updates = 0

    @classmethod
    def from_config(cls, config: ExperimentConfig, *, predictor: LatencyPredictor | None = None,
                    metric: str = "accuracy") -> "MnasSearcher":
        """The searcher an experiment config describes (`mnas.config.schema.load_config`): its
        space, controller, latency predictor, reward and `budget.batch`, built as `mnas search`
        builds them. `budget.children`, `ray` and `output` do not apply (Tune's `num_samples`,
        resources and storage do)."""
        from mnas.search.runner import create_predictor, create_controller_and_reward

        predictor = predictor if predictor is not None else create_predictor(config)
        controller, reward = create_controller_and_reward(config, predictor)
        return cls(controller, config.space, predictor, reward, metric=metric,
                   batch=config.budget.batch)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              **spec: Any) -> bool:
        if mode not in (None, "max"):
            raise ValueError(f"MnasSearcher: mode must be 'max' (the metric is an accuracy), "
                             f"got {mode!r}")
        if metric:
            self._metric = metric
        return True

    def suggest(self, trial_id: str) -> dict[str, Any]:
        if not self._pending:
            self._pending = list(self.controller.sample(self.batch))
        sample = self._pending.pop(0)
        spec = self.space.decode(tuple(int(a) for a in sample.actions))
        child = {"blocks": list(encode_arch(spec)), "stem_filters": spec.stem_filters,
                 "stem_stride": spec.stem_stride, "head_filters": spec.head_filters,
                 "dropout": spec.dropout, "latency_ms": float(self._latency(spec))}
        self._live[trial_id] = {"sample": sample, "child": child}
        return {CONFIG_KEY: dict(child)}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        value = _finite(result.get(self.metric)) if result else None
        if value is not None:
            self._last[trial_id] = value

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        entry = self._live.pop(trial_id, None)
        last = self._last.pop(trial_id, None)
        if entry is None:
            return
        accuracy = _finite(result.get(self.metric)) if result else None
        accuracy = last if accuracy is None else accuracy
        if accuracy is None and not error:
            return  # removed before it reported anything (the experiment ended): no reward
        reported = (result or {}).get("status", "ok")
        status = "failed" if error or accuracy is None else \
            reported if reported in STATUSES else "ok"
        child = entry["child"]
        reward = self.reward.score(status, accuracy, child["latency_ms"])
        self._rewarded.append((entry["sample"], reward))
        self.history.append({"trial_id": trial_id, "arch": child["blocks"],
                             "accuracy": accuracy, "latency_ms": child["latency_ms"],
                             "reward": reward, "status": status,
                             "iterations": (result or {}).get("training_iteration")})
        if len(self._rewarded) >= self.batch:
            samples, rewards = zip(*self._rewarded)
            self.controller.update(list(samples), list(rewards))
            self._rewarded, self.updates = [], self.updates + 1

    @property
    def best(self) -> dict[str, Any] | None:
        """The best successful child so far, by the search's one rule (`ranking.best`)."""
        from mnas.search.ranking import Candidate, best

        ok = [Candidate(index=i, arch=tuple(r["arch"]), accuracy=r["accuracy"],
                        latency_ms=r["latency_ms"], reward=r["reward"], line=0)
              for i, r in enumerate(self.history) if r["status"] == "ok"]
        top = best(ok)
        return None if top is None else self.history[top.index]

    # -- state: Tune calls save() after results and restore() on Tuner.restore ------------------
    def get_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "controller": self.controller.state_dict(),
                "metric": self.metric, "batch": self.batch, "updates": self.updates,
                "pending": [sample_to_dict(s) for s in self._pending],
                "live": {k: {"sample": sample_to_dict(v["sample"]), "child": v["child"]}
                         for k, v in self._live.items()},
                "last": dict(self._last), "history": list(self.history),
                "rewarded": [[sample_to_dict(s), r] for s, r in self._rewarded]}

    def set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError("MnasSearcher.restore: not a state saved by this MnasSearcher version")
        self.controller.load_state_dict(state["controller"])
        self._metric, self.batch, self.updates = state["metric"], state["batch"], state["updates"]
        self._pending = [sample_from_dict(Sample, s) for s in state["pending"]]
        self._live = {k: {"sample": sample_from_dict(Sample, v["sample"]), "child": v["child"]}
                      for k, v in state["live"].items()}
        self._last, self.history = dict(state["last"]), list(state["history"])
        self._rewarded = [(sample_from_dict(Sample, s), float(r)) for s, r in state["rewarded"]]

    def save(self, checkpoint_path: str) -> None:
        from mnas.fileio import atomic_torch_save

        atomic_torch_save(self.get_state(), checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        import torch

        self.set_state(torch.load(checkpoint_path, weights_only=True, map_location="cpu"))


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def child_trainable(config: dict[str, Any], *, train_config: Any,
                    num_classes: int | None = None) -> None:
    """The built-in trainable: trains the suggested child with mnas's own trainer
    (`child_training` settings, on the GPU Tune gave the trial if any) and reports validation
    accuracy after every epoch, so schedulers such as ASHA can stop it early. Use it as
    `tune.with_parameters(child_trainable, train_config=TrainConfig(...))`."""
    import torch

    from mnas.search.ray_pool import assign_device, assigned_gpu_ids
    from mnas.training.data import load_dataset
    from mnas.training.trainer import Trainer, torch_threads
    from search_spaces import build_model

    arch = arch_from_config(config)
    train_config = assign_device(train_config, assigned_gpu_ids())
    data = load_dataset(train_config.data)
    with torch_threads(train_config.threads):
        torch.manual_seed(train_config.seed)
        model = build_model(arch, num_classes=num_classes or data.num_classes,
                            in_channels=data.in_channels)
        trainer = Trainer(model, data, train_config)
        for outcome in trainer.train_epochs():
            if outcome.status == "diverged":
                tune.report({"accuracy": 0.0, "status": "diverged", "epoch": trainer.epochs_done})
                return
            tune.report({"accuracy": trainer.evaluate(), "status": "ok",
                         "train_loss": outcome.loss, "epoch": trainer.epochs_done})

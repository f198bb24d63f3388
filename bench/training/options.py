"""How a config is trained (engine, seed, XLA), as opposed to what is trained (`bench.archs`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RANKING_K = 10  # the ranking task's list length
# a ranking validation's figures
RANKING_FIGURES = tuple(f"{name}_at_{RANKING_K}" for name in ("precision", "recall", "ndcg"))
RankingLoss = Literal["bce", "bpr"]
Sampler = Literal["uniform", "popularity"]


@dataclass(frozen=True)
class RankingSetup:
    """How ranking examples are made and scored: the loss, negatives per positive, their
    sampler, and the lowest rating that counts as a positive (None: every rating)."""

    loss: RankingLoss = "bpr"
    negatives: int = 4
    sampler: Sampler = "uniform"
    positives: float | None = None

    def __post_init__(self) -> None:
        if self.negatives < 1:
            raise ValueError(f"negatives must be at least 1, not {self.negatives}")
        if self.loss not in ("bce", "bpr") or self.sampler not in ("uniform", "popularity"):
            raise ValueError(f"unknown loss {self.loss!r} or sampler {self.sampler!r}")


@dataclass(frozen=True)
class TrainOptions:
    """How a config is trained, as opposed to what is trained.

    engine "compiled" runs each epoch as one compiled TensorFlow loop (optionally XLA);
    engine "fit" runs a plain Keras `model.fit` on exactly the same batches, the
    reference that the compiled path must match. jit_compile None takes the
    architecture's declared default (`Arch.jit_compile`: where XLA measured faster).
    sparse_updates (compiled engine, Adam) updates only the embedding rows of each batch,
    so a step's cost follows the batch and not the table size (`bench.training.lazy_adam.LazyAdam`).
    patience (with a validation part) stops training once `monitor` has not improved for that
    many epochs and keeps the weights of its best epoch: the config's epochs are then a cap.
    unroll traces that many train steps into each iteration of the compiled loop (the same
    numbers, fewer iterations); None lets `bench.training.compiled.loop_unroll` choose.
    ranking (compiled engine) trains for the top-k task instead of the ratings: positives,
    sampled negatives and a ranking loss (`bench.training.ranking`); the validation and
    test figures are then precision, recall and NDCG at 10 (higher is better) of every item
    a user did not rate in training (`bench.metrics.ranking.grid_metrics`).
    """

    seed: int = 0
    engine: Literal["compiled", "fit"] = "compiled"
    jit_compile: bool | None = None
    eval_batch_size: int = 65536
    sparse_updates: bool = False  # row-sparse Adam on embedding tables (bench.training.lazy_adam)
    patience: int | None = None  # early stopping: epochs without a better `monitor`; None: off
    monitor: str | None = None  # the validation figure early stopping watches, its direction
    # the metric's (bench.metrics); None: val_mae, or val_ndcg_at_10 for ranking
    unroll: int | None = None  # train steps per compiled-loop iteration; None: see loop_unroll
    ranking: RankingSetup | None = None  # the top-k task (bench.training.ranking); None: ratings

    def trained_loss(self, config) -> str:
        """The loss training minimises: the ranking loss, else the config's rating loss."""
        return self.ranking.loss if self.ranking is not None else config.loss

    @property
    def watched(self) -> str:
        """The validation figure early stopping watches."""
        default = "val_mae" if self.ranking is None else "val_ndcg_at_10"
        return self.monitor or default

    def __post_init__(self) -> None:
        if self.unroll is not None and self.unroll < 1:
            raise ValueError(f"unroll must be at least 1, not {self.unroll}")
        ranked = self.watched.removeprefix("val_") in RANKING_FIGURES
        if ranked != (self.ranking is not None):
            task = "ranking" if self.ranking is not None else "rating"
            raise ValueError(f"the {task} task has no validation figure {self.watched}")

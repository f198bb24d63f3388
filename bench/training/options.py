"""How a config is trained (engine, seed, XLA), as opposed to what is trained (`bench.archs`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
    """

    seed: int = 0
    engine: Literal["compiled", "fit"] = "compiled"
    jit_compile: bool | None = None
    eval_batch_size: int = 65536
    sparse_updates: bool = False  # row-sparse Adam on embedding tables (bench.training.lazy_adam)
    patience: int | None = None  # early stopping: epochs without a better `monitor`; None: off
    monitor: str = "val_mae"  # the validation figure early stopping watches (lower is better)
    unroll: int | None = None  # train steps per compiled-loop iteration; None: see loop_unroll

    def __post_init__(self) -> None:
        if self.unroll is not None and self.unroll < 1:
            raise ValueError(f"unroll must be at least 1, not {self.unroll}")

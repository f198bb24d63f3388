"""Row-sparse ("lazy") Adam for embedding tables: a step costs the rows in its batch.

Keras' Adam turns an embedding table's sparse gradient dense and updates every row of the
table and of both moment slots at every step, so an MF epoch costs k x (users + items) per
step, whatever the batch. `LazyAdam` updates only the rows a batch touches, with the
semantics of TF Addons' LazyAdam:

- a row's moments decay only on the steps whose batch contains it (dense Adam decays every
  row every step and keeps moving rows with a zero gradient on their old momentum);
- an embedding table's L2 term is applied to the batch's rows only, once per step
  (dense L2 shrinks every row every step);
- a table's constraint (NNMF's non-negativity) is applied to the updated rows;
- the training loss reported per epoch leaves the tables' L2 term out.

On rows present in every step both agree exactly. Variables that are not embedding tables
(dense layers, the global offset) keep the Keras optimizer. Every shape is static (rows are
de-duplicated by sorting; unused slots write the spare last row of the table, which no
code reaches), so the step compiles under XLA.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # Keras' Adam defaults


def unique_rows(indices: tf.Tensor, values: tf.Tensor, spare: int):
    """Sum the gradient rows of equal indices; (unique indices, summed rows, used), padded
    to the batch length with `spare` indices and zero rows (`used` False)."""
    order = tf.argsort(indices, stable=True)
    idx = tf.gather(indices, order)
    vals = tf.gather(values, order)
    starts = tf.concat([[True], tf.not_equal(idx[1:], idx[:-1])], axis=0)
    segment = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    size = tf.shape(indices)[0]
    summed = tf.math.unsorted_segment_sum(vals, segment, size)
    unique = tf.math.unsorted_segment_max(idx, segment, size)
    used = tf.range(size) <= segment[-1]
    return tf.where(used, unique, spare), summed, used


class LazyAdam:
    """Adam on the rows in each batch for embedding tables, Keras Adam for the rest."""

    def __init__(self, model: keras.Model, learning_rate: float):
        self.learning_rate = learning_rate
        self.tables: dict[int, tuple[float, Any]] = {}  # id(variable) -> (l2, constraint)
        for layer in model.layers:
            if isinstance(layer, keras.layers.Embedding):
                regulariser = layer.embeddings_regularizer
                l2 = float(getattr(regulariser, "l2", 0.0)) if regulariser else 0.0
                self.tables[id(layer.embeddings)] = (l2, layer.embeddings_constraint)
        self.sparse = [v for v in model.trainable_variables if id(v) in self.tables]
        self.dense = [v for v in model.trainable_variables if id(v) not in self.tables]
        self.slots = [(tf.Variable(tf.zeros_like(v.value)), tf.Variable(tf.zeros_like(v.value)))
                      for v in self.sparse]  # fmt: skip
        self.step = tf.Variable(0, dtype=tf.int64)
        self.dense_optimizer = keras.optimizers.Adam(learning_rate)
        self.dense_optimizer.build(self.dense)

    @staticmethod
    def regularisation(model: keras.Model) -> list[tf.Tensor]:
        """The model's loss terms other than embedding tables' L2 (applied lazily here)."""
        return [loss for layer in model.layers if not isinstance(layer, keras.layers.Embedding)
                for loss in layer.losses]  # fmt: skip

    def apply(self, gradients: list[Any], variables: list[Any]) -> None:
        self.step.assign_add(1)
        t = tf.cast(self.step, tf.float32)
        alpha = self.learning_rate * tf.sqrt(1 - BETA_2**t) / (1 - BETA_1**t)
        by_id = {id(v): g for v, g in zip(variables, gradients, strict=True)}
        for variable, (m, v) in zip(self.sparse, self.slots, strict=True):
            self._apply_rows(variable, m, v, by_id[id(variable)], alpha)
        if self.dense:
            self.dense_optimizer.apply([by_id[id(v)] for v in self.dense], self.dense)

    def _apply_rows(self, variable, m, v, gradient, alpha) -> None:
        table = variable.value
        width = table.shape[-1]
        if not isinstance(gradient, tf.IndexedSlices):  # a table not read by a lookup alone
            gradient = tf.IndexedSlices(gradient, tf.range(table.shape[0]))
        indices = tf.reshape(gradient.indices, [-1])
        values = tf.reshape(gradient.values, [-1, width])
        rows, grad, used = unique_rows(indices, values, table.shape[0] - 1)
        l2, constraint = self.tables[id(variable)]
        weights = tf.gather(table, rows)
        if l2:  # the spare row's padding slots keep a zero gradient
            grad += 2.0 * l2 * weights * tf.cast(used, weights.dtype)[:, None]
        m_rows = BETA_1 * tf.gather(m, rows) + (1 - BETA_1) * grad
        v_rows = BETA_2 * tf.gather(v, rows) + (1 - BETA_2) * tf.square(grad)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        updated = weights - alpha * m_rows / (tf.sqrt(v_rows) + EPSILON)
        if constraint is not None:
            updated = constraint(updated)
        table.scatter_update(tf.IndexedSlices(updated, rows))

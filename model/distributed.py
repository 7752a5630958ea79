"""Multi-worker data-parallel training: TF_CONFIG, MultiWorkerMirroredStrategy and a local launcher.

Several machines (or processes): set TF_CONFIG on each and run the same `workbench train ...` there.

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 0}}'          # index 1 on the second machine

Worker 0 is the chief: only it writes the run folder. Every worker holds a full copy of the model
and trains on its share of each global batch; the gradients are averaged across workers every step.

Trying it out on one machine: `workbench train --local-workers 2 ...` starts 2 such workers on
127.0.0.1 (free ports, one TF_CONFIG each; the launcher is workbench.cli.launch).

Only tf.distribute's standard TF_CONFIG is read here; TensorFlow itself reads it again when the
strategy is created. This module imports TensorFlow only inside the functions that need it, so the
TF_CONFIG checks stay light.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from model.errors import DistributedError

ENV = "TF_CONFIG"
LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class Cluster:
    """The workers named in TF_CONFIG and this process's place among them."""
    workers: tuple[str, ...]   # "host:port" of every worker, the same list on every worker
    index: int                 # this worker's position in `workers`

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    @property
    def is_chief(self) -> bool:
        return self.index == 0  # tf.distribute's convention when the cluster has no "chief" task


def read_tf_config(environ=None) -> Cluster | None:
    """The cluster described by $TF_CONFIG, or None when it is unset or empty.

    Only worker clusters are accepted ({"cluster": {"worker": [...]}, "task": {"type": "worker",
    "index": i}}): MultiWorkerMirroredStrategy needs nothing else, and refusing parameter servers
    or evaluators here gives one clear error instead of a hang later.
    """
    raw = (os.environ if environ is None else environ).get(ENV, "")
    if not raw.strip():
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DistributedError(f"{ENV} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise DistributedError(f"{ENV} must be a JSON object with 'cluster' and 'task'")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise DistributedError(f"{ENV} has no 'cluster' object (expected {{\"worker\": [\"host:port\", ...]}})")
    if not isinstance(task, dict):
        raise DistributedError(f"{ENV} has no 'task' object (expected {{\"type\": \"worker\", \"index\": N}})")
    other = sorted(set(cluster) - {"worker"})
    if other:
        raise DistributedError(f"{ENV} cluster has {other}: only 'worker' tasks are supported "
                               f"(worker 0 is the chief)")
    workers = cluster["worker"]
    if (not isinstance(workers, list) or not workers
            or not all(isinstance(w, str) and w.rpartition(":")[2].isdigit() for w in workers)):
        raise DistributedError(f"{ENV} cluster 'worker' must be a non-empty list of \"host:port\" strings")
    if task.get("type") != "worker":
        raise DistributedError(f"{ENV} task type must be 'worker', not {task.get('type')!r}")
    index = task.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(workers):
        raise DistributedError(f"{ENV} task index must be an integer from 0 to {len(workers) - 1}, "
                               f"not {index!r}")
    return Cluster(tuple(workers), index)


def is_chief(cluster: Cluster | None = None) -> bool:
    """True for the process that writes the run folder: worker 0, or any single-process run."""
    cluster = cluster if cluster is not None else read_tf_config()
    return cluster is None or cluster.is_chief


def make_strategy():
    """MultiWorkerMirroredStrategy from $TF_CONFIG.

    Create it before any other TensorFlow op: it configures the collective ops of the TensorFlow
    runtime, which can only happen before that runtime starts. AUTO communication picks NCCL for
    GPUs and the ring all-reduce (gRPC) on CPUs.
    """
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def shard_by_data(dataset):
    """Shard a dataset between the workers by element (tf.data's DATA auto-shard policy).

    The default (FILE) cannot apply to in-memory arrays. With DATA every worker builds the same
    seeded pipeline and keeps its own slice of each global batch, so the shuffles must match: they
    do, every worker uses the recipe's seed.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def same_on_all_workers(strategy, value: int) -> bool:
    """True when every worker passed the same integer. A collective: every worker must call it."""
    import tensorflow as tf

    # Sums of value, value² and 1 over all replicas: equal values iff n·Σv² == (Σv)², and every
    # worker reaches the same verdict (a mean alone would let the worker holding it carry on).
    local = tf.constant([value, value * value, 1], tf.float64)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(local)), axis=None)
    s, s2, n = (float(v) for v in total.numpy())
    return n * s2 == s * s


def prepare_fit(model, strategy, dataset) -> None:
    """Get a compiled model ready for fit under MultiWorkerMirroredStrategy with Keras 3.

    Keras 3 (3.15 here) has two gaps on this strategy, both known upstream (keras-team/keras#20585,
    tensorflow/tensorflow#72388); fit fails without these work-arounds:

    1. fit first builds the optimizer and metric state from one batch that it all-reduces with
       strategy.reduce, which fails for an (x, y) tuple ("Attempt to convert a value (PerReplica
       ...)"). The batch only supplies shapes and dtypes: build from the dataset's element spec
       under the strategy here, and make fit's own attempt a no-op on this model.
    2. every step averages the replicas' losses and metrics with strategy.reduce(..., axis=0),
       which fails for scalars ("Invalid reduction dimension 0 for input with 0 dimensions"):
       average them over the replicas instead (axis=None), as intended. See _mean_over_workers.
    """
    with strategy.scope():
        model._symbolic_build(data_batch=dataset.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    _mean_over_workers()


def _mean_over_workers() -> None:
    """Make Keras average per-replica logs over all workers (work-around 2 of prepare_fit).

    Replaces Keras' reduce_per_replica for multi-worker strategies only ("auto" means "mean" there);
    every other strategy, and the single-process path, still gets Keras' own function.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    keras_reduce = trainer.reduce_per_replica
    if getattr(keras_reduce, "mean_over_workers", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica.mean_over_workers = True
    trainer.reduce_per_replica = reduce_per_replica

"""Device mesh and shardings for data parallelism.

Parameters are replicated on every device of every process and the batch is split along one
mesh axis, ``'data'``. Everything is plain ``jax.jit`` over global arrays carrying
``NamedSharding``s; XLA inserts the gradient all-reduce (see the gradient-scaling notes in
``training.py``). ``jax.pmap`` is not used: it is in maintenance mode since JAX 0.8.
"""

from __future__ import annotations

import os

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh named ``'data'`` over all devices of all processes (or the first N).

    The axis is ``Auto`` (XLA propagates shardings) rather than the ``Explicit`` default of
    ``jax.make_mesh``: the networks reshape the batch axis (minibatch-stddev groups), which
    explicit sharding would reject without manual resharding.
    """
    devices = jax.devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"num_devices={num_devices} but {len(devices)} devices are visible")
        devices = devices[:num_devices]
    return jax.make_mesh(
        (len(devices),), (DATA_AXIS,), devices=devices,
        axis_types=(jax.sharding.AxisType.Auto,),
    )


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of a batch: leading axis split over ``'data'``."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of parameters and optimizer state: a full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
    """Start ``jax.distributed`` when this is one process of several; returns whether it did.

    An explicit coordinator address starts it with the given process count and id. Without
    one, JAX's auto-detection is used when the environment says the job has several
    processes (Cloud TPU pod slices, Slurm with several tasks, or ``JAX_COORDINATOR_ADDRESS``).
    Must run before anything touches a device.
    """
    if coordinator_address:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
        return True
    env = os.environ
    multi_slurm = int(env.get("SLURM_NTASKS", "1")) > 1
    multi_tpu = len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1
    if multi_slurm or multi_tpu or env.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize()
        return True
    return False

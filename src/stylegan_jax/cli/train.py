"""Train (or resume) a StyleGAN.

usage: stylegan-jax train --config FILE[:ARG] --workdir DIR [--config.FIELD=VALUE ...] [flags]

Trains the config's networks on its prepared dataset (config.dataset), writing checkpoints,
metrics.jsonl, TensorBoard events and image grids to the workdir. The same command again
resumes from the newest intact checkpoint with the same image order; SIGTERM or Ctrl-C saves
a checkpoint first. A resumed run that changes what the run means is refused unless
--allow_config_change names the fields.

example:
  stylegan-jax train --config experiments/digits.py --workdir runs/digits
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from stylegan_jax.cli import common
from stylegan_jax.errors import UsageError, require_dir


def main(argv: Sequence[str]) -> None:
    prog = "stylegan-jax train"
    fv = flags.FlagValues()
    config = common.config_flag(fv, prog, argv)
    workdir = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, logs, grids. "
                                  "A run with a checkpoint there resumes.", flag_values=fv)
    coordinator = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 "
                                      "for a multi-process run started by hand (TPU pods and "
                                      "Slurm are detected automatically).", flag_values=fv)
    num_processes = flags.DEFINE_integer("num_processes", None, "With "
                                         "--coordinator_address: the number of processes.",
                                         lower_bound=1, flag_values=fv)
    process_id = flags.DEFINE_integer("process_id", None, "With --coordinator_address: this "
                                      "process's index.", lower_bound=0, flag_values=fv)
    allow_change = flags.DEFINE_list("allow_config_change", [], "Config fields (or groups, "
                                     "e.g. seed,sched) a resumed run may change although they "
                                     "change what the run means.", flag_values=fv)
    common.parse(fv, prog, argv, __doc__)
    if config.value is None or workdir.value is None:
        raise UsageError("--config FILE and --workdir DIR are required")
    require_dir(workdir.value, "--workdir")
    from stylegan_jax import checkpoint, logs, parallel, training_loop
    from stylegan_jax.metrics.weights import WeightsError
    from stylegan_jax.validate import check_config

    check_config(config.value)  # before config.json is (re)written

    logs.configure_logging()
    parallel.initialize_distributed(coordinator.value, num_processes.value, process_id.value)
    try:
        training_loop.train(config.value, workdir.value,
                            allow_config_change=allow_change.value)
    except checkpoint.ConfigChangeError as e:
        raise UsageError(f"{e} (--allow_config_change={','.join(e.fields)})") from e
    except (ValueError, FileNotFoundError, WeightsError) as e:
        raise UsageError(e) from e

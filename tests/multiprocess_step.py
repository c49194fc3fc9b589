"""Helper for test_multiprocess.py: two training iterations on digits batches from the input
pipeline; process 0 saves the resulting train state. Started as one process with 8 CPU
devices, or as one of two processes with 4 CPU devices each (jax.distributed on localhost)."""

import sys

import jax

if __name__ == "__main__":
    data_dir, out, num_processes, process_id, port = sys.argv[1:6]
    num_processes, process_id = int(num_processes), int(process_id)
    jax.config.update("jax_num_cpu_devices", 8 // num_processes)
    if num_processes > 1:
        jax.distributed.initialize(f"localhost:{port}", num_processes, process_id)

    import numpy as np

    from stylegan_jax import parallel, training
    from stylegan_jax.config import paper_config
    from stylegan_jax.data.pipeline import InputPipeline
    from stylegan_jax.models import build_networks

    config = paper_config(32)
    config.G.update(dict(latent_size=8, dlatent_size=8, mapping_fmaps=8, mapping_layers=2,
                         fmap_base=32, fmap_max=8))
    config.D.update(dict(fmap_base=32, fmap_max=8))
    config.opt.epsilon = 1.0  # updates proportional to gradients (see test_training.py)
    mesh = parallel.make_mesh()
    assert mesh.size == 8 and jax.process_count() == num_processes
    G, D = build_networks(config)
    optimizer = training.make_optimizer(config)
    state = training.create_train_state(config, G, D, optimizer, mesh)
    iteration = training.make_train_iteration(config, G, D, optimizer, mesh)
    with InputPipeline(data_dir, "digits/32", mesh=mesh, seed=3, workers=1) as pipeline:
        for step in range(2):
            state, _ = iteration(state, pipeline.next_batch(16), step, 0.0, 0.05, 0.05, 0.9,
                                 resolution=16)
    jax.block_until_ready(state)
    # the state is replicated: each process holds a full copy on each of its devices
    leaves = {jax.tree_util.keystr(path): np.asarray(x.addressable_shards[0].data)
              for path, x in jax.tree_util.tree_flatten_with_path(state)[0]}
    if process_id == 0:
        np.savez(out, **leaves)

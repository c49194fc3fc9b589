"""Input pipeline on 8 simulated CPU devices (see conftest.py).

The test dataset has N=52 images of 8x8 whose red channel is the image id everywhere and
whose green channel rises left to right, so each image and its mirror flag can be read back.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from stylegan_jax.data.pipeline import InputPipeline
from stylegan_jax.data.prepare import prepare_dataset
from stylegan_jax.parallel import data_sharding, make_mesh

N = 52
RAMP = np.arange(8, dtype=np.uint8) * 30


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    for i in range(N):
        image = np.zeros((8, 8, 3), np.uint8)
        image[..., 0] = i
        image[..., 1] = RAMP[None, :]
        Image.fromarray(image).save(root / f"{i:02d}.png")
    return str(prepare_dataset("image_folder", root / "out", source=root, resolution=8).path
               .parents[2])


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8
    return make_mesh()


def open_pipeline(data_dir, mesh, **kwargs):
    return InputPipeline(data_dir, "image_folder/8_crop", mesh=mesh, workers=2, **kwargs)


def ids_and_flips(images):
    images = np.asarray(images)
    ids = images[:, 0, 0, 0].astype(int)
    assert (images[..., 0] == ids[:, None, None]).all()
    green = images[:, 0, :, 1]
    flipped = (green == RAMP[::-1]).all(axis=1)
    assert (flipped | (green == RAMP).all(axis=1)).all()
    return ids, flipped


def stream(data_dir, mesh, batch_sizes, **kwargs):
    with open_pipeline(data_dir, mesh, **kwargs) as pipe:
        batches = [ids_and_flips(pipe.next_batch(b)["image"]) for b in batch_sizes]
        position = pipe.position
    return (np.concatenate([i for i, _ in batches]), np.concatenate([f for _, f in batches]),
            position)


def test_global_batch_is_sharded_over_data(data_dir, mesh):
    with open_pipeline(data_dir, mesh) as pipe:
        assert (pipe.num_examples, pipe.resolution, pipe.num_classes) == (N, 8, 0)
        batch = pipe.next_batch(16)
    assert batch["image"].shape == (16, 8, 8, 3) and batch["image"].dtype == jnp.uint8
    assert batch["label"].shape == (16,) and batch["label"].dtype == jnp.int32
    for x in batch.values():
        assert x.sharding.is_equivalent_to(data_sharding(mesh), x.ndim)
        assert {s.data.shape[0] for s in x.addressable_shards} == {2}
        assert len(x.addressable_shards) == 8
    np.testing.assert_array_equal(batch["label"], -1)


def test_one_epoch_sees_every_image_once(data_dir, mesh):
    ids, _, position = stream(data_dir, mesh, [8] * 7)  # 56 = one epoch + 4
    assert position == 56
    assert sorted(ids[:N]) == list(range(N))
    assert len(set(ids[N:])) == 4


def test_order_depends_only_on_seed(data_dir, mesh):
    a, fa, _ = stream(data_dir, mesh, [8] * 3, seed=1)
    b, fb, _ = stream(data_dir, mesh, [8] * 3, seed=1)
    c, _, _ = stream(data_dir, mesh, [8] * 3, seed=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fa, fb)
    assert not np.array_equal(a, c)


def test_resume_continues_the_sequence_across_batch_sizes(data_dir, mesh):
    full, full_flips, _ = stream(data_dir, mesh, [8, 8, 16, 16, 24], seed=3)  # crosses epochs
    resumed, resumed_flips, position = stream(data_dir, mesh, [16, 16, 24], seed=3,
                                              start_image=16)
    assert position == 72
    np.testing.assert_array_equal(resumed, full[16:])
    np.testing.assert_array_equal(resumed_flips, full_flips[16:])
    changed, _, _ = stream(data_dir, mesh, [32, 8, 32], seed=3)  # other split, same stream
    np.testing.assert_array_equal(changed, full)


def test_mirror_is_per_sample_and_switchable(data_dir, mesh):
    _, flips, _ = stream(data_dir, mesh, [104], seed=4)
    assert 30 < flips.sum() < 74  # p=0.5 over 104 samples, ~4.3 sigma margin
    ids_off, flips_off, _ = stream(data_dir, mesh, [104], seed=4, mirror=False)
    ids_on, _, _ = stream(data_dir, mesh, [104], seed=4)
    assert not flips_off.any()
    np.testing.assert_array_equal(ids_off, ids_on)  # mirroring does not change the order


def test_two_hosts_get_disjoint_equal_shards(data_dir, mesh):
    hosts = [open_pipeline(data_dir, mesh, seed=5, process_index=p, process_count=2)
             for p in (0, 1)]
    seen = [[], []]
    for _ in range(N // 4):  # global batch 4 -> 2 images per host per step, one epoch
        for p, pipe in enumerate(hosts):
            seen[p].extend(pipe.next_host_batch(4)["image"][:, 0, 0, 0].tolist())
    for pipe in hosts:
        pipe.close()
    assert len(seen[0]) == len(seen[1]) == N // 2
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) == set(range(N))
    single, _, _ = stream(data_dir, mesh, [8] * 4, seed=5)  # host shares tile the global batch
    interleaved = np.array([seen[p][2 * k:2 * k + 2] for k in range(13) for p in (0, 1)])
    np.testing.assert_array_equal(interleaved.ravel()[:32], single)


def test_batch_must_split_over_devices(data_dir, mesh):
    with open_pipeline(data_dir, mesh) as pipe, pytest.raises(ValueError, match="8 devices"):
        pipe.next_batch(12)


def test_device_prefetch_keeps_the_stream_and_position(data_dir, mesh):
    """Batches transferred ahead (also of a size then not asked for) change nothing: the same
    images, flags and position as the plain stream."""
    sizes = [16, 16, 8, 32, 16]
    expected, expected_flips, expected_position = stream(data_dir, mesh, sizes, seed=6)
    with open_pipeline(data_dir, mesh, seed=6, device_prefetch=2) as pipe:
        got = []
        guesses = [16, 16, 16, 32, 8]  # the third guess is wrong: its batches are re-read
        for size, guess in zip(sizes, guesses, strict=True):
            got.append(ids_and_flips(pipe.next_batch(size)["image"]))
            pipe.prefetch_to_device(guess)
        position = pipe.position
    np.testing.assert_array_equal(np.concatenate([i for i, _ in got]), expected)
    np.testing.assert_array_equal(np.concatenate([f for _, f in got]), expected_flips)
    assert position == expected_position == sum(sizes)


def test_with_flips_hands_over_unmirrored_images_and_their_flags(data_dir, mesh):
    ids, flips, _ = stream(data_dir, mesh, [16, 16], seed=7)
    with open_pipeline(data_dir, mesh, seed=7) as pipe:
        pipe.prefetch_to_device(16)
        batches = [pipe.next_batch(16, with_flips=True) for _ in range(2)]
    raw_ids, raw_flipped = ids_and_flips(jnp.concatenate([b["image"] for b in batches]))
    assert not raw_flipped.any()
    np.testing.assert_array_equal(raw_ids, ids)
    np.testing.assert_array_equal(np.concatenate([np.asarray(b["flip"]) for b in batches]),
                                  flips)
    with open_pipeline(data_dir, mesh, seed=7, mirror=False) as pipe:
        assert set(pipe.next_batch(16, with_flips=True)) == {"image", "label"}

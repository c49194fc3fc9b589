"""Where the persistent compilation cache goes: user setting, JAX's own setting, the workdir."""

import jax
import pytest

from stylegan_jax.compile_cache import ENV, enable_compilation_cache


@pytest.fixture
def jax_cache_dir():
    before = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", before)


def test_cache_directory_precedence(tmp_path, monkeypatch, jax_cache_dir):
    monkeypatch.delenv(ENV, raising=False)
    jax.config.update("jax_compilation_cache_dir", None)
    assert enable_compilation_cache(tmp_path / "run") == tmp_path / "run" / "compile_cache"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "run" / "compile_cache")
    # a directory configured through JAX (JAX_COMPILATION_CACHE_DIR) is kept
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "shared"))
    assert enable_compilation_cache(tmp_path / "run") == tmp_path / "shared"
    # the user setting wins, and 'off' leaves JAX alone
    monkeypatch.setenv(ENV, str(tmp_path / "mine"))
    assert enable_compilation_cache(tmp_path / "run") == tmp_path / "mine"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "mine")
    monkeypatch.setenv(ENV, "off")
    assert enable_compilation_cache(tmp_path / "run") is None
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "mine")

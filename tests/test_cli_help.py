"""``stylegan-jax COMMAND --help``: every command explains itself, exit status 0."""

import re

import pytest

from stylegan_jax import cli


def help_of(capsys, argv):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_prints_its_help(capsys, command):
    text = help_of(capsys, [command, "--help"])
    assert text == help_of(capsys, [command, "-h"])
    assert text.startswith(f"usage: stylegan-jax {command} ")
    assert cli.summary_line(command) in text
    example = re.search(r"^example:\n  (stylegan-jax \S+)", text, flags=re.M)
    assert example and example[1] == f"stylegan-jax {command}"
    blocks = re.findall(r"^  --(?:\[no\])?(\w+)\n((?:      .*\n?)+)", text, flags=re.M)
    flags = [name for name, _ in blocks]
    assert flags and flags == sorted(flags)
    assert all("default" in " ".join(body.split()) for _, body in blocks)
    # every flag the command's usage line names is listed
    usage = text.splitlines()[0]
    assert set(re.findall(r"--(\w+)", usage)) <= set(flags) | {"config"}


def test_help_shows_defaults_and_choices(capsys):
    text = help_of(capsys, ["generate", "--help"])
    assert "  --batch_size\n      Images per device batch. (default: 32)" in text
    assert "<float32|bfloat16>" in text and "  --[no]stored_noise\n" in text
    text = help_of(capsys, ["train", "--help"])
    assert "  --config\n      Experiment config file" in text


def test_help_with_a_config_lists_the_flags_without_loading_it(capsys):
    text = help_of(capsys, ["train", "--config", "no/such/file.py", "--help"])
    assert text.startswith("usage: stylegan-jax train ")


def test_helpfull_is_absls_listing_with_the_config_values(capsys):
    text = help_of(capsys, ["summary", "--config", "experiments/digits.py", "--helpfull"])
    assert "  --config: Experiment config file" in text and "mapping_layers: 8" in text


def test_top_level_help_lists_every_command(capsys):
    text = help_of(capsys, ["--help"])
    for command in cli.COMMANDS:
        assert re.search(rf"^  {re.escape(command)} +\S", text, flags=re.M)


def test_an_unknown_flag_names_the_closest_one(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "--wokdir", "x"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "stylegan-jax generate: error: Unknown command line flag 'wokdir'. "
        "Did you mean: workdir ?")

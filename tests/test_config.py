from pathlib import Path

import pytest

from gauda.config import ConfigError, from_dict, load_yaml, parse_override, save, to_dict
from gauda.data.config import DATA_PRESETS, DataConfig
from gauda.presets import PRESETS, GaudaConfig, resolve_config


def test_presets_are_valid_and_differ_in_size() -> None:
    assert PRESETS["tiny"].data.image_size == 64
    assert PRESETS["paper"].data.image_size == 128
    assert PRESETS["paper"].data.split.fractions == (0.9, 0.05, 0.05)
    for preset in PRESETS.values():
        assert from_dict(GaudaConfig, to_dict(preset)) == preset


def test_unknown_key_names_the_dotted_path_and_the_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"data\.split\.sede: unknown key; expected one of .*seed"):
        resolve_config("tiny", overrides=["data.split.sede=3"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.image_size=big", r"data\.image_size: expected an integer or null, got 'big'"),
        ("data.augment.enabled=1", r"data\.augment\.enabled: expected true or false, got 1"),
        ("data.split.fractions=[0.9, 0.1]", r"data\.split\.fractions: expected a list of 3 values"),
        ("data.dataset=imagenet", r"data\.dataset: expected one of 'synthetic'"),
        ("data.cadis_setting=IV", r"data\.cadis_setting: expected one of 'I', 'II', 'III', got 'IV'"),
    ],
)
def test_wrong_type_is_rejected_with_field_and_expectation(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config("tiny", overrides=[override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.image_size=4", r"data\.image_size: expected an integer >= 8 or null, got 4"),
        ("data.augment.probability=1.5", r"data\.augment\.probability: expected a number in \[0, 1\]"),
        ("data.split.fractions=[0.5, 0.4, 0.4]", r"data\.split\.fractions: expected three non-negative"),
        ("data.synthetic.num_videos=0", r"data\.synthetic\.num_videos: expected an integer >= 1, got 0"),
    ],
)
def test_value_out_of_range_is_rejected(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config("tiny", overrides=[override])


def test_cross_field_rules_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"root: expected the folder of the cadis dataset"):
        resolve_config("tiny", updates={"data": {"dataset": "cadis"}})
    with pytest.raises(ConfigError, match=r"only CaDIS has an official split"):
        resolve_config("tiny", overrides=["data.split.method=official"])


def test_file_then_overrides_then_updates_win_in_that_order(tmp_path: Path) -> None:
    file = tmp_path / "run.yaml"
    file.write_text("data:\n  image_size: 96\n  split:\n    seed: 5\n")
    config = resolve_config("tiny", file, ["data.split.seed=7"], {"data": {"root": "/x"}})
    assert config.data.image_size == 96  # from the file
    assert config.data.split.seed == 7  # the override beats the file
    assert config.data.root == "/x"
    assert config.data.synthetic == DATA_PRESETS["tiny"].synthetic  # untouched values keep the preset's


def test_override_values_are_parsed_as_yaml() -> None:
    assert parse_override("a.b=3") == {"a": {"b": 3}}
    assert parse_override("a=[1, 2]") == {"a": [1, 2]}
    assert parse_override("a=null") == {"a": None}
    assert parse_override("a='007'") == {"a": "007"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("no-equals-sign")


def test_unknown_preset_and_bad_file_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--preset 'huge': expected one of tiny, paper"):
        resolve_config("huge")
    with pytest.raises(ConfigError, match=r"missing\.yaml: not found"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: expected a mapping at the top"):
        load_yaml(bad)


def test_saved_configuration_loads_back_identically(tmp_path: Path) -> None:
    config = resolve_config("paper", overrides=["data.split.seed=11"])
    path = save(config, tmp_path / "config.yaml")
    assert resolve_config("tiny", path) == config
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed, not left behind


def test_yaml_lists_become_tuples_so_configs_stay_hashable() -> None:
    config = from_dict(DataConfig, {"split": {"fractions": [0.8, 0.1, 0.1]}})
    assert config.split.fractions == (0.8, 0.1, 0.1)
    hash(config)


def test_scientific_notation_is_a_number_in_overrides_and_files(tmp_path: Path) -> None:
    assert resolve_config("tiny", overrides=["data.augment.probability=5e-1"]).data.augment.probability == 0.5
    file = tmp_path / "run.yaml"
    file.write_text("data:\n  augment:\n    probability: 2E-1\n")
    assert resolve_config("tiny", file).data.augment.probability == 0.2
    with pytest.raises(ConfigError, match=r"expected a number, got 'e-3'"):
        resolve_config("tiny", overrides=["data.augment.probability=e-3"])

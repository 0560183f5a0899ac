"""A preset's data section: the built-in generators' own options are fields too, checked by
the generator, and ``--set`` puts them in the data section."""

import pytest

from tinymask.cli import apply_overrides
from tinymask.errors import ConfigError, UnknownFieldError
from tinymask.presets import (
    FIGURES_DATA,
    built_in_splits,
    check_data_fields,
    dataset_options,
    load_preset,
)


def test_each_generator_offers_its_own_options():
    assert {"min_size", "classes", "backgrounds"} <= set(dataset_options("shapes"))
    assert {"min_height", "max_objects"} <= set(dataset_options("figures"))
    assert "min_height" not in dataset_options("shapes")


def test_the_figures_preset_draws_the_figures_it_names():
    preset = load_preset("figures")
    check_data_fields(preset["data"])
    train, _ = built_in_splits({**preset["data"], "train": 6, "val": 1})
    assert train.min_height == FIGURES_DATA["min_height"]
    counts = [len(train[i][1]["boxes"]) for i in range(len(train))]
    assert all(1 <= count <= FIGURES_DATA["max_objects"] for count in counts)


@pytest.mark.parametrize("data, error, words", [
    ({"min_height": 40}, UnknownFieldError, "min_height"),  # a figures option on shapes
    ({"classes": ["star"]}, ConfigError, "classes"),
    ({"dataset": "figures", "min_height": 500}, ConfigError, "min_height"),
])
def test_bad_generator_options_are_one_line_errors(data, error, words):
    with pytest.raises(error, match=words):
        check_data_fields(data)


def test_set_puts_a_generator_option_in_the_data_section():
    preset = apply_overrides(load_preset("starter"), ["max_size_fraction=0.5", "max_objects=6",
                                                      "min_size=96"])
    assert preset["data"]["max_size_fraction"] == 0.5 and preset["data"]["max_objects"] == 6
    check_data_fields(preset["data"])
    # a name both sections have is the model's (the image resize); a preset file's "data"
    # section sets the shapes' min_size
    assert preset["model"]["min_size"] == 96 and "min_size" not in preset["data"]

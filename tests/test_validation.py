"""Config fields are checked against their annotations: text from --set or a JSON file that
does not fit a field is refused with a message naming it, never stored or half-used."""

import math

import pytest

from tinymask.config import MaskRCNNConfig
from tinymask.errors import ConfigError, UnknownFieldError, UserError
from tinymask.train import TrainConfig


@pytest.mark.parametrize("changes, message", [
    ({"steps": "abc"}, r"TrainConfig.steps='abc': expected int"),
    ({"steps": 1.5}, r"TrainConfig.steps=1.5: expected int"),
    ({"steps": True}, r"TrainConfig.steps=True: expected int"),
    ({"batch_size": "abc"}, r"TrainConfig.batch_size='abc': expected int"),
    ({"lr": math.nan}, r"TrainConfig.lr=nan: NaN and infinity"),
    ({"lr": math.inf}, r"TrainConfig.lr=inf: NaN and infinity"),
    ({"lr": "0.01"}, r"TrainConfig.lr='0.01': expected float"),
    ({"decay_at": 0.5}, r"decay_at=0.5: expected tuple \(a list, e.g. \[0.5\]\)"),
    ({"decay_at": (math.nan,)}, "NaN"),
    ({"decay_at": ("late",)}, "fractions of the run"),
    ({"decay_at": ()}, "at least one"),
    ({"hflip": "maybe"}, r"TrainConfig.hflip='maybe': expected bool"),
    ({"steps": 0}, "steps=0 must be >= 1"),
    ({"seed": -1}, "seed=-1 must be >= 0"),
    ({"lr": 0.0}, "must be > 0"),
    ({"momentum": 1.5}, r"momentum=1.5 must be in \[0, 1\)"),
    ({"warmup_factor": 0.0}, "warmup_factor"),
    ({"log_every": 0}, "log_every=0 must be >= 1"),
])
def test_train_config_refuses_values_that_do_not_fit(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_whole_floats_and_lists_are_accepted_where_they_fit():
    config = TrainConfig(lr=1, decay_at=[0.5, 0.9])  # an int is a float; a JSON list a tuple
    assert config.decay_at == (0.5, 0.9) and config.lr == 1


@pytest.mark.parametrize("changes, message", [
    ({"num_classes": "4"}, r"num_classes='4': expected int"),
    ({"fpn": "yes"}, r"fpn='yes': expected bool"),
    ({"rpn_nms_thresh": math.nan}, "NaN"),
    ({"anchor_sizes": 32}, "expected tuple"),
    ({"min_size": 0}, "min_size=0 must be >= 1"),
    ({"box_score_thresh": 1.5}, r"box_score_thresh=1.5 must be in \[0, 1\]"),
    ({"backbone": "resnet19"}, "unknown backbone 'resnet19'"),
    ({"fpn": False, "mask_head": "mlp"}, "not for C4"),
])
def test_model_config_refuses_values_that_do_not_fit(changes, message):
    with pytest.raises(ConfigError, match=message):
        MaskRCNNConfig.small(**changes)


def test_mask_threshold_may_be_none():
    assert MaskRCNNConfig(mask_threshold=None).mask_threshold is None


def test_unknown_fields_are_key_errors_with_a_readable_message():
    with pytest.raises(UnknownFieldError) as caught:
        TrainConfig.from_dict({"stepz": 3})
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, UserError)
    assert str(caught.value).startswith("unknown TrainConfig field(s) ['stepz']")
    with pytest.raises(KeyError, match="unknown MaskRCNNConfig field"):
        MaskRCNNConfig.from_dict({"roi_type": "align"})

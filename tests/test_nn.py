"""Modules: registration, state dicts (torch's names), train/eval, init, and parity with
torch.nn modules loaded from the same weights."""

import math

import numpy as np
import pytest

import tinymask as tm
import tinymask.nn as nn
from tests.op_check import randn


def small_net(norm="bn"):
    norm_layer = {"bn": lambda: nn.BatchNorm2d(4), "gn": lambda: nn.GroupNorm(2, 4),
                  "frozen": lambda: nn.FrozenBatchNorm2d(4)}[norm]
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), norm_layer(), nn.ReLU(),
                         nn.MaxPool2d(2), nn.ConvTranspose2d(4, 2, 2, stride=2), nn.Flatten(),
                         nn.Linear(2 * 4 * 4, 5))


def test_parameters_buffers_and_names():
    net = small_net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["0.weight", "1.weight", "1.bias", "4.weight", "4.bias", "6.weight", "6.bias"]
    assert [name for name, _ in net.named_buffers()] == [
        "1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert net.num_parameters() == 4 * 3 * 9 + 4 + 4 + 4 * 2 * 4 + 2 + 32 * 5 + 5
    frozen = nn.FrozenBatchNorm2d(8)
    assert frozen.num_parameters() == 0  # frozen values are buffers, as in torchvision
    assert len(frozen.state_dict()) == 4


def test_train_eval_reach_every_child():
    net = small_net()
    net.eval()
    assert all(not m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_assigning_a_buffer_keeps_it_registered():
    bn = nn.BatchNorm2d(2)
    bn.running_mean = np.full(2, 3.0, dtype=np.float32)
    np.testing.assert_array_equal(bn.state_dict()["running_mean"], [3.0, 3.0])


def test_state_dict_round_trip_and_errors():
    source = small_net()
    tm.manual_seed(1)  # different weights, so the load has something to change
    target = small_net()
    target.load_state_dict(source.state_dict())
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    state = dict(source.state_dict())
    state.pop("0.weight")
    state["extra.weight"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['0.weight'\].*unexpected keys \['extra"):
        target.load_state_dict(state)
    bad = dict(source.state_dict())
    bad["6.bias"] = np.zeros(6)
    with pytest.raises(ValueError, match=r"6.bias has shape \(6,\), the model expects \(5,\)"):
        target.load_state_dict(bad)


def test_default_init_follows_torch_formulas():
    tm.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    fan_in = 64 * 9
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) reduces to 1/sqrt(fan_in)
    assert np.abs(conv.weight.data).max() <= bound
    assert conv.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert np.abs(conv.bias.data).max() <= bound
    weight = nn.Parameter(np.zeros((256, 64, 3, 3)))
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    assert weight.data.std() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.02)


def test_manual_seed_fixes_init():
    tm.manual_seed(7)
    a = nn.Conv2d(3, 4, 3).weight.data.copy()
    tm.manual_seed(7)
    np.testing.assert_array_equal(a, nn.Conv2d(3, 4, 3).weight.data)


def test_double_then_gradcheck_through_a_module():
    tm.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(),
                        nn.ConvTranspose2d(4, 2, 2, stride=2)).double()
    x = tm.Tensor(randn(1, 2, 3, 3), requires_grad=True)
    assert tm.gradcheck(lambda x, *params: net(x), [x, *net.parameters()]) < 1e-6


def test_batch_norm_training_with_one_value_per_channel_is_refused():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(3)(tm.Tensor(np.ones((1, 3, 1, 1), dtype=np.float32)))


def test_module_must_call_super_init():
    class Forgetful(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter(np.zeros(2))

    with pytest.raises(RuntimeError, match="super"):
        Forgetful()


def _torch_net(torch, norm):
    tnn = torch.nn
    norm_layer = {"bn": lambda: tnn.BatchNorm2d(4), "gn": lambda: tnn.GroupNorm(2, 4)}[norm]
    return tnn.Sequential(tnn.Conv2d(3, 4, 3, padding=1, bias=False), norm_layer(), tnn.ReLU(),
                          tnn.MaxPool2d(2), tnn.ConvTranspose2d(4, 2, 2, stride=2),
                          tnn.Flatten(), tnn.Linear(2 * 4 * 4, 5)).double()


@pytest.mark.torch
@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("training", [True, False])
def test_module_matches_torch_with_the_same_weights(norm, training):
    torch = pytest.importorskip("torch")
    theirs = _torch_net(torch, norm)
    ours = small_net(norm).double()
    # torchvision-style names map one to one
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    theirs.train(training)
    ours.train(training)
    x = randn(3, 3, 4, 4)  # conv 4x4 -> pool 2x2 -> deconv 4x4 -> 2*4*4 features
    grad = randn(3, 5, seed=1)
    xt = torch.tensor(x, requires_grad=True)
    theirs(xt).backward(torch.tensor(grad))
    xo = tm.Tensor(x, requires_grad=True)
    ours(xo).backward(grad)
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-6, atol=1e-10)
    their_params = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        np.testing.assert_allclose(parameter.grad, their_params[name].grad.numpy(), rtol=1e-6,
                                   atol=1e-10, err_msg=name)
    their_state = theirs.state_dict()
    for name, value in ours.state_dict().items():  # running statistics updated the same way
        np.testing.assert_allclose(value, their_state[name].numpy(), rtol=1e-6, err_msg=name)


@pytest.mark.torch
def test_frozen_batch_norm_matches_its_formula_and_torch_eval_bn():
    torch = pytest.importorskip("torch")
    bn = torch.nn.BatchNorm2d(3).double().eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, 0.5, 2.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 0.0]))
        bn.running_var.copy_(torch.tensor([2.0, 0.5, 1.0]))
    frozen = nn.FrozenBatchNorm2d(3).double()
    frozen.load_state_dict({k: v.numpy() for k, v in bn.state_dict().items()
                            if k != "num_batches_tracked"})
    x = randn(2, 3, 4, 4)
    np.testing.assert_allclose(frozen(tm.Tensor(x)).data,
                               bn(torch.tensor(x)).detach().numpy(), rtol=1e-12)

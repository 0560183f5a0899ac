"""SGD's update rule (torch.optim.SGD's, step for step) and the warmup + step-decay schedule."""

import numpy as np
import pytest

import tinymask as tm
from tinymask.optim import SGD, WarmupMultiStepLR, warmup_multistep_factor


def _run_sgd(steps, grads, **options):
    p = tm.nn.Parameter(np.array([1.0, -2.0, 3.0]))
    optimizer = SGD([p], **options)
    for grad in grads[:steps]:
        p.grad = grad.copy()
        optimizer.step()
    return p.data


def test_sgd_by_hand():
    grads = [np.array([1.0, 1.0, 1.0]), np.array([2.0, 0.0, -1.0])]
    # step 1: buf = g1 + wd p0; step 2: buf = 0.9 buf + g2 + wd p1
    p0 = np.array([1.0, -2.0, 3.0])
    buf = grads[0] + 0.1 * p0
    p1 = p0 - 0.5 * buf
    buf = 0.9 * buf + grads[1] + 0.1 * p1
    p2 = p1 - 0.5 * buf
    np.testing.assert_allclose(_run_sgd(2, grads, lr=0.5, momentum=0.9, weight_decay=0.1), p2)


@pytest.mark.torch
@pytest.mark.parametrize("options", [
    dict(lr=0.1),
    dict(lr=0.02, momentum=0.9, weight_decay=1e-4),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-2),
])
def test_sgd_matches_torch(options):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(3) for _ in range(6)]
    theirs = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([theirs], **options)
    for grad in grads:
        theirs.grad = torch.tensor(grad)
        optimizer.step()
    np.testing.assert_allclose(_run_sgd(6, grads, **options), theirs.detach().numpy(),
                               rtol=1e-12)


def test_parameters_without_grad_are_skipped_and_groups_have_their_options():
    a = tm.nn.Parameter(np.ones(2))
    b = tm.nn.Parameter(np.ones(2))
    c = tm.nn.Parameter(np.ones(2))
    optimizer = SGD([{"params": [a]}, {"params": [b, c], "weight_decay": 1.0}], lr=0.5)
    a.grad = np.ones(2)
    b.grad = np.ones(2)  # c has no gradient: untouched
    optimizer.step()
    np.testing.assert_allclose(a.data, [0.5, 0.5])
    np.testing.assert_allclose(b.data, [0.0, 0.0])
    np.testing.assert_allclose(c.data, [1.0, 1.0])
    optimizer.zero_grad()
    assert a.grad is None and b.grad is None


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="unknown optimizer options \\['lr_decay'\\]"):
        SGD([{"params": [tm.nn.Parameter(np.ones(1))], "lr_decay": 0.1}], lr=0.1)


def test_state_dict_resumes_exactly():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(3) for _ in range(6)]
    uninterrupted = _run_sgd(6, grads, lr=0.1, momentum=0.9)

    p = tm.nn.Parameter(np.array([1.0, -2.0, 3.0]))
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    for grad in grads[:3]:
        p.grad = grad.copy()
        optimizer.step()
    saved_params, saved_state = p.data.copy(), optimizer.state_dict()

    resumed = tm.nn.Parameter(saved_params)
    optimizer = SGD([resumed], lr=0.1, momentum=0.9)
    optimizer.load_state_dict(saved_state)
    for grad in grads[3:]:
        resumed.grad = grad.copy()
        optimizer.step()
    np.testing.assert_allclose(resumed.data, uninterrupted, rtol=1e-15)


def test_warmup_multistep_table():
    # warmup over 4 iterations from 1/1000, decay x0.1 at 6 and again at 8 (Detectron2's rule)
    expected = {0: 0.001, 1: 0.001 * 0.75 + 0.25, 2: 0.001 * 0.5 + 0.5, 4: 1.0, 5: 1.0,
                6: 0.1, 7: 0.1, 8: 0.01, 100: 0.01}
    for iteration, factor in expected.items():
        assert warmup_multistep_factor(iteration, [6, 8], 0.1, 4, 0.001) == pytest.approx(factor)


def test_scheduler_drives_the_optimizer():
    optimizer = SGD([tm.nn.Parameter(np.ones(1))], lr=0.02)
    scheduler = WarmupMultiStepLR(optimizer, milestones=[3], warmup_iters=2, warmup_factor=0.5)
    lrs = []
    for _ in range(5):
        lrs.append(scheduler.get_last_lr()[0])
        scheduler.step()
    np.testing.assert_allclose(lrs, [0.01, 0.015, 0.02, 0.002, 0.002])
    with pytest.raises(ValueError, match="increasing"):
        WarmupMultiStepLR(optimizer, milestones=[5, 3])


@pytest.mark.parametrize("options", [
    dict(lr=0.02, momentum=0.9, dampening=0.0, weight_decay=1e-4, nesterov=False),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.0, nesterov=False),
    dict(lr=0.05, momentum=0.8, dampening=0.0, weight_decay=1e-2, nesterov=True),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_kernel_gives_the_bits_of_the_numpy_reference(options, dtype):
    from tinymask.optim.sgd import _sgd_update_cpu, sgd_update_reference

    rng = np.random.default_rng(0)
    param = rng.standard_normal((7, 5)).astype(dtype)
    ours, reference = param.copy(), param.copy()
    our_state, reference_state = {}, {}
    for _ in range(4):
        grad = rng.standard_normal(param.shape).astype(dtype)
        _sgd_update_cpu(ours, grad, our_state, **options)
        sgd_update_reference(reference, grad, reference_state, **options)
    np.testing.assert_array_equal(ours, reference)
    np.testing.assert_array_equal(our_state["momentum_buffer"],
                                  reference_state["momentum_buffer"])


def test_clip_grad_norm_scales_each_gradient_once():
    from tinymask.optim import clip_grad_norm_

    a, b = tm.nn.Parameter(np.zeros(2)), tm.nn.Parameter(np.zeros(2))
    (a + b).sum().backward()  # Add hands both leaves its one gradient array
    norm = clip_grad_norm_([a, b], max_norm=1.0)
    assert norm == pytest.approx(2.0)
    np.testing.assert_allclose(a.grad, [0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(b.grad, [0.5, 0.5], rtol=1e-6)

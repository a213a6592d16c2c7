"""robotrl.algorithms.optim.Adam and clip_grad_norm_ agree with torch's."""

from __future__ import annotations

import torch

from robotrl.algorithms.optim import Adam, clip_grad_norm_


def _net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def test_adam_matches_torch_adam_and_round_trips():
    ours_net, ref_net = _net(0), _net(0)
    ours = Adam(ours_net.parameters(), lr=3e-3, eps=1e-5)
    ref = torch.optim.Adam(ref_net.parameters(), lr=3e-3, eps=1e-5)
    g = torch.Generator().manual_seed(1)
    for i in range(25):
        x = torch.randn(32, 5, generator=g)
        for net, opt in ((ours_net, ours), (ref_net, ref)):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            if opt is ours:
                clip_grad_norm_(list(net.parameters()), 0.5)
            else:
                torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
            opt.step()
        if i == 10:  # change lr mid-way, as annealing does
            ours.lr = ref.param_groups[0]["lr"] = 1e-3
    for a, b in zip(ours_net.parameters(), ref_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    again = Adam(_net(0).parameters(), lr=0.0)
    again.load_state_dict(ours.state_dict())
    assert again.t == 25 and again.lr == 1e-3
    torch.testing.assert_close(again.v[0], ours.v[0])


def test_clip_grad_norm_returns_norm_and_clips():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    norm = clip_grad_norm_([p], 1.0)
    assert float(norm) == 5.0
    torch.testing.assert_close(p.grad, torch.tensor([0.6, 0.8]), rtol=1e-5, atol=1e-6)
    p.grad = torch.tensor([0.3, 0.4])
    clip_grad_norm_([p], 1.0)
    torch.testing.assert_close(p.grad, torch.tensor([0.3, 0.4]))

"""DexGen model core: fixed outputs, shapes, the schedule, guidance, training, checkpoints and data windows.

Tiny models on one CPU thread; the whole file runs in a few seconds.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dexforge.policies.dexgen import (
    FORMAT,
    DexGen,
    DexGenConfig,
    InverseDynamics,
    KeypointDiffusion,
    NoiseSchedule,
    Normalizer,
    SinusoidalEmbedding,
    ddim_sample,
    diffusion_loss,
    fit,
    make_windows,
    motion_mask,
)

TINY = DexGenConfig(
    n_keypoints=2,
    n_joints=3,
    history=2,
    horizon=2,
    n_modes=3,
    hidden=32,
    n_blocks=3,
    state_hidden=16,
    state_layers=2,
    diffusion_steps=20,
    ddim_steps=4,
    id_hidden=32,
    id_blocks=2,
)


@pytest.fixture(autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _synthetic(n: int, cfg: DexGenConfig, seed: int) -> dict[str, torch.Tensor]:
    """Motion is +f(cond) or -f(cond) at random (a 2-mode mixture, mode label = branch), targets are a fixed
    linear function of cond and motion plus 0.01 noise. Units are metres-like: motion ~ 1 cm."""
    g = torch.Generator().manual_seed(seed)
    fixed = torch.Generator().manual_seed(1234)  # the same relation for train and held-out data
    w_motion = torch.randn(cfg.cond_dim, cfg.motion_dim, generator=fixed) / cfg.cond_dim**0.5
    a = torch.randn(cfg.cond_dim, cfg.n_joints, generator=fixed) / cfg.cond_dim**0.5
    b = torch.randn(cfg.motion_dim, cfg.n_joints, generator=fixed) * 30.0
    cond = torch.randn(n, cfg.cond_dim, generator=g) * 0.3 + 0.1
    mode = torch.randint(0, 2, (n,), generator=g)
    sign = (2 * mode - 1).float()[:, None]
    motion = 0.01 * (sign * torch.tanh(cond @ w_motion + 0.5) + 0.02 * torch.randn(n, cfg.motion_dim, generator=g))
    target = cond @ a + motion @ b + 0.01 * torch.randn(n, cfg.n_joints, generator=g)
    return {"cond": cond, "mode": mode, "motion": motion, "target": target}


def test_golden_outputs_pin_the_architecture():
    torch.manual_seed(0)
    diffusion, inverse = KeypointDiffusion(TINY), InverseDynamics(TINY)
    x = torch.linspace(-1, 1, 2 * TINY.motion_dim).reshape(2, -1)
    cond = torch.linspace(-2, 2, 2 * TINY.cond_dim).reshape(2, -1).sin()
    with torch.no_grad():
        eps = diffusion(x, torch.tensor([3, 17]), cond, torch.tensor([0, 2]))
        mean, log_std = inverse(cond, x)
    expected_eps = torch.tensor(
        [[-0.556374, 0.297556, 0.539336, 0.499247], [-0.362015, -0.159309, -0.173727, 0.577810]]
    )
    torch.testing.assert_close(eps[:, :4], expected_eps, atol=1e-4, rtol=0)
    assert float(eps.sum()) == pytest.approx(1.800918, abs=1e-4)
    assert float(eps.square().sum()) == pytest.approx(5.419495, abs=1e-4)
    expected_mean = torch.tensor([[-0.510292, -0.012940, -0.493920], [0.087130, -0.462586, -0.069256]])
    expected_log_std = torch.tensor([[1.049644, -0.788677, -0.367649], [-0.152440, -0.396776, 0.295260]])
    torch.testing.assert_close(mean, expected_mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(log_std, expected_log_std, atol=1e-4, rtol=0)


def test_config_sizes_round_trip_and_errors():
    default = DexGenConfig()
    assert (default.state_dim, default.motion_dim, default.cond_dim) == (30 + 22 + 22, 60, 4 * 74)
    assert (TINY.state_dim, TINY.motion_dim, TINY.cond_dim) == (12, 12, 24)
    assert DexGenConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="multiple of 32"):
        DexGenConfig(hidden=48)
    with pytest.raises(ValueError, match="newer"):
        DexGenConfig.from_dict({**TINY.to_dict(), "version": 99})
    with pytest.raises(ValueError, match="unknown"):
        DexGenConfig.from_dict({**TINY.to_dict(), "bogus": 1})


def test_shapes():
    torch.manual_seed(0)
    b = 5
    diffusion, inverse = KeypointDiffusion(TINY), InverseDynamics(TINY)
    cond, x = torch.randn(b, TINY.cond_dim), torch.randn(b, TINY.motion_dim)
    eps = diffusion(x, torch.randint(0, 20, (b,)), cond, torch.randint(0, 3, (b,)))
    assert eps.shape == (b, TINY.motion_dim)
    mean, log_std = inverse(cond, x)
    assert mean.shape == log_std.shape == (b, TINY.n_joints)
    assert SinusoidalEmbedding(16)(torch.arange(b)).shape == (b, 16)
    sample = ddim_sample(diffusion, NoiseSchedule(TINY), cond, torch.zeros(b, dtype=torch.long), steps=4)
    assert sample.shape == (b, TINY.motion_dim) and torch.isfinite(sample).all()
    loss = diffusion_loss(diffusion, x, cond, torch.zeros(b, dtype=torch.long), torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    m = motion_mask(TINY, keypoints=[0], steps=[1]).reshape(TINY.horizon, TINY.n_keypoints, 3)
    assert m.sum() == 3 and m[1, 0].eq(1).all()


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_schedule_is_decreasing_in_unit_interval(kind):
    schedule = NoiseSchedule(dataclasses.replace(TINY, beta_schedule=kind, diffusion_steps=100, ddim_steps=8))
    ac = schedule.alphas_cumprod
    assert ac.shape == (100,)
    assert bool((ac > 0).all() and (ac < 1).all())
    assert bool((ac[1:] < ac[:-1]).all())
    assert ac[0] > 0.98 and ac[-1] < 0.01  # nearly clean at the first step, nearly pure noise at the last
    ts = schedule.ddim_timesteps(8)
    assert ts[0] == 99 and ts[-1] == 0 and len(ts) == 8


def test_guidance_pulls_samples_toward_the_command():
    torch.manual_seed(0)
    diffusion, schedule = KeypointDiffusion(TINY).eval(), NoiseSchedule(TINY)
    b = 64
    cond = torch.randn(b, TINY.cond_dim, generator=torch.Generator().manual_seed(1))
    mode = torch.zeros(b, dtype=torch.long)
    mask = motion_mask(TINY, keypoints=[1], steps=[TINY.horizon - 1])  # one keypoint at the last step
    command = torch.full((1, TINY.motion_dim), float("nan"))  # entries outside the mask are ignored
    command[:, mask.bool()] = torch.tensor([1.5, -1.0, 0.5])

    def distance(strength: float) -> float:
        x = ddim_sample(
            diffusion,
            schedule,
            cond,
            mode,
            steps=5,
            command=command,
            command_mask=mask,
            strength=strength,
            generator=torch.Generator().manual_seed(7),
        )
        assert torch.isfinite(x).all()
        return float(((x - command.nan_to_num()) ** 2 * mask).sum(-1).mean())

    d = [distance(s) for s in (0.0, 0.5, 2.0)]
    assert d[1] < 0.5 * d[0], d
    assert d[2] < 0.5 * d[1], d


def test_training_lowers_diffusion_loss_and_fits_inverse_dynamics():
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, n_modes=2)
    data, held_out = _synthetic(1024, cfg, seed=0), _synthetic(256, cfg, seed=1)
    seen: list[dict[str, float]] = []
    bundle, history = fit(data, cfg, epochs=20, batch_size=64, lr=3e-3, seed=0, log=seen.append)
    assert seen == history and len(history) == 20
    first, last = history[0]["diffusion"], sum(h["diffusion"] for h in history[-3:]) / 3
    assert last < 0.6 * first, (first, last)
    norm = bundle.normalizers
    with torch.no_grad():
        mean_n, log_std = bundle.inverse_dynamics(
            norm["cond"].normalize(held_out["cond"]), norm["motion"].normalize(held_out["motion"])
        )
    error = norm["target"].unnormalize(mean_n) - held_out["target"]
    rel_rmse = float(error.square().mean().sqrt() / held_out["target"].std())
    # the relation is linear with noise of 0.01 on targets of std ~1: held-out RMSE within 10% of the target std
    assert rel_rmse < 0.1, rel_rmse
    assert float(log_std.exp().mean()) < 0.5  # the std head has learned that the residual spread is small


def _tiny_bundle() -> DexGen:
    torch.manual_seed(0)
    data = _synthetic(128, TINY, seed=0)
    return DexGen(TINY).fit_normalizers(data)


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    bundle = _tiny_bundle()
    path = bundle.save(tmp_path / "dexgen.pt", provenance={"data": "synthetic", "seed": 0})
    loaded = DexGen.load(path)
    assert loaded.cfg == TINY and loaded.provenance == {"data": "synthetic", "seed": 0}
    cond = _synthetic(3, TINY, seed=5)["cond"]
    command = torch.zeros(3, TINY.motion_dim)
    mask = motion_mask(TINY, keypoints=[0])
    outs = [
        b.act(cond, torch.tensor([0, 1, 2]), command, mask, strength=1.0, generator=torch.Generator().manual_seed(3))
        for b in (bundle, loaded)
    ]
    targets, motion = outs[0]
    assert targets.shape == (3, TINY.n_joints) and motion.shape == (3, TINY.motion_dim)
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_act_guidance_works_in_metres():
    bundle = _tiny_bundle()
    cond = _synthetic(32, TINY, seed=5)["cond"]
    command = torch.full((1, TINY.motion_dim), 0.02)  # 2 cm on every keypoint and step

    def distance(strength: float) -> float:
        _, motion = bundle.act(cond, 0, command, strength=strength, generator=torch.Generator().manual_seed(3))
        return float((motion - command).square().sum(-1).mean())

    assert distance(2.0) < 0.5 * distance(0.0)


def test_load_refuses_other_formats_and_newer_versions(tmp_path):
    bundle = _tiny_bundle()
    path = bundle.save(tmp_path / "ok.pt", provenance={})
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT
    torch.save({**payload, "format": "something.else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a DexGen checkpoint"):
        DexGen.load(tmp_path / "other.pt")
    torch.save({**payload, "version": 99}, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match="newer than this dexforge reads"):
        DexGen.load(tmp_path / "newer.pt")
    with pytest.raises(ValueError, match="JSON-able"):
        bundle.save(tmp_path / "bad.pt", provenance={"obj": object()})


def test_normalizer_round_trip_and_floor():
    x = torch.cat([torch.randn(50, 2) * 3 + 1, torch.full((50, 1), 4.0)], dim=1)
    norm = Normalizer(min_std=1e-3).fit(x)
    assert norm.std[2] == pytest.approx(1e-3)
    torch.testing.assert_close(norm.unnormalize(norm.normalize(x)), x)
    assert norm.normalize(x)[:, :2].std(0, correction=0).sub(1).abs().max() < 1e-5
    copy = Normalizer().load_state_dict(norm.state_dict())
    torch.testing.assert_close(copy.normalize(x), norm.normalize(x))
    with pytest.raises(RuntimeError, match="fit"):
        Normalizer().normalize(x)


def _episode(length: int) -> dict[str, torch.Tensor]:
    s = torch.arange(length, dtype=torch.float32)
    return {
        "keypoints": s[:, None, None] * 100 + torch.arange(6.0).reshape(1, 2, 3),
        "joint_pos": s[:, None] * 10 + torch.tensor([0.5, 1.5, 2.5]),
        "targets": -(s[:, None] * 10 + torch.tensor([0.0, 1.0, 2.0])),
        "mode": torch.arange(length) % 3,
    }


def test_make_windows_counts_and_contents():
    ep = _episode(6)
    out = make_windows([ep, _episode(4)], TINY)  # 6 - H - T = 2 samples (t = 2, 3); the 4-step episode none
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "cond": (2, 24),
        "mode": (2,),
        "motion": (2, 12),
        "target": (2, 3),
    }

    def state(s: int) -> list[float]:  # keypoints[s], joint_pos[s], targets[s-1]
        return (
            [100 * s + k for k in range(6)]
            + [10 * s + j + 0.5 for j in range(3)]
            + [-(10 * (s - 1) + j) for j in range(3)]
        )

    for row, t in enumerate((2, 3)):
        assert out["cond"][row].tolist() == state(t - 1) + state(t)
        assert out["motion"][row].tolist() == [100.0] * 6 + [200.0] * 6
        assert out["target"][row].tolist() == [-(10 * t + j) for j in range(3)]
        assert int(out["mode"][row]) == t % 3
    assert out["mode"].dtype == torch.long
    with pytest.raises(ValueError, match="longer than history"):
        make_windows([_episode(4)], TINY)
    with pytest.raises(ValueError, match="joint_pos has shape"):
        make_windows([{**ep, "joint_pos": torch.zeros(6, 4)}], TINY)


def test_the_bundle_moves_all_its_networks():
    bundle = _tiny_bundle()
    assert bundle.device == torch.device("cpu")
    moved = bundle.to("meta")  # no GPU here: the meta device shows every network went
    assert moved is bundle and bundle.device == torch.device("meta")
    nets = (bundle.diffusion, bundle.inverse_dynamics, bundle.forward_kinematics)
    assert all(p.device.type == "meta" for net in nets for p in net.parameters())

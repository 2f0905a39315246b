"""DexterityGen's simulated experiment at this machine's scale: does DexGen keep a corrupted expert's object in
hand longer, and does it let a corrupted rotation expert still reach its goals?

Trains experts per object (PPO on the fingers): `hold` keeps the object while the wrist wanders and turns,
`spin_<axis>` turns it in the hand about a palm axis. Collects their rollouts (domain-randomised,
drop-trimmed, labelled hold / rotate), trains DexGen on them, then:
  1. on the first object's hold expert: the expert corrupted by uniform action noise U(-e, e) for several e
     and slowed by U(0, a) * action, each raw and through DexGen at several guidance strengths: mean holding
     time (time to drop, capped at --seconds) and the fraction held to the end;
  2. on every spin expert of the first object: clean and at --spin-noise, raw and through DexGen, reporting
     goals achieved in the fixed simulated time (--seconds): whole --goal-deg turns about the axis before
     the drop;
  3. on the other objects' hold experts: the highest noise, raw and through DexGen at the strength that did
     best in 1 (several shapes);
and DexGen's latency per action (batch 1, this CPU). JSON on stdout.
Target: at the highest noise where the raw expert drops within a few seconds, DexGen holds >= 10x longer;
latency <= 27 ms. Usage:
  python benchmarks/dexgen.py [--assets cube ball can cube@1.2] [--spin-assets cube] [--out DIR]
  (reuses the experts, data and model found in DIR)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from pathlib import Path
from tempfile import mkdtemp

import torch


def _grid(env, start, act, corruptions, strengths, bundle, args, log, *, skill="hold", wrist=None) -> list:
    from dexforge.policies.dexgen import evaluate as E

    rows = []
    for c in corruptions:
        kw = {"seconds": args.seconds, "skill": skill, "wrist": wrist, "goal_deg": args.goal_deg}
        raw = E.hold_duration(env, start, act, c, **kw)
        rows.append(raw)
        goals = "" if raw.goals is None else f", {raw.goals:.2f} goals"
        log(f"{skill} {c.label}: raw expert holds {raw.hold_s:.2f} s{goals}")
        for s in strengths if (c.noise or c.slow is not None) else strengths[len(strengths) // 2 :][:1]:
            r = E.hold_duration(env, start, act, c, bundle=bundle, strength=s, **kw)
            rows.append(r)
            goals = "" if r.goals is None else f", {r.goals:.2f} goals"
            log(f"{skill} {c.label}: DexGen strength {s:g} holds {r.hold_s:.2f} s{goals} ({r.latency_ms} ms per call)")
    return rows


def _row(r) -> dict:
    from dexforge.policies.dexgen import evaluate as E

    return {k: v for k, v in E.as_json([r])[0].items() if k != "per_env" and v is not None}


def main() -> dict:
    from dexforge.policies.dexgen import evaluate as E
    from dexforge.policies.dexgen import pipeline as P
    from dexforge.policies.dexgen.checkpoint import DexGen
    from dexforge.policies.dexgen.experts import ExpertConfig, expert_folder, make_env
    from dexforge.policies.dexgen.skills import DEFAULT_ASSETS, SPIN_AXES
    from dexforge.sim.env import EnvState

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", nargs="+", default=list(DEFAULT_ASSETS))
    parser.add_argument("--spin-assets", nargs="*", default=None, help="objects with spin experts (default: the first)")
    parser.add_argument("--spin-axes", nargs="*", default=list(SPIN_AXES), help="palm axes of the spin experts")
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--expert-steps", type=int, default=200_000, help="PPO env steps per hold expert")
    parser.add_argument("--spin-steps", type=int, default=400_000, help="PPO env steps per spin expert")
    parser.add_argument("--runs", type=int, default=2, help="collection runs per expert")
    parser.add_argument("--collect-steps", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0, help="holding time is capped at this")
    parser.add_argument("--goal-deg", type=float, default=45.0, help="a spin goal: a turn of this many degrees")
    parser.add_argument("--noise", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--slow", type=float, nargs="*", default=[0.5])
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--spin-noise", type=float, nargs="+", default=[2.0], help="noise levels for the spin grid")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out or Path(mkdtemp(prefix="dexforge-dexgen-"))
    log = print  # stdout is stderr here (see __main__)
    t0 = time.time()
    spin_assets = args.assets[:1] if args.spin_assets is None else args.spin_assets
    spins = [f"spin_{a}" for a in args.spin_axes]
    cfg = ExpertConfig(env_steps=args.expert_steps)
    experts = P.train_experts(out, args.assets, n_envs=args.envs, cfg=cfg, log=log)
    cfg = ExpertConfig(env_steps=args.spin_steps)
    experts += P.train_experts(out, spin_assets, n_envs=args.envs, cfg=cfg, skills=spins, log=log)
    t_experts = time.time()
    if not (out / "data.hdf5").exists():
        kw = {"n_envs": args.envs, "runs": args.runs, "steps": args.collect_steps, "log": log}
        P.collect_data(out, args.assets, skills=["hold", *spins], **kw)
    t_data = time.time()
    if not (out / "dexgen.pt").exists():
        P.train_model(out, epochs=args.epochs, log=log)
    t_model = time.time()
    bundle = DexGen.load(out / "dexgen.pt")

    trained = [e for e in experts if "skipped" not in e]
    holders = [e["asset"] for e in trained if e.get("skill", "hold") == "hold"]
    asset = holders[0]
    corruptions = [E.Corruption(noise=e) for e in [0.0, *args.noise]] + [E.Corruption(slow=a) for a in args.slow]

    # 1. the first object's hold expert over the whole grid
    env = make_env(asset, n_envs=args.envs, seed=1)  # evaluation layouts differ from the data's
    start = EnvState.load(out / "experts" / asset / "start_states.pt")
    P.ready_envs(env, start, 1)
    act, _ = P.load_expert(env, expert_folder(out, asset), deterministic=True)
    rows = _grid(env, start, act, corruptions, args.strengths, bundle, args, log)
    summary, judged = E.summarize(rows, corruptions)

    # 2. the first object's spin experts: goals in the fixed time, raw and assisted
    spin = {}
    spin_corruptions = [E.Corruption(noise=e) for e in [0.0, *args.spin_noise]]
    for e in trained:
        if e["asset"] != asset or e.get("skill", "hold") == "hold":
            continue
        folder = expert_folder(out, asset, e["skill"])
        spin_act, spin_summary = P.load_expert(env, folder, deterministic=True)
        grid = _grid(
            env,
            start,
            spin_act,
            spin_corruptions,
            args.strengths,
            bundle,
            args,
            log,
            skill=e["skill"],
            wrist=P.expert_wrist(spin_summary),
        )
        spin[e["skill"]] = {
            "summary": E.summarize_goals(grid, spin_corruptions),
            "results": [_row(r) for r in grid],
        }
    env.close()

    # 3. the other shapes' hold experts at the judged noise, raw and with the strength that did best there
    shapes = {}
    if judged is not None:
        best_strength = summary[judged.label]["best_strength"]
        for other in holders[1:]:
            env = make_env(other, n_envs=args.envs, seed=1)
            start = EnvState.load(out / "experts" / other / "start_states.pt")
            P.ready_envs(env, start, 1)
            act, _ = P.load_expert(env, expert_folder(out, other), deterministic=True)
            raw = E.hold_duration(env, start, act, judged, seconds=args.seconds)
            assisted = E.hold_duration(
                env, start, act, judged, seconds=args.seconds, bundle=bundle, strength=best_strength
            )
            shapes[other] = {
                "corruption": judged.label,
                "strength": best_strength,
                "raw_hold_s": raw.hold_s,
                "dexgen_hold_s": assisted.hold_s,
                "ratio": round(assisted.hold_s / max(raw.hold_s, 1e-3), 2),
            }
            log(f"{other} {judged.label}: raw {raw.hold_s:.2f} s, DexGen {assisted.hold_s:.2f} s")
            env.close()
    t_eval = time.time()

    latency = E.latency_per_action(bundle)
    return {
        "benchmark": "dexgen",
        "machine": f"{platform.machine()}, CPU backend, {torch.get_num_threads()} torch thread(s)",
        "assets": args.assets,
        "spin_assets": spin_assets,
        "spin_axes": args.spin_axes,
        "envs": args.envs,
        "seconds_cap": args.seconds,
        "goal_deg": args.goal_deg,
        "experts": [
            {k: e.get(k) for k in ("asset", "skill", "best_success", "env_steps", "stop_reason", "skipped")}
            for e in experts
        ],
        "model": {k: v for k, v in bundle.provenance.items() if k in ("windows", "train_s")}
        | {"final_losses": bundle.provenance.get("history", [{}])[-1]},
        "hold": {"asset": asset, "results": [_row(r) for r in rows], "summary": summary},
        "spin": {"asset": asset, **spin},
        "shapes": shapes,
        "target": {
            "judged_at": judged.label if judged else None,
            "ratio": summary[judged.label]["ratio"] if judged else None,
            "meets_10x": bool(judged and summary[judged.label]["ratio"] >= 10),
            "latency_ms_batch1": latency,
            "meets_latency": latency["median_ms"] <= 27.0,
        },
        "wall_s": {
            "experts": round(t_experts - t0, 1),
            "collect": round(t_data - t_experts, 1),
            "train": round(t_model - t_data, 1),
            "eval": round(t_eval - t_model, 1),
            "total": round(time.time() - t0, 1),
        },
        "out": str(out),
    }


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # Genesis logs to stdout; stdout carries only the JSON
        report = main()
    print(json.dumps(report, indent=2))

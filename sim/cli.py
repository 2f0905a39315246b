"""`dexforge sim ...`: validate, check and render task specs, browse the catalog, run the demo."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="The simulator layer: task specs, physics checks, renders, the asset catalog.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
catalog_app = typer.Typer(help="List the asset catalog, or add your own mesh or URDF to it.", rich_markup_mode=None)
app.add_typer(catalog_app, name="catalog")
out = Console()
COMPILE_NOTE = "building the scene (the first time on a machine Genesis compiles kernels: 2-3 min)"

SpecArg = Annotated[Path, typer.Argument(help="A task spec YAML file (see `dexforge sim demo` for an example).")]


def _load(path: Path):
    from dexforge.sim.spec import TaskSpec

    return TaskSpec.load(path)


@app.command()
def validate(
    spec: SpecArg,
    show: Annotated[bool, typer.Option("--print", help="Print the spec with every default filled in.")] = False,
) -> None:
    """Check that a spec is well-formed and names known assets; no simulation."""
    task = _load(spec)
    out.print(
        f"[green]ok[/green] {task.name}: {len(task.objects)} objects, {len(task.success)} success predicates, "
        f"{task.episode_length} steps"
    )
    if show:
        typer.echo(task.to_yaml(), nl=False)


@app.command()
def check(
    spec: SpecArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Run the physics checks (interpenetration, settling, reach, scale, workspace) on a spec.

    Exits with status 1 when a check finds an error.
    """
    from dexforge.sim.checks import run_checks

    task = _load(spec)
    with out.status(COMPILE_NOTE, spinner="dots") if not as_json else _nothing():
        report = run_checks(task)
    if as_json:
        typer.echo(json.dumps({"ok": report.ok, **report.model_dump()}, indent=2))
    else:
        _findings_table(report)
    raise typer.Exit(0 if report.ok else 1)


def _findings_table(report) -> None:
    if not report.findings:
        out.print(f"[green]no findings[/green] ({', '.join(report.checks_run)})")
        return
    table = Table(title=f"physics checks: {report.spec}")
    for col in ("check", "severity", "subject", "finding"):
        table.add_column(col)
    colour = {"error": "red", "warning": "yellow", "info": "cyan"}
    for f in report.findings:
        table.add_row(f.check, f"[{colour[f.severity]}]{f.severity}[/]", f.subject, f.message)
    out.print(table)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@app.command()
def render(
    spec: SpecArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNGs.")] = Path("renders"),
    views: Annotated[str, typer.Option(help="Comma-separated views: front, side, top, oblique.")] = "front,side,top",
    res: Annotated[str, typer.Option(help="Resolution WIDTHxHEIGHT.")] = "640x480",
) -> None:
    """Render the spec's initial scene from several views to PNG files."""
    from dexforge.home import DexforgeError

    try:
        w, h = (int(v) for v in res.lower().split("x"))
    except ValueError:
        raise DexforgeError(f"--res must look like 640x480, got '{res}'") from None
    names = [v.strip() for v in views.split(",") if v.strip()]
    from dexforge.sim.scene import CAMERA_VIEWS

    unknown = [v for v in names if v not in CAMERA_VIEWS]
    if unknown:
        raise DexforgeError(f"unknown view '{unknown[0]}'; views: {', '.join(CAMERA_VIEWS)}")
    task = _load(spec)
    from dexforge.sim.env import EnvConfig, HandEnv
    from dexforge.sim.render import render_views
    from dexforge.sim.scene import SceneConfig

    with out.status(COMPILE_NOTE, spinner="dots"):
        env = HandEnv(task, EnvConfig(randomize=False), SceneConfig(n_envs=1, cameras=True, camera_res=(w, h)))
        paths = render_views(env, out_dir, names)
    for view, path in paths.items():
        out.print(f"{view}: {path}")


@catalog_app.callback(invoke_without_command=True)
def catalog_list(
    ctx: typer.Context,
    tag: Annotated[str | None, typer.Option(help="Only assets with this tag (graspable, container, ...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
) -> None:
    """List hands and objects with their sizes, masses, tags and synonyms."""
    if ctx.invoked_subcommand is not None:
        return
    from dexforge.sim.catalog import default_catalog

    cat = default_catalog()
    objects = [o for o in cat.objects.values() if tag is None or tag in o.tags]
    if as_json:
        typer.echo(json.dumps([o.model_dump(mode="json") for o in objects], indent=2))
        return
    table = Table(title=f"objects ({len(objects)})")
    for col in ("id", "size (cm)", "mass (kg)", "tags", "also called"):
        table.add_column(col)
    for o in objects:
        size = " x ".join(f"{s * 100:.1f}" for s in o.size)
        mass = f"{o.mass:.3f}" if o.mass else "-"
        table.add_row(o.id, size, mass, ", ".join(o.tags), ", ".join(o.synonyms))
    out.print(table)
    for h in cat.hands.values():
        out.print(f"hand [bold]{h.id}[/bold]: {h.description} mounts: {', '.join(h.mounts)}")


@catalog_app.command("add")
def catalog_add(
    file: Annotated[Path, typer.Argument(help="A mesh (OBJ, STL, GLB, GLTF, PLY) or a URDF file.")],
    asset_id: Annotated[str | None, typer.Option("--id", help="Catalog id; default the file's name.")] = None,
    scale: Annotated[
        float | None, typer.Option(help="Factor from the file's units to metres; default guessed.")
    ] = None,
    mass: Annotated[float | None, typer.Option(help="Mass in kg; default from the volume.")] = None,
) -> None:
    """Validate a mesh or URDF and add it to your catalog (kept in $DEXFORGE_HOME/catalog)."""
    from dexforge.sim.assets.user import import_asset, inspect_mesh
    from dexforge.sim.catalog import save_user_object

    asset = import_asset(file, asset_id=asset_id, scale=scale, mass=mass)
    if asset.shape == "mesh":
        report = inspect_mesh(file)
        for warning in report.warnings:
            out.print(f"[yellow]warning[/yellow] {warning}")
    path = save_user_object(asset)
    size = " x ".join(f"{s * 100:.1f}" for s in asset.size)
    out.print(f"[green]added[/green] {asset.id} ({asset.shape}, {size} cm) to {path}")


@app.command()
def metrics() -> None:
    """Print the metrics every environment step publishes (what rewards and predicates can read)."""
    from dexforge.sim.metrics import describe

    out.print(describe(), highlight=False, markup=False)


@app.command()
def demo(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder; default a new run folder.")] = None,
    example: Annotated[str, typer.Option(help="Example spec: lift_cube, apple_in_bowl, open_drawer.")] = "lift_cube",
) -> None:
    """Check, render and roll out an example task with a scripted grasp; writes PNGs, a video and a summary."""
    from dexforge.home import runs_dir
    from dexforge.sim.demo import example_spec, run_demo

    spec = example_spec(example)
    out_dir = out_dir or runs_dir() / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.time()
    with out.status(f"{example}: {COMPILE_NOTE}", spinner="dots"):
        summary = run_demo(out_dir, spec)
    checks = "[green]pass[/green]" if summary["checks_ok"] else "[red]errors[/red]"
    out.print(f"spec       {summary['spec']}  (physics checks: {checks}, {len(summary['findings'])} findings)")
    for view, path in summary["renders"].items():
        out.print(f"render     {view}: {path}")
    out.print(f"video      {summary['video']}")
    verdict = "[green]success[/green]" if summary["success"] else "[yellow]not reached[/yellow]"
    out.print(f"rollout    scripted grasp lifted the object {summary['max_lift_m'] * 100:.1f} cm; task {verdict}")
    out.print(f"summary    {out_dir / 'summary.json'}  ({time.time() - t0:.0f} s)")

"""`evalctl recipe`: published post-training pipelines as files under `recipes/`, run stage by stage.

A recipe is YAML: `vars` (the GPU defaults: real model names, data under ../shared/data), a `tiny`
profile overriding them for the test suite's tiny models on CPU, `stages` (each an `evalctl`
command line, `run:`, or a gateway to start, `serve:`), and a `table` of rows read from the stages'
run dirs. `${name}` is a var, `${STAGE.out}` a stage's output dir, `${STAGE.url}` a served gateway,
`${env.NAME}` an environment variable, `${run_dir}` the run dir.

Stages are invoked in-process through the same click command the CLI runs (as `evalctl demo`
does): torch, transformers and TRL are imported once per run instead of once per stage, which on
the tiny profile would cost more than the stages' own work. Each stage's stdout, stderr and logging
go to `RUN/logs/STAGE.log`; a finished stage leaves `RUN/.done/STAGE.json` and is skipped on rerun.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import click
import yaml

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
REF = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class RecipeError(click.ClickException):
    """A one-line error, exit code 1."""


@dataclass
class Recipe:
    name: str
    path: Path
    description: str
    pipeline: str
    vars: dict
    tiny: dict
    stages: list[dict]
    table: dict
    extra: dict = field(default_factory=dict)


def recipe_paths(root: Path = RECIPES_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def _check_stages(where: str, stages) -> list[dict]:
    if not isinstance(stages, list) or not stages:
        raise RecipeError(f"{where}: `stages` must be a non-empty list")
    seen = set()
    for i, st in enumerate(stages):
        if not isinstance(st, dict) or not isinstance(st.get("name"), str) or not NAME_RE.match(st["name"]):
            raise RecipeError(f"{where}: stage {i + 1} needs a `name` of [a-z0-9-]")
        kinds = [k for k in ("run", "serve", "best") if k in st]
        if len(kinds) != 1 or not isinstance(st[kinds[0]], dict if kinds[0] == "best" else str):
            raise RecipeError(f"{where}: stage {st['name']!r} needs exactly one of `run:` or `serve:` (a command "
                              "line) or `best:` (metric + candidates)")
        if kinds[0] == "best" and (not st["best"].get("metric") or not isinstance(st["best"].get("of"), list)):
            raise RecipeError(f"{where}: stage {st['name']!r}: `best:` needs `metric` and `of` (a list of value/run)")
        if st["name"] in seen:
            raise RecipeError(f"{where}: stage {st['name']!r} appears twice")
        seen.add(st["name"])
    return stages


def load_recipe(path: Path) -> Recipe:
    where = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise RecipeError(f"{where}: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise RecipeError(f"{where}: expected a mapping")
    table = doc.get("table") or {}
    if not isinstance(table.get("rows"), list) or not table["rows"]:
        raise RecipeError(f"{where}: `table.rows` must list the rows of the final table")
    return Recipe(name=Path(path).stem, path=Path(path), description=str(doc.get("description", "")).strip(),
                  pipeline=str(doc.get("pipeline", "")).strip(), vars=dict(doc.get("vars") or {}),
                  tiny=dict(doc.get("tiny") or {}), stages=_check_stages(where, doc.get("stages")), table=table,
                  extra={k: v for k, v in doc.items() if k not in ("vars", "tiny", "stages", "table")})


def find_recipe(name: str, root: Path = RECIPES_DIR) -> Recipe:
    paths = recipe_paths(root)
    if name in paths:
        return load_recipe(paths[name])
    if Path(name).suffix in (".yaml", ".yml") and Path(name).is_file():
        return load_recipe(Path(name))
    import difflib

    close = difflib.get_close_matches(name, list(paths), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(paths)}"
    raise RecipeError(f"no recipe {name!r}{hint}")


def parse_sets(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key:
            raise RecipeError(f"--set expects key=value, got {v!r}")
        out[key] = val
    return out


class Context:
    """What `${...}` resolves to: vars, stage outputs, env."""

    def __init__(self, recipe: Recipe, run_dir: Path, tiny: bool, sets: dict[str, str]):
        unknown = sorted(set(sets) - set(recipe.vars) - set(recipe.tiny))
        if unknown:
            raise RecipeError(f"--set {unknown[0]}: recipe {recipe.name} has no such var "
                              f"(vars: {', '.join(sorted(recipe.vars))})")
        self.values = {**recipe.vars, **(recipe.tiny if tiny else {}), **sets, "run_dir": str(run_dir),
                       "recipe_dir": str(recipe.path.resolve().parent)}
        self.stage_names = {s["name"] for s in recipe.stages}
        self.outputs: dict[str, str] = {}

    def lookup(self, key: str, where: str, depth: int = 0) -> str:
        if key.startswith("env."):
            if key[4:] not in os.environ:
                raise RecipeError(f"{where}: ${{{key}}}: environment variable {key[4:]} is not set")
            return os.environ[key[4:]]
        if key in self.outputs:
            return self.outputs[key]
        stage = key.split(".")[0]
        if stage in self.stage_names and "." in key:
            raise RecipeError(f"{where}: ${{{key}}} refers to stage {stage!r}, which has not run before this one")
        if key not in self.values:
            raise RecipeError(f"{where}: unknown reference ${{{key}}}")
        return self.expand(str(self.values[key]), where, depth + 1)

    def expand(self, text: str, where: str, depth: int = 0) -> str:
        if depth > 10:
            raise RecipeError(f"{where}: references nest too deep (a var refers to itself?)")
        return REF.sub(lambda m: self.lookup(m.group(1), where, depth), text)

    def argv(self, line: str, where: str) -> list[str]:
        """Split before expanding, so a path with spaces stays one argument; a var standing alone
        as an argument (`${serve_args}`) may hold several."""
        out = []
        for tok in shlex.split(line):
            m = REF.fullmatch(tok)
            if m and m.group(1) in self.values and m.group(1) not in ("run_dir", "recipe_dir"):
                out += shlex.split(self.expand(tok, where))
            else:
                out.append(self.expand(tok, where))
        return out


@contextlib.contextmanager
def captured(log_path: Path):
    """Point stdout, stderr and the root logger at the stage's log for its duration."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with open(log_path, "a", buffering=1) as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        saved = root.handlers[:]
        root.handlers = [handler]
        level = root.level
        root.setLevel(min(level, logging.INFO) if level else logging.INFO)
        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                yield f
        finally:
            root.handlers = saved
            root.setLevel(level)


def invoke(argv: list[str]) -> None:
    """Run `evalctl ARGV` in-process; a failure is raised as a one-line RuntimeError."""
    from .cli import main

    try:
        main.main(argv, prog_name="evalctl", standalone_mode=False)
    except click.ClickException as e:
        raise RuntimeError(e.format_message()) from None
    except click.exceptions.Exit as e:
        if e.exit_code:
            raise RuntimeError(f"exit code {e.exit_code}") from None
    except SystemExit as e:
        if e.code not in (None, 0):
            raise RuntimeError(f"exit code {e.code}") from None


class Runner:
    def __init__(self, recipe: Recipe, run_dir: Path, tiny: bool, sets: dict[str, str], echo=click.echo):
        self.recipe, self.run_dir, self.echo = recipe, Path(run_dir), echo
        self.ctx = Context(recipe, self.run_dir, tiny, sets)
        self.servers: list = []
        self.profile = "tiny" if tiny else "gpu"

    def _done_path(self, name: str) -> Path:
        return self.run_dir / ".done" / f"{name}.json"

    def run_stage(self, i: int, st: dict) -> None:
        name, n = st["name"], len(self.recipe.stages)
        out = self.run_dir / name
        self.ctx.outputs[f"{name}.out"] = str(out)
        log = self.run_dir / "logs" / f"{name}.log"
        where = f"stage {name}"
        done = self._done_path(name)
        if st.get("only") not in (None, self.profile):
            self.echo(f"[{i}/{n}] {name}: {st['only']} profile only, skipped")
            return
        if "run" in st and done.exists():
            self._read_outputs(name, out)
            self.echo(f"[{i}/{n}] {name}: done before, skipped")
            return
        if "best" in st:
            return self._best(i, st, out)
        if "serve" in st and self._all_done_after(i):
            self.echo(f"[{i}/{n}] {name}: every stage after it is done, not started")
            return
        kind = "run" if "run" in st else "serve"
        argv = self.ctx.argv(st[kind], where)
        shown = argv if kind == "run" else ["serve", *argv]
        self.echo(f"[{i}/{n}] {name}: evalctl {' '.join(shown)}"[:400])
        t0 = time.perf_counter()
        try:
            out.mkdir(parents=True, exist_ok=True)
            if kind == "run":
                with captured(log) as f:
                    f.write(f"$ evalctl {shlex.join(argv)}\n")
                    invoke(argv)
            else:
                self.ctx.outputs[f"{name}.url"] = self._serve(argv, log)
        except Exception as e:  # noqa: BLE001 - any failure stops the run with one line naming the log
            with open(log, "a") as f:
                traceback.print_exc(file=f)
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RecipeError(f"stage {name} failed: {msg} (log: {log})") from None
        secs = time.perf_counter() - t0
        self._read_outputs(name, out)
        if kind == "run":
            done.parent.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps({"argv": argv, "seconds": round(secs, 1)}))
        self.echo(f"[{i}/{n}] {name}: ok in {secs:.1f}s")

    def _read_outputs(self, name: str, out: Path) -> None:
        """A stage's `outputs.json` (e.g. `files upload --out`): its scalar keys become ${NAME.KEY}."""
        try:
            values = json.loads((out / "outputs.json").read_text())
        except (OSError, ValueError):
            return
        if isinstance(values, dict):
            self.ctx.outputs.update({f"{name}.{k}": str(v) for k, v in values.items()
                                     if isinstance(v, (str, int, float)) and not isinstance(v, bool)})

    def _best(self, i: int, st: dict, out: Path) -> None:
        """Pick the candidate whose run scores highest on `metric` (the first on a tie): later stages
        read it as ${NAME.value}. Recomputed on every run, it costs nothing."""
        from .recipe_table import metric_value

        name, metric, where = st["name"], str(st["best"]["metric"]), f"stage {st['name']}"
        scored = []
        for cand in st["best"]["of"]:
            run = Path(self.ctx.expand(str(cand["run"]), where))
            value = metric_value(run / "summary.json", metric, where)
            scored.append({"value": self.ctx.expand(str(cand["value"]), where), "run": str(run), metric: value})
        pick = max(scored, key=lambda c: c[metric])  # max keeps the first of equal ones
        out.mkdir(parents=True, exist_ok=True)
        (out / "choice.json").write_text(json.dumps({"metric": metric, "picked": pick, "candidates": scored}, indent=2))
        self.ctx.outputs[f"{name}.value"] = pick["value"]
        self.echo(f"[{i}/{len(self.recipe.stages)}] {name}: {pick['value']} ({metric} {pick[metric]:.3f})")

    def _all_done_after(self, i: int) -> bool:
        return all(self._done_path(st["name"]).exists() for st in self.recipe.stages[i:]
                   if "run" in st and st.get("only") in (None, self.profile))

    def _serve(self, argv: list[str], log: Path) -> str:
        from .process import ServerProcess

        log.parent.mkdir(parents=True, exist_ok=True)
        proc = ServerProcess(argv, log, env={"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")})
        self.servers.append(proc)
        return proc.start().url

    def run(self) -> dict:
        from .recipe_table import build_table, write_table

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.echo(f"recipe {self.recipe.name} ({self.profile}) -> {self.run_dir}")
        t0 = time.perf_counter()
        try:
            for i, st in enumerate(self.recipe.stages, 1):
                self.run_stage(i, st)
        finally:
            for proc in self.servers:
                proc.stop()
        table = build_table(self.recipe, self.ctx)
        table["profile"], table["seconds"] = self.profile, round(time.perf_counter() - t0, 1)
        paths = write_table(table, self.run_dir)
        self.echo(paths["markdown"].read_text())
        self.echo(f"table: {paths['json']}, {paths['markdown']}, {paths['png']}")
        return table


def run_recipe(name: str, out: Path | None, tiny: bool, sets: dict[str, str], echo=click.echo) -> dict:
    recipe = find_recipe(name)
    run_dir = Path(out) if out else Path("runs") / "recipes" / f"{recipe.name}{'-tiny' if tiny else ''}"
    return Runner(recipe, run_dir, tiny, sets, echo).run()


@click.group()
def recipe() -> None:
    """Post-training pipelines as runnable recipes (recipes/*.yaml)."""


@recipe.command("ls")
def ls_cmd() -> None:
    """The recipes, one line each: name and pipeline."""
    for name, path in recipe_paths().items():
        r = load_recipe(path)
        click.echo(f"{name:16} {r.pipeline or r.description}")


@recipe.command("run")
@click.argument("name")
@click.option("--tiny", is_flag=True, help="The tiny profile: the test suite's tiny models on CPU, few steps.")
@click.option("--out", type=click.Path(path_type=Path), help="Run dir [default: runs/recipes/NAME]; rerun skips "
              "finished stages.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a recipe var (repeatable).")
def run_cmd(name: str, tiny: bool, out: Path | None, sets: tuple[str, ...]) -> None:
    """Run recipe NAME stage by stage; the final table goes to RUN/table.{json,md,png}."""
    run_recipe(name, out, tiny, parse_sets(sets))

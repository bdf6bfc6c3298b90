"""The README's examples run, so they cannot drift from the code again (issue 17 item 4).

- Python blocks run in order as one script, in a folder holding song.mid (45 s, two piano tracks and
  drums), melody.mid and my_corruptions.py, with a tiny random model as the default ($TATUM_MODEL): what is checked is
  that every call, name and keyword exists and works, not what the music sounds like.
- Shell lines that start with `tatum` run through the real command when they are quick (the generation
  verbs with --force added, render, classify); the others (training, data preparation, jam, serve,
  transcription, evaluation) are parsed by the real option parser and their sampling and conditioning
  values checked, so every option and value must exist. Lines that run a script name a file that exists.
- A block right after `<!-- not run: reason -->` is not run (it needs data or a trained run): a Python
  one is compiled and its imports made; a shell one is still parsed.
"""

from __future__ import annotations

import ast
import glob
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import daw_song, tiny_checkpoint
from tatum.notes import Notes
from tatum.options import SPECS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUN = {"improvise", "harmonize", "continue", "infill", "render", "classify"}
FENCE = re.compile(r"(?:<!-- not run: (?P<why>[^>]*?) -->\s*\n)?```(?P<lang>python|sh)\n(?P<code>.*?)```", re.S)


def blocks(lang: str) -> list[tuple[str, str | None]]:
    """(code, reason it is not run or None) of each block of `lang`, in order."""
    return [(m["code"], m["why"]) for m in FENCE.finditer(README.read_text()) if m["lang"] == lang]


def shell_commands() -> list[list[str]]:
    """Each shell line as argv, continuation lines joined and comments dropped."""
    out = []
    for code, _ in blocks("sh"):
        for line in code.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                out.append(argv)
    return out


def tatum_part(argv: list[str]) -> list[str] | None:
    """The arguments given to tatum in a shell line (also under torchrun), or None."""
    if argv[0] == "tatum":
        return argv[1:]
    if "$(which" in argv:                      # torchrun … $(which tatum) train …
        return argv[argv.index("$(which") + 2:]
    return None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("readme")
    (d / "song.mid").write_bytes(daw_song(90, 120))    # 45 s
    on = np.arange(0, 16_000, 500)
    Notes(on, np.full(len(on), 400), 67 + (np.arange(len(on)) * 5) % 12, np.full(len(on), 90)).to_midi(d / "melody.mid")
    (d / "my_corruptions.py").write_text(   # the plugin the README's shell example names
        "from tatum.corruption import register\nfrom tatum.tokenizer import encode_segment\n\n"
        "@register('drop_bass', like='fragmentation')\ndef drop_bass(seg, rng):\n"
        "    return encode_segment(seg.select(seg.pitch >= 48))\n")
    model = tiny_checkpoint(d / "tiny-model")
    env = os.environ | {"TATUM_MODEL": str(model), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                        "COLUMNS": "80", "PYTHONPATH": str(ROOT)}
    return {"dir": d, "env": env}


def test_the_readme_has_examples_of_each_kind():
    assert len(blocks("python")) >= 5 and len([a for a in map(tatum_part, shell_commands()) if a]) >= 20


def test_python_examples_run(workdir):
    runnable, skipped = [], []
    for code, why in blocks("python"):
        (skipped if why else runnable).append(code)
    script = "\n".join(runnable)
    for code in skipped:      # compiled, and their imports made
        tree = ast.parse(code)
        script += "\n" + "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))
    (workdir["dir"] / "readme_examples.py").write_text(script)
    r = subprocess.run([sys.executable, "readme_examples.py"], cwd=workdir["dir"], env=workdir["env"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]


def parse_only(args: list[str]) -> None:
    """The real option parser on `args` (no command runs), then the options' own checks."""
    from typer.main import get_command

    from tatum.cli import app

    cmd = get_command(app)
    ctx = cmd.make_context("tatum", list(args))
    while hasattr(cmd, "resolve_command"):
        rest = list(getattr(ctx, "_protected_args", []) or getattr(ctx, "protected_args", [])) + ctx.args
        if not rest:
            break
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        ctx = cmd.make_context(name, rest, parent=ctx)
    for name, value in ctx.params.items():
        if name in SPECS:
            SPECS[name].checked(value, SPECS[name].flag)


def test_shell_examples_parse_and_the_quick_ones_run(workdir):
    ran = 0
    for argv in shell_commands():
        args = tatum_part(argv)
        if args is None:
            scripts = [a for a in argv if a.endswith(".py")]
            assert all((ROOT / s).is_file() for s in scripts), argv       # benchmarks and scripts exist
            continue
        parse_only(args)
        if args and args[0] in RUN:
            args = [x for a in args for x in (sorted(glob.glob(str(workdir["dir"] / a))) if "*" in a else [a])]
            extra = ["--force"] if args[0] not in ("classify",) else []
            r = subprocess.run([sys.executable, "-m", "tatum.cli", *args, *extra], cwd=workdir["dir"],
                               env=workdir["env"], capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, f"tatum {' '.join(args)}\n{r.stderr[-2000:]}"
            ran += 1
    assert ran >= 8

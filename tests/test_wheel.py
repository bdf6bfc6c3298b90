"""Issue 17 item 1: the wheel carries its default models. Build it with `python -m build` from a copy of
the checkout, install it into a fresh virtual environment outside the checkout, and improvise on a
small MIDI file there, offline.

The fresh environment sees this one's packages through a .pth file, so torch (==2.13.0, the CPU wheel)
and the rest are not downloaded again; pip installs the wheel with --no-index, so its declared
requirements must all be met by what is already here. About a minute; `pytest -m wheel` runs it alone,
`-m "not wheel"` leaves it out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tatum import __version__
from tatum.notes import Notes

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.wheel


def run(*args, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{args}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def source_files() -> list[str]:
    """What a fresh clone holds: the tracked files and new ones not ignored."""
    r = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("needs a git checkout to know which files are the source")
    return [f for f in r.stdout.splitlines() if (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="python -m build (the test extra)")
    src = tmp_path_factory.mktemp("wheel-src") / "tatum"
    for f in source_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    dist = tmp_path_factory.mktemp("dist")
    # --no-isolation: build with this environment's setuptools instead of downloading one
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, src, cwd=src)
    wheels = list(dist.glob("tatum-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_the_wheel_carries_the_models_and_their_cards(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in ("tatum-small", "tatum-note", "tatum-note-tatum", "tatum-classifier"):
        for f in ("config.json", "model.safetensors", "README.md"):
            assert f"tatum/models/{model}/{f}" in names
    assert "tatum/vocab.json" in names and "tatum/web/index.html" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "models/"))]


def test_an_installed_wheel_improvises_offline_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    here = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    Path(site, "_tatum_test_deps.pth").write_text("\n".join(sorted(here)) + "\n")
    offline = os.environ | {"PIP_NO_INDEX": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                            "MKL_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1"}
    offline.pop("PYTHONPATH", None)
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--quiet", wheel, env=offline)

    work = tmp_path / "elsewhere"
    work.mkdir()
    found = run(python, "-c", "import tatum, tatum.model.checkpoint as c; print(tatum.__file__); print(c.resolve(None))",
                cwd=work, env=offline).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in found), found        # the wheel's tatum and its model
    tatum = venv / "bin" / "tatum"
    assert run(tatum, "--version", cwd=work, env=offline).stdout.strip() == f"tatum {__version__}"

    on = list(range(0, 15_000, 250))
    Notes(on, [220] * len(on), [60 + (i * 5) % 17 for i in range(len(on))], [80] * len(on)).to_midi(work / "small.mid")
    r = run(tatum, "improvise", "small.mid", "-o", "jazz.mid", "--seed", "1", "--plan", "skyline:1",
            "--keep-first", "0", cwd=work, env=offline)
    assert "jazz.mid" in r.stderr
    out = Notes.from_midi(work / "jazz.mid")
    assert len(out) > 10 and 10 < out.duration_s < 20

"""Training (DESIGN §4): schedule, data order, run folders, exact resume after kill -9, DDP, fine-tuning.

Everything runs the `tiny` preset on a small shard folder of synthetic pieces, one thread per process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tatum.data.examples import IGNORE, ExampleConfig, ExampleDataset
from tatum.data.prepare import prepare
from tatum.data.shards import ShardSet
from tatum.data.sources import detect
from tatum.model.checkpoint import load_model, save_checkpoint
from tatum.model.config import preset
from tatum.model.transformer import Seq2Seq
from tatum.tokenizer import CORRUPTIONS
from tatum.train import TrainConfig, _StepData, batch_indices, lr_at, train

from test_data import write_piece

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TATUM_TRAIN, TATUM_VAL = 3, 2   # Art Tatum pieces per split in the fixture


# ------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """15 synthetic pieces of 30–60 s: 10 classical/pop (8 train, 2 val), 5 by Art Tatum (3 train, 2 val)."""
    base = tmp_path_factory.mktemp("train-data")
    midi = base / "midi"
    rows = ["path,genre,artist,split"]
    for i in range(10):
        write_piece(midi / f"other{i}.mid", 30 + 3 * i, seed=i)
        rows.append(f"other{i}.mid,{'classical' if i % 2 else 'pop'},,{'val' if i in (3, 7) else 'train'}")
    for i in range(TATUM_TRAIN + TATUM_VAL):
        write_piece(midi / f"tatum{i}.mid", 35 + 6 * i, seed=100 + i, notes_per_s=9)
        rows.append(f"tatum{i}.mid,jazz,Art Tatum,{'train' if i < TATUM_TRAIN else 'val'}")
    (midi / "metadata.csv").write_text("\n".join(rows) + "\n")
    report = prepare(detect(str(midi)), base / "shards", workers=1)
    assert report.added == 15 and not report.failed
    return base / "shards"


@pytest.fixture(scope="module")
def base_ckpt(shards, tmp_path_factory) -> Path:
    """A tiny untrained checkpoint with the shard folder's vocabulary, to fine-tune from."""
    torch.manual_seed(3)
    tok = ShardSet(shards).tokenizer
    return save_checkpoint(Seq2Seq(preset("tiny", tok.vocab_size)), tok, tmp_path_factory.mktemp("base") / "tiny")


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tatum.cli", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tatum: error: "), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    return lines[0]


def read_log(out: Path) -> tuple[dict[int, dict], list[dict]]:
    """Train lines by step (the last one wins, as after a resume) and the val lines."""
    train_lines, val_lines = {}, []
    for line in (out / "log.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "val" in r:
            val_lines.append(r)
        else:
            train_lines[r["step"]] = r
    return train_lines, val_lines


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def tiny_config(shards: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(**(dict(shards=str(shards), out=str(out), preset="tiny", batch_size=4, threads=1,
                               val_per_corruption=2, val_every=100, save_every=100) | kw))


# ------------------------------------------------------------ schedule and data
def test_lr_warms_up_linearly_then_follows_a_cosine():
    cfg = TrainConfig(shards="", out="", lr=1e-3, min_lr=1e-4, warmup=10, max_steps=110)
    warm = [lr_at(s, cfg) for s in range(10)]
    assert np.allclose(warm, [1e-3 * (s + 1) / 10 for s in range(10)])
    assert np.allclose(np.diff(warm), 1e-4)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx((1e-3 + 1e-4) / 2)           # half way down the cosine
    assert lr_at(35, cfg) == pytest.approx(1e-4 + 0.45e-3 * (1 + np.cos(np.pi / 4)))
    assert lr_at(110, cfg) == pytest.approx(1e-4) and lr_at(500, cfg) == pytest.approx(1e-4)
    after = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(after, after[1:])) and min(after) >= 1e-4 - 1e-12


def test_batch_indices_cover_each_epoch_once_and_reshuffle():
    n, gb, seed = 50, 8, 7
    per_epoch = n // gb
    epoch0 = [batch_indices(s, n, gb, seed) for s in range(per_epoch)]
    assert all(e == 0 and len(idx) == gb for e, idx in epoch0)
    seen = np.concatenate([idx for _, idx in epoch0])
    assert len(set(seen.tolist())) == len(seen) == per_epoch * gb and seen.max() < n
    again = [batch_indices(s, n, gb, seed)[1] for s in range(per_epoch)]
    assert all(np.array_equal(a, b) for (_, a), b in zip(epoch0, again))           # deterministic
    e1, first1 = batch_indices(per_epoch, n, gb, seed)
    assert e1 == 1 and not np.array_equal(first1, epoch0[0][1])                    # a new order
    epoch1 = np.concatenate([batch_indices(per_epoch + s, n, gb, seed)[1] for s in range(per_epoch)])
    assert len(set(epoch1.tolist())) == len(epoch1) and not np.array_equal(epoch1, seen)
    assert not np.array_equal(batch_indices(0, n, gb, seed + 1)[1], epoch0[0][1])  # the seed matters
    e, small = batch_indices(3, 5, 8, seed)                                        # fewer examples than a batch
    assert e == 3 and len(small) == 8 and set(small.tolist()) == set(range(5))


# ------------------------------------------------------------------- one run
@pytest.fixture(scope="module")
def api_run(shards, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("api") / "run"
    cfg = TrainConfig(shards=str(shards), out=str(out), preset="tiny", max_steps=6, val_every=3, save_every=2,
                      batch_size=4, threads=1, log_every=2, val_per_corruption=8)
    return out, train(cfg, progress=False)


def test_run_folder_through_the_python_api(api_run):
    out, last = api_run
    assert last["step"] == 6 and np.isfinite(last["loss"])
    latest = json.loads((out / "state" / "latest.json").read_text())
    assert latest["step"] == 6 and latest["tokens_seen"] == last["tokens_seen"]
    assert sorted(p.name for p in (out / "state").glob("step-*")) == [
        "step-0000006.model.safetensors", "step-0000006.optim.safetensors"]  # older states are dropped
    model, tok = load_model(out / "checkpoint")
    assert model.cfg.d_model == 64 and tok.vocab_size == model.cfg.vocab_size
    assert same_weights(weights(out / "checkpoint"), load_file(str(out / "state" / "step-0000006.model.safetensors")))
    load_model(out / "best")
    training = json.loads((out / "checkpoint" / "config.json").read_text())["training"]
    assert training["steps"] == 6 and training["data"]["pieces"] == 8 + TATUM_TRAIN and training["batch"] == 4

    train_lines, val_lines = read_log(out)
    assert sorted(train_lines) == [2, 4, 6]
    cfg = TrainConfig(shards="", out="", max_steps=6)
    for step, r in train_lines.items():
        assert r["lr"] == pytest.approx(lr_at(step - 1, cfg)) and np.isfinite(r["loss"]) and r["tokens_seen"] > 0
    assert train_lines[6]["tokens_seen"] == last["tokens_seen"]
    assert [r["step"] for r in val_lines] == [3, 6]
    for r in val_lines:
        tasks = set(CORRUPTIONS) | {"continuation", "no_context", "all"}   # nats per note, per task
        assert set(r["val"]) == tasks and len(CORRUPTIONS) == 9
        assert set(r["unigram"]) == tasks
        assert all(np.isfinite(v) and v > 0 for v in list(r["val"].values()) + list(r["unigram"].values()))
    assert training["val_loss"] == val_lines[-1]["val"]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left


# ------------------------------------------------------------ resume after kill -9
RUN_SCRIPT = """
import sys, torch
from tatum.train import TrainConfig, train
torch.manual_seed(0)  # train() builds the model before seeding torch (see test_same_seed_gives_the_same_run)
train(TrainConfig(shards=sys.argv[1], out=sys.argv[2], preset="tiny", max_steps=12, save_every=1, val_every=100,
                  batch_size=4, threads=1, log_every=1, val_per_corruption=2, dropout=0.0), progress=False)
"""


def test_resume_after_kill_9_continues_exactly(shards, tmp_path):
    # The reference: the same run, uninterrupted (in this process, which runs one thread too).
    torch.manual_seed(0)
    ref_out = tmp_path / "A"
    train(tiny_config(shards, ref_out, max_steps=12, save_every=1, log_every=1, dropout=0.0), progress=False)

    out = tmp_path / "B"
    cmd = [sys.executable, "-c", RUN_SCRIPT, str(shards), str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest, step, deadline = out / "state" / "latest.json", 0, time.time() + 150
    try:
        while step < 5:
            assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()[-2000:]}"
            assert time.time() < deadline, "run too slow to reach step 5"
            try:
                step = json.loads(latest.read_text())["step"]
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    resumed_from = json.loads(latest.read_text())["step"]
    assert 5 <= resumed_from < 12

    r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(latest.read_text())["step"] == 12

    ref_lines, _ = read_log(ref_out)
    lines, _ = read_log(out)
    assert sorted(lines) == sorted(ref_lines) == list(range(1, 13))
    for step in range(1, 13):  # before the kill (same seed) and after the resume alike
        assert lines[step]["loss"] == pytest.approx(ref_lines[step]["loss"], abs=1e-5, rel=0), step
        assert lines[step]["lr"] == ref_lines[step]["lr"]
    assert lines[12]["tokens_seen"] == ref_lines[12]["tokens_seen"]
    # The resumed run rewrote the lines logged after its saved state: each step appears once.
    steps = [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines() if "val" not in x]
    assert steps == sorted(set(steps))
    assert same_weights(weights(out / "checkpoint"), weights(ref_out / "checkpoint"))
    # The optimizer state too (the saved RNG state differs: see test_resume_with_dropout_continues_exactly).
    optim = [{k: v for k, v in load_file(str(o / "state" / "step-0000012.optim.safetensors")).items()
              if not k.startswith("rng.")} for o in (out, ref_out)]
    assert same_weights(*optim) and len(optim[0]) > 0
    assert (json.loads(latest.read_text())["optim"]
            == json.loads((ref_out / "state" / "latest.json").read_text())["optim"])


def test_resume_with_dropout_continues_exactly(shards, tmp_path):
    torch.manual_seed(0)
    train(tiny_config(shards, tmp_path / "A", max_steps=8, save_every=1), progress=False)
    torch.manual_seed(0)
    train(tiny_config(shards, tmp_path / "B", max_steps=4, save_every=1), progress=False)
    # A run stopped after step 4 and continued (the lr is still warming up, so max_steps does not matter).
    train(tiny_config(shards, tmp_path / "B", max_steps=8, save_every=1), progress=False)
    assert same_weights(weights(tmp_path / "B" / "checkpoint"), weights(tmp_path / "A" / "checkpoint"))


def test_same_seed_gives_the_same_run(shards, tmp_path):
    for name, outside in (("X", 1), ("Y", 2)):
        torch.manual_seed(outside)  # stands for a fresh process's unseeded RNG
        train(tiny_config(shards, tmp_path / name, max_steps=1, dropout=0.0), progress=False)
    assert same_weights(weights(tmp_path / "X" / "checkpoint"), weights(tmp_path / "Y" / "checkpoint"))


# ------------------------------------------------------------------------ the CLI
def test_cli_refuses_an_existing_run_without_resume_and_resumes_with_it(shards, api_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(api_run[0], out)
    before = (out / "log.jsonl").read_text()
    line = one_line_error(cli("train", shards, "-o", out, "--preset", "tiny", "--steps", 7, "--threads", 1))
    assert "--resume" in line and str(out) in line
    assert (out / "log.jsonl").read_text() == before  # nothing touched

    r = cli("train", shards, "-o", out, "--preset", "tiny", "--steps", 7, "--batch-size", 4, "--threads", 1,
            "--val-every", 100, "--save-every", 100, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "state" / "latest.json").read_text())["step"] == 7
    train_lines, val_lines = read_log(out)
    assert max(train_lines) == 7 and val_lines[-1]["step"] == 7
    assert train_lines[7]["tokens_seen"] > train_lines[6]["tokens_seen"]
    assert json.loads((out / "checkpoint" / "config.json").read_text())["training"]["steps"] == 7


def test_corrupt_shard_stops_training_with_the_file_named(shards, tmp_path):
    bad = tmp_path / "shards"
    shutil.copytree(shards, bad)
    shard = sorted(bad.glob("shard-*.tokens.npy"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    line = one_line_error(cli("train", bad, "-o", tmp_path / "run", "--preset", "tiny", "--steps", 2,
                              "--threads", 1))
    assert str(shard) in line and "corrupt" in line
    assert not (tmp_path / "run" / "state").exists()


def test_finetune_trains_on_the_artist_only(shards, base_ckpt, tmp_path):
    out = tmp_path / "tatum"
    r = cli("finetune", shards, "--base", base_ckpt, "--artist", "Art Tatum", "--steps", 3, "--batch-size", 4,
            "--threads", 1, "-o", out)
    assert r.returncode == 0, r.stderr[-2000:]
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    training = config["training"]
    n_tatum = sum(1 for p in ShardSet(shards).split("train") if p.artist == "Art Tatum")
    assert n_tatum == TATUM_TRAIN
    assert training["data"]["pieces"] == n_tatum and training["data"]["genres"] == ["jazz"]
    assert training["artist"] == "Art Tatum" and training["steps"] == 3
    assert training["init"] == str(base_ckpt) and training["lr"] == 1e-4
    assert set(training["val_loss"]) == set(CORRUPTIONS) | {"continuation", "no_context", "all"}  # Tatum's val pieces
    model, _ = load_model(out / "checkpoint")
    assert not same_weights(weights(out / "checkpoint"), weights(base_ckpt))
    assert model.cfg == load_model(base_ckpt)[0].cfg


def test_finetune_on_an_unknown_artist_is_refused(shards, base_ckpt, tmp_path):
    line = one_line_error(cli("finetune", shards, "--base", base_ckpt, "--artist", "Nobody At All", "--steps", 3,
                              "--threads", 1, "-o", tmp_path / "x"))
    assert "no training pieces" in line and "--artist" in line
    assert not (tmp_path / "x" / "state").exists()


# ------------------------------------------------------------------------ DDP
def torchrun_train(shards: Path, out: Path, *args) -> None:
    """`tatum train` in two processes (DDP), which must end within 180 s."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "tatum.cli", "train", str(shards), "-o", str(out), "--preset", "tiny", "--batch-size", "2",
           "--threads", "1", *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its two workers, which this test started
        proc.communicate()
        pytest.fail("torchrun training did not finish in 180 s")
    assert proc.returncode == 0, output[-3000:]


@pytest.fixture(scope="module")
def ddp_run(shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "run"
    torchrun_train(shards, out, "--steps", 3)
    return out


def test_ddp_for_minutes_stops_every_rank_at_the_same_step(shards, tmp_path):
    # Each rank's own clock would stop it a step apart from the other, which then waits forever.
    torchrun_train(shards, tmp_path / "run", "--minutes", 0.03, "--warmup", 2, "--val-every", 10_000)
    train_lines, val_lines = read_log(tmp_path / "run")
    assert val_lines[-1]["step"] == max(train_lines) and val_lines[-1]["elapsed"] >= 1.8


def _tokens_per_rank(shards: Path, steps: int, batch_size: int, world: int) -> list[int]:
    """Target tokens each DDP rank trains on, recomputed from the (pure) batch schedule."""
    shard_set = ShardSet(shards)
    ds = ExampleDataset(shard_set, "train", ExampleConfig(max_enc_len=256, max_dec_len=128, context=(1, 5)),
                        shard_set.tokenizer, seed=0, pieces=shard_set.split("train"))
    cfg = TrainConfig(shards="", out="", max_steps=steps, batch_size=batch_size)
    return [sum(int((c["labels"] != IGNORE).sum()) for s in range(steps) for c in _StepData(ds, cfg, r, world, 0)[s])
            for r in range(world)]


def test_ddp_with_two_processes(ddp_run, shards):
    out = ddp_run
    model, _ = load_model(out / "checkpoint")
    training = json.loads((out / "checkpoint" / "config.json").read_text())["training"]
    assert training["steps"] == 3 and training["batch"] == 4 and training["hardware"].startswith("2 process")
    assert json.loads((out / "state" / "latest.json").read_text())["step"] == 3
    train_lines, val_lines = read_log(out)
    assert list(train_lines) == [3] and [r["step"] for r in val_lines] == [3]  # rank 0 alone writes the log
    rank0, rank1 = _tokens_per_rank(shards, 3, 2, 2)
    # Both processes' tokens are counted, not rank 0's alone.
    assert train_lines[3]["tokens_seen"] > rank0 + rank1 // 2
    assert training["tokens_seen"] == train_lines[3]["tokens_seen"]


def test_ddp_tokens_seen_is_the_exact_sum_over_processes(ddp_run, shards):
    train_lines, _ = read_log(ddp_run)
    assert train_lines[3]["tokens_seen"] == sum(_tokens_per_rank(shards, 3, 2, 2))


def test_warm_start_into_anchored_aligned_keeps_every_other_weight(tmp_path):
    from tatum.tokenizer import Tokenizer
    from tatum.train import warm_start

    tok = Tokenizer.default()
    torch.manual_seed(0)
    old = Seq2Seq(preset("tiny", tok.vocab_size, enc_positions="absolute", cross_bias="none"))
    path = save_checkpoint(old, tok, tmp_path / "old")
    new, _ = warm_start(str(path), {"enc_positions": "anchored", "cross_bias": "aligned"})
    assert (new.cfg.enc_positions, new.cfg.cross_bias) == ("anchored", "aligned")
    a, b = old.state_dict(), new.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k != "enc_pos.weight")
    assert b["enc_pos.weight"].shape[0] == 2 * a["enc_pos.weight"].shape[0]
    assert torch.equal(b["enc_pos.weight"][:4], a["enc_pos.weight"][:4])
    with pytest.raises(Exception, match="does not fit"):
        warm_start(str(path), {"d_model": 128})


def test_train_cli_runs_for_minutes_and_refuses_a_negative_time(shards, tmp_path):
    line = one_line_error(cli("train", shards, "-o", tmp_path / "neg", "--minutes", -1))
    assert line.startswith("tatum: error: --minutes -1") and not (tmp_path / "neg").exists()
    r = cli("train", shards, "-o", tmp_path / "run", "--preset", "tiny", "--minutes", 0.02, "--batch-size", 2,
            "--threads", 1, "--val-every", 10_000, "--warmup", 2)
    assert r.returncode == 0, r.stderr[-2000:]
    train_lines, val_lines = read_log(tmp_path / "run")
    assert 0 < max(train_lines) < 20000 and val_lines[-1]["elapsed"] >= 1.2


def test_train_cli_refuses_an_unknown_model_setting(tmp_path):
    line = one_line_error(cli("train", tmp_path, "-o", tmp_path / "run", "--set", "depth=3"))
    assert line.startswith("tatum: error: --set 'depth=3'") and "cross_bias" in line


def test_lora_finetune_trains_only_adapters_and_exports_a_plain_checkpoint(shards, api_run, tmp_path):
    from tatum.model.lora import LoRALinear, add_lora, merge_lora

    base_dir = api_run[0] / "checkpoint"
    base, tok = load_model(base_dir)
    out = tmp_path / "lora"
    cfg = TrainConfig(shards=str(shards), out=str(out), init=str(base_dir), artist="Art Tatum", max_steps=4,
                      val_every=4, save_every=2, batch_size=4, threads=1, log_every=1, val_per_corruption=4,
                      lr=1e-2, warmup=1, lora_rank=4)
    train(cfg, progress=False)
    tuned, _ = load_model(out / "checkpoint")
    assert not any(isinstance(m, LoRALinear) for m in tuned.modules()), "adapters merged on export"
    a, b = base.state_dict(), tuned.state_dict()
    assert a.keys() == b.keys()
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all(k.endswith(".weight") and k.split(".")[-2] in ("qkv", "q", "kv", "proj", "fc")
                           for k in changed), sorted(changed)[:5]
    assert json.loads((out / "checkpoint" / "config.json").read_text())["training"]["lora_rank"] == 4
    # merging is exact: the adapted model and its merged copy give the same logits
    m = add_lora(load_model(base_dir)[0].eval(), 2)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, LoRALinear):
                mod.B.normal_(0, 0.05)
        enc = torch.randint(10, tok.vocab_size, (2, 30))
        enc[:, 6] = 3
        dec = torch.randint(10, tok.vocab_size, (2, 9))
        torch.testing.assert_close(merge_lora(m)(enc, dec), m(enc, dec), atol=1e-4, rtol=0)
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) < 0.2 * base.n_params()

"""Training: one process, or `torchrun --nproc_per_node N` (DDP) with no change; resumable after a kill.

The full training state lives in `OUT/state/` (weights, optimizer, RNG, step, as safetensors + JSON);
`OUT/checkpoint/` is the latest model as a checkpoint folder, `OUT/best/` the one with the lowest
validation loss, `OUT/log.jsonl` the log and `OUT/loss.png` the curves. Batches are a pure function of
(seed, step), so a resumed run continues exactly where the killed one was.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from tatum import tokenizer as tk
from tatum.data.examples import IGNORE, ExampleConfig, ExampleDataset, collate
from tatum.data.shards import ShardSet
from tatum.errors import TatumError
from tatum.io import atomic_output, write_atomic
from tatum.model.checkpoint import load_model, save_checkpoint
from tatum.model.config import build_model, preset
from tatum.model.lora import add_lora, merge_lora
from tatum.model.notelm import NoteLM
from tatum.model.transformer import Seq2Seq
from tatum.tokenizer import Tokenizer
from tatum.validation import nats_per_note, validation_set

VAL_UNIT = "note"      # validation is nats per target note, comparable across layouts


@dataclass
class TrainConfig:
    shards: str
    out: str
    preset: str = "small"
    init: str | None = None            # start from this checkpoint (fine-tuning)
    artist: str | None = None          # train only on this pianist's pieces
    genre: str | None = None
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-4
    min_lr: float = 5e-5
    warmup: int = 300
    max_steps: int = 20000
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    val_every: int = 250
    save_every: int = 100
    val_per_corruption: int = 32
    threads: int = 0
    workers: int = 0
    dropout: float | None = None
    context: tuple[int, int] = (1, 5)
    p_no_right: float = 0.25           # NoteLM: share of examples without right context (continuation)
    budget_cpu_s: float = 0.0          # > 0: the schedule runs over this much process CPU time and stops
                                       # there (equal-CPU comparisons of designs; not exactly resumable)
    budget_wall_s: float = 0.0         # > 0: likewise over this much wall time spent in steps (a rented GPU
                                       # for a fixed time; not exactly resumable)
    log_every: int = 10
    chunks: int = 4                    # length-sorted pieces of each micro-batch (less padding)
    extra: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)   # overrides of the preset, e.g. {"enc_positions": "anchored"}
    lora_rank: int = 0                 # > 0: freeze the model and train low-rank adapters (fine-tuning)


# ------------------------------------------------------------------- distributed
def dist_info() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def setup_device(local_rank: int, world: int) -> torch.device:
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


# --------------------------------------------------------------------- warm start
def warm_start(init: str, overrides: dict) -> tuple[Seq2Seq | NoteLM, Tokenizer]:
    """A model of `init`'s shape changed by `overrides`, carrying over every weight that still fits.

    Switching a Seq2Seq's `enc_positions` from absolute to anchored rebuilds the position table: the
    style rows stay, and anchored row max_enc_len + r takes the absolute row where a target typically
    opens (position 200) + r. Any other weight that no longer fits is refused.
    """
    old, tok = load_model(init)
    unknown = set(overrides) - set(old.cfg.to_dict())
    if unknown:
        raise TatumError(f"{init} is a {type(old).__name__}, which has no setting {', '.join(sorted(unknown))}")
    cfg = type(old.cfg).from_dict(old.cfg.to_dict() | dict(overrides))
    model = build_model(cfg)
    state = old.state_dict()
    before, after = getattr(old.cfg, "enc_positions", None), getattr(cfg, "enc_positions", None)
    if before != after:
        if (before, after) != ("absolute", "anchored"):
            raise TatumError(f"cannot convert enc_positions {before} → {after}")
        table = state["enc_pos.weight"]
        rows = torch.arange(model.enc_pos.num_embeddings) - cfg.max_enc_len + 200
        state["enc_pos.weight"] = table[rows.clamp(cfg.n_style, table.shape[0] - 1)]
        state["enc_pos.weight"][: cfg.n_style] = table[: cfg.n_style]
    target = model.state_dict()
    for name, t in state.items():
        if name not in target or target[name].shape != t.shape:
            raise TatumError(f"weight {name} of {init} does not fit the changed model ({dict(overrides)})")
    missing = set(target) - set(state)
    if missing:
        raise TatumError(f"the changed model has weights {init} lacks: {', '.join(sorted(missing)[:3])}")
    model.load_state_dict(state)
    return model, tok


# --------------------------------------------------------------------- schedule
def budget_used(cfg: TrainConfig, cpu_s: float, wall_s: float) -> float | None:
    """The share of a time budget spent (may pass 1), or None when the run is counted in steps."""
    shares = [used / budget for used, budget in ((cpu_s, cfg.budget_cpu_s), (wall_s, cfg.budget_wall_s)) if budget]
    return max(shares) if shares else None


def lr_at(step: int, cfg: TrainConfig, cpu_s: float = 0.0, wall_s: float = 0.0) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    used = budget_used(cfg, cpu_s, wall_s)
    if used is not None:
        t = min(1.0, used)
    else:
        t = min(1.0, (step - cfg.warmup) / max(1, cfg.max_steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


def batch_indices(step: int, n: int, global_batch: int, seed: int) -> tuple[int, np.ndarray]:
    """The epoch and example indices of one optimizer step; an epoch is one shuffled pass."""
    per_epoch = max(1, n // global_batch)
    epoch, k = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    if n < global_batch:
        perm = np.resize(perm, global_batch)
    return epoch, perm[k * global_batch:(k + 1) * global_batch]


class _StepData(torch.utils.data.Dataset):
    """Micro-batches addressed by (step, micro, rank), so DataLoader workers stay deterministic."""

    def __init__(self, ds: ExampleDataset, cfg: TrainConfig, rank: int, world: int, start: int):
        self.ds, self.cfg, self.rank, self.world, self.start = ds, cfg, rank, world, start

    def __len__(self):
        return (self.cfg.max_steps - self.start) * self.cfg.grad_accum

    def __getitem__(self, j):
        step, micro = divmod(j, self.cfg.grad_accum)
        step += self.start
        B = self.cfg.batch_size
        epoch, idx = batch_indices(step, len(self.ds), B * self.cfg.grad_accum * self.world, self.cfg.seed)
        part = idx[(micro * self.world + self.rank) * B:(micro * self.world + self.rank + 1) * B]
        self.ds.set_epoch(epoch)
        examples = sorted((self.ds[int(i)] for i in part),
                          key=lambda e: (len(e["events"]),) if "events" in e else (len(e["dec_in"]), len(e["enc"])))
        # Length-sorted chunks waste far less compute on padding than one batch padded to its longest.
        k = max(1, min(self.cfg.chunks, len(examples)))
        bounds = np.linspace(0, len(examples), k + 1).astype(int)
        return [collate(examples[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


# ------------------------------------------------------------------ validation
def unigram_baseline(train: ExampleDataset, val: dict[str, list], n: int = 2000) -> dict:
    """Nats per target note of predicting every target token from the training set's token
    frequencies alone (the floor a model must beat, whatever its layout)."""
    vocab = train.tok.vocab_size
    counts = np.ones(vocab)
    for i in np.linspace(0, len(train) - 1, min(n, len(train))).astype(int):
        np.add.at(counts, target_tokens(train.example(int(i))), 1)
    logp = np.log(counts / counts.sum())
    out, tot, n_tot = {}, 0.0, 0
    for c, examples in val.items():
        ids = np.concatenate([target_tokens(e) for e in examples])
        notes = int((ids >= tk.PV0).sum())
        out[c] = float(-logp[ids].sum() / max(notes, 1))
        if c not in ("continuation", "no_context"):
            tot, n_tot = tot - logp[ids].sum(), n_tot + notes
    out["all"] = float(tot / max(n_tot, 1))
    return out


def target_tokens(ex: dict) -> np.ndarray:
    """The tokens a model predicts for an example's target window, its end included."""
    if "events" in ex:
        ev = ex["events"][ex["target"]].reshape(-1)
        return ev[ev != tk.PAD]
    return ex["labels"][ex["labels"] != IGNORE]


# ------------------------------------------------------------------ state I/O
def _flatten_optim(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optim(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        _, pid, k = key.split(".", 2)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_state(root: Path, step: int, model: Seq2Seq, opt, info: dict) -> None:
    """Write the training state for `step`, then point `latest.json` at it, then drop older states."""
    root.mkdir(parents=True, exist_ok=True)
    tag = f"step-{step:07d}"
    tensors, meta = _flatten_optim(opt)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    for name, data in ((f"{tag}.model.safetensors", {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}),
                       (f"{tag}.optim.safetensors", tensors)):
        with atomic_output(root / name) as tmp:
            save_file(data, str(tmp))
    write_atomic(root / "latest.json", json.dumps(info | {"step": step, "tag": tag, "optim": meta}))
    for p in root.glob("step-*.safetensors"):
        if not p.name.startswith(tag):
            p.unlink(missing_ok=True)


def load_state(root: Path, model: Seq2Seq, opt) -> dict | None:
    latest = root / "latest.json"
    if not latest.exists():
        return None
    info = json.loads(latest.read_text())
    tag = info["tag"]
    try:
        weights = load_file(str(root / f"{tag}.model.safetensors"))
        tensors = load_file(str(root / f"{tag}.optim.safetensors"))
    except Exception as e:
        raise TatumError(f"training state is unreadable ({str(e)[:80]})", root) from None
    model.load_state_dict(weights)
    torch.set_rng_state(tensors.pop("rng.torch"))
    cuda_rng = tensors.pop("rng.cuda", None)
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_rng)
    opt.load_state_dict(_unflatten_optim(tensors, info["optim"]))
    return info


# ----------------------------------------------------------------------- plot
def plot_curves(log_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = [], []
    for line in log_path.read_text().splitlines():
        r = json.loads(line)
        (val if "val" in r else train).append(r)
    fig, ax = plt.subplots(figsize=(9, 5))
    if train:
        x = [r["tokens_seen"] / 1e6 for r in train]
        y = np.array([r["loss"] for r in train])
        k = max(1, len(y) // 50)
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x[k - 1:], smooth, label="train", color="black", lw=1.5)
    for c in (val[-1]["val"] if val else {}):
        ax.plot([r["tokens_seen"] / 1e6 for r in val], [r["val"][c] for r in val],
                label=f"val {c}", lw=2.5 if c == "all" else 0.8)
    if val and "unigram" in val[-1]:
        ax.axhline(val[-1]["unigram"]["all"], ls="--", color="grey", label="unigram baseline")
    ax.set_xlabel("predicted tokens or events seen (millions)")
    ax.set_ylabel("train: nats per prediction; val: nats per target note")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    with atomic_output(png) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ----------------------------------------------------------------------- model
def build(cfg: TrainConfig, shards: ShardSet):
    """The model to train and its vocabulary: a warm start from `cfg.init`, or a fresh preset."""
    torch.manual_seed(cfg.seed)  # the same initial weights for a given seed (and on every rank)
    if not cfg.init:
        tok = shards.tokenizer
        overrides = dict(cfg.model) | ({} if cfg.dropout is None else {"dropout": cfg.dropout})
        try:
            return build_model(preset(cfg.preset, tok.vocab_size, **overrides)), tok
        except TypeError as e:
            raise TatumError(f"preset {cfg.preset} has no such setting ({e})") from None
    model, tok = warm_start(cfg.init, cfg.model) if cfg.model else load_model(cfg.init)
    model.train()
    if cfg.dropout is not None:
        for m in model.modules():
            if hasattr(m, "dropout") and isinstance(m.dropout, float):
                m.dropout = cfg.dropout
            elif isinstance(m, torch.nn.Dropout):
                m.p = cfg.dropout
    return model, tok


def example_config(cfg: TrainConfig, model) -> ExampleConfig:
    """How examples are laid out for this model: NoteLM's events, or the encoder–decoder pair."""
    m = model.cfg
    if isinstance(model, NoteLM):
        return ExampleConfig(layout="notelm", max_len=m.max_len, context=tuple(cfg.context),
                             p_no_right=cfg.p_no_right)
    return ExampleConfig(max_enc_len=m.max_enc_len, max_dec_len=m.max_dec_len, context=tuple(cfg.context))


def n_labels(b: dict) -> int:
    """Predicted units in a batch: target tokens (encoder–decoder) or events (NoteLM)."""
    return int(b["loss"][:, 1:].sum()) if "events" in b else int((b["labels"] != IGNORE).sum())


def summed_nll(net, b: dict, device, autocast) -> torch.Tensor:
    with autocast():
        if "events" in b:
            return net(b["events"].to(device), b["place"].to(device), b["time"].to(device), b["loss"].to(device),
                       b["aligned"].to(device)).float().sum()
        logits = net(b["enc"].to(device), b["dec_in"].to(device))
    return F.cross_entropy(logits.float().flatten(0, 1), b["labels"].to(device).flatten(),
                           ignore_index=IGNORE, reduction="sum")


# ----------------------------------------------------------------------- main
@dataclass
class Progress:
    """How far a run has come; saved with its state, so a resumed run counts on."""

    step: int = 0
    tokens_seen: int = 0
    elapsed: float = 0.0
    cpu_s: float = 0.0
    best: float = float("inf")
    unigram: dict | None = None    # the baseline's validation scores, measured once per run

    @classmethod
    def resumed(cls, info: dict | None) -> "Progress":
        if not info:
            return cls()
        run = cls(info["step"], info["tokens_seen"], info["elapsed"], info.get("cpu_s", 0.0))
        # A state saved under the per-token measure cannot compare its scores with per-note ones.
        if info.get("val_unit") == VAL_UNIT:
            run.best, run.unigram = info.get("best", float("inf")), info.get("unigram")
        return run


def select_pieces(shards: ShardSet, cfg: TrainConfig) -> tuple[list, list]:
    """The train and val pieces of `cfg.artist` and `cfg.genre` (all when unset)."""
    def keep(p) -> bool:
        return ((cfg.artist is None or (p.artist or "").casefold() == cfg.artist.casefold())
                and (cfg.genre is None or (p.genre or "") == cfg.genre))

    train_pieces = [p for p in shards.split("train") if keep(p)]
    if not train_pieces:
        raise TatumError("no training pieces match (check --artist / --genre)", cfg.shards)
    return train_pieces, [p for p in shards.split("val") if keep(p)]


def make_optimizer(model, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable weights; no weight decay on gains and biases."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW([{"params": [p for p in trainable if p.dim() >= 2], "weight_decay": cfg.weight_decay},
                              {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(0.9, 0.98), fused=device.type == "cuda")


def make_loader(train_ds: ExampleDataset, cfg: TrainConfig, rank: int, world: int, start: int):
    return torch.utils.data.DataLoader(_StepData(train_ds, cfg, rank, world, start), batch_size=None,
                                       shuffle=False, num_workers=cfg.workers,
                                       prefetch_factor=4 if cfg.workers else None,
                                       persistent_workers=bool(cfg.workers),
                                       # its own generator: drawing a seed from the global one
                                       # would shift dropout masks after a resume
                                       generator=torch.Generator().manual_seed(cfg.seed))


def optimizer_step(net, model, opt, data, cfg: TrainConfig, device, autocast, ddp) -> tuple[float, int, float]:
    """One step over `cfg.grad_accum` micro-batches of length-sorted chunks: (mean loss per label,
    labels, gradient norm)."""
    loss_sum, n_tok = 0.0, 0
    for micro in range(cfg.grad_accum):
        chunks = next(data)
        total = sum(n_labels(c) for c in chunks)
        for j, b in enumerate(chunks):
            last_pass = micro == cfg.grad_accum - 1 and j == len(chunks) - 1
            with nullcontext() if (ddp is None or last_pass) else ddp.no_sync():
                loss = summed_nll(net, b, device, autocast) / max(total, 1)
                (loss / cfg.grad_accum).backward()
            loss_sum += loss.item()
        n_tok += total
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss_sum / cfg.grad_accum, n_tok, float(gnorm)


class RunFolder:
    """Rank 0's side of a run: the fixed validation windows and the unigram baseline, the log, the
    exported checkpoints (`checkpoint/`, `best/`) and the saved state."""

    def __init__(self, cfg: TrainConfig, model, tok: Tokenizer, val: dict, baseline: dict, record: dict,
                 run: Progress, resumed: bool):
        self.cfg, self.model, self.tok, self.val, self.baseline, self.record = cfg, model, tok, val, baseline, record
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        write_atomic(self.out / "train_config.json", json.dumps(asdict(cfg) | {"model": model.cfg.to_dict()}, indent=1))
        log = self.out / "log.jsonl"
        if resumed and log.exists():
            # Lines logged after the saved state belong to steps that are about to run again.
            lines = log.read_text().splitlines()
            write_atomic(log, "".join(l + "\n" for l in lines if json.loads(l)["step"] <= run.step))
        self.log = open(log, "a")
        self.t_last, self.tok_last = time.time(), run.tokens_seen   # for the events per second logged

    def write(self, row: dict) -> None:
        self.log.write(json.dumps(row) + "\n")
        self.log.flush()

    def after_step(self, run: Progress, last: dict, opt, done: bool, device, autocast) -> str | None:
        """Log, validate and export, save the state, each when due; the validation line, if any."""
        cfg, step, said = self.cfg, run.step, None
        clock = {"elapsed": round(run.elapsed, 1), "cpu_s": round(run.cpu_s, 1)}
        if step % cfg.log_every == 0 or done:
            now = time.time()
            last["tok_per_s"] = round((run.tokens_seen - self.tok_last) / max(now - self.t_last, 1e-9), 1)
            self.t_last, self.tok_last = now, run.tokens_seen
            self.write(last | clock)
        if step % cfg.val_every == 0 or done:
            scores = nats_per_note(self.model, self.val, device, autocast=autocast) if self.val else {}
            self.write({"step": step, "tokens_seen": run.tokens_seen, "val": scores, "unigram": self.baseline} | clock)
            plot_curves(self.out / "log.jsonl", self.out / "loss.png")
            training = {"steps": step, "tokens_seen": run.tokens_seen, "unit": self.record["unit"],
                        "wall_s": round(run.elapsed), "cpu_s": round(run.cpu_s), "hardware": self.record["hardware"],
                        "val_loss": scores, "val_unit": VAL_UNIT, "unigram_loss": self.baseline,
                        "data": self.record["data"], "init": cfg.init, "artist": cfg.artist, "lr": cfg.lr,
                        "lora_rank": cfg.lora_rank, "batch": self.record["batch"]}
            export = merge_lora(self.model) if cfg.lora_rank else self.model
            save_checkpoint(export, self.tok, self.out / "checkpoint", training=training)
            if scores and scores["all"] < run.best:
                run.best = scores["all"]
                save_checkpoint(export, self.tok, self.out / "best", training=training)
            said = f"step {step}: val " + " ".join(f"{k}={v:.3f}" for k, v in scores.items())
        if step % cfg.save_every == 0 or done:
            save_state(self.out / "state", step, self.model, opt,
                       {"tokens_seen": run.tokens_seen, "elapsed": run.elapsed, "cpu_s": run.cpu_s, "best": run.best,
                        "unigram": self.baseline, "val_unit": VAL_UNIT})
        return said


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    # --- setup: processes, data, model, optimizer, saved state
    rank, world, local_rank = dist_info()
    device = setup_device(local_rank, world)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    shards = ShardSet(cfg.shards, verify=True)
    model, tok = build(cfg, shards)
    ex_cfg = example_config(cfg, model)
    train_pieces, val_pieces = select_pieces(shards, cfg)
    train_ds = ExampleDataset(shards, "train", ex_cfg, tok, seed=cfg.seed, pieces=train_pieces)
    if cfg.lora_rank:
        add_lora(model, cfg.lora_rank)
    torch.manual_seed(cfg.seed + rank)
    model.to(device)
    opt = make_optimizer(model, cfg, device)
    state_dir = Path(cfg.out) / "state"
    info = load_state(state_dir, model, opt) if state_dir.exists() else None
    run = Progress.resumed(info)
    start = run.step
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else None
    net = ddp or model
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else nullcontext

    # --- rank 0: validation set, baseline, run folder, log, progress bar
    folder = bar = None
    if rank == 0:
        val = validation_set(shards, ex_cfg, tok, cfg.val_per_corruption, pieces=val_pieces)
        baseline = run.unigram or unigram_baseline(train_ds, val)
        record = {"unit": "event" if isinstance(model, NoteLM) else "target token",
                  "hardware": _hardware(device, world), "batch": cfg.batch_size * cfg.grad_accum * world,
                  "data": {"pieces": len(train_pieces), "hours": round(sum(p.seconds for p in train_pieces) / 3600, 1),
                           "genres": sorted({p.genre or "none" for p in train_pieces})}}
        folder = RunFolder(cfg, model, tok, val, baseline, record, run, resumed=info is not None)
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.max_steps, initial=start, desc="training", unit="step", dynamic_ncols=True)

    # --- the loop: a step, then (rank 0) log, validate, export, save
    data = iter(make_loader(train_ds, cfg, rank, world, start))
    last = {}
    model.train()
    for step in range(start, cfg.max_steps):
        lr = lr_at(step, cfg, run.cpu_s, run.elapsed)
        for g in opt.param_groups:
            g["lr"] = lr
        t0, c0 = time.time(), time.process_time()
        loss, n_tok, gnorm = optimizer_step(net, model, opt, data, cfg, device, autocast, ddp)
        if world > 1:
            counts = torch.tensor([n_tok, loss], dtype=torch.float64, device=device)
            dist.all_reduce(counts)
            n_tok, loss = int(counts[0]), float(counts[1]) / world
        run.step, run.tokens_seen = step + 1, run.tokens_seen + n_tok
        run.elapsed += time.time() - t0
        run.cpu_s += time.process_time() - c0
        if world > 1 and (cfg.budget_cpu_s or cfg.budget_wall_s):
            # Rank 0's clocks for all: ranks on their own would draw different learning rates (their
            # weights would drift apart) and could stop a step apart (the others then wait forever).
            clocks = torch.tensor([run.elapsed, run.cpu_s], dtype=torch.float64, device=device)
            dist.broadcast(clocks, 0)
            run.elapsed, run.cpu_s = clocks.tolist()
        last = {"step": step + 1, "loss": loss, "lr": lr, "grad_norm": gnorm, "tokens_seen": run.tokens_seen}
        done = step + 1 == cfg.max_steps or (budget_used(cfg, run.cpu_s, run.elapsed) or 0.0) >= 1.0
        if folder is not None:
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}")
            said = folder.after_step(run, last, opt, done, device, autocast)
            if said and bar is not None:
                bar.write(said)
        if done:
            break
    if bar is not None:
        bar.close()
    if folder is not None:
        folder.log.close()
    if world > 1:
        dist.barrier()
    return last


def _hardware(device: torch.device, world: int) -> str:
    if device.type == "cuda":
        return f"{world}× {torch.cuda.get_device_name(device)}"
    return f"{world} process(es) × {torch.get_num_threads()} CPU threads ({os.cpu_count()} cores)"

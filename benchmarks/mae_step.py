"""Training-step benchmark: ChannelMAE vs a plain reference MAE.

One training step = forward + backward + AdamW step on a random 12-band batch, the
same batch for every model. For each encoder size (and compile mode), the ChannelMAE
variants (``--groups``, default ``single``) and the reference MAE
(``benchmarks/reference_mae.py``, same widths, depths, heads, decoder and mask ratio)
run in interleaved rounds in one process: warm-up first, then
``A B A B ...`` rounds of ``--steps`` steps each; images/s is the median over the
rounds. Interleaving spreads slow phases of a shared machine over every model alike.

Reported per model:
- images/s (median of rounds) and ms per step;
- GFLOP per step, counted with ``torch.utils.flop_counter.FlopCounterMode`` on one
  eager forward + backward (matmul, convolution and attention FLOPs; the optimizer's
  elementwise work is not counted), and the achieved GFLOP/s; MFU with
  ``--peak-tflops``;
- peak memory of one step: on CUDA ``torch.cuda.max_memory_allocated`` after a reset
  (every live tensor: weights, gradients, optimizer state, activations); on CPU the
  peak of the torch profiler's memory timeline over one step, i.e. the same quantity
  (bytes of live tensors, by category) as seen by the profiler, not the process RSS.

Then, unless ``--no-tables``: step cost of the ChannelMAE (first size, eager) against
the number of band groups (``--group-table``) and against the image size
(``--img-table``), tokens N = G * L, with the same interleaved median.

``--json`` prints one JSON object on stdout (the human-readable report goes to stderr):
``geomae_img_s``, ``reference_img_s`` and ``ratio`` (geomae / reference) are those of
the main configuration, the first size, first compile mode and first group preset;
``ratios`` holds the ratio of every configuration keyed ``"size/compile/groups"``;
``results`` every measured model; ``tables`` the scaling tables.

Run from the repository root::

    python benchmarks/mae_step.py --sizes tiny,small
    python benchmarks/mae_step.py --device cuda --sizes base --img-size 224 \
        --patch-size 16 --batch-size 256 --amp bf16 --compile both --peak-tflops 989
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_mae import ReferenceMAE  # noqa: E402

from geomae.bands import L2A_BANDS  # noqa: E402
from geomae.models import ChannelMAE, visible_counts  # noqa: E402
from geomae.models.sizes import VIT_SIZES, ViTSize  # noqa: E402
from geomae.optim import make_adamw, param_groups  # noqa: E402

#: Extra size for smoke runs (not a ViT preset): width 32, 2 blocks, 2 heads.
SIZES: dict[str, ViTSize] = {**VIT_SIZES, "micro": ViTSize(32, 2, 2)}
#: Modules that would mean the benchmark pulled in the data stack.
DATA_STACK = ("torchgeo", "rasterio", "lightning", "kornia", "xarray", "zarr", "geopandas")

REPORT = sys.stdout


def say(*parts: object) -> None:
    """Print a report line (stderr when --json owns stdout)."""
    print(*parts, file=REPORT, flush=True)


# ---- FLOPs ---------------------------------------------------------------------------
def _cpu_sdpa_flops(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
    b, h, sq, d = q
    return 2 * 2 * b * h * sq * k[2] * d  # QK^T and PV


def _cpu_sdpa_bwd_flops(
    grad: Any, q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kw: Any
) -> int:
    b, h, sq, d = q
    return 5 * 2 * b * h * sq * k[2] * d  # recomputed QK^T + four gradient matmuls


#: FlopCounterMode has no formula for the CPU flash-attention kernels; without these
#: the attention FLOPs would silently count as 0 on CPU (same formulas as the CUDA ones).
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_bwd_flops,
}


# ---- models and steps ----------------------------------------------------------------
@dataclass
class Contender:
    """One model under test with its optimizer and a closure running one step."""

    name: str
    model: nn.Module
    loss_fn: Callable[[torch.Tensor], torch.Tensor]  # possibly compiled
    eager_loss_fn: Callable[[torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    tokens: int  # patch tokens N = G * L
    encoder_tokens: int  # 1 + visible tokens

    def step(self, x: torch.Tensor, amp: str, *, eager: bool = False) -> None:
        """Forward + backward + AdamW step."""
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(x.device, amp):
            loss = (self.eager_loss_fn if eager else self.loss_fn)(x)
        loss.backward()
        self.optimizer.step()


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device, or nothing."""
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model.named_parameters(), weight_decay=0.05)
    return make_adamw(groups, lr=1.5e-4, betas=(0.9, 0.95))


def build(
    kind: str, size: str, args: argparse.Namespace, *, img_size: int, compile_: bool
) -> Contender:
    """Build ``reference`` or a ChannelMAE with group preset ``kind`` on the device."""
    torch.manual_seed(args.seed)
    dims = SIZES[size]
    dec_dim, dec_depth, dec_heads = args.decoder_dims
    common = {
        "img_size": img_size,
        "patch_size": args.patch_size,
        "embed_dim": dims.embed_dim,
        "depth": dims.depth,
        "num_heads": dims.num_heads,
        "decoder_embed_dim": dec_dim,
        "decoder_depth": dec_depth,
        "decoder_num_heads": dec_heads,
        "mask_ratio": args.mask_ratio,
    }
    num_patches = (img_size // args.patch_size) ** 2
    model: nn.Module
    if kind == "reference":
        model = ReferenceMAE(in_chans=len(L2A_BANDS), **common)
        groups = 1
        name = "reference"
    else:
        model = ChannelMAE.build(bands=list(L2A_BANDS), groups=kind, masking="consistent", **common)
        groups = model.encoder.num_groups
        name = f"geomae-{kind}"
    model.to(args.device).train()
    kept_groups, per_group = visible_counts(
        "consistent", num_groups=groups, num_patches=num_patches, mask_ratio=args.mask_ratio
    )

    def eager_loss(x: torch.Tensor) -> torch.Tensor:
        out = model(x)
        return out if isinstance(out, torch.Tensor) else out.loss

    loss_fn = eager_loss
    if compile_:
        compiled = torch.compile(model)

        def loss_fn(x: torch.Tensor) -> torch.Tensor:
            out = compiled(x)
            return out if isinstance(out, torch.Tensor) else out.loss

        name += "+compile"
    return Contender(
        name=name,
        model=model,
        loss_fn=loss_fn,
        eager_loss_fn=eager_loss,
        optimizer=_optimizer(model),
        tokens=groups * num_patches,
        encoder_tokens=1 + kept_groups * per_group,
    )


# ---- measurement ---------------------------------------------------------------------
def sync(device: torch.device) -> None:
    """Wait for the device."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(c: Contender, x: torch.Tensor, amp: str, steps: int) -> float:
    """Seconds per step over ``steps`` consecutive steps (CUDA events on CUDA)."""
    if x.device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            c.step(x, amp)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0 / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        c.step(x, amp)
    return (time.perf_counter() - t0) / steps


def interleaved(
    contenders: list[Contender], x_of: Callable[[Contender], torch.Tensor], args: argparse.Namespace
) -> dict[str, list[float]]:
    """Warm every contender up, then time them in A B A B ... rounds.

    Returns:
        Seconds per step of every round, by contender name.
    """
    for c in contenders:
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            c.step(x_of(c), args.amp)
        sync(args.device)
        say(f"  warm-up {c.name}: {time.perf_counter() - t0:.1f} s")
    rounds: dict[str, list[float]] = {c.name: [] for c in contenders}
    for _ in range(args.rounds):
        for c in contenders:
            rounds[c.name].append(time_steps(c, x_of(c), args.amp, args.steps))
    return rounds


def count_flops(c: Contender, x: torch.Tensor, amp: str) -> int:
    """FLOPs of one eager forward + backward."""
    c.optimizer.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        with autocast(x.device, amp):
            loss = c.eager_loss_fn(x)
        loss.backward()
    c.optimizer.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def peak_memory(c: Contender, x: torch.Tensor, amp: str) -> tuple[float | None, str]:
    """Peak live-tensor bytes of one step and how they were measured."""
    if x.device.type == "cuda":
        c.optimizer.zero_grad(set_to_none=True)
        sync(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        c.step(x, amp)
        sync(x.device)
        return float(torch.cuda.max_memory_allocated(x.device)), "cuda.max_memory_allocated"
    from torch.profiler import ProfilerActivity, profile

    kind = "profiler memory timeline (live tensors)"
    try:
        with profile(
            activities=[ProfilerActivity.CPU],
            profile_memory=True,
            record_shapes=True,
            with_stack=True,
        ) as prof:
            c.step(x, amp)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = os.path.join(tmp, "timeline.json")
            prof.export_memory_timeline(path, device="cpu")
            _, sizes = json.loads(Path(path).read_text())
        return float(max(sum(s) for s in sizes)), kind
    except Exception as err:  # noqa: BLE001 - report, do not abort the benchmark
        return None, f"{kind} failed: {type(err).__name__}: {err}"


def summarize(
    c: Contender, secs: list[float], flops: int, mem: tuple[float | None, str], args: Any
) -> dict[str, Any]:
    """One result row."""
    sec = statistics.median(secs)
    out: dict[str, Any] = {
        "model": c.name,
        "img_s": args.batch_size / sec,
        "img_s_rounds": [args.batch_size / s for s in secs],
        "spread_pct": 100 * (max(secs) - min(secs)) / sec,
        "ms_per_step": 1000 * sec,
        "gflop_per_step": flops / 1e9,
        "achieved_gflop_s": flops / sec / 1e9,
        "peak_mem_mb": None if mem[0] is None else mem[0] / 2**20,
        "memory_measure": mem[1],
        "tokens": c.tokens,
        "encoder_tokens": c.encoder_tokens,
    }
    if args.peak_tflops:
        out["mfu"] = flops / sec / (args.peak_tflops * 1e12)
    return out


# ---- checks (issue part 3) -----------------------------------------------------------
#: Ops that copy a device value to the host (a sync on CUDA) or have data-dependent shapes.
SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::_unique2")


class SyncOpRecorder(TorchDispatchMode):
    """Record every host-syncing op dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func._schema.name in SYNC_OPS:
            self.found.append(func._schema.name)
        return func(*args, **(kwargs or {}))


def checks(contenders: list[Contender], x: torch.Tensor) -> dict[str, Any]:
    """SDPA in every timm Block, optimizer kind, bf16 autocast, host syncs in a step."""
    from timm.models.vision_transformer import Attention

    out: dict[str, Any] = {}
    for c in contenders:
        attn = [m for m in c.model.modules() if isinstance(m, Attention)]
        fused = [bool(m.fused_attn) for m in attn]
        opt = c.optimizer.defaults
        seen: list[torch.dtype] = []
        hook = attn[0].register_forward_hook(lambda m, i, o, seen=seen: seen.append(o.dtype))
        c.optimizer.zero_grad(set_to_none=True)
        try:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                loss = c.eager_loss_fn(x)
            loss.backward()
            grads = [p.grad for p in c.model.parameters() if p.grad is not None]
            bf16 = {
                "ok": bool(torch.isfinite(loss)) and all(bool(g.isfinite().all()) for g in grads),
                "attention_out_dtype": str(seen[0]),
                "loss_dtype": str(loss.dtype),
                "grad_dtype": str(grads[0].dtype),
            }
        except Exception as err:  # noqa: BLE001 - reported as a failed check
            bf16 = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        finally:
            hook.remove()
        c.optimizer.zero_grad(set_to_none=True)
        with SyncOpRecorder() as fwd_bwd:
            c.eager_loss_fn(x).backward()
        with SyncOpRecorder() as opt_step:
            c.optimizer.step()
        c.optimizer.zero_grad(set_to_none=True)
        explained = torch._dynamo.explain(c.model)(x)
        torch._dynamo.reset()
        out[c.name] = {
            "attention_blocks": len(attn),
            "all_fused_attn": all(fused) and bool(fused),
            "adamw_fused": bool(opt.get("fused")),
            "adamw_foreach": bool(opt.get("foreach")),
            "bf16_autocast_fwd_bwd": bf16,
            "host_sync_ops_fwd_bwd": sorted(set(fwd_bwd.found)),
            "host_sync_ops_optimizer": sorted(set(opt_step.found)),
            "dynamo_graphs": explained.graph_count,
            "dynamo_graph_breaks": explained.graph_break_count,
        }
    return out


# ---- tables --------------------------------------------------------------------------
def scaling_table(
    configs: list[tuple[str, int]], size: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Eager ChannelMAE step cost for (groups, img_size) configs, interleaved."""
    contenders, inputs = [], {}
    for groups, img in configs:
        c = build(groups, size, args, img_size=img, compile_=False)
        c.name = f"{groups}@{img}px"
        contenders.append(c)
        inputs[c.name] = make_input(args, img)
    secs = interleaved(contenders, lambda c: inputs[c.name], args)
    rows = []
    for (groups, img), c in zip(configs, contenders, strict=True):
        flops = count_flops(c, inputs[c.name], args.amp)
        sec = statistics.median(secs[c.name])
        rows.append(
            {
                "groups": groups,
                "img_size": img,
                "G": c.tokens // (img // args.patch_size) ** 2,
                "L": (img // args.patch_size) ** 2,
                "tokens": c.tokens,
                "encoder_tokens": c.encoder_tokens,
                "decoder_tokens": 1 + c.tokens,
                "gflop_per_step": flops / 1e9,
                "ms_per_step": 1000 * sec,
                "spread_pct": 100 * (max(secs[c.name]) - min(secs[c.name])) / sec,
                "img_s": args.batch_size / sec,
            }
        )
    base_ms, base_flop = rows[0]["ms_per_step"], rows[0]["gflop_per_step"]
    for r in rows:
        r["time_x"] = r["ms_per_step"] / base_ms
        r["flop_x"] = r["gflop_per_step"] / base_flop
    return rows


def print_table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> None:
    """Fixed-width table: (key, header, format)."""
    cells = [
        ["n/a" if r.get(key) is None else format(r[key], fmt) for key, _, fmt in cols] for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, (_, h, _) in enumerate(cols)]
    say("  ".join(h.rjust(w) for (_, h, _), w in zip(cols, widths, strict=True)))
    for row in cells:
        say("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


# ---- main ----------------------------------------------------------------------------
def make_input(args: argparse.Namespace, img_size: int) -> torch.Tensor:
    """Seeded (B, 12, H, W) normalized-looking batch on the device."""
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, len(L2A_BANDS), img_size, img_size, generator=g)
    return x.to(args.device)


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """Machine, versions and date."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    env = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "device": str(args.device),
    }
    if args.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(args.device)
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    p.add_argument("--sizes", default="tiny", help=f"comma list of {sorted(SIZES)}")
    p.add_argument("--groups", default="single", help="ChannelMAE group presets vs reference")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--patch-size", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--decoder-dims", default="128,2,4", help="decoder width,depth,heads")
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--warmup", type=int, default=2, help="warm-up steps per model")
    p.add_argument("--rounds", type=int, default=5, help="timed A/B rounds")
    p.add_argument("--steps", type=int, default=2, help="steps per model per round")
    p.add_argument("--amp", choices=["none", "bf16"], default="none")
    p.add_argument("--compile", choices=["off", "on", "both"], default="off")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak FLOP/s for MFU")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--group-table", default="single,satmae,per-band")
    p.add_argument("--img-table", default="32,64,96", help="image sizes (single group)")
    p.add_argument("--no-tables", action="store_true")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    p.add_argument("--checks", action="store_true", help="run the issue part 3 checks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--json-out", type=Path, default=None, help="also write the JSON here")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="same code path on CPU with micro dims (checks the script, numbers meaningless)",
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.device, args.sizes, args.decoder_dims = "cpu", "micro", "32,1,2"
        args.img_size, args.patch_size, args.batch_size = 32, 8, 2
        args.warmup, args.rounds, args.steps = 1, 2, 1
        args.img_table = "16,32"
    args.device = torch.device(args.device)
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.groups = [g for g in args.groups.split(",") if g]
    args.decoder_dims = tuple(int(v) for v in args.decoder_dims.split(","))
    args.compile_modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    bad = [s for s in args.sizes if s not in SIZES]
    if bad or len(args.decoder_dims) != 3:
        p.error(f"unknown sizes {bad} or bad --decoder-dims")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and return the JSON-able result."""
    global REPORT
    args = parse_args(argv)
    if args.json:
        REPORT = sys.stderr
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    result: dict[str, Any] = {
        "env": environment(args),
        "config": {
            k: (str(v) if isinstance(v, torch.device | Path) else v)
            for k, v in vars(args).items()
            if k not in ("json", "json_out")
        },
        "bands": len(L2A_BANDS),
        "results": [],
        "ratios": {},
    }
    say(f"# {json.dumps(result['env'])}")

    def save() -> None:
        if args.json_out is not None:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(result, indent=2) + "\n")

    x = make_input(args, args.img_size)
    cols = [
        ("model", "model", ""),
        ("img_s", "img/s", ".1f"),
        ("ms_per_step", "ms/step", ".1f"),
        ("spread_pct", "spread %", ".0f"),
        ("gflop_per_step", "GFLOP/step", ".2f"),
        ("achieved_gflop_s", "GFLOP/s", ".1f"),
        ("peak_mem_mb", "peak MiB", ".0f"),
        ("encoder_tokens", "enc tok", "d"),
    ]
    if args.peak_tflops:
        cols.append(("mfu", "MFU", ".3f"))
    for size in args.sizes:
        for compile_ in args.compile_modes:
            tag = "on" if compile_ else "off"
            say(
                f"\n## {size}, {args.img_size}px/p{args.patch_size}, batch {args.batch_size}, "
                f"amp {args.amp}, compile {tag}, device {args.device}"
            )
            contenders = [
                build(g, size, args, img_size=args.img_size, compile_=compile_)
                for g in [*args.groups, "reference"]
            ]
            if args.checks and not compile_:
                found = checks(contenders, x)
                result.setdefault("checks", {})[size] = found
                for name, check in found.items():
                    say(f"  check {name}: {json.dumps(check)}")
            secs = interleaved(contenders, lambda c: x, args)
            rows = []
            for c in contenders:
                flops = count_flops(c, x, args.amp)
                mem = (None, "skipped") if args.no_memory else peak_memory(c, x, args.amp)
                row = summarize(c, secs[c.name], flops, mem, args)
                rows.append({"size": size, "compile": compile_, **row})
            ref = rows[-1]
            for g, row in zip(args.groups, rows, strict=False):
                row["ratio_vs_reference"] = row["img_s"] / ref["img_s"]
                result["ratios"][f"{size}/{tag}/{g}"] = row["ratio_vs_reference"]
            result["results"] += rows
            print_table(rows, [*cols, ("ratio_vs_reference", "vs ref", ".3f")])
            say(f"  memory: {rows[0]['memory_measure']}")
            save()
            del contenders
            gc.collect()
            if args.device.type == "cuda":
                torch.cuda.empty_cache()
    main_row = result["results"][0]
    ref_row = next(r for r in result["results"] if r["model"].startswith("reference"))
    result["geomae_img_s"] = main_row["img_s"]
    result["reference_img_s"] = ref_row["img_s"]
    result["ratio"] = main_row["img_s"] / ref_row["img_s"]
    result["main"] = {
        "size": args.sizes[0],
        "compile": args.compile_modes[0],
        "groups": args.groups[0],
    }

    if not args.no_tables:
        size = args.sizes[0]
        table_cols = [
            ("groups", "groups", ""),
            ("img_size", "px", "d"),
            ("G", "G", "d"),
            ("L", "L", "d"),
            ("tokens", "N=G*L", "d"),
            ("encoder_tokens", "enc tok", "d"),
            ("decoder_tokens", "dec tok", "d"),
            ("gflop_per_step", "GFLOP/step", ".2f"),
            ("ms_per_step", "ms/step", ".1f"),
            ("spread_pct", "spread %", ".0f"),
            ("img_s", "img/s", ".1f"),
            ("flop_x", "FLOP x", ".2f"),
            ("time_x", "time x", ".2f"),
        ]
        groups_cfg = [(g, args.img_size) for g in args.group_table.split(",") if g]
        say(f"\n## step cost vs band groups ({size}, {args.img_size}px, eager)")
        result["tables"] = {"groups": scaling_table(groups_cfg, size, args)}
        print_table(result["tables"]["groups"], table_cols)
        save()
        img_cfg = [("single", int(s)) for s in args.img_table.split(",") if s]
        say(f"\n## step cost vs image size ({size}, single group, eager)")
        result["tables"]["img_size"] = scaling_table(img_cfg, size, args)
        print_table(result["tables"]["img_size"], table_cols)
    loaded = [m for m in DATA_STACK if m in sys.modules]
    result["data_stack_imported"] = loaded
    say(f"\ndata-stack modules imported: {loaded or 'none'}")
    say(
        f"main: geomae {result['geomae_img_s']:.1f} img/s, reference "
        f"{result['reference_img_s']:.1f} img/s, ratio {result['ratio']:.3f}"
    )
    save()
    return result


if __name__ == "__main__":
    res = main()
    if "--json" in sys.argv[1:]:
        print(json.dumps(res))

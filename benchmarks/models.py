"""CPU cost of the model plugins: parameters, forward+backward time per sample, peak step memory.

Models: Joe Net (``JoeNet()``, 2D only), the MONAI plugins (``monai_basic_unet``, ``monai_unet``,
``mednext``) and the residual U-Nets of the EM mitochondria pipeline (``unetv3``, ``unetv3_ebd``,
``unetv3_ebd2``: 3D only; ``unet2d_ebd``: 2D only), with their config defaults, 2 classes, one image
channel, batch 1, at the pipeline's patch sizes: 2D 1 x 256 x 256 and 3D 64 x 128 x 128; ``--quick``:
128 x 128 and 32 x 64 x 64. Every model runs in training mode: MedNeXt and unetv3/unetv3_ebd with
their deep supervision on (their defaults), so the auxiliary heads are part of the cost; the
embedding models' embedding head too; unetv3_ebd2 also updates its class prototypes from the step's
embedding (as the engine does after each forward pass).

Each model is measured in its own fresh Python process, on the CPU, with torch's default thread count (``--threads`` to change):

- time: one warm-up step, then the median of ``--repeats`` steps of forward + backward (loss: mean
  square of every output head; gradients set to None between steps; no optimizer step);
- memory: the process's peak resident set (the kernel's exact high-water mark VmHWM, reset through
  /proc/self/clear_refs after the model and input are built) minus its resident set at that moment.
  So it is what the steps add on top of parameters + input: activations kept for backward, gradients,
  and temporaries, as the allocator holds them in RAM (Linux only). The parameters' own float32
  size is printed separately.

``--json PATH`` writes each model's time per sample and peak step memory, each against
``monai_basic_unet`` at the same dims and input size (ratio = model / monai_basic_unet).

    .venv/bin/python benchmarks/models.py [--quick] [--repeats 5] [--threads N] [--mednext-sizes S,B,M,L] [--only mednext] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from figures import Figure, add_json_argument, ratio_of, write_figures  # benchmarks/figures.py, next to this script

PEER = "monai_basic_unet"  # every model's time and memory are compared with it at the same dims and size
SIZES = {False: {2: (256, 256), 3: (64, 128, 128)}, True: {2: (128, 128), 3: (32, 64, 64)}}


UNETV3_FAMILY = {"unetv3": 3, "unetv3_ebd": 3, "unetv3_ebd2": 3, "unet2d_ebd": 2}  # model -> its only DATASET.DIMS


def cases(mednext_sizes: list[str]) -> list[dict]:
    out = [{"model": "joenet", "dims": 2}]
    for dims in (2, 3):
        out += [{"model": "monai_basic_unet", "dims": dims}, {"model": "monai_unet", "dims": dims}]
        out += [{"model": "mednext", "dims": dims, "size": s} for s in mednext_sizes]
        out += [{"model": name, "dims": dims} for name, only in UNETV3_FAMILY.items() if only == dims]
    return out


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def build(case: dict, spatial: tuple[int, ...]):
    """The model for ``case`` at its config defaults (MONAI models through their plugin builders)."""
    if case["model"] == "joenet":
        from emseg_plugins.models.joenet import JoeNet

        return JoeNet(in_channels=1, out_channels=2)
    from emseg_plugins.config import get_cfg_defaults
    from emseg_plugins.models import monai_nets

    cfg = get_cfg_defaults()
    for add in (monai_nets.add_monai_basic_unet_config, monai_nets.add_monai_unet_config, monai_nets.add_mednext_config):
        add(cfg)
    cfg.MODEL.ARCHITECTURE = case["model"]
    cfg.DATASET.DIMS = case["dims"]
    cfg.DATASET.PATCH_SIZE = [1, *spatial] if case["dims"] == 2 else list(spatial)
    cfg.DATASET.CLASSES = ["nuc", "mito"]
    cfg.INFERENCE.INPUT_SIZE = list(cfg.DATASET.PATCH_SIZE)
    if case["model"] == "mednext":
        cfg.MODEL.MEDNEXT.SIZE = case["size"]
    if case["model"] in UNETV3_FAMILY:  # MODEL.FILTERS, MODEL.UNETV3 and MODEL.EMBEDDING at their defaults
        from emseg_plugins.models import embedding, unetv3

        module = unetv3 if case["model"] == "unetv3" else embedding
        return getattr(module, f"build_{case['model']}")(cfg)
    return getattr(monai_nets, f"build_{case['model']}")(cfg)


def measure(case: dict, quick: bool, repeats: int, threads: int = 0) -> dict:
    """Runs in the child process: build, reset the peak-RSS mark, time warm-up + ``repeats`` steps."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    spatial = SIZES[quick][case["dims"]]
    model = build(case, spatial).train()
    x = torch.rand(1, 1, *spatial)
    target = (torch.rand(1, 2, *spatial) > 0.5).float()  # for unetv3_ebd2's prototype update
    params = sum(p.numel() for p in model.parameters())

    def step() -> float:
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        out = model(x)
        heads = [out] if isinstance(out, torch.Tensor) else [out["logits"], *out.get("aux", [])]
        if isinstance(out, dict) and "embedding" in out:
            heads.append(out["embedding"])
        sum(h.square().mean() for h in heads).backward()
        if hasattr(model, "update_prototypes"):
            model.update_prototypes(out["embedding"].detach(), target)
        return time.perf_counter() - start

    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now
    rss_before = _status_kib("VmRSS")
    step()  # warm-up
    times = [step() for _ in range(repeats)]
    peak = _status_kib("VmHWM")
    return {
        "params": params, "param_mib": params * 4 / 2**20, "shape": "x".join(map(str, spatial)),
        "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
        "peak_step_mib": (peak - rss_before) / 1024, "threads": torch.get_num_threads(),
    }


def label(case: dict) -> str:
    return f"mednext-{case['size']}" if case["model"] == "mednext" else case["model"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2D 128x128 and 3D 32x64x64, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps after the warm-up (default 5; quick 2)")
    parser.add_argument("--mednext-sizes", default="S", help="comma-separated MedNeXt sizes (S,B,M,L); default S")
    parser.add_argument("--only", default="", help="comma-separated model names to keep (joenet, monai_unet, ...)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's, = cores)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one measurement, JSON in and out
    add_json_argument(parser)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    if args.case:
        print(json.dumps(measure(json.loads(args.case), args.quick, repeats, args.threads)))
        return

    selected = [c for c in cases(args.mednext_sizes.upper().split(","))
                if not args.only or c["model"] in args.only.split(",")]
    header = f"{'model':<18}{'dims':>4} {'input (1 ch)':>13} {'params':>11} {'params MiB':>10} " \
             f"{'fwd+bwd s/sample':>17} {'(min-max)':>15} {'peak step MiB':>14}"
    print(f"CPU, batch 1, median of {repeats} after 1 warm-up; each model in a fresh process; "
          f"load average before: {os.getloadavg()[0]:.2f}\n")
    print(header)
    print("-" * len(header))
    threads = "?"
    results: list[tuple[dict, dict | None, str]] = []  # (case, measurement or None, failure line)
    for case in selected:
        cmd = [sys.executable, __file__, "--case", json.dumps(case), "--repeats", str(repeats), "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
        done = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if done.returncode:
            tail = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{label(case):<18}{case['dims']:>4}D  failed: {tail}")
            results.append((case, None, tail))
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        threads = r["threads"]
        spread = f"({r['min_s']:.3f}-{r['max_s']:.3f})"
        print(f"{label(case):<18}{case['dims']:>3}D {r['shape']:>13} {r['params']:>11,} {r['param_mib']:>10.1f} "
              f"{r['median_s']:>17.3f} {spread:>15} {r['peak_step_mib']:>14.0f}", flush=True)
        results.append((case, r, ""))
    print(f"\nload average after: {os.getloadavg()[0]:.2f} (other processes on the cores inflate the times)")
    print(f"torch threads: {threads}; peak step MiB = kernel peak RSS (VmHWM) during "
          "warm-up + timed steps minus RSS after building model and input")
    write_figures(args.json, figures_of(results, repeats))


def figures_of(results: list[tuple[dict, dict | None, str]], repeats: int) -> list[Figure]:
    """Time per sample and peak step memory of each model, against PEER at the same dims (and size)."""
    peers = {case["dims"]: r for case, r, _ in results if case["model"] == PEER and r}
    figures = []
    for case, r, failure in results:
        name = f"{label(case)} {case['dims']}D"
        if r is None:
            figures.append(Figure("models", f"{name} fwd+bwd time per sample", float("nan"), "s", note=f"failed: {failure}"))
            continue
        peer = peers.get(case["dims"]) if case["model"] != PEER else None
        peer_name = f"{PEER} {case['dims']}D {r['shape']}" if peer else ""
        timing = (f"median of {repeats} after 1 warm-up ({r['min_s']:.3f}-{r['max_s']:.3f} s); "
                  f"{r['params']:,} parameters ({r['param_mib']:.1f} MiB); CPU, batch 1, {r['threads']} threads")
        for what, key, unit, note in (
            ("fwd+bwd time per sample", "median_s", "s", timing),
            ("peak step memory", "peak_step_mib", "MiB", "peak RSS during the steps minus RSS after building model and input"),
        ):
            peer_value = peer[key] if peer else None
            figures.append(Figure("models", f"{name} {r['shape']} {what}", r[key], unit, peer_name, peer_value,
                                  ratio_of(r[key], peer_value), note=note))
    return figures


if __name__ == "__main__":
    main()

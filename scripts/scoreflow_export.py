"""Shared parts of scripts/export_{diffusers,edm,guided}.py: writing a TorchScript archive with its
scoreflow.json (docs/design.md section 3), and the export self-check.

The self-check has two halves. `preflight` runs the eager network on inputs of the metadata's shape
before anything is written, so that metadata and architecture that disagree (shape, channels,
class labels, learned variance) are named before tracing. `verify` reloads the written archive and
compares scoreflow's D(x, sigma) -- computed here the way models/torchscript_model.cpp computes it
from the metadata -- with the exporter's reference D computed from the original module in its own
conventions. Any failure deletes the file and exits with one `error:` line.
"""
import contextlib
import importlib
import json
import math
import os
import sys

import numpy as np
import torch


class CheckFailed(Exception):
    """A self-check failure; the message starts with the name of the disagreeing field."""


def die(msg: str):
    sys.exit(f"error: {msg}")


def fail_export(path: str, msg: str):
    """Exits with the self-check error; the archive is written to PATH.tmp and only renamed to PATH
    once it passed, so removing the temporary file is all the cleaning up there is."""
    if os.path.exists(path + ".tmp"):
        os.remove(path + ".tmp")
    die(f"export self-check failed: {msg}")


def parse_ints(text: str, what: str, n=None):
    try:
        vals = [int(v) for v in text.split(",")]
    except ValueError:
        die(f"{what} '{text}' is not a comma-separated list of integers")
    if (n is not None and len(vals) != n) or any(v < 1 for v in vals):
        die(f"{what} '{text}' must be {n or 'some'} positive integers, e.g. 3,32,32")
    return vals


def parse_range(text: str):
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        die(f"--data-range '{text}' is not lo,hi")
    if not hi > lo:
        die(f"--data-range '{text}' needs lo < hi")
    return [lo, hi]


def require_file(path: str, what: str):
    if not path:
        die(f"{what} is required")
    if not os.path.exists(path):
        die(f"{what} '{path}' does not exist")


def import_class(spec: str):
    """'package.module:Class' -> the class (the module must be importable, e.g. via PYTHONPATH)."""
    if ":" not in spec:
        die(f"--module '{spec}' must be package.module:Class")
    mod_name, cls_name = spec.split(":", 1)
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        die(f"--module '{spec}': cannot import {mod_name}: {e} (add its folder to PYTHONPATH)")
    if not hasattr(mod, cls_name):
        die(f"--module '{spec}': {mod_name} has no {cls_name}")
    return getattr(mod, cls_name)


def load_state_dict(path: str):
    """A state dict from a torch.save file (.pt/.pth/.bin; 'ema'/'state_dict'/'model' wrappers
    are unpacked) or an .npz of arrays."""
    require_file(path, "--state-dict")
    if path.endswith(".npz"):
        with np.load(path) as z:
            return {k: torch.from_numpy(z[k]) for k in z.files}
    obj = torch.load(path, map_location="cpu")
    for key in ("ema", "state_dict", "model"):  # common checkpoint wrappers
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        die(f"--state-dict '{path}' holds a {type(obj).__name__}, not a state dict")
    return obj


def load_weights(module: torch.nn.Module, state: dict, source: str):
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        die(f"weights in {source} do not fit the architecture: {' '.join(lines[:3])[:400]}")


# ---- scoreflow's side: the schedule and the sigma-space wrapper, as the C++ code computes them ----

def alphas_cumprod(schedule: dict) -> np.ndarray:
    """alpha-bar_n (float64) of a vp_discrete metadata schedule (models/schedule.cpp)."""
    betas = schedule.get("betas", "linear")
    if isinstance(betas, list):
        b = np.asarray(betas, dtype=np.float64)
    else:
        n = schedule.get("num_train_steps", 1000)
        i = np.arange(n, dtype=np.float64)
        if betas == "linear":
            b0, b1 = schedule.get("beta_start", 1e-4), schedule.get("beta_end", 0.02)
            b = b0 + (b1 - b0) * i / (n - 1)
        elif betas == "scaled_linear":
            b0, b1 = schedule.get("beta_start", 0.00085), schedule.get("beta_end", 0.012)
            b = (math.sqrt(b0) + (math.sqrt(b1) - math.sqrt(b0)) * i / (n - 1)) ** 2
        elif betas == "cosine":
            f = lambda t: np.cos((t / n + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
            b = np.minimum(1 - f(i + 1) / f(i), 0.999)
        else:
            raise ValueError(betas)
    ab = np.exp(np.cumsum(np.log1p(-b)))
    if schedule.get("rescale_zero_terminal_snr", False):
        a0, aT = math.sqrt(ab[0]), math.sqrt(ab[-1])
        ab = ((np.sqrt(ab) - aT) * a0 / (a0 - aT)) ** 2
        ab[-1] = min(4.8973451890853435e-08, 0.5 * ab[-2])
    return ab


def network_inputs(meta: dict, sigma: float):
    """(alpha, network time) that scoreflow feeds at noise level sigma."""
    sch, ti = meta["schedule"], meta["time_input"]
    if sch["type"] == "vp_discrete":
        alpha = 1 / math.sqrt(1 + sigma * sigma)
        log_s = np.log(np.sqrt((1 - alphas_cumprod(sch)) / alphas_cumprod(sch)))
        ls = math.log(sigma)
        hi = int(np.searchsorted(log_s, ls, side="right"))
        if hi == 0:
            t = 0.0
        elif hi == len(log_s):
            t = float(len(log_s) - 1)
        else:
            t = hi - 1 + (ls - log_s[hi - 1]) / (log_s[hi] - log_s[hi - 1])
        if ti != "index":
            raise ValueError(f"time_input {ti} with vp_discrete is not exported by these scripts")
        return alpha, t
    if sch["type"] == "vp_linear" and ti in ("continuous", "scaled"):
        # log(1 + sigma^2) = beta_min t + (beta_max - beta_min) t^2 / 2, t clamped to [t_eps, 1] as scoreflow does
        b0, b1, t_eps = sch.get("beta_min", 0.1), sch.get("beta_max", 20.0), sch.get("t_eps", 1e-3)
        c = math.log1p(sigma * sigma)
        t = 2 * c / (b0 + math.sqrt(b0 * b0 + 2 * (b1 - b0) * c))
        t = min(max(t, t_eps), 1.0)
        return 1 / math.sqrt(1 + sigma * sigma), (1000 * t if ti == "scaled" else t)
    if sch["type"] in ("edm", "ve"):
        if ti == "sigma":
            return 1.0, sigma
        if ti == "edm_c_noise":
            return 1.0, math.log(sigma) / 4
    raise ValueError(f"schedule {sch['type']} with time_input {ti} is not exported by these scripts")


def scoreflow_denoise(net, meta: dict, x: torch.Tensor, sigma: float, labels, conds=()):
    """D(x, sigma) the way scoreflow computes it from `net`'s output and the metadata; `conds` are
    the metadata's conditioning inputs in order ([B, ...shape] each)."""
    alpha, t = network_inputs(meta, sigma)
    tt = torch.full((x.shape[0],), t, dtype=torch.float32)
    args = (x * alpha, tt) + ((labels,) if meta.get("num_classes", 0) > 0 else ()) + tuple(conds)
    f = net(*args)[:, : x.shape[1]].double()
    xd = x.double()
    p = meta["prediction"]
    if p == "eps":
        return xd - sigma * f
    if p == "x0":
        return f
    if p == "v":
        return alpha * alpha * xd - alpha * sigma * f
    raise ValueError(p)


# ---- the export steps ----

def check_labels(meta: dict, batch: int):
    k = meta.get("num_classes", 0)
    if k == 0:
        return None
    return torch.tensor([(i * 7 + 3) % k for i in range(batch - 1)] + [k - 1], dtype=torch.long)


def preflight(raw, meta: dict, want_channels: int, channels_field: str):
    """Runs raw(x_t, t, labels) -- the network's full output, with scoreflow's time input -- on the
    metadata's shape before anything is written.

    Raises CheckFailed naming the field when the input shape, the output channels or the class
    conditioning disagree with the metadata."""
    shape = meta["shape"]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, *shape, generator=g)
    _, t = network_inputs(meta, 1.0)
    tt = torch.full((3,), t)
    labels = check_labels(meta, 3)
    with torch.no_grad():
        try:
            out = raw(x, tt, labels)
        except Exception as e:  # noqa: BLE001 -- any error here means the metadata does not fit
            msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            if labels is not None and ("index out of range" in msg or "embedding" in msg.lower()):
                raise CheckFailed(f"num_classes: metadata says {meta['num_classes']} classes but the network "
                                  f"rejects label {meta['num_classes'] - 1}: {msg}")
            raise CheckFailed(f"shape: the network does not accept input of metadata shape {shape}: {msg}")
        if not isinstance(out, torch.Tensor):
            raise CheckFailed(f"forward returned {type(out).__name__}, expected a tensor")
        if out.dim() != len(shape) + 1 or list(out.shape[2:]) != list(shape[1:]) or out.shape[0] != 3:
            raise CheckFailed(f"shape: network output {list(out.shape)} does not match metadata shape {shape}")
        if out.shape[1] != want_channels:
            raise CheckFailed(f"{channels_field}: the network outputs {out.shape[1]} channels, "
                              f"the metadata needs {want_channels} ({shape[0]} input channels)")
        if labels is not None:
            try:  # scoreflow asks for unconditional output with label num_classes
                raw(x, tt, torch.full_like(labels, meta["num_classes"]))
            except Exception as e:  # noqa: BLE001
                raise CheckFailed(f"num_classes: the network rejects label {meta['num_classes']}, which scoreflow "
                                  f"uses for unconditional output: {str(e).strip().splitlines()[0][:200]}")
            out2 = raw(x, tt, (labels + 1) % meta["num_classes"])
            if meta["num_classes"] > 1 and torch.equal(out, out2):
                raise CheckFailed(f"num_classes: metadata says {meta['num_classes']} classes but the network's "
                                  f"output does not depend on the class label")


class _TraceCtx:
    """Stands in for an autograd ctx when a Function's forward is called directly."""

    def save_for_backward(self, *tensors):
        pass

    def mark_non_differentiable(self, *tensors):
        pass


@contextlib.contextmanager
def inline_autograd_functions(module: torch.nn.Module):
    """torch.jit.trace cannot save calls of Python autograd Functions (EDM's AttentionOp, ADM's
    gradient checkpointing); while tracing, make Function.apply call the Function's forward."""
    classes = set()
    for m in module.modules():
        mod = sys.modules.get(type(m).__module__)
        for value in vars(mod).values() if mod else ():
            if (isinstance(value, type) and issubclass(value, torch.autograd.Function)
                    and not value.__module__.startswith("torch")):
                classes.add(value)
    saved = {cls: cls.__dict__.get("apply") for cls in classes}
    for cls in classes:
        cls.apply = staticmethod(lambda *a, _cls=cls: _cls.forward(_TraceCtx(), *a))
    try:
        yield
    finally:
        for cls, old in saved.items():
            if old is None:
                del cls.apply
            else:
                cls.apply = old


# Ops a PyTorch 2.x trace may record that Debian's LibTorch 1.13 cannot load.
OPS_NEWER_THAN_1_13 = {"aten::scaled_dot_product_attention", "aten::_scaled_dot_product_attention",
                       "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention",
                       "aten::_native_multi_head_attention", "aten::rms_norm"}


def trace_and_save(wrapper, meta: dict, path: str, extra_methods=None):
    """Traces wrapper.forward (and `extra_methods`, names of methods with the same inputs) on CPU
    fp32 and writes it with scoreflow.json to `path`."""
    shape = meta["shape"]
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(2))
    _, t = network_inputs(meta, 1.0)
    inputs = (x, torch.full((2,), t)) + ((check_labels(meta, 2),) if meta.get("num_classes", 0) > 0 else ())
    methods = {"forward": inputs}
    for name in extra_methods or []:
        methods[name] = inputs
    wrapper.eval()
    with torch.no_grad(), inline_autograd_functions(wrapper):
        traced = torch.jit.trace_module(wrapper, methods, check_trace=False)
    newer = sorted({n.kind() for name in methods for n in getattr(traced, name).inlined_graph.nodes()}
                   & OPS_NEWER_THAN_1_13)
    if newer:
        raise CheckFailed(f"ops: the traced network uses {', '.join(newer)}, which LibTorch 1.13 does not have "
                          "(switch the network to its plain attention implementation)")
    torch.jit.save(traced, path, _extra_files={"scoreflow.json": json.dumps(meta)})


def verify(path: str, meta: dict, reference, sigmas, batch: int = 3, tol: float = 1e-4):
    """Reloads `path`; compares scoreflow's D(x, sigma) with reference(x, sigma, labels) (float64
    [B, ...]) at each sigma. Returns (x, sigma per sample, labels, D_ref) for the C++ test."""
    files = {"scoreflow.json": ""}
    m = torch.jit.load(path, map_location="cpu", _extra_files=files)
    got = json.loads(files["scoreflow.json"])
    if got != meta:
        raise CheckFailed(f"metadata: stored {got} differs from {meta}")
    g = torch.Generator().manual_seed(3)
    labels = check_labels(meta, batch)
    xs, ss, ds = [], [], []
    with torch.no_grad():
        for sigma in sigmas:
            # x in sigma-space: x0-scale data plus sigma-scale noise
            x = 0.5 * torch.randn(batch, *meta["shape"], generator=g) + sigma * torch.randn(
                batch, *meta["shape"], generator=g)
            d_sf = scoreflow_denoise(m, meta, x, sigma, labels)
            d_ref = reference(x, sigma, labels).double()
            err = (d_sf - d_ref).abs().max().item()
            scale = max(1.0, d_ref.abs().max().item())
            if not err <= tol * scale:
                raise CheckFailed(f"D(x, sigma={sigma:.6g}) of the reloaded file differs from the original "
                                  f"module by {err:.3g} (prediction '{meta['prediction']}', schedule "
                                  f"{meta['schedule'].get('type')}, time_input '{meta['time_input']}')")
            xs.append(x)
            ss += [sigma] * batch
            ds.append(d_ref)
    return (torch.cat(xs).numpy().astype(np.float32), np.asarray(ss, dtype=np.float64),
            None if labels is None else labels.repeat(len(sigmas)).numpy().astype(np.int64),
            torch.cat(ds).numpy())


def write_ref(path: str, x, sigma, labels, d_ref):
    arrays = {"x": x, "sigma": sigma, "denoised": d_ref}
    if labels is not None:
        arrays["labels"] = labels
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def export(path: str, wrapper, meta: dict, reference, sigmas, want_channels: int, channels_field: str,
           ref_path=None, extra_methods=None):
    """preflight (on wrapper.raw) -> trace + save wrapper -> reload + verify -> optional reference
    npz. Exits with one error line on failure, leaving no file behind."""
    try:
        preflight(wrapper.raw, meta, want_channels, channels_field)
    except CheckFailed as e:
        fail_export(path, str(e))
    tmp = path + ".tmp"
    try:
        trace_and_save(wrapper, meta, tmp, extra_methods)
    except CheckFailed as e:
        fail_export(path, str(e))
    except Exception as e:  # noqa: BLE001
        fail_export(path, f"tracing failed: {str(e).strip().splitlines()[0][:300]}")
    try:
        x, s, y, d = verify(tmp, meta, reference, sigmas)
    except CheckFailed as e:
        fail_export(path, str(e))
    os.replace(tmp, path)
    if ref_path:
        write_ref(ref_path, x, s, y, d)
    size = os.path.getsize(path)
    print(f"exported {path} ({size / 2**20:.2f} MiB); self-check passed at sigma = "
          + ", ".join(f"{v:.4g}" for v in sigmas))
    print(json.dumps(meta))


# ---- pieces of the small stand-in networks the exporters carry for tests ----

def sinusoidal(t: torch.Tensor, dim: int, flip_sin_to_cos: bool = True, shift: float = 0.0,
               max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style timestep embedding [B, dim] of float times t [B] (DDPM/ADM/diffusers)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - shift))
    args = t.float()[:, None] * freqs[None, :]
    sin, cos = torch.sin(args), torch.cos(args)
    return torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)


class ResBlock(torch.nn.Module):
    """GroupNorm-SiLU-conv, plus a per-channel shift from the embedding, twice, with a skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int):
        super().__init__()
        self.norm1 = torch.nn.GroupNorm(4, cin)
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = torch.nn.Linear(emb_dim, cout)
        self.norm2 = torch.nn.GroupNorm(4, cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = torch.nn.Conv2d(cin, cout, 1) if cin != cout else torch.nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(torch.nn.functional.silu(self.norm1(x)))
        h = h + self.emb(torch.nn.functional.silu(emb))[:, :, None, None]
        h = self.conv2(torch.nn.functional.silu(self.norm2(h)))
        return self.skip(x) + h


class TinyUNetCore(torch.nn.Module):
    """Two-level U-Net body: [B, cin, H, W] + embedding [B, emb_dim] -> [B, cout, H, W] (H, W even)."""

    def __init__(self, cin: int, cout: int, ch: int = 16, emb_dim: int = 32):
        super().__init__()
        self.conv_in = torch.nn.Conv2d(cin, ch, 3, padding=1)
        self.down = ResBlock(ch, ch, emb_dim)
        self.mid = ResBlock(ch, 2 * ch, emb_dim)
        self.up = ResBlock(3 * ch, ch, emb_dim)
        self.norm_out = torch.nn.GroupNorm(4, ch)
        self.conv_out = torch.nn.Conv2d(ch, cout, 3, padding=1)

    def forward(self, x, emb):
        h1 = self.down(self.conv_in(x), emb)
        h2 = self.mid(torch.nn.functional.avg_pool2d(h1, 2), emb)
        h = torch.cat([h1, torch.nn.functional.interpolate(h2, scale_factor=2.0, mode="nearest")], dim=1)
        return self.conv_out(torch.nn.functional.silu(self.norm_out(self.up(h, emb))))


class NullableEmbedding(torch.nn.Module):
    """An nn.Embedding of K classes that also takes label K -- scoreflow's unconditional label
    (models/denoiser.cpp) -- and returns a zero vector for it, i.e. leaves the class term out."""

    def __init__(self, embedding: torch.nn.Embedding):
        super().__init__()
        self.embedding = embedding
        self.num_classes = embedding.num_embeddings

    def forward(self, y):
        keep = (y < self.num_classes).to(self.embedding.weight.dtype)[:, None]
        return self.embedding(y.clamp(max=self.num_classes - 1)) * keep


def check_spatial(path: str, shape, size, what: str):
    """Convolutional networks run at any resolution, so a wrong --shape H, W would pass the forward
    check; compare it with the resolution the network was built for (`size`: int, [H, W] or None)."""
    if size is None:
        return
    hw = [int(size), int(size)] if isinstance(size, (int, float)) else [int(v) for v in size]
    if list(shape[1:]) != hw:
        fail_export(path, f"shape: metadata shape {list(shape)} but the network's {what} is {hw[0] if hw[0] == hw[1] else hw}")

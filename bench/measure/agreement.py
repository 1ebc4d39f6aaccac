"""Compiled against eager: a compiled mode that is fast because it computes something else is
not a speed-up (TorchBench's ``--accuracy`` beside its speed figures).

One model is built and copied three times: eager and compiled in the mode (its precision,
layout and backend switches), and an fp64 reference. All three run the same batch:

- inference: the eval-mode logits;
- training: one step from the same weights in train mode, as the update a plain SGD step
  makes, ``-lr x gradient`` of every parameter as one vector (in fp64 from the gradients, so
  that rounding half-precision weights does not hide it). Comparing the parameters after the
  step would hide any error behind the weights it started from.

Each result's error is its relative L2 distance from the fp64 reference,
``||x - x64|| / ||x64||``. The compiled result agrees when its error is at most
``MULTIPLIER`` times eager's plus the precision's floor (``FLOOR``): the test of
``torch._dynamo.utils.same`` with an fp64 reference, which TorchBench's accuracy checks use,
so that a precision's own rounding (bf16 keeps 8 bits) is not charged to the compiler. Random
operators (dropout) draw the same numbers in all three: inductor falls back to eager's random
number generation for the check (``fallback_random``) and each run starts from one seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from archs import ModelEntry
from bench.measure import backends, compiled
from bench.measure.modes import Mode

MULTIPLIER = 2.0
# relative error allowed beyond MULTIPLIER x eager's, by precision (dynamo's accuracy floors)
FLOOR: dict[str, float] = {
    "fp32": 1e-4,
    "tf32": 1e-3,
    "fp16": 1e-3,
    "fp16-true": 1e-3,
    "bf16": 1e-2,
    "bf16-true": 1e-2,
}
LEARNING_RATE = 0.01


@dataclass(frozen=True)
class Agreement:
    """Relative L2 errors against the fp64 reference, of eager and compiled."""

    infer_eager: float
    infer_compiled: float
    train_eager: float
    train_compiled: float
    floor: float

    def agrees(self, compiled: float, eager: float) -> bool:
        return compiled <= MULTIPLIER * eager + self.floor  # NaN never agrees

    @property
    def infer_mismatch(self) -> bool:
        return not self.agrees(self.infer_compiled, self.infer_eager)

    @property
    def train_mismatch(self) -> bool:
        return not self.agrees(self.train_compiled, self.train_eager)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().double().flatten(), want.detach().double().flatten()
    scale = torch.linalg.vector_norm(want)
    diff = torch.linalg.vector_norm(got - want)
    return float(diff / scale) if scale > 0 else float(diff)


def compare_compiled(
    entry: ModelEntry,
    mode: Mode,
    device: torch.device,
    shape: tuple[int, int, int],
    batch: int,
    num_classes: int,
) -> Agreement:
    """The compiled model in ``mode`` and its eager twin against fp64, at ``batch`` inputs."""
    if mode.compile == "none":
        raise ValueError(f"mode '{mode.name}' is eager: nothing to compare")
    compiled.reset(device)
    torch.manual_seed(0)
    model = entry.build(num_classes, shape[0], shape[1:])
    reference = copy.deepcopy(model).to(device=device, dtype=torch.float64)
    eager = mode.place(copy.deepcopy(model), device)
    twin = mode.place(model, device)
    fast = compiled.compile_model(twin, mode)
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, *shape, device=device, generator=generator)
    y = torch.randint(0, num_classes, (batch,), device=device, generator=generator)
    x64, x = x.double(), mode.inputs(x)
    with torch.no_grad():
        want = reference.eval()(x64)
    want_step = _one_step(reference.train(), reference, x64, y, None, device)
    with (
        backends.applied(mode.backends(device)),
        compiled.no_eager_fallback(),
        torch._inductor.config.patch(fallback_random=True),
    ):
        eager.eval(), twin.eval()
        with torch.no_grad(), mode.autocast(device):
            eager_out, fast_out = eager(x), fast(x)
        eager.train(), twin.train()
        eager_step = _one_step(eager, eager, x, y, mode, device)
        fast_step = _one_step(fast, twin, x, y, mode, device)
    compiled.check_compiled(mode)
    compiled.reset(device)
    return Agreement(
        infer_eager=relative_error(eager_out, want),
        infer_compiled=relative_error(fast_out, want),
        train_eager=relative_error(eager_step, want_step),
        train_compiled=relative_error(fast_step, want_step),
        floor=FLOOR[mode.precision],
    )


def _one_step(
    model: nn.Module,
    raw: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mode: Mode | None,
    device: torch.device,
) -> torch.Tensor:
    """One plain SGD step's update of every parameter, as one fp64 vector (``mode`` None: the
    fp64 reference, no autocast)."""
    torch.manual_seed(1)  # dropout's masks: the same draws in every run
    if mode is not None and mode.cuda_graphs:
        torch.compiler.cudagraph_mark_step_begin()
    with mode.autocast(device) if mode else torch.autocast(device.type, enabled=False):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = [p.grad.double().flatten() for p in raw.parameters() if p.grad is not None]
    return -LEARNING_RATE * torch.cat(grads)

"""K training runs as one: which configurations stack, member weights, and a per-member SGD.

A model built with ``members=K`` (:mod:`raympa.models`) holds K independent networks: member k's
slice of every state tensor is ``t.view(K, -1)[k]``. Training K members at once computes, for
each, what its single run computes (up to float rounding): the same initial weights (each
member's single model is built with its own seed and copied in), its own batches and pairs
(its own generator), its own BatchNorm statistics (grouped channels), its own optimiser state
(SGD acts elementwise, and the summed loss gives each member its own gradient), its own early
stopping and best state. This module holds the pieces that do not depend on the stage:

* :data:`MEMBER_FIELDS` / :func:`check_members`: the TrainConfig fields members may differ in;
* :func:`member_state`, :func:`load_member`, :func:`copy_member`, :func:`stack_members`,
  :func:`restack` (a model of some members of others, e.g. the running ones): members' slices;
* :func:`member_loss`: a stage loss of K members, one value each;
* :class:`MemberSGD`: torch's SGD (momentum, weight decay, no dampening, no Nesterov) with one
  learning rate per member.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from raympa.config import TrainConfig

if TYPE_CHECKING:
    import torch

# TrainConfig fields that may differ between members (numbers only: every member takes the same
# batches' shape and the same stages); every other field must be equal
MEMBER_FIELDS = ("seed", "lr", "encoder_lr", "margin", "n_bins", "jl_lambda", "rnc_temperature",
                 "epochs", "encoder_epochs", "patience", "min_delta", "pitch_shift")


def check_members(cfgs: Sequence[TrainConfig]) -> None:
    """Raise ValueError unless the configurations differ only in :data:`MEMBER_FIELDS`."""
    if not cfgs:
        raise ValueError("need at least one configuration")
    first = dataclasses.asdict(cfgs[0])
    for k, cfg in enumerate(cfgs[1:], start=1):
        other = dataclasses.asdict(cfg)
        diff = sorted(f for f in first if f not in MEMBER_FIELDS and first[f] != other[f])
        if diff:
            raise ValueError(f"member {k} differs from member 0 in {diff}; members may differ only in "
                             f"{list(MEMBER_FIELDS)}")


def _single_shape(name: str, t: "torch.Tensor", k: int) -> tuple[int, ...]:
    if name.endswith("num_batches_tracked") or t.dim() == 0:
        return ()
    return (t.shape[0] // k, *t.shape[1:])


def member_state(model: "torch.nn.Module", k: int) -> dict[str, "torch.Tensor"]:
    """Member k's state dict, as its single model (``members=1``) has it (CPU copies)."""
    n = model.members
    return {name: t.detach().reshape(n, -1)[k].reshape(_single_shape(name, t, n)).cpu().clone()
            for name, t in model.state_dict().items()}


def load_member(model: "torch.nn.Module", k: int, state: dict[str, "torch.Tensor"]) -> None:
    """Copy a single model's state dict into member k's slots."""
    import torch

    n = model.members
    own = model.state_dict()
    if set(own) != set(state):
        raise ValueError(f"state keys differ: {sorted(set(own) ^ set(state))}")
    with torch.no_grad():
        for name, t in own.items():
            t.view(n, -1)[k].copy_(state[name].reshape(-1))


def copy_member(dst: dict[str, "torch.Tensor"], dst_members: int, k: int, src: dict[str, "torch.Tensor"],
                src_members: int, s: int) -> None:
    """Member k of ``dst`` (a state of ``dst_members``) := member s of ``src`` (a state of ``src_members``)."""
    import torch

    with torch.no_grad():
        for name, t in dst.items():
            t.view(dst_members, -1)[k].copy_(src[name].reshape(src_members, -1)[s])


def restack(name: str, sources: Sequence[tuple[dict[str, "torch.Tensor"], int, int]],
            device: "torch.device") -> "torch.nn.Module":
    """A ``members=len(sources)`` model of ``name`` on ``device`` whose member j is member s of
    ``state``, a state dict of n members, where ``sources[j] = (state, n, s)``; building it does not
    draw from the global generator."""
    import torch

    from raympa.models import build_model

    with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten anyway
        model = build_model(name, members=len(sources)).to(device)
    model.load_state_dict({name: torch.stack([state[name].reshape(n, -1)[s] for state, n, s in sources]).reshape(t.shape)
                           for name, t in model.state_dict().items()})
    return model


def stack_members(name: str, states: Sequence[dict[str, "torch.Tensor"]]) -> "torch.nn.Module":
    """A ``members=len(states)`` model of ``name`` whose member k holds ``states[k]``."""
    from raympa.models import build_model

    model = build_model(name, members=len(states))
    for k, s in enumerate(states):
        load_member(model, k, s)
    return model


def member_loss(kind: str, params: Any, *, pred: Any, z: Any, y: "torch.Tensor", i: Any = None,
                j: Any = None) -> "torch.Tensor":
    """:func:`raympa.losses.stage_loss` of K members, (K,); one member takes the single-run code.

    Shapes: pred (n, K), z (n, K, 16), y (n, K), i and j (pairs, K) or (pairs,) shared.
    """
    from raympa.losses import stage_loss

    if y.shape[1] > 1:
        return stage_loss(kind, pred=pred, z=z, y=y, i=i, j=j, params=params)

    def one(t: Any) -> Any:
        return t if t is None or t.dim() == 1 else t[:, 0]

    return stage_loss(kind, pred=one(pred), z=None if z is None else z[:, 0], y=y[:, 0], i=one(i), j=one(j),
                      params=params.member(0)).view(1)


def member_lr(params: Iterable["torch.nn.Parameter"], lrs: Sequence[float], members: int) -> list["torch.Tensor"]:
    """Per-element learning rates: member k's slots of each parameter get ``lrs[k]``."""
    import torch

    out = []
    for p in params:
        lr = torch.tensor(list(lrs), dtype=p.dtype, device=p.device)  # (K,)
        out.append(lr[:, None].expand(members, p.numel() // members).reshape(p.shape))
    return out


class MemberSGD:
    """SGD with momentum and weight decay (torch's update rule) and one learning rate per member.

    With equal learning rates it is ``torch.optim.SGD``; the update of each element is
    ``g += wd * p; buf = momentum * buf + g (buf = g at the first step); p -= lr * buf``.
    """

    def __init__(self, params: Sequence["torch.nn.Parameter"], lrs: Sequence[float], *, members: int,
                 momentum: float, weight_decay: float) -> None:
        import torch

        self.params = list(params)
        self.uniform = len(set(lrs)) == 1
        self.torch_sgd = torch.optim.SGD(self.params, lr=float(lrs[0]), momentum=momentum,
                                         weight_decay=weight_decay) if self.uniform else None
        self.lrs = None if self.uniform else member_lr(self.params, lrs, members)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        if self.torch_sgd is not None:
            self.torch_sgd.step()
            return
        with torch.no_grad():
            for n, (p, lr) in enumerate(zip(self.params, self.lrs)):
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=self.weight_decay)
                buf = self.buffers[n]
                if buf is None:
                    self.buffers[n] = buf = g.clone()
                else:
                    buf.mul_(self.momentum).add_(g)
                p.addcmul_(buf, lr, value=-1.0)

    def momentum_buffers(self) -> list["torch.Tensor | None"]:
        """Each parameter's momentum buffer (None before its first step), members as its parameter's."""
        if self.torch_sgd is not None:
            return [self.torch_sgd.state.get(p, {}).get("momentum_buffer") for p in self.params]
        return list(self.buffers)

    def set_momentum_buffers(self, buffers: Sequence["torch.Tensor | None"]) -> None:
        if self.torch_sgd is not None:
            for p, b in zip(self.params, buffers):
                if b is not None:
                    self.torch_sgd.state[p]["momentum_buffer"] = b
        else:
            self.buffers = list(buffers)

    def state_dict(self) -> dict[str, Any]:
        return {"buffers": [None if b is None else b.detach().cpu().clone() for b in self.momentum_buffers()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_momentum_buffers([None if b is None else b.to(p.device) for b, p in zip(state["buffers"], self.params)])


def improves(loss: float, best: float, *, min_delta: float) -> bool:
    """A new best validation loss: below ``best`` by more than ``min_delta`` times ``|best|`` (relative, as
    ``TrainConfig.min_delta``; 0 = any decrease, the paper's rule); always, when there is no best yet."""
    return not math.isfinite(best) or loss < best - min_delta * abs(best)


@dataclass
class MemberProgress:
    """One member's progress: its generator, epochs, early stopping and history."""

    cfg: TrainConfig
    generator: "torch.Generator"
    stage_epoch: int = 0  # epochs done in the current stage
    epoch: int = 0  # epochs done in all stages
    best_val: float = math.inf
    best_stage_epoch: int = 0
    best_epoch: int = 0
    stage_best_epochs: dict[str, int] = field(default_factory=dict)
    stage_at_end: dict[str, bool] = field(default_factory=dict)  # stage -> best epoch in its last epochs
    history: list[dict[str, Any]] = field(default_factory=list)
    active: bool = True  # trains in the current stage (False: stopped early, or failed)
    error: str | None = None  # why it failed (non-finite loss)

    _SAVED = ("stage_epoch", "epoch", "best_val", "best_stage_epoch", "best_epoch", "active", "error")

    def stop(self, stage: str, *, at_end_fraction: float) -> None:
        """The member ends ``stage`` (its best epoch there flagged when in the last ``at_end_fraction``)."""
        self.active = False
        self.stage_best_epochs[stage] = self.best_epoch
        self.stage_at_end[stage] = self.best_stage_epoch > (1 - at_end_fraction) * self.stage_epoch

    def state(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self._SAVED}
        out.update(stage_best_epochs=dict(self.stage_best_epochs), stage_at_end=dict(self.stage_at_end),
                   generator=self.generator.get_state(),
                   history=[dict(h) for h in self.history])
        return out

    def load(self, state: dict[str, Any]) -> None:
        for k in self._SAVED:
            setattr(self, k, state[k])
        self.stage_best_epochs = dict(state["stage_best_epochs"])
        self.stage_at_end = dict(state["stage_at_end"])
        self.generator.set_state(state["generator"])
        self.history = [dict(h) for h in state["history"]]


def to_cpu(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj

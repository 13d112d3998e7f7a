"""Reading and overwriting a transformer's components during a forward pass (Track B).

A *component* is one layer's attention block output (the attention output projection's output,
before it is added to the residual stream), its MLP block output (the down projection's output),
or one attention head's output: the head's slice of the output projection's input. Every Track B
experiment (ablation, attribution, mediation) reads and writes components through
:class:`ComponentHooks`, built on PyTorch forward hooks; no experiment re-implements a forward
pass. Heads are found in the projection input because multi-head attention concatenates the heads
head-major (``[..., head * head_dim:(head + 1) * head_dim]`` is head ``head``), as BLOOM, GPT-2 and
Llama do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from qfair.analysis.activations import block_output_modules

# A replacement: the new value of one component given its current value (same shape).
Replacement = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, order=True)
class Component:
    """``kind`` is ``attn``, ``mlp`` or ``head``; ``head`` is set for heads only."""

    layer: int
    kind: str
    head: int = -1

    @property
    def name(self) -> str:
        return f"L{self.layer}.{self.kind}" + (f"{self.head}" if self.kind == "head" else "")


class ComponentHooks:
    """The components of ``model`` (``n_head`` heads per layer) and hooks that read or replace them."""

    def __init__(self, model: nn.Module, n_head: int) -> None:
        config = getattr(model, "config", None)
        if getattr(config, "pretraining_tp", 1) > 1 and getattr(config, "slow_but_exact", False):
            # BLOOM then multiplies slices of the projections' weights instead of calling the
            # modules: forward hooks would never fire and every intervention would silently be a no-op
            raise ValueError(f"the model's config has pretraining_tp={config.pretraining_tp} with "
                             "slow_but_exact=True: its output projections bypass the hooked modules; "
                             "load it with slow_but_exact=False for Track B")
        modules = block_output_modules(model)
        self.attn: list[nn.Module] = modules["attn"]
        self.mlp: list[nn.Module] = modules["mlp"]
        self.n_layer, self.n_head = len(self.attn), n_head
        width = self.attn[0].in_features
        if width % n_head:
            raise ValueError(f"attention width {width} is not divisible by {n_head} heads")
        self.head_dim = width // n_head

    def blocks(self) -> list[Component]:
        """Each layer's attention and MLP block, in layer order."""
        return [Component(layer, kind) for layer in range(self.n_layer) for kind in ("attn", "mlp")]

    def heads(self) -> list[Component]:
        return [Component(layer, "head", head)
                for layer in range(self.n_layer) for head in range(self.n_head)]

    def head_slice(self, head: int) -> slice:
        return slice(head * self.head_dim, (head + 1) * self.head_dim)

    @contextmanager
    def record(self, components: list[Component],
               detach: bool = True) -> Iterator[dict[Component, torch.Tensor]]:
        """Within the block, each forward pass stores every component's value in the yielded dict
        (the last pass's, ``[batch, tokens, width]``). ``detach=False`` keeps them in the autograd
        graph and retains their gradients (attribution patching)."""
        values: dict[Component, torch.Tensor] = {}
        with self._hooks(components, lambda component, value: self._store(values, component, value, detach)):
            yield values

    @contextmanager
    def replace(self, replacements: dict[Component, Replacement]) -> Iterator[None]:
        """Within the block, each forward pass replaces the listed components' values."""
        with self._hooks(list(replacements), lambda component, value: replacements[component](value)):
            yield

    @staticmethod
    def _store(values: dict, component: Component, value: torch.Tensor, detach: bool) -> torch.Tensor | None:
        if detach:
            values[component] = value.detach()
            return None
        # A head's value is a slice of the projection input; handing it back puts the slice itself
        # on the path to the loss, so its gradient exists.
        value.retain_grad()
        values[component] = value
        return value

    @contextmanager
    def _hooks(self, components: list[Component],
               visit: Callable[[Component, torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
        """One hook per touched module; ``visit`` sees each component's value and may return a new one."""
        heads: dict[int, list[Component]] = {}
        outputs: dict[tuple[str, int], Component] = {}
        for component in components:
            if component.kind == "head":
                if not 0 <= component.head < self.n_head:
                    raise ValueError(f"{component.name}: the model has {self.n_head} heads per layer")
                heads.setdefault(component.layer, []).append(component)
            elif component.kind in ("attn", "mlp"):
                outputs[(component.kind, component.layer)] = component
            else:
                raise ValueError(f"unknown component kind {component.kind!r} (attn, mlp, head)")
            if not 0 <= component.layer < self.n_layer:
                raise ValueError(f"{component.name}: the model has {self.n_layer} layers")

        def on_input(layer_heads: list[Component]):
            def hook(module: nn.Module, args: tuple):
                merged = args[0]
                pieces = {c.head: merged[..., self.head_slice(c.head)] for c in layer_heads}
                changed = {c.head: visit(c, pieces[c.head]) for c in layer_heads}
                changed = {head: value for head, value in changed.items() if value is not None}
                if not changed:
                    return None
                merged = merged.clone()
                for head, value in changed.items():
                    merged[..., self.head_slice(head)] = value
                return (merged, *args[1:])
            return hook

        def on_output(component: Component):
            def hook(module: nn.Module, args: tuple, output: torch.Tensor):
                return visit(component, output)
            return hook

        handles = [self.attn[layer].register_forward_pre_hook(on_input(group))
                   for layer, group in heads.items()]
        handles += [(self.attn if kind == "attn" else self.mlp)[layer].register_forward_hook(on_output(c))
                    for (kind, layer), c in outputs.items()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

"""``Module``: a tree of layers holding Parameters and buffers, as torch.nn.Module.

Parameters are Tensors that the optimizer updates; buffers are plain xp arrays that are
saved with the model but never trained (batch-norm running statistics, frozen batch-norm
values). ``state_dict`` names both with dotted paths (``layer1.0.conv1.weight``), the
naming torchvision uses, so weights can be compared and loaded name for name.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy

from tinymask.backend import array_module, to_backend
from tinymask.tensor import Tensor, unwrap


class Parameter(Tensor):
    """A Tensor that is a trainable weight of a Module (requires grad by default)."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               "before assigning attributes")
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._buffers.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._parameters.pop(name, None)
            self._buffers.pop(name, None)
            self._modules[name] = value
        elif name in self._buffers:
            self._buffers[name] = value  # e.g. a running statistic replaced by a new array
        elif name in self._parameters and value is None:
            self._parameters[name] = None
        else:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def __delattr__(self, name):
        for table in (self._parameters, self._modules, self._buffers):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array, persistent: bool = True) -> None:
        """A saved, untrained array (e.g. running_mean). ``None`` reserves the name."""
        self.__dict__.pop(name, None)
        self._buffers[name] = array
        if not persistent:
            self._non_persistent.add(name)

    def register_parameter(self, name: str, parameter) -> None:
        if parameter is None:
            self._parameters[name] = None
        else:
            setattr(self, name, parameter)

    def add_module(self, name: str, module) -> None:
        self._modules[name] = module

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, parameter in module._parameters.items():
                if parameter is None or id(parameter) in seen:
                    continue
                seen.add(id(parameter))
                yield (f"{module_name}.{name}" if module_name else name), parameter

    def parameters(self, recurse: bool = True):
        for _, parameter in self.named_parameters(recurse=recurse):
            yield parameter

    def named_buffers(self, prefix: str = ""):
        for module_name, module in self.named_modules(prefix):
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buffer

    def buffers(self):
        for _, buffer in self.named_buffers():
            yield buffer

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of parameter values (buffers are not parameters, as in torch)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn):
        for module in self.modules():
            fn(module)
        return self

    # ------------------------------------------------------------ modes
    def train(self, mode: bool = True):
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self) -> None:
        for parameter in self.parameters():
            parameter.grad = None

    def requires_grad_(self, flag: bool = True):
        for parameter in self.parameters():
            parameter.requires_grad = flag
        return self

    # ------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict:
        """Dotted name -> array, for every parameter and persistent buffer (shared, not copied)."""
        state = OrderedDict()
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, parameter in module._parameters.items():
                if parameter is not None:
                    state[prefix + name] = parameter.data
            for name, buffer in module._buffers.items():
                if buffer is not None and name not in module._non_persistent:
                    state[prefix + name] = buffer
        return state

    def load_state_dict(self, state, strict: bool = True):
        """Copy arrays into this module's parameters and buffers, name for name.

        Values are cast to each destination's dtype and backend. With ``strict``, missing
        and unexpected names raise; a shape mismatch always raises, naming the entry.
        Returns (missing_keys, unexpected_keys).
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing[:10]}"
                           f"{'...' if len(missing) > 10 else ''}, unexpected keys "
                           f"{unexpected[:10]}{'...' if len(unexpected) > 10 else ''}")
        for name, destination in own.items():
            if name not in state:
                continue
            value = state[name]
            value = unwrap(value)
            if tuple(numpy.shape(value)) != tuple(destination.shape):
                raise ValueError(f"load_state_dict: {name} has shape {tuple(numpy.shape(value))}, "
                                 f"the model expects {tuple(destination.shape)}")
            destination[...] = array_module(destination).asarray(value).astype(destination.dtype)
        return missing, unexpected

    def to(self, dtype=None, backend: str | None = None):
        """Convert floating-point parameters and buffers to ``dtype`` and/or move them to
        ``backend`` ("numpy" or "cupy"), in place. Integer buffers keep their dtype."""
        def convert(array):
            if backend is not None:
                array = to_backend(array, backend)
            if dtype is not None and array.dtype.kind == "f":
                array = array.astype(dtype)
            return array

        for module in self.modules():
            for parameter in module._parameters.values():
                if parameter is not None:
                    parameter.data = convert(parameter.data)
                    parameter.grad = None
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    module._buffers[name] = convert(buffer)
        return self

    def double(self):
        return self.to(numpy.float64)

    def float(self):
        return self.to(numpy.float32)

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        children = list(self.named_children())
        if not children:
            return lines[0] + ")"
        for name, child in children:
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return "\n".join(lines) + "\n)"


class ModuleList(Module):
    """A list of Modules whose parameters are registered (children "0", "1", ...)."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Modules applied in order; children are named "0", "1", ... (torch's names)."""

    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x

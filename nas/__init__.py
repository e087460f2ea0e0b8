"""nas: neural-architecture search and compound scaling for efficient CNNs.

    import nas
    spec = nas.load_spec("efficientnet-b0")
    cost = nas.count_cost(spec)          # .params, .flops (multiply-adds), .mac
    model = nas.build_model(spec)        # a plain torch.nn.Module

``load_spec`` and ``count_cost`` import no torch; ``build_model`` does.
"""

from .cost import Cost, count_cost
from .errors import SpecError, UserError
from .spec import Spec, dumps, load, loads, save
from .zoo import load_spec, zoo_names


def build_model(spec):
    """Build a spec (or a zoo name / YAML path) into a torch.nn.Module."""
    from .build import build_model as _build

    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    return _build(spec)


__all__ = ["Cost", "Spec", "SpecError", "UserError", "build_model", "count_cost", "dumps", "load", "load_spec",
           "loads", "save", "zoo_names"]
__version__ = "0.1.0"

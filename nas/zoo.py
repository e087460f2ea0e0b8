"""The reference zoo: published architectures as specs, addressable by name.

Each file in ``nas/zoo/`` holds one family as a table, in the style of tensorflow/tpu's
efficientnet_builder: ``family`` is a full spec, and each entry of ``variants`` names a member and
overrides its top-level fields (``dropout`` is the head's dropout). A family of one has a single variant.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from .errors import SpecError, did_you_mean
from .spec import Spec, from_dict, load

ZOO_DIR = Path(__file__).parent / "zoo"


@lru_cache(maxsize=1)
def _table() -> dict[str, tuple[dict, dict, str]]:
    table = {}
    for path in sorted(ZOO_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for name, overrides in data["variants"].items():
            table[name] = (data["family"], overrides or {}, path.name)
    return table


def zoo_names() -> list[str]:
    return sorted(_table())


def zoo_spec(name: str) -> Spec:
    table = _table()
    if name not in table:
        raise SpecError("name", name,
                        "a zoo name (nas.zoo_names()) or a path to a YAML spec" + did_you_mean(name, table))
    family, overrides, source = table[name]
    data = {**family, "name": name}
    head = dict(data.get("head", {}))
    for key, value in overrides.items():
        if key == "dropout":
            head["dropout"] = value
        elif key == "head":
            head.update(value)
        else:
            data[key] = value
    data["head"] = head
    return from_dict(data, source=f"zoo/{source}:{name}")


def load_spec(name_or_path) -> Spec:
    """A zoo name (``efficientnet-b0``) or a path to a YAML spec (or to a run directory's best.yaml)."""
    text = str(name_or_path)
    if text in _table():
        return zoo_spec(text)
    path = Path(text)
    if path.is_dir() and (path / "best.yaml").exists():
        path = path / "best.yaml"
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load(path)
    return zoo_spec(text)  # raises with a did-you-mean


def published(name: str) -> dict:
    """The published counts a zoo member must reproduce (see the ``published`` table of its family file)."""
    _, _, source = _table()[name]
    data = yaml.safe_load((ZOO_DIR / source).read_text())
    return (data.get("published") or {}).get(name, {})

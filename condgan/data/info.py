"""What the models know of their data: the data kinds and `DataInfo`. A leaf module: it imports no model.

`DataInfo` describes the data to the model and travels inside checkpoints, so sampling, translation and
export never need the data itself.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..errors import CheckpointError

#: the kinds of training data; a model declares the one it trains on (GANModel.data_kind)
LABELLED, PAIRED, UNPAIRED = "labelled", "paired", "unpaired"
KINDS = (LABELLED, PAIRED, UNPAIRED)


@dataclass
class DataInfo:
    kind: str  # one of KINDS: "labelled" (class-conditional), "paired" or "unpaired" (translation)
    name: str
    channels: int
    height: int
    width: int
    num_classes: int = 0
    class_names: list = field(default_factory=list)
    in_channels: int = 0  # translation: channels of the input (A) images ("channels" are the output's, B)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d, source: str = "the checkpoint") -> DataInfo:
        """Rebuild from a saved dict, refusing (with CheckpointError naming `source`) anything malformed."""
        def bad(why: str):
            return CheckpointError(f"{source} is not a condgan checkpoint (its data description {why})")
        if not isinstance(d, dict):
            raise bad(f"is a {type(d).__name__}, not a mapping")
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in ("kind", "name", "channels", "height", "width") if n not in d)
        unknown = sorted(set(d) - names)
        if missing or unknown:
            raise bad(f"lacks {', '.join(missing)}" if missing else f"has unknown keys {', '.join(unknown)}")
        if d["kind"] not in KINDS:
            raise bad(f"has kind {d['kind']!r}, not one of {', '.join(KINDS)}")
        if not isinstance(d["name"], str):
            raise bad("has a name that is not text")
        for key in ("channels", "height", "width", "num_classes", "in_channels"):
            value = d.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 or \
                    (key in ("channels", "height", "width") and value == 0):
                raise bad(f"has {key} = {value!r}")
        names_list = d.get("class_names", [])
        if not isinstance(names_list, (list, tuple)) or not all(isinstance(n, str) for n in names_list):
            raise bad("has class names that are not a list of text")
        return cls(**{**d, "class_names": list(names_list)})


@dataclass(frozen=True)
class DataOptions:
    """What the data layer reads: the dataset and how to load it. A model builds it from its config
    (GANModel.data_options), so model-specific options arrive as explicit fields, never by reading a config."""

    data: str
    data_root: str = ""
    progress: bool = True
    image_size: int = 0  # labelled data: resize to this size (0: the data's own)
    # translation data (paired and unpaired)
    direction: str = "AtoB"
    load_size: int = 286
    crop_size: int = 256
    preprocess: str = "resize_and_crop"
    flip: bool = True
    procedural_pairs: int = 400  # --data procedural-maps: training pairs to generate

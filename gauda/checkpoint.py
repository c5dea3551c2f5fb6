"""Checkpoints that load without unpickling: every tensor in safetensors, everything else as JSON.

A checkpoint is one ``.safetensors`` file holding a nested state (model, optimiser, scheduler, EMA,
step, random-generator states, configuration): tensors are stored by their dotted path, and the
structure with every non-tensor value is JSON in the file's metadata. Loading parses JSON and reads
tensors; nothing is ever executed. Files are written to a temporary sibling and renamed, so a
half-written file is never taken for a checkpoint, and the metadata carries a SHA-256 of every
tensor's bytes, so a file corrupted later (a bad disk, a broken copy) is refused rather than loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from gauda.io import atomic_path

_TENSOR = "__tensor__"
_ITEMS = "__items__"  # a dict whose keys are not all strings (e.g. optimiser state keyed by int)
_TUPLE = "__tuple__"
_ARRAY = "__ndarray__"  # small NumPy arrays (generator states), stored as JSON lists
_FORMAT = "gauda-checkpoint-1"
LAST_FILE = "last.safetensors"  # a run's whole training state, what --resume continues from


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupted or not a gauda checkpoint."""


def _split(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors by references (collected in ``tensors``) and encode non-JSON containers."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared storage
        return {_TENSOR: path}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _split(v, f"{path}.{k}", tensors) for k, v in value.items()}
        return {_ITEMS: [[k, _split(v, f"{path}.{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {_TUPLE: [_split(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_split(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return {_ARRAY: value.tolist(), "dtype": str(value.dtype)}
    raise TypeError(
        f"checkpoint entry {path}: cannot store {type(value).__name__}; expected tensors and JSON values"
    )


def _join(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if _TENSOR in value:
            return tensors[value[_TENSOR]]
        if _ITEMS in value:
            return {k: _join(v, tensors) for k, v in value[_ITEMS]}
        if _ARRAY in value:
            return np.asarray(value[_ARRAY], dtype=value["dtype"])
        if _TUPLE in value:
            return tuple(_join(v, tensors) for v in value[_TUPLE])
        return {k: _join(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, tensors) for v in value]
    return value


def tensors_digest(tensors: dict[str, torch.Tensor], structure: str) -> str:
    """SHA-256 over ``structure`` (the JSON of everything else) and the names, dtypes, shapes and bytes
    of ``tensors``, in name order."""
    digest = hashlib.sha256(structure.encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (nested dicts/lists/tuples of tensors and JSON values) atomically to ``path``."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _split(state, "state", tensors)
    text = json.dumps(structure)
    metadata = {"format": _FORMAT, "structure": text, "sha256": tensors_digest(tensors, text)}
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except (OSError, SafetensorError) as error:  # a full disk, a quota, a folder gone read-only
        reason = getattr(error, "strerror", None) or str(error)
        raise CheckpointError(
            f"{path}: the checkpoint could not be written ({reason}); the previous one, if any, is intact"
        ) from error
    return Path(path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; anything else is refused with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        # one open for metadata and tensors: a checkpoint renamed over this one meanwhile (a run saving
        # while another process reads) cannot pair one file's metadata with the other's tensors
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        if _is_pickle(path):
            raise CheckpointError(
                f"{path}: a PyTorch pickle (torch.save), which gauda never loads (unpickling runs code); "
                "expected a safetensors checkpoint: pass the run folder gauda wrote, or convert weights "
                "you trust with safetensors.torch.save_file"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint ({error}); it may be truncated or corrupted"
        ) from None
    if metadata.get("format") != _FORMAT:
        raise CheckpointError(
            f"{path}: safetensors file without gauda's metadata; expected a gauda checkpoint"
        )
    # older files have none; what "sha256" covers must never change (a new scheme needs a new key),
    # or intact files of the old scheme would be refused as corrupted
    digest = metadata.get("sha256")
    if digest is not None and tensors_digest(tensors, metadata.get("structure", "")) != digest:
        raise CheckpointError(f"{path}: its contents do not match the checksum it was saved with; corrupted")
    if torch.device(device).type != "cpu":
        tensors = {name: tensor.to(device) for name, tensor in tensors.items()}
    return _join(json.loads(metadata["structure"]), tensors)


def _is_pickle(path: Path) -> bool:
    """Whether ``path`` starts as ``torch.save`` writes: a zip archive, or a bare pickle (protocol 2+)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


# The stage whose training state a run's last checkpoint holds, and the command that continues it.
STAGE_COMMANDS = {
    "image autoencoder": "gauda train autoencoder --modality image",
    "mask autoencoder": "gauda train autoencoder --modality mask",
    "diffusion": "gauda train diffusion",
    "segmentation": "gauda train segmenter",
}


def check_stage(path: Path, stage: str) -> None:
    """Refuse to resume ``stage`` (a key of ``STAGE_COMMANDS``) from the checkpoint ``path`` of another
    stage; reads the checkpoint's metadata only, so a run checks it before it writes anything.

    Checkpoints record their ``stage``; older ones are told apart by their parts (an autoencoder's
    modality then shows only when its weights are loaded).
    """
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            state = json.loads((handle.metadata() or {})["structure"])
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError):
        load_checkpoint(path)  # raises the error that says what is wrong with the file
        raise
    found = state.get("stage") if isinstance(state, dict) else None
    if found is None:  # written before checkpoints recorded their stage
        legacy = {"discriminator": "autoencoder", "ema": "diffusion", "hooks": "segmentation"}
        found = next((name for key, name in legacy.items() if key in state), "unknown")
        if found == "autoencoder" and stage.endswith("autoencoder"):
            return
    if found != stage:
        command = STAGE_COMMANDS.get(found)
        hint = f"; continue it with `{command} --resume --out {path.parent}`" if command else ""
        article = "an" if found[0] in "aeiou" else "a"
        raise CheckpointError(
            f"--resume {path.parent}: holds {article} {found} run ({path.name}), not a {stage} run{hint}"
        )


def load_weights(module: torch.nn.Module, weights: dict[str, Any], path: Path, what: str) -> None:
    """``module.load_state_dict(weights)``, its mismatch a ``CheckpointError`` naming ``path``."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as error:
        first = str(error).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0] if first else ""
        raise CheckpointError(
            f"{path}: its {what} does not fit this configuration ({detail[:200]}); expected a checkpoint "
            "of the same stage, modality and sizes"
        ) from None


def check_finite_loss(value: float, where: str, last: Path, option: str) -> None:
    """Stop a training loop at a NaN or infinite loss (``FloatingPointError``) with what to do about it:
    ``where`` names the stage and step, ``option`` the learning rate to lower, ``last`` the checkpoint
    that is still good (named only if one was written)."""
    if math.isfinite(value):
        return
    kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written before it"
    raise FloatingPointError(f"{where}: loss {value}; lower {option} or check the data ({kept})")


def rng_state() -> dict[str, Any]:
    """The state of every random generator a training loop touches (Python, NumPy, torch CPU and CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved (after a round trip through a checkpoint)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())  # a checkpoint loaded onto a GPU brings them there
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

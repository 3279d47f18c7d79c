"""Live trainings, remembered: a training the course has run once on this machine is not run again (README: "Live
trainings are remembered"). A training function decorated with :func:`remembered` keeps what it produced in the
course cache, and a later call with the *same* inputs loads it instead:

- the same function, the same course code (every module of ``course_utils``) and torch version;
- the same arguments: configurations, data tensors, and the weights each model starts from;
- the same random-number state (torch, NumPy, Python) when it is called, the same threads and device.

What it keeps: the weights every model argument ends with (trained in place), the models and history it
returned, and the random-number state it left behind, which is restored, so that every later cell runs
exactly as after a real training. A hit prints one line saying so. ``COURSE_RETRAIN=1`` trains again
anyway. Everything is safetensors and JSON, written into a scratch folder and renamed into place.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["remembered", "course_code_digest"]

_SKIP = {"progress", "desc"}  # arguments that change what is shown, not what is learnt


@functools.lru_cache(maxsize=1)
def course_code_digest() -> str:
    """sha256 of every module of the course package: a changed line anywhere retrains."""
    digest = hashlib.sha256(torch.__version__.encode())
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def _modules(value, path: str):
    """(path, module) for every nn.Module in an argument: the argument itself, or the fields of a dataclass."""
    if isinstance(value, nn.Module):
        yield path, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _modules(getattr(value, field.name), f"{path}.{field.name}")


def _feed(digest, value) -> bool:
    """Add ``value`` to ``digest``; False when it is something the key cannot capture (a callback)."""
    if isinstance(value, nn.Module):
        for name, tensor in value.state_dict().items():
            digest.update(name.encode())
            _feed(digest, tensor)
        digest.update(type(value).__name__.encode())
    elif isinstance(value, torch.Tensor):
        digest.update(f"{value.dtype}{tuple(value.shape)}{value.device.type}".encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray):
        digest.update(value.tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(type(value).__name__.encode())
        return all(_feed(digest, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, (list, tuple)):
        return all(_feed(digest, v) for v in value)
    elif isinstance(value, dict):
        return all(_feed(digest, k) and _feed(digest, v) for k, v in sorted(value.items(), key=str))
    elif value is None or isinstance(value, (bool, int, float, str)):
        digest.update(repr(value).encode())
    elif hasattr(value, "get_vocab"):  # a tokenizer: its vocabulary and length
        digest.update(json.dumps(value.get_vocab(), sort_keys=True).encode() + repr(value.model_max_length).encode())
    elif hasattr(value, "config") and hasattr(value, "step"):  # a diffusers scheduler: its configuration is it
        public = {k: v for k, v in dict(value.config).items() if not k.startswith("_")}  # "_use_default_values" is
        digest.update(json.dumps(public, sort_keys=True, default=str).encode())         # a set's order: it varies
    elif callable(value):
        return False
    else:
        digest.update(repr(value).encode())
    return True


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _key(fn, arguments: dict) -> str | None:
    digest = hashlib.sha256(f"{fn.__module__}.{fn.__qualname__}|{course_code_digest()}".encode())
    digest.update(f"threads {torch.get_num_threads()}".encode())
    state = _rng_state()
    _feed(digest, state["torch"])
    digest.update(repr(state["numpy"][1].tolist()).encode() + repr(state["numpy"][2:]).encode())
    digest.update(repr(state["python"]).encode())
    for name, value in arguments.items():
        if name in _SKIP:
            continue
        digest.update(name.encode())
        if not _feed(digest, value):
            return None
    return digest.hexdigest()[:24]


def _save(folder: Path, modules: dict, result, seconds_note: str) -> None:
    from safetensors.torch import save_file

    returned = result if isinstance(result, tuple) else (result,)
    tensors, record = {}, {"returned": [], "note": seconds_note, "modes": {}}
    for path, module in modules.items():
        tensors |= {f"arg/{path}/{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        record["modes"][path] = module.training  # a training leaves its model in eval mode: a replay must too
    for i, value in enumerate(returned):
        if isinstance(value, nn.Module):
            source = next((p for p, m in modules.items() if type(m) is type(value)), None)
            if source is None:
                raise TypeError(f"cannot remember a returned {type(value).__name__} with no argument of its class")
            tensors |= {f"out/{i}/{k}": v.detach().cpu().contiguous() for k, v in value.state_dict().items()}
            record["returned"].append({"module": source, "training": value.training})
        elif dataclasses.is_dataclass(value):
            record["returned"].append({"dataclass": f"{type(value).__module__}:{type(value).__qualname__}",
                                       "fields": dataclasses.asdict(value)})
        else:
            raise TypeError(f"cannot remember a returned {type(value).__name__}")
    state = _rng_state()
    tensors["rng/torch"] = state["torch"]
    tensors["rng/numpy"] = torch.from_numpy(state["numpy"][1].astype(np.int64))
    record["rng"] = {"numpy": [state["numpy"][0], *[float(x) if isinstance(x, float) else int(x) for x in state["numpy"][2:]]],
                     "python": [state["python"][0], list(state["python"][1]), state["python"][2]]}
    record["tuple"] = isinstance(result, tuple)
    save_file(tensors, str(folder / "state.safetensors"))
    (folder / "record.json").write_text(json.dumps(record, indent=1) + "\n")


def _load(folder: Path, modules: dict):
    import copy
    import importlib

    from safetensors.torch import load_file

    tensors = load_file(str(folder / "state.safetensors"))
    record = json.loads((folder / "record.json").read_text())
    for path, module in modules.items():  # load_state_dict copies onto the module's own device
        module.load_state_dict({k.removeprefix(f"arg/{path}/"): v for k, v in tensors.items()
                                if k.startswith(f"arg/{path}/")})
        module.train(record["modes"][path])
    returned = []
    for i, entry in enumerate(record["returned"]):
        if "module" in entry:
            module = copy.deepcopy(modules[entry["module"]])
            module.load_state_dict({k.removeprefix(f"out/{i}/"): v for k, v in tensors.items() if k.startswith(f"out/{i}/")})
            returned.append(module.train(entry["training"]))
        else:
            where, name = entry["dataclass"].split(":")
            returned.append(getattr(importlib.import_module(where), name)(**entry["fields"]))
    torch.set_rng_state(tensors["rng/torch"])
    numpy_state = record["rng"]["numpy"]
    np.random.set_state((numpy_state[0], tensors["rng/numpy"].numpy().astype(np.uint32), *numpy_state[1:]))
    python_state = record["rng"]["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    return tuple(returned) if record["tuple"] else returned[0], record["note"]


def remembered(fn):
    """Decorate a training function that trains its model arguments in place and returns a history
    dataclass (or a tuple of models and histories): see the module's docstring."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from course_utils.paths import course_cache_dir, exclusive

        if os.environ.get("COURSE_RETRAIN", "").lower() in {"1", "true", "yes", "on"}:
            return fn(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        key = _key(fn, bound.arguments)
        if key is None:
            return fn(*args, **kwargs)
        modules = {p: m for name, value in bound.arguments.items() for p, m in _modules(value, name)}
        folder = course_cache_dir() / "trained" / f"{fn.__name__}-{key}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(folder):  # the same training running elsewhere: wait for it
            if (folder / "record.json").is_file():
                try:
                    result, note = _load(folder, modules)
                except Exception as error:  # noqa: BLE001 - a damaged record: train again
                    print(f"[course] {fn.__name__}: the remembered training in {folder} could not be read "
                          f"({type(error).__name__}); training again", flush=True)
                else:
                    print(f"[course] {fn.__name__}: this training ran before on this machine ({note}); its result "
                          f"is loaded from the course cache (COURSE_RETRAIN=1 trains again)", flush=True)
                    return result
            result = fn(*args, **kwargs)
            history = next((r for r in (result if isinstance(result, tuple) else (result,)) if hasattr(r, "seconds")),
                           None)
            note = f"{history.seconds:.0f} s" if history is not None else "trained"
            scratch = Path(tempfile.mkdtemp(prefix=".remembering-", dir=folder.parent))
            try:
                _save(scratch, modules, result, note)
                shutil.rmtree(folder, ignore_errors=True)
                scratch.rename(folder)
            except (OSError, TypeError) as error:  # a full disk or an unusual result: only the next run pays
                print(f"[course] {fn.__name__}: could not remember this training ({error})", flush=True)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return result

    return wrapper

"""User code named by a config as `pkg.module:Name`: one loader for every plug-in point.

Latency predictors (`latency.predictor`) and child evaluators (`evaluator.name`) are loaded the
same way, with the same one-line errors naming the config key: user code runs only where a config
names it.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Iterable


def load_plugin(path: str, *, key: str, kwargs: dict[str, Any], optional: Iterable[str],
                fits: Callable[[Any], bool], contract: str) -> Any:
    """Import `pkg.module:Name` and instantiate it with `kwargs` (or use it as is if it is not a
    class or function). Keys in `optional` are passed only when the signature accepts them (or
    **kwargs). `fits(obj)` checks the result; `contract` says what it needs when it does not.
    Every failure is one ValueError starting with `key`."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{key}: {path!r} is not a dotted path 'pkg.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{key}: cannot import {module_name!r} for {path!r} ({exc}; "
                         "is it on PYTHONPATH?)") from None
    except Exception as exc:  # noqa: BLE001 - user code failing at import: one line naming it
        raise ValueError(f"{key}: importing {module_name!r} for {path!r} failed: "
                         f"{type(exc).__name__}: {first_line(exc)}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{key}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        kwargs = dict(kwargs)
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            params = {}
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for name in optional:
            if name not in params and not var_kw:
                kwargs.pop(name, None)
        try:
            obj = obj(**kwargs)
        except TypeError as exc:
            raise ValueError(f"{key}: {path!r} rejected its kwargs: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{key}: {path!r}: {first_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - user code: one line naming it, not a traceback
            raise ValueError(f"{key}: {path!r} raised {type(exc).__name__}: "
                             f"{first_line(exc)}") from None
    if not fits(obj):
        raise ValueError(f"{key}: {path!r} does not satisfy {contract}")
    return obj


def first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""


__all__ = ["first_line", "load_plugin"]

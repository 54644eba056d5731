"""Click options generated from pydantic fields, so config models stay the one source
of truth for names, types, defaults and help text.

Here, in the bottom layer, because both the `evalctl` CLI (serve's settings) and `trainers.cli`
use it, and a trainer importing the CLI package would put the CLI below the trainers."""

from __future__ import annotations

import types
import typing
from pathlib import Path

import click
from pydantic import BaseModel

_SCALARS = {int: int, float: float, str: str, Path: click.Path(path_type=Path)}


def _click_type(annotation):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation is bool:
        return bool
    if typing.get_origin(annotation) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)])
    return _SCALARS.get(annotation)


def field_options(model: type[BaseModel], names: list[str]):
    """Decorator adding `--field-name` for each named scalar field; unset options stay None
    so the model's own default (or a config file) applies."""

    def decorate(fn):
        for name in reversed(names):
            f = model.model_fields[name]
            ctype = _click_type(f.annotation)
            if ctype is None:
                raise TypeError(f"{model.__name__}.{name} has no CLI type")
            flag = "--" + name.replace("_", "-")
            default = f.default if f.default is not None and not callable(f.default) and not f.is_required() else None
            help_ = f"{f.description} [default: {default}]" if default is not None else f.description
            if f.is_required():
                help_ = f"{f.description} [required]"
            if ctype is bool:
                decl = f"{flag}/--no-{name.replace('_', '-')}"
                fn = click.option(decl, name, default=None, help=help_)(fn)
            else:
                fn = click.option(flag, name, type=ctype, default=None, help=help_)(fn)
        return fn

    return decorate


def pick(values: dict, names: list[str]) -> dict:
    return {k: values[k] for k in names if values.get(k) is not None}

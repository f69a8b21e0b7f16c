"""Typed, validated view of ``params.yaml``.

Every stage reads its settings through :func:`load_params`, so a typo, a wrong type or an
impossible value fails before any work starts, with the field's path and what is allowed.
The shared sections are defined in :mod:`justask.settings`; ``families.<name>`` is validated by
the schema that family declares (:mod:`justask.families`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from justask.errors import ParamsError
from justask.families import families as registered
from justask.settings import ScaleConfig, Strict, TrackingConfig

__all__ = ["Params", "ParamsError", "load_params"]


class Params(Strict):
    seed: Annotated[int, Field(ge=0)] = 0
    profile: str = "default"
    tracking: TrackingConfig = TrackingConfig()
    scale: ScaleConfig = ScaleConfig()
    # One section per experiment family to run, each validated by its family's own schema; dvc.yaml
    # runs the five stages of every family listed here, in this order.
    families: dict[str, Any]

    @field_validator("families", mode="before")
    @classmethod
    def known_families(cls, v: Any) -> Any:
        if not isinstance(v, dict) or not v:
            raise ValueError(f"name at least one experiment family to run: {', '.join(registered())}")
        unknown = [k for k in v if k not in registered()]
        if unknown:
            raise ValueError(f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; "
                             f"available: {', '.join(registered())} (packages in src/justask/families/)")
        return v

    @field_validator("families", mode="after")
    @classmethod
    def each_by_its_schema(cls, v: dict[str, Any]) -> dict[str, BaseModel]:
        """Each section by its family's schema; errors keep their full path (families.<name>.<field>)."""
        out, errors = {}, []
        for name, section in v.items():
            try:
                out[name] = registered()[name].config.model_validate(section)
            except ValidationError as e:
                errors += [{**d, "loc": (name, *d["loc"])} for d in e.errors()]
        if errors:
            raise ValidationError.from_exception_data("families", errors)
        return out

    def family(self, name: str):
        """The validated section of family ``name`` (its own schema's type)."""
        return self.families[name]


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: {err.error_count()} invalid setting(s):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        got_txt = "" if isinstance(got, dict) else f" (found {got!r})"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling against params.yaml's documented keys"
        lines.append(f"  - {loc}: {msg}{got_txt}")
    lines.append("Fix these entries in the file and run again.")
    return "\n".join(lines)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml, raising :class:`ParamsError` with every problem listed."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ParamsError(f"{path}: not found; run from the repository root or pass --params") from e
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of settings at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise ParamsError(_format_errors(path, e)) from None

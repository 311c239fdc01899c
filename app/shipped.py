"""Data files shipped inside the package (importlib.resources): the compiled contract artifacts and the
default trading policy, so an installed wheel runs outside the checkout.

``app/_shipped/contracts`` and ``app/_shipped/policy`` are symlinks to ``contracts/artifacts`` and
``policy`` in the repository (the files keep their home there); a built wheel holds copies of the files
under the same names, so a checkout, ``pip install -e .`` and an installed wheel read the same paths.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped(*parts: str) -> Path:
    """The shipped file or directory at ``app/_shipped/<parts...>``, resolved (a checkout's symlinks
    point back into ``contracts/`` and ``policy/``, so messages name the file a developer edits)."""
    # The package is always installed as a directory (never zipped), so the Traversable is a real path.
    return Path(str(files("app").joinpath("_shipped", *parts))).resolve()


def contract_artifacts() -> Path:
    return shipped("contracts")


def default_policy() -> Path:
    return shipped("policy", "default.toml")

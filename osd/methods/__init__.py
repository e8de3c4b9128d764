"""THE API as data: every method of the catalogue, declared once."""

from ..registry import Registry
from . import net, rpc, vol

ALL = rpc.ALL + net.ALL + vol.ALL


def registry() -> Registry:
    """A fresh Registry of every method osd serves."""
    return Registry(ALL)

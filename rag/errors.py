"""Errors the user can act on: one line each, shown by the CLI as `Error: ...` (never a traceback)."""

from __future__ import annotations


class RagError(RuntimeError):
    """Base class: the message is a single line meant for the user."""


class CollectionNotFound(RagError):
    pass


class BadCollectionName(RagError):
    pass


class StoreUnavailable(RagError):
    """The Chroma server cannot be reached, or the persistent store cannot be opened."""


class EmbedderError(RagError):
    """The embedding model cannot be loaded or the endpoint refused the request."""


class LoadError(RagError):
    """A file or record that cannot be turned into a document."""

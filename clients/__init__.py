"""The bottom layer: the one shared async client for the evalctl endpoint (or any
OpenAI-compatible server), and the few dependency-free helpers every other package may use
(`jsontext`: JSON objects in model replies; `cli_options`: click options from pydantic fields).

Nothing here imports another evalctl package (tests/test_layers.py checks it), so evaluators,
rag, trainers and the CLI can all depend on it. The client itself (openai SDK + aiohttp, over a
second to import) loads on first use, so importing a helper costs only the helper.
"""

__all__ = ["AdminError", "EvalClient", "Generation"]


def __getattr__(name: str):
    if name in __all__:
        from . import client
        return getattr(client, name)
    raise AttributeError(f"module 'clients' has no attribute {name!r}")

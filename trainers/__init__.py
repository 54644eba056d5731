"""Trainers that get their generations from the evalctl endpoint and push adapters back into it."""

import warnings

# TRL checks the installed vLLM against the range its own vLLM client was tested with, on import;
# trainers here never use that client (rollouts come through the endpoint), so the warning is noise.
warnings.filterwarnings("ignore", message="TRL currently supports vLLM versions")

"""Imported once by the server that forks the tests' `evalkit` commands (tests/cli_processes.py):
the libraries a command would otherwise import again each time. Importing runs nothing: no
model loads, no thread pool starts, so forking afterwards is safe."""

import nltk  # noqa: F401 - pulls in scikit-learn
import numpy  # noqa: F401
import torch  # noqa: F401
import transformers
from transformers.models.llama import modeling_llama  # noqa: F401 - the embedded model's class

import evalkit.backends.hf  # noqa: F401
import evalkit.cli  # noqa: F401
import evalkit.runner  # noqa: F401

# transformers resolves these lazily, importing their modules on first access.
transformers.AutoModelForCausalLM, transformers.AutoTokenizer, transformers.AutoConfig  # noqa: B018

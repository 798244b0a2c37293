"""A stand-in for vLLM's offline API, for evalkit's tests where vLLM cannot be installed.

It plays vLLM 0.8.0 or 0.33.0 (``FAKE_VLLM_VERSION``, version.py) with their real signatures
and checks for what evalkit uses: ``LLM(model, **engine_args)`` (entrypoints/llm.py,
engine/arg_utils.py), ``SamplingParams`` (sampling_params.py), ``LLM.generate`` returning one
RequestOutput per prompt in prompt order (outputs.py), and ``llm.llm_engine.model_config
.max_model_len``. Each module cites the lines of vLLM's source it follows.

Every engine start and request is logged (``FAKE_VLLM_LOG``, _record.py).
"""

from vllm.entrypoints.llm import LLM
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams
from vllm.version import __version__

__all__ = ["LLM", "CompletionOutput", "RequestOutput", "SamplingParams", "__version__"]

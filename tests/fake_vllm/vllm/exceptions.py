"""vLLM's request validation error as 0.33.0 defines it (exceptions.py:10-28): an Exception that
is not a ValueError. 0.8.0 has no such class and raises ValueError instead (version.RELEASES)."""


class VLLMError(Exception):
    pass


class VLLMClientError(VLLMError):
    pass


class VLLMValidationError(VLLMClientError):
    pass

"""Fine-tuning with diversity-preserving losses (GEM, TOFU) next to CE, for end-to-end comparisons.

The package is also the public function ``evalkit.train(model=None, data=..., output_dir=..., **options)``
(evalkit.train.trainer.fine_tune): `evalkit.train` must name both this package, whose modules
users import (``evalkit.train.losses``), and that function, so the package is callable.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from evalkit.train.trainer import fine_tune


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return fine_tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

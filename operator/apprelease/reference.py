"""Stable public path for image references: `apprelease.reference.parse(text) -> Reference`.

The implementation lives in `apprelease.core.reference`; this module re-exports it (README, "Development").
"""

from apprelease.core.reference import *  # noqa: F403
from apprelease.core.reference import __all__ as __all__

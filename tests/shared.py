"""Where the project's shared ground truth lives: ``../shared`` beside the repository (captures from a real
Asterisk 22 and legacy PBX samples), as in every checkout and CI run; ``$CALLCENTER_SHARED`` overrides it."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_CANDIDATES = [Path(p) for p in (os.environ.get("CALLCENTER_SHARED", ""),) if p] + [_REPO.parent / "shared",
                                                                                    Path("/work/shared")]
SHARED = next((p for p in _CANDIDATES if (p / "asterisk").is_dir()), _REPO.parent / "shared")
ASTERISK_CAPTURES = SHARED / "asterisk"
SAMPLES = SHARED / "samples"

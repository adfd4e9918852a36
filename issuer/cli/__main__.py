"""``python -m issuer.cli``: what the tests, the benchmarks and a checkout without the script run."""

from __future__ import annotations

import sys

from issuer.cli.app import main

sys.exit(main())

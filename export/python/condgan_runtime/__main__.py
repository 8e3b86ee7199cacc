"""python -m condgan_runtime ... is condgan-run ..."""
import sys

from .cli import main

sys.exit(main())

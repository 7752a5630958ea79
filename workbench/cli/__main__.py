"""`python -m workbench.cli ...` = `workbench ...` (the local multi-worker launcher starts workers so)."""

import sys

from workbench.cli import main

sys.exit(main())

"""``python -m sim_models.cli ...``: the `sim` command."""
import sys

from sim_models.cli.parser import main

sys.exit(main())

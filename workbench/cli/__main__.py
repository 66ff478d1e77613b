"""``python -m workbench.cli``: the same as the ``deeplog-workbench`` command."""

import sys

from workbench.cli import main

if __name__ == "__main__":  # importing the module (a package walk) must not run the command
    sys.exit(main())

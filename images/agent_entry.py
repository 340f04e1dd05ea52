"""Entry script of the PyInstaller bundle.

It starts the agent the way the `otel-host-agent` console script does, with
the return value of main() as the exit status.
"""

import sys

from otel_collector.__main__ import main

if __name__ == "__main__":
    sys.exit(main())

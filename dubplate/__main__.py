import sys

from dubplate.plugin.cli import main

sys.exit(main())

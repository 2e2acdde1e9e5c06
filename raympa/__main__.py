import sys

from raympa.cli import main

sys.exit(main())

import sys

from upscale_cli.main import main

sys.exit(main())

"""`python -m local ...`: the local stack's command line."""

from local.cli import main

raise SystemExit(main())

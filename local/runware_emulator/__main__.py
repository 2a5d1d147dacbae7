"""``python -m local.runware_emulator --port 8787 [--latency-seconds 0.5 ...]``."""

from local.runware_emulator.cli import main

raise SystemExit(main())

"""``python -m sampan.cli``: the ``sampan`` command."""

from sampan.cli.main import main

raise SystemExit(main())

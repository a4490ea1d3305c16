"""``python -m vigie``: same as the ``vigie`` command."""

from vigie.cli import main

raise SystemExit(main())

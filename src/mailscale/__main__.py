"""``python -m mailscale`` runs the command-line interface."""

from mailscale.cli import main

raise SystemExit(main())

"""``python -m nestgraph``: the command line (see ``nestgraph.cli``)."""

from __future__ import annotations

from nestgraph.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

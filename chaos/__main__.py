"""Entry point of `python -m chaos` (what `make chaos` runs)."""

from chaos.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

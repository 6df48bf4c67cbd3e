"""Run every benchmark module of this package that has a `main()`, in name order."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path


def main() -> None:
    package = Path(__file__).parent
    for module in sorted(pkgutil.iter_modules([str(package)]), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"{__package__ or 'bench'}.{module.name}")
        run = getattr(loaded, "main", None)
        if callable(run):
            print(f"== bench.{module.name} ==", flush=True)
            run([])
            print()


if __name__ == "__main__":
    main()

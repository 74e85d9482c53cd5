"""Run every benchmark (``python -m bench``) or some (``python -m bench smdr fastagi``).

``bench_real_*`` need the real Asterisk (and sipp): ``python -m bench --real`` runs them all (``make bench-real``);
the plain run leaves them out, so ``make bench`` stays on the simulator.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback

import bench


def discover(real: bool = False) -> list[str]:
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(bench.__path__)
                   if m.name.startswith("bench_"))
    return [n for n in names if n.startswith("real_") == real]


def main(argv: list[str]) -> int:
    if argv == ["--real"]:
        names = discover(real=True)
    else:
        names = argv or discover()
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"== bench {name} ==", flush=True)
        started = time.perf_counter()
        try:
            module.main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"== bench {name}: {time.perf_counter() - started:.1f} s ==\n", flush=True)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

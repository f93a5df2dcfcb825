"""python -m lowbit ARGS...: runs the lowbit CLI bundled in this package with ARGS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence


def cli_path() -> Path:
    """The lowbit executable installed with the package (lowbit/bin/lowbit)."""
    return Path(__file__).absolute().parent / "bin" / ("lowbit.exe" if os.name == "nt" else "lowbit")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    exe = cli_path()
    if not exe.is_file():
        print(f"lowbit: the bundled CLI is missing ({exe}); reinstall the package", file=sys.stderr)
        return 2
    # `lowbit eval --plot` runs lowbit/plot.py with a Python that has matplotlib: this one, the
    # package's own, unless the user named another.
    env = dict(os.environ)
    env.setdefault("LOWBIT_PYTHON", sys.executable)
    if os.name == "posix" and argv is None:
        # Become the CLI: its exit code, signals (Ctrl-C) and stdio are the user's directly.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(str(exe), ["lowbit", *args], env)
    return subprocess.call([str(exe), *args], env=env)


if __name__ == "__main__":
    sys.exit(main())

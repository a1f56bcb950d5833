"""Run the README's quickstart with this interpreter, outside the source tree; compare its output.

Used by .ci/run against the installed wheel (tests/test_readme.py does the same
against the source tree): the first ```python block must print the first ```yaml block.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def main(readme: str) -> int:
    text = Path(readme).read_text(encoding="utf-8")
    quickstart = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    documented = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)[0]
    with tempfile.TemporaryDirectory() as directory:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        proc = subprocess.run(
            [sys.executable, "-c", quickstart],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    if proc.stdout.strip() != documented.strip():
        print("the quickstart printed something else than the README shows:", file=sys.stderr)
        print(proc.stdout, file=sys.stderr)
        return 1
    print("README quickstart: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))

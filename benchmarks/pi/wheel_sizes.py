#!/usr/bin/env python3
"""Sum download size and unpacked (installed, without .pyc) size of the wheels in DIRs.

    python3 wheel_sizes.py DIR [DIR ...]
"""
import sys
import zipfile
from pathlib import Path

MB = 1024 * 1024
for d in sys.argv[1:]:
    rows = []
    for w in sorted(Path(d).glob("*.whl")):
        with zipfile.ZipFile(w) as z:
            rows.append((w.name.split("-")[0], w.stat().st_size,
                         sum(i.file_size for i in z.infolist())))
    rows.sort(key=lambda r: -r[2])
    print(f"== {d}: {len(rows)} wheels, download {sum(r[1] for r in rows)/MB:.1f} MiB, "
          f"unpacked {sum(r[2] for r in rows)/MB:.1f} MiB")
    for name, dl, un in rows[:8]:
        print(f"   {name:28s} {dl/MB:8.1f} MiB download {un/MB:8.1f} MiB unpacked")

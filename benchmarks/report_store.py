"""Turn pytest-benchmark JSON from test_bench_store.py into a markdown table (MB/s)."""

import json
import platform
import sys
from datetime import date

data = json.load(open(sys.argv[1]))
rows = []
for b in data["benchmarks"]:
    x = b["extra_info"]
    med = b["stats"]["median"]
    rows.append((x["kind"], x["chain"], x["file_bytes"], x["dense_fp16_mb"] / med, med))
print(f"# Label store write/read throughput — {date.today()}\n")
print(
    f"Machine: {data['machine_info'].get('cpu', {}).get('brand_raw', platform.processor())}, "
    f"{data['machine_info'].get('cpu', {}).get('count', '?')} cores, Python {platform.python_version()}\n"
)
print(
    "Command: `python -m pytest benchmarks/test_bench_store.py --benchmark-enable --benchmark-json out/bench-store.json"
    " && python benchmarks/report_store.py out/bench-store.json`\n"
)
print("| op | label chain | file bytes | MB/s (dense-fp16 equivalent) | median s |")
print("|---|---|---:|---:|---:|")
for r in sorted(rows):
    print(f"| {r[0]} | {r[1]} | {r[2]:,} | {r[3]:.0f} | {r[4]:.4f} |")

"""scripts/bench.py runs end to end (times are not asserted: speed lives in `make bench`)."""
import json

from conftest import run_cli


def test_bench_ops_writes_rows_and_table(tmp_path):
    out = tmp_path / "bench" / "ops"
    proc = run_cli("scripts/bench.py", "ops", "--repeats", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "bench" / "ops.json").read_text())
    rows = report["results"]["ops"]
    assert [r[0].split(":")[0].split(",")[0] for r in rows] == [
        "prior", "target", "detection per-class", "detection best-class",
        "detection per-class", "detection best-class"]
    assert all(r[1] > 0 and r[2] > 0 for r in rows)
    assert "ours / peer" in (tmp_path / "bench" / "ops.md").read_text()
    assert "machine:" in proc.stdout

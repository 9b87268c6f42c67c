"""bench/gpu.py runs end to end on CPU with the tiny model (its CI smoke test)."""

from __future__ import annotations

import json

from bench import gpu


def test_gpu_bench_smoke_on_cpu_prints_json_with_every_run(capsys) -> None:
    assert gpu.main(["--per-user", "1", "--users", "1", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"] == "cpu (tiny model)"
    (entry,) = report["results"]
    assert (entry["model"], entry["mode"]) == ("tiny", "eager")
    assert [run["users"] for run in entry["runs"]] == [1, 3]
    three = entry["runs"][1]
    assert three["requests"] == 3  # every user's request answered
    assert set(three["per_prompt"]) == set(gpu.PROMPTS)
    for figures in three["per_prompt"].values():
        assert figures["latency_median_s"] > 0
        assert figures["new_tokens_median"] >= 1
    assert "tiny/eager: throughput 3 users / 1 user" in report["summary"]


def test_summary_compares_equal_work_only() -> None:
    results = [
        {
            "model": "448",
            "mode": mode,
            "runs": [
                {"users": 1, "requests_per_s": 2.0, "wall_s": wall},
                {"users": 8, "requests_per_s": 10.0, "wall_s": wall / 2},
            ],
        }
        for mode, wall in (("eager", 6.0), ("compiled", 2.0))
    ] + [{"model": "224", "mode": "compiled", "skipped": "time budget"}]
    assert gpu.summarize(results) == {
        "448/eager: throughput 8 users / 1 user": 5.0,
        "448/compiled: throughput 8 users / 1 user": 5.0,
        "448/1 users: eager wall / compiled wall": 3.0,
        "448/8 users: eager wall / compiled wall": 3.0,
    }

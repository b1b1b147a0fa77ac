"""Plain builders shared by unit tests (no I/O)."""


def minimal_pipeline(stages: int = 2) -> dict:
    return {
        "name": "p",
        "family": "asr",
        "base_model": "openai/whisper-tiny",
        "defaults": {"evals": [{"name": "t", "role": "primary", "data": {"kind": "csv", "path": "t.csv"}}]},
        "stages": [{"name": f"s{i}", "output_name": f"m{i}", "train": {"kind": "csv", "path": f"{i}.csv"}}
                   for i in range(stages)],
    }

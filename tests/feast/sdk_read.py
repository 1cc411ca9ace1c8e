"""Reads every entity of types_repo with Feast's Python SDK and prints the
answers as one JSON document (bytes as hex, times as epoch seconds), so two
stores can be compared through Feast's own reader.

  python sdk_read.py REPO_DIR
"""
import datetime
import json
import sys
from pathlib import Path

from feast import FeatureStore


def plain(value):
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def main():
    repo = Path(sys.argv[1])
    store = FeatureStore(repo_path=str(repo))
    requests = json.loads((repo / "requests.json").read_text())["entities"]
    answers = {}
    for view, keys in requests.items():
        if not keys:
            continue
        rows = [dict(zip(keys, values)) for values in zip(*keys.values())]
        features = [f"{view}:{f.name}" for f in store.get_feature_view(view).features]
        result = store.get_online_features(features=features, entity_rows=rows).to_dict()
        answers[view] = {k: [plain(v) for v in vs] for k, vs in result.items()}
    service = store.get_feature_service("driver_overview")
    rows = [{"driver_id": d} for d in requests["scalars"]["driver_id"]]
    result = store.get_online_features(features=service, entity_rows=rows).to_dict()
    answers["driver_overview"] = {k: [plain(v) for v in vs] for k, vs in result.items()}
    print(json.dumps(answers, sort_keys=True))


if __name__ == "__main__":
    main()

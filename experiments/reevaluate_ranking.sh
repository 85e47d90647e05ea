#!/usr/bin/env bash
# Re-evaluate the six saved models of experiments/ranking_ml1m.sh (multirun/ranking_ml1m/*/model)
# with the current code (task=evaluate), and print which ranking figures moved against the
# results.json their training runs wrote. Usage, from the repository's root after
# ranking_ml1m.sh: bash experiments/reevaluate_ranking.sh
for run in autoencoder svd popularity paper_autoencoder puresvd20 puresvd50; do
  out=/tmp/reeval/$run
  rm -rf $out; mkdir -p /tmp/reeval
  if ! python run.py task=evaluate checkpoint.path=multirun/ranking_ml1m/$run/model \
      paths.data_dir=../shared/data train.progress=false hydra.run.dir=$out > $out.log 2>&1; then
    echo "$run: evaluation failed:"; tail -3 $out.log; continue
  fi
  python - "$run" "$out" <<'PY'
import json, sys
run, out = sys.argv[1], sys.argv[2]
old = json.load(open(f"multirun/ranking_ml1m/{run}/results.json"))
new = json.load(open(f"{out}/results.json"))
keys = [k for k in new if "@" in k or k in ("test_rmse", "ranking_users")]
def same(a, b):  # NaN (no user to rank) equals NaN
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)
diff = {k: (old.get(k), new[k]) for k in keys if not same(old.get(k), new[k])}
print(run, "unchanged" if not diff else {k: (round(a, 6) if isinstance(a, float) else a, round(b, 6) if isinstance(b, float) else b) for k, (a, b) in diff.items()})
PY
done

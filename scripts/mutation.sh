#!/usr/bin/env bash
# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml): plants small bugs one at
# a time and runs the tests that cover each; a mutant no test catches "survives".
#   ./scripts/mutation.sh            run (resumes where a stopped run left off), then report
#   ./scripts/mutation.sh --report   report only
# Slow (hours on 2 cores: a mutant of the LLM loop or of generation runs most of the suite), so CI
# does not run it. Needs the venv that ./scripts/test.sh makes; installs mutmut into it.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install -q -e '.[mutation]'
if [ "${1:-}" != "--report" ]; then
  .venv/bin/mutmut run --max-children "${MUTMUT_CHILDREN:-1}" || true  # exits non-zero when mutants survive
fi
.venv/bin/mutmut export-cicd-stats >/dev/null
.venv/bin/python - <<'PY'
import json
s = json.load(open("mutants/mutmut-cicd-stats.json"))
killed, survived = s["killed"], s["survived"]
caught = killed + s.get("timeout", 0) + s.get("segfault", 0)  # a hang or crash is caught too
tested = caught + survived + s.get("suspicious", 0)
print(f"mutants: {s['total']}  killed: {killed}  survived: {survived}  timeout: {s.get('timeout', 0)}  "
      f"crashed: {s.get('segfault', 0)}  no tests: {s.get('no_tests', 0)}  skipped: {s.get('skipped', 0)}")
if tested:
    print(f"score (caught / tested): {caught / tested:.1%}")
PY
echo "survivors (show one with: .venv/bin/mutmut show NAME):"
.venv/bin/mutmut results

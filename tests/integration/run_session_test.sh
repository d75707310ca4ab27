#!/usr/bin/env bash
# ringserve-run session on the built-in tiny model: appended turns and forks report cached
# tokens, an unknown session is an error line, and the script runs to its end. A field of the
# wrong JSON type stops the script with a message naming it (it used to abort the process).
set -euo pipefail
bin=$1
script=$(dirname "$0")/session_script.jsonl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin/ringserve-model" make-tiny --out "$tmp/tiny.gguf" >/dev/null
"$bin/ringserve-run" session --model "$tmp/tiny.gguf" --script "$script" >"$tmp/out.jsonl"
cat "$tmp/out.jsonl"
/usr/bin/python3 - "$tmp/out.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 7, lines
first, second, forks, f1, f2, missing, closed = lines
assert first["usage"]["cached_tokens"] == 0 and first["usage"]["completion_tokens"] == 20
assert second["usage"]["cached_tokens"] == first["history_tokens"] - 1, second
assert forks["forks"] == ["s1#f1", "s1#f2"], forks
for f in (f1, f2):
    assert f["usage"]["cached_tokens"] == second["history_tokens"] - 1, f
assert "NOT_FOUND" in missing["error"], missing
assert closed == {"closed": "s1", "num_tokens": second["history_tokens"]}, closed
print("ok")
PY
for line in '{"session": "s", "text": "x", "max_tokens": "5"}' '{"fork": 1}' \
            '{"session": "s", "text": "x", "stop": "y"}'; do
  echo "$line" >"$tmp/bad.jsonl"
  status=0
  "$bin/ringserve-run" session --model "$tmp/tiny.gguf" --script "$tmp/bad.jsonl" \
    >/dev/null 2>"$tmp/err" || status=$?
  grep -q 'bad.jsonl:1: "' "$tmp/err" && [[ $status == 2 ]] || {
    echo "malformed line $line: exit $status, $(cat "$tmp/err")" >&2
    exit 1
  }
done
echo "malformed lines: ok"

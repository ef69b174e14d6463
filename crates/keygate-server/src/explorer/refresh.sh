#!/usr/bin/env bash
# Copies Swagger UI's files into swagger-ui/ from the npm package that package-lock.json pins
# (exact version and integrity, checked by npm). keygate compiles them in; nothing is fetched at
# build time. To move to another version: set it in package.json, run
# `npm install --package-lock-only --ignore-scripts` here, then this script, then
# `cargo test -p keygate --test api_explorer`, which checks that the files are the package's and
# that explorer.css still replaces every data: image of swagger-ui.css.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$work/"
# --ignore-scripts: the package's one dependency, @scarf/scarf, would report the install.
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
mkdir -p "$here/swagger-ui"
for f in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE; do
    cp "$work/node_modules/swagger-ui-dist/$f" "$here/swagger-ui/$f"
done

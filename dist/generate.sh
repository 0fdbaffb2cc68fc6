#!/usr/bin/env bash
# Writes the man pages and shell completions of clacksd, clacks and clacks-pgbridge, generated
# from their command-line definitions, into DIR (default target/dist):
#   DIR/man/<program>.1, DIR/completions/<program>.{bash,zsh,fish,elvish}
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/dist}
cargo build --release --locked -q -p clacksd -p clacks-cli -p clacks-pgbridge
mkdir -p "$out/man" "$out/completions"
for prog in clacksd clacks clacks-pgbridge; do
  if [ "$prog" = clacks ]; then gen=(target/release/clacks generate); else gen=("target/release/$prog" --generate); fi
  "${gen[@]}" man > "$out/man/$prog.1"
  for shell in bash zsh fish elvish; do
    "${gen[@]}" "$shell" > "$out/completions/$prog.$shell"
  done
done
echo "man pages and completions in $out"

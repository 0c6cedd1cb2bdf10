#!/bin/sh
# Seed corpus for the fuzz targets, from the project's fixtures: every
# fixture pool as a pool, and for `command` each pool behind a header of
# four bytes naming each of the 14 commands the target knows. Written to
# fuzz/corpus/, or to the directory given (tests/fuzz.rs replays them).
set -eu
fixtures=$(cd "$(dirname "$0")/../fixtures" && pwd)
out=${1:-$(dirname "$0")/corpus}
mkdir -p "$out/pool" "$out/command"
for f in "$fixtures"/*/.kvp_pool_*; do
    name=$(echo "${f#"$fixtures"/}" | sed 's|/|-|g; s|\.||g')
    cp "$f" "$out/pool/$name"
    op=0
    while [ $op -lt 14 ]; do
        printf "\\$(printf %03o $op)\\001\\002\\003" | cat - "$f" > "$out/command/$name-$op"
        op=$((op + 1))
    done
done
echo "seeded: $(ls "$out/pool" | wc -l) pools, $(ls "$out/command" | wc -l) commands"

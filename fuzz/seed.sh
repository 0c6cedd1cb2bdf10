#!/bin/sh
# Seed corpus for the fuzz targets, from the project's fixtures: every
# fixture pool as a pool, and for `command` each pool behind a header of
# four bytes naming each of the 14 commands the target knows.
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/pool corpus/command
for f in ../fixtures/*/.kvp_pool_*; do
    name=$(echo "$f" | sed 's|^\.\./fixtures/||; s|/|-|g; s|\.||g')
    cp "$f" "corpus/pool/$name"
    op=0
    while [ $op -lt 14 ]; do
        printf "\\$(printf %03o $op)\\001\\002\\003" | cat - "$f" > "corpus/command/$name-$op"
        op=$((op + 1))
    done
done
echo "seeded: $(ls corpus/pool | wc -l) pools, $(ls corpus/command | wc -l) commands"

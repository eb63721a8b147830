#!/bin/sh
# check_launch_grids.sh SOURCE_DIR: every CUDA kernel launch (<<<) in
# kernels/*.cu and kernels/*.cuh must take its grid from
#   eff_grid1(...) / eff_grid3(...)  checked against this device's limits
#                                    (kernels/cuda_common.cuh), or
#   eff_blocks(...)                  capped below every device's grid.x
#                                    (static_assert in kernels/launch_geom.h),
# written right after the <<<, or carry the marker "launch-grid-ok: <why>"
# on the launch line or the line above it (constant grids, aug_grid).
# Any other launch fails with its file:line (issue 15: grid dimensions are
# checked in one place). Fewer than MIN launches found fails too, so a moved
# directory or a broken glob cannot pass empty.
set -eu
src=$1
min=20
awk -v min="$min" '
    FNR == 1 { prev = "" }
    /<<</ {
        n++
        rest = substr($0, index($0, "<<<") + 3)
        sub(/^[ \t]+/, "", rest)
        if (rest ~ /^(eff_grid1|eff_grid3|eff_blocks)\(/) checked++
        else if ($0 ~ /launch-grid-ok:/ || prev ~ /launch-grid-ok:/) marked++
        else {
            printf "%s:%d: grid not from eff_grid1/eff_grid3/eff_blocks and no launch-grid-ok marker:\n    %s\n",
                   FILENAME, FNR, $0
            bad++
        }
    }
    { prev = $0 }
    END {
        printf "check_launch_grids: %d launches: %d eff_grid1/eff_grid3/eff_blocks, %d marked, %d unchecked\n",
               n, checked, marked, bad
        if (n < min) { printf "FAIL: fewer than %d launches found: wrong source directory?\n", min; exit 1 }
        if (bad) {
            print "FAIL: build the grid with eff_grid1/eff_grid3 (kernels/cuda_common.cuh), or say why it is bounded"
            print "      in a /* launch-grid-ok: ... */ comment on the launch line or the line above"
            exit 1
        }
    }' "$src"/kernels/*.cu "$src"/kernels/*.cuh
echo "check_launch_grids: passed"

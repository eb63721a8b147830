#!/bin/sh
# check_no_division.sh NVCC SOURCE_DIR WORK_DIR [-I...]: compile the depthwise,
# BN, SE and elementwise kernels to PTX (sm_90) and require that no kernel
# has an integer div/rem instruction (issue 15) -- except the per-thread
# chunk bounds of the weight-gradient and column-reduction kernels, at most
# 4 each, which run once per thread, not per element or tap. Each kernel
# family must be present, so the check cannot pass on an empty PTX.
set -eu
nvcc=$1 src=$2 work=$3
shift 3
mkdir -p "$work"
for f in dwconv batchnorm se elementwise; do
    "$nvcc" -std=c++17 -arch=sm_90 -ptx -I"$src/kernels" -I"$src/src" "$@" "$src/kernels/$f.cu" -o "$work/$f.ptx"
done
cat "$work"/*.ptx | awk '
    /\.entry / { name = $2; entries[name] = 0; next }
    /^[ \t]*(div|rem)\.[su](16|32|64)/ { entries[name]++ }
    END {
        bad = 0
        n = split("dw_forward_k dw_backward_input_k dw_wgrad_partial_k DwStatsTh dw_stats_sum_k bn_apply bn_eval bn_back_apply BnPoolF bn_pool_finalize se_scale se_back_apply se_excite se_excite_backward se_param_grads add_k scale_k", fam, " ")
        for (i = 1; i <= n; i++) {
            found = 0
            for (e in entries) if (index(e, fam[i])) found++
            printf "%-22s %3d kernels\n", fam[i], found
            if (!found) { print "MISSING: no kernel named " fam[i]; bad = 1 }
        }
        for (e in entries) {
            per_thread = index(e, "dw_wgrad_partial_k") || index(e, "eff_colreduce_partial")
            if (entries[e] > (per_thread ? 4 : 0)) { print "DIVISION: " entries[e] " div/rem in " e; bad = 1 }
        }
        exit bad
    }'
echo "check_no_division: passed"

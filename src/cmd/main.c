/* main.c: the effnet command-line entry point; dispatches subcommands. */
#include "common.h"
#include "context.h"
#include "ops/gemm.h"
#include "ops/ops.h"

#include <mpi.h>
#include <stdio.h>
#include <string.h>

int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_comm(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_ckpt(int argc, char **argv);

/* effnet --version: the version, the commit, and what was compiled in. */
static int version(void) {
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(mpi, &len) != MPI_SUCCESS) snprintf(mpi, sizeof mpi, "unknown");
    mpi[strcspn(mpi, "\n,")] = '\0'; /* the first line, up to the first comma */
    printf("effnet %s (commit %s)\n", EFFNET_VERSION, EFFNET_GIT_COMMIT);
    char gemm[64];
    eff_sgemm_provider(gemm, (int)sizeof gemm);
    printf("backends: cpu (BLAS %s, GEMM %s, depthwise %s, OpenMP)", EFFNET_BLAS, gemm,
           dwconv_isa_name(dwconv_isa_best()));
#ifdef EFFNET_HAVE_CUDA
    printf(", cuda (CUDA %s, cuDNN %s; NCCL %s)", EFFNET_CUDA_VERSION, EFFNET_CUDNN_VERSION, EFFNET_NCCL_VERSION);
#endif
    printf("\nMPI: %s\nHDF5: %s\n", mpi, EFFNET_HDF5_VERSION);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: effnet <command> [options]\n\n"
            "EfficientNet B0-B7 training for CIFAR-10 (CPU backend: BLAS + OpenMP).\n\n"
            "commands:\n"
            "  train   train on CIFAR-10 shards (run under mpirun/srun for data parallelism)\n"
            "  eval    accuracy and loss of a checkpoint on the test split\n"
            "  info    model summary: parameters, convs, blocks, FLOPs, per-stage table\n"
            "  bench   time full training steps on synthetic data (img/s, peak RSS)\n"
            "  bench-comm  all-reduce benchmark over MPI (or NCCL): time, algbw, busbw, #wrong per size\n"
            "  ckpt    inspect checkpoints: ckpt info|stats FILE, ckpt diff A B (--json)\n\n"
            "Run 'effnet <command> --help' for the options of a command; 'effnet --version' for the build.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) return version();
    if (!strcmp(cmd, "info")) return cmd_info(argc, argv);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc, argv);
    if (!strcmp(cmd, "bench-comm")) return cmd_bench_comm(argc, argv);
    if (!strcmp(cmd, "train")) return cmd_train(argc, argv);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc, argv);
    if (!strcmp(cmd, "ckpt")) return cmd_ckpt(argc, argv);
    fprintf(stderr, "effnet: error: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}

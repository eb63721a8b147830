/* cmd_train.c: `effnet train` -- MPI data-parallel training on the CPU or
 * the CUDA backend (train.backend). The steps are those of src/train/
 * (trainer.h): setup (with the resume), then per global batch one step
 * (micro-batches, gradient reduction, loss scaler, optimizer) and its log
 * line, an evaluation and checkpoints at each epoch's end, the signal exit,
 * and the timing summary. Exit codes: 0 done; 1 error (any rank: MPI_Abort
 * ends all); 3 non-finite loss or gradient; 4 a collective stalled past
 * comm.timeout_s; 75 checkpointed after SIGTERM/SIGUSR1/SIGINT (requeue). */
#define _POSIX_C_SOURCE 200809L
#include "common.h"
#include "config.h"
#include "train/trainer.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

static void mpi_abort_hook(int code) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code);
}

/* --check: the resolved config is valid (every key, the model and its variant): print it on rank 0. */
static void check_only(const EffTrainer *T, const char *config) {
    EffModelSpec spec;
    eff_model_spec_config(T->cfg.model, T->cfg.variant, T->cfg.stochastic_depth, &spec); /* exits naming a bad key */
    eff_model_spec_set_stem_stride(&spec, T->cfg.stem_stride);
    if (T->rank != 0) return;
    char *ini = eff_config_to_ini(&T->cfg);
    printf("; effnet train --check: %s is valid; the resolved config:\n%s", config ? config : "(no --config)", ini);
    eff_free(ini);
}

static int parse_args(EffTrainer *T, int argc, char **argv, const char **resume) {
    const char *config = NULL;
    char err[1400];
    int check = 0;
    eff_config_defaults(&T->cfg);
    for (int a = 2; a < argc; a++)
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            if (T->rank == 0) {
                printf("usage: effnet train --config FILE|NAME [--set section.key=value ...] [--resume [FILE]] [--check]\n\n"
                       "  --resume alone continues from OUTPUT_DIR/last.h5.\n"
                       "  --check validates the config (file and --set) and prints it resolved, without training.\n"
                       "exit codes: 0 done, 1 error, 3 non-finite loss/gradient, 75 checkpointed on a signal (requeue)\n\n");
                eff_config_help(stdout);
            }
            return 1;
        }
    for (int a = 2; a < argc; a++) {
        if (!strcmp(argv[a], "--config")) {
            EFF_CHECK(a + 1 < argc, "--config needs a file");
            config = argv[++a];
        } else if (!strcmp(argv[a], "--set")) {
            a++; /* applied after the file, below */
            EFF_CHECK(a < argc, "--set needs section.key=value");
            T->set_batch |= !strncmp(argv[a], "train.batch=", 12);
            T->set_accum |= !strncmp(argv[a], "train.accum=", 12);
        } else if (!strcmp(argv[a], "--check")) {
            check = 1;
        } else if (!strcmp(argv[a], "--resume")) {
            *resume = (a + 1 < argc && strncmp(argv[a + 1], "--", 2) != 0) ? argv[++a] : "";
        } else {
            EFF_FATAL("effnet train: unknown option '%s' (see --help)", argv[a]);
        }
    }
    if (config) {
        char found[1200], searched[4096];
        EFF_CHECK(eff_config_find(config, found, sizeof found, searched, sizeof searched),
                  "config '%s' not found (tried %s)\nHINT: give a path, or a name from 'ls $EFFNET_HOME/share/effnet/"
                  "configs'", config, searched);
        EFF_CHECK(eff_config_load_file(&T->cfg, found, err, sizeof err), "%s", err);
    }
    for (int a = 2; a < argc; a++)
        if (!strcmp(argv[a], "--set")) EFF_CHECK(eff_config_set(&T->cfg, argv[++a], err, sizeof err), "%s", err);
        else if (!strcmp(argv[a], "--config")) a++;
    EFF_CHECK(eff_config_validate(&T->cfg, err, sizeof err), "config: %s", err);
    if (check) check_only(T, config);
    return check;
}

/* The loader's next batch; the wait opens the step's span in the trace. */
static const eff_batch *next_batch(EffTrainer *T) {
    eff_trace_begin(T->trace, "step");
    eff_trace_begin(T->trace, "data wait");
    const double t0 = eff_time();
    const eff_batch *b = eff_loader_next(T->tl);
    const double dt = eff_time() - t0;
    if (T->steps_run > 0) T->times.data += dt; /* the first step is not timed */
    T->win_phase[EFF_PH_DATA] += dt;
    eff_trace_end(T->trace, "data wait");
    return b;
}

/* One step of the global batch b; returns 0 when the run must stop. */
static int train_one(EffTrainer *T, const eff_batch *b) {
    const int64_t epoch = T->st.epoch;
    EFF_CHECK(b->epoch == epoch - 1 && b->step == T->st.step_in_epoch, "loader out of step: got (%lld, %lld), want "
              "(%lld, %lld)", (long long)b->epoch, (long long)b->step, (long long)epoch - 1,
              (long long)T->st.step_in_epoch);
    const EffStepResult r = eff_trainer_step(T, b);
    eff_trace_end(T->trace, "step");
    if (r.nonfinite) {
        eff_trainer_log(T, "effnet: error: non-finite %s at epoch %lld, global step %lld (loss %g, grad norm^2 %g); "
                        "stopping without writing a checkpoint, last.h5/best.h5 keep the last good weights\n",
                        isfinite(r.loss) ? "gradient" : "loss", (long long)epoch, (long long)T->st.global_step + 1,
                        r.loss, r.gnorm2);
        T->exit_code = EFF_EXIT_NONFINITE;
        return 0;
    }
    eff_trainer_log_step(T, &r);
    if (r.stop_signal) {
        eff_trainer_log(T, "signal received: checkpointing at epoch %lld, global step %lld, then exiting %d (requeue)\n",
                        (long long)epoch, (long long)T->st.global_step, EFF_EXIT_REQUEUE);
        eff_trace_begin(T->trace, "signal: checkpoint");
        eff_trainer_checkpoint(T, "last.h5");
        eff_trace_end(T->trace, "signal: checkpoint");
        T->exit_code = EFF_EXIT_REQUEUE;
        return 0;
    }
    return 1;
}

/* Open MPI 4.1's libnbc runs an in-place MPI_Iallreduce -- every all-reduce
 * of the training loop, watched by comm/comm_mpi.c -- as a binomial tree
 * (reduce to one rank, then broadcast) unless told otherwise: 2.9x the ring's
 * time for B0's gradient on 4 nodes at 1 Gbit/s (docs/scaling.md, "Across
 * nodes"). Ask for its ring through the MPI tool interface, after MPI_Init,
 * unless the user chose an algorithm (then the variable is not 0, "ignore").
 * Not by setenv before MPI_Init: Open MPI itself calls putenv while its
 * progress and PMIx threads read the environment, and a setenv of ours makes
 * that environment a heap block that putenv reallocates (issue 23). Other MPI
 * libraries have no such variable: nothing changes. Returns what it did. */
static const char *prefer_ring_iallreduce(void) {
    int provided = 0, idx = -1, count = 0, value = 0;
    if (MPI_T_init_thread(MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return "MPI_T unavailable: MPI's default";
    const char *what = "not Open MPI's libnbc: MPI's default";
    if (MPI_T_cvar_get_index("coll_libnbc_iallreduce_algorithm", &idx) == MPI_SUCCESS) {
        MPI_T_cvar_handle h;
        MPI_CHECK(MPI_T_cvar_handle_alloc(idx, NULL, &h, &count));
        MPI_CHECK(MPI_T_cvar_read(h, &value));
        what = "libnbc algorithm chosen by the user (coll_libnbc_iallreduce_algorithm)";
        if (value == 0) {
            value = 1;
            MPI_CHECK(MPI_T_cvar_write(h, &value));
            MPI_CHECK(MPI_T_cvar_read(h, &value));
            EFF_CHECK(value == 1, "setting coll_libnbc_iallreduce_algorithm = 1 through MPI_T did not hold (reads %d)",
                      value);
            what = "libnbc ring (coll_libnbc_iallreduce_algorithm = 1, set by effnet through MPI_T)";
        }
        MPI_CHECK(MPI_T_cvar_handle_free(&h));
    }
    MPI_CHECK(MPI_T_finalize());
    return what;
}

/* --check: validate and print the config without MPI (a login node, a script; nothing is trained). */
static int check_without_mpi(int argc, char **argv) {
    EffTrainer T;
    memset(&T, 0, sizeof T);
    const char *resume = NULL;
    return parse_args(&T, argc, argv, &resume) ? 0 : 1; /* parse_args returns 1 after the check (or --help) */
}

int cmd_train(int argc, char **argv) {
    for (int a = 2; a < argc; a++)
        if (!strcmp(argv[a], "--check")) return check_without_mpi(argc, argv);
    /* before MPI_Init and before any other thread: train/signals.h */
    EffSignals *signals = eff_signals_start();
    int provided = 0;
    MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
    eff_set_abort_hook(mpi_abort_hook);
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    /* the only thread that calls MPI is main (the loaders, libgomp and the signal thread never do) */
    EFF_CHECK(provided >= MPI_THREAD_FUNNELED, "this MPI library provides thread level %d, below MPI_THREAD_FUNNELED "
              "(%d), which effnet's loader and OpenMP threads need\nHINT: use an MPI built with thread support (Open "
              "MPI: the default)", provided, MPI_THREAD_FUNNELED);
    const char *iallreduce = prefer_ring_iallreduce();
    EffTrainer T;
    memset(&T, 0, sizeof T);
    T.signals = signals;
    T.iallreduce = iallreduce;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &T.rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &T.world));
    const char *resume = NULL;
    if (parse_args(&T, argc, argv, &resume)) {
        MPI_Finalize();
        eff_signals_stop(signals);
        return 0;
    }
    eff_trainer_setup(&T, resume);
    while (!T.finished && T.st.epoch <= T.cfg.epochs) {
        const int64_t epoch = T.st.epoch;
        while (T.st.step_in_epoch < T.steps_per_epoch) {
            if (T.cfg.max_steps > 0 && T.st.global_step >= T.cfg.max_steps) { T.finished = 1; break; }
            const eff_batch *b = next_batch(&T);
            const int go_on = train_one(&T, b);
            eff_trace_flush(T.trace);
            if (!go_on) { T.finished = 1; break; }
        }
        if (T.exit_code) break;
        eff_trainer_end_epoch(&T, epoch, T.st.step_in_epoch == T.steps_per_epoch);
    }
    eff_trainer_finish(&T);
    MPI_CHECK(MPI_Finalize());
    eff_signals_stop(signals);
    return T.exit_code;
}

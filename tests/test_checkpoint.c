/* test_checkpoint.c: HDF5 checkpoints (src/checkpoint.c).
 *
 *   test_checkpoint                 the suite below, in a scratch directory
 *   test_checkpoint write-random CKPT SEED INPUT.h5 LOGITS.h5
 *   test_checkpoint eval CKPT INPUT.h5 LOGITS.h5
 *
 * The two modes serve tests/test_checkpoint_pytorch.py: write-random saves a
 * B0 with random weights and writes its eval-mode logits on INPUT.h5's /input
 * ([N][R][R][3], NHWC) to LOGITS.h5 /logits; eval peeks and loads CKPT (e.g.
 * one written by PyTorch) and writes the same, plus /num_batches_tracked.
 *
 * The suite: a bit-exact round trip of every buffer and all training state;
 * the file's layout as seen through plain HDF5; overwriting; failed saves
 * (file size limit mid-write, missing directory, NaN weights) leave a
 * pre-existing PATH byte-identical and no temporary file; and load errors
 * (missing file, not HDF5, another model, other classes, truncated, flipped
 * bytes in a tensor, a reshaped tensor, an unexpected tensor, a newer schema,
 * no optimizer state) exit non-zero with a message that names the file. The
 * failing calls run in fork()ed children, whose stderr is checked. */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"
#include "common.h"
#include "h5io.h"
#include "model.h"
#include "sha256.h"
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------------- */

static void fill_view_random(EffRng *r, const EffView *v, float *dst, int positive) {
    for (size_t i = 0; i < v->numel; i++) {
        float x = (float)(0.5 * eff_rng_normal(r));
        dst[i] = positive ? fabsf(x) + 0.01f : x;
    }
}

/* Random values in every view of params, BN buffers and both moments (padding
 * stays zero), a few special floats, and large counters. */
static void randomise_model(EffModel *m, uint64_t seed) {
    EffRng r;
    eff_rng_seed(&r, seed);
    size_t np = m->ptab.total, nb = m->btab.total;
    float *p = eff_calloc(np, sizeof(float), "p"), *a = eff_calloc(np, sizeof(float), "m"),
          *v = eff_calloc(np, sizeof(float), "v"), *b = eff_calloc(nb, sizeof(float), "b");
    for (int i = 0; i < m->ptab.count; i++) {
        const EffView *w = &m->ptab.views[i];
        fill_view_random(&r, w, p + w->offset, 0);
        fill_view_random(&r, w, a + w->offset, 0);
        fill_view_random(&r, w, v + w->offset, 1);
    }
    for (int i = 0; i < m->btab.count; i++) {
        const EffView *w = &m->btab.views[i];
        fill_view_random(&r, w, b + w->offset, strstr(w->name, "running_var") != NULL);
    }
    p[0] = -0.0f;      /* sign of zero */
    p[1] = 1e-40f;     /* subnormal */
    p[2] = FLT_MAX;
    p[3] = -FLT_MIN;
    m->be->upload(m->be, m->param, p, np * sizeof(float));
    m->be->upload(m->be, m->adam_m, a, np * sizeof(float));
    m->be->upload(m->be, m->adam_v, v, np * sizeof(float));
    m->be->upload(m->be, m->bufs, b, nb * sizeof(float));
    m->bn_batches = 5000000123LL; /* > 2^32 */
    m->adam_t = 123457;
    eff_free(p);
    eff_free(a);
    eff_free(v);
    eff_free(b);
}

/* memcmp of one whole backend buffer (padding included) of two models. */
static int same_buffer(const EffModel *x, const float *bx, const EffModel *y, const float *by, size_t n) {
    float *hx = eff_malloc(n * sizeof(float), "cmp"), *hy = eff_malloc(n * sizeof(float), "cmp");
    x->be->download(x->be, hx, bx, n * sizeof(float));
    y->be->download(y->be, hy, by, n * sizeof(float));
    int same = memcmp(hx, hy, n * sizeof(float)) == 0;
    eff_free(hx);
    eff_free(hy);
    return same;
}

static int all_zero(const EffModel *m, const float *b, size_t n) {
    float *h = eff_malloc(n * sizeof(float), "cmp");
    m->be->download(m->be, h, b, n * sizeof(float));
    int z = 1;
    for (size_t i = 0; i < n && z; i++) z = h[i] == 0.0f;
    eff_free(h);
    return z;
}

static EffModel *new_model(const char *name, int classes) {
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec(name, &spec), "unknown model %s", name);
    EffModel *m = eff_calloc(1, sizeof *m, "model");
    eff_model_create(m, eff_backend_cpu(), &spec, classes);
    return m;
}

static void free_model(EffModel *m) {
    eff_model_destroy(m);
    eff_free(m);
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = eff_fopen(path, "rb");
    EFF_CHECK(fseek(f, 0, SEEK_END) == 0, "seek %s", path);
    long n = ftell(f);
    EFF_CHECK(n >= 0 && fseek(f, 0, SEEK_SET) == 0, "tell %s", path);
    char *buf = eff_malloc((size_t)n + 1, "file contents");
    EFF_CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n, "read %s", path);
    buf[n] = '\0';
    eff_fclose(f, path);
    *len = (size_t)n;
    return buf;
}

static void write_all(const char *path, const void *data, size_t n) {
    FILE *f = eff_fopen(path, "wb");
    EFF_CHECK(fwrite(data, 1, n, f) == n, "write %s", path);
    eff_fclose(f, path);
}

/* A file as effnet wrote it before the checksum header (and as h5py writes
 * one): the same HDF5 file without the user block. Edits through HDF5 below
 * are made on such copies, so the layout checks behind the checksum are the
 * ones tested; a sealed file edited the same way is refused as damaged. */
static void strip_checksum(const char *path) {
    size_t n;
    char *buf = read_all(path, &n);
    EFF_CHECK(n > EFF_CKPT_USERBLOCK && !memcmp(buf, EFF_CKPT_MAGIC, strlen(EFF_CKPT_MAGIC)), "%s has no checksum header",
              path);
    write_all(path, buf + EFF_CKPT_USERBLOCK, n - EFF_CKPT_USERBLOCK);
    eff_free(buf);
}

/* Number of "*.tmp.*" entries left in dir. */
static int count_tmp(const char *dir) {
    DIR *d = opendir(dir);
    EFF_CHECK(d, "opendir %s: %s", dir, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static int same_file(const char *path, const char *expect, size_t expect_len) {
    size_t n;
    char *now = read_all(path, &n);
    int same = n == expect_len && memcmp(now, expect, n) == 0;
    eff_free(now);
    return same;
}

/* ---- running a call that must fail, in a child ---------------------------- */

typedef struct Job {
    int kind; /* JOB_LOAD, JOB_SAVE */
    const char *path;
    EffModel *m;
    int load_optimizer;
    long fsize_limit; /* bytes, 0: none */
    const EffTrainState *st; /* for JOB_SAVE */
} Job;
enum { JOB_LOAD, JOB_SAVE };

static void run_job(const Job *j) {
    if (j->fsize_limit > 0) {
        signal(SIGXFSZ, SIG_IGN); /* writes past the limit fail with EFBIG, like a full disk */
        struct rlimit rl = {(rlim_t)j->fsize_limit, (rlim_t)j->fsize_limit};
        EFF_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0, "setrlimit: %s", strerror(errno));
    }
    if (j->kind == JOB_LOAD) {
        EffTrainState st;
        char *cfg = NULL;
        eff_checkpoint_load(j->path, j->m, j->load_optimizer, &st, &cfg);
    } else {
        const char *keys[] = {"git_commit"}, *vals[] = {"test"};
        eff_checkpoint_save(j->path, j->m, j->st, "adam", 32, "[run]\n", keys, vals, 1);
    }
}

/* Fork, run the job with stderr in errfile, and check that it exits non-zero
 * (not by a signal) with a message containing every string in must[]. */
static void expect_failure(TestState *ts, const char *label, const Job *j, const char *errfile, const char *const *must,
                           int nmust) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    EFF_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 2) < 0) _exit(99);
        run_job(j);
        fprintf(stderr, "(the call returned normally)\n");
        _exit(0);
    }
    int status = 0;
    EFF_CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
    size_t n;
    char *msg = read_all(errfile, &n);
    int exited = WIFEXITED(status), code = exited ? WEXITSTATUS(status) : -1;
    T_CHECK(ts, exited && code != 0 && code != 99, "%s: expected a non-zero exit, got %s %d", label,
            exited ? "exit code" : "signal", exited ? code : WTERMSIG(status));
    for (int i = 0; i < nmust; i++)
        T_CHECK(ts, strstr(msg, must[i]) != NULL, "%s: message lacks '%s':\n%s", label, must[i], msg);
    char *nl = strchr(msg, '\n');
    if (nl) *nl = '\0';
    printf("  %-34s exit %d: %.220s\n", label, code, msg);
    eff_free(msg);
}

/* ---- the suite ---------------------------------------------------------------- */

static void check_layout(TestState *ts, const char *path, const EffModel *m) {
    hid_t f = eff_h5_open_read(path);
    char *s = eff_h5_attr_read_str(f, path, "/", "format", 0);
    T_CHECK(ts, strcmp(s, EFF_CKPT_FORMAT) == 0, "format attribute '%s'", s);
    eff_free(s);
    int64_t v = 0;
    eff_h5_attr_read(f, path, "/", "schema_version", H5T_NATIVE_INT64, &v);
    T_CHECK(ts, v == EFF_CKPT_SCHEMA_VERSION, "schema_version %lld", (long long)v);
    s = eff_h5_attr_read_str(f, path, "/", "hdf5_version", 0);
    unsigned maj, min, rel;
    char want[48];
    H5get_libversion(&maj, &min, &rel);
    snprintf(want, sizeof want, "%u.%u.%u", maj, min, rel);
    T_CHECK(ts, strcmp(s, want) == 0, "hdf5_version '%s', want '%s'", s, want);
    eff_free(s);
    s = eff_h5_attr_read_str(f, path, "/", "git_commit", 0);
    T_CHECK(ts, strcmp(s, "abc1234") == 0, "provenance git_commit '%s'", s);
    eff_free(s);
    s = eff_h5_attr_read_str(f, path, "/", "created", 0);
    T_CHECK(ts, strlen(s) == 20 && s[10] == 'T' && s[19] == 'Z', "created '%s' is not ISO 8601 UTC", s);
    eff_free(s);
    s = eff_h5_attr_read_str(f, path, "/optimizer", "name", 0);
    T_CHECK(ts, strcmp(s, "adam") == 0, "optimizer name '%s'", s);
    eff_free(s);
    /* PyTorch layout: the stem conv is [O][I][H][W]; ours is [H][W][I][O]. */
    const EffView *w = eff_table_find(&m->ptab, "stem.0.weight");
    int64_t dims[8];
    int nd = eff_h5_dims(f, path, "/model/stem.0.weight", dims, 8);
    T_CHECK(ts, nd == 4 && dims[0] == 32 && dims[1] == 3 && dims[2] == 3 && dims[3] == 3, "stem.0.weight dims");
    float *file = eff_malloc(w->numel * sizeof(float), "t"), *ours = eff_malloc(w->numel * sizeof(float), "t"),
          *torch = eff_malloc(w->numel * sizeof(float), "t");
    eff_h5_read_f32(f, path, "/model/stem.0.weight", file, w->numel);
    m->be->download(m->be, ours, m->param + w->offset, w->numel * sizeof(float));
    eff_view_to_torch(w, ours, torch);
    T_CHECK(ts, memcmp(file, torch, w->numel * sizeof(float)) == 0, "stem.0.weight is not stored in PyTorch layout");
    /* depthwise [C][1][K][K] */
    nd = eff_h5_dims(f, path, "/model/blocks.block_1.depthwise_conv.weight", dims, 8);
    T_CHECK(ts, nd == 4 && dims[0] == 96 && dims[1] == 1 && dims[2] == 3 && dims[3] == 3, "depthwise dims");
    hid_t d = H5Dopen2(f, "/model/stem.0.weight", H5P_DEFAULT), t = H5Dget_type(d);
    T_CHECK(ts, H5Tequal(t, H5T_IEEE_F32LE) > 0, "tensors must be float32 little-endian");
    hid_t dcpl = H5Dget_create_plist(d);
    T_CHECK(ts, H5Pget_nfilters(dcpl) == 1, "tensor has %d filters, want Fletcher-32 only", H5Pget_nfilters(dcpl));
    H5Pclose(dcpl);
    H5Tclose(t);
    H5Dclose(d);
    nd = eff_h5_dims(f, path, "/model/blocks.block_15.project_bn.num_batches_tracked", dims, 8);
    d = H5Dopen2(f, "/model/blocks.block_15.project_bn.num_batches_tracked", H5P_DEFAULT);
    t = H5Dget_type(d);
    T_CHECK(ts, nd == 0 && H5Tequal(t, H5T_STD_I64LE) > 0, "num_batches_tracked must be an int64 scalar");
    H5Tclose(t);
    H5Dclose(d);
    int64_t nbt = 0;
    eff_h5_read_i64(f, path, "/model/head.1.num_batches_tracked", &nbt, 1);
    T_CHECK(ts, nbt == m->bn_batches, "num_batches_tracked %lld", (long long)nbt);
    H5G_info_t gi;
    H5Gget_info_by_name(f, "/model", &gi, H5P_DEFAULT);
    int nbn = 0;
    for (int i = 0; i < m->btab.count; i++) nbn += strstr(m->btab.views[i].name, "running_mean") != NULL;
    T_CHECK(ts, (int)gi.nlinks == m->ptab.count + m->btab.count + nbn, "/model has %llu entries, want %d",
            (unsigned long long)gi.nlinks, m->ptab.count + m->btab.count + nbn);
    eff_free(file);
    eff_free(ours);
    eff_free(torch);
    eff_h5_close(f, path);
}

/* Replace dataset `name` in an existing file with a float32 one of the given dims (zeros). */
static void replace_dataset(const char *path, const char *name, int ndim, const int64_t *dims) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    EFF_CHECK(f >= 0, "open %s", path);
    if (eff_h5_exists(f, name)) EFF_CHECK(H5Ldelete(f, name, H5P_DEFAULT) >= 0, "delete %s", name);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    float *z = eff_calloc(n, sizeof(float), "zeros");
    char err[512];
    EFF_CHECK(eff_h5_write_f32(f, name, z, ndim, dims, 0, err, sizeof err) == 0, "%s", err);
    eff_free(z);
    eff_h5_close(f, path);
}

static void delete_link(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    EFF_CHECK(f >= 0 && H5Ldelete(f, name, H5P_DEFAULT) >= 0, "delete %s in %s", name, path);
    eff_h5_close(f, path);
}

static void set_root_i64(const char *path, const char *attr, int64_t v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    EFF_CHECK(f >= 0 && H5Adelete(f, attr) >= 0, "delete attribute %s in %s", attr, path);
    char err[512];
    EFF_CHECK(eff_h5_attr_write_i64(f, attr, v, err, sizeof err) == 0, "%s", err);
    eff_h5_close(f, path);
}

/* Flip bytes in the middle of dataset `name`'s (single) chunk. */
static void corrupt_dataset(const char *path, const char *name) {
    hid_t f = eff_h5_open_read(path);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    haddr_t addr = 0;
    hsize_t size = 0, offset[4];
    unsigned mask = 0;
    hid_t sp = H5Dget_space(d);
    EFF_CHECK(d >= 0 && sp >= 0 && H5Dget_chunk_info(d, sp, 0, offset, &mask, &addr, &size) >= 0, "chunk of %s", name);
    H5Sclose(sp);
    H5Dclose(d);
    eff_h5_close(f, path);
    int fd = open(path, O_RDWR);
    unsigned char b[4];
    off_t at = (off_t)(addr + size / 2);
    EFF_CHECK(fd >= 0 && pread(fd, b, 4, at) == 4, "read %s", path);
    for (int i = 0; i < 4; i++) b[i] ^= 0x5a;
    EFF_CHECK(pwrite(fd, b, 4, at) == 4 && close(fd) == 0, "write %s", path);
}

static int suite(void) {
    TestState ts = {0};
    char dir[] = "ckpt-test-XXXXXX";
    EFF_CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    char path[256], p2[256], errfile[256];
    snprintf(path, sizeof path, "%s/last.h5", dir);
    snprintf(errfile, sizeof errfile, "%s/stderr.txt", dir);
    double t0 = eff_time();

    /* ---- round trip */
    EffModel *m1 = new_model("efficientnet-b0", 10);
    randomise_model(m1, 42);
    EffTrainState st1;
    memset(&st1, 0, sizeof st1);
    st1.epoch = 7;
    st1.step_in_epoch = 123;
    st1.global_step = 10000000000LL;
    st1.best_epoch = 5;
    st1.best_acc = 51.25;
    st1.last_acc = 49.5;
    st1.last_loss = 1.2345678901234567;
    st1.seed = 0xFEDCBA9876543210ULL; /* > 2^63: must not pass through a double or int64 */
    st1.world_size = 4;
    st1.lr = 3.3e-4;
    st1.loss_scale = 1024.0; /* an fp16 run's scaler: resumes where it was */
    st1.loss_scale_good_steps = 1999;
    st1.loss_scale_skipped = 3;
    snprintf(st1.optimizer, sizeof st1.optimizer, "adam"); /* what load reports */
    const char *config = "[model]\nname = efficientnet-b0\n# caf\xc3\xa9, \"quoted\" = 'x'\n[train]\nlr = 0.001\n";
    const char *keys[] = {"git_commit", "effnet_version", "world_size"}, *vals[] = {"abc1234", "0.1.0", "4"};
    double ts0 = eff_time();
    eff_checkpoint_save(path, m1, &st1, "adam", 32, config, keys, vals, 3);
    double t_save = eff_time() - ts0;
    T_CHECK(&ts, count_tmp(dir) == 0, "temporary file left after a successful save");

    char name[64], err[1024];
    int classes = 0, res = 0;
    T_CHECK(&ts, eff_checkpoint_peek(path, name, sizeof name, &classes, &res, err, sizeof err), "peek failed: %s", err);
    T_CHECK(&ts, strcmp(name, "efficientnet-b0") == 0 && classes == 10 && res == 32, "peek: %s %d %d", name, classes, res);

    EffModel *m2 = new_model("efficientnet-b0", 10);
    EffTrainState st2;
    char *cfg = NULL;
    ts0 = eff_time();
    eff_checkpoint_load(path, m2, 1, &st2, &cfg);
    double t_load = eff_time() - ts0;
    T_CHECK(&ts, same_buffer(m1, m1->param, m2, m2->param, m1->ptab.total), "parameters differ after the round trip");
    T_CHECK(&ts, same_buffer(m1, m1->bufs, m2, m2->bufs, m1->btab.total), "BN buffers differ after the round trip");
    T_CHECK(&ts, same_buffer(m1, m1->adam_m, m2, m2->adam_m, m1->ptab.total), "exp_avg differs after the round trip");
    T_CHECK(&ts, same_buffer(m1, m1->adam_v, m2, m2->adam_v, m1->ptab.total), "exp_avg_sq differs after the round trip");
    T_CHECK(&ts, m2->bn_batches == m1->bn_batches, "bn_batches %lld", (long long)m2->bn_batches);
    T_CHECK(&ts, m2->adam_t == m1->adam_t, "adam_t %ld", m2->adam_t);
    T_CHECK(&ts, memcmp(&st1, &st2, sizeof st1) == 0, "training state differs: epoch %lld step %lld global %lld seed %llx "
            "lr %.17g loss %.17g opt '%s'", (long long)st2.epoch, (long long)st2.step_in_epoch,
            (long long)st2.global_step, (unsigned long long)st2.seed, st2.lr, st2.last_loss, st2.optimizer);
    T_CHECK(&ts, cfg && strcmp(cfg, config) == 0, "config text differs: '%s'", cfg ? cfg : "(null)");
    eff_free(cfg);
    check_layout(&ts, path, m1);

    /* a checkpoint without the scaler attributes (older effnet): loss_scale 0, nothing else changes */
    {
        char old[1200];
        snprintf(old, sizeof old, "%s/old-noscaler.h5", dir);
        eff_checkpoint_save(old, m1, &st1, "adam", 32, config, keys, vals, 3);
        strip_checksum(old);
        hid_t f = H5Fopen(old, H5F_ACC_RDWR, H5P_DEFAULT);
        T_CHECK(&ts, f >= 0, "reopening %s", old);
        T_CHECK(&ts, H5Adelete_by_name(f, "/train", "loss_scale", H5P_DEFAULT) >= 0 &&
                         H5Adelete_by_name(f, "/train", "loss_scale_good_steps", H5P_DEFAULT) >= 0 &&
                         H5Adelete_by_name(f, "/train", "loss_scale_skipped", H5P_DEFAULT) >= 0,
                "deleting the scaler attributes");
        H5Fclose(f);
        EffModel *m3 = new_model("efficientnet-b0", 10);
        EffTrainState st4;
        eff_checkpoint_load(old, m3, 1, &st4, NULL);
        T_CHECK(&ts, st4.loss_scale == 0 && st4.loss_scale_good_steps == 0 && st4.loss_scale_skipped == 0 &&
                         st4.global_step == st1.global_step && st4.lr == st1.lr,
                "old checkpoint: loss_scale %g good %lld skipped %lld", st4.loss_scale,
                (long long)st4.loss_scale_good_steps, (long long)st4.loss_scale_skipped);
        free_model(m3);
        remove(old);
    }

    /* the batch split of /train (elastic resume): stored when known, read back exactly; a file written
     * before it existed (attributes deleted, the layout of tests/ckpt/layout-v1.txt) reads as 0 */
    {
        char split[1200];
        snprintf(split, sizeof split, "%s/split.h5", dir);
        EffTrainState s5 = st1;
        s5.batch_per_rank = 32;
        s5.accum = 2;
        s5.global_batch = 4 * 32 * 2;
        eff_checkpoint_save(split, m1, &s5, "adam", 32, config, keys, vals, 3);
        EffModel *m3 = new_model("efficientnet-b0", 10);
        EffTrainState s6;
        eff_checkpoint_load(split, m3, 0, &s6, NULL);
        T_CHECK(&ts, memcmp(&s5, &s6, sizeof s5) == 0, "batch split: batch_per_rank %lld accum %lld global %lld",
                (long long)s6.batch_per_rank, (long long)s6.accum, (long long)s6.global_batch);
        strip_checksum(split);
        hid_t f = H5Fopen(split, H5F_ACC_RDWR, H5P_DEFAULT);
        T_CHECK(&ts, f >= 0, "reopening %s", split);
        T_CHECK(&ts, H5Adelete_by_name(f, "/train", "batch_per_rank", H5P_DEFAULT) >= 0 &&
                         H5Adelete_by_name(f, "/train", "accum", H5P_DEFAULT) >= 0 &&
                         H5Adelete_by_name(f, "/train", "global_batch", H5P_DEFAULT) >= 0,
                "deleting the batch-split attributes");
        H5Fclose(f);
        eff_checkpoint_load(split, m3, 0, &s6, NULL);
        T_CHECK(&ts, s6.batch_per_rank == 0 && s6.accum == 0 && s6.global_batch == 0 && s6.global_step == st1.global_step,
                "older file: batch split %lld/%lld/%lld, want 0", (long long)s6.batch_per_rank, (long long)s6.accum,
                (long long)s6.global_batch);
        free_model(m3);
        remove(split);
    }

    /* without the optimizer: moments stay zero */
    free_model(m2);
    m2 = new_model("efficientnet-b0", 10);
    eff_checkpoint_load(path, m2, 0, NULL, NULL);
    T_CHECK(&ts, same_buffer(m1, m1->param, m2, m2->param, m1->ptab.total), "parameters differ (load_optimizer=0)");
    T_CHECK(&ts, all_zero(m2, m2->adam_m, m2->ptab.total) && m2->adam_t == 0, "load_optimizer=0 loaded moments");

    /* NaN last_loss and overwrite of an existing PATH */
    EffTrainState st3 = st1;
    st3.epoch = 8;
    st3.last_loss = NAN;
    st3.best_acc = -1;
    const EffCkptWritten wr = eff_checkpoint_save(path, m1, &st3, "adam", 32, NULL, NULL, NULL, 0);
    {
        char hex[65];
        struct stat sb;
        T_CHECK(&ts, eff_sha256_file(path, hex) == 0 && !strcmp(hex, wr.sha256) && stat(path, &sb) == 0 &&
                         (long long)sb.st_size == wr.bytes, "save returns the file's SHA-256 and size (%s, %lld)",
                wr.sha256, wr.bytes);
    }
    eff_checkpoint_load(path, m2, 1, &st2, &cfg);
    T_CHECK(&ts, st2.epoch == 8 && isnan(st2.last_loss) && st2.best_acc == -1, "overwrite: epoch %lld loss %g",
            (long long)st2.epoch, st2.last_loss);
    T_CHECK(&ts, cfg && cfg[0] == '\0', "NULL config should be stored as \"\"");
    eff_free(cfg);
    T_CHECK(&ts, count_tmp(dir) == 0, "temporary file left after overwriting");
    free_model(m2);

    /* ---- failed saves leave PATH byte-identical and no temporary file */
    size_t orig_len;
    char *orig = read_all(path, &orig_len);
    {
        Job j = {JOB_SAVE, path, m1, 0, 1 << 20, &st1};
        const char *must[] = {path, "saving checkpoint", "File too large"};
        expect_failure(&ts, "save past a 1 MiB file size limit", &j, errfile, must, 3);
        T_CHECK(&ts, same_file(path, orig, orig_len), "PATH changed by a failed save");
        T_CHECK(&ts, count_tmp(dir) == 0, "temporary file left by a failed save");
    }
    {
        snprintf(p2, sizeof p2, "%s/no-such-dir/last.h5", dir);
        Job j = {JOB_SAVE, p2, m1, 0, 0, &st1};
        const char *must[] = {p2, "No such file or directory"};
        expect_failure(&ts, "save into a missing directory", &j, errfile, must, 2);
        struct stat sb;
        T_CHECK(&ts, stat(p2, &sb) != 0, "a file appeared at %s", p2);
    }
    {
        /* a NaN weight: refused; the child's copy of the model is the one modified */
        float *p = eff_malloc(m1->ptab.total * sizeof(float), "p");
        m1->be->download(m1->be, p, m1->param, m1->ptab.total * sizeof(float));
        float saved = p[m1->head_w + 5];
        p[m1->head_w + 5] = NAN;
        m1->be->upload(m1->be, m1->param, p, m1->ptab.total * sizeof(float));
        Job j = {JOB_SAVE, path, m1, 0, 0, &st1};
        const char *must[] = {path, "head.0.weight", "non-finite"};
        expect_failure(&ts, "save with a NaN weight", &j, errfile, must, 3);
        p[m1->head_w + 5] = saved;
        m1->be->upload(m1->be, m1->param, p, m1->ptab.total * sizeof(float));
        eff_free(p);
        T_CHECK(&ts, same_file(path, orig, orig_len), "PATH changed by a refused save");
        T_CHECK(&ts, count_tmp(dir) == 0, "temporary file left by a refused save");
    }

    /* ---- load errors: each exits non-zero naming the file */
    EffModel *m = new_model("efficientnet-b0", 10);
    {
        snprintf(p2, sizeof p2, "%s/missing.h5", dir);
        Job j = {JOB_LOAD, p2, m, 1, 0, NULL};
        const char *must[] = {p2, "not found"};
        expect_failure(&ts, "load a missing file", &j, errfile, must, 2);
        T_CHECK(&ts, !eff_checkpoint_peek(p2, name, sizeof name, &classes, &res, err, sizeof err) && strstr(err, p2),
                "peek of a missing file: '%s'", err);
    }
    {
        snprintf(p2, sizeof p2, "%s/notes.h5", dir);
        write_all(p2, "this is not HDF5\n", 17);
        Job j = {JOB_LOAD, p2, m, 1, 0, NULL};
        const char *must[] = {p2, "not an HDF5 file"};
        expect_failure(&ts, "load a text file", &j, errfile, must, 2);
    }
    {
        snprintf(p2, sizeof p2, "%s/b1.h5", dir);
        EffModel *b1 = new_model("efficientnet-b1", 10);
        eff_checkpoint_save(p2, b1, &st1, "adam", 240, "", NULL, NULL, 0);
        free_model(b1);
        T_CHECK(&ts, eff_checkpoint_peek(p2, name, sizeof name, &classes, &res, err, sizeof err) &&
                strcmp(name, "efficientnet-b1") == 0 && res == 240, "peek of the B1 checkpoint: %s %d", name, res);
        Job j = {JOB_LOAD, p2, m, 1, 0, NULL};
        const char *must[] = {p2, "holds efficientnet-b1, but the model is efficientnet-b0"};
        expect_failure(&ts, "load B1 into B0", &j, errfile, must, 2);
        unlink(p2);
        EffModel *m11 = new_model("efficientnet-b0", 11);
        Job j2 = {JOB_LOAD, path, m11, 1, 0, NULL};
        const char *must2[] = {path, "10 classes, but the model has 11"};
        expect_failure(&ts, "load 10 classes into 11", &j2, errfile, must2, 2);
        free_model(m11);
    }
    {
        snprintf(p2, sizeof p2, "%s/truncated.h5", dir);
        write_all(p2, orig, orig_len / 2);
        Job j = {JOB_LOAD, p2, m, 1, 0, NULL};
        const char *must[] = {p2, "truncated"};
        expect_failure(&ts, "load a truncated file", &j, errfile, must, 2);
        T_CHECK(&ts, !eff_checkpoint_peek(p2, name, sizeof name, &classes, &res, err, sizeof err) && strstr(err, p2),
                "peek of a truncated file succeeded");
        unlink(p2);
    }
    /* The checksum header: a sealed file damaged anywhere is refused before HDF5 parses it. */
    {
        snprintf(p2, sizeof p2, "%s/sealed.h5", dir);
        T_CHECK(&ts, eff_ckpt_verify(path, err, sizeof err) == 1, "a written checkpoint verifies: %s", err);
        const size_t at[] = {orig_len / 3, EFF_CKPT_USERBLOCK + 8, orig_len - 1, 3, strlen(EFF_CKPT_MAGIC) + 9};
        const char *why[] = {"is damaged", "is damaged", "is damaged", "does not start like an effnet checkpoint",
                             "checksum header is damaged"};
        for (int k = 0; k < 5; k++) {
            write_all(p2, orig, orig_len);
            char *copy = read_all(p2, &(size_t){0});
            copy[at[k]] ^= 0x40; /* k = 4: a hex digit of the stored digest becomes a non-hex character */
            write_all(p2, copy, orig_len);
            eff_free(copy);
            Job j = {JOB_LOAD, p2, m, 1, 0, NULL};
            const char *must[] = {p2, why[k], "best.h5"};
            char label[96];
            snprintf(label, sizeof label, "load with byte %zu flipped (checksum)", at[k]);
            expect_failure(&ts, label, &j, errfile, must, 3);
        }
        write_all(p2, orig, orig_len);
        FILE *fa = eff_fopen(p2, "ab");
        EFF_CHECK(fputs("x", fa) >= 0, "append");
        eff_fclose(fa, p2);
        Job j = {JOB_LOAD, p2, m, 1, 0, NULL};
        const char *must[] = {p2, "longer than written"};
        expect_failure(&ts, "load with a byte appended (checksum)", &j, errfile, must, 2);
        write_all(p2, orig, orig_len);
        strip_checksum(p2);
        T_CHECK(&ts, eff_ckpt_verify(p2, err, sizeof err) == 0, "a file without the header: no checksum, no error");
        eff_checkpoint_load(p2, m, 1, &st2, NULL); /* and it loads, as older files do */
        T_CHECK(&ts, same_buffer(m1, m1->param, m, m->param, m1->ptab.total), "a file without the header loads");
        unlink(p2);
    }
    /* Edits of one copy, each undone (or the copy refreshed) before the next: a
     * file without the checksum header, so the checks behind it are tested. */
    snprintf(p2, sizeof p2, "%s/edited.h5", dir);
    write_all(p2, orig, orig_len);
    strip_checksum(p2);
    {
        corrupt_dataset(p2, "/model/head.0.weight");
        Job j = {JOB_LOAD, p2, m, 1, 0, NULL};
        const char *must[] = {p2, "head.0.weight", "Fletcher32"};
        expect_failure(&ts, "load with flipped bytes in a tensor", &j, errfile, must, 3);
        corrupt_dataset(p2, "/model/head.0.weight"); /* XOR again: restored */
    }
    {
        int64_t dims[1] = {10};
        replace_dataset(p2, "/model/classifier.2.bias", 1, dims);
        Job j = {JOB_LOAD, p2, m, 1, 0, NULL};
        const char *must[] = {p2, "unexpected tensor", "classifier.2.bias"};
        expect_failure(&ts, "load with an unexpected tensor", &j, errfile, must, 3);
        delete_link(p2, "/model/classifier.2.bias");
    }
    {
        set_root_i64(p2, "schema_version", 99);
        Job j = {JOB_LOAD, p2, m, 1, 0, NULL};
        const char *must[] = {p2, "schema version 99", "newer"};
        expect_failure(&ts, "load a newer schema", &j, errfile, must, 3);
        T_CHECK(&ts, !eff_checkpoint_peek(p2, name, sizeof name, &classes, &res, err, sizeof err) &&
                strstr(err, "schema version 99"), "peek accepted schema 99");
        set_root_i64(p2, "schema_version", EFF_CKPT_SCHEMA_VERSION);
    }
    {
        delete_link(p2, "/optimizer");
        Job j = {JOB_LOAD, p2, m, 1, 0, NULL};
        const char *must[] = {p2, "no optimizer state"};
        expect_failure(&ts, "resume from a file without /optimizer", &j, errfile, must, 2);
        eff_checkpoint_load(p2, m, 0, NULL, NULL); /* but it loads for evaluation (and the edits were undone) */
        T_CHECK(&ts, same_buffer(m1, m1->param, m, m->param, m1->ptab.total), "weights-only load differs");
        T_CHECK(&ts, same_buffer(m1, m1->bufs, m, m->bufs, m1->btab.total), "weights-only load: BN buffers differ");
    }
    {
        delete_link(p2, "/model/blocks.block_3.se.fc2.weight");
        Job j = {JOB_LOAD, p2, m, 0, 0, NULL};
        const char *must[] = {p2, "blocks.block_3.se.fc2.weight", "missing"};
        expect_failure(&ts, "load with a missing tensor", &j, errfile, must, 3);
    }
    {
        int64_t dims[4] = {32, 27, 1, 1}; /* same element count as [32, 3, 3, 3] */
        replace_dataset(p2, "/model/stem.0.weight", 4, dims);
        int64_t good[4] = {96, 1, 3, 3};
        replace_dataset(p2, "/model/blocks.block_3.se.fc2.weight", 4, good); /* wrong values, right shape */
        Job j = {JOB_LOAD, p2, m, 0, 0, NULL};
        const char *must[] = {p2, "stem.0.weight", "[32, 27, 1, 1]", "[32, 3, 3, 3]"};
        expect_failure(&ts, "load a reshaped tensor", &j, errfile, must, 4);
    }
    unlink(p2);
    free_model(m);
    const double mbytes = 3.0 * 4e-6 * (double)m1->ptab.total;
    free_model(m1);
    eff_free(orig);

    unlink(path);
    unlink(errfile);
    snprintf(p2, sizeof p2, "%s/notes.h5", dir);
    unlink(p2);
    T_CHECK(&ts, rmdir(dir) == 0, "scratch directory %s not empty: %s", dir, strerror(errno));
    printf("  save %.2f s, load %.2f s (B0, params + buffers + moments, %.0f MB); suite %.1f s\n", t_save, t_load, mbytes,
           eff_time() - t0);
    return t_finish(&ts, "test_checkpoint");
}

/* ---- modes for tests/test_checkpoint_pytorch.py --------------------------------- */

static float *read_input(const char *path, int *N, int *R) {
    hid_t f = eff_h5_open_read(path);
    int64_t d[4];
    int nd = eff_h5_dims(f, path, "/input", d, 4);
    EFF_CHECK(nd == 4 && d[1] == d[2] && d[3] == 3, "%s: /input must be [N][R][R][3]", path);
    *N = (int)d[0];
    *R = (int)d[1];
    size_t n = (size_t)d[0] * d[1] * d[2] * 3;
    float *x = eff_malloc(n * sizeof(float), "input");
    eff_h5_read_f32(f, path, "/input", x, n);
    eff_h5_close(f, path);
    return x;
}

static void write_logits(const char *path, const EffModel *m, int N) {
    float *l = eff_malloc((size_t)N * m->classes * sizeof(float), "logits");
    m->be->download(m->be, l, m->logits, (size_t)N * m->classes * sizeof(float));
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    EFF_CHECK(f >= 0, "cannot create %s", path);
    int64_t dims[2] = {N, m->classes};
    char err[512];
    EFF_CHECK(eff_h5_write_f32(f, "/logits", l, 2, dims, 0, err, sizeof err) == 0, "%s: %s", path, err);
    EFF_CHECK(eff_h5_write_i64_scalar(f, "/num_batches_tracked", m->bn_batches, err, sizeof err) == 0, "%s: %s", path, err);
    eff_h5_close(f, path);
    eff_free(l);
}

/* B0 with random weights and non-trivial BN state; eval logits before saving. */
static int mode_write_random(const char *ckpt, uint64_t seed, const char *in, const char *out) {
    EffModel *m = new_model("efficientnet-b0", 10);
    eff_model_init_weights(m, seed);
    EffRng r;
    eff_rng_seed(&r, seed + 1);
    float *p = eff_malloc(m->ptab.total * sizeof(float), "p"), *b = eff_malloc(m->btab.total * sizeof(float), "b");
    m->be->download(m->be, p, m->param, m->ptab.total * sizeof(float));
    m->be->download(m->be, b, m->bufs, m->btab.total * sizeof(float));
    for (int i = 0; i < m->ptab.count; i++) {
        const EffView *v = &m->ptab.views[i];
        if (v->kind != EFF_KIND_BN) continue;
        int w = strstr(v->name, ".weight") != NULL;
        for (size_t k = 0; k < v->numel; k++)
            p[v->offset + k] = (float)(w ? 0.5 + eff_rng_uniform(&r) : 0.4 * eff_rng_uniform(&r) - 0.2);
    }
    for (int i = 0; i < m->btab.count; i++) {
        const EffView *v = &m->btab.views[i];
        int var = strstr(v->name, "running_var") != NULL;
        for (size_t k = 0; k < v->numel; k++)
            b[v->offset + k] = (float)(var ? 0.5 + eff_rng_uniform(&r) : 0.1 * eff_rng_normal(&r));
    }
    m->be->upload(m->be, m->param, p, m->ptab.total * sizeof(float));
    m->be->upload(m->be, m->bufs, b, m->btab.total * sizeof(float));
    eff_free(p);
    eff_free(b);
    m->bn_batches = 3;
    m->adam_t = 5;
    int N, R;
    float *x = read_input(in, &N, &R);
    eff_model_alloc_acts(m, N, R);
    eff_model_forward(m, x, NULL, 0, 0);
    EffTrainState st = {.epoch = 2, .step_in_epoch = 1, .global_step = 5, .best_epoch = 1, .best_acc = 10.0,
                        .last_acc = 10.0, .last_loss = 2.3, .seed = seed, .world_size = 1, .lr = 1e-3};
    const char *keys[] = {"git_commit"}, *vals[] = {"test"};
    eff_checkpoint_save(ckpt, m, &st, "adam", R, "[model]\nname = efficientnet-b0\n", keys, vals, 1);
    write_logits(out, m, N);
    eff_free(x);
    free_model(m);
    return 0;
}

/* The model a checkpoint holds: name and variant (tests/ckpt/test_torchvision.py). */
static EffModel *new_model_of(const char *ckpt, const char *name, int classes) {
    EffModelSpec spec;
    char err[1024];
    EFF_CHECK(eff_model_spec(name, &spec), "unknown model %s", name);
    EFF_CHECK(eff_checkpoint_peek_variant(ckpt, &spec, err, sizeof err), "%s", err);
    EffModel *m = eff_calloc(1, sizeof *m, "model");
    eff_model_create(m, eff_backend_cpu(), &spec, classes);
    return m;
}

/* Load IN into the C model (its tensors go through our layouts and buffers)
 * and save it as OUT: the effnet leg of a torchvision -> effnet -> torchvision
 * round trip. */
static int mode_resave(const char *in, const char *out) {
    char name[64], err[1024];
    int classes, res;
    EFF_CHECK(eff_checkpoint_peek(in, name, sizeof name, &classes, &res, err, sizeof err), "%s", err);
    EffModel *m = new_model_of(in, name, classes);
    eff_checkpoint_load(in, m, 0, NULL, NULL);
    EffTrainState st = {.epoch = 1, .best_acc = -1, .last_acc = -1, .last_loss = NAN, .world_size = 1};
    eff_checkpoint_save(out, m, &st, "adam", res, NULL, NULL, NULL, 0);
    printf("%s -> %s: %s (%s variant), %d classes, %d tensors + %d buffers\n", in, out, name,
           eff_variant_name(m->spec.variant), classes, m->ptab.count, m->btab.count);
    free_model(m);
    return 0;
}

static int mode_eval(const char *ckpt, const char *in, const char *out) {
    char name[64], err[1024];
    int classes, res;
    if (!eff_checkpoint_peek(ckpt, name, sizeof name, &classes, &res, err, sizeof err)) {
        fprintf(stderr, "effnet: error: %s\n", err);
        return 1;
    }
    printf("%s: %s, %d classes, resolution %d\n", ckpt, name, classes, res);
    EffModel *m = new_model_of(ckpt, name, classes);
    eff_checkpoint_load(ckpt, m, 0, NULL, NULL);
    int N, R;
    float *x = read_input(in, &N, &R);
    eff_model_alloc_acts(m, N, R);
    eff_model_forward(m, x, NULL, 0, 0);
    write_logits(out, m, N);
    eff_free(x);
    free_model(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 1) return suite();
    if (argc == 6 && strcmp(argv[1], "write-random") == 0) {
        long seed;
        EFF_CHECK(eff_parse_int(argv[3], 0, 1L << 40, &seed), "bad seed '%s'", argv[3]);
        return mode_write_random(argv[2], (uint64_t)seed, argv[4], argv[5]);
    }
    if (argc == 5 && strcmp(argv[1], "eval") == 0) return mode_eval(argv[2], argv[3], argv[4]);
    if (argc == 4 && strcmp(argv[1], "resave") == 0) return mode_resave(argv[2], argv[3]);
    fprintf(stderr, "usage: test_checkpoint\n       test_checkpoint write-random CKPT SEED INPUT.h5 LOGITS.h5\n"
                    "       test_checkpoint eval CKPT INPUT.h5 LOGITS.h5\n       test_checkpoint resave IN.h5 OUT.h5\n");
    return 2;
}

/* checkpoint.c: HDF5 checkpoints; layout in docs/checkpoint-format.md.
 *
 * Saving never leaves a broken file at PATH: the file is built in memory,
 * written to PATH.tmp.<pid>, fsynced, closed and renamed onto PATH, then the
 * directory is fsynced. Every failure removes the temporary file first.
 * Tensors cross between backend memory and the host one view at a time
 * (be->download / be->upload), so a GPU backend works unchanged. */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"
#include "common.h"
#include "h5io.h"
#include "h5probe.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Root attributes the writer sets itself; provenance keys may not reuse them. */
static const char *const reserved_attrs[] = {"format",  "schema_version", "model",        "classes",
                                             "resolution", "created",     "config",       "hdf5_version",
                                             "variant",    "stem_stride"};

int eff_ckpt_header_attr(const char *name) {
    for (size_t r = 0; r < sizeof reserved_attrs / sizeof *reserved_attrs; r++)
        if (strcmp(name, reserved_attrs[r]) == 0) return 1;
    return 0;
}

/* ---- shared helpers ------------------------------------------------------ */

static size_t max_numel(const EffTable *t) {
    size_t n = 1;
    for (int i = 0; i < t->count; i++)
        if (t->views[i].numel > n) n = t->views[i].numel;
    return n;
}

/* Index of the first NaN/Inf in x, or -1. */
static long long first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long long)i;
    return -1;
}

/* "blocks.block_3.expand_bn.running_mean" -> prefix length of "blocks.block_3.expand_bn", or 0. */
static size_t bn_prefix_len(const char *buffer_name) {
    static const char suffix[] = ".running_mean";
    size_t n = strlen(buffer_name), s = sizeof suffix - 1;
    return n > s && strcmp(buffer_name + n - s, suffix) == 0 ? n - s : 0;
}

/* ---- saving ---------------------------------------------------------------- */

/* HDF5 builds the whole file in memory (the core driver, no backing store);
 * we then write the image ourselves. This keeps every disk error (ENOSPC,
 * EDQUOT, EIO, a file size limit) in our own write/fsync/close calls, with
 * errno in the message. It also sidesteps an HDF5 bug: after a failed write
 * to disk, HDF5 1.10 .. 1.14.0 cannot close the file and then crashes in its
 * exit handler (H5F__close_cb; fixed by HDF5 PR #2291). The price is host
 * memory of about twice the checkpoint's size while saving (the in-memory
 * file, then its image). */

typedef struct Writer {
    const char *path;
    char tmp[PATH_MAX + 32];
    hid_t file;     /* in-memory HDF5 file, or -1 */
    int fd;         /* the temporary file on disk, or -1 */
    int on_disk;    /* the temporary file may exist: remove it on failure */
    char err[1024]; /* filled by the eff_h5_* writers */
} Writer;

static const char disk_hint[] = "check free space, quota and write permission where the file lives (df -h, ls -ld)";

/* Remove the temporary file, then exit naming PATH, what failed, and a hint
 * (NULL: the disk hint). PATH itself is never touched before the rename. */
EFF_NORETURN EFF_PRINTF(3, 4) static void save_fail(Writer *w, const char *hint, const char *fmt, ...) {
    char what[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (w->file >= 0) (void)H5Fclose(w->file); /* in memory: nothing to flush to disk */
    w->file = -1;
    if (w->fd >= 0) (void)close(w->fd);
    w->fd = -1;
    char rm[PATH_MAX + 320] = "";
    if (w->on_disk && unlink(w->tmp) != 0 && errno != ENOENT)
        snprintf(rm, sizeof rm, "\n(also could not remove the temporary file '%s': %s; delete it by hand)", w->tmp,
                 strerror(errno));
    EFF_FATAL("saving checkpoint '%s' failed: %s%s\nHINT: %s; the previous file at that path, if any, is untouched",
              w->path, what, rm, hint ? hint : disk_hint);
}

/* Run one eff_h5_* writer call; on failure, report it through save_fail. */
#define W(w, call) do { if ((call) < 0) save_fail((w), NULL, "%s", (w)->err); } while (0)

/* Write every view of table t from backend memory src (PyTorch layout) under grp. */
/* Every view of t at offsets >= base; src holds them from offset base on. */
static void write_table(Writer *w, const char *grp, const EffTable *t, size_t base, const EffBackend *be,
                        const float *src, float *ours, float *torch_buf, const char *what) {
    char name[160];
    for (int i = 0; i < t->count; i++) {
        const EffView *v = &t->views[i];
        if (v->offset < base) continue; /* frozen: no optimizer state */
        be->download(be, ours, src + (v->offset - base), v->numel * sizeof(float));
        long long bad = first_nonfinite(ours, v->numel);
        if (bad >= 0)
            save_fail(w, "lower the learning rate, or resume from an earlier checkpoint",
                      "%s '%s' has a non-finite value (%g at index %lld); refusing to checkpoint a diverged model",
                      what, v->name, (double)ours[bad], bad);
        eff_view_to_torch(v, ours, torch_buf);
        snprintf(name, sizeof name, "%s/%s", grp, v->name);
        W(w, eff_h5_write_f32(w->file, name, torch_buf, v->ndim, v->shape, 1, w->err, sizeof w->err));
    }
}

/* Write n bytes to w->fd (the temporary file), retrying short writes. */
static void write_image(Writer *w, const unsigned char *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done < ((size_t)1 << 30) ? n - done : ((size_t)1 << 30);
        ssize_t k = write(w->fd, buf + done, chunk);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            save_fail(w, NULL, "writing '%s' (%zu of %zu bytes written): %s", w->tmp, done, n,
                      k < 0 ? strerror(errno) : "no progress");
        done += (size_t)k;
    }
}

EFF_PRINTF(3, 4) static int set_err(char *err, size_t errlen, const char *fmt, ...);

/* HDF5's file signature: where the superblock begins. */
static const unsigned char h5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* The file is the user block, then HDF5's image (which starts with the
 * superblock: H5Fget_file_image leaves the user block out). Fill file[0,
 * EFF_CKPT_USERBLOCK) with the magic, the SHA-256 and the length of the image
 * that follows it. */
static void seal_image(Writer *w, unsigned char *file, size_t n) {
    const size_t ub = EFF_CKPT_USERBLOCK;
    if (n <= ub + sizeof h5_signature || memcmp(file + ub, h5_signature, sizeof h5_signature) != 0)
        save_fail(w, "this is a bug in effnet; please report it", "the HDF5 image (%zu bytes) does not start with "
                  "HDF5's signature", n - ub);
    char hex[65];
    eff_sha256_hex(file + ub, n - ub, hex);
    memset(file, 0, ub);
    const int k = snprintf((char *)file, ub, "%ssha256 %s\nbytes %zu\n", EFF_CKPT_MAGIC, hex, n - ub);
    if (k <= 0 || (size_t)k >= ub) save_fail(w, "this is a bug in effnet; please report it", "user block overflow");
}

/* The arguments of eff_checkpoint_save, before anything is created. */
static void check_save_args(const char *path, const EffModel *m, const EffTrainState *st, const char *optimizer_name,
                            int resolution, const char *const *prov_keys, const char *const *prov_vals, int n_prov) {
    EFF_CHECK(path && path[0], "eff_checkpoint_save: empty checkpoint path\nHINT: set the output directory in the config");
    EFF_CHECK(m && st && optimizer_name, "eff_checkpoint_save('%s'): model, state and optimizer name are required", path);
    EFF_CHECK(strlen(optimizer_name) < sizeof st->optimizer,
              "eff_checkpoint_save('%s'): optimizer name '%s' longer than %zu characters", path, optimizer_name,
              sizeof st->optimizer - 1);
    EFF_CHECK(resolution > 0, "eff_checkpoint_save('%s'): bad resolution %d", path, resolution);
    EFF_CHECK(m->opt_nseg == 1 && m->opt_seg[0].lo == m->train_lo && m->opt_seg[0].n == m->ptab.total - m->train_lo,
              "eff_checkpoint_save('%s'): the optimizer state must be the whole trainable range [%zu, %zu), not %d "
              "range(s) of %zu parameters (internal error: gather a sharded state first)", path, m->train_lo,
              (size_t)m->ptab.total, m->opt_nseg, m->opt_n);
    EFF_CHECK(n_prov >= 0 && (n_prov == 0 || (prov_keys && prov_vals)),
              "eff_checkpoint_save('%s'): bad provenance list (n_prov %d)", path, n_prov);
    for (int i = 0; i < n_prov; i++) {
        EFF_CHECK(prov_keys[i] && prov_keys[i][0] && prov_vals[i],
                  "eff_checkpoint_save('%s'): provenance entry %d has an empty key or a NULL value", path, i);
        EFF_CHECK(!eff_ckpt_header_attr(prov_keys[i]),
                  "eff_checkpoint_save('%s'): provenance key '%s' is reserved for the checkpoint header\n"
                  "HINT: rename it (e.g. 'run_%s')", path, prov_keys[i], prov_keys[i]);
        for (int j = 0; j < i; j++)
            EFF_CHECK(strcmp(prov_keys[i], prov_keys[j]) != 0, "eff_checkpoint_save('%s'): provenance key '%s' given twice",
                      path, prov_keys[i]);
    }
}

/* The in-memory HDF5 file with its 512-byte user block (w->file). */
static void create_in_memory(Writer *w, const EffModel *m) {
    /* In memory, grown in steps of about the expected file size (tensors
     * plus a margin for metadata). The file format is HDF5's earliest (the
     * default bounds), readable by every HDF5 >= 1.8 and h5py: the newer
     * superblocks (v2, v3) come out of H5Fget_file_image in HDF5 1.10.8 with
     * a wrong checksum. Tensor data is Fletcher-32 checked regardless. */
    size_t expect = 4 * (3 * m->ptab.total + m->btab.total) + 4096 * (size_t)(3 * m->ptab.count + 2 * m->btab.count);
    size_t step = (expect + ((size_t)1 << 20) + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) save_fail(w, NULL, "creating an HDF5 file access property list");
    if (H5Pset_fapl_core(fapl, step, 0) < 0) {
        (void)H5Pclose(fapl);
        save_fail(w, NULL, "setting up the in-memory HDF5 file");
    }
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE); /* room for the checksum, before the superblock */
    if (fcpl < 0 || H5Pset_userblock(fcpl, EFF_CKPT_USERBLOCK) < 0) {
        if (fcpl >= 0) (void)H5Pclose(fcpl);
        (void)H5Pclose(fapl);
        save_fail(w, NULL, "setting up the HDF5 user block");
    }
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (w->file < 0) {
        char detail[512];
        eff_h5_error_detail(detail, sizeof detail);
        (void)H5Pclose(fapl);
        (void)H5Pclose(fcpl);
        save_fail(w, NULL, "creating the in-memory HDF5 file: %s", detail);
    }
    if (H5Pclose(fapl) < 0 || H5Pclose(fcpl) < 0) save_fail(w, NULL, "closing the file property lists");
}

/* Root attributes: header, config, provenance. */
static void write_root(Writer *w, const EffModel *m, int resolution, const char *config_ini,
                       const char *const *prov_keys, const char *const *prov_vals, int n_prov) {
    /* ---- root attributes: header, config, provenance */
    char created[32];
    time_t now = time(NULL);
    struct tm tmv;
    if (now == (time_t)-1 || !gmtime_r(&now, &tmv) || strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv) == 0)
        snprintf(created, sizeof created, "unknown");
    unsigned maj = 0, min = 0, rel = 0;
    if (H5get_libversion(&maj, &min, &rel) < 0) save_fail(w, NULL, "querying the HDF5 library version");
    char h5ver[48];
    snprintf(h5ver, sizeof h5ver, "%u.%u.%u", maj, min, rel);
    const hid_t f = w->file;
    W(w, eff_h5_attr_write_str(f, "format", EFF_CKPT_FORMAT, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_i64(f, "schema_version", EFF_CKPT_SCHEMA_VERSION, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_str(f, "model", m->spec.name, w->err, sizeof w->err));
    if (m->spec.variant != EFF_VARIANT_SEED) /* absent: the seed, so seed checkpoints keep their layout */
        W(w, eff_h5_attr_write_str(f, "variant", eff_variant_name(m->spec.variant), w->err, sizeof w->err));
    if (m->spec.stem_stride != 2) /* absent: 2, the stem of every file before model.stem_stride */
        W(w, eff_h5_attr_write_i64(f, "stem_stride", m->spec.stem_stride, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_i64(f, "classes", m->classes, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_i64(f, "resolution", resolution, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_str(f, "created", created, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_str(f, "config", config_ini ? config_ini : "", w->err, sizeof w->err));
    W(w, eff_h5_attr_write_str(f, "hdf5_version", h5ver, w->err, sizeof w->err));
    for (int i = 0; i < n_prov; i++) W(w, eff_h5_attr_write_str(f, prov_keys[i], prov_vals[i], w->err, sizeof w->err));
}

/* /model, then /optimizer: parameters, BN buffers, the step counter, the moments. */
static void write_tensors(Writer *w, const EffModel *m, const char *optimizer_name) {
    const hid_t f = w->file;
    /* ---- /model: parameters, running statistics, num_batches_tracked */
    const EffBackend *be = m->be;
    be->synchronize(be);
    size_t mx = max_numel(&m->ptab), mb = max_numel(&m->btab);
    if (mb > mx) mx = mb;
    float *ours = eff_malloc(mx * sizeof(float), "checkpoint staging buffer");
    float *torch_buf = eff_malloc(mx * sizeof(float), "checkpoint staging buffer");
    W(w, eff_h5_create_group(f, "/model", w->err, sizeof w->err));
    write_table(w, "/model", &m->ptab, 0, be, m->param, ours, torch_buf, "parameter");
    write_table(w, "/model", &m->btab, 0, be, m->bufs, ours, torch_buf, "BN buffer");
    char name[160];
    for (int i = 0; i < m->btab.count; i++) {
        size_t pl = bn_prefix_len(m->btab.views[i].name);
        if (!pl) continue;
        snprintf(name, sizeof name, "/model/%.*s.num_batches_tracked", (int)pl, m->btab.views[i].name);
        W(w, eff_h5_write_i64_scalar(f, name, m->bn_batches, w->err, sizeof w->err));
    }
    /* ---- /optimizer: moments in PyTorch layout, keyed like /model */
    W(w, eff_h5_create_group(f, "/optimizer/exp_avg", w->err, sizeof w->err));
    W(w, eff_h5_create_group(f, "/optimizer/exp_avg_sq", w->err, sizeof w->err));
    hid_t og = H5Gopen2(f, "/optimizer", H5P_DEFAULT);
    if (og < 0) save_fail(w, NULL, "opening group /optimizer");
    W(w, eff_h5_attr_write_str(og, "name", optimizer_name, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_i64(og, "step", (int64_t)m->adam_t, w->err, sizeof w->err));
    const size_t lo = m->opt_seg[0].lo; /* the trainable suffix (check_save_args) */
    int64_t frozen = 0;
    while (frozen < m->ptab.count && m->ptab.views[frozen].offset < lo) frozen++;
    if (frozen) /* absent: every tensor has moments (every file before train.freeze) */
        W(w, eff_h5_attr_write_i64(og, "frozen", frozen, w->err, sizeof w->err));
    if (H5Gclose(og) < 0) save_fail(w, NULL, "closing group /optimizer");
    write_table(w, "/optimizer/exp_avg", &m->ptab, lo, be, m->adam_m, ours, torch_buf, "optimizer exp_avg of");
    write_table(w, "/optimizer/exp_avg_sq", &m->ptab, lo, be, m->adam_v, ours, torch_buf, "optimizer exp_avg_sq of");
    eff_free(ours);
    eff_free(torch_buf);
}

/* /train: the training state as attributes. */
static void write_train(Writer *w, const EffTrainState *st) {
    const hid_t f = w->file;
    /* ---- /train: the training state as attributes */
    W(w, eff_h5_create_group(f, "/train", w->err, sizeof w->err));
    hid_t tg = H5Gopen2(f, "/train", H5P_DEFAULT);
    if (tg < 0) save_fail(w, NULL, "opening group /train");
    W(w, eff_h5_attr_write_i64(tg, "epoch", st->epoch, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_i64(tg, "step_in_epoch", st->step_in_epoch, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_i64(tg, "global_step", st->global_step, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_i64(tg, "best_epoch", st->best_epoch, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_f64(tg, "best_acc", st->best_acc, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_f64(tg, "last_acc", st->last_acc, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_f64(tg, "last_loss", st->last_loss, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_u64(tg, "seed", st->seed, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_i64(tg, "world_size", st->world_size, w->err, sizeof w->err));
    if (st->global_batch > 0) { /* 0: not known to the caller (a tool, a test); the attributes are optional */
        W(w, eff_h5_attr_write_i64(tg, "batch_per_rank", st->batch_per_rank, w->err, sizeof w->err));
        W(w, eff_h5_attr_write_i64(tg, "accum", st->accum, w->err, sizeof w->err));
        W(w, eff_h5_attr_write_i64(tg, "global_batch", st->global_batch, w->err, sizeof w->err));
    }
    W(w, eff_h5_attr_write_f64(tg, "lr", st->lr, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_f64(tg, "loss_scale", st->loss_scale, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_i64(tg, "loss_scale_good_steps", st->loss_scale_good_steps, w->err, sizeof w->err));
    W(w, eff_h5_attr_write_i64(tg, "loss_scale_skipped", st->loss_scale_skipped, w->err, sizeof w->err));
    if (H5Gclose(tg) < 0) save_fail(w, NULL, "closing group /train");
}

/* Flush the in-memory file, take its image after EFF_CKPT_USERBLOCK bytes,
 * close it, and seal the user block; returns the buffer (*size bytes). */
static unsigned char *take_image(Writer *w, EffH5Quiet *quiet, size_t *size) {
    const hid_t f = w->file;
    /* ---- the image. H5Fget_file_image does not flush everything by itself
     * in HDF5 1.10.8 (its image of an unflushed file does not open), hence
     * the H5Fflush first. The in-memory file is then closed, freeing its
     * memory before the image is written out. */
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) {
        char detail[512];
        eff_h5_error_detail(detail, sizeof detail);
        save_fail(w, NULL, "flushing the in-memory HDF5 file: %s", detail);
    }
    ssize_t isz = H5Fget_file_image(f, NULL, 0);
    if (isz <= 0) {
        char detail[512];
        eff_h5_error_detail(detail, sizeof detail);
        save_fail(w, NULL, "sizing the HDF5 file image: %s", detail);
    }
    const size_t fsz = EFF_CKPT_USERBLOCK + (size_t)isz;
    unsigned char *image = eff_malloc(fsz, "checkpoint file image");
    if (H5Fget_file_image(f, image + EFF_CKPT_USERBLOCK, (size_t)isz) != isz) {
        char detail[512];
        eff_h5_error_detail(detail, sizeof detail);
        eff_free(image);
        save_fail(w, NULL, "copying the HDF5 file image (%lld bytes): %s", (long long)isz, detail);
    }
    if (H5Fclose(f) < 0) {
        eff_free(image);
        save_fail(w, NULL, "closing the in-memory HDF5 file");
    }
    w->file = -1;
    eff_h5_quiet_end(quiet);
    seal_image(w, image, fsz);
    *size = fsz;
    return image;
}

/* Write the file (image, freed once written) to PATH.tmp.<pid>, fsync, close,
 * rename onto PATH, fsync the directory. */
static void write_to_disk(Writer *w, unsigned char *image, size_t fsz) {
    const char *path = w->path;
    /* ---- write, fsync, close, rename, fsync the directory */
    w->on_disk = 1;
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (w->fd < 0) save_fail(w, NULL, "creating the temporary file '%s': %s", w->tmp, strerror(errno));
    write_image(w, image, fsz); /* on failure the process exits: no need to free */
    eff_free(image);
    if (fsync(w->fd) != 0) save_fail(w, NULL, "fsync of '%s': %s", w->tmp, strerror(errno));
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) save_fail(w, NULL, "closing '%s' (deferred write error): %s", w->tmp, strerror(errno));
    if (rename(w->tmp, path) != 0) save_fail(w, NULL, "renaming '%s' onto '%s': %s", w->tmp, path, strerror(errno));
    w->on_disk = 0; /* nothing left to remove */

    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    EFF_CHECK(dfd >= 0, "checkpoint '%s' is in place, but opening its directory '%s' to fsync it failed: %s\n"
              "HINT: the rename may not survive a power loss; check the file system", path, dir, strerror(errno));
    /* Some file systems cannot fsync a directory (EINVAL); the rename is then as durable as they make it. */
    if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP) {
        int e = errno;
        (void)close(dfd);
        EFF_FATAL("checkpoint '%s' is in place, but fsync of its directory '%s' failed: %s\n"
                  "HINT: the rename may not survive a power loss; check the file system", path, dir, strerror(e));
    }
    EFF_CHECK(close(dfd) == 0, "closing directory '%s' failed: %s", dir, strerror(errno));
}

EffCkptWritten eff_checkpoint_save(const char *path, const EffModel *m, const EffTrainState *st,
                                   const char *optimizer_name, int resolution, const char *config_ini,
                                   const char *const *prov_keys, const char *const *prov_vals, int n_prov) {
    check_save_args(path, m, st, optimizer_name, resolution, prov_keys, prov_vals, n_prov);
    Writer w;
    memset(&w, 0, sizeof w);
    w.path = path;
    w.file = -1;
    w.fd = -1;
    int n = snprintf(w.tmp, sizeof w.tmp, "%s.tmp.%ld", path, (long)getpid());
    EFF_CHECK(n > 0 && (size_t)n < sizeof w.tmp, "checkpoint path '%s' is too long (%zu characters)", path, strlen(path));
    EffH5Quiet quiet;
    eff_h5_quiet_begin(&quiet); /* our messages quote HDF5's innermost error */
    create_in_memory(&w, m);
    write_root(&w, m, resolution, config_ini, prov_keys, prov_vals, n_prov);
    write_tensors(&w, m, optimizer_name);
    write_train(&w, st);
    size_t fsz = 0;
    unsigned char *image = take_image(&w, &quiet, &fsz);
    EffCkptWritten out = {.bytes = (long long)fsz};
    eff_sha256_hex(image, fsz, out.sha256);
    write_to_disk(&w, image, fsz);
    return out;
}

int eff_ckpt_verify(const char *path, char *err, size_t errlen) {
    const char *hint = "HINT: the file was damaged on disk or in a copy; use another checkpoint (best.h5, or an "
                       "earlier one)";
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "checkpoint '%s' cannot be opened: %s\nHINT: check the path (ls -l '%s')", path,
                strerror(errno), path);
        return -1;
    }
    char ub[EFF_CKPT_USERBLOCK + 1];
    const size_t got = fread(ub, 1, EFF_CKPT_USERBLOCK, f);
    fclose(f);
    ub[got] = '\0';
    if (got >= sizeof h5_signature && memcmp(ub, h5_signature, sizeof h5_signature) == 0) return 0;
    const size_t ml = strlen(EFF_CKPT_MAGIC);
    if (got < ml || memcmp(ub, EFF_CKPT_MAGIC, ml) != 0) {
        set_err(err, errlen, "checkpoint '%s' is not an HDF5 file: it does not start like an effnet checkpoint (no "
                "checksum header, no HDF5 signature in its first %zu bytes)\nHINT: pass a checkpoint written by effnet "
                "train; if this one was, it is damaged: use another (best.h5, or an earlier one)", path, got);
        return -1;
    }
    char want[65] = "", hex[65];
    long long bytes = -1, have = -1;
    if (got < EFF_CKPT_USERBLOCK || sscanf(ub + ml, "sha256 %64[0-9a-f]\nbytes %lld\n", want, &bytes) != 2 ||
        strlen(want) != 64 || bytes <= 0) {
        set_err(err, errlen, "checkpoint '%s': its checksum header is damaged\n%s", path, hint);
        return -1;
    }
    if (eff_sha256_file_from(path, EFF_CKPT_USERBLOCK, hex, &have) != 0) {
        set_err(err, errlen, "checkpoint '%s' cannot be read: %s\n%s", path, strerror(errno), hint);
        return -1;
    }
    if (have != bytes) {
        set_err(err, errlen, "checkpoint '%s' is %s: %lld bytes after the header, %lld written\n%s", path,
                have < bytes ? "truncated" : "longer than written", have, bytes, hint);
        return -1;
    }
    if (strcmp(hex, want) != 0) {
        set_err(err, errlen, "checkpoint '%s' is damaged: SHA-256 of its contents is %.16s..., %.16s... when "
                "written\n%s", path, hex, want, hint);
        return -1;
    }
    return 1;
}

/* ---- reading: the open file and its header ------------------------------------ */

struct EffCkptFile {
    char *path;
    hid_t file;
    EffH5Quiet quiet; /* HDF5's error printing, restored by eff_ckpt_close */
    EffCkptHeader header;
};

EFF_PRINTF(3, 4) static int set_err(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *p = eff_malloc(n + 1, "string");
    memcpy(p, s, n + 1);
    return p;
}

/* An HDF5 call on the open file failed: exit naming the file, what failed and
 * HDF5's innermost error (call it before any other HDF5 call clears that). */
EFF_NORETURN EFF_PRINTF(2, 3) static void ckpt_fatal(const EffCkptFile *f, const char *fmt, ...) {
    char detail[512], what[1024];
    eff_h5_error_detail(detail, sizeof detail);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    EFF_FATAL("checkpoint '%s': %s: %s\nHINT: the file is damaged or not a complete effnet checkpoint "
              "(docs/checkpoint-format.md); use another copy (best.h5 or an earlier checkpoint)", f->path, what, detail);
}

/* The text of string attribute a (type t), malloc'd; NULL if HDF5 cannot read it. */
static char *attr_text(hid_t a, hid_t t) {
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5T_cset_t cs = H5Tget_cset(t); /* HDF5 does not convert between character sets */
    htri_t vl = H5Tis_variable_str(t);
    char *out = NULL;
    if (mt >= 0 && cs != H5T_CSET_ERROR && vl >= 0 && H5Tset_cset(mt, cs) >= 0) {
        if (vl > 0) {
            char *s = NULL;
            if (H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(a, mt, &s) >= 0) out = dup_str(s ? s : "");
            if (s && H5free_memory(s) < 0) {
                eff_free(out);
                out = NULL;
            }
        } else {
            size_t n = H5Tget_size(t);
            out = eff_calloc(n + 1, 1, "string attribute");
            if (n == 0 || H5Tset_size(mt, n + 1) < 0 || H5Aread(a, mt, out) < 0) {
                eff_free(out);
                out = NULL;
            }
        }
    }
    if (mt >= 0 && H5Tclose(mt) < 0) {
        eff_free(out);
        out = NULL;
    }
    return out;
}

/* Non-fatal root attribute readers for the header: 1 ok, 0 missing or bad. */
static int root_attr_i64(hid_t f, const char *attr, int64_t *out) {
    if (H5Aexists(f, attr) <= 0) return 0;
    hid_t a = H5Aopen(f, attr, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
    int ok = sp >= 0 && t >= 0 && H5Sget_simple_extent_npoints(sp) == 1 &&
             (H5Tget_class(t) == H5T_INTEGER || H5Tget_class(t) == H5T_FLOAT) &&
             H5Aread(a, H5T_NATIVE_INT64, out) >= 0;
    if (t >= 0 && H5Tclose(t) < 0) ok = 0;
    if (sp >= 0 && H5Sclose(sp) < 0) ok = 0;
    if (H5Aclose(a) < 0) ok = 0;
    return ok;
}

static int root_attr_str(hid_t f, const char *attr, char *buf, size_t cap) {
    if (H5Aexists(f, attr) <= 0) return 0;
    hid_t a = H5Aopen(f, attr, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t t = H5Aget_type(a);
    char *s = t >= 0 && H5Tget_class(t) == H5T_STRING ? attr_text(a, t) : NULL;
    int ok = s != NULL;
    if (ok) snprintf(buf, cap, "%s", s);
    eff_free(s);
    if (t >= 0 && H5Tclose(t) < 0) ok = 0;
    if (H5Aclose(a) < 0) ok = 0;
    return ok;
}

/* Open path read-only with a precise diagnosis: missing, not HDF5, damaged. */
static hid_t open_checkpoint(const char *path, long long *bytes, int *checksum, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        set_err(err, errlen, "checkpoint '%s' not found: %s\nHINT: check the path (ls -l '%s')", path, strerror(errno), path);
        return -1;
    }
    if (S_ISDIR(sb.st_mode)) {
        set_err(err, errlen, "checkpoint '%s' is a directory\nHINT: name a checkpoint file inside it, e.g. '%s/last.h5'",
                path, path);
        return -1;
    }
    *bytes = (long long)sb.st_size;
    *checksum = eff_ckpt_verify(path, err, errlen); /* before HDF5 reads a byte */
    if (*checksum < 0) return -1;
    /* No checksum header: a file that would crash HDF5 crashes a test read in a child instead (h5probe.h). */
    if (*checksum == 0 && eff_h5_probe(path, "checkpoint", err, errlen) < 0) return -1;
#if H5_VERSION_GE(1, 12, 0)
    htri_t is = H5Fis_accessible(path, H5P_DEFAULT);
#else
    htri_t is = H5Fis_hdf5(path);
#endif
    if (is <= 0) {
        set_err(err, errlen, "checkpoint '%s' is not an HDF5 file (%lld bytes, no HDF5 signature)\nHINT: pass a "
                "checkpoint written by effnet train, or a file exported as docs/checkpoint-format.md describes",
                path, (long long)sb.st_size);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        char detail[512];
        eff_h5_error_detail(detail, sizeof detail);
        /* Not just "lock": a truncated file's "sblock->base_addr" contains it. */
        if (strstr(detail, "unable to lock") || strstr(detail, "file locking"))
            set_err(err, errlen, "cannot open checkpoint '%s': %s\nHINT: this file system does not support HDF5's "
                    "file locking; run with HDF5_USE_FILE_LOCKING=FALSE", path, detail);
        else
            set_err(err, errlen, "cannot open checkpoint '%s': %s\nHINT: the file is truncated or damaged (copied "
                    "while being written?); use another checkpoint (best.h5 or an earlier one)", path, detail);
        return -1;
    }
    return f;
}

static int read_header(hid_t f, const char *path, EffCkptHeader *h, char *err, size_t errlen) {
    char format[64];
    int64_t classes, resolution;
    if (!root_attr_str(f, "format", format, sizeof format))
        return set_err(err, errlen, "'%s' is an HDF5 file but not an effnet checkpoint (no root attribute 'format')\n"
                       "HINT: pass a checkpoint written by effnet train (layout: docs/checkpoint-format.md)", path);
    if (strcmp(format, EFF_CKPT_FORMAT) != 0)
        return set_err(err, errlen, "'%s' is not an effnet checkpoint: root attribute 'format' is '%s', expected '%s'\n"
                       "HINT: pass a checkpoint written by effnet train", path, format, EFF_CKPT_FORMAT);
    if (!root_attr_i64(f, "schema_version", &h->schema_version))
        return set_err(err, errlen, "checkpoint '%s' has no readable root attribute 'schema_version'\nHINT: the file is "
                       "damaged or was not written by effnet", path);
    if (h->schema_version != EFF_CKPT_SCHEMA_VERSION)
        return set_err(err, errlen, "checkpoint '%s' has schema version %lld; this effnet reads version %d\nHINT: %s",
                       path, (long long)h->schema_version, EFF_CKPT_SCHEMA_VERSION,
                       h->schema_version > EFF_CKPT_SCHEMA_VERSION ? "it was written by a newer effnet: use that version"
                                                                   : "it was written by an older effnet: use that version");
    if (!root_attr_str(f, "model", h->model, sizeof h->model))
        return set_err(err, errlen, "checkpoint '%s' has no readable root attribute 'model'", path);
    if (!root_attr_i64(f, "classes", &classes) || classes < 1 || classes > INT_MAX)
        return set_err(err, errlen, "checkpoint '%s' has no valid root attribute 'classes'", path);
    if (!root_attr_i64(f, "resolution", &resolution) || resolution < 1 || resolution > INT_MAX)
        return set_err(err, errlen, "checkpoint '%s' has no valid root attribute 'resolution'", path);
    h->classes = (int)classes;
    h->resolution = (int)resolution;
    snprintf(h->variant, sizeof h->variant, "seed"); /* files without the attribute: the seed variant */
    if (H5Aexists(f, "variant") > 0 &&
        (!root_attr_str(f, "variant", h->variant, sizeof h->variant) || eff_variant_parse(h->variant) < 0))
        return set_err(err, errlen, "checkpoint '%s' has a bad root attribute 'variant' ('%s'; want seed or "
                       "torchvision)\nHINT: the file is damaged or was written by a newer effnet", path, h->variant);
    int64_t stride = 2; /* files without the attribute: the model's own stem */
    if (H5Aexists(f, "stem_stride") > 0 && (!root_attr_i64(f, "stem_stride", &stride) || (stride != 1 && stride != 2)))
        return set_err(err, errlen, "checkpoint '%s' has a bad root attribute 'stem_stride' (%lld; want 1 or 2)\n"
                       "HINT: the file is damaged or was written by a newer effnet", path, (long long)stride);
    h->stem_stride = (int)stride;
    return 1;
}

EffCkptFile *eff_ckpt_open(const char *path, char *err, size_t errlen) {
    EffCkptFile *f = eff_calloc(1, sizeof *f, "checkpoint handle");
    eff_h5_quiet_begin(&f->quiet);
    f->file = open_checkpoint(path, &f->header.bytes, &f->header.checksum, err, errlen);
    if (f->file >= 0 && read_header(f->file, path, &f->header, err, errlen)) {
        f->path = dup_str(path);
        return f;
    }
    if (f->file >= 0) (void)H5Fclose(f->file); /* err already says what is wrong with the file */
    eff_h5_quiet_end(&f->quiet);
    eff_free(f);
    return NULL;
}

int eff_ckpt_close(EffCkptFile *f, char *err, size_t errlen) {
    int ok = 1;
    if (H5Fclose(f->file) < 0) ok = set_err(err, errlen, "closing checkpoint '%s' failed", f->path);
    eff_h5_quiet_end(&f->quiet);
    eff_free(f->path);
    eff_free(f);
    return ok;
}

const EffCkptHeader *eff_ckpt_header(const EffCkptFile *f) { return &f->header; }
const char *eff_ckpt_path(const EffCkptFile *f) { return f->path; }
int eff_ckpt_spec(const EffCkptFile *f, EffModelSpec *spec) {
    if (!eff_model_spec(f->header.model, spec) || !eff_model_spec_set_variant(spec, f->header.variant)) return 0;
    spec->stem_stride = f->header.stem_stride;
    return 1;
}
int eff_ckpt_exists(EffCkptFile *f, const char *name) { return eff_h5_exists(f->file, name); }

long long eff_ckpt_group_size(EffCkptFile *f, const char *grp) {
    if (!eff_h5_exists(f->file, grp)) return 0;
    H5G_info_t gi;
    if (H5Gget_info_by_name(f->file, grp, &gi, H5P_DEFAULT) < 0) ckpt_fatal(f, "cannot list group %s", grp);
    return (long long)gi.nlinks;
}

int eff_checkpoint_peek(const char *path, char *model_name, size_t model_cap, int *classes, int *resolution, char *err,
                        size_t errlen) {
    EffCkptFile *f = eff_ckpt_open(path, err, errlen);
    if (!f) return 0;
    EffCkptHeader h = f->header;
    if (!eff_ckpt_close(f, err, errlen)) return 0;
    if (model_name && model_cap) snprintf(model_name, model_cap, "%s", h.model);
    if (classes) *classes = h.classes;
    if (resolution) *resolution = h.resolution;
    return 1;
}

int eff_checkpoint_peek_variant(const char *path, EffModelSpec *spec, char *err, size_t errlen) {
    EffCkptFile *f = eff_ckpt_open(path, err, errlen);
    if (!f) return 0;
    const int ok = eff_model_spec_set_variant(spec, f->header.variant); /* read_header checked the name */
    spec->stem_stride = f->header.stem_stride;
    return eff_ckpt_close(f, err, errlen) && ok;
}

/* ---- reading: state_dict keys and tensors ------------------------------------- */

/* Append key name with view v's shape; v NULL: a num_batches_tracked (an integer scalar). */
static void add_key(EffCkptKeys *ks, const char *name, const EffView *v) {
    EffCkptKey *k = &ks->k[ks->n++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->numel = 1;
    k->kind = v ? v->kind : EFF_KIND_BUFFER;
    k->is_param = v && v->kind != EFF_KIND_BUFFER; /* m->btab holds only EFF_KIND_BUFFER views */
    k->is_int = !v;
    if (!v) return;
    k->ndim = v->ndim;
    memcpy(k->shape, v->shape, sizeof k->shape);
    k->numel = v->numel;
}

void eff_ckpt_keys(const EffModel *m, EffCkptKeys *out) {
    out->n = 0;
    out->k = eff_calloc((size_t)(m->ptab.count + 2 * m->btab.count), sizeof *out->k, "checkpoint key table");
    static const char *const stats[] = {"running_mean", "running_var"};
    char name[sizeof out->k->name];
    for (int i = 0; i < m->ptab.count; i++) {
        const EffView *v = &m->ptab.views[i];
        add_key(out, v->name, v);
        int n = (int)strlen(v->name) - 5; /* the BN's prefix, before ".bias" */
        if (v->kind != EFF_KIND_BN || n < 0 || strcmp(v->name + n, ".bias") != 0) continue;
        for (int s = 0; s < 2; s++) {
            snprintf(name, sizeof name, "%.*s.%s", n, v->name, stats[s]);
            const EffView *bv = eff_table_find(&m->btab, name);
            EFF_CHECK(bv, "internal: BN buffer '%s' missing from the model's table", name);
            add_key(out, name, bv);
        }
        snprintf(name, sizeof name, "%.*s.num_batches_tracked", n, v->name);
        add_key(out, name, NULL);
    }
}

void eff_ckpt_keys_free(EffCkptKeys *ks) {
    eff_free(ks->k);
    memset(ks, 0, sizeof *ks);
}

const EffCkptKey *eff_ckpt_key_find(const EffCkptKeys *ks, const char *name) {
    for (int i = 0; i < ks->n; i++)
        if (strcmp(ks->k[i].name, name) == 0) return &ks->k[i];
    return NULL;
}

/* The name of link i (in name order) of group grp, malloc'd. */
static char *link_name(EffCkptFile *f, const char *grp, hsize_t i) {
    ssize_t len = H5Lget_name_by_idx(f->file, grp, H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
    if (len < 0) ckpt_fatal(f, "cannot read entry %llu of %s", (unsigned long long)i, grp);
    char *name = eff_malloc((size_t)len + 1, "tensor name");
    if (H5Lget_name_by_idx(f->file, grp, H5_INDEX_NAME, H5_ITER_INC, i, name, (size_t)len + 1, H5P_DEFAULT) != len)
        ckpt_fatal(f, "cannot read entry %llu of %s", (unsigned long long)i, grp);
    return name;
}

char *eff_ckpt_match(EffCkptFile *f, const char *grp, const EffCkptKeys *ks, int params_only, char *present) {
    H5G_info_t gi;
    if (H5Gget_info_by_name(f->file, grp, &gi, H5P_DEFAULT) < 0) ckpt_fatal(f, "cannot list group %s", grp);
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char *name = link_name(f, grp, i);
        const EffCkptKey *k = eff_ckpt_key_find(ks, name);
        if (!k || (params_only && !k->is_param)) return name;
        if (present) present[k - ks->k] = 1;
        eff_free(name);
    }
    return NULL;
}

static void dtype_name(hid_t t, char *buf, size_t cap) {
    H5T_class_t cl = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    H5T_sign_t sg = cl == H5T_INTEGER ? H5Tget_sign(t) : H5T_SGN_2;
    if (cl < 0 || sz == 0 || sg < 0) snprintf(buf, cap, "unknown");
    else if (cl == H5T_FLOAT) snprintf(buf, cap, "float%zu", sz * 8);
    else if (cl == H5T_INTEGER) snprintf(buf, cap, "%sint%zu", sg == H5T_SGN_NONE ? "u" : "", sz * 8);
    else if (cl == H5T_STRING) snprintf(buf, cap, "string");
    else snprintf(buf, cap, "class%d", (int)cl);
}

_Static_assert(sizeof ((EffCkptTensor *)0)->shape / sizeof(int64_t) == H5S_MAX_RANK, "EffCkptTensor.shape: H5S_MAX_RANK");

void eff_ckpt_tensor(EffCkptFile *f, const EffCkptKey *k, EffCkptTensor *out) {
    char path[192];
    snprintf(path, sizeof path, "/model/%s", k->name);
    memset(out, 0, sizeof *out);
    hid_t d = H5Dopen2(f->file, path, H5P_DEFAULT);
    if (d < 0) ckpt_fatal(f, "'%s' is not a readable dataset", path);
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
    if (sp < 0 || t < 0) ckpt_fatal(f, "cannot read the dataspace or type of '%s'", path);
    out->ndim = H5Sget_simple_extent_ndims(sp);
    if (out->ndim < 0) ckpt_fatal(f, "cannot read the rank of '%s'", path);
    hsize_t hd[H5S_MAX_RANK];
    if (H5Sget_simple_extent_dims(sp, hd, NULL) != out->ndim) ckpt_fatal(f, "cannot read the dims of '%s'", path);
    for (int i = 0; i < out->ndim; i++) out->shape[i] = (int64_t)hd[i];
    H5T_class_t cl = H5Tget_class(t);
    out->type_class = (int)cl;
    out->is_float = cl == H5T_FLOAT;
    out->is_int = cl == H5T_INTEGER;
    dtype_name(t, out->dtype, sizeof out->dtype);
    if (H5Tclose(t) < 0 || H5Sclose(sp) < 0 || H5Dclose(d) < 0) ckpt_fatal(f, "closing '%s'", path);
}

double *eff_ckpt_read(EffCkptFile *f, const EffCkptKey *k) {
    char path[192];
    snprintf(path, sizeof path, "/model/%s", k->name);
    hid_t d = H5Dopen2(f->file, path, H5P_DEFAULT);
    if (d < 0) ckpt_fatal(f, "cannot open tensor '%s'", path);
    hid_t sp = H5Dget_space(d);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (n < 0 || H5Sclose(sp) < 0) ckpt_fatal(f, "cannot read the size of tensor '%s'", path);
    if ((size_t)n != k->numel) ckpt_fatal(f, "tensor '%s' has %lld values, not %zu", path, (long long)n, k->numel);
    double *x = eff_malloc(k->numel * sizeof(double), k->name);
    if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0) {
        char detail[512];
        eff_h5_error_detail(detail, sizeof detail);
        EFF_FATAL("reading tensor '%s' from checkpoint '%s' failed: %s\nHINT: the file is damaged (a checksum error "
                  "means flipped bits); use another copy (best.h5 or an earlier checkpoint)", path, f->path, detail);
    }
    if (H5Dclose(d) < 0) ckpt_fatal(f, "closing tensor '%s'", path);
    return x;
}

/* ---- reading: attributes -------------------------------------------------------- */

/* Attribute `name` of object loc (obj: its name, for messages) into *out. */
static void read_attr(const EffCkptFile *f, hid_t loc, const char *obj, const char *name, EffCkptAttr *out) {
    memset(out, 0, sizeof *out);
    out->name = dup_str(name);
    out->kind = EFF_CKPT_ATTR_OTHER;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) ckpt_fatal(f, "cannot open attribute '%s' of '%s'", name, obj);
    hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
    if (sp < 0 || t < 0) ckpt_fatal(f, "cannot read the type of attribute '%s' of '%s'", name, obj);
    hssize_t npts = H5Sget_simple_extent_npoints(sp);
    H5T_class_t cl = H5Tget_class(t);
    if (npts == 1 && cl == H5T_STRING) {
        out->s = attr_text(a, t);
        if (!out->s) ckpt_fatal(f, "cannot read attribute '%s' of '%s'", name, obj);
        out->kind = EFF_CKPT_ATTR_STR;
    } else if (npts == 1 && cl == H5T_INTEGER) {
        H5T_sign_t sg = H5Tget_sign(t);
        if (sg < 0) ckpt_fatal(f, "cannot read the sign of attribute '%s' of '%s'", name, obj);
        int is_unsigned = sg == H5T_SGN_NONE;
        if (H5Aread(a, is_unsigned ? H5T_NATIVE_ULLONG : H5T_NATIVE_LLONG, is_unsigned ? (void *)&out->u : (void *)&out->i) < 0)
            ckpt_fatal(f, "cannot read attribute '%s' of '%s'", name, obj);
        out->kind = is_unsigned ? EFF_CKPT_ATTR_UINT : EFF_CKPT_ATTR_INT;
    } else if (npts == 1 && cl == H5T_FLOAT) {
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &out->d) < 0) ckpt_fatal(f, "cannot read attribute '%s' of '%s'", name, obj);
        out->kind = EFF_CKPT_ATTR_FLOAT;
    } else {
        char dt[32], buf[96];
        dtype_name(t, dt, sizeof dt);
        snprintf(buf, sizeof buf, "<%s, %lld values>", dt, (long long)npts);
        out->s = dup_str(buf);
    }
    if (H5Tclose(t) < 0 || H5Sclose(sp) < 0 || H5Aclose(a) < 0) ckpt_fatal(f, "closing attribute '%s' of '%s'", name, obj);
}

typedef struct AttrWalk {
    const EffCkptFile *f;
    const char *obj;
    EffCkptAttrs *list;
} AttrWalk;

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    AttrWalk *w = data;
    EffCkptAttrs *l = w->list;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        EffCkptAttr *na = eff_calloc((size_t)cap, sizeof *na, "attribute list");
        if (l->n) memcpy(na, l->a, (size_t)l->n * sizeof *na);
        eff_free(l->a);
        l->a = na;
        l->cap = cap;
    }
    read_attr(w->f, loc, w->obj, name, &l->a[l->n++]);
    return 0;
}

int eff_ckpt_attrs(EffCkptFile *f, const char *obj, EffCkptAttrs *out) {
    memset(out, 0, sizeof *out);
    if (strcmp(obj, "/") != 0 && !eff_h5_exists(f->file, obj)) return 0;
    hid_t o = H5Oopen(f->file, obj, H5P_DEFAULT);
    if (o < 0) ckpt_fatal(f, "cannot open '%s'", obj);
    AttrWalk w = {f, obj, out};
    hsize_t idx = 0;
    if (H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &w) < 0)
        ckpt_fatal(f, "cannot list the attributes of '%s'", obj);
    if (H5Oclose(o) < 0) ckpt_fatal(f, "closing '%s'", obj);
    return 1;
}

void eff_ckpt_attrs_free(EffCkptAttrs *l) {
    for (int i = 0; i < l->n; i++) {
        eff_free(l->a[i].name);
        eff_free(l->a[i].s);
    }
    eff_free(l->a);
    memset(l, 0, sizeof *l);
}

const EffCkptAttr *eff_ckpt_attr_find(const EffCkptAttrs *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->a[i].name, name) == 0) return &l->a[i];
    return NULL;
}

/* ---- loading ----------------------------------------------------------------- */

/* Every link in group grp must be a key of the model (like load_state_dict(strict=True)). */
static void check_members(EffCkptFile *cf, const char *grp, const EffModel *m, const EffCkptKeys *ks, int params_only) {
    EFF_CHECK(eff_h5_exists(cf->file, grp), "group '%s' missing in checkpoint '%s'\nHINT: the file is not a complete "
              "effnet checkpoint (layout: docs/checkpoint-format.md)", grp, cf->path);
    char *bad = eff_ckpt_match(cf, grp, ks, params_only, NULL);
    if (bad)
        EFF_FATAL("unexpected tensor '%s/%s' in checkpoint '%s': not a state_dict key of %s with %d classes\n"
                  "HINT: the file was written for another model or version", grp, bad, cf->path, m->spec.name, m->classes);
}

/* Read every view of t from grp (PyTorch layout) into backend memory dst;
 * the first `absent` views are not in the file and are zeroed. */
static void load_table(hid_t f, const char *path, const char *grp, const EffTable *t, int absent, const EffBackend *be,
                       float *dst, float *ours, float *torch_buf) {
    char name[160];
    for (int i = 0; i < t->count; i++) {
        const EffView *v = &t->views[i];
        if (i < absent) { /* a tensor the file's run had frozen: no optimizer state */
            be->zero(be, dst + v->offset, v->numel * sizeof(float));
            continue;
        }
        snprintf(name, sizeof name, "%s/%s", grp, v->name);
        eff_h5_check_shape(f, path, name, v->ndim, v->shape, 1);
        eff_h5_read_f32(f, path, name, torch_buf, v->numel);
        long long bad = first_nonfinite(torch_buf, v->numel);
        EFF_CHECK(bad < 0, "tensor '%s' in checkpoint '%s' has a non-finite value (%g at index %lld)\nHINT: the run "
                  "had diverged or the file is damaged; use an earlier checkpoint", name, path, (double)torch_buf[bad], bad);
        eff_view_from_torch(v, torch_buf, ours);
        be->upload(be, dst + v->offset, ours, v->numel * sizeof(float));
    }
}

/* Check and read every BN's num_batches_tracked (an int64 scalar); returns
 * the first BN's, with a warning for any BN whose count differs. */
static int64_t load_bn_batches(hid_t f, const char *path, const EffModel *m) {
    int64_t nbt = -1;
    const char *first_bn = NULL;
    for (int i = 0; i < m->btab.count; i++) {
        const char *bname = m->btab.views[i].name;
        size_t pl = bn_prefix_len(bname);
        if (!pl) continue;
        char name[160];
        snprintf(name, sizeof name, "/model/%.*s.num_batches_tracked", (int)pl, bname);
        eff_h5_check_shape(f, path, name, 0, NULL, 0);
        int64_t v;
        eff_h5_read_i64(f, path, name, &v, 1);
        EFF_CHECK(v >= 0, "'%s' in checkpoint '%s' is negative (%lld)", name, path, (long long)v);
        if (!first_bn) {
            nbt = v;
            first_bn = bname;
        } else if (v != nbt) {
            /* Our model keeps one counter for all BNs (momentum 0.1 never reads it). */
            fprintf(stderr, "effnet: warning: '%s' in '%s' is %lld but %.*s's is %lld; using %lld for every BN\n", name,
                    path, (long long)v, (int)bn_prefix_len(first_bn), first_bn, (long long)nbt, (long long)nbt);
        }
    }
    return nbt;
}

static void add_name(char *list, size_t cap, const char *name) {
    const size_t n = strlen(list);
    if (n + strlen(name) + 8 >= cap) {
        if (n + 6 < cap && !strstr(list, ", ...")) strcat(list, ", ...");
        return;
    }
    if (n) strcat(list, ", ");
    strcat(list, name);
}

/* One table of init_from: load the views whose shape matches; the others must be the classifier's. */
static void init_table(EffCkptFile *cf, const EffTable *t, float *dst, const EffModel *m, int strict, float *ours,
                       float *torch_buf, EffInitReport *rep) {
    char name[160];
    for (int i = 0; i < t->count; i++) {
        const EffView *v = &t->views[i];
        snprintf(name, sizeof name, "/model/%s", v->name);
        EFF_CHECK(eff_h5_exists(cf->file, name), "train.init_from: checkpoint '%s' has no tensor '%s' of %s\nHINT: "
                  "initialise from a checkpoint of the same model and variant", cf->path, name, m->spec.name);
        int64_t dims[8];
        const int nd = eff_h5_dims(cf->file, cf->path, name, dims, 8);
        int same = nd == v->ndim;
        for (int d = 0; same && d < nd; d++) same = dims[d] == v->shape[d];
        if (!same) {
            EFF_CHECK(!strncmp(v->name, "classifier.", 11), "train.init_from: tensor '%s' in '%s' has another shape "
                      "than %s's (not the classifier, whose class count may differ)\nHINT: initialise from a "
                      "checkpoint of the same model and variant", name, cf->path, m->spec.name);
            EFF_CHECK(!strict, "train.init_from: '%s' would be re-initialised (the checkpoint has %d classes, the "
                      "model %d) and train.init_strict is on", name, rep->file_classes, m->classes);
            rep->reinit++;
            add_name(rep->reinit_names, sizeof rep->reinit_names, v->name);
            continue;
        }
        eff_h5_read_f32(cf->file, cf->path, name, torch_buf, v->numel);
        const long long bad = first_nonfinite(torch_buf, v->numel);
        EFF_CHECK(bad < 0, "tensor '%s' in checkpoint '%s' has a non-finite value (index %lld)", name, cf->path, bad);
        eff_view_from_torch(v, torch_buf, ours);
        m->be->upload(m->be, dst + v->offset, ours, v->numel * sizeof(float));
        rep->loaded++;
    }
}

void eff_checkpoint_init_from(const char *path, EffModel *m, int strict, EffInitReport *rep) {
    char err[1024];
    memset(rep, 0, sizeof *rep);
    EffCkptFile *cf = eff_ckpt_open(path, err, sizeof err);
    if (!cf) EFF_FATAL("train.init_from: %s", err);
    EffModelSpec spec;
    EFF_CHECK(eff_ckpt_spec(cf, &spec) && !strcmp(spec.name, m->spec.name), "train.init_from: checkpoint '%s' holds "
              "%s, but the model is %s\nHINT: set model.name to match, or convert the weights of %s", path,
              cf->header.model, m->spec.name, m->spec.name);
    EFF_CHECK(spec.variant == m->spec.variant, "train.init_from: checkpoint '%s' holds the %s variant of %s, but "
              "model.variant is %s\nHINT: set model.variant = %s (torchvision weights: import them with effnet-torch "
              "import --variant torchvision)", path, cf->header.variant, spec.name, eff_variant_name(m->spec.variant),
              cf->header.variant);
    rep->file_classes = cf->header.classes;
    rep->file_stem_stride = cf->header.stem_stride; /* may differ: ImageNet weights into a CIFAR stem (the shapes agree) */
    size_t mx = max_numel(&m->ptab), mb = max_numel(&m->btab);
    if (mb > mx) mx = mb;
    float *ours = eff_malloc(mx * sizeof(float), "checkpoint staging buffer");
    float *torch_buf = eff_malloc(mx * sizeof(float), "checkpoint staging buffer");
    init_table(cf, &m->ptab, m->param, m, strict, ours, torch_buf, rep);
    init_table(cf, &m->btab, m->bufs, m, strict, ours, torch_buf, rep);
    eff_free(ours);
    eff_free(torch_buf);
    EffCkptKeys ks; /* the file's tensors the model lacks: ignored */
    eff_ckpt_keys(m, &ks);
    H5G_info_t gi;
    if (H5Gget_info_by_name(cf->file, "/model", &gi, H5P_DEFAULT) < 0) ckpt_fatal(cf, "cannot list group /model");
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char *name = link_name(cf, "/model", i);
        if (!eff_ckpt_key_find(&ks, name)) {
            EFF_CHECK(!strict, "train.init_from: checkpoint '%s' has tensor '/model/%s', which %s lacks, and "
                      "train.init_strict is on", path, name, m->spec.name);
            rep->ignored++;
            add_name(rep->ignored_names, sizeof rep->ignored_names, name);
        }
        eff_free(name);
    }
    eff_ckpt_keys_free(&ks);
    m->bn_batches = 0;
    if (!eff_ckpt_close(cf, err, sizeof err)) EFF_FATAL("%s", err);
}

/* /optimizer: the step and the moments into m's whole (unsharded, unfrozen)
 * state; the tensors the file's run had frozen (attribute frozen: the first
 * ones of the table, absent in older files) have none and load as zeros. */
static void load_moments(EffCkptFile *cf, EffModel *m, const EffCkptKeys *ks, float *ours, float *torch_buf) {
    const hid_t f = cf->file;
    const char *path = cf->path;
    EFF_CHECK(eff_h5_exists(f, "/optimizer"), "checkpoint '%s' has no optimizer state (group /optimizer)\nHINT: it "
              "can be evaluated or fine-tuned from, not resumed", path);
    EFF_CHECK(m->opt_nseg == 1 && m->opt_n == m->ptab.total, "loading the optimizer state of '%s' needs the model's "
              "whole state (%d range(s) of %zu parameters; internal error: load before freezing or sharding)", path,
              m->opt_nseg, m->opt_n);
    int64_t step, frozen = 0;
    eff_h5_attr_read(f, path, "/optimizer", "step", H5T_NATIVE_INT64, &step);
    EFF_CHECK(step >= 0 && step <= LONG_MAX, "optimizer step %lld in checkpoint '%s' is out of range", (long long)step, path);
    if (H5Aexists_by_name(f, "/optimizer", "frozen", H5P_DEFAULT) > 0)
        eff_h5_attr_read(f, path, "/optimizer", "frozen", H5T_NATIVE_INT64, &frozen);
    EFF_CHECK(frozen >= 0 && frozen < m->ptab.count, "attribute frozen = %lld of /optimizer in checkpoint '%s' is out "
              "of range (the model has %d parameter tensors)\nHINT: the file is damaged; use another checkpoint",
              (long long)frozen, path, m->ptab.count);
    check_members(cf, "/optimizer/exp_avg", m, ks, 1);
    check_members(cf, "/optimizer/exp_avg_sq", m, ks, 1);
    load_table(f, path, "/optimizer/exp_avg", &m->ptab, (int)frozen, m->be, m->adam_m, ours, torch_buf);
    load_table(f, path, "/optimizer/exp_avg_sq", &m->ptab, (int)frozen, m->be, m->adam_v, ours, torch_buf);
    m->adam_t = (long)step;
}

void eff_checkpoint_load(const char *path, EffModel *m, int load_optimizer, EffTrainState *st, char **config_out) {
    EFF_CHECK(path && m, "eff_checkpoint_load: path and model are required");
    if (config_out) *config_out = NULL;
    char err[1024];
    EffCkptFile *cf = eff_ckpt_open(path, err, sizeof err);
    if (!cf) EFF_FATAL("%s", err);
    const EffCkptHeader h = cf->header;
    const hid_t f = cf->file;
    EffModelSpec spec;
    EFF_CHECK(eff_ckpt_spec(cf, &spec), "checkpoint '%s' is of unknown model '%s'\nHINT: effnet knows "
              "efficientnet-b0 .. efficientnet-b7", path, h.model);
    EFF_CHECK(strcmp(spec.name, m->spec.name) == 0, "checkpoint '%s' holds %s, but the model is %s\nHINT: set the model "
              "to %s, or use a checkpoint of %s", path, spec.name, m->spec.name, spec.name, m->spec.name);
    EFF_CHECK(spec.variant == m->spec.variant, "checkpoint '%s' holds the %s variant of %s, but the model is the %s "
              "variant\nHINT: set model.variant = %s, or use a checkpoint of the %s variant", path, h.variant, spec.name,
              eff_variant_name(m->spec.variant), h.variant, eff_variant_name(m->spec.variant));
    EFF_CHECK(h.classes == m->classes, "checkpoint '%s' has %lld classes, but the model has %d\nHINT: use a checkpoint "
              "trained on the same data set (same number of classes)", path, (long long)h.classes, m->classes);
    EFF_CHECK(h.stem_stride == m->spec.stem_stride, "checkpoint '%s' was trained with stem stride %d, but the model's "
              "is %d\nHINT: set model.stem_stride = %d (train.init_from takes weights into either stem)", path,
              h.stem_stride, m->spec.stem_stride, h.stem_stride);

    const EffBackend *be = m->be;
    size_t mx = max_numel(&m->ptab), mb = max_numel(&m->btab);
    if (mb > mx) mx = mb;
    float *ours = eff_malloc(mx * sizeof(float), "checkpoint staging buffer");
    float *torch_buf = eff_malloc(mx * sizeof(float), "checkpoint staging buffer");

    EffCkptKeys ks;
    eff_ckpt_keys(m, &ks);
    check_members(cf, "/model", m, &ks, 0);
    load_table(f, path, "/model", &m->ptab, 0, be, m->param, ours, torch_buf);
    load_table(f, path, "/model", &m->btab, 0, be, m->bufs, ours, torch_buf);
    m->bn_batches = load_bn_batches(f, path, m);

    char optimizer[sizeof st->optimizer] = "";
    if (eff_h5_exists(f, "/optimizer")) {
        char *name = eff_h5_attr_read_str(f, path, "/optimizer", "name", 0);
        snprintf(optimizer, sizeof optimizer, "%s", name);
        eff_free(name);
    }
    if (load_optimizer) load_moments(cf, m, &ks, ours, torch_buf);
    eff_free(ours);
    eff_free(torch_buf);
    eff_ckpt_keys_free(&ks);

    if (st) {
        memset(st, 0, sizeof *st);
        const char *g = "/train";
        EFF_CHECK(eff_h5_exists(f, g), "checkpoint '%s' has no training state (group /train)\nHINT: it can be evaluated "
                  "or fine-tuned from, not resumed", path);
        eff_h5_attr_read(f, path, g, "epoch", H5T_NATIVE_INT64, &st->epoch);
        eff_h5_attr_read(f, path, g, "step_in_epoch", H5T_NATIVE_INT64, &st->step_in_epoch);
        eff_h5_attr_read(f, path, g, "global_step", H5T_NATIVE_INT64, &st->global_step);
        eff_h5_attr_read(f, path, g, "best_epoch", H5T_NATIVE_INT64, &st->best_epoch);
        eff_h5_attr_read(f, path, g, "best_acc", H5T_NATIVE_DOUBLE, &st->best_acc);
        eff_h5_attr_read(f, path, g, "last_acc", H5T_NATIVE_DOUBLE, &st->last_acc);
        eff_h5_attr_read(f, path, g, "last_loss", H5T_NATIVE_DOUBLE, &st->last_loss);
        eff_h5_attr_read(f, path, g, "seed", H5T_NATIVE_UINT64, &st->seed);
        int64_t ws;
        eff_h5_attr_read(f, path, g, "world_size", H5T_NATIVE_INT64, &ws);
        EFF_CHECK(ws >= 1 && ws <= INT_MAX, "world_size %lld in checkpoint '%s' is out of range", (long long)ws, path);
        st->world_size = (int)ws;
        eff_h5_attr_read(f, path, g, "lr", H5T_NATIVE_DOUBLE, &st->lr);
        if (H5Aexists_by_name(f, g, "global_batch", H5P_DEFAULT) > 0) { /* absent before elastic resume: 0 */
            eff_h5_attr_read(f, path, g, "batch_per_rank", H5T_NATIVE_INT64, &st->batch_per_rank);
            eff_h5_attr_read(f, path, g, "accum", H5T_NATIVE_INT64, &st->accum);
            eff_h5_attr_read(f, path, g, "global_batch", H5T_NATIVE_INT64, &st->global_batch);
            EFF_CHECK(st->batch_per_rank >= 1 && st->accum >= 1 &&
                      st->global_batch == (int64_t)st->world_size * st->batch_per_rank * st->accum,
                      "checkpoint '%s': inconsistent batch state (world_size %d x batch_per_rank %lld x accum %lld != "
                      "global_batch %lld)\nHINT: the file is damaged; use another checkpoint", path, st->world_size,
                      (long long)st->batch_per_rank, (long long)st->accum, (long long)st->global_batch);
        }
        if (H5Aexists_by_name(f, g, "loss_scale", H5P_DEFAULT) > 0) { /* absent before the fp16 scaler was saved: 0 */
            eff_h5_attr_read(f, path, g, "loss_scale", H5T_NATIVE_DOUBLE, &st->loss_scale);
            eff_h5_attr_read(f, path, g, "loss_scale_good_steps", H5T_NATIVE_INT64, &st->loss_scale_good_steps);
            eff_h5_attr_read(f, path, g, "loss_scale_skipped", H5T_NATIVE_INT64, &st->loss_scale_skipped);
            EFF_CHECK(st->loss_scale >= 0 && isfinite(st->loss_scale) && st->loss_scale_good_steps >= 0 &&
                      st->loss_scale_skipped >= 0, "checkpoint '%s': bad loss-scaler state (scale %g, good steps %lld, "
                      "skipped %lld)", path, st->loss_scale, (long long)st->loss_scale_good_steps,
                      (long long)st->loss_scale_skipped);
        }
        snprintf(st->optimizer, sizeof st->optimizer, "%s", optimizer);
    }
    if (config_out) *config_out = eff_h5_attr_read_str(f, path, "/", "config", 1);
    if (!eff_ckpt_close(cf, err, sizeof err)) EFF_FATAL("%s", err);
}

/* sha256.c: SHA-256 through OpenSSL's EVP interface (libcrypto). */
#define _POSIX_C_SOURCE 200809L /* fseeko */
#include "sha256.h"
#include "common.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>

void eff_sha256_to_hex(const uint8_t digest[32], char out[65]) {
    static const char hexd[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hexd[digest[i] >> 4];
        out[2 * i + 1] = hexd[digest[i] & 15];
    }
    out[64] = '\0';
}

void eff_sha256_hex(const void *data, size_t n, char out[65]) {
    uint8_t d[32];
    unsigned int len = 0;
    EFF_CHECK(EVP_Digest(data, n, d, &len, EVP_sha256(), NULL) == 1 && len == 32,
              "OpenSSL SHA-256 of a %zu-byte buffer failed", n);
    eff_sha256_to_hex(d, out);
}

int eff_sha256_file(const char *path, char out[65]) { return eff_sha256_file_from(path, 0, out, NULL); }

int eff_sha256_file_from(const char *path, long long offset, char out[65], long long *bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    if (offset > 0 && fseeko(f, (off_t)offset, SEEK_SET) != 0) {
        const int e = errno;
        fclose(f);
        errno = e;
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EFF_CHECK(ctx, "OpenSSL EVP_MD_CTX_new failed (out of memory?)");
    EFF_CHECK(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1, "OpenSSL SHA-256 init failed");
    unsigned char buf[1 << 16];
    size_t n;
    long long total = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        EFF_CHECK(EVP_DigestUpdate(ctx, buf, n) == 1, "OpenSSL SHA-256 update failed on '%s'", path);
        total += (long long)n;
    }
    int err = ferror(f);
    fclose(f);
    uint8_t d[32];
    unsigned int len = 0;
    EFF_CHECK(EVP_DigestFinal_ex(ctx, d, &len) == 1 && len == 32, "OpenSSL SHA-256 final failed on '%s'", path);
    EVP_MD_CTX_free(ctx);
    if (err) { errno = EIO; return -1; }
    eff_sha256_to_hex(d, out);
    if (bytes) *bytes = total;
    return 0;
}

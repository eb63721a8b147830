/* sha256.h: SHA-256 digests (OpenSSL libcrypto) for the source-file, shard and checkpoint
 * checksums, as lower-case hex. */
#ifndef EFFNET_DATA_SHA256_H
#define EFFNET_DATA_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* Hex digest of a buffer: out gets 64 chars and a NUL. */
void eff_sha256_hex(const void *data, size_t n, char out[65]);
void eff_sha256_to_hex(const uint8_t digest[32], char out[65]);
/* Digest of a whole file. Returns 0 on success, -1 (errno set) when it cannot be read. */
int eff_sha256_file(const char *path, char out[65]);
/* Digest of the file from byte `offset` to its end; *bytes (if not NULL) gets
 * how many bytes that was. 0 on success, -1 (errno set) when unreadable. */
int eff_sha256_file_from(const char *path, long long offset, char out[65], long long *bytes);

#endif

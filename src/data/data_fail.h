/* data_fail.h: the error path of the shard readers (shard.c, images.c):
 * format the message into err (len bytes) and return -1. */
#ifndef EFFNET_DATA_FAIL_H
#define EFFNET_DATA_FAIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "common.h" /* EFF_PRINTF */

static inline int fail(char *err, size_t len, const char *fmt, ...) EFF_PRINTF(3, 4);
static inline int fail(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

#endif

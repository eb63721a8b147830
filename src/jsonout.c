/* jsonout.c: cJSON documents for --json and metrics.jsonl (jsonout.h). */
#define _POSIX_C_SOURCE 200809L
#include "jsonout.h"

#include "common.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define OOM_HINT "\nHINT: the node is out of memory; free some, or run with fewer threads or a smaller batch"

static cJSON *checked(cJSON *item, const char *what) {
    EFF_CHECK(item, "out of memory building the JSON output (%s)" OOM_HINT, what);
    return item;
}

/* Length of the well-formed UTF-8 sequence at p (Unicode table 3-7: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0 with *sub the
 * length of the maximal subpart to replace by one U+FFFD. The terminating NUL
 * is never a continuation byte, so a truncated sequence stops there. */
static size_t utf8_seq(const unsigned char *p, size_t *sub) {
    const unsigned c = p[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
        *sub = 1;
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        const unsigned b = p[i], l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *sub = i;
            return 0;
        }
    }
    return n;
}

char *eff_json_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    const size_t len = strlen(s);
    char *out = eff_malloc(3 * len + 1, "JSON string"), *o = out; /* each bad byte: 3 bytes of U+FFFD at most */
    while (*p) {
        size_t sub = 0, n = utf8_seq(p, &sub);
        if (n) {
            memcpy(o, p, n);
            o += n;
            p += n;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p += sub;
        }
    }
    *o = '\0';
    return out;
}

static int utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t sub, n;
    while (*p && (n = utf8_seq(p, &sub)) != 0) p += n;
    return *p == '\0';
}

cJSON *eff_json_object(void) { return checked(cJSON_CreateObject(), "an object"); }
cJSON *eff_json_array(void) { return checked(cJSON_CreateArray(), "an array"); }

/* item into parent, under name (sanitized: a key may come from a file) or appended. */
static cJSON *add(cJSON *parent, const char *name, cJSON *item) {
    if (name) {
        char *fixed = utf8_valid(name) ? NULL : eff_json_utf8(name);
        const char *key = fixed ? fixed : name;
        const int ok = cJSON_AddItemToObject(parent, key, item); /* copies the key */
        EFF_CHECK(ok, "out of memory building the JSON output (key '%s')" OOM_HINT, key);
        eff_free(fixed);
    } else {
        EFF_CHECK(cJSON_AddItemToArray(parent, item), "out of memory building the JSON output (an array element)" OOM_HINT);
    }
    return item;
}

cJSON *eff_json_add_object(cJSON *parent, const char *name) { return add(parent, name, eff_json_object()); }
cJSON *eff_json_add_array(cJSON *parent, const char *name) { return add(parent, name, eff_json_array()); }

void eff_json_str(cJSON *parent, const char *name, const char *s) {
    if (!s) s = "";
    char *fixed = utf8_valid(s) ? NULL : eff_json_utf8(s);
    add(parent, name, checked(cJSON_CreateString(fixed ? fixed : s), "a string")); /* copies the string */
    eff_free(fixed);
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? : what printf's %f, %g and %e
 * write for a finite value, checked all the same */
static int is_json_number(const char *p) {
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (*p >= '0' && *p <= '9') p++;
    else return 0;
    if (*p == '.') {
        if (!(*++p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    return *p == '\0';
}

/* The number as printf writes it with fmt (cJSON's own printing would turn
 * 1.00 into the integer 1 and round-trip digits nobody asked for); null when
 * it is not finite. */
void eff_json_num(cJSON *parent, const char *name, double x, const char *fmt) {
    if (!isfinite(x)) {
        eff_json_null(parent, name);
        return;
    }
    char buf[512];
    const int w = snprintf(buf, sizeof buf, fmt ? fmt : "%.17g", x);
    EFF_CHECK(w > 0 && (size_t)w < sizeof buf && is_json_number(buf), "internal: JSON number format '%s' of %g gave '%s'",
              fmt ? fmt : "%.17g", x, buf);
    add(parent, name, checked(cJSON_CreateRaw(buf), "a number"));
}

void eff_json_int(cJSON *parent, const char *name, long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    add(parent, name, checked(cJSON_CreateRaw(buf), "an integer"));
}

void eff_json_uint(cJSON *parent, const char *name, unsigned long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", v);
    add(parent, name, checked(cJSON_CreateRaw(buf), "an integer"));
}

void eff_json_bool(cJSON *parent, const char *name, int b) {
    add(parent, name, checked(cJSON_CreateBool(b != 0), "a boolean"));
}

void eff_json_null(cJSON *parent, const char *name) { add(parent, name, checked(cJSON_CreateNull(), "a null")); }

void eff_json_write(cJSON *doc, FILE *f, const char *what) {
    char *text = cJSON_PrintUnformatted(doc);
    EFF_CHECK(text, "out of memory printing the JSON output for %s" OOM_HINT, what);
    errno = 0;
    const int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0;
    EFF_CHECK(ok, "writing %s failed: %s\nHINT: the disk may be full", what, strerror(errno));
    cJSON_free(text);
    cJSON_Delete(doc);
}

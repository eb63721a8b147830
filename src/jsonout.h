/* jsonout.h: machine-readable output (every --json document, every
 * metrics.jsonl line) built with cJSON, never printf, so it is valid JSON
 * whatever a path or config value holds.
 *
 * Each eff_json_* adder puts a value into `parent`: under `name` when parent
 * is an object, appended when name is NULL (parent an array). Every cJSON
 * allocation is checked: running out of memory is a fatal error, never a
 * half-written document.
 *
 *   strings   bytes that are not UTF-8 become U+FFFD, one per maximal invalid
 *             subpart (what Python's bytes.decode("utf-8", "replace") does);
 *             cJSON escapes quotes, backslashes and control characters
 *   numbers   non-finite (NaN, Inf) -> null, JSON having neither; else the
 *             text of `fmt`, one printf conversion of a double ("%.3f"; NULL:
 *             "%.17g", every digit), checked to be a JSON number: the figures
 *             keep the precision and the type (1.00 stays a float to Python)
 *             they always had, which cJSON's own number printing would not
 *   integers  written from their decimal text, so 64-bit values stay exact
 *             and stay integers (cJSON's numbers are doubles)
 *
 * eff_json_write prints the document on one line (JSON Lines) and deletes it. */
#ifndef EFFNET_JSONOUT_H
#define EFFNET_JSONOUT_H

#include <cjson/cJSON.h>
#include <stdio.h>

cJSON *eff_json_object(void);
cJSON *eff_json_array(void);
/* A new object / array inside parent. */
cJSON *eff_json_add_object(cJSON *parent, const char *name);
cJSON *eff_json_add_array(cJSON *parent, const char *name);

void eff_json_str(cJSON *parent, const char *name, const char *s);
void eff_json_num(cJSON *parent, const char *name, double x, const char *fmt);
void eff_json_int(cJSON *parent, const char *name, long long v);
void eff_json_uint(cJSON *parent, const char *name, unsigned long long v);
void eff_json_bool(cJSON *parent, const char *name, int b);
void eff_json_null(cJSON *parent, const char *name);

/* doc on one line and a newline to f, flushed; deletes doc. `what` names the
 * destination in the error if the write fails. */
void eff_json_write(cJSON *doc, FILE *f, const char *what);

/* A copy of s that is valid UTF-8 (invalid subparts -> U+FFFD); free with eff_free. */
char *eff_json_utf8(const char *s);

#endif

/*
 * resultjson - reads the PASSporT extension fields of a libstirgate result
 * JSON (stirgate_result.json) for $stirgate(div), $stirgate(rcd_nam) and
 * $stirgate(rcd_crn).
 */
#ifndef STIRGATE_RESULTJSON_H
#define STIRGATE_RESULTJSON_H

#include <stddef.h>

/* result_div writes the "tn" of every element of the top-level "div"
 * array, comma-separated, into out (size len, NUL-terminated). Returns the
 * number of TNs written, 0 when there is no div, -1 when the JSON is not
 * what libstirgate writes or out is too small (out is then ""). */
int result_div(const char *js, char *out, size_t len);

/* result_rcd writes the string member key of the top-level "rcd" object
 * into out (size len), unescaped, control characters dropped. Returns its
 * length, 0 when absent, -1 as result_div. */
int result_rcd(const char *js, const char *key, char *out, size_t len);

#endif

/*
 * portcullis: a strict, bounded JSON reader (RFC 8259) for JWT headers and
 * payloads. Duplicate object keys are an error at every level: two readers
 * of one token must never see two different values for one claim.
 */
#ifndef PC_JSON_H
#define PC_JSON_H

#include <stddef.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_value {
    enum json_type type;
    /* STRING: decoded UTF-8; NUMBER: the literal text; BOOL: in boolean */
    char *str;
    size_t len;
    double num;
    int boolean;
    /* ARRAY / OBJECT */
    size_t n;
    char **keys;                 /* OBJECT only, decoded */
    size_t *key_lens;
    struct json_value *items;
    /* raw text of this value in the input (for handing objects on) */
    const char *raw;
    size_t raw_len;
};

/* Parse exactly one value (surrounding whitespace allowed). NULL + *why on
 * error. The result keeps pointers into text (raw), so text must outlive it. */
struct json_value *json_parse(const char *text, size_t len, const char **why);
void json_free(struct json_value *v);

/* Object member lookup; NULL when absent or v is not an object. */
const struct json_value *json_get(const struct json_value *v, const char *key);

#endif

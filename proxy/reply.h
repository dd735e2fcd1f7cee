/*
 * portcullis: locally generated responses.
 */
#ifndef PC_REPLY_H
#define PC_REPLY_H

#include "../lib/base.h"

const char *pc_reason_phrase(int status);
const char *pc_status_code_name(int status);

/* Append a complete response (head and body) to b. */
size_t pc_reply_build(struct pc_buf *b, int status, const char *content_type, const char *body,
                      size_t body_len, int close, int head_only, const char *request_id,
                      const char *extra_headers);

/* Append {"code":..,"message":..,"status":N} to b. */
size_t pc_reply_error_body(struct pc_buf *b, int status, const char *code, const char *message);

#endif

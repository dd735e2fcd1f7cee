/*
 * portcullis: responses the proxy writes itself, in Dify's error shape
 * {"code": "...", "message": "...", "status": N}.
 */
#include "reply.h"

#include <stdio.h>
#include <string.h>

const char *pc_reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

/* Dify derives "code" from the werkzeug exception's class name. */
const char *pc_status_code_name(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 408: return "request_timeout";
    case 413: return "request_entity_too_large";
    case 417: return "expectation_failed";
    case 431: return "request_header_fields_too_large";
    case 500: return "internal_server_error";
    case 501: return "not_implemented";
    case 502: return "bad_gateway";
    case 503: return "service_unavailable";
    case 504: return "gateway_timeout";
    }
    return "error";
}

size_t pc_reply_build(struct pc_buf *b, int status, const char *content_type, const char *body,
                      size_t body_len, int close, int head_only, const char *request_id,
                      const char *extra_headers)
{
    size_t start = b->len;
    pc_buf_addf(b, "HTTP/1.1 %d %s\r\n", status, pc_reason_phrase(status));
    pc_buf_addf(b, "Content-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n",
                content_type, body_len);
    if (request_id != NULL && request_id[0] != '\0')
        pc_buf_addf(b, "X-Request-Id: %s\r\n", request_id);
    if (extra_headers != NULL)
        pc_buf_adds(b, extra_headers);
    if (close)
        pc_buf_adds(b, "Connection: close\r\n");
    pc_buf_adds(b, "\r\n");
    if (!head_only)
        pc_buf_add(b, body, body_len);
    return b->len - start;
}

size_t pc_reply_error_body(struct pc_buf *b, int status, const char *code, const char *message)
{
    size_t start = b->len;
    pc_buf_adds(b, "{\"code\":\"");
    pc_buf_add_json_str(b, code, strlen(code));
    pc_buf_adds(b, "\",\"message\":\"");
    pc_buf_add_json_str(b, message, strlen(message));
    pc_buf_addf(b, "\",\"status\":%d}\n", status);
    return b->len - start;
}

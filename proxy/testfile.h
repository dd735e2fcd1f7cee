/*
 * portcullis: decision test files (`portcullis test`), read with the
 * config framework (lib/yaml.h, lib/cfg.h): every problem is one
 * "file:line:col: message" line, unknown keys included.
 *
 *   subjects:                      # optional: names for subjects, for `as:`
 *     owner_a: a0000000-0000-4000-8000-00000000000a
 *   tests:
 *     - name: the owner reads the logs
 *       request: GET /apps/6a.../logs
 *       headers: ["X-Request: 1"]  # optional, each "Name: value"
 *       as: owner_a                # or subject: VALUE; neither: no token
 *       claims: {iss: CLOUD}       # optional, added to the minted token (null: left out)
 *       credential: cookie:access_token   # optional, where the token goes (or a list)
 *       key: k1                    # optional, an identity.keys id to sign with
 *       forge: random-key          # optional: sign with a key the config does not trust
 *       data: {access: acl.yaml}   # optional: operator data files for this case (data: section)
 *       expect: {status: forwarded, decision: allow, rule: app-logs, reason: "policy owner",
 *                data_decided: false}     # data_decided optional: did the data decide?
 */
#ifndef PC_TESTFILE_H
#define PC_TESTFILE_H

#include <stddef.h>

#include "../lib/buf.h"
#include "token.h"

struct id_source;

enum tf_forge { TF_FORGE_NONE, TF_FORGE_RANDOM, TF_FORGE_PUBLIC };

/* A value and where the file wrote it (checked against the config later). */
struct tf_pos {
    char *str;                  /* NULL: absent */
    int kind;                   /* tf_forge, for forge: */
    int line, col;
};

struct tf_expect {
    int status;                 /* an HTTP status, PC_JUDGE_FORWARD or PC_JUDGE_LOCAL */
    int decision;               /* enum pc_decision */
    char *rule;                 /* NULL: no rule applies */
    char *reason;               /* NULL: not checked; else the reason must contain it */
    int data_decided;           /* with TF_E_DATA: whether operator data decided */
    unsigned given;             /* TF_E_* bits: what the file wrote */
};

enum { TF_E_STATUS = 1, TF_E_DECISION = 2, TF_E_RULE = 4, TF_E_DATA = 8 };

/* data: {set: file}: the case's operator data files, in place of the
 * config's (a path relative to the test file; null or "": no file). */
struct tf_data {
    char **names, **paths, **at; /* at: "file:line:col" where the path is written */
    size_t n;
};

struct tf_request {
    char *method, *url;
};

struct tf_strings {
    char **v;
    size_t n;
};

struct tf_claims {
    struct pc_claim *v;         /* names and values malloc'd */
    size_t n;
};

struct tf_creds {
    struct id_source *v;
    size_t n;
};

struct tf_case {
    char *name;
    int line, col;
    struct tf_request req;
    struct tf_strings headers;  /* each "Name: value" */
    char *subject;              /* NULL: no token (anonymous) */
    struct tf_pos as;           /* a name from subjects: (resolved into subject) */
    struct tf_claims claims;
    struct tf_creds creds;      /* where the token goes; none: the default place */
    struct tf_pos key;          /* an identity.keys id */
    struct tf_pos forge;        /* kind: enum tf_forge */
    struct tf_data data;
    struct tf_expect expect;
};

struct tf_file {
    char *path;
    struct tf_case *cases;
    size_t n;
};

/* Read a test file. NULL with "file:line:col: message" lines appended to
 * errors. */
struct tf_file *tf_load(const char *path, struct pc_buf *errors);
void tf_free(struct tf_file *f);

#endif

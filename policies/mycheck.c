/*
 * portcullis: the synchronous MySQL check of -t, start-up and reload
 * (policy.h pol_check_database): connect as the pool does, set the session
 * up, read the schema and its version, prepare each policy's chosen
 * variant, run cache.invalidate_query once; report as file:line:col lines.
 * Blocking, so never on a thread that serves requests.
 */
#include "my.h"
#include "data.h"
#include "gen.h"
#include "policy.h"
#include "schema.h"
#include "../lib/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The handle's last error, as one line. */
static void my_message(struct pc_buf *b, MYSQL *m, MYSQL_STMT *st)
{
    size_t start = b->len;
    pc_buf_addf(b, "%s (error %u)", st ? mysql_stmt_error(st) : mysql_error(m), st ? mysql_stmt_errno(st) : mysql_errno(m));
    pc_buf_cstr(b);
    b->len = start + pc_one_line(b->p + start);
}

/* Run sql; its stored result (NULL for a statement without one, or on
 * error: then *failed). */
static MYSQL_RES *my_query(MYSQL *m, const char *sql, int *failed)
{
    *failed = mysql_real_query(m, sql, strlen(sql)) != 0;
    if (*failed || mysql_field_count(m) == 0)
        return NULL;
    MYSQL_RES *r = mysql_store_result(m);
    *failed = r == NULL;
    return r;
}

static void my_check_version(const struct pol_gen *cfg, MYSQL *m, struct pc_buf *warn)
{
    const struct pol_schema_version *sv = &cfg->db.schema_version;
    int failed;
    if (sv->query == NULL)
        return;
    MYSQL_RES *r = my_query(m, sv->query, &failed);
    if (failed || r == NULL) {
        struct pc_buf msg = {0};
        if (failed)
            my_message(&msg, m, NULL);
        else
            pc_buf_adds(&msg, "the query returns no column");
        pc_buf_addf(warn, "%s:%d:%d: warning: the schema version query failed: %s\n", cfg->file, sv->line, sv->col,
                    pc_buf_cstr(&msg));
        pol_report_version(NULL, 0, pc_buf_cstr(&msg));
        pc_buf_free(&msg);
        return;
    }
    size_t n = 0;
    const char **vals = pc_calloc(mysql_num_rows(r) + 1, sizeof(*vals));
    struct pc_buf v = {0};
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(r)) != NULL) {
        vals[n] = row[0] ? row[0] : "";
        pc_buf_addf(&v, "%s%s", n ? "," : "", vals[n]);
        n++;
    }
    int known = pol_version_known((const char *const *)sv->known, sv->nknown, vals, n);
    if (!known)
        pc_buf_addf(warn, "%s:%d:%d: warning: the database's schema version is '%s', which this config was not "
                          "checked against\n", cfg->file, sv->line, sv->col, n ? pc_buf_cstr(&v) : "(no row)");
    pol_report_version(n ? pc_buf_cstr(&v) : "(no row)", known, NULL);
    pc_buf_free(&v);
    free(vals);
    mysql_free_result(r);
}

static struct pol_schema *my_read_schema(MYSQL *m, struct pc_buf *err)
{
    int failed;
    MYSQL_RES *r = my_query(m, pol_schema_sql_my, &failed);
    if (failed || r == NULL) {
        my_message(err, m, NULL);
        return NULL;
    }
    struct pol_schema *s = pol_schema_new();
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(r)) != NULL)
        if (row[0] != NULL && row[1] != NULL)
            pol_schema_add(s, row[0], row[1]);
    mysql_free_result(r);
    return s;
}

/* Prepare one variant; 0, or -1 with the error in b. */
static int my_check_prepare(const struct pol_gen *cfg, MYSQL *m, const struct pol_policy *p,
                            const struct pol_variant *v, struct pc_buf *b)
{
    int rc = 0;
    MYSQL_STMT *st = mysql_stmt_init(m);
    if (st == NULL) {
        pc_buf_addf(b, "%s:%d:%d: policy '%s': cannot make a statement handle\n", cfg->file, v->line, v->col, p->name);
        return -1;
    }
    if (mysql_stmt_prepare(st, v->sql, strlen(v->sql)) != 0) {
        pc_buf_addf(b, "%s:%d:%d: policy '%s' does not prepare: ", cfg->file, v->line, v->col, p->name);
        my_message(b, m, st);
        pc_buf_addc(b, '\n');
        rc = -1;
    } else if (mysql_stmt_param_count(st) != v->nparams) {
        pc_buf_addf(b, "%s:%d:%d: policy '%s': the server counts %lu parameters, its :names %zu\n", cfg->file,
                    v->line, v->col, p->name, mysql_stmt_param_count(st), v->nparams);
        rc = -1;
    }
    mysql_stmt_close(st);
    return rc;
}

/* cache.invalidate_query must run and return one column. */
static int my_check_invalidate(const struct pol_gen *cfg, MYSQL *m, struct pc_buf *b)
{
    const struct pol_cache *c = &cfg->cache;
    int failed;
    if (c->invalidate_query == NULL)
        return 0;
    MYSQL_RES *r = my_query(m, c->invalidate_query, &failed);
    if (!failed && r != NULL && mysql_num_fields(r) == 1) {
        mysql_free_result(r);
        return 0;
    }
    pc_buf_addf(b, "%s:%d:%d: cache.invalidate_query does not run: ", cfg->file, c->invalidate_line,
                c->invalidate_col);
    if (failed)
        my_message(b, m, NULL);
    else
        pc_buf_adds(b, "it must return one column (a value that changes when access does)");
    pc_buf_addc(b, '\n');
    if (r != NULL)
        mysql_free_result(r);
    return -1;
}

/* data: known: for every mapping that has it, run with :keys (bound once
 * per use) and warn about the keys the database does not have. */
static int my_check_known(const struct pol_gen *cfg, MYSQL *m, struct pc_buf *b, struct pc_buf *w)
{
    const struct pol_data *d = cfg->data;
    int rc = 0;
    for (size_t i = 0; d != NULL && i < d->nsets; i++) {
        for (size_t t = 0; t < d->sets[i].ntops; t++) {
            const struct pol_dtop *top = &d->sets[i].tops[t];
            if (top->known_sql == NULL)
                continue;
            char *keys = pol_data_keys_json(top);
            unsigned long klen = (unsigned long)strlen(keys);
            MYSQL_STMT *st = mysql_stmt_init(m);
            MYSQL_BIND *bind = pc_calloc(top->known_nparams ? top->known_nparams : 1, sizeof(*bind));
            MYSQL_BIND out;
            char val[512];
            unsigned long vlen = 0;
            my_bool is_null = 0;
            char **found = NULL;
            size_t nfound = 0;
            int ok = st != NULL && mysql_stmt_prepare(st, top->known_sql, strlen(top->known_sql)) == 0 &&
                     mysql_stmt_field_count(st) >= 1;
            for (size_t k = 0; ok && k < top->known_nparams; k++) {
                bind[k].buffer_type = MYSQL_TYPE_STRING;
                bind[k].buffer = keys;
                bind[k].buffer_length = klen;
                bind[k].length = &klen;
            }
            memset(&out, 0, sizeof(out));
            out.buffer_type = MYSQL_TYPE_STRING;
            out.buffer = val;
            out.buffer_length = sizeof(val) - 1;
            out.length = &vlen;
            out.is_null = &is_null;
            ok = ok && mysql_stmt_bind_param(st, bind) == 0 && mysql_stmt_execute(st) == 0 &&
                 mysql_stmt_bind_result(st, &out) == 0;
            while (ok) {
                int f = mysql_stmt_fetch(st);
                if (f == MYSQL_NO_DATA)
                    break;
                if (f == 1) {
                    ok = 0;
                    break;
                }
                if (is_null)
                    continue;
                found = pc_realloc(found, (nfound + 1) * sizeof(*found));
                found[nfound++] = pc_strndup(val, PC_MIN(vlen, sizeof(val) - 1));
            }
            if (!ok) {
                pc_buf_addf(b, "%s:%d:%d: data %s.%s: known: does not run: ", cfg->file, top->known_line,
                            top->known_col, d->sets[i].name, top->name);
                if (st != NULL && mysql_stmt_errno(st) != 0)
                    my_message(b, m, st);
                else
                    pc_buf_adds(b, "it must return the keys it knows, in one column");
                pc_buf_addc(b, '\n');
                rc = -1;
            } else {
                pol_data_known_report(&d->sets[i], top, found, nfound, w);
            }
            for (size_t k = 0; k < nfound; k++)
                free(found[k]);
            free(found);
            free(bind);
            if (st != NULL)
                mysql_stmt_close(st);
            free(keys);
        }
    }
    return rc;
}

int my_check(const struct pol_gen *cfg, char **errors, char **warnings)
{
    struct pc_buf b = {0}, w = {0};
    const struct pol_set *ps = cfg->set;
    struct pol_schema *schema = NULL;
    int *choice = NULL;
    const char **missing = NULL;
    char err[256], session[MY_SESSION_MAX][MY_SESSION_LEN];
    int rc = 0, failed, n;

    *errors = NULL;
    *warnings = NULL;
    MYSQL *m = my_connect_blocking(&cfg->db, my_io_timeout_ms(cfg), err, sizeof(err));
    if (m == NULL) {
        pc_buf_addf(&b, "%s:%d:%d: database unreachable, policies were not checked: %s\n", cfg->file, cfg->db.line,
                    cfg->db.col, err);
        rc = 1;
        goto out;
    }
    /* the pool's session: read-only, time-limited */
    n = my_session_sql(my_flavour_of(m), cfg->policy_timeout, session);
    for (int i = 0; i < n; i++) {
        my_query(m, session[i], &failed);
        if (failed) {
            pc_buf_addf(&b, "%s:%d:%d: the database refuses the session's settings (%s): ", cfg->file, cfg->db.line,
                        cfg->db.col, session[i]);
            my_message(&b, m, NULL);
            pc_buf_addc(&b, '\n');
            rc = -1;
            goto out;
        }
    }
    my_check_version(cfg, m, &w);
    if (ps->any_requires) {
        struct pc_buf e = {0};
        schema = my_read_schema(m, &e);
        if (schema == NULL) {
            pc_buf_addf(&b, "%s:%d:%d: cannot read the database's schema: %s\n", cfg->file, cfg->db.line,
                        cfg->db.col, pc_buf_cstr(&e));
            pc_buf_free(&e);
            rc = -1;
            goto out;
        }
        pc_buf_free(&e);
    }
    choice = pc_calloc(ps->n ? ps->n : 1, sizeof(*choice));
    missing = pc_calloc(ps->n ? ps->n : 1, sizeof(*missing));
    pol_choose(ps, schema, choice, missing);
    for (size_t i = 0; i < ps->n; i++) {
        const struct pol_policy *p = &ps->p[i];
        if (choice[i] < 0) {
            pc_buf_addf(&w, "%s:%d:%d: warning: policy '%s' is left out: the database lacks %s; rules that list it "
                            "decide without it\n", cfg->file, p->line, p->col, p->name, missing[i]);
            continue;
        }
        if (my_check_prepare(cfg, m, p, &p->variants[choice[i]], &b) != 0)
            rc = -1;
    }
    if (my_check_invalidate(cfg, m, &b) != 0)
        rc = -1;
    if (my_check_known(cfg, m, &b, &w) != 0)
        rc = -1;
    if (rc == 0)
        pol_report_choice(cfg, choice, (const char *const *)missing);
out:
    if (m != NULL)
        mysql_close(m);
    pol_schema_free(schema);
    free(choice);
    free(missing);
    if (b.len > 0)
        *errors = pc_strdup(pc_buf_cstr(&b));
    if (w.len > 0)
        *warnings = pc_strdup(pc_buf_cstr(&w));
    pc_buf_free(&b);
    pc_buf_free(&w);
    return rc;
}

/*
 * portcullis: the synchronous PostgreSQL check of -t, start-up and reload
 * (policy.h pol_check_database): connect, read the schema and its version,
 * prepare each policy's chosen variant, run cache.invalidate_query once,
 * report as file:line:col lines.
 * Blocking, so never on a thread that serves requests.
 */
#include "pg.h"
#include "data.h"
#include "gen.h"
#include "policy.h"
#include "schema.h"
#include "../lib/base.h"

#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

static void pol_pg_message(struct pc_buf *b, const char *msg)
{
    size_t start = b->len;
    pc_buf_adds(b, msg);
    pc_buf_cstr(b);
    b->len = start + pc_one_line(b->p + start);
}

/* Read the schema's tables and columns; NULL with a message on error. */
static struct pol_schema *pol_read_schema(PGconn *c, struct pc_buf *err)
{
    PGresult *r = PQexec(c, pol_schema_sql_pg);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pol_pg_message(err, PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    struct pol_schema *s = pol_schema_new();
    for (int i = 0; i < PQntuples(r); i++)
        pol_schema_add(s, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    PQclear(r);
    return s;
}

/* Run the schema version query, report it and warn when it is unknown. */
static void pol_check_version(const struct pol_gen *cfg, PGconn *c, struct pc_buf *warn)
{
    const struct pol_schema_version *sv = &cfg->db.schema_version;
    if (sv->query == NULL)
        return;
    PGresult *r = PQexec(c, sv->query);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) < 1) {
        struct pc_buf m = {0};
        pol_pg_message(&m, PQresultStatus(r) == PGRES_TUPLES_OK ? "the query returns no column"
                                                                 : PQresultErrorMessage(r));
        pc_buf_addf(warn, "%s:%d:%d: warning: the schema version query failed: %s\n", cfg->file, sv->line, sv->col,
                    pc_buf_cstr(&m));
        pol_report_version(NULL, 0, pc_buf_cstr(&m));
        pc_buf_free(&m);
        PQclear(r);
        return;
    }
    int n = PQntuples(r);
    const char **vals = pc_calloc(n ? (size_t)n : 1, sizeof(*vals));
    struct pc_buf v = {0};
    for (int i = 0; i < n; i++) {
        vals[i] = PQgetvalue(r, i, 0);
        pc_buf_addf(&v, "%s%s", i ? "," : "", vals[i]);
    }
    int known = pol_version_known((const char *const *)sv->known, sv->nknown, vals, (size_t)n);
    if (!known)
        pc_buf_addf(warn, "%s:%d:%d: warning: the database's schema version is '%s', which this config was not "
                          "checked against\n", cfg->file, sv->line, sv->col, n ? pc_buf_cstr(&v) : "(no row)");
    pol_report_version(n ? pc_buf_cstr(&v) : "(no row)", known, NULL);
    pc_buf_free(&v);
    free(vals);
    PQclear(r);
}

/* cache.invalidate_query must run and return one column. */
static int pol_check_invalidate(const struct pol_gen *cfg, PGconn *c, struct pc_buf *b)
{
    const struct pol_cache *ca = &cfg->cache;
    if (ca->invalidate_query == NULL)
        return 0;
    PGresult *r = PQexecParams(c, ca->invalidate_query, 0, NULL, NULL, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) == 1;
    if (!ok) {
        pc_buf_addf(b, "%s:%d:%d: cache.invalidate_query does not run: ", cfg->file, ca->invalidate_line,
                    ca->invalidate_col);
        if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)
            pc_buf_adds(b, "it must return one column (a value that changes when access does)");
        else
            pol_pg_message(b, PQresultErrorMessage(r));
        pc_buf_addc(b, '\n');
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/* data: known: for every mapping that has it, run with :keys and warn
 * about the keys the database does not have. */
static int pol_check_known(const struct pol_gen *cfg, PGconn *c, struct pc_buf *b, struct pc_buf *w)
{
    const struct pol_data *d = cfg->data;
    int rc = 0;
    for (size_t i = 0; d != NULL && i < d->nsets; i++) {
        for (size_t t = 0; t < d->sets[i].ntops; t++) {
            const struct pol_dtop *top = &d->sets[i].tops[t];
            if (top->known_sql == NULL)
                continue;
            char *keys = pol_data_keys_json(top);
            const char *vals[POL_MAX_PARAMS];
            for (size_t k = 0; k < top->known_nparams && k < POL_MAX_PARAMS; k++)
                vals[k] = keys;
            PGresult *r = PQexecParams(c, top->known_sql, (int)top->known_nparams, NULL, vals, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) < 1) {
                pc_buf_addf(b, "%s:%d:%d: data %s.%s: known: does not run: ", cfg->file, top->known_line,
                            top->known_col, d->sets[i].name, top->name);
                pol_pg_message(b, PQresultStatus(r) == PGRES_TUPLES_OK ? "it must return the keys it knows, in one "
                                                                          "column" : PQresultErrorMessage(r));
                pc_buf_addc(b, '\n');
                rc = -1;
            } else {
                int n = PQntuples(r);
                char **found = pc_calloc(n ? (size_t)n : 1, sizeof(*found));
                for (int k = 0; k < n; k++)
                    found[k] = PQgetvalue(r, k, 0);
                pol_data_known_report(&d->sets[i], top, found, (size_t)n, w);
                free(found);
            }
            PQclear(r);
            free(keys);
        }
    }
    return rc;
}

int pg_check(const struct pol_gen *cfg, char **errors, char **warnings)
{
    struct pc_buf b = {0}, w = {0};
    const struct pol_set *ps = cfg->set;
    struct pol_schema *schema = NULL;
    int *choice = NULL;
    const char **missing = NULL;
    char timeout[32];
    int rc = 0;

    *errors = NULL;
    *warnings = NULL;
    const char *keys[PG_MAX_PARAMS], *vals[PG_MAX_PARAMS];
    pg_conn_params(&cfg->db, "portcullis-check", keys, vals, timeout, sizeof(timeout));
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        pc_buf_addf(&b, "%s:%d:%d: database unreachable, policies were not checked: ", cfg->file,
                    cfg->db.line, cfg->db.col);
        pol_pg_message(&b, c ? PQerrorMessage(c) : "out of memory");
        pc_buf_addc(&b, '\n');
        rc = 1;
        goto out;
    }
    pol_check_version(cfg, c, &w);
    if (ps->any_requires) {
        struct pc_buf err = {0};
        schema = pol_read_schema(c, &err);
        if (schema == NULL) {
            pc_buf_addf(&b, "%s:%d:%d: cannot read the database's schema: %s\n", cfg->file, cfg->db.line,
                        cfg->db.col, pc_buf_cstr(&err));
            pc_buf_free(&err);
            rc = -1;
            goto out;
        }
        pc_buf_free(&err);
    }
    choice = pc_calloc(ps->n, sizeof(*choice));
    missing = pc_calloc(ps->n, sizeof(*missing));
    pol_choose(ps, schema, choice, missing);
    for (size_t i = 0; i < ps->n; i++) {
        const struct pol_policy *p = &ps->p[i];
        if (choice[i] < 0) {
            pc_buf_addf(&w, "%s:%d:%d: warning: policy '%s' is left out: the database lacks %s; rules that list it "
                            "decide without it\n", cfg->file, p->line, p->col, p->name, missing[i]);
            continue;
        }
        const struct pol_variant *v = &p->variants[choice[i]];
        PGresult *r = PQprepare(c, "", v->sql, (int)v->nparams, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            pc_buf_addf(&b, "%s:%d:%d: policy '%s' does not prepare: ", cfg->file, v->line, v->col, p->name);
            pol_pg_message(&b, PQresultErrorMessage(r));
            pc_buf_addc(&b, '\n');
            rc = -1;
        }
        PQclear(r);
    }
    if (pol_check_invalidate(cfg, c, &b) != 0)
        rc = -1;
    if (pol_check_known(cfg, c, &b, &w) != 0)
        rc = -1;
    if (rc == 0)
        pol_report_choice(cfg, choice, (const char *const *)missing);
out:
    if (c)
        PQfinish(c);
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

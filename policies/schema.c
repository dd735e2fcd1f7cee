/*
 * portcullis: policy requirements, schema versions and their report (see
 * schema.h).
 */
#include "schema.h"
#include "policy.h"
#include "gen.h"
#include "../lib/base.h"
#include "../lib/log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const char pol_schema_sql_pg[] =
    "SELECT table_name::text, column_name::text FROM information_schema.columns "
    "WHERE table_schema = ANY (current_schemas(false))";

const char pol_schema_sql_my[] =
    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()";

struct pol_schema {
    char **names;   /* sorted once pol_schema_has() is first called */
    size_t n, cap;
    int sorted;
};

struct pol_schema *pol_schema_new(void)
{
    return pc_calloc(1, sizeof(struct pol_schema));
}

static void schema_push(struct pol_schema *s, char *name)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->names = pc_realloc(s->names, s->cap * sizeof(*s->names));
    }
    s->names[s->n++] = name;
    s->sorted = 0;
}

void pol_schema_add(struct pol_schema *s, const char *table, const char *column)
{
    /* "table" once per column is harmless: lookups are exact */
    schema_push(s, pc_strdup(table));
    if (column != NULL)
        schema_push(s, pc_sprintf("%s.%s", table, column));
}

static int schema_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int pol_schema_has(const struct pol_schema *cs, const char *name)
{
    struct pol_schema *s = (struct pol_schema *)cs;
    if (!s->sorted) {
        qsort(s->names, s->n, sizeof(*s->names), schema_cmp);
        s->sorted = 1;
    }
    return bsearch(&name, s->names, s->n, sizeof(*s->names), schema_cmp) != NULL;
}

void pol_schema_free(struct pol_schema *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
    free(s);
}

void pol_choose(const struct pol_set *ps, const struct pol_schema *s, int *choice, const char **missing)
{
    for (size_t i = 0; ps != NULL && i < ps->n; i++) {
        const struct pol_policy *p = &ps->p[i];
        choice[i] = -1;
        missing[i] = NULL;
        for (size_t v = 0; v < p->nvariants && choice[i] < 0; v++) {
            const struct pol_variant *pv = &p->variants[v];
            const char *lack = NULL;
            for (size_t r = 0; r < pv->nrequires && lack == NULL; r++)
                if (s == NULL || !pol_schema_has(s, pv->requires[r]))
                    lack = pv->requires[r];
            if (lack == NULL)
                choice[i] = (int)v;
            else
                missing[i] = lack;
        }
        if (choice[i] >= 0)
            missing[i] = NULL;
    }
}

int pol_version_known(const char *const *known, size_t nknown, const char *const *values, size_t nvalues)
{
    if (nvalues == 0)
        return 0;
    for (size_t i = 0; i < nvalues; i++) {
        size_t k;
        for (k = 0; k < nknown; k++)
            if (strcmp(values[i], known[k]) == 0)
                break;
        if (k == nknown)
            return 0;
    }
    return 1;
}

/* ---- the report ---- */

struct rep_policy {
    char *name;
    int variant;        /* -1: left out */
    char *missing;
};

static pthread_mutex_t rep_lock = PTHREAD_MUTEX_INITIALIZER;
static int rep_has_version;     /* a schema_version query is configured and was run */
static char *rep_version;       /* NULL: the query failed */
static char *rep_version_err;
static int rep_known;
static struct rep_policy *rep_pol;
static size_t rep_npol;

static int rep_streq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int pol_report_version(const char *version, int known, const char *err)
{
    pthread_mutex_lock(&rep_lock);
    int changed = !rep_has_version || !rep_streq(rep_version, version) || rep_known != known;
    if (changed) {
        free(rep_version);
        free(rep_version_err);
        rep_version = version ? pc_strdup(version) : NULL;
        rep_version_err = err ? pc_strdup(err) : NULL;
        rep_known = known;
        rep_has_version = 1;
    }
    pthread_mutex_unlock(&rep_lock);
    return changed;
}

void pol_log_version(const struct pol_gen *cfg, const char *version, int known, const char *err)
{
    const struct pol_schema_version *sv = &cfg->db.schema_version;
    if (version == NULL)
        pc_log(PC_LOG_WARN, "the database's schema version is unknown: its query (%s:%d:%d) failed: %s", cfg->file,
               sv->line, sv->col, err ? err : "?");
    else if (!known)
        pc_log(PC_LOG_WARN, "the database's schema version is %s, which this config was not checked against "
                            "(%s:%d:%d lists the known versions): review the rules before trusting them",
               version, cfg->file, sv->line, sv->col);
    else
        pc_log(PC_LOG_INFO, "the database's schema version is %s, one this config was checked against", version);
}

int pol_report_choice(const struct pol_gen *cfg, const int *choice, const char *const *missing)
{
    const struct pol_set *ps = cfg->set;
    size_t n = ps ? ps->n : 0;
    pthread_mutex_lock(&rep_lock);
    int changed = rep_pol == NULL || rep_npol != n;
    for (size_t i = 0; !changed && i < n; i++)
        changed = strcmp(rep_pol[i].name, ps->p[i].name) != 0 || rep_pol[i].variant != choice[i] ||
                  !rep_streq(rep_pol[i].missing, missing[i]);
    if (changed) {
        for (size_t i = 0; i < rep_npol; i++) {
            free(rep_pol[i].name);
            free(rep_pol[i].missing);
        }
        free(rep_pol);
        rep_pol = pc_calloc(n ? n : 1, sizeof(*rep_pol));
        rep_npol = n;
        for (size_t i = 0; i < n; i++) {
            rep_pol[i].name = pc_strdup(ps->p[i].name);
            rep_pol[i].variant = choice[i];
            rep_pol[i].missing = missing[i] ? pc_strdup(missing[i]) : NULL;
        }
    }
    pthread_mutex_unlock(&rep_lock);
    return changed;
}

void pol_log_choice(const struct pol_gen *cfg, const int *choice, const char *const *missing)
{
    const struct pol_set *ps = cfg->set;
    for (size_t i = 0; ps != NULL && i < ps->n; i++) {
        const struct pol_policy *p = &ps->p[i];
        if (choice[i] < 0)
            pc_log(PC_LOG_WARN, "policy '%s' (%s:%d:%d) is left out: the database lacks %s; rules that list it "
                                "decide without it", p->name, cfg->file, p->line, p->col, missing[i]);
        else if (p->nvariants > 1)
            pc_log(PC_LOG_INFO, "policy '%s' uses its variant %d of %zu (%s:%d:%d)", p->name, choice[i] + 1,
                   p->nvariants, cfg->file, p->variants[choice[i]].line, p->variants[choice[i]].col);
    }
}

static void rep_label(struct pc_buf *b, const char *v, size_t max)
{
    for (size_t i = 0; v[i] != '\0' && i < max; i++) {
        if (v[i] == '\\' || v[i] == '"')
            pc_buf_addc(b, '\\');
        if (v[i] == '\n')
            pc_buf_adds(b, "\\n");
        else
            pc_buf_addc(b, v[i]);
    }
}

void pol_report_metrics(struct pc_buf *b)
{
    pthread_mutex_lock(&rep_lock);
    if (rep_has_version) {
        pc_buf_addf(b, "# HELP portcullis_schema_version_known 1 when the database's schema version is one the "
                       "config was checked against (database.schema_version.known), 0 when it is not.\n"
                       "# TYPE portcullis_schema_version_known gauge\n"
                       "portcullis_schema_version_known %d\n", rep_known ? 1 : 0);
        pc_buf_adds(b, "# HELP portcullis_schema_version_info The database's schema version, as its "
                       "version query read it.\n# TYPE portcullis_schema_version_info gauge\n"
                       "portcullis_schema_version_info{version=\"");
        rep_label(b, rep_version ? rep_version : "(query failed)", 200);
        pc_buf_adds(b, "\"} 1\n");
    }
    if (rep_npol > 0) {
        pc_buf_adds(b, "# HELP portcullis_policy_available 1 when a policy fits the database's schema, 0 when "
                       "it is left out.\n# TYPE portcullis_policy_available gauge\n");
        for (size_t i = 0; i < rep_npol; i++) {
            pc_buf_adds(b, "portcullis_policy_available{policy=\"");
            rep_label(b, rep_pol[i].name, 200);
            pc_buf_addf(b, "\"} %d\n", rep_pol[i].variant >= 0 ? 1 : 0);
        }
    }
    pthread_mutex_unlock(&rep_lock);
}

static void rep_json_str(struct pc_buf *b, const char *s)
{
    if (s == NULL) {
        pc_buf_adds(b, "null");
        return;
    }
    pc_buf_addc(b, '"');
    pc_buf_add_json_str(b, s, strlen(s));
    pc_buf_addc(b, '"');
}

void pol_report_json(struct pc_buf *b)
{
    pthread_mutex_lock(&rep_lock);
    pc_buf_adds(b, "\"schema\":");
    if (rep_has_version) {
        pc_buf_adds(b, "{\"version\":");
        rep_json_str(b, rep_version);
        pc_buf_addf(b, ",\"known\":%s,\"error\":", rep_known ? "true" : "false");
        rep_json_str(b, rep_version_err);
        pc_buf_adds(b, "}");
    } else {
        pc_buf_adds(b, "null");
    }
    pc_buf_adds(b, ",\"policies\":[");
    for (size_t i = 0; i < rep_npol; i++) {
        pc_buf_adds(b, i ? ",{\"name\":" : "{\"name\":");
        rep_json_str(b, rep_pol[i].name);
        if (rep_pol[i].variant >= 0) {
            pc_buf_addf(b, ",\"available\":true,\"variant\":%d}", rep_pol[i].variant + 1);
        } else {
            pc_buf_adds(b, ",\"available\":false,\"missing\":");
            rep_json_str(b, rep_pol[i].missing);
            pc_buf_adds(b, "}");
        }
    }
    pc_buf_adds(b, "]");
    pthread_mutex_unlock(&rep_lock);
}

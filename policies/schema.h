/*
 * portcullis: what a policy needs from the database's schema, and what the
 * database has.
 *
 * One rule pack serves every version of its application: a policy declares
 * the tables and columns its SQL needs ("requires:"), possibly in several
 * variants, and each database connection prepares the first variant the
 * schema it finds can run. A policy that fits no variant is left out on
 * that connection, with the requirement it lacks as the reason; a rule
 * never falls open because of it (decide.h).
 *
 * The schema's version (database.schema_version) is read the same way and
 * compared with the versions the config was checked against: an unknown
 * version is reported loudly (start-up, -t, metrics, the admin listener)
 * but takes nothing down.
 *
 * Both are read by every connection on every (re)connect, on whichever
 * worker thread owns it, and at start-up, reload and -t; what was last
 * seen is kept in one process-wide report, behind a lock, that the admin
 * thread copies for /metrics and /status.
 */
#ifndef PC_SCHEMA_H
#define PC_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

struct pol_set;
struct pol_gen;
struct pc_buf;

/* The tables and columns a schema has, as "table" and "table.column". */
struct pol_schema;

struct pol_schema *pol_schema_new(void);
void pol_schema_add(struct pol_schema *s, const char *table, const char *column);
int pol_schema_has(const struct pol_schema *s, const char *name);
void pol_schema_free(struct pol_schema *s);

/* PostgreSQL: every (table, column) visible on the search path. */
extern const char pol_schema_sql_pg[];
/* MySQL: every (table, column) of the connection's database. */
extern const char pol_schema_sql_my[];

/*
 * The variant each policy uses on schema s (NULL: a schema that was not
 * read, which only variants without requirements fit): choice[i] is a
 * variant index, or -1 with missing[i] naming the first requirement of the
 * last variant that the schema lacks.
 */
void pol_choose(const struct pol_set *ps, const struct pol_schema *s, int *choice, const char **missing);

/* Is a schema whose version query returned these values one of known?
 * Every value must be listed (an application with several heads at once
 * lists each). No value at all is unknown. */
int pol_version_known(const char *const *known, size_t nknown, const char *const *values, size_t nvalues);

/* ---- the process-wide report ---- */

/* A connection (or the start-up check) read the schema version: version
 * is the values joined with ",", or NULL with err when the query failed.
 * Returns 1 when that differs from what was last reported (then log it
 * with pol_log_version: once per change, not once per connection). */
int pol_report_version(const char *version, int known, const char *err);
void pol_log_version(const struct pol_gen *cfg, const char *version, int known, const char *err);
/* A connection (or the start-up check) chose variants for cfg's policies;
 * 1 when the choice differs from what was last reported. */
int pol_report_choice(const struct pol_gen *cfg, const int *choice, const char *const *missing);
void pol_log_choice(const struct pol_gen *cfg, const int *choice, const char *const *missing);

/* Append the report as Prometheus samples (portcullis_schema_version_known,
 * portcullis_schema_version_info, portcullis_policy_available) or as the
 * "schema" and "policies" members of a JSON object (for /status). */
void pol_report_metrics(struct pc_buf *b);
void pol_report_json(struct pc_buf *b);

#endif

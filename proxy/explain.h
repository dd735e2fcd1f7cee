/*
 * portcullis explain: evaluate one request exactly as the server would,
 * against the configured database, without forwarding it.
 */
#ifndef PC_EXPLAIN_H
#define PC_EXPLAIN_H

int pc_explain_main(int argc, char **argv);
const char *pc_default_config_path(void);

#endif

/*
 * portcullis: the server process. The main thread owns signals, config
 * reloads, the admin listener and the drain; workers own the traffic.
 */
#ifndef PC_SERVER_H
#define PC_SERVER_H

#include <signal.h>

#include "config.h"

/* Serve in the foreground until SIGTERM/SIGINT and a drain. Returns the
 * process exit status. Takes ownership of cfg. */
int pc_server_run(const char *config_path, struct pc_config *cfg);

/* Hold TERM/INT/HUP until pc_server_run has its handlers (a SIGHUP during
 * start-up must not kill the process). */
void pc_server_block_signals(sigset_t *set);

/* Load a config and check its policies against the database; used by -t,
 * start-up and SIGHUP. Returns the config or NULL with *errors. db_rc:
 * 0 checked, 1 database unreachable (warnings in *errors). */
struct pc_config *pc_server_load_config(const char *path, int *db_rc, char **errors);

#endif

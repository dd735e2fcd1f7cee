/*
 * portcullis: the admin listener (admin_listen). Serves /metrics in
 * Prometheus text format, and the health and readiness paths. Runs on the
 * main thread; metrics are never served on the public listener.
 */
#ifndef PC_ADMIN_H
#define PC_ADMIN_H

#include <event2/event.h>

struct pc_config;
struct pc_worker;
struct pc_admin;

struct pc_admin *pc_admin_new(struct event_base *base, struct pc_config *cfg,
                              struct pc_worker **workers, int nworkers);
void pc_admin_set_config(struct pc_admin *a, struct pc_config *cfg);
/* SIGTERM: readiness answers 503 from now on. */
void pc_admin_draining(struct pc_admin *a);

#endif

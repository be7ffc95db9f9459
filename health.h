/* The /health route (ctx: the relay), mounted on the wire port and the health port. */
#ifndef DIG_HEALTH_H
#define DIG_HEALTH_H

#include "relay.h"
#include "routes.h"

void health_route(void *ctx, const http_request *req, route_reply *out);

#endif

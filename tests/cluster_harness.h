/* Shared set-up of the cluster tests (see cluster_harness.c): redis-server and the relay
 * instances sharing it, started and stopped by the test; get_peers as an ordered id list. */
#ifndef DIG_TEST_CLUSTER_HARNESS_H
#define DIG_TEST_CLUSTER_HARNESS_H

#include "tests/harness.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HC_NET "DIG_MAINNET"
#define HC_WAIT 5000u
#define HC_INSTANCES 3

extern h_proc hc_redis;
extern uint16_t hc_redis_port;           /* 0: the next start picks a free one */
extern relay_proc hc_inst[HC_INSTANCES];
extern char hc_url[64];                  /* redis://127.0.0.1:<hc_redis_port> */

bool hc_have_redis(void);
/* Starts redis-server on hc_redis_port (a free one when 0) with --save '' --appendonly no;
 * slow_limit makes it drop a subscriber 256 KB behind. Waits until it answers PING. */
bool hc_start_redis(bool slow_limit);
/* The same with extra redis-server arguments (NULL-terminated, may be NULL). */
bool hc_start_redis_args(const char *const *extra);
/* Sends one inline command and returns the answer's length (resp NUL-terminated). */
size_t hc_redis_cmd(const char *cmd, char *resp, size_t cap, unsigned timeout_ms);
/* Instance i (id "inst<i>") with extra args (NULL-terminated, may be NULL); per-connection
 * rate limits raised, since the tests send bursts. */
bool hc_start_instance(int i, const char *const *extra);
bool hc_start_cluster(bool slow_limit, const char *const *extra);
/* Stops every instance and Redis (logs shown when failed); false when an instance did not exit
 * cleanly (0, or killed by the test with SIGKILL). */
bool hc_stop_cluster(bool failed);

/* Connects to instance i and registers id on HC_NET. */
bool hc_join(ws_client *c, int i, const char *id);
/* The peer ids of c's get_peers answer in its order, comma-separated. */
bool hc_peer_ids(ws_client *c, char *out, size_t cap);
/* Waits until c's get_peers lists exactly want (ids in order). */
bool hc_wait_peers(ws_client *c, const char *want, unsigned timeout_ms);

#endif

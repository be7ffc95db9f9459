/* The k best of a stream of items, in order: a bounded heap whose root is the worst item kept,
 * so offering n items costs O(n log k) and usually one comparison each, however large n is. The
 * PEX engine picks the freshest entries for a snapshot with it, /stats.json the first peers by
 * id. Items are 32-bit indices into the caller's own array; `before` says which of two ranks
 * first and must be a strict total order (break ties, e.g. by index). Pure, no allocation: the
 * caller provides room for k items. */
#ifndef DIG_TOPK_H
#define DIG_TOPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef bool (*topk_before)(const void *ctx, uint32_t a, uint32_t b);

typedef struct {
    uint32_t *items;           /* the room: at most k items, a heap until topk_finish */
    size_t n, k;
    topk_before before;
    const void *ctx;
} topk;

void topk_init(topk *t, uint32_t *room, size_t k, topk_before before, const void *ctx);
/* Keeps item when it is among the k best offered so far. */
void topk_offer(topk *t, uint32_t item);
/* Sorts the kept items best first (in the room); returns how many there are. */
size_t topk_finish(topk *t);

#endif

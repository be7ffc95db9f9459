/* Bounded best-k selection (topk.h): a binary heap ordered worst-first, then a heap sort. */
#include "topk.h"

void topk_init(topk *t, uint32_t *room, size_t k, topk_before before, const void *ctx)
{
    t->items = room;
    t->n = 0;
    t->k = k;
    t->before = before;
    t->ctx = ctx;
}

static void swap(uint32_t *a, uint32_t *b)
{
    uint32_t x = *a;
    *a = *b;
    *b = x;
}

/* Restores the heap below i among the first n items: each parent ranks after its children. */
static void sift_down(topk *t, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < n && t->before(t->ctx, t->items[m], t->items[c]))
            m = c;
        if (c + 1 < n && t->before(t->ctx, t->items[m], t->items[c + 1]))
            m = c + 1;
        if (m == i)
            return;
        swap(&t->items[i], &t->items[m]);
        i = m;
    }
}

void topk_offer(topk *t, uint32_t item)
{
    if (t->n < t->k) {
        size_t i = t->n++;
        t->items[i] = item;
        while (i > 0 && t->before(t->ctx, t->items[(i - 1) / 2], t->items[i])) {
            swap(&t->items[i], &t->items[(i - 1) / 2]);
            i = (i - 1) / 2;
        }
    } else if (t->k > 0 && t->before(t->ctx, item, t->items[0])) {
        t->items[0] = item;
        sift_down(t, 0, t->n);
    }
}

size_t topk_finish(topk *t)
{
    for (size_t end = t->n; end > 1; end--) {
        swap(&t->items[0], &t->items[end - 1]);
        sift_down(t, 0, end - 1);
    }
    return t->n;
}

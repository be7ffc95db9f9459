/* Pool, frames and outbound queues (see buf.h). */
#include "buf.h"
#include "ws.h"

#include <stdlib.h>
#include <string.h>

/* Size classes from 64 B (a frame pointing at bytes held elsewhere) to 512 KiB by powers of two
 * (a 16 KiB TLS record is a ~58 KB JSON frame: it takes a 64 KiB block, not twice that). Each
 * class keeps a free list, linked through the blocks themselves; all of them together hold at
 * most POOL_KEEP_BYTES, so a burst of in-flight messages is served again without malloc while
 * the memory a relay keeps in reserve stays small and fixed. */
#define POOL_CLASSES 14
#define POOL_MIN_SHIFT 6
#define POOL_KEEP_BYTES ((size_t)2 << 20)
static void *free_head[POOL_CLASSES];
static size_t kept_bytes;

static size_t class_size(int c) { return (size_t)1 << (POOL_MIN_SHIFT + c); }

static int class_of(size_t size)
{
    for (int c = 0; c < POOL_CLASSES; c++)
        if (size <= class_size(c))
            return c;
    return -1;
}

void *pool_get(size_t *size)
{
    int c = class_of(*size);
    void *p;
    if (c < 0)
        return malloc(*size);
    *size = class_size(c);
    p = free_head[c];
    if (!p)
        return malloc(*size);
    memcpy(&free_head[c], p, sizeof(void *));
    kept_bytes -= *size;
    return p;
}

void pool_put(void *p, size_t size)
{
    int c = class_of(size);
    if (!p)
        return;
    if (c >= 0 && class_size(c) == size && kept_bytes + size <= POOL_KEEP_BYTES) {
        memcpy(p, &free_head[c], sizeof(void *));
        free_head[c] = p;
        kept_bytes += size;
        return;
    }
    free(p);
}

void pool_trim(void)
{
    for (int c = 0; c < POOL_CLASSES; c++) {
        while (free_head[c]) {
            void *p = free_head[c];
            memcpy(&free_head[c], p, sizeof(void *));
            free(p);
        }
    }
    kept_bytes = 0;
}

/* A frame struct with room bytes after it. */
static frame *frame_alloc(size_t room)
{
    size_t cap = sizeof(frame) + room;
    frame *f = pool_get(&cap);
    if (!f)
        return NULL;
    f->refs = 1;
    f->cap = cap;
    f->data = NULL;
    f->len = 0;
    f->backing = NULL;
    f->head_len = f->span_len = 0;
    f->span = NULL;
    f->msgs = 1;
    return f;
}

frame *frame_deferred(void)
{
    return frame_alloc(WS_MAX_HEADER + FRAME_DEFERRED_ROOM);
}

void frame_fill_text(frame *f, const char *json, size_t len)
{
    memcpy((char *)(f + 1) + WS_MAX_HEADER, json, len);
    frame_end_text(f, len);
}

void frame_fill(frame *f, frame *with)
{
    f->backing = frame_ref(with);
    f->data = with->data;
    f->len = with->len;
    f->head_len = with->head_len;
    f->span_len = with->span_len;
    f->span = with->span;
}

frame *frame_begin_text(size_t max_len, char **payload)
{
    frame *f = frame_alloc(WS_MAX_HEADER + max_len);
    if (f)
        *payload = (char *)(f + 1) + WS_MAX_HEADER;
    return f;
}

void frame_end_text(frame *f, size_t len)
{
    uint8_t *payload = (uint8_t *)(f + 1) + WS_MAX_HEADER;
    f->data = ws_write_header_before(payload, WS_OP_TEXT, len);
    f->len = (uint32_t)(ws_header_len(len) + len);
}

void frame_end_gather(frame *f, size_t head_len, const uint8_t *span, size_t span_len,
                      frame *holder, size_t tail_len)
{
    uint8_t *payload = (uint8_t *)(f + 1) + WS_MAX_HEADER;
    size_t json_len = head_len + span_len + tail_len;
    f->data = ws_write_header_before(payload, WS_OP_TEXT, json_len);
    f->len = (uint32_t)(ws_header_len(json_len) + json_len);
    f->head_len = (uint32_t)((size_t)(payload - f->data) + head_len);
    f->span = span;
    f->span_len = (uint32_t)span_len;
    f->backing = frame_ref(holder);
}

frame *frame_block(size_t min_room, size_t *room)
{
    frame *f = frame_alloc(min_room);
    if (!f)
        return NULL;
    f->data = (uint8_t *)(f + 1);
    *room = f->cap - sizeof(frame);
    return f;
}

frame *frame_text(const char *json, size_t len)
{
    char *payload;
    frame *f = frame_begin_text(len, &payload);
    if (!f)
        return NULL;
    memcpy(payload, json, len);
    frame_end_text(f, len);
    return f;
}

frame *frame_begin_raw(size_t len, uint8_t **room)
{
    frame *f = frame_alloc(WS_MAX_HEADER + len);
    if (!f)
        return NULL;
    f->data = (uint8_t *)(f + 1);
    f->len = (uint32_t)len;
    *room = f->data;
    return f;
}

frame *frame_raw(const uint8_t *bytes, size_t len)
{
    uint8_t *room;
    frame *f = frame_begin_raw(len, &room);
    if (f)
        memcpy(room, bytes, len);
    return f;
}

void frame_unref(frame *f)
{
    if (f && --f->refs == 0) {
        frame_unref(f->backing);
        pool_put(f, f->cap);
    }
}

/* Room for one more frame within the caps; false when f must be dropped. */
static bool outq_reserve(outq *q, const frame *f, uint32_t max_msgs, size_t max_bytes)
{
    if (q->msgs >= max_msgs || f->msgs > max_msgs - q->msgs ||
        (q->count > 0 && q->bytes + f->len > max_bytes))
        return false;
    if (q->cap == 0) {
        /* Short queues live inside the struct: an idle peer's first message allocates nothing. */
        q->ring = q->inline_ring;
        q->cap = OUTQ_INLINE;
        q->head = 0;
    }
    if (q->count == q->cap) {
        uint32_t ncap = q->cap * 2;
        frame **nr;
        if (ncap > max_msgs)
            ncap = max_msgs;
        nr = malloc(ncap * sizeof *nr);
        if (!nr)
            return false;
        for (uint32_t i = 0; i < q->count; i++)
            nr[i] = q->ring[(q->head + i) % q->cap];
        if (q->ring != q->inline_ring)
            free(q->ring);
        q->ring = nr;
        q->head = 0;
        q->cap = ncap;
    }
    if (!f->data)
        q->recount = true;
    return true;
}

bool outq_push(outq *q, frame *f, uint32_t max_msgs, size_t max_bytes)
{
    if (!outq_reserve(q, f, max_msgs, max_bytes))
        return false;
    q->ring[(q->head + q->count) % q->cap] = frame_ref(f);
    q->count++;
    q->msgs += f->msgs;
    q->bytes += f->len;
    return true;
}

bool outq_push_urgent(outq *q, frame *f, uint32_t max_msgs, size_t max_bytes)
{
    if (!outq_reserve(q, f, max_msgs, max_bytes))
        return false;
    /* In at position `front`: behind a partly written frame and earlier urgent ones. */
    q->head = (q->head + q->cap - 1) % q->cap;
    for (uint32_t i = 0; i < q->front; i++)
        q->ring[(q->head + i) % q->cap] = q->ring[(q->head + i + 1) % q->cap];
    q->ring[(q->head + q->front) % q->cap] = frame_ref(f);
    q->front++;
    q->count++;
    q->msgs += f->msgs;
    q->bytes += f->len;
    return true;
}

void outq_settle(outq *q)
{
    if (!q->recount)
        return;
    q->recount = false;
    q->bytes = 0;
    for (uint32_t i = 0; i < q->count; i++) {
        const frame *f = q->ring[(q->head + i) % q->cap];
        if (!f->data)
            q->recount = true;
        q->bytes += f->len;
    }
    q->bytes -= q->head_sent;
}

int outq_peek(const outq *q, const void **bases, size_t *lens, int n_max)
{
    int n = 0;
    for (uint32_t i = 0; i < q->count && n < n_max; i++) {
        const frame *f = q->ring[(q->head + i) % q->cap];
        size_t skip = i == 0 ? q->head_sent : 0;
        if (!f->data)
            break;
        if (f->span_len == 0) {
            bases[n] = f->data + skip;
            lens[n] = f->len - skip;
            n++;
            continue;
        }
        /* A gathered frame is up to three pieces; skip what was written of them. */
        const uint8_t *part[3] = { f->data, f->span, f->data + f->head_len };
        size_t plen[3] = { f->head_len, f->span_len, f->len - f->head_len - f->span_len };
        for (int k = 0; k < 3 && n < n_max; k++) {
            if (skip >= plen[k]) {
                skip -= plen[k];
                continue;
            }
            bases[n] = part[k] + skip;
            lens[n] = plen[k] - skip;
            skip = 0;
            n++;
        }
    }
    return n;
}

static void release_ring_if_empty(outq *q)
{
    if (q->count != 0)
        return;
    q->head_sent = 0;
    q->front = 0;
    q->recount = false;
    if (q->ring != q->inline_ring) {
        free(q->ring);
        q->ring = NULL;
        q->cap = 0;
        q->head = 0;
    }
}

void outq_consume(outq *q, size_t n)
{
    q->bytes -= n;
    while (n > 0 && q->count > 0) {
        frame *f = q->ring[q->head];
        size_t left = f->len - q->head_sent;
        if (n < left) {
            q->head_sent += n;
            if (q->front == 0)
                q->front = 1;   /* a frame begun is never overtaken */
            return;
        }
        n -= left;
        if (q->front > 0)
            q->front--;
        q->msgs -= f->msgs;
        frame_unref(f);
        q->head = (q->head + 1) % q->cap;
        q->count--;
        q->head_sent = 0;
    }
    release_ring_if_empty(q);
}

void outq_clear(outq *q)
{
    while (q->count > 0) {
        frame_unref(q->ring[q->head]);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    q->bytes = 0;
    q->msgs = 0;
    release_ring_if_empty(q);
}

/* ---- notice log ---- */

/* Smallest and largest blocks, frame header included (pool classes). A notice larger than the
 * largest block's room goes to its listeners one by one (conn.c). */
#define NOTICE_LOG_MIN_BLOCK 1024u
#define NOTICE_LOG_MAX_BLOCK (64u * 1024u)
#define NOTICE_END_BYTES sizeof(uint32_t)

static uint32_t notice_end(const notice_log *lg, uint32_t i)
{
    uint32_t end;
    memcpy(&end, lg->blk->data + lg->room - NOTICE_END_BYTES * (i + 1), sizeof end);
    return end;
}

bool notice_log_append(notice_log *lg, const frame *f)
{
    uint32_t end;
    if (f->span_len > 0 || !f->data ||
        sizeof(frame) + NOTICE_END_BYTES + f->len > NOTICE_LOG_MAX_BLOCK)
        return false;
    if (!lg->blk) {
        size_t want = sizeof(frame) + NOTICE_END_BYTES + (lg->next_room > f->len ? lg->next_room : f->len);
        size_t room;
        if (want < NOTICE_LOG_MIN_BLOCK)
            want = NOTICE_LOG_MIN_BLOCK;
        if (want > NOTICE_LOG_MAX_BLOCK)
            want = NOTICE_LOG_MAX_BLOCK;
        lg->blk = frame_block(want - sizeof(frame), &room);
        if (!lg->blk)
            return false;
        lg->room = (uint32_t)room;
        lg->used = lg->n = 0;
    }
    if ((size_t)f->len + NOTICE_END_BYTES > lg->room - lg->used - NOTICE_END_BYTES * lg->n)
        return false;
    memcpy(lg->blk->data + lg->used, f->data, f->len);
    lg->used += f->len;
    end = lg->used;
    memcpy(lg->blk->data + lg->room - NOTICE_END_BYTES * (lg->n + 1), &end, sizeof end);
    lg->n++;
    return true;
}

void notice_log_clear(notice_log *lg, bool full)
{
    uint32_t held;
    if (!lg->blk)
        return;
    held = lg->used + (uint32_t)NOTICE_END_BYTES * lg->n;
    if (full) {
        lg->next_room = 2 * lg->room;
        lg->pass_room += held;
    } else {
        lg->next_room = lg->pass_room + held;
        lg->pass_room = 0;
    }
    frame_unref(lg->blk);
    lg->blk = NULL;
    lg->used = lg->n = lg->room = 0;
}

uint32_t outq_push_notices(outq *q, const notice_log *lg, uint32_t from, uint32_t max_msgs,
                           size_t max_bytes)
{
    uint32_t first = 0, hi, total, fit, len;
    frame *f;
    if (!lg->blk || from >= lg->used)
        return 0;
    /* the first notice ending after `from` is the one that begins there */
    hi = lg->n;
    while (first < hi) {
        uint32_t mid = first + (hi - first) / 2;
        if (notice_end(lg, mid) <= from)
            first = mid + 1;
        else
            hi = mid;
    }
    total = lg->n - first;
    /* as many as the message cap leaves room for, then as many of those as the byte cap does;
     * an empty queue takes the first whatever its size */
    hi = q->msgs >= max_msgs ? 0 : max_msgs - q->msgs < total ? max_msgs - q->msgs : total;
    fit = 0;
    while (fit < hi) {
        uint32_t mid = fit + (hi - fit + 1) / 2;
        if (q->bytes + (notice_end(lg, first + mid - 1) - from) <= max_bytes)
            fit = mid;
        else
            hi = mid - 1;
    }
    if (fit == 0 && q->count == 0 && q->msgs < max_msgs)
        fit = 1;
    if (fit == 0)
        return total;
    len = notice_end(lg, first + fit - 1) - from;
    f = frame_alloc(0);
    if (!f)
        return total;
    f->data = lg->blk->data + from;
    f->len = len;
    f->msgs = fit;
    f->backing = frame_ref(lg->blk);
    if (!outq_push(q, f, max_msgs, max_bytes))
        fit = 0;
    frame_unref(f);
    return total - fit;
}

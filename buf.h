/* Memory for the forward path: a size-class pool of blocks (so steady traffic allocates
 * nothing), reference-counted outgoing frames (a broadcast shares one frame among all targets;
 * a deferred frame is queued before its bytes exist, so one answer encoded at the end of a loop
 * pass serves every request of the pass), and the per-connection outbound queue bounded in
 * messages and bytes. Pure: no sockets. */
#ifndef DIG_BUF_H
#define DIG_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- pool ---- */
/* Returns a block of at least *size bytes and sets *size to its real capacity; NULL when out of
 * memory. Blocks come back through pool_put with that capacity. */
void *pool_get(size_t *size);
void pool_put(void *p, size_t size);
/* Drops every cached block (shutdown, and tests checking for leaks). */
void pool_trim(void);

/* ---- frames ---- */
typedef struct frame {
    uint32_t refs;
    uint32_t len;       /* bytes of the complete WebSocket frame */
    size_t cap;         /* capacity of the block holding this struct and the bytes */
    uint8_t *data;      /* first byte of the frame (header included); NULL: deferred, unfilled */
    struct frame *backing;   /* a filled deferred frame shows this frame's bytes (holds a ref) */
} frame;

/* A text frame carrying json[0..len): header written in place, payload copied once. */
frame *frame_text(const char *json, size_t len);
/* A text frame written in place: frame_begin_text returns a frame with room for up to max_len
 * payload bytes at *payload; once they are written, frame_end_text(f, len) puts the header in
 * front of them. Saves the copy frame_text makes when the size is known up front. */
frame *frame_begin_text(size_t max_len, char **payload);
void frame_end_text(frame *f, size_t len);
/* A frame of raw, already-encoded bytes (close frames, HTTP answers). */
frame *frame_raw(const uint8_t *bytes, size_t len);
/* A frame of len raw bytes that the caller writes at *room before queueing it. */
frame *frame_begin_raw(size_t len, uint8_t **room);
/* A deferred frame: queued like any other (counting as no bytes against the queue's byte cap
 * until filled), and filled with frame_fill before any queue holding it is written out; a queue
 * never writes past an unfilled frame. */
frame *frame_deferred(void);
/* Makes deferred frame f show with's bytes (f keeps a reference to with). */
void frame_fill(frame *f, frame *with);
/* Fills deferred frame f with a text frame of json[0..len), len <= FRAME_DEFERRED_ROOM, in its
 * own block: the answer of last resort when the shared one could not be made. */
#define FRAME_DEFERRED_ROOM 64
void frame_fill_text(frame *f, const char *json, size_t len);
static inline frame *frame_ref(frame *f) { f->refs++; return f; }
void frame_unref(frame *f);

/* ---- outbound queue ---- */
#define OUTQ_INLINE 4
typedef struct {
    frame **ring;                /* NULL or inline_ring until more than OUTQ_INLINE are queued */
    frame *inline_ring[OUTQ_INLINE];
    uint32_t head, count, cap;   /* grows by doubling up to max_msgs; heap ring freed when empty */
    size_t bytes;                /* queued bytes not yet written */
    size_t head_sent;            /* bytes of ring[head] already written */
    uint32_t front;              /* frames at the front an urgent one may not overtake */
    bool recount;                /* holds a deferred frame: bytes is recounted before writing */
} outq;

/* Appends a reference to f unless that would exceed max_msgs messages or max_bytes bytes
 * (a frame larger than max_bytes is still accepted into an empty queue so no single message is
 * undeliverable). Returns false when the frame was dropped. */
bool outq_push(outq *q, frame *f, uint32_t max_msgs, size_t max_bytes);
/* Like outq_push, but f goes ahead of everything not yet started (behind a frame partly
 * written): for keepalive answers, which must not wait behind a backlog. */
bool outq_push_urgent(outq *q, frame *f, uint32_t max_msgs, size_t max_bytes);
/* Brings the byte count up to date once the deferred frames queued have been filled; called
 * before outq_peek. */
void outq_settle(outq *q);
/* Fills up to n_max (base,len) pairs with the unwritten bytes at the front; returns the count. */
int outq_peek(const outq *q, const void **bases, size_t *lens, int n_max);
/* Marks n bytes written, releasing finished frames. */
void outq_consume(outq *q, size_t n);
void outq_clear(outq *q);
static inline bool outq_empty(const outq *q) { return q->count == 0; }

#endif

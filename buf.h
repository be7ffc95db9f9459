/* Memory for the forward path: a size-class pool of blocks (so steady traffic allocates
 * nothing), reference-counted outgoing frames (a broadcast shares one frame among all targets;
 * a deferred frame is queued before its bytes exist, so one answer encoded at the end of a loop
 * pass serves every request of the pass; a gathered frame sends a span of a received block
 * between its own head and tail, so a large payload is forwarded without being copied), the
 * per-connection outbound queue bounded in messages and bytes, and the notice log (a pass's
 * membership notices stored once, each listener queueing its stretch of them as one entry).
 * Pure: no sockets. */
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
    struct frame *backing;   /* a filled deferred frame shows this frame's bytes, a gathered
                              * frame's span lies in it (holds a ref either way) */
    /* Gathered (span_len > 0): the frame is data[0..head_len), span[0..span_len), then
     * data[head_len .. len - span_len). Otherwise the frame is data[0..len). */
    uint32_t head_len, span_len;
    const uint8_t *span;
    uint32_t msgs;      /* WebSocket messages in it: 1, or a stretch of a notice log's */
} frame;

/* A text frame carrying json[0..len): header written in place, payload copied once. */
frame *frame_text(const char *json, size_t len);
/* A text frame written in place: frame_begin_text returns a frame with room for up to max_len
 * payload bytes at *payload; once they are written, frame_end_text(f, len) puts the header in
 * front of them. Saves the copy frame_text makes when the size is known up front. */
frame *frame_begin_text(size_t max_len, char **payload);
void frame_end_text(frame *f, size_t len);
/* A gathered text frame whose JSON is head, then span[0..span_len) (bytes inside holder, which
 * the frame keeps a reference to until it is released), then tail: begin with
 * frame_begin_text(head and tail room, &payload), write the head and right after it the tail at
 * payload, then frame_end_gather(f, head bytes, span, span_len, holder, tail bytes). The span
 * is sent from where it lies, never copied. */
void frame_end_gather(frame *f, size_t head_len, const uint8_t *span, size_t span_len,
                      frame *holder, size_t tail_len);
/* A block for received bytes that gathered frames may point into: data[0 .. *room) is free to
 * fill (len is 0). Blocks are shared by reference: while refs > 1 its filled bytes must not
 * change. */
frame *frame_block(size_t min_room, size_t *room);
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
    uint32_t msgs;               /* messages queued (a frame may hold several): the cap counts these */
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

/* ---- notice log ---- */
/* The membership notices a set of connections hears in one loop pass, each stored once, back
 * to back as complete WebSocket frames in one block (their end offsets at the block's far end).
 * A listener queues the stretch it has not heard as one frame pointing into the block, so a
 * pass with k notices for m listeners makes m queue entries, not k * m. Blocks are sized from
 * what the previous pass needed, so a quiet network holds no more than a notice's worth. */
typedef struct {
    frame *blk;          /* NULL while empty */
    uint32_t used;       /* notice bytes at the front of the block */
    uint32_t n;          /* notices in the block */
    uint32_t room;       /* the block's bytes, notices and end offsets together */
    uint32_t next_room;  /* what the next block asks for */
    uint32_t pass_room;  /* what this pass's full blocks held (notices and end offsets) */
} notice_log;
/* Appends f (a plain frame); false when the block has no room left for it (begin a new one
 * with notice_log_clear once every listener has queued what it holds), when memory ran out, or
 * when f is not a plain frame or is larger than any block (those go to listeners one by one). */
bool notice_log_append(notice_log *lg, const frame *f);
/* Empties the log. full: the block ran out of room mid-pass, so the next one is twice its
 * size; otherwise (the pass is over) the next is sized to what the whole pass held, so a stream
 * of notices soon fits a pass in one block. */
void notice_log_clear(notice_log *lg, bool full);
/* Queues the notices from byte offset `from` (where a notice begins) to the end of the log as
 * one frame: the longest run from the first that the caps allow (outq_push's rules: an empty
 * queue takes the first whatever its size); once one does not fit, the rest are dropped too.
 * The frame counts as all its messages until its last byte is written. Returns how many did
 * not fit. */
uint32_t outq_push_notices(outq *q, const notice_log *lg, uint32_t from, uint32_t max_msgs,
                           size_t max_bytes);

#endif

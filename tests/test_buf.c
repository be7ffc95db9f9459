/* Unit tests for buf.c: pool reuse, frame headers and sharing, gathered frames over shared
 * blocks, outbound queue bounds and partial-write accounting. */
#include "buf.h"
#include "test.h"
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_pool_reuses_blocks_by_class(void)
{
    size_t a_size = 300, b_size = 500, c_size = 40;
    void *a = pool_get(&a_size);
    void *b, *c;
    REQUIRE(a != NULL);
    CHECK_EQ_INT(a_size, 512);
    pool_put(a, a_size);
    b = pool_get(&b_size);
    CHECK(b == a);
    CHECK_EQ_INT(b_size, 512);
    c = pool_get(&c_size);   /* a smaller class: not the block just handed out */
    REQUIRE(c != NULL);
    CHECK(c != b);
    CHECK_EQ_INT(c_size, 64);
    pool_put(b, b_size);
    pool_put(c, c_size);
    pool_trim();
}

static void test_frame_text_has_server_header(void)
{
    frame *f = frame_text("{\"a\":1}", 7);
    REQUIRE(f != NULL);
    CHECK_EQ_INT(f->len, 9);
    CHECK_EQ_INT(f->data[0], 0x81);  /* FIN + text */
    CHECK_EQ_INT(f->data[1], 7);     /* unmasked, length 7 */
    CHECK_EQ_MEM(f->data + 2, 7, "{\"a\":1}", 7);
    frame_unref(f);

    char big[300];
    memset(big, 'x', sizeof big);
    f = frame_text(big, sizeof big);
    REQUIRE(f != NULL);
    CHECK_EQ_INT(f->data[1], 126);
    CHECK_EQ_INT((f->data[2] << 8) | f->data[3], 300);
    CHECK_EQ_INT(f->len, 304);
    frame_unref(f);
    pool_trim();
}

static void test_frame_written_in_place(void)
{
    char *payload;
    frame *f = frame_begin_text(100, &payload);
    REQUIRE(f != NULL);
    memcpy(payload, "{\"b\":2}", 7);
    frame_end_text(f, 7);
    CHECK_EQ_INT(f->len, 9);
    CHECK_EQ_INT(f->data[0], 0x81);
    CHECK_EQ_INT(f->data[1], 7);
    CHECK(f->data + 2 == (uint8_t *)payload);   /* no copy: the header sits right before it */
    frame_unref(f);
    pool_trim();
}

static void test_outq_bounds_messages_and_bytes(void)
{
    outq q;
    frame *f = frame_text("0123456789", 10);  /* 12 bytes on the wire */
    memset(&q, 0, sizeof q);
    REQUIRE(f != NULL);
    CHECK(outq_push(&q, f, 3, 1000));
    CHECK(outq_push(&q, f, 3, 1000));
    CHECK(outq_push(&q, f, 3, 1000));
    CHECK(!outq_push(&q, f, 3, 1000));     /* message cap */
    CHECK_EQ_INT(q.count, 3);
    CHECK_EQ_INT(f->refs, 4);
    outq_clear(&q);
    CHECK_EQ_INT(f->refs, 1);
    CHECK(outq_push(&q, f, 100, 20));
    CHECK(!outq_push(&q, f, 100, 20));     /* byte cap: 24 > 20 */
    outq_clear(&q);
    /* An empty queue takes one frame even past the byte cap so no message is undeliverable. */
    CHECK(outq_push(&q, f, 100, 5));
    outq_clear(&q);
    frame_unref(f);
    pool_trim();
}

static void test_outq_partial_writes_and_growth(void)
{
    outq q;
    const void *bases[64];
    size_t lens[64];
    frame *f[10];
    memset(&q, 0, sizeof q);
    for (int i = 0; i < 10; i++) {
        char text[2] = { (char)('0' + i), 0 };
        f[i] = frame_text(text, 1);
        REQUIRE(f[i] != NULL);
        CHECK(outq_push(&q, f[i], 1024, 1 << 20));  /* grows past the inline ring */
    }
    CHECK_EQ_INT(q.bytes, 30);
    CHECK_EQ_INT(outq_peek(&q, bases, lens, 64), 10);
    outq_consume(&q, 4);                            /* frame 0 and one byte of frame 1 */
    CHECK_EQ_INT(q.count, 9);
    CHECK_EQ_INT(outq_peek(&q, bases, lens, 64), 9);
    CHECK_EQ_INT(lens[0], 2);
    CHECK_EQ_INT(((const uint8_t *)bases[0])[1], '1');
    outq_consume(&q, 26);
    CHECK(outq_empty(&q));
    CHECK_EQ_INT(q.bytes, 0);
    CHECK(q.ring == NULL);                          /* heap ring released when drained */
    for (int i = 0; i < 10; i++) {
        CHECK_EQ_INT(f[i]->refs, 1);
        frame_unref(f[i]);
    }
    pool_trim();
}

/* Urgent frames go behind a partly written frame and earlier urgent ones, ahead of the rest. */
static void test_outq_urgent_order(void)
{
    outq q = { 0 };
    frame *a = frame_text("aaaa", 4), *b = frame_text("bbbb", 4), *p1 = frame_text("p1", 2);
    frame *p2 = frame_text("p2", 2), *p3 = frame_text("p3", 2);
    const void *bases[8];
    size_t lens[8];
    REQUIRE(a && b && p1 && p2 && p3);
    CHECK(outq_push(&q, a, 16, 1000));
    CHECK(outq_push(&q, b, 16, 1000));
    outq_consume(&q, 1);                          /* a is begun */
    CHECK(outq_push_urgent(&q, p1, 16, 1000));
    CHECK(outq_push_urgent(&q, p2, 16, 1000));
    CHECK_EQ_INT(outq_peek(&q, bases, lens, 8), 4);
    CHECK(bases[0] == a->data + 1 && bases[1] == p1->data && bases[2] == p2->data &&
          bases[3] == b->data);
    outq_consume(&q, a->len - 1 + p1->len);       /* a and p1 written */
    CHECK(outq_push_urgent(&q, p3, 16, 1000));
    CHECK_EQ_INT(outq_peek(&q, bases, lens, 8), 3);
    CHECK(bases[0] == p2->data && bases[1] == p3->data && bases[2] == b->data);
    CHECK_EQ_INT(q.bytes, p2->len + p3->len + b->len);
    outq_clear(&q);
    frame_unref(a), frame_unref(b), frame_unref(p1), frame_unref(p2), frame_unref(p3);
    pool_trim();
}

/* A deferred frame counts no bytes and is never written past until filled; filled, it shows
 * the other frame's bytes and keeps it alive. */
static void test_deferred_frame(void)
{
    outq q = { 0 };
    frame *d = frame_deferred(), *x = frame_text("xx", 2), *full = frame_text("answer", 6);
    const void *bases[8];
    size_t lens[8];
    REQUIRE(d && x && full);
    CHECK(outq_push(&q, d, 16, 1000));
    CHECK(outq_push(&q, x, 16, 1000));
    CHECK_EQ_INT(q.bytes, x->len);
    CHECK_EQ_INT(outq_peek(&q, bases, lens, 8), 0);
    frame_fill(d, full);
    frame_unref(d);
    frame_unref(full);                            /* the queue's reference keeps both */
    outq_settle(&q);
    CHECK_EQ_INT(q.bytes, 8 + 4);
    CHECK_EQ_INT(outq_peek(&q, bases, lens, 8), 2);
    CHECK(lens[0] == 8 && memcmp((const char *)bases[0] + 2, "answer", 6) == 0);
    outq_consume(&q, 12);
    CHECK(outq_empty(&q));
    frame_unref(x);
    pool_trim();
}

/* Concatenates what outq_peek shows (at most n_max pieces) into out; returns the byte count. */
static size_t peek_all(const outq *q, uint8_t *out, int n_max, int *pieces)
{
    const void *bases[16];
    size_t lens[16], n = 0;
    *pieces = outq_peek(q, bases, lens, n_max < 16 ? n_max : 16);
    for (int i = 0; i < *pieces; i++) {
        memcpy(out + n, bases[i], lens[i]);
        n += lens[i];
    }
    return n;
}

/* A received block shared by the frames that forward spans of it: the gathered frame is its
 * head, the span where it lies and its tail, and written in any split it is the same bytes as
 * the frame written whole; the block lives until the last frame pointing into it is released. */
static void test_gathered_frame_over_shared_block(void)
{
    size_t room;
    frame *blk = frame_block(300, &room);
    REQUIRE(blk != NULL);
    CHECK(room >= 300 && blk->len == 0);
    CHECK_EQ_INT(room + sizeof(frame), blk->cap);   /* one pool block, nothing wasted */
    /* the block holds "..[0,1,...]..": a 200-byte span in the middle */
    uint8_t span[200];
    memset(blk->data, '.', 260);
    for (size_t i = 0; i < sizeof span; i++)
        span[i] = (uint8_t)('a' + i % 26);
    memcpy(blk->data + 30, span, sizeof span);

    static const char head[] = "{\"payload\":", tail[] = ",\"seq\":7}";
    char *room_at;
    frame *g = frame_begin_text(64, &room_at);
    REQUIRE(g != NULL);
    memcpy(room_at, head, sizeof head - 1);
    memcpy(room_at + sizeof head - 1, tail, sizeof tail - 1);
    frame_end_gather(g, sizeof head - 1, blk->data + 30, sizeof span, blk, sizeof tail - 1);
    CHECK_EQ_INT(blk->refs, 2);

    /* what the same JSON makes as one contiguous frame */
    char whole[512];
    size_t wn = 0;
    memcpy(whole, head, sizeof head - 1), wn += sizeof head - 1;
    memcpy(whole + wn, span, sizeof span), wn += sizeof span;
    memcpy(whole + wn, tail, sizeof tail - 1), wn += sizeof tail - 1;
    frame *w = frame_text(whole, wn);
    REQUIRE(w != NULL);
    CHECK_EQ_INT(g->len, w->len);
    CHECK_EQ_INT(g->len, 4 + wn);                   /* 126: a 16-bit length header */

    outq q = { 0 }, r = { 0 };
    uint8_t got[1024];
    int pieces;
    CHECK(outq_push(&q, g, 16, 1 << 20));
    CHECK(outq_push(&q, g, 16, 1 << 20));           /* twice: two frames, six pieces */
    frame_unref(g);
    frame_unref(blk);                               /* the owner lets go; the frames keep it */
    CHECK_EQ_INT(q.bytes, 2 * (size_t)w->len);
    CHECK_EQ_INT(peek_all(&q, got, 16, &pieces), 2 * (size_t)w->len);
    CHECK_EQ_INT(pieces, 6);
    CHECK_EQ_MEM(got, w->len, w->data, w->len);
    CHECK_EQ_MEM(got + w->len, w->len, w->data, w->len);

    /* written in every split: each byte offset through the first frame, then the rest */
    for (size_t cut = 1; cut < w->len; cut++) {
        CHECK(outq_push(&r, q.ring[q.head], 16, 1 << 20));
        outq_consume(&r, cut);
        size_t n = peek_all(&r, got, 16, &pieces);
        CHECK_EQ_INT(pieces, cut < 4 + sizeof head - 1 ? 3 : cut < 4 + sizeof head - 1 + sizeof span ? 2 : 1);
        CHECK_EQ_MEM(got, n, w->data + cut, w->len - cut);
        outq_consume(&r, n);
        CHECK(outq_empty(&r));
    }
    /* a peek that stops inside a frame shows a prefix of it */
    CHECK_EQ_INT(peek_all(&q, got, 2, &pieces), 4 + sizeof head - 1 + sizeof span);
    CHECK_EQ_INT(pieces, 2);

    /* a deferred frame filled with a gathered one shows the same pieces */
    frame *d = frame_deferred();
    REQUIRE(d != NULL);
    frame_fill(d, q.ring[q.head]);
    CHECK(outq_push(&r, d, 16, 1 << 20));
    frame_unref(d);
    outq_settle(&r);
    CHECK_EQ_INT(peek_all(&r, got, 16, &pieces), w->len);
    CHECK_EQ_INT(pieces, 3);
    CHECK_EQ_MEM(got, w->len, w->data, w->len);
    outq_clear(&r);
    outq_consume(&q, 2 * (size_t)w->len);           /* the last reference to the block goes */
    CHECK(outq_empty(&q));
    frame_unref(w);
    pool_trim();
}

/* Notices stored once: a listener queues the stretch it has not heard as one entry, which
 * writes exactly the notices' frames back to back, counts as that many messages against the
 * cap, is cut at a notice boundary by either cap, and keeps the block alive after the log
 * starts over. */
static void test_notice_log(void)
{
    notice_log lg = { 0 };
    frame *n[5];
    uint8_t want[512], got[512];
    size_t want_len = 0, at[6];
    int pieces;
    for (int i = 0; i < 5; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "{\"notice\":%d%.*s}", i, i * 3, "xxxxxxxxxxxxxxx");
        n[i] = frame_text(text, (size_t)len);
        REQUIRE(n[i] != NULL);
        at[i] = want_len;
        memcpy(want + want_len, n[i]->data, n[i]->len);
        want_len += n[i]->len;
        CHECK(notice_log_append(&lg, n[i]));
    }
    at[5] = want_len;
    CHECK_EQ_INT(lg.n, 5);
    CHECK_EQ_INT(lg.used, want_len);

    /* all five as one entry; from the third on as another */
    outq q = { 0 }, r = { 0 };
    CHECK_EQ_INT(outq_push_notices(&q, &lg, 0, 1024, 1 << 20), 0);
    CHECK_EQ_INT(outq_push_notices(&r, &lg, (uint32_t)at[2], 1024, 1 << 20), 0);
    CHECK_EQ_INT(q.count, 1);
    CHECK_EQ_INT(q.msgs, 5);
    CHECK_EQ_INT(r.msgs, 3);
    CHECK_EQ_MEM(got, peek_all(&q, got, 16, &pieces), want, want_len);
    CHECK_EQ_MEM(got, peek_all(&r, got, 16, &pieces), want + at[2], want_len - at[2]);
    CHECK(!outq_push(&q, n[0], 5, 1 << 20));        /* the cap counts messages, not entries */
    CHECK(outq_push(&q, n[0], 6, 1 << 20));
    outq_clear(&q);
    CHECK_EQ_INT(q.msgs, 0);

    /* the message cap takes the first ones, in order (two beside the frame queued before);
     * the rest are reported dropped */
    CHECK(outq_push(&q, n[4], 16, 1 << 20));
    CHECK_EQ_INT(outq_push_notices(&q, &lg, 0, 3, 1 << 20), 3);
    CHECK_EQ_INT(q.msgs, 3);
    CHECK_EQ_INT(peek_all(&q, got, 16, &pieces), n[4]->len + at[2]);
    CHECK_EQ_MEM(got, n[4]->len, n[4]->data, n[4]->len);
    CHECK_EQ_MEM(got + n[4]->len, at[2], want, at[2]);
    outq_clear(&q);
    /* the byte cap too, at a notice boundary */
    CHECK_EQ_INT(outq_push_notices(&q, &lg, 0, 1024, at[3] + 1), 2);
    CHECK_EQ_INT(q.bytes, at[3]);
    outq_clear(&q);
    /* an empty queue takes the first notice whatever its size, as outq_push does */
    CHECK_EQ_INT(outq_push_notices(&q, &lg, (uint32_t)at[1], 1024, 1), 3);
    CHECK_EQ_INT(q.bytes, at[2] - at[1]);
    CHECK_EQ_INT(outq_push_notices(&q, &lg, (uint32_t)at[4], 1024, 1), 1);
    outq_clear(&q);
    CHECK_EQ_INT(outq_push_notices(&q, &lg, (uint32_t)want_len, 1024, 1 << 20), 0);
    CHECK(outq_empty(&q));

    /* the log starts over; r's entry still shows the old block's bytes */
    frame *blk = lg.blk;
    notice_log_clear(&lg, false);
    CHECK(lg.blk == NULL && lg.used == 0 && lg.n == 0);
    CHECK_EQ_INT(blk->refs, 1);
    CHECK_EQ_MEM(got, peek_all(&r, got, 16, &pieces), want + at[2], want_len - at[2]);
    outq_consume(&r, want_len - at[2]);
    CHECK(outq_empty(&r));
    CHECK_EQ_INT(r.msgs, 0);

    /* a block sized to the last pass; once full, append says so, and the next is twice as big */
    uint32_t first_room = 0, appended = 0;
    while (notice_log_append(&lg, n[4])) {
        first_room = lg.room;
        appended++;
    }
    CHECK(appended >= 5);
    CHECK(lg.blk != NULL && lg.room == first_room);
    CHECK(lg.used + sizeof(uint32_t) * (lg.n + 1) + n[4]->len > lg.room);
    notice_log_clear(&lg, true);
    CHECK(notice_log_append(&lg, n[4]));
    CHECK(lg.room > first_room);
    notice_log_clear(&lg, false);
    for (int i = 0; i < 5; i++)
        frame_unref(n[i]);
    pool_trim();
}

int main(void)
{
    RUN(test_pool_reuses_blocks_by_class);
    RUN(test_frame_text_has_server_header);
    RUN(test_frame_written_in_place);
    RUN(test_outq_bounds_messages_and_bytes);
    RUN(test_outq_partial_writes_and_growth);
    RUN(test_outq_urgent_order);
    RUN(test_deferred_frame);
    RUN(test_gathered_frame_over_shared_block);
    RUN(test_notice_log);
    return test_finish();
}

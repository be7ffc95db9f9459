/* Unit tests for buf.c: pool reuse, frame headers and sharing, outbound queue bounds and
 * partial-write accounting. */
#include "buf.h"
#include "test.h"
#include "ws.h"

#include <stdlib.h>
#include <string.h>

static void test_pool_reuses_blocks_by_class(void)
{
    size_t a_size = 100, b_size = 300;
    void *a = pool_get(&a_size);
    void *b;
    REQUIRE(a != NULL);
    CHECK_EQ_INT(a_size, 512);
    pool_put(a, a_size);
    b = pool_get(&b_size);
    CHECK(b == a);
    CHECK_EQ_INT(b_size, 512);
    pool_put(b, b_size);
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

int main(void)
{
    RUN(test_pool_reuses_blocks_by_class);
    RUN(test_frame_text_has_server_header);
    RUN(test_frame_written_in_place);
    RUN(test_outq_bounds_messages_and_bytes);
    RUN(test_outq_partial_writes_and_growth);
    RUN(test_outq_urgent_order);
    RUN(test_deferred_frame);
    return test_finish();
}

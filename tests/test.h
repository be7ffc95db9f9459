/* Tiny in-repo test runner shared by every tests/test_*.c binary.
 *
 * A test is a function registered in main() through RUN(fn). CHECK records a failure with its
 * location and keeps going; REQUIRE returns from the test on failure. SKIP marks a test skipped
 * with the reason ("skipped: <package> not installed"). test_finish() prints the
 * "RESULT passed failed skipped" line that tests/run.sh adds up. */
#ifndef DIG_TEST_H
#define DIG_TEST_H

#include <stdio.h>
#include <string.h>

static int test_passed, test_failed, test_skipped;
static int test_cur_failed, test_cur_skipped;

#define CHECK(cond) do { if (!(cond)) { \
    printf("  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); test_cur_failed = 1; } } while (0)
#define REQUIRE(cond) do { if (!(cond)) { \
    printf("  %s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); test_cur_failed = 1; return; } } while (0)
#define CHECK_EQ_INT(a, b) do { long long va_ = (long long)(a), vb_ = (long long)(b); if (va_ != vb_) { \
    printf("  %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, va_, vb_); test_cur_failed = 1; } } while (0)
#define CHECK_EQ_STR(a, b) do { const char *sa_ = (a), *sb_ = (b); if (strcmp(sa_, sb_) != 0) { \
    printf("  %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, sa_, sb_); test_cur_failed = 1; } } while (0)
#define CHECK_EQ_MEM(a, alen, b, blen) do { size_t la_ = (alen), lb_ = (blen); \
    if (la_ != lb_ || memcmp((a), (b), la_) != 0) { \
    printf("  %s:%d: %s (%zu bytes) != %s (%zu bytes)\n", __FILE__, __LINE__, #a, la_, #b, lb_); \
    test_cur_failed = 1; } } while (0)
#define SKIP(reason) do { printf("  skipped: %s\n", reason); test_cur_skipped = 1; return; } while (0)

#define RUN(fn) RUN_AND(fn, (void)0)
/* RUN, with `after` (a statement that may still fail the test) run before the result counts. */
#define RUN_AND(fn, after) do { test_cur_failed = 0; test_cur_skipped = 0; fn(); after; \
    if (test_cur_failed) { test_failed++; printf("FAIL %s\n", #fn); } \
    else if (test_cur_skipped) { test_skipped++; printf("SKIP %s\n", #fn); } \
    else { test_passed++; } \
    fflush(stdout); } while (0)

static inline int test_finish(void)
{
    printf("RESULT %d %d %d\n", test_passed, test_failed, test_skipped);
    return test_failed ? 1 : 0;
}

#endif

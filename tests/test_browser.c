/* The shared browser helper itself (tests/browser.[ch], tests/browser.py) in headless Chromium:
 * a page's script runs before the wait returns, values come back from the rendered DOM, a
 * string carrying <script> that a page inserts as text stays text, a phone viewport applies,
 * and a screenshot lands in the artifacts folder as a PNG. */
#include "tests/browser.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

static const char page[] =
    "data:text/html,<!DOCTYPE html><p id=x></p><script>"
    "setTimeout(function(){document.getElementById('x').textContent="
    "'<script>window.pwned=1</'+'script><b>bold</b>';document.body.dataset.state='done';},300);"
    "</script>";

static void test_helper_reads_rendered_dom(void)
{
    browser b;
    char out[512];
    BROWSER_OPEN_OR_SKIP(&b);
    REQUIRE(browser_goto(&b, page));
    CHECK(browser_wait(&b, "document.body.dataset.state === 'done'", 10000));
    CHECK(browser_eval_str(&b, "document.getElementById('x').textContent", out, sizeof out));
    CHECK_EQ_STR(out, "<script>window.pwned=1</script><b>bold</b>");
    CHECK(browser_eval(&b, "[typeof window.pwned, document.querySelectorAll('b').length]", out, sizeof out));
    CHECK_EQ_STR(out, "[\"undefined\", 0]");
    CHECK(!browser_wait(&b, "false", 300));                 /* a condition that never holds */
    CHECK(browser_viewport(&b, 375, 700, true));
    CHECK(browser_eval(&b, "screen.width", out, sizeof out));
    CHECK_EQ_STR(out, "375");
    REQUIRE(browser_screenshot(&b, "browser-helper.png"));
    char path[512];
    snprintf(path, sizeof path, "%s/browser-helper.png", browser_artifacts());
    FILE *f = fopen(path, "rb");
    unsigned char sig[8] = { 0 };
    CHECK(f && fread(sig, 1, 8, f) == 8 && memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0);
    if (f)
        fclose(f);
    browser_close(&b);
}

int main(void)
{
    RUN(test_helper_reads_rendered_dom);
    return test_finish();
}

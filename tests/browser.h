/* Test support: a headless Chromium for tests that check pages as a person sees them, driven
 * through tests/browser.py (DevTools protocol over a pipe). Load a URL, wait until a JavaScript
 * condition holds (the page's scripts have run), read values out of the rendered DOM, keep
 * screenshots for reviewers. Every call has a deadline. Screenshots go to browser_artifacts()
 * ($DIG_TEST_ARTIFACTS, default tests/artifacts/), which CI keeps as output files. */
#ifndef DIG_TEST_BROWSER_H
#define DIG_TEST_BROWSER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    int to, from;          /* commands to the driver, answers from it */
    char answer[65536];    /* the last answer line */
} browser;

/* Starts the browser. False with the reason in why; the reason is "chromium not installed"
 * when it is missing (the caller then SKIPs). */
bool browser_open(browser *b, char *why, size_t whylen);
void browser_close(browser *b);
/* In a test function (tests/test.h included first): opens the browser, or skips the test when
 * chromium is not installed, or fails it with the reason. */
#define BROWSER_OPEN_OR_SKIP(b) do { char why_[256]; if (!browser_open((b), why_, sizeof why_)) { \
    if (strcmp(why_, "chromium not installed") == 0) SKIP("chromium not installed"); \
    printf("  %s\n", why_); REQUIRE(0); } } while (0)

bool browser_goto(browser *b, const char *url);
/* Polls the expression until it is truthy; false after timeout_ms (the reason is printed). */
bool browser_wait(browser *b, const char *js, unsigned timeout_ms);
/* The JSON text of the expression's value (a string comes quoted and escaped). */
bool browser_eval(browser *b, const char *js, char *out, size_t cap);
/* The expression's value as a string (it must evaluate to one); false otherwise. */
bool browser_eval_str(browser *b, const char *js, char *out, size_t cap);
bool browser_viewport(browser *b, unsigned width, unsigned height, bool mobile);
/* Saves a PNG of the viewport as browser_artifacts()/name. */
bool browser_screenshot(browser *b, const char *name);
const char *browser_artifacts(void);

#endif

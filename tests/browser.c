/* Test support (browser.h): runs tests/browser.py with two pipes and speaks its line protocol;
 * commands are JSON written with json.c's writer, answers are read line by line with a
 * deadline. */
#include "tests/browser.h"
#include "json.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MS 60000

static unsigned long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000u + (unsigned long long)t.tv_nsec / 1000000u;
}

/* Reads one answer line into b->answer; false on EOF or after ms. */
static bool read_answer(browser *b, unsigned ms)
{
    size_t n = 0;
    unsigned long long end = now_ms() + ms;
    for (;;) {
        struct pollfd p = { b->from, POLLIN, 0 };
        unsigned long long t = now_ms();
        if (t >= end)
            return false;
        int r = poll(&p, 1, (int)(end - t));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        char c;
        ssize_t k = read(b->from, &c, 1);
        if (k <= 0)
            return false;
        if (c == '\n') {
            b->answer[n] = 0;
            return true;
        }
        if (n + 1 < sizeof b->answer)
            b->answer[n++] = c;
    }
}

/* The raw JSON of the answer's value, or NULL when the answer is not ok. */
static const char *answer_value(browser *b)
{
    static const char ok[] = "{\"ok\": true, \"value\": ";
    size_t n = strlen(b->answer);
    if (strncmp(b->answer, ok, sizeof ok - 1) != 0 || n < sizeof ok || b->answer[n - 1] != '}')
        return NULL;
    b->answer[n - 1] = 0;
    return b->answer + sizeof ok - 1;
}

/* Sends {"cmd":cmd, key:value...} (string values) and reads the answer; the value or NULL. */
static const char *command(browser *b, const char *cmd, const char *const *kv, const char *raw_tail)
{
    json_writer w;
    jw_init(&w, 0, 1 << 20);
    jw_lit(&w, "{\"cmd\":");
    jw_string(&w, cmd, strlen(cmd));
    for (size_t i = 0; kv && kv[i]; i += 2) {
        jw_lit(&w, ",");
        jw_string(&w, kv[i], strlen(kv[i]));
        jw_lit(&w, ":");
        jw_string(&w, kv[i + 1], strlen(kv[i + 1]));
    }
    if (raw_tail)
        jw_lit(&w, raw_tail);
    jw_lit(&w, "}\n");
    bool sent = !w.failed && write(b->to, w.p, w.len) == (ssize_t)w.len;
    jw_free(&w);
    if (!sent || !read_answer(b, ANSWER_MS)) {
        printf("  browser: no answer to %s\n", cmd);
        return NULL;
    }
    const char *v = answer_value(b);
    if (!v)
        printf("  browser: %s: %.300s\n", cmd, b->answer);
    return v;
}

bool browser_open(browser *b, char *why, size_t whylen)
{
    int to[2], from[2];
    memset(b, 0, sizeof b->pid + sizeof b->to + sizeof b->from);
    b->pid = -1;
    if (access("/usr/bin/chromium", X_OK) != 0 && !getenv("DIG_CHROMIUM")) {
        snprintf(why, whylen, "chromium not installed");
        return false;
    }
    if (pipe(to) != 0 || pipe(from) != 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return false;
    }
    b->pid = fork();
    if (b->pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execlp("python3", "python3", "tests/browser.py", (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    b->to = to[1];
    b->from = from[0];
    if (b->pid < 0 || !read_answer(b, ANSWER_MS) || !answer_value(b)) {
        snprintf(why, whylen, "browser did not start: %.200s", b->pid < 0 ? "fork failed" : b->answer);
        browser_close(b);
        return false;
    }
    return true;
}

void browser_close(browser *b)
{
    if (b->pid <= 0)
        return;
    close(b->to);
    unsigned long long end = now_ms() + 20000;
    int status;
    while (waitpid(b->pid, &status, WNOHANG) == 0) {
        if (now_ms() > end) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &status, 0);
            break;
        }
        usleep(20000);
    }
    close(b->from);
    b->pid = -1;
}

bool browser_goto(browser *b, const char *url)
{
    const char *kv[] = { "url", url, NULL };
    return command(b, "goto", kv, NULL) != NULL;
}

bool browser_wait(browser *b, const char *js, unsigned timeout_ms)
{
    char tail[48];
    const char *kv[] = { "expr", js, NULL };
    snprintf(tail, sizeof tail, ",\"timeout_ms\":%u", timeout_ms);
    return command(b, "wait", kv, tail) != NULL;
}

bool browser_eval(browser *b, const char *js, char *out, size_t cap)
{
    const char *kv[] = { "expr", js, NULL };
    const char *v = command(b, "eval", kv, NULL);
    if (!v || strlen(v) >= cap)
        return false;
    strcpy(out, v);
    return true;
}

bool browser_eval_str(browser *b, const char *js, char *out, size_t cap)
{
    char raw[8192];
    json_reader r;
    json_span s;
    if (!browser_eval(b, js, raw, sizeof raw))
        return false;
    json_reader_init(&r, raw, strlen(raw));
    if (!json_read_string(&r, &s) || !json_end(&r) || s.n >= cap)
        return false;
    out[json_unescape(s, out)] = 0;
    return true;
}

bool browser_viewport(browser *b, unsigned width, unsigned height, bool mobile)
{
    char tail[96];
    snprintf(tail, sizeof tail, ",\"width\":%u,\"height\":%u,\"mobile\":%s", width, height,
             mobile ? "true" : "false");
    return command(b, "viewport", NULL, tail) != NULL;
}

const char *browser_artifacts(void)
{
    const char *dir = getenv("DIG_TEST_ARTIFACTS");
    return dir && *dir ? dir : "tests/artifacts";
}

bool browser_screenshot(browser *b, const char *name)
{
    char path[512];
    mkdir(browser_artifacts(), 0755);
    snprintf(path, sizeof path, "%s/%s", browser_artifacts(), name);
    const char *kv[] = { "path", path, NULL };
    return command(b, "screenshot", kv, NULL) != NULL;
}

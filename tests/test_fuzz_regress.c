/* Replays committed fuzz inputs through every libFuzzer harness in the ordinary test build, so a
 * bug a fuzzer once found stays fixed without clang or libFuzzer.
 *
 * Each harness (fuzz/fuzz_<name>.c) is compiled in here with its entry point renamed, and is fed
 * every file in fuzz/corpus/<name>/ (the seeds) and fuzz/regress/<name>/ (minimized crashers and
 * other inputs worth keeping). Every input runs in a child process, so an abort() from a
 * harness's property check, a sanitizer report (under `make SANITIZER=address test`, including
 * LeakSanitizer's check at the child's exit) or a plain crash fails the test and names the file.
 * Harnesses are picked up with __has_include so this file builds while a codec owner is still
 * writing theirs; a check at run time makes sure no fuzz/fuzz_*.c harness goes unreplayed. */
#include "tests/test.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef int (*fuzz_entry)(const uint8_t *data, size_t size);

#if __has_include("fuzz/fuzz_addr.c")
#define LLVMFuzzerTestOneInput fuzz_entry_addr
#include "fuzz/fuzz_addr.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_ADDR { "addr", fuzz_entry_addr },
#else
#define HAVE_FUZZ_ADDR
#endif

#if __has_include("fuzz/fuzz_http.c")
#define LLVMFuzzerTestOneInput fuzz_entry_http
#include "fuzz/fuzz_http.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_HTTP { "http", fuzz_entry_http },
#else
#define HAVE_FUZZ_HTTP
#endif

#if __has_include("fuzz/fuzz_json.c")
#define LLVMFuzzerTestOneInput fuzz_entry_json
#include "fuzz/fuzz_json.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_JSON { "json", fuzz_entry_json },
#else
#define HAVE_FUZZ_JSON
#endif

#if __has_include("fuzz/fuzz_pex.c")
#define LLVMFuzzerTestOneInput fuzz_entry_pex
#include "fuzz/fuzz_pex.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_PEX { "pex", fuzz_entry_pex },
#else
#define HAVE_FUZZ_PEX
#endif

#if __has_include("fuzz/fuzz_stun.c")
#define LLVMFuzzerTestOneInput fuzz_entry_stun
#include "fuzz/fuzz_stun.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_STUN { "stun", fuzz_entry_stun },
#else
#define HAVE_FUZZ_STUN
#endif

#if __has_include("fuzz/fuzz_wire.c")
#define LLVMFuzzerTestOneInput fuzz_entry_wire
#include "fuzz/fuzz_wire.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_WIRE { "wire", fuzz_entry_wire },
#else
#define HAVE_FUZZ_WIRE
#endif

#if __has_include("fuzz/fuzz_ws.c")
#define LLVMFuzzerTestOneInput fuzz_entry_ws
#include "fuzz/fuzz_ws.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_WS { "ws", fuzz_entry_ws },
#else
#define HAVE_FUZZ_WS
#endif

typedef struct {
    const char *name;
    fuzz_entry entry;
} harness;

static const harness harnesses[] = {
    HAVE_FUZZ_ADDR HAVE_FUZZ_HTTP HAVE_FUZZ_JSON HAVE_FUZZ_PEX HAVE_FUZZ_STUN HAVE_FUZZ_WIRE
    HAVE_FUZZ_WS
};
#define N_HARNESSES (sizeof harnesses / sizeof harnesses[0])

#define MAX_REPLAY_INPUT (1u << 20) /* libFuzzer's default -max_len is far below this */

static const harness *find_harness(const char *name)
{
    for (size_t i = 0; i < N_HARNESSES; i++)
        if (strcmp(harnesses[i].name, name) == 0)
            return &harnesses[i];
    return NULL;
}

/* Reads a file into an exact-size heap block, so ASan sees a read one byte past the input. */
static uint8_t *read_input(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && (unsigned long)size <= MAX_REPLAY_INPUT && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc(size ? (size_t)size : 1);
            if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
                free(buf);
                buf = NULL;
            }
            *len = (size_t)size;
        }
    }
    fclose(f);
    return buf;
}

/* Runs one input through the harness in a child; true when the child exited 0. */
static bool replay_one(const harness *h, const char *path)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        printf("  fork: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        size_t len = 0;
        uint8_t *data = read_input(path, &len);
        if (!data) {
            printf("  %s: unreadable or larger than %u bytes\n", path, MAX_REPLAY_INPUT);
            fflush(stdout);
            _exit(3);
        }
        h->entry(data, len);
        free(data);
        exit(0); /* exit, not _exit: LeakSanitizer checks at exit */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    if (WIFSIGNALED(status))
        printf("  %s: fuzz_%s died with signal %d\n", path, h->name, WTERMSIG(status));
    else
        printf("  %s: fuzz_%s exited %d\n", path, h->name, WEXITSTATUS(status));
    return false;
}

/* Replays every regular file in dir; returns how many were replayed (0 when dir is absent),
 * adding failures to *failed. */
static size_t replay_dir(const harness *h, const char *dir, size_t *failed)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[1024];
        struct stat st;
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        n++;
        if (!replay_one(h, path))
            (*failed)++;
    }
    closedir(d);
    return n;
}

/* Every harness replays its seeds (which must exist) and any committed regression inputs. */
static void test_replay_seeds_and_regressions(void)
{
    REQUIRE(N_HARNESSES > 0);
    for (size_t i = 0; i < N_HARNESSES; i++) {
        const harness *h = &harnesses[i];
        char dir[256];
        size_t failed = 0;
        snprintf(dir, sizeof dir, "fuzz/corpus/%s", h->name);
        size_t seeds = replay_dir(h, dir, &failed);
        snprintf(dir, sizeof dir, "fuzz/regress/%s", h->name);
        size_t kept = replay_dir(h, dir, &failed);
        printf("  fuzz_%s: %zu seeds, %zu regression inputs replayed, %zu failed\n", h->name,
               seeds, kept, failed);
        if (seeds == 0)
            printf("  fuzz_%s has no seed corpus in fuzz/corpus/%s/\n", h->name, h->name);
        CHECK(seeds > 0);
        CHECK_EQ_INT(failed, 0);
    }
}

/* A harness added to fuzz/ but not compiled in above would silently go unreplayed. */
static void test_every_harness_is_replayed(void)
{
    DIR *d = opendir("fuzz");
    REQUIRE(d != NULL);
    struct dirent *e;
    size_t seen = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "fuzz_", 5) != 0 || n < 8 || strcmp(e->d_name + n - 2, ".c") != 0)
            continue;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(n - 7), e->d_name + 5);
        seen++;
        if (!find_harness(name))
            printf("  fuzz/%s is not replayed: add it to tests/test_fuzz_regress.c (or rebuild)\n",
                   e->d_name);
        CHECK(find_harness(name) != NULL);
    }
    closedir(d);
    CHECK_EQ_INT(seen, N_HARNESSES);
}

/* The replay must be able to fail: an input that breaks a harness's property is caught. */
static int always_aborts(const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    abort();
}

static void test_a_failing_input_is_reported(void)
{
    const char *path = "/tmp/dig-fuzz-regress-probe";
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    fputs("x", f);
    fclose(f);
    const harness probe = { "probe", always_aborts };
    printf("  (the next line is expected)\n");
    CHECK(!replay_one(&probe, path));
    unlink(path);
}

int main(void)
{
    RUN(test_replay_seeds_and_regressions);
    RUN(test_every_harness_is_replayed);
    RUN(test_a_failing_input_is_reported);
    return test_finish();
}

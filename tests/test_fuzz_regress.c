/* Replays committed fuzz inputs through every libFuzzer harness in the ordinary test build, so a
 * bug a fuzzer once found stays fixed without clang or libFuzzer.
 *
 * Each harness (fuzz/fuzz_<name>.c) is compiled in here with its entry point renamed, and is fed
 * every file in fuzz/corpus/<name>/ (the seeds) and fuzz/regress/<name>/ (minimized crashers and
 * other inputs worth keeping). Each directory is replayed in a child process (and each of its
 * files alone when that fails), so an abort() from a harness's property check, a sanitizer
 * report (under `make SANITIZER=address test`, including LeakSanitizer's check at the child's
 * exit) or a plain crash fails the test and names the file.
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

#if __has_include("fuzz/fuzz_proxy.c")
#define LLVMFuzzerTestOneInput fuzz_entry_proxy
#include "fuzz/fuzz_proxy.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_PROXY { "proxy", fuzz_entry_proxy },
#else
#define HAVE_FUZZ_PROXY
#endif

#if __has_include("fuzz/fuzz_spki.c")
#define LLVMFuzzerTestOneInput fuzz_entry_spki
#include "fuzz/fuzz_spki.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_SPKI { "spki", fuzz_entry_spki },
#else
#define HAVE_FUZZ_SPKI
#endif

#if __has_include("fuzz/fuzz_stun.c")
#define LLVMFuzzerTestOneInput fuzz_entry_stun
#include "fuzz/fuzz_stun.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_STUN { "stun", fuzz_entry_stun },
#else
#define HAVE_FUZZ_STUN
#endif

#if __has_include("fuzz/fuzz_turn.c")
#define LLVMFuzzerTestOneInput fuzz_entry_turn
#include "fuzz/fuzz_turn.c"
#undef LLVMFuzzerTestOneInput
#define HAVE_FUZZ_TURN { "turn", fuzz_entry_turn },
#else
#define HAVE_FUZZ_TURN
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
    HAVE_FUZZ_ADDR HAVE_FUZZ_HTTP HAVE_FUZZ_JSON HAVE_FUZZ_PEX HAVE_FUZZ_PROXY HAVE_FUZZ_SPKI
    HAVE_FUZZ_STUN HAVE_FUZZ_TURN HAVE_FUZZ_WIRE HAVE_FUZZ_WS
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

/* Lists the regular files in dir (sorted, so failures repeat in the same order); returns how
 * many, 0 when dir is absent. *paths is malloc'd, each entry too. */
static size_t list_inputs(const char *dir, char ***paths)
{
    *paths = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[1024];
        struct stat st;
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(*paths, cap * sizeof *grown);
            if (!grown)
                break;
            *paths = grown;
        }
        (*paths)[n] = strdup(path);
        if ((*paths)[n])
            n++;
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp((*paths)[j - 1], (*paths)[j]) > 0; j--) {
            char *t = (*paths)[j];
            (*paths)[j] = (*paths)[j - 1];
            (*paths)[j - 1] = t;
        }
    return n;
}

static void free_inputs(char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

/* Runs inputs through the harness in one child; true when the child exited 0. When report is
 * set, a failure is described (naming the input when there is just one). */
static bool replay(const harness *h, char *const *paths, size_t n, bool report)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        printf("  fork: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        for (size_t i = 0; i < n; i++) {
            size_t len = 0;
            uint8_t *data = read_input(paths[i], &len);
            if (!data) {
                printf("  %s: unreadable or larger than %u bytes\n", paths[i], MAX_REPLAY_INPUT);
                fflush(stdout);
                _exit(3);
            }
            h->entry(data, len);
            free(data);
        }
        exit(0); /* exit, not _exit: LeakSanitizer checks at exit */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    if (!report)
        return false;
    const char *what = n == 1 ? paths[0] : "inputs";
    if (WIFSIGNALED(status))
        printf("  %s: fuzz_%s died with signal %d\n", what, h->name, WTERMSIG(status));
    else
        printf("  %s: fuzz_%s exited %d\n", what, h->name, WEXITSTATUS(status));
    return false;
}

/* Replays every file in dir in one child, and each file alone when that fails, to name the
 * culprits (a leak shows only at exit, so the batch cannot tell which input it was). Returns
 * how many files there were, adding the failing ones to *failed. */
static size_t replay_dir(const harness *h, const char *dir, size_t *failed)
{
    char **paths;
    size_t n = list_inputs(dir, &paths);
    if (n > 0 && !replay(h, paths, n, false)) {
        size_t culprits = 0;
        for (size_t i = 0; i < n; i++)
            if (!replay(h, &paths[i], 1, true))
                culprits++;
        if (culprits == 0)
            printf("  %s: fuzz_%s fails on the inputs together but on none alone\n", dir, h->name);
        *failed += culprits ? culprits : 1;
    }
    free_inputs(paths, n);
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

/* The replay must be able to fail, and must name the input that broke a harness. */
static int aborts_on_bad(const uint8_t *data, size_t size)
{
    if (size == 3 && memcmp(data, "bad", 3) == 0)
        abort();
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_a_failing_input_is_named(void)
{
    char dir[] = "/tmp/dig-fuzz-regress-XXXXXX", path[64];
    REQUIRE(mkdtemp(dir) != NULL);
    static const char *const inputs[] = { "good", "bad", "fine" };
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%zu", dir, i);
        write_file(path, inputs[i]);
    }
    const harness probe = { "probe", aborts_on_bad };
    size_t failed = 0;
    printf("  (one failure of fuzz_probe on %s/1 is expected next)\n", dir);
    CHECK_EQ_INT(replay_dir(&probe, dir, &failed), 3);
    CHECK_EQ_INT(failed, 1);
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%zu", dir, i);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    RUN(test_replay_seeds_and_regressions);
    RUN(test_every_harness_is_replayed);
    RUN(test_a_failing_input_is_named);
    return test_finish();
}

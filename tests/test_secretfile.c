/* Unit tests for secretfile.c and compat/files.c: the TURN secret file is created on first use
 * (64 hex characters, mode 0600, missing directories 0700), read back the same, its trailing
 * newline dropped; files group or others can read, empty files and over-long files are refused
 * with the path in the message. Works in a fresh directory under /tmp. */
#include "compat/files.h"
#include "secretfile.h"
#include "tests/test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[256];
static char err[512];

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("  cannot write %s\n", path);
        test_cur_failed = 1;
        return;
    }
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static void test_created_then_read_back(void)
{
    char path[512];
    unsigned char a[1024], b[1024];
    size_t na = 0, nb = 0;
    bool created = false;
    struct stat st;

    snprintf(path, sizeof path, "%s/new/nested/turn-secret", base);
    REQUIRE(secret_file_load(path, a, sizeof a, &na, &created, err, sizeof err));
    CHECK(created);
    CHECK_EQ_INT(na, 64);
    for (size_t i = 0; i < na; i++)
        CHECK((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
    REQUIRE(stat(path, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    CHECK_EQ_INT(st.st_size, 65);   /* with its newline */
    snprintf(path, sizeof path, "%s/new/nested", base);
    REQUIRE(stat(path, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0700);

    snprintf(path, sizeof path, "%s/new/nested/turn-secret", base);
    REQUIRE(secret_file_load(path, b, sizeof b, &nb, &created, err, sizeof err));
    CHECK(!created);
    CHECK_EQ_MEM(a, na, b, nb);

    /* Two servers never draw the same secret. */
    snprintf(path, sizeof path, "%s/other-secret", base);
    REQUIRE(secret_file_load(path, b, sizeof b, &nb, &created, err, sizeof err));
    CHECK(created && nb == 64 && memcmp(a, b, 64) != 0);
}

static void test_operator_files(void)
{
    char path[512];
    unsigned char out[16];
    size_t n = 0;
    bool created = true;

    snprintf(path, sizeof path, "%s/given", base);
    write_file(path, "shared with coturn\n", 0600);
    unsigned char big[64];
    REQUIRE(secret_file_load(path, big, sizeof big, &n, &created, err, sizeof err));
    CHECK(!created);
    CHECK_EQ_MEM(big, n, "shared with coturn", 18);

    write_file(path, "crlf\r\n", 0600);
    REQUIRE(secret_file_load(path, out, sizeof out, &n, &created, err, sizeof err));
    CHECK_EQ_MEM(out, n, "crlf", 4);
    write_file(path, "no newline", 0400);
    REQUIRE(secret_file_load(path, out, sizeof out, &n, &created, err, sizeof err));
    CHECK_EQ_MEM(out, n, "no newline", 10);
    /* Exactly cap bytes, with and without the newline, fit; one more does not. */
    write_file(path, "0123456789abcdef\n", 0600);
    REQUIRE(secret_file_load(path, out, sizeof out, &n, &created, err, sizeof err));
    CHECK_EQ_INT(n, 16);
    write_file(path, "0123456789abcdefX", 0600);
    CHECK(!secret_file_load(path, out, sizeof out, &n, &created, err, sizeof err));
    CHECK(strstr(err, "longer than 16 bytes") != NULL && strstr(err, path) != NULL);

    write_file(path, "\n", 0600);
    CHECK(!secret_file_load(path, out, sizeof out, &n, &created, err, sizeof err));
    CHECK(strstr(err, "is empty") != NULL);

    write_file(path, "readable", 0644);
    CHECK(!secret_file_load(path, out, sizeof out, &n, &created, err, sizeof err));
    CHECK(strstr(err, "group or others") != NULL && strstr(err, path) != NULL);
    write_file(path, "readable", 0640);
    CHECK(!secret_file_load(path, out, sizeof out, &n, &created, err, sizeof err));
    write_file(path, "readable", 0604);
    CHECK(!secret_file_load(path, out, sizeof out, &n, &created, err, sizeof err));

    /* A directory in the way of the path, or a file where a directory should be. */
    snprintf(path, sizeof path, "%s/given/secret", base);
    CHECK(!secret_file_load(path, out, sizeof out, &n, &created, err, sizeof err));
    CHECK(strstr(err, "given") != NULL);
}

static void test_default_state_dir(void)
{
    char out[512];
    const char *home = getenv("HOME"), *xdg = getenv("XDG_STATE_HOME");
    char saved_home[512] = "", saved_xdg[512] = "";
    if (home)
        snprintf(saved_home, sizeof saved_home, "%s", home);
    if (xdg)
        snprintf(saved_xdg, sizeof saved_xdg, "%s", xdg);

    REQUIRE(compat_default_state_dir(out, sizeof out));
    if (geteuid() == 0) {
        CHECK_EQ_STR(out, "/var/lib/dig-relay");
    } else {
        setenv("XDG_STATE_HOME", "/x/state", 1);
        REQUIRE(compat_default_state_dir(out, sizeof out));
        CHECK_EQ_STR(out, "/x/state/dig-relay");
        unsetenv("XDG_STATE_HOME");
        setenv("HOME", "/home/u", 1);
        REQUIRE(compat_default_state_dir(out, sizeof out));
        CHECK_EQ_STR(out, "/home/u/.local/state/dig-relay");
        unsetenv("HOME");
        CHECK(!compat_default_state_dir(out, sizeof out));
    }
    CHECK(!compat_default_state_dir(out, 4));
    if (home)
        setenv("HOME", saved_home, 1);
    if (xdg)
        setenv("XDG_STATE_HOME", saved_xdg, 1);
}

int main(void)
{
    snprintf(base, sizeof base, "/tmp/dig-secret-XXXXXX");
    if (!mkdtemp(base)) {
        printf("cannot make a temporary directory\n");
        return 1;
    }
    RUN(test_created_then_read_back);
    RUN(test_operator_files);
    RUN(test_default_state_dir);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        printf("  could not remove %s\n", base);
    return test_finish();
}

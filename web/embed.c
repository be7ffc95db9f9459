/* Build tool: writes the operator pages into a C file so the relay serves them from its own
 * binary (no files to install, nothing fetched at run time).
 *   web/embed OUT.c web/index.html web/app.css ...
 * OUT.c defines web_files[] (webassets.h): each file's name without its folder, the path it is
 * served at (/assets/NAME), and its bytes.
 * Runs on the build machine, so a cross build embeds the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int embed(FILE *out, const char *path, int index)
{
    FILE *in = fopen(path, "rb");
    int c, col = 0;
    if (!in) {
        fprintf(stderr, "embed: cannot read %s\n", path);
        return -1;
    }
    fprintf(out, "static const unsigned char file%d[] = {\n", index);
    while ((c = getc(in)) != EOF) {
        fprintf(out, "%s%d,", col == 0 ? "    " : "", c);
        if (++col == 24) {
            fputc('\n', out);
            col = 0;
        }
    }
    fprintf(out, "%s    0\n};\n", col ? "\n" : "");
    int bad = ferror(in);
    fclose(in);
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: embed OUT.c FILE...\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "wb");
    if (!out) {
        fprintf(stderr, "embed: cannot write %s\n", argv[1]);
        return 1;
    }
    fprintf(out, "/* The operator pages, written by web/embed.c from web/: do not edit. */\n");
    fprintf(out, "#include \"webassets.h\"\n\n");
    for (int i = 2; i < argc; i++)
        if (embed(out, argv[i], i - 2) != 0) {
            fclose(out);
            remove(argv[1]);
            return 1;
        }
    fprintf(out, "\nconst web_file web_files[] = {\n");
    for (int i = 2; i < argc; i++) {
        const char *name = strrchr(argv[i], '/');
        const char *base = name ? name + 1 : argv[i];
        fprintf(out, "    { \"%s\", \"/assets/%s\", file%d, sizeof file%d - 1 },\n", base, base, i - 2, i - 2);
    }
    fprintf(out, "};\nconst size_t web_n_files = %d;\n", argc - 2);
    if (fclose(out) != 0) {
        remove(argv[1]);
        return 1;
    }
    return 0;
}

/* libFuzzer harness for spki.c. The input is one would-be DER certificate.
 *
 * Whatever the bytes, the walk must not read outside them. An accepted input must give a span
 * inside it that is itself one DER SEQUENCE of exactly that length; the same bytes with one byte
 * appended, or with the last byte cut off, must be refused (the certificate ends exactly at the
 * end of the input); and the verdict and span must be the same at an odd address. */
#include "spki.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size heap copies, so any read past the end is caught. */
    uint8_t *copy = calloc(size + 1, 1), *odd = calloc(size + 2, 1);
    size_t off = 0, n = 0, off2 = 0, n2 = 0;
    bool ok;

    if (copy == NULL || odd == NULL)
        abort();
    if (size > 0)
        memcpy(copy, data, size);
    ok = spki_find(copy, size, &off, &n);
    if (size > 0)
        memcpy(odd + 1, data, size);
    if (spki_find(odd + 1, size, &off2, &n2) != ok || (ok && (off2 != off || n2 != n)))
        abort();
    if (ok) {
        if (off >= size || n > size - off || n < 2 || copy[off] != 0x30)
            abort();
        copy[size] = 0;
        if (spki_find(copy, size + 1, &off2, &n2) || spki_find(copy, size - 1, &off2, &n2))
            abort();
    }
    free(copy);
    free(odd);
    return 0;
}

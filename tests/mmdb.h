/* Test support: writes a small MaxMind DB (.mmdb, format 2.0) mapping networks to a location
 * record ({"location": {"latitude": .., "longitude": ..}}), so geolocation tests need no
 * downloaded database. IPv6 tree with 24-bit records; IPv4 networks sit under ::/96, where
 * readers look IPv4 addresses up. */
#ifndef DIG_TEST_MMDB_H
#define DIG_TEST_MMDB_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *cidr;         /* "81.2.69.0/24" or "2a02:6b8::/32" */
    double lat, lon;
} mmdb_entry;

/* Writes the database to path; false (with the reason printed) on a bad CIDR or I/O error. */
bool mmdb_write(const char *path, const mmdb_entry *entries, size_t n);
/* The same into a new file /tmp/dig-mmdb-XXXXXX, its name left in path (the caller unlinks it). */
#define MMDB_TEMP_PATH "/tmp/dig-mmdb-XXXXXX"
bool mmdb_write_temp(char path[sizeof MMDB_TEMP_PATH], const mmdb_entry *entries, size_t n);

#endif

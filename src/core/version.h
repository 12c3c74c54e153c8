/* version.h - the program version and the crypto libraries behind it. */
#ifndef KB_VERSION_H
#define KB_VERSION_H

#include <stdio.h>

#define KB_VERSION "0.1.0"

/* Prints e.g. "keibifsd 0.1.0 (bulk AEAD: openssl 3.0.11; reference:
 * mbedTLS 2.28.3)" and a newline. */
void kb_print_version(FILE *f, const char *prog);

#endif

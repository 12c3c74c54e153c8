/* version.c - version line naming the crypto libraries actually linked. */
#include <mbedtls/version.h>
#ifdef KB_HAVE_OPENSSL
#include <openssl/crypto.h>
#endif

#include "version.h"

void kb_print_version(FILE *f, const char *prog)
{
	char mbed[18] = MBEDTLS_VERSION_STRING; /* runtime version below */

#ifdef MBEDTLS_VERSION_C
	mbedtls_version_get_string(mbed);
#endif
#ifdef KB_HAVE_OPENSSL
	fprintf(f, "%s %s (bulk AEAD: openssl %s; reference: mbedTLS %s)\n", prog, KB_VERSION,
		OpenSSL_version(OPENSSL_VERSION_STRING), mbed);
#else
	fprintf(f, "%s %s (bulk AEAD: mbedTLS %s; reference: mbedTLS %s)\n", prog, KB_VERSION, mbed,
		mbed);
#endif
}

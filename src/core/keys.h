/* keys.h - static identities, fingerprints and pinned-key files.
 *
 * Private key file: one line, base64 of the 32-byte X25519 private key,
 * mode 0600. Public key file (FILE.pub): one line
 *   "keibifs-x25519 BASE64PUB [comment]"
 * which can be appended as-is to an authorized keys or known peers file.
 * Authorized keys (server): one public key line per peer, optionally prefixed
 * by comma-separated options ("ro", "owners"), '#' comments. Known peers
 * (client): the same lines, optionally prefixed by host patterns as in
 * ssh's known_hosts ("10.77.0.1,srv *.lan,!bad.lan [srv]:4000"): such a key
 * is trusted for those hosts only, and another key from them is a CHANGED
 * key; lines without hosts are trusted for any host.
 * Fingerprint: "SHA256:" + unpadded base64 of SHA-256(raw public key).
 */
#ifndef KB_KEYS_H
#define KB_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KB_KEY_LEN 32
#define KB_FPR_LEN 52 /* "SHA256:" + 43 base64 chars + NUL, rounded */

struct kb_noise_rng;

void kb_key_fingerprint(const uint8_t pub[static KB_KEY_LEN], char out[static KB_FPR_LEN]);

/* Loads a private key file; refuses group/other-accessible files (-EPERM),
 * with a message in err. Fills pub too. */
int kb_key_load_private(const char *path, uint8_t priv[static KB_KEY_LEN],
			uint8_t pub[static KB_KEY_LEN], char *err, size_t errlen);
/* Writes FILE (0600) and FILE.pub; refuses to overwrite unless `force`. */
int kb_key_generate(const char *path, bool force, struct kb_noise_rng *rng,
		    uint8_t pub_out[static KB_KEY_LEN], char *err, size_t errlen);
/* Same with a comment (NULL: "user@host"); the keygen tool uses it. */
int kb_key_generate_comment(const char *path, const char *comment, bool force,
			    struct kb_noise_rng *rng, uint8_t pub_out[static KB_KEY_LEN], char *err,
			    size_t errlen);
/* Parses one public key line ("keibifs-x25519 B64 [comment]"). */
int kb_key_parse_public_line(const char *line, uint8_t pub[static KB_KEY_LEN]);
/* Same, also copying the comment (may be empty) into comment[ccap]. */
int kb_key_parse_public_comment(const char *line, uint8_t pub[static KB_KEY_LEN], char *comment,
				size_t ccap);
/* Reads the public key from a .pub file (or a private key file). */
int kb_key_load_public(const char *path, uint8_t pub[static KB_KEY_LEN], char *err, size_t errlen);
/* Same with the .pub line's comment (the path for a private key file). */
int kb_key_load_public_comment(const char *path, uint8_t pub[static KB_KEY_LEN], char *comment,
			       size_t ccap, char *err, size_t errlen);

/* A set of pinned keys, each with flags. */
#define KB_KEYF_RO 1u
#define KB_KEYF_OWNERS 2u /* "owners": may send Request.creds (keibifsd) */
struct kb_keyset;         /* opaque */
/* Parses an authorized keys / known peers file. Refuses files writable by
 * group/other or not owned by the caller or root (-EPERM), like sshd's
 * StrictModes. err gets "FILE:LINE: reason" on a parse error. */
int kb_keyset_load(struct kb_keyset **out, const char *path, char *err, size_t errlen);
/* An empty set, to which kb_keyset_add() can add keys. */
int kb_keyset_new(struct kb_keyset **out);
int kb_keyset_add(struct kb_keyset *ks, const uint8_t pub[static KB_KEY_LEN], unsigned flags);
/* Adds the key whose fingerprint is `fpr` (from -o peer=): stored as a
 * fingerprint pin, matched by hashing the presented key. */
int kb_keyset_add_fingerprint(struct kb_keyset *ks, const char *fpr);
/* A known_peers file: lines may start with host patterns (see above). */
int kb_keyset_load_peers(struct kb_keyset **out, const char *path, char *err, size_t errlen);
/* The server key `pub` presented by host:port (port NULL: the default):
 * 0 (and *flags) when an entry for any host or for this one has it;
 * -EKEYREJECTED when an entry bound to this host (or a -o peer= pin) has
 * another key, with a loud one-line "SERVER KEY CHANGED" in why naming the
 * file and line; -ENOENT when nothing is known. */
int kb_keyset_match_host(const struct kb_keyset *ks, const char *host, const char *port,
			 const uint8_t pub[static KB_KEY_LEN], unsigned *flags, char *why,
			 size_t wlen);
/* 0 and *flags when pub is in the set, -ENOENT otherwise. */
int kb_keyset_match(const struct kb_keyset *ks, const uint8_t pub[static KB_KEY_LEN],
		    unsigned *flags);
/* 0 when the key with this SHA256: fingerprint is in the set (as a key or
 * as a fingerprint pin), -ENOENT when not, -EINVAL for a bad fingerprint. */
int kb_keyset_match_fingerprint(const struct kb_keyset *ks, const char *fpr);
void kb_keyset_free(struct kb_keyset *ks);
size_t kb_keyset_count(const struct kb_keyset *ks); /* entries */

/* Pre-shared key file: one line, 32 bytes in base64 (or 64 hex digits),
 * mode 0600 (refused, -EPERM, when group or others may read it). */
int kb_psk_load(const char *path, uint8_t psk[static KB_KEY_LEN], char *err, size_t errlen);
/* A new random pre-shared key in path (0600, like wg genpsk). */
int kb_psk_generate(const char *path, bool force, struct kb_noise_rng *rng, char *err,
		    size_t errlen);

#endif

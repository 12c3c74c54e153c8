/* keys.c - key files, fingerprints and pinned key sets (see keys.h). */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "keys.h"
#include "net.h"
#include "noise.h"
#include "noise_int.h"
#include "util.h"

#define KEY_TYPE "keibifs-x25519"
#define KEY_LINE_MAX 4096
#define KEY_B64_LEN 44 /* padded base64 of 32 bytes */

struct kb_keyent {
	uint8_t key[KB_KEY_LEN]; /* public key, or SHA-256 of it for a pin */
	unsigned flags;
	bool is_fpr;
	bool from_opt; /* added by kb_keyset_add_fingerprint (-o peer=) */
	char *hosts;   /* owned: known_peers host patterns; NULL: any host */
	unsigned line; /* line in ks->src (0: not from a file) */
};

struct kb_keyset {
	struct kb_keyent *v; /* owned array of cap entries */
	size_t n, cap;
	char *src; /* owned: the file the entries came from */
};

static int errf(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int errf(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

void kb_key_fingerprint(const uint8_t pub[static KB_KEY_LEN], char out[static KB_FPR_LEN])
{
	uint8_t d[32];

	kb_noise_sha256(d, pub, KB_KEY_LEN, NULL, 0);
	memcpy(out, "SHA256:", 7);
	kb_b64_encode(out + 7, d, sizeof(d), 0);
}

/* Reads the first line of a small file (without the newline) into buf. */
static int read_line(int fd, char *buf, size_t cap)
{
	ssize_t n;
	char *nl;

	n = read(fd, buf, cap - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	nl = strpbrk(buf, "\r\n");
	if (nl)
		*nl = '\0';
	else if ((size_t)n == cap - 1)
		return -EFBIG;
	return 0;
}

/* ---- private keys -------------------------------------------------------- */

static int check_private_mode(const struct stat *st, const char *path, char *err, size_t errlen)
{
	if (!S_ISREG(st->st_mode))
		return errf(err, errlen, -EINVAL, "%s: not a regular file", path);
	if (st->st_mode & 077)
		return errf(err, errlen, -EPERM,
			    "WARNING: UNPROTECTED PRIVATE KEY FILE! Permissions 0%03o for '%s' "
			    "are too open. It is required that your private key files are NOT "
			    "accessible by others (chmod 600 '%s').",
			    (unsigned)(st->st_mode & 0777), path, path);
	if (st->st_uid != geteuid() && st->st_uid != 0)
		return errf(err, errlen, -EPERM, "bad ownership: '%s' is owned by uid %u", path,
			    (unsigned)st->st_uid);
	return 0;
}

int kb_key_load_private(const char *path, uint8_t priv[static KB_KEY_LEN],
			uint8_t pub[static KB_KEY_LEN], char *err, size_t errlen)
{
	char line[128]; /* base64 private key; wiped */
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	ret = fstat(fd, &st) ? -errno : check_private_mode(&st, path, err, errlen);
	if (!ret)
		ret = read_line(fd, line, sizeof(line));
	close(fd);
	if (ret == -EFBIG)
		ret = -EINVAL;
	if (!ret && kb_b64_decode(priv, KB_KEY_LEN, line, strlen(line)) != KB_KEY_LEN)
		ret = -EINVAL;
	if (ret == -EINVAL && err && !strstr(err, path))
		errf(err, errlen, ret, "%s: not a keibifs private key", path);
	if (!ret)
		ret = kb_x25519_pub(priv, pub);
	if (ret)
		kb_memzero(priv, KB_KEY_LEN);
	kb_memzero(line, sizeof(line));
	return ret;
}

static void default_comment(char *out, size_t cap)
{
	struct passwd *pw = getpwuid(getuid());
	char host[256];

	if (gethostname(host, sizeof(host)))
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(out, cap, "%s@%s", pw ? pw->pw_name : "user", host);
}

/* Creates path with O_EXCL (after removing it when force) and writes text. */
static int write_new(const char *path, const char *text, mode_t mode, bool force, char *err,
		     size_t errlen)
{
	int fd, ret;

	if (force && unlink(path) && errno != ENOENT)
		return errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 && errno == EEXIST)
		return errf(err, errlen, -EEXIST, "%s already exists (use -y to overwrite)", path);
	if (fd < 0)
		return errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	ret = kb_write_full(fd, text, strlen(text));
	if (!ret && fchmod(fd, mode))
		ret = -errno;
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (ret) {
		unlink(path);
		return errf(err, errlen, ret, "%s: %s", path, kb_strerror(ret));
	}
	return 0;
}

int kb_key_generate_comment(const char *path, const char *comment, bool force,
			    struct kb_noise_rng *rng, uint8_t pub_out[static KB_KEY_LEN], char *err,
			    size_t errlen)
{
	uint8_t priv[KB_KEY_LEN], pub[KB_KEY_LEN];         /* priv wiped */
	char text[KEY_LINE_MAX], pubpath[4096], cbuf[300]; /* text wiped */
	int ret;

	if ((size_t)snprintf(pubpath, sizeof(pubpath), "%s.pub", path) >= sizeof(pubpath))
		return errf(err, errlen, -ENAMETOOLONG, "%s: name too long", path);
	if (!comment) {
		default_comment(cbuf, sizeof(cbuf));
		comment = cbuf;
	}
	if (strpbrk(comment, "\r\n") || strlen(comment) > 256)
		return errf(err, errlen, -EINVAL, "bad comment");
	if (!force && (!access(path, F_OK) || !access(pubpath, F_OK)))
		return errf(err, errlen, -EEXIST, "%s already exists (use -y to overwrite)",
			    access(path, F_OK) ? pubpath : path);
	ret = kb_x25519_keygen(rng, priv, pub);
	if (ret)
		return errf(err, errlen, ret, "key generation failed: %s", kb_strerror(ret));
	kb_b64_encode(text, priv, KB_KEY_LEN, 1);
	strcat(text, "\n");
	ret = write_new(path, text, 0600, force, err, errlen);
	if (!ret) {
		char b64[KEY_B64_LEN + 1];

		kb_b64_encode(b64, pub, KB_KEY_LEN, 1);
		snprintf(text, sizeof(text), KEY_TYPE " %s %s\n", b64, comment);
		ret = write_new(pubpath, text, 0644, force, err, errlen);
	}
	if (!ret)
		memcpy(pub_out, pub, KB_KEY_LEN);
	kb_memzero(priv, sizeof(priv));
	kb_memzero(text, sizeof(text));
	return ret;
}

int kb_key_generate(const char *path, bool force, struct kb_noise_rng *rng,
		    uint8_t pub_out[static KB_KEY_LEN], char *err, size_t errlen)
{
	return kb_key_generate_comment(path, NULL, force, rng, pub_out, err, errlen);
}

/* ---- public keys ------------------------------------------------------------ */

int kb_key_parse_public_comment(const char *line, uint8_t pub[static KB_KEY_LEN], char *comment,
				size_t ccap)
{
	const char *p = line + strspn(line, " \t"), *b;
	size_t blen;

	if (strncmp(p, KEY_TYPE, sizeof(KEY_TYPE) - 1) || !strchr(" \t", p[sizeof(KEY_TYPE) - 1]) ||
	    !p[sizeof(KEY_TYPE) - 1])
		return -EINVAL;
	b = p + sizeof(KEY_TYPE) - 1;
	b += strspn(b, " \t");
	blen = strcspn(b, " \t\r\n");
	if (kb_b64_decode(pub, KB_KEY_LEN, b, blen) != KB_KEY_LEN)
		return -EINVAL;
	p = b + blen;
	p += strspn(p, " \t");
	if (comment && ccap) {
		snprintf(comment, ccap, "%s", p);
		comment[strcspn(comment, "\r\n")] = '\0';
	}
	return 0;
}

int kb_key_parse_public_line(const char *line, uint8_t pub[static KB_KEY_LEN])
{
	return kb_key_parse_public_comment(line, pub, NULL, 0);
}

int kb_key_load_public_comment(const char *path, uint8_t pub[static KB_KEY_LEN], char *comment,
			       size_t ccap, char *err, size_t errlen)
{
	char line[KEY_LINE_MAX];
	uint8_t priv[KB_KEY_LEN]; /* when path is a private key; wiped */
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	ret = read_line(fd, line, sizeof(line));
	close(fd);
	if (ret)
		return errf(err, errlen, ret == -EFBIG ? -EINVAL : ret, "%s: %s", path,
			    ret == -EFBIG ? "line too long" : kb_strerror(ret));
	if (!strncmp(line + strspn(line, " \t"), KEY_TYPE, sizeof(KEY_TYPE) - 1)) {
		if (kb_key_parse_public_comment(line, pub, comment, ccap))
			return errf(err, errlen, -EINVAL, "%s: malformed public key", path);
		return 0;
	}
	ret = kb_key_load_private(path, priv, pub, err, errlen);
	kb_memzero(priv, sizeof(priv));
	if (!ret && comment && ccap)
		snprintf(comment, ccap, "%s", path);
	return ret;
}

int kb_key_load_public(const char *path, uint8_t pub[static KB_KEY_LEN], char *err, size_t errlen)
{
	return kb_key_load_public_comment(path, pub, NULL, 0, err, errlen);
}

/* ---- key sets ------------------------------------------------------------ */

int kb_keyset_new(struct kb_keyset **out)
{
	struct kb_keyset *ks = calloc(1, sizeof(*ks));

	if (!ks)
		return -ENOMEM;
	*out = ks;
	return 0;
}

size_t kb_keyset_count(const struct kb_keyset *ks)
{
	return ks ? ks->n : 0;
}

void kb_keyset_free(struct kb_keyset *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++)
		free(ks->v[i].hosts);
	free(ks->v);
	free(ks->src);
	free(ks);
}

static int keyset_push(struct kb_keyset *ks, const uint8_t key[static KB_KEY_LEN], unsigned flags,
		       bool is_fpr)
{
	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? 2 * ks->cap : 8;
		struct kb_keyent *v = reallocarray(ks->v, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		ks->v = v;
		ks->cap = cap;
	}
	ks->v[ks->n] = (struct kb_keyent){.flags = flags, .is_fpr = is_fpr};
	memcpy(ks->v[ks->n].key, key, KB_KEY_LEN);
	ks->n++;
	return 0;
}

int kb_keyset_add(struct kb_keyset *ks, const uint8_t pub[static KB_KEY_LEN], unsigned flags)
{
	return keyset_push(ks, pub, flags, false);
}

static int fpr_decode(const char *fpr, size_t len, uint8_t d[static 32])
{
	if (len != 7 + 43 || strncmp(fpr, "SHA256:", 7))
		return -EINVAL;
	return kb_b64_decode(d, 32, fpr + 7, 43) == 32 ? 0 : -EINVAL;
}

int kb_keyset_add_fingerprint(struct kb_keyset *ks, const char *fpr)
{
	uint8_t d[32];

	int ret;

	if (fpr_decode(fpr, strlen(fpr), d))
		return -EINVAL;
	ret = keyset_push(ks, d, 0, true);
	if (!ret)
		ks->v[ks->n - 1].from_opt = true;
	return ret;
}

int kb_keyset_match(const struct kb_keyset *ks, const uint8_t pub[static KB_KEY_LEN],
		    unsigned *flags)
{
	uint8_t d[32];

	kb_noise_sha256(d, pub, KB_KEY_LEN, NULL, 0);
	for (size_t i = 0; i < ks->n; i++) {
		const struct kb_keyent *e = &ks->v[i];

		if (!kb_memcmp_ct(e->key, e->is_fpr ? d : pub, KB_KEY_LEN)) {
			if (flags)
				*flags = e->flags;
			return 0;
		}
	}
	return -ENOENT;
}

static int kb_tolower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* known_hosts' wildcards: '*' any run, '?' one character, ASCII case
 * ignored (host names). No brackets: "[host]:port" is literal. */
static bool wild_match(const char *pat, size_t plen, const char *s)
{
	while (plen) {
		if (*pat == '*') {
			for (;;) {
				if (wild_match(pat + 1, plen - 1, s))
					return true;
				if (!*s++)
					return false;
			}
		}
		if (!*s || (*pat != '?' && kb_tolower(*pat) != kb_tolower(*s)))
			return false;
		pat++, plen--, s++;
	}
	return !*s;
}

/* "h1,*.lan,!bad.lan": true when name matches a pattern and no negated
 * one (ssh's match_hostname). */
static bool hosts_match(const char *hosts, const char *name)
{
	bool hit = false;

	for (const char *p = hosts; *p;) {
		size_t n = strcspn(p, ",");

		if (*p == '!' && wild_match(p + 1, n - 1, name))
			return false;
		if (*p != '!' && wild_match(p, n, name))
			hit = true;
		p += n + (p[n] == ',');
	}
	return hit;
}

/* What a known_peers line is matched against: "host" on the default
 * port, "[host]:port" on another (as ssh does for port 22). */
static void host_key_name(char *out, size_t cap, const char *host, const char *port)
{
	if (!port || !strcmp(port, KB_DEFAULT_PORT))
		snprintf(out, cap, "%s", host);
	else
		snprintf(out, cap, "[%s]:%s", host, port);
}

static void entry_fpr(const struct kb_keyent *e, char out[static KB_FPR_LEN])
{
	if (e->is_fpr) {
		memcpy(out, "SHA256:", 7);
		kb_b64_encode(out + 7, e->key, KB_KEY_LEN, 0);
	} else {
		kb_key_fingerprint(e->key, out);
	}
}

static bool entry_is(const struct kb_keyent *e, const uint8_t pub[static KB_KEY_LEN],
		     const uint8_t d[static 32])
{
	return !kb_memcmp_ct(e->key, e->is_fpr ? d : pub, KB_KEY_LEN);
}

int kb_keyset_match_host(const struct kb_keyset *ks, const char *host, const char *port,
			 const uint8_t pub[static KB_KEY_LEN], unsigned *flags, char *why,
			 size_t wlen)
{
	const struct kb_keyent *pinned = NULL; /* first entry for this host */
	char name[300], fpr[KB_FPR_LEN], old[KB_FPR_LEN];
	uint8_t d[32];

	errf(why, wlen, 0, "%s", "");
	kb_noise_sha256(d, pub, KB_KEY_LEN, NULL, 0);
	host_key_name(name, sizeof(name), host ? host : "", port);
	for (size_t i = 0; i < ks->n; i++) {
		const struct kb_keyent *e = &ks->v[i];
		bool mine = !e->hosts || (host && hosts_match(e->hosts, name));

		if (mine && entry_is(e, pub, d)) {
			if (flags)
				*flags = e->flags;
			return 0;
		}
		if (!pinned && (e->from_opt || (e->hosts && mine)))
			pinned = e;
	}
	if (!pinned)
		return -ENOENT;
	kb_key_fingerprint(pub, fpr);
	entry_fpr(pinned, old);
	if (pinned->from_opt)
		return errf(why, wlen, -EKEYREJECTED,
			    "WARNING: SERVER KEY CHANGED: %s presented %s, but -o peer=%s "
			    "pins another key: someone may be intercepting the connection, or "
			    "the server has a new key (check it, then change peer=)",
			    name, fpr, old);
	return errf(why, wlen, -EKEYREJECTED,
		    "WARNING: SERVER KEY CHANGED: %s presented %s, but %s:%u pins %s for "
		    "it: someone may be intercepting the connection, or the server has a new "
		    "key (check it, then replace line %u)",
		    name, fpr, ks->src ? ks->src : "known_peers", pinned->line, old, pinned->line);
}

int kb_keyset_match_fingerprint(const struct kb_keyset *ks, const char *fpr)
{
	uint8_t d[32], h[32];

	if (fpr_decode(fpr, strlen(fpr), d))
		return -EINVAL;
	for (size_t i = 0; i < ks->n; i++) {
		const struct kb_keyent *e = &ks->v[i];

		if (!e->is_fpr)
			kb_noise_sha256(h, e->key, KB_KEY_LEN, NULL, 0);
		if (!memcmp(e->is_fpr ? e->key : h, d, sizeof(d)))
			return 0;
	}
	return -ENOENT;
}

/* Options before the key: comma-separated, "ro" and "owners". */
static int parse_options(const char *p, size_t len, unsigned *flags, char *why, size_t wlen)
{
	while (len) {
		size_t n = strcspn(p, ",");

		n = KB_MIN(n, len);
		if (n == 2 && !strncmp(p, "ro", 2))
			*flags |= KB_KEYF_RO;
		else if (n == 6 && !strncmp(p, "owners", 6))
			*flags |= KB_KEYF_OWNERS;
		else
			return errf(why, wlen, -EINVAL, "unknown option '%.*s'", (int)KB_MIN(n, 32),
				    p);
		p += n;
		len -= n;
		if (len) {
			p++;
			len--;
		}
	}
	return 0;
}

/* One non-comment line: "[options ]keibifs-x25519 B64 [comment]" or a
 * "SHA256:..." fingerprint pin. */
static int keyset_line(struct kb_keyset *ks, const char *line, bool peers, char *why, size_t wlen)
{
	const char *p = line + strspn(line, " \t");
	size_t tok = strcspn(p, " \t");
	unsigned flags = 0;
	uint8_t key[KB_KEY_LEN];
	char *hosts = NULL;
	bool is_fpr = false;
	int ret;

	if (peers && strncmp(p, "SHA256:", 7) &&
	    (tok != sizeof(KEY_TYPE) - 1 || strncmp(p, KEY_TYPE, tok))) {
		hosts = strndup(p, tok); /* known_peers: host patterns first */
		if (!hosts)
			return -ENOMEM;
		p += tok;
		p += strspn(p, " \t");
		tok = strcspn(p, " \t");
		if (!*p) {
			free(hosts);
			return errf(why, wlen, -EINVAL,
				    "malformed line (expected \"[HOSTS] %s "
				    "BASE64 [comment]\" or \"[HOSTS] SHA256:...\")",
				    KEY_TYPE);
		}
	}
	if (!strncmp(p, "SHA256:", 7)) {
		if (fpr_decode(p, tok, key) || p[tok + strspn(p + tok, " \t")]) {
			free(hosts);
			return errf(why, wlen, -EINVAL, "malformed fingerprint");
		}
		is_fpr = true;
	} else {
		if (!peers && (tok != sizeof(KEY_TYPE) - 1 || strncmp(p, KEY_TYPE, tok))) {
			ret = parse_options(p, tok, &flags, why, wlen);
			if (ret)
				return ret;
			p += tok;
		}
		if (kb_key_parse_public_line(p, key)) {
			free(hosts);
			return errf(why, wlen, -EINVAL,
				    "malformed key (expected \"%s%s BASE64 [comment]\")",
				    peers ? "[HOSTS] " : "", KEY_TYPE);
		}
	}
	ret = keyset_push(ks, key, flags, is_fpr);
	if (ret)
		free(hosts);
	else
		ks->v[ks->n - 1].hosts = hosts;
	return ret;
}

static int check_keyset_mode(const struct stat *st, const char *path, char *err, size_t errlen)
{
	if (!S_ISREG(st->st_mode))
		return errf(err, errlen, -EINVAL, "%s: not a regular file", path);
	if (st->st_mode & 022)
		return errf(err, errlen, -EPERM,
			    "bad permissions: '%s' is writable by group or others (mode 0%03o); "
			    "chmod go-w it",
			    path, (unsigned)(st->st_mode & 0777));
	if (st->st_uid != geteuid() && st->st_uid != 0)
		return errf(err, errlen, -EPERM, "bad ownership: '%s' is owned by uid %u", path,
			    (unsigned)st->st_uid);
	return 0;
}

static int keyset_read(struct kb_keyset *ks, FILE *f, const char *path, bool peers, char *err,
		       size_t errlen)
{
	char line[KEY_LINE_MAX], why[160];
	unsigned lineno = 0;

	while (fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);
		const char *p;

		lineno++;
		if (len == sizeof(line) - 1 && line[len - 1] != '\n' && !feof(f))
			return errf(err, errlen, -EINVAL, "%s:%u: line too long", path, lineno);
		line[strcspn(line, "\r\n")] = '\0';
		p = line + strspn(line, " \t");
		if (!*p || *p == '#')
			continue;
		if (keyset_line(ks, p, peers, why, sizeof(why)))
			return errf(err, errlen, -EINVAL, "%s:%u: %s", path, lineno, why);
		ks->v[ks->n - 1].line = lineno;
	}
	if (ferror(f))
		return errf(err, errlen, -EIO, "%s: read error", path);
	return 0;
}

static int keyset_load(struct kb_keyset **out, const char *path, bool peers, char *err,
		       size_t errlen)
{
	struct kb_keyset *ks = NULL; /* owned until *out */
	struct stat st;
	FILE *f;
	int ret;

	f = fopen(path, "re");
	if (!f)
		return errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	ret = fstat(fileno(f), &st) ? -errno : check_keyset_mode(&st, path, err, errlen);
	if (!ret)
		ret = kb_keyset_new(&ks);
	if (!ret && !(ks->src = strdup(path)))
		ret = -ENOMEM;
	if (!ret)
		ret = keyset_read(ks, f, path, peers, err, errlen);
	fclose(f);
	if (ret) {
		kb_keyset_free(ks);
		return ret;
	}
	*out = ks;
	return 0;
}

int kb_keyset_load(struct kb_keyset **out, const char *path, char *err, size_t errlen)
{
	return keyset_load(out, path, false, err, errlen);
}

int kb_keyset_load_peers(struct kb_keyset **out, const char *path, char *err, size_t errlen)
{
	return keyset_load(out, path, true, err, errlen);
}

/* ---- pre-shared keys ------------------------------------------------------ */

int kb_psk_load(const char *path, uint8_t psk[static KB_KEY_LEN], char *err, size_t errlen)
{
	char line[256]; /* holds the encoded key: wiped */
	struct stat st;
	ssize_t n;
	int fd, ret = -EINVAL;

	line[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = errf(err, errlen, -errno, "pre-shared key %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		ret = errf(err, errlen, -EPERM, "pre-shared key %s: %s", path,
			   S_ISREG(st.st_mode) ? "readable by others (chmod 600 it)"
					       : "not a regular file");
		goto out;
	}
	n = read(fd, line, sizeof(line) - 1);
	line[n < 0 ? 0 : n] = '\0';
	line[strcspn(line, " \t\r\n")] = '\0';
	if (strlen(line) == 64)
		n = kb_hex_decode(psk, KB_KEY_LEN, line);
	else
		n = kb_b64_decode(psk, KB_KEY_LEN, line, strlen(line));
	if (n == KB_KEY_LEN)
		ret = 0;
	else
		errf(err, errlen, ret,
		     "pre-shared key %s: not 32 bytes of base64 or hex "
		     "(make one with keibifs-keygen --psk FILE)",
		     path);
out:
	kb_memzero(line, sizeof(line));
	if (fd >= 0)
		close(fd);
	return ret;
}

int kb_psk_generate(const char *path, bool force, struct kb_noise_rng *rng, char *err,
		    size_t errlen)
{
	uint8_t psk[KB_KEY_LEN];    /* wiped */
	char text[KEY_B64_LEN + 2]; /* wiped */
	int ret;

	ret = kb_noise_rng_bytes(rng, psk, sizeof(psk));
	if (ret)
		return errf(err, errlen, ret, "random generator: %s", kb_strerror(ret));
	kb_b64_encode(text, psk, sizeof(psk), 1);
	strcat(text, "\n");
	ret = write_new(path, text, 0600, force, err, errlen);
	kb_memzero(psk, sizeof(psk));
	kb_memzero(text, sizeof(text));
	return ret;
}
